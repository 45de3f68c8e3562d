// libopus encoder and decoder wrappers (48 kHz, mono or stereo, Int16 PCM).
import COpus
import CShims

/// A libopus failure or a call with a bad argument.
public enum OpusCodecError: Error, Equatable, Sendable {
    /// libopus returned `code` (negative, `OPUS_*`); `message` is `opus_strerror(code)`.
    case libopus(code: Int32, message: String)
    /// Only 1 or 2 channels are supported.
    case unsupportedChannelCount(Int)
    /// PCM input has `actual` interleaved samples, the frame needs `expected`.
    case pcmSizeMismatch(expected: Int, actual: Int)
    /// A duration that libopus cannot take (not a multiple of 2.5 ms, or above 120 ms).
    case invalidFrameSize(samples: Int)

    static func check(_ code: Int32) throws(OpusCodecError) {
        if code < 0 { throw fromCode(code) }
    }

    static func fromCode(_ code: Int32) -> OpusCodecError {
        .libopus(code: code, message: String(cString: opus_strerror(code)))
    }
}

/// The libopus application mode.
public enum OpusApplication: Sendable, Equatable {
    /// Speech: favours SILK/hybrid, enables in-band FEC use.
    case voip
    /// General audio / music.
    case audio
    /// Lowest delay, CELT only.
    case restrictedLowDelay

    var code: Int32 {
        switch self {
        case .voip: OPUS_APPLICATION_VOIP
        case .audio: OPUS_APPLICATION_AUDIO
        case .restrictedLowDelay: OPUS_APPLICATION_RESTRICTED_LOWDELAY
        }
    }
}

/// The frame durations `OpusEncoder` produces; raw values are 48 kHz samples per channel.
public enum OpusFrameDuration: Int, Sendable, CaseIterable {
    case ms10 = 480
    case ms20 = 960
    case ms40 = 1920
    case ms60 = 2880

    /// Samples per channel at 48 kHz.
    public var samples: Int { rawValue }
    public var milliseconds: Int { rawValue / 48 }
}

/// A libopus encoder at 48 kHz.
///
/// Owns its `OpusEncoder*` and frees it in `deinit`. Not `Sendable`: use it from one task,
/// actor or event loop at a time.
public final class OpusEncoder {
    private let handle: OpaquePointer
    /// 1 (mono) or 2 (stereo).
    public let channels: Int
    public let application: OpusApplication
    /// Duration of each frame passed to `encode(_:)`.
    public let frameDuration: OpusFrameDuration
    /// The sample rate, always 48 kHz.
    public static let sampleRate = 48_000
    /// The largest packet this wrapper asks libopus to produce.
    public static let maxPacketBytes = 4000

    public init(channels: Int = 1, application: OpusApplication = .voip,
                frameDuration: OpusFrameDuration = .ms20) throws(OpusCodecError) {
        guard channels == 1 || channels == 2 else { throw .unsupportedChannelCount(channels) }
        var error: Int32 = OPUS_OK
        guard let handle = opus_encoder_create(48_000, Int32(channels), application.code, &error), error == OPUS_OK
        else { throw OpusCodecError.fromCode(error == OPUS_OK ? OPUS_ALLOC_FAIL : error) }
        self.handle = handle
        self.channels = channels
        self.application = application
        self.frameDuration = frameDuration
    }

    deinit { opus_encoder_destroy(handle) }

    /// Target bitrate in bit/s (500–512000), or `OPUS_AUTO`/`OPUS_BITRATE_MAX`.
    public func setBitrate(_ bitsPerSecond: Int) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_bitrate(handle, Int32(clamping: bitsPerSecond)))
    }

    /// The current target bitrate in bit/s.
    public func bitrate() throws(OpusCodecError) -> Int {
        var value: Int32 = 0
        try OpusCodecError.check(peerd_opus_get_bitrate(handle, &value))
        return Int(value)
    }

    /// Computational complexity 0–10.
    public func setComplexity(_ complexity: Int) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_complexity(handle, Int32(clamping: complexity)))
    }

    /// In-band forward error correction (LBRR, SILK and hybrid modes only).
    public func setInbandFEC(_ enabled: Bool) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_inband_fec(handle, enabled ? 1 : 0))
    }

    /// Expected packet loss in percent (0–100); FEC needs it above zero.
    public func setExpectedPacketLoss(percent: Int) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_packet_loss_perc(handle, Int32(clamping: percent)))
    }

    /// Discontinuous transmission: during silence, send a packet only every 400 ms.
    public func setDTX(_ enabled: Bool) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_dtx(handle, enabled ? 1 : 0))
    }

    /// Variable (default) or constant bitrate.
    public func setVBR(_ enabled: Bool) throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_set_vbr(handle, enabled ? 1 : 0))
    }

    /// Hints the signal type: true for voice, false for music.
    public func setSignalVoice(_ voice: Bool) throws(OpusCodecError) {
        try OpusCodecError.check(voice ? peerd_opus_set_signal_voice(handle) : peerd_opus_set_signal_music(handle))
    }

    /// Encoder delay in 48 kHz samples: the Ogg Opus pre-skip.
    public func lookahead() throws(OpusCodecError) -> Int {
        var value: Int32 = 0
        try OpusCodecError.check(peerd_opus_get_lookahead(handle, &value))
        return Int(value)
    }

    /// Whether the last encoded frame was in DTX.
    public func isInDTX() throws(OpusCodecError) -> Bool {
        var value: Int32 = 0
        try OpusCodecError.check(peerd_opus_get_in_dtx(handle, &value))
        return value != 0
    }

    /// Encodes one frame of interleaved PCM (`frameDuration.samples * channels` values).
    /// A 1–2 byte result means DTX/silence: such packets need not be sent.
    public func encode(_ pcm: [Int16]) throws(OpusCodecError) -> [UInt8] {
        let expected = frameDuration.samples * channels
        guard pcm.count == expected else { throw .pcmSizeMismatch(expected: expected, actual: pcm.count) }
        var output = [UInt8](repeating: 0, count: Self.maxPacketBytes)
        let length = pcm.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                opus_encode(handle, input.baseAddress!, Int32(frameDuration.samples), out.baseAddress!,
                            Int32(out.count))
            }
        }
        try OpusCodecError.check(length)
        output.removeSubrange(Int(length)...)
        return output
    }
}

/// A libopus decoder producing 48 kHz Int16 PCM.
///
/// Owns its `OpusDecoder*` and frees it in `deinit`. Not `Sendable`: use it from one task,
/// actor or event loop at a time.
public final class OpusDecoder {
    private let handle: OpaquePointer
    /// 1 (mono) or 2 (stereo) output channels.
    public let channels: Int
    /// The largest frame libopus decodes: 120 ms at 48 kHz.
    public static let maxFrameSamples = 5760

    public init(channels: Int = 1) throws(OpusCodecError) {
        guard channels == 1 || channels == 2 else { throw .unsupportedChannelCount(channels) }
        var error: Int32 = OPUS_OK
        guard let handle = opus_decoder_create(48_000, Int32(channels), &error), error == OPUS_OK
        else { throw OpusCodecError.fromCode(error == OPUS_OK ? OPUS_ALLOC_FAIL : error) }
        self.handle = handle
        self.channels = channels
    }

    deinit { opus_decoder_destroy(handle) }

    /// Decodes one packet to interleaved PCM (`samples per channel * channels` values).
    public func decode(_ packet: [UInt8]) throws(OpusCodecError) -> [Int16] {
        guard !packet.isEmpty else { throw OpusCodecError.fromCode(OPUS_INVALID_PACKET) }
        return try run(packet: packet, frameSize: Self.maxFrameSamples, fec: false)
    }

    /// Packet-loss concealment: `samples` per channel of synthesized audio for a lost packet.
    /// `samples` must be a multiple of 120 (2.5 ms) and at most 5760.
    public func decodeLoss(samples: Int) throws(OpusCodecError) -> [Int16] {
        try checkFrameSize(samples)
        return try run(packet: nil, frameSize: samples, fec: false)
    }

    /// Recovers a lost packet from the in-band FEC data of `nextPacket` (the one after it).
    /// `samples` must equal the lost packet's duration. Without FEC data in `nextPacket`,
    /// libopus conceals instead.
    public func decodeFEC(nextPacket: [UInt8], samples: Int) throws(OpusCodecError) -> [Int16] {
        try checkFrameSize(samples)
        guard !nextPacket.isEmpty else { throw OpusCodecError.fromCode(OPUS_INVALID_PACKET) }
        return try run(packet: nextPacket, frameSize: samples, fec: true)
    }

    /// Duration per channel of the last decoded or concealed packet.
    public func lastPacketDuration() throws(OpusCodecError) -> Int {
        var value: Int32 = 0
        try OpusCodecError.check(peerd_opus_decoder_get_last_packet_duration(handle, &value))
        return Int(value)
    }

    /// Resets the decoder state, as after a stream discontinuity.
    public func reset() throws(OpusCodecError) {
        try OpusCodecError.check(peerd_opus_decoder_reset(handle))
    }

    private func checkFrameSize(_ samples: Int) throws(OpusCodecError) {
        guard samples > 0, samples <= Self.maxFrameSamples, samples % 120 == 0 else {
            throw .invalidFrameSize(samples: samples)
        }
    }

    private func run(packet: [UInt8]?, frameSize: Int, fec: Bool) throws(OpusCodecError) -> [Int16] {
        var pcm = [Int16](repeating: 0, count: frameSize * channels)
        let decoded: Int32 = pcm.withUnsafeMutableBufferPointer { out in
            if let packet {
                packet.withUnsafeBufferPointer { data in
                    opus_decode(handle, data.baseAddress, Int32(clamping: data.count), out.baseAddress!,
                                Int32(frameSize), fec ? 1 : 0)
                }
            } else {
                opus_decode(handle, nil, 0, out.baseAddress!, Int32(frameSize), 0)
            }
        }
        try OpusCodecError.check(decoded)
        pcm.removeSubrange((Int(decoded) * channels)...)
        return pcm
    }
}
