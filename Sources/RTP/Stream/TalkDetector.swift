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
public struct TalkDetector: Sendable {
    public let configuration: TalkDetectorConfiguration
    public private(set) var isSpeaking = false
    /// Levels inside the window, each with its power contribution (power × seconds) precomputed.
    private var levels: [(time: MonotonicTime, energy: Double)] = []
    private var head = 0
    /// Sum of `energy` over `levels[head...]`: kept up to date on add and eviction, so a packet
    /// costs O(1) however long the window (it used to re-sum `pow` over the whole window).
    private var windowEnergy = 0.0
    private var evictionsSinceResum = 0

    /// Linear power of each RFC 6464 level (127, silence, is zero power).
    private static let powerOfLevel: [Double] = (0...127).map { $0 == 127 ? 0 : pow(10, -Double($0) / 10) }

    public init(configuration: TalkDetectorConfiguration = TalkDetectorConfiguration()) {
        self.configuration = configuration
    }

    /// Adds the level of a packet covering `duration` that arrived at `time`; returns an event on a transition.
    public mutating func add(level: UInt8, at time: MonotonicTime, duration: Duration = .milliseconds(20)) -> TalkEvent? {
        let energy = Self.powerOfLevel[Int(min(level, 127))] * duration.seconds
        levels.append((time, energy))
        windowEnergy += energy
        return evaluate(now: time)
    }

    /// Adds a frame of decoded PCM (its RMS level in -dBov).
    public mutating func add(pcm: [Int16], at time: MonotonicTime, sampleRate: Int = 48_000) -> TalkEvent? {
        let duration = Duration.nanoseconds(Int64(pcm.count) * 1_000_000_000 / Int64(max(1, sampleRate)))
        return add(level: audioLevel(pcm: pcm), at: time, duration: duration)
    }

    /// Re-evaluates at `now` without a new level (packets stopped: the window fills with silence).
    public mutating func evaluate(now: MonotonicTime) -> TalkEvent? {
        let windowStart = now - configuration.window
        while head < levels.count, levels[head].time <= windowStart {
            windowEnergy -= levels[head].energy
            head += 1
            evictionsSinceResum += 1
        }
        if head > 256 { levels.removeFirst(head); head = 0 }
        if head == levels.count {
            windowEnergy = 0
            evictionsSinceResum = 0
        } else if evictionsSinceResum >= 4096 {
            // Re-sum now and then so floating-point error from subtraction cannot accumulate.
            windowEnergy = levels[head...].reduce(0) { $0 + $1.energy }
            evictionsSinceResum = 0
        }
        let average = windowLevel()
        if !isSpeaking {
            if average <= configuration.startLevel {
                isSpeaking = true
                return .started(at: now)
            }
        } else if average > configuration.stopLevel {
            isSpeaking = false
            return .stopped(at: now)
        }
        return nil
    }

    /// Adds this detector's level history (what `add` and `evaluate` touch).
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        guard levels.capacity > 0 else { return }
        // The array's header, the oldest level in the window (evicted first) and where the next is appended.
        hints.add(levels, bytes: 0)
        levels.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            let stride = MemoryLayout<(time: MonotonicTime, energy: Double)>.stride
            hints.add(address: base + head * stride, bytes: stride)
            hints.add(address: base + levels.count * stride, bytes: stride)
        }
    }

    /// The current window average in -dBov (127 when empty).
    public var averageLevel: Double { windowLevel() }

    /// Power average over the window (levels converted to power, time-weighted; time without
    /// levels counts as silence), back in -dBov, at most 127.
    private func windowLevel() -> Double {
        let mean = max(0, windowEnergy) / max(configuration.window.seconds, 1e-3)
        guard mean > 0 else { return 127 }
        return min(127, -10 * log10(mean))
    }
}
