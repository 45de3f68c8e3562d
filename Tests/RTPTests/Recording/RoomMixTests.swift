import Foundation
import RTP
import Testing
import Wire

/// A scripted room: participants with their own tone, presence interval and SSRC, on a virtual clock.
private struct MixScenario {
    struct Participant {
        var id: String
        var frequency: Double
        var from: Double
        var to: Double
        var ssrc: UInt32
        var amplitude = 0.25
    }

    struct Event {
        var participant: Int
        var seq: SequenceNumber
        var ts: RTPTimestamp
        var payload: [UInt8]
        var arrival: MonotonicTime
    }

    let origin = MonotonicTime(nanoseconds: 5_000_000_000)
    var participants: [Participant]
    var events: [Event] = []
    var lost = 0

    init(_ participants: [Participant], loss: Double = 0.03, seed: UInt64 = 21) {
        self.participants = participants
        var rng = MediaSplitMix64(seed: seed)
        for (index, p) in participants.enumerated() {
            let encoder = try! OpusEncoder(channels: 1, application: .audio)
            var tone = ToneGenerator(frequency: p.frequency, amplitude: p.amplitude)
            var seq = UInt16(truncatingIfNeeded: rng.next())
            var ts = UInt32(truncatingIfNeeded: rng.next())
            let frames = Int(((p.to - p.from) * 50).rounded())
            for k in 0..<frames {
                let payload = try! encoder.encode(tone.next(frames: 960))
                let sent = p.from + Double(k) * 0.02
                let jitter = Double(rng.next() % 15_000) / 1e6
                // Keep the first and last packets so presence is exact; lose others at random.
                if k > 0 && k < frames - 1 && Double(rng.next() % 10_000) / 10_000 < loss {
                    lost += 1
                } else {
                    let arrival = origin + .nanoseconds(Int64((sent + jitter) * 1e9))
                    events.append(Event(participant: index, seq: SequenceNumber(seq), ts: RTPTimestamp(ts), payload: payload, arrival: arrival))
                }
                seq &+= 1
                ts &+= 960
            }
        }
        events.sort { $0.arrival < $1.arrival }
    }

    /// Feeds everything to `mix`, ticking every 20 ms and removing participants 0.5 s after they leave.
    func run(_ mix: RoomMixRecorder) throws {
        var next = 0
        var removed = Set<Int>()
        let end = (participants.map(\.to).max() ?? 0) + 1
        var now = origin
        while now < origin + .nanoseconds(Int64(end * 1e9)) {
            now = now + .milliseconds(20)
            while next < events.count, events[next].arrival <= now {
                let e = events[next]
                try mix.receive(participant: participants[e.participant].id, ssrc: SSRC(participants[e.participant].ssrc),
                                sequenceNumber: e.seq, timestamp: e.ts, payload: e.payload, arrival: e.arrival)
                next += 1
            }
            for (i, p) in participants.enumerated() where !removed.contains(i) && (now - origin).seconds > p.to + 0.5 {
                mix.removeParticipant(p.id)
                removed.insert(i)
            }
            try mix.tick(now: now)
        }
        try mix.finish()
    }
}

/// Amplitude (fraction of full scale) of the `frequency` component of `samples[from..<to]` (seconds), by Goertzel.
private func toneAmplitude(_ samples: [Int16], _ frequency: Double, from: Double, to: Double) -> Double {
    let start = Int(from * 48_000), end = min(samples.count, Int(to * 48_000))
    guard end > start else { return 0 }
    let w = 2 * Double.pi * frequency / 48_000
    let coefficient = 2 * cos(w)
    var s1 = 0.0, s2 = 0.0
    for i in start..<end {
        let s0 = Double(samples[i]) / 32768 + coefficient * s1 - s2
        s2 = s1
        s1 = s0
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return 2 * power.squareRoot() / Double(end - start)
}

private let roomOfThree = [
    MixScenario.Participant(id: "alice", frequency: 440, from: 0, to: 4, ssrc: 0xA11CE),
    MixScenario.Participant(id: "bob", frequency: 660, from: 1, to: 5, ssrc: 0xB0B),
    MixScenario.Participant(id: "carol", frequency: 1000, from: 3, to: 6, ssrc: 0xCA201),
]

/// Checks that each tone is in the mix exactly while its participant was present.
private func checkPresence(_ samples: [Int16], tolerance: Double = 0.2, sourceLocation: SourceLocation = #_sourceLocation) {
    // (window, who is present) for alice 440, bob 660, carol 1000.
    let windows: [(Double, Double, [Bool])] = [
        (0.2, 0.9, [true, false, false]), (1.2, 2.9, [true, true, false]), (3.2, 3.9, [true, true, true]),
        (4.2, 4.9, [false, true, true]), (5.2, 5.9, [false, false, true]),
    ]
    for (from, to, present) in windows {
        for (index, p) in roomOfThree.enumerated() {
            let amplitude = toneAmplitude(samples, p.frequency, from: from, to: to)
            if present[index] {
                #expect(abs(amplitude - p.amplitude) < p.amplitude * tolerance,
                        "\(p.id) \(p.frequency) Hz in \(from)–\(to) s: amplitude \(amplitude)", sourceLocation: sourceLocation)
            } else {
                #expect(amplitude < 0.01, "\(p.id) \(p.frequency) Hz absent in \(from)–\(to) s: amplitude \(amplitude)",
                        sourceLocation: sourceLocation)
            }
        }
    }
    // Single-speaker stretches: the dominant frequency is that speaker's tone.
    for (from, to, expected) in [(0.2, 0.9, 440.0), (5.2, 5.9, 1000.0)] {
        let window = Array(samples[Int(from * 48_000)..<Int(to * 48_000)])
        let frequency = AudioAnalysis.dominantFrequency(samples: window, sampleRate: 48_000) ?? 0
        #expect(abs(frequency - expected) < 3, "dominant \(frequency) Hz in \(from)–\(to) s", sourceLocation: sourceLocation)
    }
    // Onsets at the right time (±40 ms): bob at 1.0 s, carol at 3.0 s.
    for (index, onset) in [(1, 1.0), (2, 3.0)] {
        let p = roomOfThree[index]
        #expect(toneAmplitude(samples, p.frequency, from: onset - 0.16, to: onset - 0.04) < 0.01,
                "\(p.id) before \(onset) s", sourceLocation: sourceLocation)
        #expect(toneAmplitude(samples, p.frequency, from: onset + 0.04, to: onset + 0.16) > p.amplitude * 0.5,
                "\(p.id) after \(onset) s", sourceLocation: sourceLocation)
    }
}

@Suite("Room mix")
struct RoomMixTests {
    @Test("WAV mix: each participant's tone at the right times, summed on the aligned timeline, losses concealed")
    func wavMix() throws {
        let scenario = MixScenario(roomOfThree)
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("room.wav")
        let mix = try RoomMixRecorder(path: path, format: .wav, origin: scenario.origin)
        try scenario.run(mix)
        let wav = try WAVReader.read(path: path)
        #expect(wav.sampleRate == 48_000 && wav.channels == 1)
        #expect(abs(wav.durationSeconds - 6.0) < 0.05, "mix lasts \(wav.durationSeconds) s")
        checkPresence(wav.samples)
        let s = mix.statistics
        #expect(s.participants == 3)
        #expect(s.packetsMixed == scenario.events.count, "\(s)")
        #expect(s.concealedFrames == scenario.lost, "\(s) lost \(scenario.lost)")
        #expect(s.lateSamples == 0 && s.clippedSamples == 0 && s.invalidPackets == 0)
        #expect(mix.participantIDs.isEmpty)
        #expect(throws: RoomMixError.finished) { try mix.tick(now: scenario.origin + .seconds(60)) }
    }

    @Test("Ogg Opus mix: opusinfo accepts it and the decoded mix has each tone at the right times")
    func oggMix() throws {
        let scenario = MixScenario(roomOfThree, seed: 22)
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("room.opus")
        let mix = try RoomMixRecorder(path: path, format: .oggOpus(bitrate: 64_000), origin: scenario.origin)
        try scenario.run(mix)
        let file = try OggOpusReader.read(try readFileBytes(path))
        let decoder = try OpusDecoder(channels: 1)
        var pcm: [Int16] = []
        for packet in file.packets { pcm += try decoder.decode(packet.bytes) }
        let last = try #require(file.packets.last)
        let playable = Int(last.granulePosition) - Int(file.head.preSkip)
        // The timeline places each track within half a frame of its arrival, so the end may be one frame late.
        #expect(playable >= 6 * 48_000 && playable <= 6 * 48_000 + 960, "\(playable) samples")
        let samples = Array(pcm[Int(file.head.preSkip)..<(Int(file.head.preSkip) + playable)])
        checkPresence(samples, tolerance: 0.3)
        if let info = try MediaTools.run("opusinfo", [path]) {
            #expect(info.status == 0, "opusinfo: \(info.output)")
            #expect(!info.output.contains("WARNING") && !info.output.contains("ERROR"), "opusinfo: \(info.output)")
        }
    }

    @Test("loud participants clip instead of wrapping; bad packets are counted, not mixed")
    func clipping() throws {
        let loud = (0..<4).map { i in
            MixScenario.Participant(id: "p\(i)", frequency: 300 + 170 * Double(i), from: 0, to: 2, ssrc: UInt32(100 + i), amplitude: 0.45)
        }
        let scenario = MixScenario(loud, loss: 0)
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("loud.wav")
        let mix = try RoomMixRecorder(path: path, format: .wav, origin: scenario.origin)
        try mix.receive(participant: "p0", ssrc: 1, sequenceNumber: 1, timestamp: 1, payload: [], arrival: scenario.origin)
        try mix.receive(participant: "p0", ssrc: 1, sequenceNumber: 2, timestamp: 961, payload: [0xFF], arrival: scenario.origin)
        try scenario.run(mix)
        let wav = try WAVReader.read(path: path)
        #expect(mix.statistics.invalidPackets == 2)
        #expect(mix.statistics.clippedSamples > 1000)
        #expect(wav.samples.max() == Int16.max && wav.samples.min() == Int16.min)
        var largestStep = 0
        for i in 1..<wav.samples.count { largestStep = max(largestStep, abs(Int(wav.samples[i]) - Int(wav.samples[i - 1]))) }
        #expect(largestStep < 20_000, "a step of \(largestStep): the sum wrapped around")
    }
}
