import Foundation
import Testing
import Wire
@testable import RTP

@Suite("Adaptive playout buffer")
struct PlayoutBufferTests {
    static let toneStep = PlayoutTraces.referenceMaxStep(PlayoutTraces.tone)
    static let voiceStep = PlayoutTraces.referenceMaxStep(PlayoutTraces.voice)

    /// Exactly one tick per pull, no clicks (no step far above the clean decode's), bounded delay.
    func checkCommon(_ run: PlayoutRun, configuration: PlayoutConfiguration = .init(), referenceStep: Int,
                     maxDelayMs: Double, pulls: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.tickCountsOK, "a pull returned the wrong sample count", sourceLocation: sourceLocation)
        #expect(run.output.count == run.delays.count * configuration.tickSamples * configuration.channels,
                sourceLocation: sourceLocation)
        #expect(run.stats.totalSamplesPlayed == Int64(run.delays.count * configuration.tickSamples),
                sourceLocation: sourceLocation)
        let step = run.maxStep(from: 0, channels: configuration.channels)
        #expect(step <= referenceStep * 3 / 2 + 1500, "largest sample step \(step) vs clean \(referenceStep)",
                sourceLocation: sourceLocation)
        let playing = run.delays[run.firstPlayingPull...]
        #expect((playing.max() ?? 0) <= maxDelayMs, "delay peaked at \(playing.max() ?? 0) ms",
                sourceLocation: sourceLocation)
        #expect(run.buffered.max() ?? 0 <= 2000 + 40, sourceLocation: sourceLocation)
    }

    @Test("clean network: low target, no concealment, the tone survives", arguments: [480, 960])
    func clean(tick: Int) throws {
        let configuration = PlayoutConfiguration(tickSamples: tick)
        let trace = PlayoutTraces.make(count: 1500, payloads: PlayoutTraces.tone,
                                       jitter: PlayoutTraces.uniformJitter(max: 2, seed: 1))
        let run = try PlayoutTraces.run(trace, seconds: 30, configuration: configuration)
        checkCommon(run, configuration: configuration, referenceStep: Self.toneStep, maxDelayMs: 120)
        #expect(run.stats.concealedSamples == 0)
        #expect(run.stats.latePackets == 0)
        #expect(run.stats.fecRecoveredSamples == 0)
        #expect(run.targets.last! <= 60, "target \(run.targets.last!) ms")
        let lastTen = run.delays.suffix(run.delays.count / 3)
        #expect(lastTen.max()! <= 80)
        #expect(run.stats.removedSamplesForAcceleration > 0, "the 80 ms start target was shrunk")
        let tail = Array(run.output.suffix(48_000 * 5))
        let frequency = try #require(AudioAnalysis.dominantFrequency(samples: tail, sampleRate: 48_000))
        #expect(abs(frequency - 440) < 3, "dominant \(frequency) Hz")
        #expect(AudioAnalysis.dBov(samples: tail) > -12)
        print("clean (tick \(tick / 48) ms): target \(run.targets.last!) ms, added delay (playhead behind fastest)"
              + " mean \(PlayoutRun.mean(lastTen)) ms, arrival-to-playout mean \(run.stats.averageJitterBufferDelayMs) ms"
              + " (includes 0–2 ms jitter), removed \(run.stats.removedSamplesForAcceleration) samples")
    }

    @Test("stereo output has two interleaved channels per tick")
    func stereo() throws {
        let encoder = try RTP.OpusEncoder(channels: 2, application: .audio)
        var generator = ToneGenerator(frequency: 440, amplitude: 0.5, channels: 2)
        let payloads = try (0..<100).map { _ in try encoder.encode(generator.next(frames: 960)) }
        let configuration = PlayoutConfiguration(tickSamples: 480, channels: 2)
        let run = try PlayoutTraces.run(PlayoutTraces.make(count: 100, payloads: payloads), seconds: 1.95,
                                        configuration: configuration)
        #expect(run.tickCountsOK)
        #expect(run.output.count == run.delays.count * 960)
        #expect(run.stats.concealedSamples == 0)
        let left = stride(from: 48_000, to: 48_000 * 3 + 48_000 / 2, by: 2).map { run.output[$0] }
        let frequency = try #require(AudioAnalysis.dominantFrequency(samples: left, sampleRate: 48_000))
        #expect(abs(frequency - 440) < 3)
    }

    @Test("5 % random loss: concealment exactly covers the lost packets, FEC used when the next one is there")
    func randomLoss() throws {
        var rng = MediaSplitMix64(seed: 5)
        let count = 1500
        let lost = Set((10..<count - 10).filter { _ in Double.random(in: 0..<1, using: &rng) < 0.05 })
        // The delay settles at 20–40 ms, so the packet after a loss is sometimes there in time.
        let trace = PlayoutTraces.make(count: count, payloads: PlayoutTraces.voice, lost: lost,
                                       jitter: PlayoutTraces.uniformJitter(max: 2, seed: 2))
        let run = try PlayoutTraces.run(trace, seconds: 29.9)
        checkCommon(run, referenceStep: Self.voiceStep, maxDelayMs: 120)
        let stats = run.stats
        #expect(stats.latePackets == 0)
        #expect(stats.concealedSamples + stats.fecRecoveredSamples == Int64(lost.count * 960),
                "concealed \(stats.concealedSamples) + FEC \(stats.fecRecoveredSamples) vs lost \(lost.count)")
        #expect(stats.fecRecoveredSamples > 0)
        #expect(stats.concealmentEvents <= Int64(lost.count))
        print("5 % loss: \(lost.count) lost, FEC \(stats.fecRecoveredSamples / 960) frames, PLC \(stats.concealedSamples / 960) frames")
    }

    @Test("FEC is found in voice packets only when the encoder codes it")
    func fecDetection() throws {
        let voice = try PlayoutTraces.voice.suffix(100).map { ($0, try OpusPacketInfo.parse($0)) }
        #expect(voice.filter { PlayoutBuffer.hasFEC($0.0, info: $0.1) }.count > 50)
        let tone = try PlayoutTraces.tone.prefix(100).map { ($0, try OpusPacketInfo.parse($0)) }
        #expect(tone.allSatisfy { !PlayoutBuffer.hasFEC($0.0, info: $0.1) })
    }

    @Test("20 % bursty (Gilbert–Elliott) loss")
    func burstyLoss() throws {
        var rng = MediaSplitMix64(seed: 20)
        var bad = false
        var lost = Set<Int>()
        let count = 1500
        for index in 10..<count - 10 {
            bad = bad ? Double.random(in: 0..<1, using: &rng) >= 0.3 : Double.random(in: 0..<1, using: &rng) < 0.07
            if bad { lost.insert(index) }
        }
        let rate = Double(lost.count) / Double(count)
        #expect(rate > 0.12 && rate < 0.3, "loss rate \(rate)")
        let trace = PlayoutTraces.make(count: count, payloads: PlayoutTraces.voice, lost: lost,
                                       jitter: PlayoutTraces.uniformJitter(max: 2, seed: 3))
        let run = try PlayoutTraces.run(trace, seconds: 29.9)
        checkCommon(run, referenceStep: Self.voiceStep, maxDelayMs: 120)
        let stats = run.stats
        #expect(stats.latePackets == 0)
        #expect(stats.concealedSamples + stats.fecRecoveredSamples == Int64(lost.count * 960))
        #expect(stats.concealmentEvents <= Int64(lost.count))
        print("bursty loss \(Int(rate * 100)) %: FEC \(stats.fecRecoveredSamples / 960), PLC \(stats.concealedSamples / 960) frames in \(stats.concealmentEvents) events")
    }

    @Test("jitter with reordering: target follows the jitter p95, then decays", arguments: [30.0, 100.0])
    func jitter(maxJitter: Double) throws {
        let jitterPackets = 3000 // 60 s of jitter, then 90 s clean
        let count = jitterPackets + 4500
        let jitter = PlayoutTraces.uniformJitter(max: maxJitter, seed: UInt64(maxJitter))
        let trace = PlayoutTraces.make(count: count, payloads: PlayoutTraces.tone) { index in
            index < jitterPackets ? jitter(index) : 0
        }
        let reordered = zip(trace, trace.dropFirst()).filter { $0.arrival > $1.arrival }.count
        #expect(reordered > 0, "the trace reorders packets")
        let run = try PlayoutTraces.run(trace, seconds: Double(count) * 0.02)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: maxJitter + 100)

        let injectedP95 = PlayoutTraces.percentile95((0..<jitterPackets).map(jitter))
        let endOfJitter = jitterPackets - 50
        let target = run.targets[endOfJitter]
        #expect(target >= injectedP95 - 5 && target <= injectedP95 + 45,
                "target \(target) ms vs injected p95 \(injectedP95) ms")
        // Once converged, late packets (concealment) are rare.
        let late = run.stats.latePackets
        #expect(Double(late) < Double(jitterPackets) * 0.03, "\(late) late packets")
        #expect(run.targets.last! <= 60, "target after jitter stopped: \(run.targets.last!) ms")
        #expect(run.delays.suffix(500).max()! <= 80)
        let jitterDelay = PlayoutRun.mean(run.delays[(endOfJitter - 1000)..<endOfJitter])
        print("jitter \(Int(maxJitter)) ms: injected p95 \(injectedP95) ms, target \(target) ms, added delay mean "
              + "\(jitterDelay) ms, late \(late), reordered \(reordered), concealed \(run.stats.concealedSamples); after "
              + "90 s clean: target \(run.targets.last!) ms, delay \(run.delays.last!) ms")
    }

    @Test("duplicates are dropped without changing the output")
    func duplicates() throws {
        var rng = MediaSplitMix64(seed: 7)
        let base = PlayoutTraces.make(count: 550, payloads: PlayoutTraces.tone,
                                      jitter: PlayoutTraces.uniformJitter(max: 10, seed: 8))
        var doubled = base
        for packet in base.prefix(450) where Double.random(in: 0..<1, using: &rng) < 0.2 {
            var copy = packet
            copy.arrival += Int64.random(in: 1_000_000...60_000_000, using: &rng)
            doubled.append(copy)
        }
        let expectedDuplicates = doubled.count - base.count
        let clean = try PlayoutTraces.run(base, seconds: 10)
        let run = try PlayoutTraces.run(doubled, seconds: 10)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 150)
        #expect(run.stats.duplicatePackets == Int64(expectedDuplicates))
        #expect(run.stats.discardedPackets == Int64(expectedDuplicates))
        #expect(run.output == clean.output)
    }

    @Test("DTX talkspurts: gaps play as silence, no concealment, no delay growth")
    func dtx() throws {
        let encoder = try RTP.OpusEncoder(channels: 1, application: .voip)
        try encoder.setDTX(true)
        var generator = ToneGenerator(frequency: 440, amplitude: 0.5)
        var packets: [TracePacket] = []
        var sequence: UInt16 = 100
        var gaps = 0
        var lastSentIndex = -1
        for index in 0..<1500 {
            let talking = (index % 150) < 50 // 1 s talk, 2 s silence
            let pcm = talking ? generator.next(frames: 960) : [Int16](repeating: 0, count: 960)
            let payload = try encoder.encode(pcm)
            guard payload.count > 2 else { continue } // DTX frames are not sent
            if lastSentIndex >= 0 && index - lastSentIndex > 1 { gaps += 1 }
            lastSentIndex = index
            packets.append(TracePacket(ssrc: 9, sequence: sequence, timestamp: UInt32(index * 960), payload: payload,
                                       arrival: Int64(index) * 20_000_000 + 40_000_000, index: index))
            sequence &+= 1
        }
        #expect(gaps > 10, "the encoder produced DTX gaps")
        let run = try PlayoutTraces.run(packets, seconds: 30)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 120)
        #expect(run.stats.concealedSamples == 0)
        #expect(run.stats.latePackets == 0)
        #expect(run.stats.silentSamples > 48_000 * 10)
        #expect(run.targets.max()! <= 80)
        #expect(run.targets.last! <= 60)
        // The middle of a silent stretch is silent.
        let quiet = Array(run.output[(48_000 * 39 / 2)..<(48_000 * 41 / 2)])
        #expect(AudioAnalysis.dBov(samples: quiet) < -50)
        let loud = Array(run.output[(48_000 * 15 + 9_600)..<(48_000 * 15 + 38_400)])
        #expect(AudioAnalysis.dBov(samples: loud) > -15)
    }

    @Test("sender clock off by ±0.1 % for 10 minutes: the buffer stays bounded", arguments: [1.001, 0.999])
    func clockDrift(rate: Double) throws {
        let count = 30_000
        let trace = PlayoutTraces.make(count: count, payloads: PlayoutTraces.tone, rate: rate,
                                       jitter: PlayoutTraces.uniformJitter(max: 2, seed: 11))
        let run = try PlayoutTraces.run(trace, seconds: Double(count) * 0.02 / rate - 1)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 120)
        let settled = run.delays[3000...]
        #expect(settled.max()! <= 80 && settled.min()! >= 10, "delay \(settled.min()!)…\(settled.max()!) ms")
        #expect(run.stats.concealedSamples == 0)
        #expect(run.stats.latePackets == 0)
        let drift = abs(rate - 1) * 600 * 48_000 // ≈ 28,800 samples over 10 minutes
        let adjusted = rate > 1 ? run.stats.removedSamplesForAcceleration : run.stats.insertedSamplesForDeceleration
        #expect(Double(adjusted) > drift * 0.7 && Double(adjusted) < drift * 1.3 + 48_000 * 0.1,
                "adjusted \(adjusted) samples for a drift of \(drift)")
        print("drift \(rate): removed \(run.stats.removedSamplesForAcceleration), inserted "
              + "\(run.stats.insertedSamplesForDeceleration), delay \(settled.min()!)…\(settled.max()!) ms")
    }

    @Test("SSRC change resets the stream and playback resumes")
    func ssrcChange() throws {
        let first = PlayoutTraces.make(count: 250, payloads: PlayoutTraces.tone, ssrc: 1)
        let second = PlayoutTraces.make(count: 250, payloads: PlayoutTraces.tone, ssrc: 2, firstSequence: 7,
                                        firstTimestamp: 123_456, startNanoseconds: 5_000_000_000)
        let run = try PlayoutTraces.run(first + second, seconds: 10)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 120)
        #expect(run.stats.ssrcChanges == 1)
        #expect(run.stats.latePackets == 0)
        #expect(run.stats.concealedSamples <= 960 * 2)
        let tail = Array(run.output.suffix(48_000 * 3))
        let frequency = try #require(AudioAnalysis.dominantFrequency(samples: tail, sampleRate: 48_000))
        #expect(abs(frequency - 440) < 3)
    }

    @Test("a timestamp jump rebases the stream without loss or silence")
    func timestampJump() throws {
        var trace = PlayoutTraces.make(count: 500, payloads: PlayoutTraces.tone,
                                       jitter: PlayoutTraces.uniformJitter(max: 5, seed: 12))
        for index in 250..<trace.count { trace[index].timestamp &+= 1_000_000_000 }
        let run = try PlayoutTraces.run(trace, seconds: 10)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 120)
        #expect(run.stats.timestampJumps == 1)
        #expect(run.stats.concealedSamples == 0)
        #expect(run.stats.latePackets == 0)
        #expect(run.stats.silentSamples < 48_000 / 5, "only the start-up prefetch is silent")
    }

    @Test("a 10 s network stall then a burst: late packets dropped, playback recovers")
    func stallThenBurst() throws {
        var trace = PlayoutTraces.make(count: 1500, payloads: PlayoutTraces.tone,
                                       jitter: PlayoutTraces.uniformJitter(max: 2, seed: 13))
        let release = trace[1000].arrival
        for index in 500..<1000 { trace[index].arrival = release }
        let run = try PlayoutTraces.run(trace, seconds: 30)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 1100)
        #expect(run.stats.latePackets > 400)
        #expect(run.stats.concealmentEvents >= 1)
        let recovered = run.delays.suffix(250)
        #expect(recovered.max()! <= 120, "delay after recovery \(recovered.max()!) ms")
        let tail = Array(run.output.suffix(48_000 * 3))
        #expect(AudioAnalysis.dBov(samples: tail) > -12)
    }

    @Test("a stalled reader: buffered audio is capped and flushed")
    func stalledReader() throws {
        let trace = PlayoutTraces.make(count: 1000, payloads: PlayoutTraces.tone)
        let run = try PlayoutTraces.run(trace, seconds: 20, pause: 5_000_000_000..<15_000_000_000)
        checkCommon(run, referenceStep: Self.toneStep, maxDelayMs: 2100)
        #expect(run.stats.bufferFlushes >= 1)
        #expect(run.stats.discardedPackets > 300)
        #expect(run.buffered.max()! <= 2040)
        #expect(run.delays.suffix(100).max()! <= 120)
    }
}
