import Wire

/// Why bytes are not a valid RTP packet (RFC 3550 §5.1, A.1).
public enum RTPParseError: Error, Equatable, Sendable {
    /// Fewer than the 12 bytes of the fixed header.
    case truncated(length: Int)
    /// The version field is not 2.
    case badVersion(UInt8)
    /// The CSRC count asks for more bytes than the packet holds.
    case csrcOverrun(csrcCount: Int, length: Int)
    /// The header extension (its 4-byte header or its declared length) runs past the end.
    case extensionOverrun(needed: Int, length: Int)
    /// The padding count is 0 or larger than what follows the header.
    case invalidPadding(paddingLength: Int, available: Int)
}

/// The raw RTP header extension: the 16-bit profile field and the data words (RFC 3550 §5.3.1).
///
/// `data` is a view into the parsed packet (no copy); its length is a multiple of 4 when parsed.
public struct RTPHeaderExtension: Sendable, Hashable {
    /// 0xBEDE for RFC 8285 one-byte elements, 0x100X for two-byte elements, else profile-defined.
    public var profile: UInt16
    public var data: ArraySlice<UInt8>

    @inlinable public init(profile: UInt16, data: ArraySlice<UInt8>) {
        self.profile = profile
        self.data = data
    }

    @inlinable public init(profile: UInt16, data: [UInt8]) {
        self.init(profile: profile, data: data[...])
    }
}

/// The fixed 12-byte RTP header, read without touching CSRCs, extension or payload.
public struct RTPFixedHeader: Sendable, Hashable {
    public var hasPadding: Bool
    public var hasExtension: Bool
    public var csrcCount: Int
    public var marker: Bool
    public var payloadType: PayloadType
    public var sequenceNumber: SequenceNumber
    public var timestamp: RTPTimestamp
    public var ssrc: SSRC

    /// Reads the fixed header; checks only the length (≥ 12) and the version.
    @inlinable public init(parsing bytes: ArraySlice<UInt8>) throws(RTPParseError) {
        guard bytes.count >= 12 else { throw .truncated(length: bytes.count) }
        let s = bytes.startIndex
        let b0 = bytes[s]
        guard b0 >> 6 == 2 else { throw .badVersion(b0 >> 6) }
        let b1 = bytes[s + 1]
        hasPadding = b0 & 0x20 != 0
        hasExtension = b0 & 0x10 != 0
        csrcCount = Int(b0 & 0x0F)
        marker = b1 & 0x80 != 0
        payloadType = PayloadType(masking: b1)
        sequenceNumber = SequenceNumber(bytes.rtpU16(s + 2))
        timestamp = RTPTimestamp(bytes.rtpU32(s + 4))
        ssrc = SSRC(bytes.rtpU32(s + 8))
    }

    @inlinable public init(parsing bytes: [UInt8]) throws(RTPParseError) {
        try self.init(parsing: bytes[...])
    }
}

/// An RTP packet (RFC 3550 §5.1). Parsing keeps the payload and extension as views of the input
/// array: no payload copy, and no allocation unless the packet carries CSRCs.
public struct RTPPacket: Sendable, Hashable {
    public var marker: Bool
    public var payloadType: PayloadType
    public var sequenceNumber: SequenceNumber
    public var timestamp: RTPTimestamp
    public var ssrc: SSRC
    /// Contributing sources; at most 15 are serialized.
    public var csrcs: [SSRC]
    public var headerExtension: RTPHeaderExtension?
    public var payload: ArraySlice<UInt8>
    /// Padding bytes after the payload, including the final count byte; 0 means no padding.
    public var paddingLength: UInt8

    public init(
        marker: Bool = false, payloadType: PayloadType, sequenceNumber: SequenceNumber,
        timestamp: RTPTimestamp, ssrc: SSRC, csrcs: [SSRC] = [],
        headerExtension: RTPHeaderExtension? = nil, payload: ArraySlice<UInt8>, paddingLength: UInt8 = 0
    ) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.csrcs = csrcs
        self.headerExtension = headerExtension
        self.payload = payload
        self.paddingLength = paddingLength
    }

    /// The P bit.
    @inlinable public var hasPadding: Bool { paddingLength > 0 }
    /// The X bit.
    @inlinable public var hasExtension: Bool { headerExtension != nil }

    /// Parses a whole RTP packet; `payload` and `headerExtension.data` are slices of `bytes`.
    @inlinable public init(parsing bytes: [UInt8]) throws(RTPParseError) {
        try self.init(parsing: bytes[...])
    }

    /// Parses a whole RTP packet; `payload` and `headerExtension.data` are slices of `bytes`.
    public init(parsing bytes: ArraySlice<UInt8>) throws(RTPParseError) {
        self = try Self.parse(bytes)
    }

    /// The parser behind `init(parsing:)`: every check (and throw) first, into locals, then the packet
    /// built once in the result. An initializer that assigned the stored properties one by one
    /// between throws was compiled to build the packet twice on the stack and copy one out (two
    /// retains and two releases of the datagram per received packet).
    private static func parse(_ bytes: ArraySlice<UInt8>) throws(RTPParseError) -> RTPPacket {
        let fixed = try RTPFixedHeader(parsing: bytes)
        let s = bytes.startIndex
        let n = bytes.count
        var offset = 12 + fixed.csrcCount * 4
        guard offset <= n else { throw .csrcOverrun(csrcCount: fixed.csrcCount, length: n) }
        var extensionRange: (profile: UInt16, range: Range<Int>)?
        if fixed.hasExtension {
            guard offset + 4 <= n else { throw .extensionOverrun(needed: offset + 4, length: n) }
            let profile = bytes.rtpU16(s + offset)
            let end = offset + 4 + Int(bytes.rtpU16(s + offset + 2)) * 4
            guard end <= n else { throw .extensionOverrun(needed: end, length: n) }
            extensionRange = (profile, (s + offset + 4)..<(s + end))
            offset = end
        }
        var paddingCount = 0
        if fixed.hasPadding {
            let count = Int(bytes[s + n - 1])
            guard count >= 1, count <= n - offset else {
                throw .invalidPadding(paddingLength: count, available: n - offset)
            }
            paddingCount = count
        }
        var csrcs: [SSRC] = []
        if fixed.csrcCount > 0 {
            csrcs.reserveCapacity(fixed.csrcCount)
            for i in 0..<fixed.csrcCount { csrcs.append(SSRC(bytes.rtpU32(s + 12 + 4 * i))) }
        }
        return RTPPacket(marker: fixed.marker, payloadType: fixed.payloadType, sequenceNumber: fixed.sequenceNumber,
                         timestamp: fixed.timestamp, ssrc: fixed.ssrc, csrcs: csrcs,
                         headerExtension: extensionRange.map { RTPHeaderExtension(profile: $0.profile, data: bytes[$0.range]) },
                         payload: bytes[(s + offset)..<(s + n - paddingCount)], paddingLength: UInt8(paddingCount))
    }

    /// Header length as serialized: 12 + CSRCs + extension.
    public var headerLength: Int {
        12 + min(csrcs.count, 15) * 4 + (headerExtension.map { 4 + Self.extensionWords($0) * 4 } ?? 0)
    }

    /// Total serialized length.
    public var serializedLength: Int { headerLength + payload.count + Int(paddingLength) }

    /// Appends the packet to `out`. At most 15 CSRCs are written; extension data is zero-padded to
    /// a multiple of 4 (and cut at 65535 words); padding bytes are zero except the final count.
    public func serialize(into out: inout [UInt8]) {
        out.reserveCapacity(out.count + serializedLength)
        let csrcCount = min(csrcs.count, 15)
        var b0: UInt8 = 0x80 | UInt8(csrcCount)
        if paddingLength > 0 { b0 |= 0x20 }
        if headerExtension != nil { b0 |= 0x10 }
        out.append(b0)
        out.append((marker ? 0x80 : 0) | payloadType.rawValue)
        out.appendBigEndian(sequenceNumber.rawValue)
        out.appendBigEndian(timestamp.rawValue)
        out.appendBigEndian(ssrc.rawValue)
        for csrc in csrcs.prefix(csrcCount) { out.appendBigEndian(csrc.rawValue) }
        if let ext = headerExtension {
            let words = Self.extensionWords(ext)
            out.appendBigEndian(ext.profile)
            out.appendBigEndian(UInt16(words))
            let written = min(ext.data.count, words * 4)
            out.append(contentsOf: ext.data.prefix(written))
            for _ in written..<(words * 4) { out.append(0) }
        }
        out.append(contentsOf: payload)
        if paddingLength > 0 {
            for _ in 1..<paddingLength { out.append(0) }
            out.append(paddingLength)
        }
    }

    /// The packet as a new array.
    public func serialized() -> [UInt8] {
        var out = [UInt8]()
        serialize(into: &out)
        return out
    }

    /// The data of the RFC 8285 element with `id`, or nil when absent or the extension is malformed.
    public func headerExtensionElement(id: UInt8) -> ArraySlice<UInt8>? {
        guard let ext = headerExtension else { return nil }
        return try? ext.element(id: id)
    }

    static func extensionWords(_ ext: RTPHeaderExtension) -> Int { min((ext.data.count + 3) / 4, 0xFFFF) }
}

extension ArraySlice where Element == UInt8 {
    @inlinable @inline(__always) func rtpU16(_ i: Int) -> UInt16 {
        UInt16(self[i]) << 8 | UInt16(self[i + 1])
    }

    @inlinable @inline(__always) func rtpU24(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 16 | UInt32(self[i + 1]) << 8 | UInt32(self[i + 2])
    }

    @inlinable @inline(__always) func rtpU32(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}
