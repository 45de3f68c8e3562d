import Foundation
import Testing
@testable import RTP

@Suite("WAV")
struct WAVTests {
    static func sample(channels: Int = 2, rate: Int = 44_100, frames: Int = 100) -> WAVFile {
        var tone = ToneGenerator(frequency: 1000, amplitude: 0.8, sampleRate: rate, channels: channels)
        return WAVFile(sampleRate: rate, channels: channels, samples: tone.next(frames: frames))
    }

    @Test("in-memory round trip, mono and stereo, any rate")
    func roundTrip() throws {
        for (channels, rate) in [(1, 8000), (2, 44_100), (1, 48_000), (2, 96_000)] {
            let file = Self.sample(channels: channels, rate: rate)
            let bytes = file.serialized()
            #expect(bytes.count == 44 + file.samples.count * 2)
            #expect(try WAVFile.parse(bytes) == file)
        }
    }

    @Test("streaming writer: readable after each flush, complete after finalize; ffprobe agrees")
    func writer() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("w.wav")
        let writer = try WAVWriter(path: path, sampleRate: 48_000, channels: 1, flushInterval: 4800)
        #expect(try WAVReader.read(path: path).samples.isEmpty)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5)
        var all: [Int16] = []
        for _ in 0..<10 {
            let chunk = tone.next(frames: 960)
            all += chunk
            try writer.write(chunk)
        }
        // 9600 frames written, automatic flushes at 4800-frame boundaries: a "killed" file is valid.
        let partial = try WAVReader.read(path: path)
        #expect(partial.samples == Array(all.prefix(partial.samples.count)))
        #expect(partial.frameCount == 9600)
        try writer.write(tone.next(frames: 100).map { all.append($0); return $0 })
        #expect(try WAVReader.read(path: path).frameCount == 9600)
        try writer.flush()
        #expect(try WAVReader.read(path: path).samples == all)
        #expect(throws: WAVError.sampleCountNotFrameAligned(3)) {
            try WAVWriter(path: dir.path("s.wav"), sampleRate: 8000, channels: 2).write([1, 2, 3])
        }
        try writer.finalize()
        #expect(throws: WAVError.closed) { try writer.write([1]) }
        let final = try WAVReader.read(path: path)
        #expect(final == WAVFile(sampleRate: 48_000, channels: 1, samples: all))
        #expect(abs((AudioAnalysis.dominantFrequency(samples: final.samples, sampleRate: 48_000) ?? 0) - 440) < 2)
        if let probe = try MediaTools.run("ffprobe", ["-v", "error", "-show_streams", path]) {
            #expect(probe.status == 0)
            #expect(probe.output.contains("codec_name=pcm_s16le") && probe.output.contains("sample_rate=48000"))
            #expect(probe.output.contains("duration_ts=\(all.count)"), "ffprobe: \(probe.output)")
        }
        #expect(throws: WAVError.posix(operation: "open", errno: ENOENT)) { try WAVReader.read(path: dir.path("missing.wav")) }
    }

    /// Builds a file from explicit chunks.
    static func riff(_ chunks: [(String, [UInt8])], riffSize: Int? = nil) -> [UInt8] {
        var body: [UInt8] = Array("WAVE".utf8)
        for (id, data) in chunks {
            body += Array(id.utf8)
            body += withUnsafeBytes(of: UInt32(data.count).littleEndian, Array.init)
            body += data
            if data.count % 2 == 1 { body.append(0) }
        }
        return Array("RIFF".utf8) + withUnsafeBytes(of: UInt32(riffSize ?? body.count).littleEndian, Array.init) + body
    }

    static func fmt(tag: UInt16 = 1, channels: UInt16 = 1, rate: UInt32 = 8000, bits: UInt16 = 16,
                    blockAlign: UInt16? = nil, byteRate: UInt32? = nil) -> [UInt8] {
        let align = blockAlign ?? channels * bits / 8
        var out: [UInt8] = []
        for v in [tag, channels] { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        for v in [rate, byteRate ?? rate * UInt32(align)] { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        for v in [align, bits] { out += withUnsafeBytes(of: v.littleEndian, Array.init) }
        return out
    }

    @Test("a WAV file created in the background holds every sample; a failed creation is a typed error")
    func backgroundCreation() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("background.wav")
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5)
        var all: [Int16] = []
        do {
            let writer = try WAVWriter(creatingInBackground: path, sampleRate: 48_000, channels: 1, flushInterval: 960)
            for _ in 0..<25 {
                let chunk = tone.next(frames: 960)
                all += chunk
                try writer.write(chunk)  // flushes every chunk once the file exists
            }
            try writer.finalize()
            #expect(throws: WAVError.closed) { try writer.write([1]) }
        }
        #expect(try WAVReader.read(path: path) == WAVFile(sampleRate: 48_000, channels: 1, samples: all))
        // Dropped without finalize: deinit waits for the file and writes what it buffered.
        let released = dir.path("released.wav")
        do {
            let writer = try WAVWriter(creatingInBackground: released, sampleRate: 8_000, channels: 2)
            try writer.write([1, -1, 2, -2])
        }
        #expect(try WAVReader.read(path: released).samples == [1, -1, 2, -2])

        let blocker = dir.path("blocker")
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let failing = try WAVWriter(creatingInBackground: blocker + "/x.wav", sampleRate: 48_000, channels: 1)
        #expect(throws: WAVError.posix(operation: "open", errno: ENOTDIR)) { try failing.finalize() }
        #expect(throws: WAVError.posix(operation: "open", errno: ENOTDIR)) { try failing.write([0]) }
    }

    @Test("unknown chunks are skipped; WAVE_FORMAT_EXTENSIBLE PCM is accepted")
    func chunks() throws {
        let data: [UInt8] = [1, 0, 2, 0, 0xFF, 0xFF]
        let file = Self.riff([("LIST", [1, 2, 3]), ("fmt ", Self.fmt()), ("fact", [0, 0, 0, 0]), ("data", data)])
        #expect(try WAVFile.parse(file) == WAVFile(sampleRate: 8000, channels: 1, samples: [1, 2, -1]))
        var extensible = Self.fmt(tag: 0xFFFE) + [22, 0, 16, 0, 4, 0, 0, 0]
        extensible += [1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]
        #expect(try WAVFile.parse(Self.riff([("fmt ", extensible), ("data", data)])).samples == [1, 2, -1])
        var float = extensible
        float[24] = 3
        #expect(throws: WAVError.notPCM(formatTag: 0xFFFE)) { try WAVFile.parse(Self.riff([("fmt ", float), ("data", data)])) }
    }

    @Test("bad input gives typed errors")
    func badInput() throws {
        let data: [UInt8] = [1, 0, 2, 0]
        func parse(_ bytes: [UInt8]) -> WAVError? {
            do { _ = try WAVFile.parse(bytes); return nil } catch { return error }
        }
        let good = Self.riff([("fmt ", Self.fmt()), ("data", data)])
        #expect(parse(good) == nil)
        for length in 0..<good.count { #expect(parse(Array(good.prefix(length))) != nil, "prefix \(length) parsed") }
        #expect(parse(Array("RIFX".utf8) + good[4...]) == .notRIFF)
        #expect(parse(Array(good[0..<8]) + Array("AVI ".utf8) + good[12...]) == .notWAVE)
        #expect(parse(Self.riff([("fmt ", Self.fmt()), ("data", data)], riffSize: 1000)) == .riffSizeMismatch(declared: 1000, available: good.count - 8))
        var lyingData = good
        lyingData[40] = 200
        #expect(parse(lyingData) == .chunkOverrun(id: "data", declared: 200, available: 4))
        var lyingChunk = Self.riff([("junk", [1, 2]), ("fmt ", Self.fmt()), ("data", data)])
        lyingChunk[16] = 0xFF
        lyingChunk[19] = 0x7F
        #expect(parse(lyingChunk) == .chunkOverrun(id: "junk", declared: 0x7F00_00FF, available: lyingChunk.count - 20))
        #expect(parse(Self.riff([("fmt ", Self.fmt(tag: 3)), ("data", data)])) == .notPCM(formatTag: 3))
        #expect(parse(Self.riff([("fmt ", Self.fmt(bits: 8)), ("data", data)])) == .unsupportedBitsPerSample(8))
        #expect(parse(Self.riff([("fmt ", Self.fmt(channels: 0)), ("data", data)])) == .invalidChannelCount(0))
        #expect(parse(Self.riff([("fmt ", Self.fmt(rate: 0)), ("data", data)])) == .invalidSampleRate(0))
        #expect(parse(Self.riff([("fmt ", Self.fmt(blockAlign: 4)), ("data", data)])) == .inconsistentFormat)
        #expect(parse(Self.riff([("fmt ", Self.fmt(byteRate: 1)), ("data", data)])) == .inconsistentFormat)
        #expect(parse(Self.riff([("fmt ", Array(Self.fmt().prefix(14))), ("data", data)])) == .badFormatChunk(size: 14))
        #expect(parse(Self.riff([("data", data), ("fmt ", Self.fmt())])) == .missingFormat)
        #expect(parse(Self.riff([("fmt ", Self.fmt())])) == .missingData)
        #expect(parse(Self.riff([("fmt ", Self.fmt(channels: 2)), ("data", [1, 2, 3, 4, 5, 6])])) == .dataNotFrameAligned(size: 6))
        #expect(parse(Self.riff([("fmt ", Self.fmt()), ("data", [1, 2, 3])])) == .dataNotFrameAligned(size: 3))
    }

    @Test("seeded mutations of WAV headers never crash; what parses round-trips")
    func mutation() throws {
        let seeds = [Self.sample(channels: 1, rate: 8000, frames: 8).serialized(),
                     Self.riff([("LIST", [1, 2, 3]), ("fmt ", Self.fmt(channels: 2)), ("data", [1, 2, 3, 4, 5, 6, 7, 8])])]
        var rng = MediaSplitMix64(seed: 0x3A7)
        var parsed = 0
        for round in 0..<5000 {
            let input = rng.mutate(seeds[round % seeds.count])
            if let file = try? WAVFile.parse(input) {
                parsed += 1
                #expect(try WAVFile.parse(file.serialized()) == file)
            }
        }
        #expect(parsed > 50)
    }
}

@Suite("Audio helpers")
struct AudioToolsTests {
    @Test("tone generator is phase-continuous and the analysis finds its frequency and level")
    func tone() throws {
        var split = ToneGenerator(frequency: 1234.5, amplitude: 0.25)
        var whole = ToneGenerator(frequency: 1234.5, amplitude: 0.25)
        var pieces: [Int16] = []
        for size in [1, 479, 960, 3000, 43_560] { pieces += split.next(frames: size) }
        #expect(pieces == whole.next(frames: 48_000))
        for frequency in [50.0, 440, 997, 3000.7, 15_000] {
            var tone = ToneGenerator(frequency: frequency, amplitude: 0.3)
            let measured = try #require(AudioAnalysis.dominantFrequency(samples: tone.next(frames: 48_000), sampleRate: 48_000))
            #expect(abs(measured - frequency) < 0.5, "\(frequency) Hz measured as \(measured)")
        }
        var stereo = ToneGenerator(frequency: 440, channels: 2)
        let frames = stereo.next(frames: 10)
        #expect(frames.count == 20 && frames[2] == frames[3])
        var full = ToneGenerator(frequency: 1000, amplitude: 1)
        #expect(abs(AudioAnalysis.dBov(samples: full.next(frames: 48_000)) + 3.01) < 0.05)
        #expect(AudioAnalysis.dBov(samples: [Int16](repeating: 0, count: 100)) == -127)
        #expect(abs(AudioAnalysis.rms(samples: [Int16](repeating: -32768, count: 10)) - 1) < 1e-9)
        #expect(AudioAnalysis.dominantFrequency(samples: [Int16](repeating: 0, count: 1000), sampleRate: 48_000) == nil)
    }
}
