import Foundation
import RTP
import Testing

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
