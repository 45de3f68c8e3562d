// Ogg Opus identification and comment headers (RFC 7845 §5).
import Wire

/// Errors of the Ogg Opus headers, reader and writer.
public enum OggOpusError: Error, Equatable, Sendable {
    /// A header packet does not start with the expected magic ("OpusHead" / "OpusTags").
    case badMagic(expected: String)
    /// OpusHead version with a major part other than 0 (RFC 7845 §5.1).
    case unsupportedVersion(UInt8)
    /// Channel count 0, or not 1–2 for mapping family 0.
    case invalidChannelCount(Int)
    /// Stream/coupled counts or mapping table inconsistent.
    case invalidChannelMapping
    /// A header ends before a field or a length field points past its end.
    case truncated
    /// A vendor string or comment is not valid UTF-8.
    case invalidUTF8
    /// The stream ended or continued without the two header packets.
    case missingHeaders
    /// An Ogg page error underneath.
    case page(OggPageError)
    /// Writing to the output failed.
    case output(OggOutputError)
    /// An audio packet is not a valid Opus packet.
    case invalidPacket(OpusPacketError)
    /// A granule position below the previous one.
    case granuleDecreased(previous: Int64, new: Int64)
    /// An end trim outside the last packet (or with no packet to trim).
    case invalidEndTrim(granulePosition: Int64)
    /// The writer was already finished.
    case finished
}

/// The Ogg Opus identification header, "OpusHead" (RFC 7845 §5.1).
public struct OpusHead: Sendable, Equatable {
    public static let magic: [UInt8] = Array("OpusHead".utf8)

    /// Encapsulation version; 1 for this specification (major part must be 0).
    public var version: UInt8
    /// Output channel count, 1–255.
    public var channelCount: Int
    /// 48 kHz samples to discard from the decoder output at the start.
    public var preSkip: UInt16
    /// Sample rate of the original input (informational), 0 if unknown.
    public var inputSampleRate: UInt32
    /// Gain to apply to the output, Q7.8 dB.
    public var outputGain: Int16
    /// Channel mapping family: 0 = mono/stereo in one stream.
    public var mappingFamily: UInt8
    /// For family ≠ 0: number of Opus streams.
    public var streamCount: UInt8
    /// For family ≠ 0: how many streams are coupled (stereo).
    public var coupledCount: UInt8
    /// For family ≠ 0: one entry per output channel.
    public var channelMapping: [UInt8]

    /// A family-0 header (mono or stereo).
    public init(channelCount: Int, preSkip: UInt16, inputSampleRate: UInt32 = 48_000, outputGain: Int16 = 0) {
        self.version = 1
        self.channelCount = channelCount
        self.preSkip = preSkip
        self.inputSampleRate = inputSampleRate
        self.outputGain = outputGain
        self.mappingFamily = 0
        self.streamCount = 1
        self.coupledCount = channelCount == 2 ? 1 : 0
        self.channelMapping = []
    }

    public init(version: UInt8, channelCount: Int, preSkip: UInt16, inputSampleRate: UInt32, outputGain: Int16,
                mappingFamily: UInt8, streamCount: UInt8, coupledCount: UInt8, channelMapping: [UInt8]) {
        self.version = version
        self.channelCount = channelCount
        self.preSkip = preSkip
        self.inputSampleRate = inputSampleRate
        self.outputGain = outputGain
        self.mappingFamily = mappingFamily
        self.streamCount = streamCount
        self.coupledCount = coupledCount
        self.channelMapping = channelMapping
    }

    public func serialized() -> [UInt8] {
        var out = Self.magic
        out.append(version)
        out.append(UInt8(clamping: channelCount))
        out.appendLittleEndian(preSkip)
        out.appendLittleEndian(inputSampleRate)
        out.appendLittleEndian(UInt16(bitPattern: outputGain))
        out.append(mappingFamily)
        if mappingFamily != 0 {
            out.append(streamCount)
            out.append(coupledCount)
            out += channelMapping
        }
        return out
    }

    public static func parse(_ bytes: [UInt8]) throws(OggOpusError) -> OpusHead {
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else { throw .badMagic(expected: "OpusHead") }
        guard bytes.count >= 19 else { throw .truncated }
        let version = bytes[8]
        guard version & 0xF0 == 0 else { throw .unsupportedVersion(version) }
        let channels = Int(bytes[9])
        guard channels > 0 else { throw .invalidChannelCount(channels) }
        let preSkip = UInt16(bytes[10]) | UInt16(bytes[11]) << 8
        let rate = UInt32(bytes[12]) | UInt32(bytes[13]) << 8 | UInt32(bytes[14]) << 16 | UInt32(bytes[15]) << 24
        let gain = Int16(bitPattern: UInt16(bytes[16]) | UInt16(bytes[17]) << 8)
        let family = bytes[18]
        if family == 0 {
            guard channels <= 2 else { throw .invalidChannelCount(channels) }
            return OpusHead(version: version, channelCount: channels, preSkip: preSkip, inputSampleRate: rate,
                            outputGain: gain, mappingFamily: 0, streamCount: 1,
                            coupledCount: channels == 2 ? 1 : 0, channelMapping: [])
        }
        guard bytes.count >= 21 + channels else { throw .truncated }
        let streams = bytes[19]
        let coupled = bytes[20]
        guard streams > 0, coupled <= streams, Int(streams) + Int(coupled) <= 255 else { throw .invalidChannelMapping }
        let mapping = Array(bytes[21..<(21 + channels)])
        let decoded = Int(streams) + Int(coupled)
        guard mapping.allSatisfy({ $0 == 255 || Int($0) < decoded }) else { throw .invalidChannelMapping }
        return OpusHead(version: version, channelCount: channels, preSkip: preSkip, inputSampleRate: rate,
                        outputGain: gain, mappingFamily: family, streamCount: streams, coupledCount: coupled,
                        channelMapping: mapping)
    }
}

/// The Ogg Opus comment header, "OpusTags" (RFC 7845 §5.2).
public struct OpusTags: Sendable, Equatable {
    public static let magic: [UInt8] = Array("OpusTags".utf8)

    public var vendor: String
    /// User comments, conventionally "KEY=value".
    public var comments: [String]

    public init(vendor: String, comments: [String] = []) {
        self.vendor = vendor
        self.comments = comments
    }

    public func serialized() -> [UInt8] {
        var out = Self.magic
        let vendorBytes = Array(vendor.utf8)
        out.appendLittleEndian(UInt32(vendorBytes.count))
        out += vendorBytes
        out.appendLittleEndian(UInt32(comments.count))
        for comment in comments {
            let bytes = Array(comment.utf8)
            out.appendLittleEndian(UInt32(bytes.count))
            out += bytes
        }
        return out
    }

    public static func parse(_ bytes: [UInt8]) throws(OggOpusError) -> OpusTags {
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else { throw .badMagic(expected: "OpusTags") }
        var offset = 8
        func length() throws(OggOpusError) -> Int {
            guard bytes.count - offset >= 4 else { throw .truncated }
            defer { offset += 4 }
            return Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16
                | Int(bytes[offset + 3]) << 24
        }
        func string() throws(OggOpusError) -> String {
            let count = try length()
            guard bytes.count - offset >= count else { throw .truncated }
            defer { offset += count }
            guard let value = String(validating: bytes[offset..<(offset + count)], as: UTF8.self) else {
                throw .invalidUTF8
            }
            return value
        }
        let vendor = try string()
        let count = try length()
        guard count <= (bytes.count - offset) / 4 else { throw .truncated }
        var comments: [String] = []
        comments.reserveCapacity(count)
        for _ in 0..<count { comments.append(try string()) }
        return OpusTags(vendor: vendor, comments: comments)
    }
}
