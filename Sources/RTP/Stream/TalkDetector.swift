// Speaking start/stop detection from RFC 6464 audio levels or decoded PCM.
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A speaking transition.
public enum TalkEvent: Sendable, Equatable {
    case started(at: MonotonicTime)
    case stopped(at: MonotonicTime)
}

/// Settings of a `TalkDetector`.
public struct TalkDetectorConfiguration: Sendable, Equatable {
    /// Averaging window (Janus: 100 packets ≈ 2 s).
    public var window: Duration
    /// Speaking starts when the window's average level (-dBov) is at or below this.
    public var startLevel: Double
    /// Speaking stops when the average rises above this (≥ `startLevel`: hysteresis).
    public var stopLevel: Double

    public init(window: Duration = .seconds(2), startLevel: Double = 25, stopLevel: Double = 35) {
        self.window = window
        self.startLevel = startLevel
        self.stopLevel = max(startLevel, stopLevel)
    }
}

/// Turns a stream of audio levels (RFC 6464 -dBov, 0 loudest, 127 silence) into speaking
/// start/stop events: a sliding-window average (in the power domain, so short pauses between
/// words do not dominate) with hysteresis. Works on the ssrc-audio-level
/// values of received packets, on levels measured from decoded PCM (`add(pcm:)`) when the
/// extension is absent, and on one's own outgoing audio alike. A gap in the levels (DTX, no
/// packets) counts as silence.
///
/// The window slides in 20 steps (100 ms for the default 2 s): each level's energy goes to the
/// step its time falls in, and a step leaves the window as a whole, so the average covers the
/// last 1.9 to 2 s. The whole state is inline (under 160 bytes, no heap): a level list per
/// participant grew to 8 KiB (512 entries between compactions) and put two more cold cache lines
/// on every received packet.
public struct TalkDetector: Sendable {
    public let configuration: TalkDetectorConfiguration
    public private(set) var isSpeaking = false
    /// One energy per step: the type fixes how many steps a window has.
    private typealias StepEnergies = InlineArray<20, Float>
    /// Steps per window.
    public static var steps: Int { StepEnergies.count }
    /// Nanoseconds per step (`window / steps`, at least 1).
    private let stepNanoseconds: Int64
    /// The newest step that holds energy or was cleared for it (nil before the first level).
    private var newestStep: Int64?
    /// Energy (power × seconds) of each step in the window, at `step % steps`.
    private var energies = StepEnergies(repeating: 0)
    /// The window energies at which the average level reaches the start and stop levels (-∞ for a
    /// level of 127 or more, which any window meets): each packet compares energies, no logarithm.
    private let startEnergy: Double
    private let stopEnergy: Double

    /// Linear power of each RFC 6464 level (127, silence, is zero power).
    private static let powerOfLevel: [Double] = (0...127).map { $0 == 127 ? 0 : pow(10, -Double($0) / 10) }

    public init(configuration: TalkDetectorConfiguration = TalkDetectorConfiguration()) {
        self.configuration = configuration
        let window = configuration.window.components
        let nanoseconds = window.seconds * 1_000_000_000 + window.attoseconds / 1_000_000_000
        stepNanoseconds = max(1, nanoseconds / Int64(Self.steps))
        let seconds = Self.seconds(of: configuration.window)
        // The average level is at or below L < 127 exactly when the mean power is at least 10^(-L/10)
        // (and so above zero); every window's level is at or below 127.
        func energy(atLevel level: Double) -> Double { level >= 127 ? -.infinity : pow(10, -level / 10) * seconds }
        startEnergy = energy(atLevel: configuration.startLevel)
        stopEnergy = energy(atLevel: configuration.stopLevel)
    }

    /// A packet's usual duration, whose length in seconds needs no conversion.
    private static let packetDuration = Duration.milliseconds(20)

    /// Adds the level of a packet covering `duration` that arrived at `time`; returns an event on a transition.
    public mutating func add(level: UInt8, at time: MonotonicTime, duration: Duration = .milliseconds(20)) -> TalkEvent? {
        let seconds = duration == Self.packetDuration ? 0.020 : duration.seconds
        let energy = Self.powerOfLevel[Int(min(level, 127))] * seconds
        let step = self.step(of: time)
        advance(to: step)
        // A level older than the window (a late packet) adds nothing; one inside it counts in its own step.
        if let newestStep, newestStep - step < Int64(Self.steps) {
            energies[slot(of: step)] += Float(energy)
        }
        return evaluate(now: time)
    }

    /// Adds a frame of decoded PCM (its RMS level in -dBov).
    public mutating func add(pcm: [Int16], at time: MonotonicTime, sampleRate: Int = 48_000) -> TalkEvent? {
        let duration = Duration.nanoseconds(Int64(pcm.count) * 1_000_000_000 / Int64(max(1, sampleRate)))
        return add(level: audioLevel(pcm: pcm), at: time, duration: duration)
    }

    /// Re-evaluates at `now` without a new level (packets stopped: the window fills with silence).
    public mutating func evaluate(now: MonotonicTime) -> TalkEvent? {
        advance(to: step(of: now))
        let energy = windowEnergy()
        if !isSpeaking {
            if Self.reaches(energy, startEnergy) {  // the average level is at or below the start level
                isSpeaking = true
                return .started(at: now)
            }
        } else if !Self.reaches(energy, stopEnergy) {  // the average level is above the stop level
            isSpeaking = false
            return .stopped(at: now)
        }
        return nil
    }

    /// Whether a window of `energy` is at or below the level whose energy is `threshold`.
    private static func reaches(_ energy: Double, _ threshold: Double) -> Bool { energy >= threshold }

    /// The averaging window in seconds, at least 1 ms.
    private static func seconds(of window: Duration) -> Double { max(window.seconds, 1e-3) }

    private func windowEnergy() -> Double {
        var energy = 0.0
        for index in 0..<Self.steps { energy += Double(energies[index]) }
        return energy
    }

    private func step(of time: MonotonicTime) -> Int64 {
        let (quotient, remainder) = time.nanoseconds.quotientAndRemainder(dividingBy: stepNanoseconds)
        return remainder < 0 ? quotient - 1 : quotient  // floor, for times before the clock's zero too
    }

    private func slot(of step: Int64) -> Int {
        let slot = Int(step % Int64(Self.steps))
        return slot < 0 ? slot + Self.steps : slot
    }

    /// Moves the window's front to `step`: the steps it passes start empty (what was in their
    /// slots has left the window).
    private mutating func advance(to step: Int64) {
        guard let newest = newestStep else {
            newestStep = step
            return
        }
        guard step > newest else { return }
        if step - newest >= Int64(Self.steps) {
            for index in 0..<Self.steps { energies[index] = 0 }
        } else {
            var cleared = newest + 1
            while cleared <= step {
                energies[slot(of: cleared)] = 0
                cleared += 1
            }
        }
        newestStep = step
    }

    /// The current window average in -dBov (127 when empty).
    public var averageLevel: Double { windowLevel() }

    /// Power average over the window (levels converted to power, time-weighted; time without
    /// levels counts as silence), back in -dBov, at most 127.
    private func windowLevel() -> Double {
        let mean = windowEnergy() / Self.seconds(of: configuration.window)
        guard mean > 0 else { return 127 }
        return min(127, -10 * log10(mean))
    }
}
