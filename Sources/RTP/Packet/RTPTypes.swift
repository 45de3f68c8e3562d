/// RTP synchronization (or contributing) source identifier (RFC 3550 §5.1).
public struct SSRC: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public var rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { rawValue = value }
    @inlinable public init(integerLiteral value: UInt32) { rawValue = value }

    @inlinable public static func < (lhs: SSRC, rhs: SSRC) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "SSRC(\(rawValue))" }
}

/// A 7-bit RTP payload type (0...127).
public struct PayloadType: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public let rawValue: UInt8

    /// Nil when `rawValue` does not fit in 7 bits.
    @inlinable public init?(rawValue: UInt8) {
        guard rawValue <= 127 else { return nil }
        self.rawValue = rawValue
    }

    /// The low 7 bits of `byte` (the marker bit is dropped).
    @inlinable init(masking byte: UInt8) { rawValue = byte & 0x7F }

    /// A literal must be in 0...127 (checked at run time); use `init?(rawValue:)` for other values.
    public init(integerLiteral value: UInt8) {
        precondition(value <= 127, "payload type literal out of range")
        rawValue = value
    }

    public var description: String { "PT(\(rawValue))" }
}

/// A 16-bit RTP sequence number with wrap-aware ordering (RFC 1982 serial arithmetic).
///
/// `a < b` when `b` is 1...32767 steps ahead of `a` modulo 2^16. Two numbers exactly 32768 apart
/// are unordered (neither is less), as RFC 1982 leaves that case undefined.
public struct SequenceNumber: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public var rawValue: UInt16

    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt16) { rawValue = value }
    @inlinable public init(integerLiteral value: UInt16) { rawValue = value }

    /// Signed steps from `self` to `other`, in -32768...32767.
    @inlinable public func distance(to other: SequenceNumber) -> Int {
        Int(Int16(bitPattern: other.rawValue &- rawValue))
    }

    /// The number `n` steps ahead (or behind when negative), modulo 2^16.
    @inlinable public func advanced(by n: Int) -> SequenceNumber {
        SequenceNumber(UInt16(truncatingIfNeeded: Int(rawValue) &+ n))
    }

    @inlinable public static func < (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool {
        let d = rhs.rawValue &- lhs.rawValue
        return d != 0 && d < 0x8000
    }

    /// Signed difference `lhs - rhs` modulo 2^16, in -32768...32767.
    @inlinable public static func - (lhs: SequenceNumber, rhs: SequenceNumber) -> Int {
        rhs.distance(to: lhs)
    }

    @inlinable public static func + (lhs: SequenceNumber, rhs: Int) -> SequenceNumber { lhs.advanced(by: rhs) }

    public var description: String { "seq(\(rawValue))" }
}

/// A 32-bit RTP media timestamp with wrap-aware ordering and signed difference.
///
/// `a < b` when `b` is 1...2^31-1 ticks ahead of `a` modulo 2^32.
public struct RTPTimestamp: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public var rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { rawValue = value }
    @inlinable public init(integerLiteral value: UInt32) { rawValue = value }

    /// Signed ticks from `self` to `other`, in -2^31...2^31-1.
    @inlinable public func distance(to other: RTPTimestamp) -> Int64 {
        Int64(Int32(bitPattern: other.rawValue &- rawValue))
    }

    /// The timestamp `n` ticks ahead (or behind when negative), modulo 2^32.
    @inlinable public func advanced(by n: Int64) -> RTPTimestamp {
        RTPTimestamp(UInt32(truncatingIfNeeded: Int64(rawValue) &+ n))
    }

    @inlinable public static func < (lhs: RTPTimestamp, rhs: RTPTimestamp) -> Bool {
        let d = rhs.rawValue &- lhs.rawValue
        return d != 0 && d < 0x8000_0000
    }

    /// Signed difference `lhs - rhs` modulo 2^32, in -2^31...2^31-1.
    @inlinable public static func - (lhs: RTPTimestamp, rhs: RTPTimestamp) -> Int64 {
        rhs.distance(to: lhs)
    }

    @inlinable public static func + (lhs: RTPTimestamp, rhs: Int64) -> RTPTimestamp { lhs.advanced(by: rhs) }

    public var description: String { "ts(\(rawValue))" }
}

/// Extends 16-bit sequence numbers to 64 bits across wrap-around (RFC 3550 A.1 style).
///
/// Each number is placed nearest to the highest extended value seen so far, so late packets from
/// before a wrap (65535 arriving after 0) unwrap below it. Values can be negative when a packet
/// older than the first one arrives.
public struct SequenceUnwrapper: Sendable, Equatable {
    /// The highest extended value returned so far; nil before the first call.
    public private(set) var highest: Int64?

    public init() {}

    /// The extended value of `sequenceNumber`, without updating the state.
    @inlinable public func peek(_ sequenceNumber: SequenceNumber) -> Int64 {
        guard let highest else { return Int64(sequenceNumber.rawValue) }
        let reference = SequenceNumber(UInt16(truncatingIfNeeded: highest))
        return highest &+ Int64(reference.distance(to: sequenceNumber))
    }

    /// The extended value of `sequenceNumber`; advances the highest value when it is newer.
    public mutating func unwrap(_ sequenceNumber: SequenceNumber) -> Int64 {
        let extended = peek(sequenceNumber)
        if highest.map({ extended > $0 }) ?? true { highest = extended }
        return extended
    }
}

/// Extends 32-bit RTP timestamps to 64 bits across wrap-around, tolerating reordering.
public struct TimestampUnwrapper: Sendable, Equatable {
    /// The highest extended value returned so far; nil before the first call.
    public private(set) var highest: Int64?

    public init() {}

    /// The extended value of `timestamp`, without updating the state.
    @inlinable public func peek(_ timestamp: RTPTimestamp) -> Int64 {
        guard let highest else { return Int64(timestamp.rawValue) }
        let reference = RTPTimestamp(UInt32(truncatingIfNeeded: highest))
        return highest &+ reference.distance(to: timestamp)
    }

    /// The extended value of `timestamp`; advances the highest value when it is newer.
    public mutating func unwrap(_ timestamp: RTPTimestamp) -> Int64 {
        let extended = peek(timestamp)
        if highest.map({ extended > $0 }) ?? true { highest = extended }
        return extended
    }
}

/// A 64-bit NTP timestamp (RFC 5905): 32-bit seconds since 1900-01-01 and a 32-bit fraction.
public struct NTPTime: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt64

    /// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
    public static let unixEpochOffset: UInt32 = 2_208_988_800

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable public init(seconds: UInt32, fraction: UInt32) {
        rawValue = UInt64(seconds) << 32 | UInt64(fraction)
    }

    /// From seconds since 1900; negative or NaN gives 0, values past 2^32 s clamp to the maximum.
    public init(secondsSince1900 seconds: Double) {
        rawValue = NTPTime.fixedPoint(seconds, scale: 4_294_967_296.0, max: UInt64.max)
    }

    /// From seconds since 1970-01-01 (Unix time).
    public init(unixSeconds: Double) {
        self.init(secondsSince1900: unixSeconds + Double(NTPTime.unixEpochOffset))
    }

    @inlinable public var seconds: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
    @inlinable public var fraction: UInt32 { UInt32(truncatingIfNeeded: rawValue) }

    /// Seconds since 1900 as a Double.
    public var secondsSince1900: Double { Double(seconds) + Double(fraction) / 4_294_967_296.0 }

    /// Seconds since 1970 as a Double (negative before 1970).
    public var unixSeconds: Double { secondsSince1900 - Double(NTPTime.unixEpochOffset) }

    /// The middle 32 bits (16.16 fixed point), as carried in LSR and RRTR references.
    @inlinable public var compact: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 16) }

    /// Seconds represented by a compact 16.16 value (e.g. DLSR, DLRR, or a compact difference).
    @inlinable public static func seconds(fromCompact compact: UInt32) -> Double { Double(compact) / 65536.0 }

    /// A duration in seconds as a compact 16.16 value; clamps to 0...UInt32.max.
    public static func compact(fromSeconds seconds: Double) -> UInt32 {
        UInt32(fixedPoint(seconds, scale: 65536.0, max: UInt64(UInt32.max)))
    }

    /// Round-trip time from a report block (RFC 3550 §6.4.1): arrival − LSR − DLSR, all compact.
    /// Nil when LSR is 0 (no SR received yet) or the result would be negative.
    public static func roundTripTime(arrival: NTPTime, lastSR: UInt32, delaySinceLastSR: UInt32) -> Double? {
        guard lastSR != 0 else { return nil }
        let rtt = Int64(arrival.compact &- lastSR) - Int64(delaySinceLastSR)
        guard arrival.compact &- lastSR < 0x8000_0000, rtt >= 0 else { return nil }
        return Double(rtt) / 65536.0
    }

    @inlinable public static func < (lhs: NTPTime, rhs: NTPTime) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "NTP(\(seconds).\(fraction))" }

    static func fixedPoint(_ value: Double, scale: Double, max: UInt64) -> UInt64 {
        guard value > 0 else { return 0 }
        let scaled = (value * scale).rounded()
        guard scaled < Double(max) else { return max }
        return UInt64(scaled)
    }
}

/// RFC 5761 / RFC 7983 demultiplexing inside the RTP range (first byte 128...191): the second byte
/// of an RTCP packet is its packet type, 192...223; for RTP it is marker + payload type, which
/// must avoid that range when RTP and RTCP share a port.
@inlinable public func isRTCP(secondByte: UInt8) -> Bool { (192...223).contains(secondByte) }
