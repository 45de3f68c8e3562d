import COpus
import Testing
@testable import RTP

@Suite("Opus TOC and packet structure")
struct OpusPacketTests {
    /// RFC 6716 Table 2, row by row: configs, mode, bandwidth, frame sizes in tenths of ms.
    static let table: [(configs: ClosedRange<Int>, mode: OpusMode, bandwidth: OpusBandwidth, tenthsMs: [Int])] = [
        (0...3, .silk, .narrowband, [100, 200, 400, 600]),
        (4...7, .silk, .mediumband, [100, 200, 400, 600]),
        (8...11, .silk, .wideband, [100, 200, 400, 600]),
        (12...13, .hybrid, .superWideband, [100, 200]),
        (14...15, .hybrid, .fullband, [100, 200]),
        (16...19, .celt, .narrowband, [25, 50, 100, 200]),
        (20...23, .celt, .wideband, [25, 50, 100, 200]),
        (24...27, .celt, .superWideband, [25, 50, 100, 200]),
        (28...31, .celt, .fullband, [25, 50, 100, 200]),
    ]

    @Test("all 32 configurations, both stereo flags, all four codes")
    func allConfigs() throws {
        var seen = 0
        for row in Self.table {
            for (index, config) in row.configs.enumerated() {
                for stereo in [false, true] {
                    for code in 0..<4 {
                        let byte = UInt8(config << 3) | (stereo ? 4 : 0) | UInt8(code)
                        let toc = OpusTOC(byte: byte)
                        #expect(toc.config == config)
                        #expect(toc.mode == row.mode)
                        #expect(toc.bandwidth == row.bandwidth)
                        #expect(toc.isStereo == stereo)
                        #expect(toc.frameCountCode == code)
                        #expect(toc.samplesPerFrame * 10 == row.tenthsMs[index] * 48)
                        #expect(toc.frameDurationMicroseconds == row.tenthsMs[index] * 100)
                        #expect(try OpusTOC.parse([byte, 1, 2]) == toc)
                    }
                }
                seen += 1
            }
        }
        #expect(seen == 32)
    }

    @Test("durations for codes 0-3")
    func durations() throws {
        // Code 0, SILK NB 20 ms, 10-byte frame.
        let p0 = try OpusPacketInfo.parse([0x08] + [UInt8](repeating: 1, count: 10))
        #expect(p0.frameCount == 1 && p0.totalSamples == 960 && p0.frameLengths == [10])
        // Code 0 with only the TOC: a zero-length frame (DTX) is valid.
        #expect(try OpusPacketInfo.parse([0x08]).frameLengths == [0])
        // Code 1, CELT FB 20 ms, two 3-byte frames.
        let p1 = try OpusPacketInfo.parse([UInt8(31 << 3 | 1), 1, 2, 3, 4, 5, 6])
        #expect(p1.frameCount == 2 && p1.totalSamples == 1920 && p1.frameLengths == [3, 3])
        // Code 2, CELT NB 2.5 ms, frames of 2 and 3 bytes.
        let p2 = try OpusPacketInfo.parse([UInt8(16 << 3 | 2), 2, 9, 9, 8, 8, 8])
        #expect(p2.frameCount == 2 && p2.totalSamples == 240 && p2.frameLengths == [2, 3])
        // Code 2 with a two-byte length: 252 + 4*1 = 256.
        let p2b = try OpusPacketInfo.parse([UInt8(16 << 3 | 2), 252, 1] + [UInt8](repeating: 0, count: 256 + 7))
        #expect(p2b.frameLengths == [256, 7])
        // Code 3 CBR: 3 frames of SILK WB 40 ms (120 ms), 2 bytes each.
        let p3 = try OpusPacketInfo.parse([UInt8(10 << 3 | 3), 3, 1, 1, 2, 2, 3, 3])
        #expect(p3.frameCount == 3 && p3.totalSamples == 5760 && p3.frameLengths == [2, 2, 2] && !p3.isVBR)
        // Code 3 VBR with padding: 2 frames of hybrid FB 10 ms, lengths 1 and 2, 3 bytes of padding.
        let p3v = try OpusPacketInfo.parse([UInt8(14 << 3 | 3), 0xC2, 3, 1, 7, 8, 8, 0, 0, 0])
        #expect(p3v.frameCount == 2 && p3v.totalSamples == 960 && p3v.frameLengths == [1, 2])
        #expect(p3v.paddingLength == 3 && p3v.isVBR)
        // Padding of 255 → 254 + next byte.
        let padded = [UInt8(16 << 3 | 3), 0x41, 255, 1] + [UInt8](repeating: 0, count: 4 + 255)
        #expect(try OpusPacketInfo.parse(padded).frameLengths == [4])
        // 48 frames of 2.5 ms = 120 ms is the maximum.
        #expect(try OpusPacketInfo.parse([UInt8(16 << 3 | 3), 48]).totalSamples == 5760)
    }

    @Test("invalid packets give typed errors")
    func invalid() {
        func error(_ bytes: [UInt8]) -> OpusPacketError? {
            do { _ = try OpusPacketInfo.parse(bytes); return nil } catch { return error }
        }
        #expect(error([]) == .empty)
        #expect(throws: OpusPacketError.empty) { try OpusTOC.parse([UInt8]()) }
        #expect(error([0x03]) == .truncated)
        #expect(error([0x03, 0x00]) == .zeroFrameCount)
        #expect(error([0x03, 0x80]) == .zeroFrameCount)
        #expect(error([UInt8(16 << 3 | 3), 49]) == .durationTooLong(samples: 49 * 120))
        #expect(error([UInt8(1 << 3 | 3), 7] + [UInt8](repeating: 0, count: 7)) == .durationTooLong(samples: 7 * 960))
        #expect(error([UInt8(3 << 3 | 3), 3]) == .durationTooLong(samples: 3 * 2880))
        #expect(error([0x02]) == .truncated)
        #expect(error([0x02, 252]) == .truncated)
        #expect(error([0x02, 10, 1, 2]) == .truncated)
        #expect(error([0x01, 1, 2, 3]) == .unevenCode1Length(payload: 3))
        #expect(error([0x03, 0x03, 1, 2, 3, 4]) == .unevenCBRLength(payload: 4, frames: 3))
        #expect(error([0x03, 0x41, 10]) == .paddingOverrun)
        #expect(error([0x03, 0x41]) == .truncated)
        #expect(error([0x03, 0x41, 255]) == .truncated)
        #expect(error([0x03, 0x82, 5, 1, 2]) == .truncated)
        #expect(error([0x03, 0x82, 252]) == .truncated)
        #expect(error([0x00] + [UInt8](repeating: 0, count: 1276)) == .frameTooLarge(length: 1276))
        #expect(error([0x01] + [UInt8](repeating: 0, count: 2 * 1276)) == .frameTooLarge(length: 1276))
        #expect(error([0x03, 0x01] + [UInt8](repeating: 0, count: 1276)) == .frameTooLarge(length: 1276))
    }

    /// Differential check against libopus's own parser on random and mutated packets.
    @Test("agrees with opus_packet_parse on 20000 random packets")
    func matchesLibopus() {
        var rng = MediaSplitMix64(seed: 0x0905)
        var accepted = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 1...40, using: &rng) + (Bool.random(using: &rng) ? 0 : Int.random(in: 0...1400, using: &rng))
            var packet = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if packet.count > 1 && Bool.random(using: &rng) { packet[1] = UInt8.random(in: 0...6, using: &rng) | (packet[1] & 0xC0) }
            var toc: UInt8 = 0
            var frames = [UnsafePointer<UInt8>?](repeating: nil, count: 48)
            var sizes = [Int16](repeating: 0, count: 48)
            let count = packet.withUnsafeBufferPointer { data in
                opus_packet_parse(data.baseAddress!, Int32(data.count), &toc, &frames, &sizes, nil)
            }
            let ours = try? OpusPacketInfo.parse(packet)
            // The allocation-free validator agrees with the full parse, error for error.
            #expect(Result { () throws(OpusPacketError) in try OpusPacketInfo.validatedSampleCount(packet) }
                    == Result { () throws(OpusPacketError) in try OpusPacketInfo.parse(packet).totalSamples })
            #expect((try? OpusPacketInfo.validatedSampleCount(packet[...].dropFirst(0))) == ours?.totalSamples)
            if count > 0 {
                accepted += 1
                #expect(ours?.frameCount == Int(count))
                #expect(ours?.frameLengths == sizes.prefix(Int(count)).map(Int.init))
                let samples = packet.withUnsafeBufferPointer { opus_packet_get_nb_samples($0.baseAddress!, Int32($0.count), 48_000) }
                #expect(ours?.totalSamples == Int(samples))
            } else {
                #expect(ours == nil, "libopus rejects \(packet.prefix(8)) (\(packet.count) bytes) but we accept it")
            }
        }
        #expect(accepted > 1000)
    }
}

@Suite("Opus fmtp parameters")
struct OpusParametersTests {
    @Test("Chromium's fmtp round trips exactly")
    func chromium() {
        let p = OpusParameters.parse("minptime=10;useinbandfec=1")
        #expect(p.minptime == 10)
        #expect(p.useInbandFEC == true)
        #expect(p.useDTX == nil && p.unknown.isEmpty)
        #expect(p.serialized() == "minptime=10;useinbandfec=1")
    }

    @Test("all known parameters, unknown ones kept, round trip")
    func full() {
        let text = "minptime=10; useinbandfec=1;usedtx=0;stereo=1;sprop-stereo=0;maxplaybackrate=16000;"
            + "sprop-maxcapturerate=24000;maxaveragebitrate=64000;cbr=1;ptime=20;maxptime=120;x-google-foo=bar;flag"
        let p = OpusParameters.parse(text)
        #expect(p == OpusParameters(minptime: 10, useInbandFEC: true, useDTX: false, stereo: true, spropStereo: false,
                                    maxPlaybackRate: 16000, spropMaxCaptureRate: 24000, maxAverageBitrate: 64000,
                                    cbr: true, ptime: 20, maxptime: 120,
                                    unknown: [OpusFmtpItem(key: "x-google-foo", value: "bar"),
                                              OpusFmtpItem(key: "flag", value: nil)]))
        #expect(p.serialized() == text.replacingOccurrences(of: " ", with: ""))
        #expect(OpusParameters.parse(p.serialized()) == p)
    }

    @Test("invalid values stay verbatim as unknown; keys are case-insensitive")
    func invalidValues() {
        let p = OpusParameters.parse("useinbandfec=2;maxaveragebitrate=1;STEREO=1;minptime=+10;minptime=10")
        #expect(p.useInbandFEC == nil)
        #expect(p.maxAverageBitrate == nil)
        #expect(p.stereo == true)
        #expect(p.minptime == 10)
        #expect(p.unknown == [OpusFmtpItem(key: "useinbandfec", value: "2"),
                              OpusFmtpItem(key: "maxaveragebitrate", value: "1"),
                              OpusFmtpItem(key: "minptime", value: "+10")])
        #expect(OpusParameters.parse(p.serialized()) == p)
        #expect(OpusParameters.parse("") == OpusParameters())
        #expect(OpusParameters().serialized() == "")
    }

    @Test("mutated fmtp strings round trip")
    func mutation() {
        var rng = MediaSplitMix64(seed: 42)
        let alphabet = Array("minptime=10;useinbandfec=1;usedtx=1;stereo=0;maxplaybackrate=48000; =;x".utf8)
        for _ in 0..<3000 {
            let length = Int.random(in: 0...60, using: &rng)
            let bytes = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            let p = OpusParameters.parse(String(decoding: bytes, as: UTF8.self))
            #expect(OpusParameters.parse(p.serialized()) == p)
        }
    }
}
