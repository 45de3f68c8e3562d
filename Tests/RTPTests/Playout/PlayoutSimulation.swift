// Virtual-clock simulation harness for PlayoutBuffer tests: seeded traces and a pull loop.
import Foundation
import Testing
import Wire
@testable import RTP

/// One packet of a scripted trace.
struct TracePacket {
    var ssrc: UInt32
    var sequence: UInt16
    var timestamp: UInt32
    var payload: [UInt8]
    /// Arrival time in nanoseconds on the virtual clock.
    var arrival: Int64
    /// Index in the sender's packet sequence (for bookkeeping).
    var index: Int
}

/// What a simulated run produced.
struct PlayoutRun {
    var output: [Int16] = []
    var delays: [Double] = []
    var targets: [Double] = []
    var buffered: [Double] = []
    var stats = PlayoutStatistics()
    var tickCountsOK = true
    /// Pull index at which playout started (first non-silent delay sample).
    var firstPlayingPull = 0

    /// Largest step between consecutive samples of channel 0 from `start` on.
    func maxStep(from start: Int = 0, channels: Int = 1) -> Int {
        var best = 0
        var index = start * channels + channels
        while index < output.count {
            best = max(best, abs(Int(output[index]) - Int(output[index - channels])))
            index += channels
        }
        return best
    }

    /// Statistics over pulls `range` of per-pull values.
    static func mean(_ values: ArraySlice<Double>) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
}

enum PlayoutTraces {
    static let frameNanoseconds: Int64 = 20_000_000

    /// 10 s of a 440 Hz tone (an integer number of cycles, so it loops seamlessly), 20 ms packets.
    static let tone: [[UInt8]] = {
        let encoder = try! RTP.OpusEncoder(channels: 1, application: .audio, frameDuration: .ms20)
        try! encoder.setBitrate(48_000)
        var generator = ToneGenerator(frequency: 440, amplitude: 0.5)
        return (0..<500).map { _ in try! encoder.encode(generator.next(frames: 960)) }
    }()

    /// 10 s of a speech-like signal, voice mode with in-band FEC (expected loss 10 %).
    static let voice: [[UInt8]] = {
        let encoder = try! RTP.OpusEncoder(channels: 1, application: .voip, frameDuration: .ms20)
        try! encoder.setBitrate(32_000)
        try! encoder.setInbandFEC(true)
        try! encoder.setExpectedPacketLoss(percent: 10)
        try! encoder.setSignalVoice(true)
        let pcm = OpusCodecTests.voiceLike(frames: 500 * 960)
        return (0..<500).map { try! encoder.encode(Array(pcm[($0 * 960)..<($0 * 960 + 960)])) }
    }()

    /// The largest sample step of a loss-free straight decode of `payloads`.
    static func referenceMaxStep(_ payloads: [[UInt8]]) -> Int {
        let decoder = try! RTP.OpusDecoder()
        var previous: Int16 = 0
        var best = 0
        for (n, payload) in (payloads + payloads.prefix(50)).enumerated() {
            for sample in try! decoder.decode(payload) {
                if n > 0 { best = max(best, abs(Int(sample) - Int(previous))) }
                previous = sample
            }
        }
        return best
    }

    /// A trace of `count` packets: sender clock `rate` (1.001 = 0.1 % fast), base network delay
    /// 40 ms plus `jitter(index)` milliseconds; packets in `lost` are not delivered.
    static func make(count: Int, payloads: [[UInt8]], ssrc: UInt32 = 0xCAFE, firstSequence: UInt16 = 65_000,
                     firstTimestamp: UInt32 = 4_294_000_000, rate: Double = 1, startNanoseconds: Int64 = 0,
                     lost: Set<Int> = [], jitter: (Int) -> Double = { _ in 0 }) -> [TracePacket] {
        (0..<count).compactMap { index in
            guard !lost.contains(index) else { return nil }
            let send = Double(index) * 20e6 / rate
            let arrival = startNanoseconds + Int64(send) + 40_000_000 + Int64(jitter(index) * 1e6)
            return TracePacket(ssrc: ssrc, sequence: firstSequence &+ UInt16(truncatingIfNeeded: index),
                               timestamp: firstTimestamp &+ UInt32(truncatingIfNeeded: index * 960),
                               payload: payloads[index % payloads.count], arrival: arrival, index: index)
        }
    }

    /// Runs `trace` through a buffer, pulling every tick for `seconds` (skipping pulls in `pause`).
    static func run(_ trace: [TracePacket], seconds: Double, configuration: PlayoutConfiguration = .init(),
                    pause: Range<Int64>? = nil) throws -> PlayoutRun {
        let buffer = try PlayoutBuffer(configuration: configuration)
        let sorted = trace.sorted { $0.arrival < $1.arrival }
        let tickNanoseconds = ArrivalDelayEstimator.nanoseconds(samples: Int64(configuration.tickSamples))
        let pulls = Int(seconds * 1e9) / Int(tickNanoseconds)
        var run = PlayoutRun()
        run.output.reserveCapacity(pulls * configuration.tickSamples * configuration.channels)
        var next = 0
        var started = false
        for pull in 0..<pulls {
            let now = 3_000_000 + Int64(pull) * tickNanoseconds
            while next < sorted.count, sorted[next].arrival <= now {
                let packet = sorted[next]
                buffer.insert(ssrc: SSRC(packet.ssrc), sequenceNumber: SequenceNumber(packet.sequence),
                              timestamp: RTPTimestamp(packet.timestamp), payload: packet.payload,
                              arrival: MonotonicTime(nanoseconds: packet.arrival))
                next += 1
            }
            if let pause, pause.contains(now) { continue }
            let pcm = buffer.pull(now: MonotonicTime(nanoseconds: now))
            if pcm.count != configuration.tickSamples * configuration.channels { run.tickCountsOK = false }
            run.output += pcm
            let stats = buffer.stats
            if !started && stats.jitterBufferEmittedCount > 0 {
                started = true
                run.firstPlayingPull = run.delays.count
            }
            run.delays.append(stats.currentDelayMs)
            run.targets.append(stats.targetDelayMs)
            run.buffered.append(stats.bufferedMs)
        }
        run.stats = buffer.stats
        return run
    }

    /// Uniform jitter in 0...maxMilliseconds from a seeded generator.
    static func uniformJitter(max maxMilliseconds: Double, seed: UInt64) -> (Int) -> Double {
        var rng = MediaSplitMix64(seed: seed)
        let values = (0..<100_000).map { _ in Double.random(in: 0...maxMilliseconds, using: &rng) }
        return { values[$0 % values.count] }
    }

    /// The 95th percentile of `values`.
    static func percentile95(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.95))]
    }
}
