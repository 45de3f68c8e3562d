import Foundation
import RTP
import Testing
import Wire

@Suite("Audio sources and ALSA devices", .serialized)
struct DevicesTests {
    @Test("tone, WAV and Ogg Opus sources yield 20 ms frames; once or looping")
    func sources() throws {
        var tone = ToneSource(frequency: 440, frames: 3)
        var count = 0
        while case .pcm(let pcm)? = tone.nextFrame() { #expect(pcm.count == 960); count += 1 }
        #expect(count == 3)

        let wav = WAVFile(sampleRate: 48_000, channels: 2, samples: [Int16](repeating: 1000, count: 2 * 1500))
        var once = try WAVFileSource(file: wav)
        #expect(once.nextFrame() == .pcm([Int16](repeating: 1000, count: 960)))
        #expect(once.nextFrame() == .pcm([Int16](repeating: 1000, count: 540) + [Int16](repeating: 0, count: 420)))
        #expect(once.nextFrame() == nil)
        var looping = try WAVFileSource(file: wav, loop: true)
        for _ in 0..<5 { #expect(looping.nextFrame() != nil) }
        #expect(throws: AudioSourceError.unsupportedFormat(sampleRate: 8000, channels: 1)) {
            try WAVFileSource(file: WAVFile(sampleRate: 8000, channels: 1, samples: [1, 2]))
        }

        let output = OggMemoryOutput()
        let writer = try OggOpusWriter(output: output, head: OpusHead(channelCount: 1, preSkip: 312), serialNumber: 1)
        let frames = Array(RecordingSimulation.toneFrames.prefix(10))
        for frame in frames { try writer.write(packet: frame) }
        try writer.finish()
        var ogg = try OggOpusFileSource(bytes: output.bytes)
        var sent: [[UInt8]] = []
        while case .opus(let packet)? = ogg.nextFrame() { sent.append(packet) }
        #expect(sent == frames)
        var oggLoop = try OggOpusFileSource(bytes: output.bytes, loop: true)
        for _ in 0..<25 { _ = oggLoop.nextFrame() }
        #expect(oggLoop.nextFrame() == .opus(frames[5]))
        #expect(throws: AudioSourceError.self) { try OggOpusFileSource(bytes: [1, 2, 3]) }
    }

    @Test("a missing ALSA device gives an error naming it")
    func missingDevice() {
        do {
            _ = try ALSAPlayback(device: "peerd_no_such_device")
            Issue.record("opened a device that does not exist")
        } catch {
            guard case .openFailed(let device, let code, _) = error else { Issue.record("\(error)"); return }
            #expect(device == "peerd_no_such_device" && code < 0)
        }
    }

    @Test("ALSA playback and capture through the file PCM plugin carry exact samples")
    func filePlugin() throws {
        let alsaConf = "/usr/share/alsa/alsa.conf"
        try #require(FileManager.default.fileExists(atPath: alsaConf), "alsa.conf missing: apt-get install -y libasound2-data")
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        var input = [UInt8]()
        var tone = ToneGenerator(frequency: 1000, amplitude: 0.5)
        let samples = tone.next(frames: 960 * 10)
        for s in samples { input.append(UInt8(truncatingIfNeeded: UInt16(bitPattern: s))); input.append(UInt8(truncatingIfNeeded: UInt16(bitPattern: s) >> 8)) }
        try writeFileBytes(input, to: dir.path("in.raw"))
        let conf = """
        pcm.peerdtest { type file; slave.pcm "null"; file "\(dir.path("out.raw"))"; infile "\(dir.path("in.raw"))"; format "raw" }
        """
        try conf.write(toFile: dir.path("test.conf"), atomically: true, encoding: .utf8)
        setenv("ALSA_CONFIG_PATH", "\(alsaConf):\(dir.path("test.conf"))", 1)
        defer { unsetenv("ALSA_CONFIG_PATH") }

        let playback = try ALSAPlayback(device: "peerdtest")
        for k in 0..<10 { try playback.play(Array(samples[(k * 960)..<((k + 1) * 960)])) }
        playback.close()
        let out = try readFileBytes(dir.path("out.raw"))
        #expect(Array(out.prefix(input.count)) == input)

        let capture = try ALSACapture(device: "peerdtest")
        var captured: [Int16] = []
        for _ in 0..<5 { captured += try capture.read() }
        capture.close()
        #expect(captured == Array(samples.prefix(960 * 5)))
    }
}

// In the same serialized suite as the other ALSA tests: they all set ALSA_CONFIG_PATH.
extension DevicesTests {
    @Test("PlayoutBuffer → ALSA: one period per tick, the device plays exactly the tone, concealment where packets were lost")
    func playoutThroughFilePlugin() throws {
        let alsaConf = "/usr/share/alsa/alsa.conf"
        try #require(FileManager.default.fileExists(atPath: alsaConf), "alsa.conf missing: apt-get install -y libasound2-data")
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let conf = """
        pcm.peerdsink { type file; slave.pcm "null"; file "\(dir.path("played.raw"))"; format "raw" }
        """
        try conf.write(toFile: dir.path("sink.conf"), atomically: true, encoding: .utf8)
        setenv("ALSA_CONFIG_PATH", "\(alsaConf):\(dir.path("sink.conf"))", 1)
        defer { unsetenv("ALSA_CONFIG_PATH") }

        let sink = try ALSAPlayoutSink(device: "peerdsink", tickSamples: 960)
        let encoder = try OpusEncoder(channels: 1, application: .audio)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.4)
        let lost = 60..<65
        var packets: [(arrival: MonotonicTime, packet: RTPPacket)] = []
        let t0 = MonotonicTime(nanoseconds: 1_000_000_000)
        for k in 0..<150 {
            let payload = try encoder.encode(tone.next(frames: 960))
            guard !lost.contains(k) else { continue }
            let packet = RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(UInt16(40_000 + k)),
                                   timestamp: RTPTimestamp(UInt32(k * 960)), ssrc: 0x51AC, payload: payload[...])
            packets.append((t0 + .milliseconds(20 * k + 5), packet))
        }
        var played: [Int16] = []
        var concealedPackets: [Int] = []
        var concealingTicks: [Int] = []
        var next = 0
        for tick in 0..<175 {
            let now = t0 + .milliseconds(20 * tick + 10)
            while next < packets.count, packets[next].arrival <= now {
                #expect(sink.insert(packet: packets[next].packet, arrival: packets[next].arrival) == .buffered)
                next += 1
            }
            let concealedBefore = sink.buffer.stats.concealedSamples
            let pcm = try sink.tick(now: now)
            #expect(pcm.count == 960)
            // Where in the sent stream this tick ended: decoded + skipped (acceleration) + concealed samples.
            let stats = sink.buffer.stats
            let streamPosition = stats.jitterBufferEmittedCount + stats.removedSamplesForAcceleration + stats.concealedSamples
            if stats.concealedSamples > concealedBefore {
                concealedPackets.append(Int(streamPosition / 960) - 1)
                concealingTicks.append(tick)
            }
            played += pcm
        }
        sink.close()
        #expect(sink.ticks == 175)

        // What the device got is exactly what the playout stage produced, tick by tick.
        let raw = try readFileBytes(dir.path("played.raw"))
        let device = stride(from: 0, to: raw.count - 1, by: 2).map { Int16(bitPattern: UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8) }
        #expect(device.count == played.count)
        #expect(device == played)

        // Concealment stood in for exactly the lost packets (and, after the last packet, for the end of the stream).
        #expect(concealedPackets.filter { $0 < 150 } == Array(lost), "concealed packets \(concealedPackets)")
        // Every received packet was played, or dropped by acceleration toward the target delay.
        let stats = sink.buffer.stats
        #expect(stats.jitterBufferEmittedCount + stats.removedSamplesForAcceleration == Int64((150 - lost.count) * 960))
        let first = Int(stats.silentSamples / 960)  // ticks of silence before playout started
        // The tone before and after the loss, and no silence inside the concealment.
        for range in [(first + 5)..<(first + 55), (first + 70)..<(first + 140)] {
            let segment = Array(device[(range.lowerBound * 960)..<(range.upperBound * 960)])
            let frequency = try #require(AudioAnalysis.dominantFrequency(samples: segment, sampleRate: 48_000))
            #expect(abs(frequency - 440) < 3, "played tone at \(frequency) Hz")
        }
        let concealmentTick = try #require(concealingTicks.first)
        let concealed = Array(device[(concealmentTick * 960)..<((concealmentTick + 2) * 960)])
        #expect(AudioAnalysis.rms(samples: concealed) > 0.02, "concealment is not silence")
    }

    @Test("a stereo playout buffer is refused; a missing device is named")
    func refusals() throws {
        let stereo = try PlayoutBuffer(configuration: PlayoutConfiguration(tickSamples: 960, channels: 2))
        #expect(throws: ALSAError.badFrameSize(1920)) { _ = try ALSAPlayoutSink(buffer: stereo, device: "null") }
        do {
            _ = try ALSAPlayoutSink(device: "peerd_no_such_sink")
            Issue.record("opened a device that does not exist")
        } catch {
            guard case .alsa(.openFailed(let device, _, _)) = error else { Issue.record("\(error)"); return }
            #expect(device == "peerd_no_such_sink")
        }
    }
}
