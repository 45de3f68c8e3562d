import COpus
import Foundation
import Testing
@testable import RTP

@Suite("libopus encoder and decoder")
struct OpusCodecTests {
    /// Encodes `seconds` of a tone, returns the packets.
    static func encodeTone(_ encoder: RTP.OpusEncoder, frequency: Double = 440, seconds: Double) throws -> [[UInt8]] {
        var tone = ToneGenerator(frequency: frequency, amplitude: 0.5, channels: encoder.channels)
        let frames = Int(seconds * 48_000) / encoder.frameDuration.samples
        return try (0..<frames).map { _ in try encoder.encode(tone.next(frames: encoder.frameDuration.samples)) }
    }

    /// A voiced, speech-like signal: 20 harmonics of a 110–170 Hz glide, 4 Hz syllable envelope.
    static func voiceLike(frames: Int) -> [Int16] {
        var phase = 0.0
        return (0..<frames).map { i in
            let t = Double(i) / 48_000
            phase += 2 * Double.pi * (140 + 30 * sin(2 * Double.pi * 3 * t)) / 48_000
            var value = 0.0
            for h in 1...20 { value += sin(Double(h) * phase) / Double(h) * ([3, 4, 12].contains(h) ? 2 : 1) }
            let envelope = 0.6 + 0.4 * sin(2 * Double.pi * 4 * t)
            return Int16(clamping: Int((0.12 * 32767 * value * envelope).rounded()))
        }
    }

    @Test("a 440 Hz tone survives encode and decode", arguments: [1, 2], OpusFrameDuration.allCases)
    func toneRoundTrip(channels: Int, duration: OpusFrameDuration) throws {
        let encoder = try RTP.OpusEncoder(channels: channels, application: .audio, frameDuration: duration)
        try encoder.setBitrate(64_000)
        try encoder.setComplexity(5)
        #expect(try encoder.bitrate() == 64_000)
        let decoder = try RTP.OpusDecoder(channels: channels)
        let packets = try Self.encodeTone(encoder, seconds: 1.2)
        var pcm: [Int16] = []
        for packet in packets {
            let info = try OpusPacketInfo.parse(packet)
            #expect(info.totalSamples == duration.samples)
            #expect(info.toc.isStereo == (channels == 2))
            #expect(Int(opus_packet_get_nb_samples(packet, Int32(packet.count), 48_000)) == info.totalSamples)
            let decoded = try decoder.decode(packet)
            #expect(decoded.count == duration.samples * channels)
            #expect(try decoder.lastPacketDuration() == duration.samples)
            pcm += decoded
        }
        let lookahead = try encoder.lookahead()
        #expect(lookahead > 0 && lookahead < 1000)
        let left = stride(from: lookahead * channels, to: pcm.count, by: channels).map { pcm[$0] }
        let frequency = try #require(AudioAnalysis.dominantFrequency(samples: left, sampleRate: 48_000))
        #expect(abs(frequency - 440) < 2, "decoded tone at \(frequency) Hz")
        let level = AudioAnalysis.dBov(samples: left)
        #expect(abs(level - (20 * log10(0.5) - 3.01)) < 1.5, "level \(level) dBov")
    }

    @Test("packet-loss concealment returns the requested duration")
    func concealment() throws {
        let encoder = try RTP.OpusEncoder(channels: 1)
        let decoder = try RTP.OpusDecoder(channels: 1)
        for packet in try Self.encodeTone(encoder, seconds: 0.2) { _ = try decoder.decode(packet) }
        for samples in [120, 480, 960, 1920, 2880, 5760] {
            let pcm = try decoder.decodeLoss(samples: samples)
            #expect(pcm.count == samples)
        }
        let stereo = try RTP.OpusDecoder(channels: 2)
        #expect(try stereo.decodeLoss(samples: 960).count == 1920)
        #expect(throws: OpusCodecError.invalidFrameSize(samples: 100)) { try decoder.decodeLoss(samples: 100) }
        #expect(throws: OpusCodecError.invalidFrameSize(samples: 0)) { try decoder.decodeLoss(samples: 0) }
        #expect(throws: OpusCodecError.invalidFrameSize(samples: 5880)) { try decoder.decodeLoss(samples: 5880) }
    }

    @Test("in-band FEC recovers a lost packet better than concealment")
    func forwardErrorCorrection() throws {
        let encoder = try RTP.OpusEncoder(channels: 1, application: .voip)
        try encoder.setBitrate(32_000)
        try encoder.setInbandFEC(true)
        try encoder.setExpectedPacketLoss(percent: 20)
        try encoder.setSignalVoice(true)
        // SILK only codes FEC (LBRR) for frames its VAD calls speech: a pure tone is not enough.
        let pcm = Self.voiceLike(frames: 50 * 960)
        let packets = try (0..<50).map { try encoder.encode(Array(pcm[($0 * 960)..<($0 * 960 + 960)])) }
        let lost = 30
        #expect(try OpusPacketInfo.parse(packets[lost + 1]).toc.mode != .celt, "FEC needs SILK or hybrid")

        let reference = try RTP.OpusDecoder()
        let recovered = try RTP.OpusDecoder()
        let concealed = try RTP.OpusDecoder()
        for packet in packets[..<lost] {
            _ = try reference.decode(packet)
            _ = try recovered.decode(packet)
            _ = try concealed.decode(packet)
        }
        let truth = try reference.decode(packets[lost])
        let fec = try recovered.decodeFEC(nextPacket: packets[lost + 1], samples: 960)
        let plc = try concealed.decodeLoss(samples: 960)
        #expect(fec.count == 960 && plc.count == 960)
        func error(_ a: [Int16]) -> Double {
            AudioAnalysis.rms(samples: zip(a, truth).map { Int16(clamping: Int($0) - Int($1)) })
        }
        let truthLevel = AudioAnalysis.rms(samples: truth)
        #expect(truthLevel > 0.03)
        #expect(error(fec) < 0.5 * truthLevel, "FEC error \(error(fec)) vs level \(truthLevel)")
        #expect(fec != plc)
        #expect(error(fec) < error(plc), "FEC \(error(fec)) should beat PLC \(error(plc))")
        // Decoding continues normally with the packet that carried the FEC data.
        #expect(try recovered.decode(packets[lost + 1]).count == 960)
    }

    @Test("DTX produces tiny packets during silence")
    func dtx() throws {
        let encoder = try RTP.OpusEncoder(channels: 1, application: .voip)
        try encoder.setDTX(true)
        let silence = [Int16](repeating: 0, count: 960)
        var tiny = 0
        var sawDTXState = false
        for index in 0..<50 {
            let size = try encoder.encode(silence).count
            if index >= 20 && size <= 2 {
                tiny += 1
                sawDTXState = try sawDTXState || encoder.isInDTX()
            }
        }
        // After a short hangover, only a periodic refresh packet is larger than 2 bytes.
        #expect(tiny >= 25, "\(tiny) of 30 packets were DTX")
        #expect(sawDTXState)
    }

    @Test("errors carry libopus's code and text")
    func errors() throws {
        #expect(throws: OpusCodecError.unsupportedChannelCount(3)) { try RTP.OpusEncoder(channels: 3) }
        #expect(throws: OpusCodecError.unsupportedChannelCount(0)) { try RTP.OpusDecoder(channels: 0) }
        let encoder = try RTP.OpusEncoder(channels: 2)
        #expect(throws: OpusCodecError.pcmSizeMismatch(expected: 1920, actual: 960)) {
            try encoder.encode([Int16](repeating: 0, count: 960))
        }
        let badArg = OpusCodecError.libopus(code: OPUS_BAD_ARG, message: String(cString: opus_strerror(OPUS_BAD_ARG)))
        #expect(throws: badArg) { try encoder.setComplexity(11) }
        #expect(throws: badArg) { try encoder.setExpectedPacketLoss(percent: 101) }
        let decoder = try RTP.OpusDecoder()
        let invalid = OpusCodecError.libopus(code: OPUS_INVALID_PACKET, message: "corrupted stream")
        #expect(throws: invalid) { try decoder.decode([0x03, 0x00]) }
        #expect(throws: invalid) { try decoder.decode([]) }
        #expect(throws: invalid) { try decoder.decodeFEC(nextPacket: [], samples: 960) }
    }
}
