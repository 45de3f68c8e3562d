// Opus packet structure (RFC 6716 §3.1–3.4) as carried in RTP (RFC 7587).
import Wire


/// The coding mode an Opus configuration number selects (RFC 6716 §3.1).
public enum OpusMode: String, Sendable, Equatable, CaseIterable {
    case silk, hybrid, celt
}

/// The audio bandwidth an Opus configuration number selects (RFC 6716 §2).
public enum OpusBandwidth: Int, Sendable, Equatable, Comparable, CaseIterable {
    /// Narrowband, 4 kHz.
    case narrowband = 4000
    /// Medium-band, 6 kHz.
    case mediumband = 6000
    /// Wideband, 8 kHz.
    case wideband = 8000
    /// Super-wideband, 12 kHz.
    case superWideband = 12000
    /// Fullband, 20 kHz.
    case fullband = 20000

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Why a byte sequence is not a valid Opus packet (RFC 6716 §3.4, requirements R1–R7).
public enum OpusPacketError: Error, Equatable, Sendable {
    /// The packet has no TOC byte (R1).
    case empty
    /// The packet ends before a length byte, the frame count byte or a frame it announces.
    case truncated
    /// A frame is longer than 1275 bytes (R2).
    case frameTooLarge(length: Int)
    /// A code 1 packet whose payload does not split into two equal frames (R3).
    case unevenCode1Length(payload: Int)
    /// A code 3 packet announcing zero frames (R5).
    case zeroFrameCount
    /// A code 3 packet whose frames last more than 120 ms (R5); `samples` is at 48 kHz.
    case durationTooLong(samples: Int)
    /// A CBR code 3 packet whose payload is not a multiple of the frame count (R6).
    case unevenCBRLength(payload: Int, frames: Int)
    /// Padding longer than what the packet holds (R6/R7).
    case paddingOverrun
}

/// The table-of-contents byte that starts every Opus packet (RFC 6716 §3.1).
public struct OpusTOC: Sendable, Equatable, Hashable {
    /// The raw TOC byte.
    public var byte: UInt8

    public init(byte: UInt8) { self.byte = byte }

    /// Configuration number 0–31 (top five bits).
    public var config: Int { Int(byte >> 3) }
    /// Whether the frames are coded as stereo.
    public var isStereo: Bool { byte & 0x04 != 0 }
    /// Frame count code 0–3: 0 one frame, 1 two equal frames, 2 two frames, 3 arbitrary count.
    public var frameCountCode: Int { Int(byte & 0x03) }

    public var mode: OpusMode {
        switch config {
        case 0...11: .silk
        case 12...15: .hybrid
        default: .celt
        }
    }

    public var bandwidth: OpusBandwidth {
        switch config {
        case 0...3: .narrowband
        case 4...7: .mediumband
        case 8...11: .wideband
        case 12...13: .superWideband
        case 14...15: .fullband
        case 16...19: .narrowband
        case 20...23: .wideband
        case 24...27: .superWideband
        default: .fullband
        }
    }

    /// Duration of one frame in 48 kHz samples (120 = 2.5 ms … 2880 = 60 ms).
    public var samplesPerFrame: Int {
        let c = config
        switch c {
        case 0...11: return [480, 960, 1920, 2880][c & 3]
        case 12...15: return [480, 960][c & 1]
        default: return [120, 240, 480, 960][c & 3]
        }
    }

    /// Duration of one frame in microseconds.
    public var frameDurationMicroseconds: Int { samplesPerFrame * 1000 / 48 }

    /// The TOC of a packet (its first byte).
    public static func parse(_ packet: some Collection<UInt8>) throws(OpusPacketError) -> OpusTOC {
        guard let first = packet.first else { throw .empty }
        return OpusTOC(byte: first)
    }
}

/// The frame layout of one Opus packet, validated against RFC 6716 §3.4.
public struct OpusPacketInfo: Sendable, Equatable {
    public var toc: OpusTOC
    /// Number of frames (1–48).
    public var frameCount: Int
    /// Byte length of each frame, in order.
    public var frameLengths: [Int]
    /// Bytes of padding at the end (code 3 only).
    public var paddingLength: Int
    /// For code 3: whether frames have individual lengths (VBR).
    public var isVBR: Bool

    /// Duration of one frame in 48 kHz samples.
    public var samplesPerFrame: Int { toc.samplesPerFrame }
    /// Total duration in 48 kHz samples.
    public var totalSamples: Int { frameCount * toc.samplesPerFrame }

    /// Maximum length of one frame (R2).
    public static let maxFrameLength = 1275
    /// Maximum duration of one packet in 48 kHz samples (120 ms).
    public static let maxPacketSamples = 5760

    public init(toc: OpusTOC, frameCount: Int, frameLengths: [Int], paddingLength: Int, isVBR: Bool) {
        self.toc = toc
        self.frameCount = frameCount
        self.frameLengths = frameLengths
        self.paddingLength = paddingLength
        self.isVBR = isVBR
    }

    /// Parses and validates `packet`.
    public static func parse(_ packet: [UInt8]) throws(OpusPacketError) -> OpusPacketInfo {
        let result = packet.withUnsafeBytes { raw -> Result<OpusPacketInfo, OpusPacketError> in
            do throws(OpusPacketError) { return .success(try parse(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Parses and validates `packet`.
    public static func parse(_ packet: UnsafeRawBufferPointer) throws(OpusPacketError) -> OpusPacketInfo {
        var reader = ByteReader(packet)
        guard let tocByte = reader.uint8() else { throw .empty }
        let toc = OpusTOC(byte: tocByte)
        switch toc.frameCountCode {
        case 0:
            let length = reader.remaining
            guard length <= maxFrameLength else { throw .frameTooLarge(length: length) }
            return OpusPacketInfo(toc: toc, frameCount: 1, frameLengths: [length], paddingLength: 0, isVBR: false)
        case 1:
            let payload = reader.remaining
            guard payload % 2 == 0 else { throw .unevenCode1Length(payload: payload) }
            guard payload / 2 <= maxFrameLength else { throw .frameTooLarge(length: payload / 2) }
            return OpusPacketInfo(toc: toc, frameCount: 2, frameLengths: [payload / 2, payload / 2],
                                  paddingLength: 0, isVBR: false)
        case 2:
            let first = try readFrameLength(&reader)
            let second = reader.remaining
            guard first <= second else { throw .truncated }
            let rest = second - first
            guard rest <= maxFrameLength else { throw .frameTooLarge(length: rest) }
            return OpusPacketInfo(toc: toc, frameCount: 2, frameLengths: [first, rest], paddingLength: 0, isVBR: true)
        default:
            guard let countByte = reader.uint8() else { throw .truncated }
            let count = Int(countByte & 0x3F)
            let vbr = countByte & 0x80 != 0
            let hasPadding = countByte & 0x40 != 0
            guard count > 0 else { throw .zeroFrameCount }
            let samples = count * toc.samplesPerFrame
            guard samples <= maxPacketSamples else { throw .durationTooLong(samples: samples) }
            var padding = 0
            if hasPadding {
                while true {
                    guard let p = reader.uint8() else { throw .truncated }
                    if p == 255 { padding += 254 } else { padding += Int(p); break }
                }
            }
            guard padding <= reader.remaining else { throw .paddingOverrun }
            var lengths: [Int] = []
            lengths.reserveCapacity(count)
            if vbr {
                var sum = 0
                for _ in 0..<(count - 1) {
                    let length = try readFrameLength(&reader)
                    lengths.append(length)
                    sum += length
                }
                let available = reader.remaining - padding
                guard available >= 0 else { throw .paddingOverrun }
                guard sum <= available else { throw .truncated }
                let last = available - sum
                guard last <= maxFrameLength else { throw .frameTooLarge(length: last) }
                lengths.append(last)
            } else {
                let payload = reader.remaining - padding
                guard payload % count == 0 else { throw .unevenCBRLength(payload: payload, frames: count) }
                let each = payload / count
                guard each <= maxFrameLength else { throw .frameTooLarge(length: each) }
                lengths = Array(repeating: each, count: count)
            }
            return OpusPacketInfo(toc: toc, frameCount: count, frameLengths: lengths, paddingLength: padding, isVBR: vbr)
        }
    }

    /// The duration of `packet` in 48 kHz samples after the same validation as `parse`
    /// (RFC 6716 §3.4), without building the frame length list (no allocation).
    public static func validatedSampleCount(_ packet: UnsafeRawBufferPointer) throws(OpusPacketError) -> Int {
        var reader = ByteReader(packet)
        guard let tocByte = reader.uint8() else { throw .empty }
        let toc = OpusTOC(byte: tocByte)
        switch toc.frameCountCode {
        case 0:
            guard reader.remaining <= maxFrameLength else { throw .frameTooLarge(length: reader.remaining) }
            return toc.samplesPerFrame
        case 1:
            let payload = reader.remaining
            guard payload % 2 == 0 else { throw .unevenCode1Length(payload: payload) }
            guard payload / 2 <= maxFrameLength else { throw .frameTooLarge(length: payload / 2) }
            return 2 * toc.samplesPerFrame
        case 2:
            let first = try readFrameLength(&reader)
            let second = reader.remaining
            guard first <= second else { throw .truncated }
            guard second - first <= maxFrameLength else { throw .frameTooLarge(length: second - first) }
            return 2 * toc.samplesPerFrame
        default:
            guard let countByte = reader.uint8() else { throw .truncated }
            let count = Int(countByte & 0x3F)
            guard count > 0 else { throw .zeroFrameCount }
            let samples = count * toc.samplesPerFrame
            guard samples <= maxPacketSamples else { throw .durationTooLong(samples: samples) }
            var padding = 0
            if countByte & 0x40 != 0 {
                while true {
                    guard let p = reader.uint8() else { throw .truncated }
                    if p == 255 { padding += 254 } else { padding += Int(p); break }
                }
            }
            guard padding <= reader.remaining else { throw .paddingOverrun }
            if countByte & 0x80 != 0 {
                var sum = 0
                for _ in 0..<(count - 1) { sum += try readFrameLength(&reader) }
                let available = reader.remaining - padding
                guard available >= 0 else { throw .paddingOverrun }
                guard sum <= available else { throw .truncated }
                guard available - sum <= maxFrameLength else { throw .frameTooLarge(length: available - sum) }
            } else {
                let payload = reader.remaining - padding
                guard payload % count == 0 else { throw .unevenCBRLength(payload: payload, frames: count) }
                guard payload / count <= maxFrameLength else { throw .frameTooLarge(length: payload / count) }
            }
            return samples
        }
    }

    /// `validatedSampleCount` of a byte array.
    public static func validatedSampleCount(_ packet: [UInt8]) throws(OpusPacketError) -> Int {
        let result = packet.withUnsafeBytes { raw -> Result<Int, OpusPacketError> in
            do throws(OpusPacketError) { return .success(try validatedSampleCount(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `validatedSampleCount` of a byte slice (e.g. an RTP payload inside its datagram).
    public static func validatedSampleCount(_ packet: ArraySlice<UInt8>) throws(OpusPacketError) -> Int {
        let result = packet.withUnsafeBytes { raw -> Result<Int, OpusPacketError> in
            do throws(OpusPacketError) { return .success(try validatedSampleCount(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private static func readFrameLength(_ reader: inout ByteReader) throws(OpusPacketError) -> Int {
        guard let first = reader.uint8() else { throw .truncated }
        if first < 252 { return Int(first) }
        guard let second = reader.uint8() else { throw .truncated }
        return Int(second) * 4 + Int(first)
    }
}
