import Foundation
import RTP
import Testing
import Wire

/// A simulated sender → network → reorder buffer → recorder run on a virtual clock.
struct RecordingSimulation {
    struct Sent {
        var ssrc: SSRC
        var seq: SequenceNumber
        var ts: RTPTimestamp
        var payload: [UInt8]
        var arrival: MonotonicTime
    }

    var packets: [Sent] = []
    var firstArrival = MonotonicTime.zero
    var lastArrival = MonotonicTime.zero

    /// 20 ms tone frames: one second encoded once (440 Hz repeats every second) and reused.
    static let toneFrames: [[UInt8]] = {
        let encoder = try! OpusEncoder()
        var tone = ToneGenerator(frequency: 440, amplitude: 0.4)
        var frames: [[UInt8]] = []
        for _ in 0..<50 { frames.append(try! encoder.encode(tone.next(frames: 960))) }
        // Second pass so every frame has encoder history; keep those.
        frames.removeAll()
        for _ in 0..<50 { frames.append(try! encoder.encode(tone.next(frames: 960))) }
        return frames
    }()

    /// `seconds` of 20 ms frames, sender clock off by `drift` (0.001 = fast), `loss` random loss,
    /// 2 s DTX gaps every 30 s, jitter 30–70 ms, an SSRC change at 40% and a timestamp jump at 70%.
    init(seconds: Double, drift: Double, loss: Double, seed: UInt64) {
        var rng = MediaSplitMix64(seed: seed)
        let frames = Int(seconds * 50)
        var ssrc = SSRC(0x1234_5678)
        var seq = SequenceNumber(UInt16.random(in: 0...UInt16.max, using: &rng))
        var ts = RTPTimestamp(UInt32.random(in: 0...UInt32.max, using: &rng))
        for k in 0..<frames {
            let sendTime = Double(k) * 0.020 / (1 + drift)
            if k == frames * 4 / 10 {
                ssrc = SSRC(0x9ABC_DEF0)
                seq = SequenceNumber(UInt16.random(in: 0...UInt16.max, using: &rng))
                ts = RTPTimestamp(UInt32.random(in: 0...UInt32.max, using: &rng))
            }
            if k == frames * 7 / 10 { ts = ts.advanced(by: 123_456_789) }
            defer { ts = ts.advanced(by: 960) }
            let inSecond = k % 1500
            if inSecond >= 1400 && k < frames - 10 { continue } // DTX: 2 s every 30 s, no packets
            defer { seq = seq.advanced(by: 1) }
            if k > 0 && k < frames - 1 && Double.random(in: 0..<1, using: &rng) < loss { continue }
            let jitter = 0.030 + Double.random(in: 0..<0.040, using: &rng)
            let arrival = MonotonicTime(nanoseconds: Int64((1.0 + sendTime + jitter) * 1e9))
            packets.append(Sent(ssrc: ssrc, seq: seq, ts: ts, payload: Self.toneFrames[k % 50], arrival: arrival))
        }
        packets.sort { $0.arrival < $1.arrival }
        firstArrival = packets.first!.arrival
        lastArrival = packets.last!.arrival
    }

    /// Wallclock presence: first arrival to last arrival plus one frame.
    var presenceSeconds: Double { (lastArrival - firstArrival).seconds + 0.020 }

    /// Runs the packets through a reorder buffer into `deliver`, ticking every 20 ms.
    func run(deliver: (Sent) throws -> Void, tick: (MonotonicTime) throws -> Void) rethrows {
        var reorder = ReorderBuffer<Sent>(maxWait: .milliseconds(60))
        var index = 0
        var now = firstArrival
        var currentSSRC = packets.first!.ssrc
        while index < packets.count {
            now = now + .milliseconds(20)
            while index < packets.count && packets[index].arrival <= now {
                let p = packets[index]
                if p.ssrc != currentSSRC {
                    for case .packet(_, let e) in reorder.flush() { try deliver(e) }
                    reorder.reset()
                    currentSSRC = p.ssrc
                }
                reorder.insert(p, sequenceNumber: p.seq, arrival: p.arrival)
                index += 1
            }
            for case .packet(_, let e) in reorder.drain(now: now) { try deliver(e) }
            try tick(now)
        }
        for case .packet(_, let e) in reorder.flush() { try deliver(e) }
    }
}

@Suite("Recording timeline and recorders")
struct RecordingTests {
    @Test("10 minutes with 5% loss, DTX, drift, SSRC change and a timestamp jump keep the file on the wallclock",
          arguments: [0.001, -0.001])
    func tenMinutes(drift: Double) throws {
        let sim = RecordingSimulation(seconds: 600, drift: drift, loss: 0.05, seed: drift > 0 ? 7 : 8)
        let output = OggMemoryOutput()
        let recorder = try OggOpusRecorder(output: output, serialNumber: 42)
        try sim.run(deliver: { p in
            try recorder.receive(ssrc: p.ssrc, sequenceNumber: p.seq, timestamp: p.ts, payload: p.payload,
                                 arrival: p.arrival, wallclock: NTPTime(unixSeconds: 1_700_000_000 + Double(p.arrival.nanoseconds) / 1e9))
        }, tick: { try recorder.tick(now: $0) })
        try recorder.finish()
        let file = try OggOpusReader.read(output.bytes)
        let last = try #require(file.packets.last)
        let duration = Double(last.granulePosition - Int64(file.head.preSkip)) / 48_000
        let presence = sim.presenceSeconds
        #expect(abs(duration - presence) / presence < 0.001, "file \(duration) s vs presence \(presence) s")
        #expect(recorder.statistics.concealedFrames > 1000, "\(recorder.statistics)")
        #expect(recorder.statistics.silenceFrames > 1500, "\(recorder.statistics)")
        #expect(recorder.timeline.statistics.segments == 3, "\(recorder.timeline.statistics)")
        #expect(recorder.statistics.invalidPackets == 0)
        #expect(recorder.startWallclock != nil)
        // Without drift compensation the error would be 0.1% of 600 s; the rate was estimated.
        let rate = recorder.timeline.estimatedRate
        #expect(abs(rate / 48_000 - (1 + drift)) < 0.0003, "estimated rate \(rate)")

        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("rec.opus")
        try writeFileBytes(output.bytes, to: path)
        if let info = try MediaTools.run("opusinfo", [path]) {
            #expect(info.status == 0, "opusinfo: \(info.output)")
            #expect(!info.output.contains("WARNING") && !info.output.contains("ERROR"), "opusinfo: \(info.output)")
        }
        if let probe = try MediaTools.run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]) {
            #expect(probe.status == 0, "ffprobe: \(probe.output)")
            let value = Double(probe.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(abs(value - duration) < 0.05, "ffprobe duration \(value) vs \(duration)")
        }
        if drift > 0, let dec = try MediaTools.run("opusdec", ["--rate", "48000", path, dir.path("rec.wav")]) {
            #expect(dec.status == 0, "opusdec: \(dec.output)")
            let wav = try WAVFile.parse(try readFileBytes(dir.path("rec.wav")))
            #expect(abs(wav.durationSeconds - duration) < 0.05)
            let middle = Array(wav.samples[(48_000 * 10)..<(48_000 * 12)])
            let frequency = try #require(AudioAnalysis.dominantFrequency(samples: middle, sampleRate: 48_000))
            #expect(abs(frequency - 440) < 3, "decoded tone at \(frequency) Hz")
        }
    }

    @Test("a recording cut after a flushed page still decodes")
    func truncatedFileDecodes() throws {
        let sim = RecordingSimulation(seconds: 20, drift: 0, loss: 0.05, seed: 3)
        let output = OggMemoryOutput()
        let recorder = try OggOpusRecorder(output: output, serialNumber: 9)
        var cutAt = 0
        try sim.run(deliver: { p in
            try recorder.receive(ssrc: p.ssrc, sequenceNumber: p.seq, timestamp: p.ts, payload: p.payload, arrival: p.arrival)
        }, tick: { now in
            try recorder.tick(now: now)
            if (now - sim.firstArrival).seconds < 10 { cutAt = output.bytes.count }
        })
        // Pages reach the output at least every second of wallclock.
        #expect(cutAt > 8 * 2_000, "only \(cutAt) bytes after 10 s")
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("cut.opus")
        try writeFileBytes(Array(output.bytes.prefix(cutAt)), to: path)
        if let dec = try MediaTools.run("opusdec", ["--rate", "48000", path, dir.path("cut.wav")]) {
            #expect(dec.status == 0, "opusdec: \(dec.output)")
            let wav = try WAVFile.parse(try readFileBytes(dir.path("cut.wav")))
            #expect(wav.durationSeconds > 8.5 && wav.durationSeconds < 10.5, "cut file \(wav.durationSeconds) s")
        }
    }

    @Test("aligned mode pads from the room start; a late joiner begins with silence")
    func alignedMode() throws {
        let origin = MonotonicTime(nanoseconds: 0)
        var timeline = RecordingTimeline(configuration: RecordingTimelineConfiguration(origin: origin))
        let first = timeline.place(ssrc: 1, sequenceNumber: 10, timestamp: 5000, samples: 960,
                                   arrival: MonotonicTime(nanoseconds: 3_000_000_000))
        #expect(first.write)
        #expect(first.fillSamples == 3 * 48_000)
        #expect(first.concealSamples == 0)
        #expect(timeline.position == 3 * 48_000 + 960)
    }

    @Test("bad input: invalid Opus, backwards timestamps, silence then a burst — counted, file stays valid")
    func badInput() throws {
        let output = OggMemoryOutput()
        let recorder = try OggOpusRecorder(output: output, serialNumber: 5)
        let good = RecordingSimulation.toneFrames[0]
        var t = MonotonicTime(nanoseconds: 1_000_000_000)
        var ts = RTPTimestamp(1000)
        for i in 0..<50 {
            try recorder.receive(ssrc: 7, sequenceNumber: SequenceNumber(UInt16(i)), timestamp: ts, payload: good, arrival: t)
            t += .milliseconds(20); ts = ts + 960
        }
        // Invalid Opus: empty, code-3 with zero frames, a length past the end.
        for bad: [UInt8] in [[], [0x03, 0x00], [0x02, 0xFF]] {
            try recorder.receive(ssrc: 7, sequenceNumber: 50, timestamp: ts, payload: bad, arrival: t)
        }
        #expect(recorder.statistics.invalidPackets == 3)
        // Timestamps jumping backwards.
        try recorder.receive(ssrc: 7, sequenceNumber: 51, timestamp: ts.advanced(by: -480_000), payload: good, arrival: t)
        t += .milliseconds(20)
        // 10 s of nothing, then a burst of 50 packets at once with continuing timestamps.
        t += .seconds(10)
        for i in 0..<50 {
            try recorder.receive(ssrc: 7, sequenceNumber: SequenceNumber(UInt16(52 + i)), timestamp: ts + Int64(960 * i),
                                 payload: good, arrival: t)
        }
        try recorder.finish()
        let file = try OggOpusReader.read(output.bytes)
        let duration = Double(file.packets.last!.granulePosition - Int64(file.head.preSkip)) / 48_000
        // The file tracks wallclock presence (1 s .. 12.02 s): at least the span, at most span + burst;
        // burst packets that would run ahead of the clock are counted as dropped.
        #expect(duration >= 11.0 && duration <= 12.1, "duration \(duration)")
        #expect(recorder.statistics.packetsWritten + recorder.statistics.droppedPackets == 101)
        var granule: Int64 = 0
        for packet in file.packets {
            #expect(packet.granulePosition >= granule)
            granule = packet.granulePosition
        }
    }

    @Test("WAV recorder conceals losses with PLC and writes DTX gaps as silence")
    func wavRecorder() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("rec.wav")
        let recorder = try WAVRecorder(path: path)
        var t = MonotonicTime(nanoseconds: 0)
        var seq = SequenceNumber(100)
        var ts = RTPTimestamp(0)
        for k in 0..<300 {
            defer { t += .milliseconds(20); ts = ts + 960 }
            if (150..<200).contains(k) { try recorder.tick(now: t); continue } // 1 s DTX
            defer { seq = seq + 1 }
            if k % 10 == 5 { continue } // loss
            try recorder.receive(ssrc: 1, sequenceNumber: seq, timestamp: ts,
                                 payload: RecordingSimulation.toneFrames[k % 50], arrival: t)
        }
        try recorder.finish()
        let wav = try WAVReader.read(path: path)
        #expect(abs(wav.durationSeconds - 6.0) < 0.05, "\(wav.durationSeconds)")
        #expect(recorder.statistics.concealedFrames >= 20)
        #expect(recorder.statistics.silenceFrames >= 45)
        // The DTX second is silent.
        let gap = Array(wav.samples[(48_000 * 31 / 10)..<(48_000 * 39 / 10)])
        #expect(AudioAnalysis.rms(samples: gap) < 0.001)
        let tone = Array(wav.samples[48_000..<(48_000 * 2)])
        let frequency = try #require(AudioAnalysis.dominantFrequency(samples: tone, sampleRate: 48_000))
        #expect(abs(frequency - 440) < 3)
    }
}

@Suite("Recording wallclock start")
struct RecordingWallclockTests {
    @Test("a file knows its wallclock start: from the first packet (receiver) and from sender reports (sender's clock)")
    func wallclockStart() throws {
        let origin = MonotonicTime(nanoseconds: 10_000_000_000)
        // Aligned mode: the room started at `origin`; this participant's first packet arrives 2 s later.
        let recorder = try OggOpusRecorder(output: OggMemoryOutput(), serialNumber: 3,
                                           timeline: RecordingTimelineConfiguration(origin: origin))
        let receiverUnix = 1_800_000_000.0  // receiver wallclock at the first packet's arrival
        let firstArrival = origin + .seconds(2)
        let firstTimestamp: UInt32 = 4_000_000_000  // wraps during the call
        for k in 0..<150 {
            let arrival = firstArrival + .milliseconds(20 * k)
            try recorder.receive(ssrc: 77, sequenceNumber: SequenceNumber(UInt16(truncatingIfNeeded: 65_500 + k)),
                                 timestamp: RTPTimestamp(firstTimestamp &+ UInt32(k * 960)),
                                 payload: RecordingSimulation.toneFrames[k % 50], arrival: arrival,
                                 wallclock: NTPTime(unixSeconds: receiverUnix + Double(20 * k) / 1000))
        }
        // Position 0 is the room start, 2 s before the first packet.
        let start = try #require(recorder.startWallclock)
        #expect(abs(start.unixSeconds - (receiverUnix - 2)) < 0.001, "\(start.unixSeconds)")
        #expect(recorder.senderStartWallclock == nil)
        // The sender's clock is 3.5 s ahead of ours: its report at RTP time first + 1 s says so.
        let senderUnixAtFirst = receiverUnix + 3.5
        let report = RTCPSenderReport(ssrc: 77, ntpTime: NTPTime(unixSeconds: senderUnixAtFirst + 1),
                                      rtpTimestamp: RTPTimestamp(firstTimestamp &+ 48_000), packetCount: 50, octetCount: 4000)
        recorder.receiveSenderReport(report)
        let senderStart = try #require(recorder.senderStartWallclock)
        // Sender time at position 0 = its time at the first packet − 2 s (within a frame of modelling).
        #expect(abs(senderStart.unixSeconds - (senderUnixAtFirst - 2)) < 0.021, "\(senderStart.unixSeconds)")
        // Reports from another SSRC are ignored.
        recorder.receiveSenderReport(RTCPSenderReport(ssrc: 78, ntpTime: NTPTime(unixSeconds: 1), rtpTimestamp: 0,
                                                      packetCount: 0, octetCount: 0))
        #expect(recorder.senderStartWallclock == senderStart)
    }
}
