/// Why an RFC 8285 header extension or a typed element value is invalid.
public enum RTPHeaderExtensionError: Error, Equatable, Sendable {
    /// The profile is neither 0xBEDE (one-byte) nor 0x100X (two-byte).
    case unsupportedProfile(UInt16)
    /// An element's declared length runs past the end of the extension data.
    case elementOverrun(id: UInt8, length: Int, available: Int)
    /// Builder: id 0 (reserved for padding) cannot carry data.
    case invalidID(UInt8)
    /// Builder: element data longer than 255 bytes.
    case elementTooLong(id: UInt8, length: Int)
    /// Builder: total data larger than 65535 words.
    case extensionTooLong(length: Int)
    /// A typed value has the wrong number of bytes.
    case lengthMismatch(expected: Int, actual: Int)
    /// A typed value is empty or out of range.
    case invalidValue
    /// A string value is not UTF-8.
    case invalidUTF8
}

/// One RFC 8285 header extension element: local id and data (a view of the packet when parsed).
public struct RTPHeaderExtensionElement: Sendable, Hashable {
    public var id: UInt8
    public var data: ArraySlice<UInt8>

    @inlinable public init(id: UInt8, data: ArraySlice<UInt8>) {
        self.id = id
        self.data = data
    }

    @inlinable public init(id: UInt8, data: [UInt8]) { self.init(id: id, data: data[...]) }

    /// An element carrying the serialized form of a typed value.
    public init<Value: RTPHeaderExtensionValue>(id: UInt8, value: Value) {
        self.init(id: id, data: value.serialize())
    }
}

extension RTPHeaderExtension {
    /// Profile of the one-byte element form.
    public static let oneByteProfile: UInt16 = 0xBEDE
    /// Profile of the two-byte element form, without the 4 application bits.
    public static let twoByteProfile: UInt16 = 0x1000

    @inlinable public var isOneByte: Bool { profile == Self.oneByteProfile }
    @inlinable public var isTwoByte: Bool { profile & 0xFFF0 == Self.twoByteProfile }

    /// Visits each element in order. Padding bytes are skipped; in the one-byte form id 15 stops
    /// parsing (RFC 8285 §4.2). `visit` returns false to stop early.
    @inlinable public func forEachElement(
        _ visit: (UInt8, ArraySlice<UInt8>) -> Bool
    ) throws(RTPHeaderExtensionError) {
        var i = data.startIndex
        let end = data.endIndex
        if isOneByte {
            while i < end {
                let byte = data[i]
                let id = byte >> 4
                if id == 0 { i += 1; continue }
                if id == 15 { return }
                let length = Int(byte & 0x0F) + 1
                guard length <= end - i - 1 else {
                    throw .elementOverrun(id: id, length: length, available: end - i - 1)
                }
                if !visit(id, data[(i + 1)..<(i + 1 + length)]) { return }
                i += 1 + length
            }
        } else if isTwoByte {
            while i < end {
                let id = data[i]
                if id == 0 { i += 1; continue }
                guard i + 1 < end else { throw .elementOverrun(id: id, length: 1, available: 0) }
                let length = Int(data[i + 1])
                guard length <= end - i - 2 else {
                    throw .elementOverrun(id: id, length: length, available: end - i - 2)
                }
                if !visit(id, data[(i + 2)..<(i + 2 + length)]) { return }
                i += 2 + length
            }
        } else {
            throw .unsupportedProfile(profile)
        }
    }

    /// All elements, in order.
    public func elements() throws(RTPHeaderExtensionError) -> [RTPHeaderExtensionElement] {
        var result = [RTPHeaderExtensionElement]()
        try forEachElement { id, bytes in
            result.append(RTPHeaderExtensionElement(id: id, data: bytes))
            return true
        }
        return result
    }

    /// The data of the first element with `id` (no allocation), or nil.
    @inlinable public func element(id: UInt8) throws(RTPHeaderExtensionError) -> ArraySlice<UInt8>? {
        var found: ArraySlice<UInt8>?
        try forEachElement { elementID, bytes in
            if elementID == id { found = bytes; return false }
            return true
        }
        return found
    }

    /// Builds an extension from elements: the one-byte form when every id is 1...14 and every data
    /// is 1...16 bytes, else the two-byte form with `appBits` (low 4 bits). Zero-padded to 4 bytes.
    public init(elements: [RTPHeaderExtensionElement], appBits: UInt8 = 0) throws(RTPHeaderExtensionError) {
        let oneByte = elements.allSatisfy { (1...14).contains($0.id) && (1...16).contains($0.data.count) }
        var out = [UInt8]()
        out.reserveCapacity(elements.reduce(0) { $0 + 2 + $1.data.count } + 3)
        for element in elements {
            guard element.id != 0 else { throw .invalidID(0) }
            if oneByte {
                out.append(element.id << 4 | UInt8(element.data.count - 1))
            } else {
                guard element.data.count <= 255 else {
                    throw .elementTooLong(id: element.id, length: element.data.count)
                }
                out.append(element.id)
                out.append(UInt8(element.data.count))
            }
            out.append(contentsOf: element.data)
        }
        while out.count % 4 != 0 { out.append(0) }
        guard out.count <= 0xFFFF * 4 else { throw .extensionTooLong(length: out.count) }
        self.init(profile: oneByte ? Self.oneByteProfile : Self.twoByteProfile | UInt16(appBits & 0x0F), data: out)
    }
}

/// Extension URIs as negotiated with `a=extmap`.
public enum RTPHeaderExtensionURI {
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    public static let absSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    public static let transportWideCC =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    public static let sdesMid = "urn:ietf:params:rtp-hdrext:sdes:mid"
}

/// A typed header extension value with its URI and element-data codec.
public protocol RTPHeaderExtensionValue: Sendable, Equatable {
    static var uri: String { get }
    static func parse(from data: ArraySlice<UInt8>) throws(RTPHeaderExtensionError) -> Self
    func serialize() -> [UInt8]
}

extension RTPHeaderExtensionValue {
    public static func parse(from data: [UInt8]) throws(RTPHeaderExtensionError) -> Self {
        try parse(from: data[...])
    }
}

/// Client-to-mixer audio level (RFC 6464): voice activity flag and level in -dBov (0 loudest).
public struct AudioLevelExtension: RTPHeaderExtensionValue, Hashable {
    public static let uri = RTPHeaderExtensionURI.audioLevel
    public var voiceActivity: Bool
    /// 0...127, the level in -dBov (127 is silence or quieter).
    public var level: UInt8

    /// `level` above 127 is clamped to 127.
    public init(voiceActivity: Bool, level: UInt8) {
        self.voiceActivity = voiceActivity
        self.level = min(level, 127)
    }

    public static func parse(from data: ArraySlice<UInt8>) throws(RTPHeaderExtensionError) -> Self {
        guard data.count == 1, let byte = data.first else { throw .lengthMismatch(expected: 1, actual: data.count) }
        return AudioLevelExtension(voiceActivity: byte & 0x80 != 0, level: byte & 0x7F)
    }

    public func serialize() -> [UInt8] { [(voiceActivity ? 0x80 : 0) | (level & 0x7F)] }
}

/// Absolute send time: 24-bit 6.18 fixed point seconds, wrapping every 64 s.
public struct AbsSendTimeExtension: RTPHeaderExtensionValue, Hashable {
    public static let uri = RTPHeaderExtensionURI.absSendTime
    /// The 24-bit value (units of 2^-18 s).
    public var rawValue: UInt32

    /// Keeps the low 24 bits of `rawValue`.
    public init(rawValue: UInt32) { self.rawValue = rawValue & 0xFF_FFFF }

    /// From seconds (taken modulo 64).
    public init(seconds: Double) {
        let wrapped = seconds.isFinite ? seconds - 64 * (seconds / 64).rounded(.down) : 0
        self.init(rawValue: UInt32(truncatingIfNeeded: NTPTime.fixedPoint(wrapped, scale: 262_144.0, max: 0xFF_FFFF)))
    }

    /// From an NTP time: bits 14...37 of the 64-bit value.
    public init(ntp: NTPTime) { self.init(rawValue: UInt32(truncatingIfNeeded: ntp.rawValue >> 14)) }

    /// Seconds in 0..<64.
    public var seconds: Double { Double(rawValue) / 262_144.0 }

    public static func parse(from data: ArraySlice<UInt8>) throws(RTPHeaderExtensionError) -> Self {
        guard data.count == 3 else { throw .lengthMismatch(expected: 3, actual: data.count) }
        return AbsSendTimeExtension(rawValue: data.rtpU24(data.startIndex))
    }

    public func serialize() -> [UInt8] {
        [UInt8(truncatingIfNeeded: rawValue >> 16), UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)]
    }
}

/// Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01).
public struct TransportSequenceNumberExtension: RTPHeaderExtensionValue, Hashable {
    public static let uri = RTPHeaderExtensionURI.transportWideCC
    public var sequenceNumber: UInt16

    public init(sequenceNumber: UInt16) { self.sequenceNumber = sequenceNumber }

    public static func parse(from data: ArraySlice<UInt8>) throws(RTPHeaderExtensionError) -> Self {
        guard data.count == 2 else { throw .lengthMismatch(expected: 2, actual: data.count) }
        return TransportSequenceNumberExtension(sequenceNumber: data.rtpU16(data.startIndex))
    }

    public func serialize() -> [UInt8] {
        [UInt8(truncatingIfNeeded: sequenceNumber >> 8), UInt8(truncatingIfNeeded: sequenceNumber)]
    }
}

/// The media identification (`sdes:mid`, RFC 7941 / RFC 8843) as a header extension string.
///
/// Parsing stops at the first NUL byte (some senders pad); an empty value is invalid. One-byte
/// elements carry 1...16 bytes; longer values need the two-byte form (the builder picks it).
public struct SDESMidExtension: RTPHeaderExtensionValue, Hashable {
    public static let uri = RTPHeaderExtensionURI.sdesMid
    public var mid: String

    public init(mid: String) { self.mid = mid }

    public static func parse(from data: ArraySlice<UInt8>) throws(RTPHeaderExtensionError) -> Self {
        let bytes = data.prefix { $0 != 0 }
        guard !bytes.isEmpty else { throw .invalidValue }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        return SDESMidExtension(mid: text)
    }

    public func serialize() -> [UInt8] { Array(mid.utf8) }
}
