import Foundation
import Synchronization
import Testing
@testable import RTP

@Suite("Ogg Opus")
struct OggOpusTests {
    @Test("OpusHead and OpusTags round trip and reject bad input")
    func headers() throws {
        let head = OpusHead(channelCount: 2, preSkip: 312, inputSampleRate: 44_100, outputGain: -256)
        let bytes = head.serialized()
        #expect(bytes.count == 19)
        #expect(try OpusHead.parse(bytes) == head)
        let multi = OpusHead(version: 1, channelCount: 3, preSkip: 0, inputSampleRate: 0, outputGain: 0,
                             mappingFamily: 1, streamCount: 2, coupledCount: 1, channelMapping: [0, 2, 1])
        #expect(try OpusHead.parse(multi.serialized()) == multi)
        for length in 0..<bytes.count { #expect(throws: OggOpusError.self) { try OpusHead.parse(Array(bytes.prefix(length))) } }
        var bad = bytes
        bad[8] = 0x10
        #expect(throws: OggOpusError.unsupportedVersion(0x10)) { try OpusHead.parse(bad) }
        bad = bytes
        bad[9] = 3
        #expect(throws: OggOpusError.invalidChannelCount(3)) { try OpusHead.parse(bad) }
        bad[9] = 0
        #expect(throws: OggOpusError.invalidChannelCount(0)) { try OpusHead.parse(bad) }
        #expect(throws: OggOpusError.badMagic(expected: "OpusHead")) { try OpusHead.parse(Array("OpusTags".utf8) + bytes[8...]) }
        var badMap = multi.serialized()
        badMap[21] = 9
        #expect(throws: OggOpusError.invalidChannelMapping) { try OpusHead.parse(badMap) }

        let tags = OpusTags(vendor: "peerd test", comments: ["TITLE=tone", "ARTIST=ünïcode"])
        let tagBytes = tags.serialized()
        #expect(try OpusTags.parse(tagBytes) == tags)
        for length in 0..<tagBytes.count { #expect(throws: OggOpusError.self) { try OpusTags.parse(Array(tagBytes.prefix(length))) } }
        var lying = tagBytes
        lying[8] = 0xFF // vendor length 255
        #expect(throws: OggOpusError.truncated) { try OpusTags.parse(lying) }
        var hugeCount = OpusTags(vendor: "v").serialized()
        hugeCount.replaceSubrange((hugeCount.count - 4)..., with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: OggOpusError.truncated) { try OpusTags.parse(hugeCount) }
        var badUTF8 = OpusTags(vendor: "ab").serialized()
        badUTF8[12] = 0xC3
        #expect(throws: OggOpusError.invalidUTF8) { try OpusTags.parse(badUTF8) }
    }

    /// Encodes `seconds` of a 440 Hz tone at 20 ms per packet, plus `extraFrames` frames of the
    /// same tone (to push the encoder's lookahead out).
    static func tonePackets(seconds: Double, extraFrames: Int = 0) throws -> (packets: [[UInt8]], preSkip: Int) {
        let encoder = try RTP.OpusEncoder(channels: 1, application: .audio)
        try encoder.setBitrate(48_000)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5)
        let packets = try (0..<(Int(seconds * 50) + extraFrames)).map { _ in try encoder.encode(tone.next(frames: 960)) }
        return (packets, try encoder.lookahead())
    }

    @Test("writer page layout: headers alone, flush every second, EOS, granules; reader gets it all back")
    func layout() throws {
        let (packets, preSkip) = try Self.tonePackets(seconds: 2.5)
        let output = OggMemoryOutput()
        let writer = try OggOpusWriter(output: output, head: OpusHead(channelCount: 1, preSkip: UInt16(preSkip)),
                                       tags: OpusTags(vendor: "peerd", comments: ["ENCODER=test"]), serialNumber: 0x1234)
        let headerBytes = output.bytes.count
        #expect(headerBytes > 0)
        var sizes: [Int] = []
        for packet in packets {
            try writer.write(packet: packet)
            sizes.append(output.bytes.count)
        }
        // Nothing is written between flushes; once 50 packets (1 s) are behind the held newest
        // packet, a page is out.
        #expect(sizes[49] == headerBytes)
        #expect(sizes[50] > headerBytes)
        #expect(sizes[99] == sizes[50])
        #expect(sizes[100] > sizes[99])
        #expect(writer.granulePosition == Int64(125 * 960))
        try writer.flush()
        let flushed = output.bytes.count
        #expect(flushed > sizes.last!)
        try writer.finish()
        #expect(throws: OggOpusError.finished) { try writer.write(packet: packets[0]) }

        var pageReader = OggPageReader()
        pageReader.append(output.bytes)
        var pages: [OggPage] = []
        while let page = try pageReader.nextPage() { pages.append(page) }
        #expect(pages.count == 6)
        #expect(pages[0].headerType == [.beginOfStream] && pages[0].segmentTable.count == 1 && pages[0].granulePosition == 0)
        #expect(Array(pages[0].body.prefix(8)) == Array("OpusHead".utf8))
        #expect(Array(pages[1].body.prefix(8)) == Array("OpusTags".utf8) && pages[1].granulePosition == 0)
        #expect(pages[1].completedPacketCount == 1)
        #expect(!pages[2].headerType.contains(.continued))
        #expect(pages.map(\.granulePosition) == [0, 0, 48_000, 96_000, 119_040, 120_000])
        #expect(pages[5].headerType == [.endOfStream] && pages[5].segmentTable.count == 1)

        // finish() right after flush() still gives an EOS page that opusinfo accepts.
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        try writeFileBytes(output.bytes, to: dir.path("layout.opus"))
        if let info = try MediaTools.run("opusinfo", [dir.path("layout.opus")]) {
            #expect(info.status == 0)
            #expect(!info.output.lowercased().contains("warning") && !info.output.lowercased().contains("error"),
                    "opusinfo: \(info.output)")
        }

        let (head, tags, read) = try OggOpusReader.read(output.bytes)
        #expect(head.preSkip == UInt16(preSkip))
        #expect(tags.comments == ["ENCODER=test"])
        #expect(read.map(\.bytes) == packets)
        #expect(read.enumerated().allSatisfy { $0.element.granulePosition == Int64(($0.offset + 1) * 960) })
        #expect(read.allSatisfy { $0.samples == 960 })

        // Explicit granules, and a granule that goes backwards.
        let explicit = try OggOpusWriter(output: OggMemoryOutput(), head: OpusHead(channelCount: 1, preSkip: 0), serialNumber: 1)
        try explicit.write(packet: packets[0], granulePosition: 960)
        #expect(throws: OggOpusError.granuleDecreased(previous: 960, new: 10)) { try explicit.write(packet: packets[1], granulePosition: 10) }
        #expect(throws: OggOpusError.invalidPacket(.empty)) { try explicit.write(packet: []) }
    }

    @Test("a file created in the background gets every page written before and after it existed; a failed creation is thrown by a write")
    func backgroundCreation() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let (packets, preSkip) = try Self.tonePackets(seconds: 1, extraFrames: 0)
        let path = dir.path("background.opus")
        do {
            let file = OggFileOutput(creatingInBackground: path)
            let writer = try OggOpusWriter(output: file, head: OpusHead(channelCount: 1, preSkip: UInt16(preSkip)),
                                           serialNumber: 0xB00)
            for packet in packets { try writer.write(packet: packet) }
            try writer.finish()
            try file.close()  // waits for the creation and writes what was held
        }
        let read = try OggOpusReader.read(readFileBytes(path))
        #expect(read.packets.map(\.bytes) == packets)
        #expect(read.head.preSkip == UInt16(preSkip))

        // Under a regular file: the creation fails, and the failure comes out of a write.
        let blocker = dir.path("blocker")
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let failing = OggFileOutput(creatingInBackground: blocker + "/x.opus")
        #expect(throws: OggOutputError.posix(operation: "open", errno: ENOTDIR)) {
            try failing.sync()
        }
        #expect(throws: OggOutputError.posix(operation: "open", errno: ENOTDIR)) { try failing.write([1, 2, 3]) }

        // An output released (never closed) while its file is still being created still writes what it held.
        for index in 0..<20 {
            let path = dir.path("released-\(index).opus")
            do {
                let writer = try OggOpusWriter(output: OggFileOutput(creatingInBackground: path),
                                               head: OpusHead(channelCount: 1, preSkip: 0), serialNumber: 7)
                try writer.write(packet: packets[0])
                try writer.finish()
            }
            #expect(try OggOpusReader.read(readFileBytes(path)).packets.map(\.bytes) == [packets[0]])
        }
    }

    @Test("files are created on one thread, not the caller's, at nice +10, in the order asked; a wait returns once its job ran")
    func creationThread() throws {
        struct Seen: Sendable {
            var order: [Int] = []
            var threads: Set<UInt> = []
            var niceValues: Set<Int32> = []
            var names: Set<String> = []
        }
        let seen = Mutex(Seen())
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let callerNice = getpriority(which, 0)
        for index in 0..<50 {
            FileCreationThread.shared.submit {
                let nice = getpriority(which, 0)
                let thread = UInt(pthread_self())
                let threadName = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                seen.withLock {
                    $0.names.insert(threadName)
                    $0.order.append(index)
                    $0.threads.insert(thread)
                    $0.niceValues.insert(nice)
                }
            }
        }
        FileCreationThread.shared.wait { seen.withLock { $0.order.count == 50 } }
        let result = seen.withLock { $0 }
        #expect(result.order == Array(0..<50))
        #expect(result.threads.count == 1 && !result.threads.contains(UInt(pthread_self())))
        #expect(result.names == [FileCreationThread.threadName])
        // A process already nicer than +10 cannot lower its threads' nice value (without privileges).
        #expect(result.niceValues == [max(FileCreationThread.niceValue, callerNice)])
    }

    @Test("packets of any size, each held back until the next one, read back as written")
    func heldPacketSizes() throws {
        let sizes = [10, 191, 192, 193, 1275, 5000, 3, 70_000, 255, 256, 0, 1]
        let packets = sizes.enumerated().map { index, size in (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ index) } }
        let output = OggMemoryOutput()
        let writer = try OggOpusWriter(output: output, head: OpusHead(channelCount: 1, preSkip: 0), serialNumber: 77, flushInterval: 960 * 3)
        for packet in packets { try writer.write(packet: packet, samples: 960) }
        try writer.finish()
        let read = try OggOpusReader.read(output.bytes)
        #expect(read.packets.map(\.bytes) == packets)
        #expect(read.packets.last?.isEndOfStream == true)
    }

    @Test("a file output writes a page's two parts in order, directly and while its file is being created; a closed one throws")
    func twoPartWrites() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let header = [UInt8](0..<40)
        let body = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let direct = try OggFileOutput(path: dir.path("direct.bin"))
        let background = OggFileOutput(creatingInBackground: dir.path("background.bin"))
        for output in [direct, background] {
            try header.withUnsafeBytes { h in try body.withUnsafeBytes { b in try output.write(header: h, body: b) } }
            try output.write([0xEE])
            try header.withUnsafeBytes { h in try output.write(header: h, body: UnsafeRawBufferPointer(start: nil, count: 0)) }
            try output.close()
        }
        for name in ["direct.bin", "background.bin"] {
            #expect(try readFileBytes(dir.path(name)) == header + body + [0xEE] + header, "\(name)")
        }
        #expect(throws: OggOutputError.closed) {
            try header.withUnsafeBytes { h in try body.withUnsafeBytes { b in try direct.write(header: h, body: b) } }
        }
        // An output without its own two-part write joins the parts.
        let memory = OggMemoryOutput()
        try header.withUnsafeBytes { h in try body.withUnsafeBytes { b in try memory.write(header: h, body: b) } }
        #expect(memory.bytes == header + body)
    }

    @Test("a 3 s tone written with OggOpusWriter passes opusinfo, ffprobe and opusdec; a cut copy still decodes")
    func externalTools() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("tone.opus")
        // 3 s plus one frame: the decoder output is delayed by the pre-skip, and the end is
        // trimmed so that exactly 3 s play.
        let (packets, preSkip) = try Self.tonePackets(seconds: 3, extraFrames: 1)
        var flushedLength = 0
        do {
            let file = try OggFileOutput(path: path)
            let writer = try OggOpusWriter(output: file, head: OpusHead(channelCount: 1, preSkip: UInt16(preSkip)),
                                           serialNumber: 0x5EED)
            for (index, packet) in packets.enumerated() {
                try writer.write(packet: packet)
                if index == 74 {
                    try writer.flush()
                    flushedLength = try readFileBytes(path).count
                }
            }
            #expect(throws: OggOpusError.invalidEndTrim(granulePosition: Int64(preSkip) + 200_000)) {
                try writer.finish(playableSamples: 200_000)
            }
            try writer.finish(playableSamples: 144_000)
            try file.close()
        }
        let bytes = try readFileBytes(path)
        #expect(flushedLength > 0 && flushedLength < bytes.count)
        let all = try OggOpusReader.read(bytes)
        #expect(all.packets.map(\.bytes) == packets)
        #expect(all.packets.last?.granulePosition == Int64(preSkip + 144_000))
        let penultimate = try #require(all.packets.dropLast().last)
        #expect(penultimate.granulePosition == Int64(150 * 960))

        if let info = try MediaTools.run("opusinfo", [path]) {
            #expect(info.status == 0, "opusinfo: \(info.output)")
            let lower = info.output.lowercased()
            #expect(!lower.contains("warning") && !lower.contains("error"), "opusinfo: \(info.output)")
            #expect(lower.contains("playback length: 0m:03.000s"), "opusinfo: \(info.output)")
        }
        if let probe = try MediaTools.run("ffprobe", ["-v", "error", "-show_format", "-show_streams", path]) {
            #expect(probe.status == 0)
            #expect(probe.output.contains("codec_name=opus"), "ffprobe: \(probe.output)")
            let durations = probe.output.split(separator: "\n").filter { $0.hasPrefix("duration=") }
                .compactMap { Double($0.dropFirst("duration=".count)) }
            #expect(!durations.isEmpty, "ffprobe: \(probe.output)")
            for duration in durations { #expect(abs(duration - 3.0) <= 0.03, "ffprobe duration \(duration)") }
        }
        let wav = dir.path("out.wav")
        if let dec = try MediaTools.run("opusdec", ["--rate", "48000", path, wav]) {
            #expect(dec.status == 0, "opusdec: \(dec.output)")
            let decoded = try WAVReader.read(path: wav)
            #expect(decoded.sampleRate == 48_000 && decoded.channels == 1)
            #expect(abs(decoded.frameCount - 144_000) <= 960, "decoded \(decoded.frameCount) frames")
            let frequency = try #require(AudioAnalysis.dominantFrequency(samples: decoded.samples, sampleRate: 48_000))
            #expect(abs(frequency - 440) <= 3, "opusdec output at \(frequency) Hz")
        }

        // Simulate a kill right after the flush at 1.5 s: the file holds the flushed pages, i.e.
        // every packet but the held newest one.
        let cutPath = dir.path("cut.opus")
        try writeFileBytes(Array(bytes.prefix(flushedLength)), to: cutPath)
        let cut = try OggOpusReader.read(Array(bytes.prefix(flushedLength)))
        #expect(cut.packets.count == 74)
        #expect(cut.packets.last?.granulePosition == Int64(74 * 960))
        let cutWav = dir.path("cut.wav")
        if let dec = try MediaTools.run("opusdec", ["--rate", "48000", cutPath, cutWav]) {
            #expect(dec.status == 0, "opusdec on the cut file: \(dec.output)")
            let decoded = try WAVReader.read(path: cutWav)
            #expect(abs(decoded.frameCount - (74 * 960 - preSkip)) <= 960, "cut file decoded \(decoded.frameCount) frames")
            let frequency = try #require(AudioAnalysis.dominantFrequency(samples: decoded.samples, sampleRate: 48_000))
            #expect(abs(frequency - 440) <= 3)
        }
    }

    @Test("reads opusenc's output and re-serializes its pages byte for byte")
    func readsOpusenc() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        var tone = ToneGenerator(frequency: 1000, amplitude: 0.3, channels: 2)
        let input = WAVFile(sampleRate: 48_000, channels: 2, samples: tone.next(frames: 48_000))
        try writeFileBytes(input.serialized(), to: dir.path("in.wav"))
        guard let enc = try MediaTools.run("opusenc", ["--quiet", dir.path("in.wav"), dir.path("in.opus")]) else { return }
        #expect(enc.status == 0, "opusenc: \(enc.output)")
        let bytes = try readFileBytes(dir.path("in.opus"))
        var pages = OggPageReader()
        pages.append(bytes)
        var rebuilt: [UInt8] = []
        while let page = try pages.nextPage() { rebuilt += try page.serialized() }
        #expect(rebuilt == bytes)
        let (head, tags, packets) = try OggOpusReader.read(bytes)
        #expect(head.channelCount == 2 && head.inputSampleRate == 48_000)
        #expect(tags.vendor.lowercased().contains("libopus"))
        let last = try #require(packets.last)
        #expect(last.isEndOfStream)
        #expect(last.granulePosition == Int64(head.preSkip) + 48_000)
        let decoder = try RTP.OpusDecoder(channels: 2)
        var pcm: [Int16] = []
        for packet in packets { pcm += try decoder.decode(packet.bytes) }
        let left = stride(from: Int(head.preSkip) * 2, to: pcm.count, by: 2).map { pcm[$0] }
        #expect(abs((AudioAnalysis.dominantFrequency(samples: left, sampleRate: 48_000) ?? 0) - 1000) < 2)
    }
}
