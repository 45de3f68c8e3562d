import Wire

/// The magic cookie every RFC 5389/8489 STUN message carries.
public let stunMagicCookie: UInt32 = 0x2112_A442

/// Errors from decoding a STUN message.
public enum STUNError: Error, Equatable, Sendable {
    case truncated(needed: Int, available: Int)
    case notSTUN(reason: String)
    case lengthMismatch(header: Int, actual: Int)
    case attributeOverrun(type: UInt16, length: Int, remaining: Int)
    case malformedAttribute(type: UInt16, reason: String)
    case fingerprintMismatch(expected: UInt32, actual: UInt32)
    case fingerprintNotLast
    case tooLarge(Int)
}

/// The class of a STUN message (RFC 8489 section 5).
public enum STUNClass: UInt8, Sendable, Hashable {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11
}

/// A STUN method: Binding and the TURN methods have names; others are kept by number.
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)

    public var description: String {
        switch self {
        case .binding: "Binding"
        case .allocate: "Allocate"
        case .refresh: "Refresh"
        case .send: "Send"
        case .data: "Data"
        case .createPermission: "CreatePermission"
        case .channelBind: "ChannelBind"
        default: "Method(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The 16-bit STUN message type: a method and a class, interleaved on the wire.
public struct STUNMessageType: Hashable, Sendable {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    public init(rawValue: UInt16) {
        let m = rawValue & 0x000F | (rawValue & 0x00E0) >> 1 | (rawValue & 0x3E00) >> 2
        let c = (rawValue & 0x0010) >> 4 | (rawValue & 0x0100) >> 7
        self.init(method: STUNMethod(rawValue: m), messageClass: STUNClass(rawValue: UInt8(c))!)
    }

    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        return m & 0x000F | (m & 0x0070) << 1 | (m & 0x0F80) << 2 | (c & 1) << 4 | (c & 2) << 7
    }

    public static let bindingRequest = STUNMessageType(method: .binding, messageClass: .request)
    public static let bindingSuccess = STUNMessageType(method: .binding, messageClass: .successResponse)
    public static let bindingError = STUNMessageType(method: .binding, messageClass: .errorResponse)
    public static let bindingIndication = STUNMessageType(method: .binding, messageClass: .indication)
}

/// The 96-bit transaction id of a STUN message.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt32

    public init(high: UInt64, low: UInt32) {
        self.high = high
        self.low = low
    }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 12 else { return nil }
        var high: UInt64 = 0, low: UInt32 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt32(byte) }
        }
        self.init(high: high, low: low)
    }

    /// A transaction id from the system's random generator.
    public static func random() -> STUNTransactionID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> STUNTransactionID {
        STUNTransactionID(high: generator.next(), low: UInt32(truncatingIfNeeded: generator.next() as UInt64))
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12)
        out.appendBigEndian(high)
        out.appendBigEndian(low)
        return out
    }

    public var description: String { bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
}

/// How a message is authenticated when encoded.
public enum STUNIntegrity: Sendable, Equatable {
    /// MESSAGE-INTEGRITY (HMAC-SHA1) with this key.
    case sha1(key: [UInt8])
    /// MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, full 32 bytes) with this key.
    case sha256(key: [UInt8])
}

/// A STUN message (RFC 8489) as a value: type, transaction id and attributes in order.
///
/// Decoding checks the header, every attribute's bounds and the FINGERPRINT; it records where
/// MESSAGE-INTEGRITY sits so that `verifyIntegrity(of:key:)` can check it against the raw bytes.
public struct STUNMessage: Equatable, Sendable {
    public var type: STUNMessageType
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    /// Byte offset of the MESSAGE-INTEGRITY(-SHA256) attribute in the decoded bytes, if any.
    public private(set) var integrityOffset: Int?
    /// Whether the integrity attribute at `integrityOffset` is the SHA-256 variant.
    public private(set) var integrityIsSHA256 = false

    public static let headerLength = 20
    /// Upper bound on what we accept: STUN over UDP never exceeds a path MTU; 64 KiB is its length field's limit.
    public static let maximumLength = 65_535 + 20

    public init(type: STUNMessageType, transactionID: STUNTransactionID, attributes: [STUNAttribute] = []) {
        self.type = type
        self.transactionID = transactionID
        self.attributes = attributes
    }

    public static func == (lhs: STUNMessage, rhs: STUNMessage) -> Bool {
        lhs.type == rhs.type && lhs.transactionID == rhs.transactionID && lhs.attributes == rhs.attributes
    }

    /// Whether these bytes look like a STUN message (RFC 7983 first byte 0...3, magic cookie, length a multiple of 4).
    @inlinable public static func looksLikeSTUN(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 20, bytes[0] < 4 else { return false }
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        return length & 3 == 0 && length + 20 == bytes.count
            && bytes[4] == 0x21 && bytes[5] == 0x12 && bytes[6] == 0xA4 && bytes[7] == 0x42
    }

    /// The type and transaction ID of what looks like a STUN message (RFC 7983 first byte 0...3, 20
    /// bytes, the magic cookie), read from the header alone: for routing without decoding.
    public static func peekHeader(_ bytes: [UInt8]) -> (type: STUNMessageType, transactionID: STUNTransactionID)? {
        guard bytes.count >= headerLength, bytes[0] < 4,
              bytes[4] == 0x21, bytes[5] == 0x12, bytes[6] == 0xA4, bytes[7] == 0x42,
              let transactionID = STUNTransactionID(bytes: bytes[8..<20]) else { return nil }
        return (STUNMessageType(rawValue: UInt16(bytes[0]) << 8 | UInt16(bytes[1])), transactionID)
    }

    // MARK: Decoding

    public init(decoding bytes: [UInt8]) throws(STUNError) {
        let result: Result<STUNMessage, STUNError> = bytes.withUnsafeBytes { raw in
            do throws(STUNError) { return .success(try STUNMessage(decoding: raw)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    public init(decoding raw: UnsafeRawBufferPointer) throws(STUNError) {
        guard raw.count >= Self.headerLength else { throw .truncated(needed: Self.headerLength, available: raw.count) }
        guard raw.count <= Self.maximumLength else { throw .tooLarge(raw.count) }
        var reader = ByteReader(raw)
        let typeValue = reader.uint16()!
        guard typeValue & 0xC000 == 0 else { throw .notSTUN(reason: "top bits of the type are not zero") }
        let length = Int(reader.uint16()!)
        guard reader.uint32()! == stunMagicCookie else { throw .notSTUN(reason: "no magic cookie") }
        guard length & 3 == 0 else { throw .notSTUN(reason: "length \(length) is not a multiple of 4") }
        guard length + Self.headerLength == raw.count else { throw .lengthMismatch(header: length, actual: raw.count - Self.headerLength) }
        self.type = STUNMessageType(rawValue: typeValue)
        self.transactionID = STUNTransactionID(high: reader.uint64()!, low: reader.uint32()!)
        self.attributes = []
        self.attributes.reserveCapacity(8)

        var sawFingerprint = false
        while !reader.isAtEnd {
            let attributeStart = reader.offset
            guard let attributeType = reader.uint16(), let attributeLength = reader.uint16().map(Int.init) else {
                throw .truncated(needed: attributeStart + 4, available: raw.count)
            }
            guard let value = reader.bytes(attributeLength) else {
                throw .attributeOverrun(type: attributeType, length: attributeLength, remaining: reader.remaining)
            }
            let padding = (4 - attributeLength & 3) & 3
            guard reader.skip(padding) else {
                throw .malformedAttribute(type: attributeType, reason: "padding missing")
            }
            if sawFingerprint { throw .fingerprintNotLast }
            let attribute = try STUNAttribute(type: attributeType, value: value, transactionID: transactionID)
            switch attribute {
            case .messageIntegrity where integrityOffset == nil:
                integrityOffset = attributeStart
                integrityIsSHA256 = false
            case .messageIntegritySHA256 where integrityOffset == nil:
                integrityOffset = attributeStart
                integrityIsSHA256 = true
            case .fingerprint(let received):
                sawFingerprint = true
                let computed = Self.fingerprint(UnsafeRawBufferPointer(rebasing: raw[..<attributeStart]), lengthIncluding: attributeStart + 8)
                guard computed == received else { throw .fingerprintMismatch(expected: computed, actual: received) }
            default:
                break
            }
            attributes.append(attribute)
        }
    }

    /// Checks MESSAGE-INTEGRITY (or -SHA256) of the raw bytes this message was decoded from.
    /// Returns false when the message has no integrity attribute.
    public func verifyIntegrity(of raw: [UInt8], key: [UInt8]) -> Bool {
        guard let offset = integrityOffset, offset + 4 <= raw.count else { return false }
        let macLength = integrityIsSHA256 ? 32 : 20
        guard case let received? = attributes.lazy.compactMap({ attribute -> [UInt8]? in
            switch attribute {
            case .messageIntegrity(let mac) where !integrityIsSHA256: mac
            case .messageIntegritySHA256(let mac) where integrityIsSHA256: mac
            default: nil
            }
        }).first, received.count <= macLength, received.count >= (integrityIsSHA256 ? 16 : 20) else { return false }
        // The length field covers everything up to and including the integrity attribute.
        let length = UInt16(offset - Self.headerLength + 4 + received.count)
        let lengthBytes: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xFF)]
        let feed: ((ArraySlice<UInt8>) -> Void) -> Void = { update in
            update(raw[0..<2])
            update(lengthBytes[...])
            update(raw[4..<offset])
        }
        let mac = integrityIsSHA256 ? HMAC.sha256(key: key, feed) : HMAC.sha1(key: key, feed)
        return constantTimeEqual(Array(mac.prefix(received.count)), received)
    }

    /// The unknown comprehension-required attribute types (0x0000...0x7FFF) this message carries,
    /// which a server must answer with 420 and UNKNOWN-ATTRIBUTES.
    public var unknownComprehensionRequired: [UInt16] {
        attributes.compactMap { attribute in
            if case .other(let type, _) = attribute, type < 0x8000 { return type }
            return nil
        }
    }

    // MARK: Encoding

    /// Encodes the message, appending MESSAGE-INTEGRITY and FINGERPRINT when asked.
    /// `paddingByte` fills attribute padding (RFC 8489 says any value; RFC 5769's samples use 0x20).
    public func encoded(integrity: STUNIntegrity? = nil, fingerprint: Bool = false, paddingByte: UInt8 = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        out.appendBigEndian(type.rawValue)
        out.appendBigEndian(UInt16(0))
        out.appendBigEndian(stunMagicCookie)
        out.appendBigEndian(transactionID.high)
        out.appendBigEndian(transactionID.low)
        for attribute in attributes {
            attribute.encode(into: &out, transactionID: transactionID, paddingByte: paddingByte)
        }
        if let integrity {
            let macLength = if case .sha256 = integrity { 32 } else { 20 }
            out.storeBigEndian(UInt16(out.count - Self.headerLength + 4 + macLength), at: 2)
            let mac: [UInt8]
            switch integrity {
            case .sha1(let key):
                mac = HMAC.sha1(key: key, message: out)
                out.appendBigEndian(STUNAttributeType.messageIntegrity)
            case .sha256(let key):
                mac = HMAC.sha256(key: key, message: out)
                out.appendBigEndian(STUNAttributeType.messageIntegritySHA256)
            }
            out.appendBigEndian(UInt16(mac.count))
            out.append(contentsOf: mac)
        }
        if fingerprint {
            out.storeBigEndian(UInt16(out.count - Self.headerLength + 8), at: 2)
            let crc = out.withUnsafeBytes { Self.fingerprint($0, lengthIncluding: out.count + 8) }
            out.appendBigEndian(STUNAttributeType.fingerprint)
            out.appendBigEndian(UInt16(4))
            out.appendBigEndian(crc)
        } else {
            out.storeBigEndian(UInt16(out.count - Self.headerLength), at: 2)
        }
        return out
    }

    /// CRC-32 of `prefix` (whose length field must already count the FINGERPRINT attribute) xor 0x5354554e.
    static func fingerprint(_ prefix: UnsafeRawBufferPointer, lengthIncluding total: Int) -> UInt32 {
        // The length field in `prefix` may not yet count FINGERPRINT (when decoding it already does).
        let expectedLength = UInt16(total - headerLength)
        let lengthField = UInt16(prefix[2]) << 8 | UInt16(prefix[3])
        if lengthField == expectedLength { return CRC32.checksum(prefix) ^ 0x5354_554E }
        var copy = [UInt8](prefix)
        copy.storeBigEndian(expectedLength, at: 2)
        return CRC32.checksum(copy) ^ 0x5354_554E
    }

    // MARK: Convenience

    public func first<T>(_ extract: (STUNAttribute) -> T?) -> T? {
        for attribute in attributes { if let value = extract(attribute) { return value } }
        return nil
    }

    public var username: String? { first { if case .username(let v) = $0 { v } else { nil } } }
    public var xorMappedAddress: TransportAddress? { first { if case .xorMappedAddress(let v) = $0 { v } else { nil } } }
    public var mappedAddress: TransportAddress? { first { if case .mappedAddress(let v) = $0 { v } else { nil } } }
    public var priority: UInt32? { first { if case .priority(let v) = $0 { v } else { nil } } }
    public var useCandidate: Bool { first { if case .useCandidate = $0 { true } else { nil } } ?? false }
    public var iceControlling: UInt64? { first { if case .iceControlling(let v) = $0 { v } else { nil } } }
    public var iceControlled: UInt64? { first { if case .iceControlled(let v) = $0 { v } else { nil } } }
    public var errorCode: (code: Int, reason: String)? { first { if case .errorCode(let c, let r) = $0 { (c, r) } else { nil } } }
    public var realm: String? { first { if case .realm(let v) = $0 { v } else { nil } } }
    public var nonce: String? { first { if case .nonce(let v) = $0 { v } else { nil } } }
    public var lifetime: UInt32? { first { if case .lifetime(let v) = $0 { v } else { nil } } }
    public var xorRelayedAddress: TransportAddress? { first { if case .xorRelayedAddress(let v) = $0 { v } else { nil } } }
    public var xorPeerAddress: TransportAddress? { first { if case .xorPeerAddress(let v) = $0 { v } else { nil } } }
    public var data: [UInt8]? { first { if case .data(let v) = $0 { v } else { nil } } }
    public var hasFingerprint: Bool { first { if case .fingerprint = $0 { true } else { nil } } ?? false }
}

@inline(__always) func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
