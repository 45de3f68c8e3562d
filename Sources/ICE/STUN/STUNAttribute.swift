import Wire

/// Attribute type numbers (RFC 8489, RFC 8445, RFC 8656).
public enum STUNAttributeType {
    public static let mappedAddress: UInt16 = 0x0001
    public static let username: UInt16 = 0x0006
    public static let messageIntegrity: UInt16 = 0x0008
    public static let errorCode: UInt16 = 0x0009
    public static let unknownAttributes: UInt16 = 0x000A
    public static let channelNumber: UInt16 = 0x000C
    public static let lifetime: UInt16 = 0x000D
    public static let xorPeerAddress: UInt16 = 0x0012
    public static let data: UInt16 = 0x0013
    public static let realm: UInt16 = 0x0014
    public static let nonce: UInt16 = 0x0015
    public static let xorRelayedAddress: UInt16 = 0x0016
    public static let requestedTransport: UInt16 = 0x0019
    public static let messageIntegritySHA256: UInt16 = 0x001C
    public static let xorMappedAddress: UInt16 = 0x0020
    public static let priority: UInt16 = 0x0024
    public static let useCandidate: UInt16 = 0x0025
    public static let software: UInt16 = 0x8022
    public static let fingerprint: UInt16 = 0x8028
    public static let iceControlled: UInt16 = 0x8029
    public static let iceControlling: UInt16 = 0x802A
}

/// One STUN attribute, typed where we understand it, kept raw otherwise.
public enum STUNAttribute: Equatable, Sendable {
    case mappedAddress(TransportAddress)
    case xorMappedAddress(TransportAddress)
    case username(String)
    case messageIntegrity([UInt8])
    case messageIntegritySHA256([UInt8])
    case fingerprint(UInt32)
    case errorCode(code: Int, reason: String)
    case unknownAttributes([UInt16])
    case software(String)
    case realm(String)
    case nonce(String)
    case priority(UInt32)
    case useCandidate
    case iceControlled(tieBreaker: UInt64)
    case iceControlling(tieBreaker: UInt64)
    case lifetime(seconds: UInt32)
    case xorPeerAddress(TransportAddress)
    case xorRelayedAddress(TransportAddress)
    case data([UInt8])
    /// REQUESTED-TRANSPORT: the IP protocol number (17 for UDP).
    case requestedTransport(protocolNumber: UInt8)
    case channelNumber(UInt16)
    /// Any other attribute, kept as it came.
    case other(type: UInt16, value: [UInt8])

    /// Longest USERNAME, REALM, NONCE, SOFTWARE, reason phrase we accept (RFC 8489 limits, in bytes).
    static let maximumTextLength = 763

    init(type: UInt16, value: UnsafeRawBufferPointer, transactionID: STUNTransactionID) throws(STUNError) {
        typealias T = STUNAttributeType
        func text() throws(STUNError) -> String {
            guard value.count <= Self.maximumTextLength else { throw .malformedAttribute(type: type, reason: "text longer than \(Self.maximumTextLength) bytes") }
            let typed = UnsafeBufferPointer(start: value.baseAddress?.assumingMemoryBound(to: UInt8.self), count: value.count)
            guard let string = String(validating: typed, as: UTF8.self) else { throw .malformedAttribute(type: type, reason: "not UTF-8") }
            return string
        }
        func fixed(_ count: Int) throws(STUNError) {
            guard value.count == count else { throw .malformedAttribute(type: type, reason: "length \(value.count), expected \(count)") }
        }
        var reader = ByteReader(value)
        switch type {
        case T.mappedAddress:
            self = .mappedAddress(try Self.address(value, type: type, xor: nil))
        case T.xorMappedAddress:
            self = .xorMappedAddress(try Self.address(value, type: type, xor: transactionID))
        case T.xorPeerAddress:
            self = .xorPeerAddress(try Self.address(value, type: type, xor: transactionID))
        case T.xorRelayedAddress:
            self = .xorRelayedAddress(try Self.address(value, type: type, xor: transactionID))
        case T.username:
            self = .username(try text())
        case T.software:
            self = .software(try text())
        case T.realm:
            self = .realm(try text())
        case T.nonce:
            self = .nonce(try text())
        case T.messageIntegrity:
            try fixed(20)
            self = .messageIntegrity([UInt8](value))
        case T.messageIntegritySHA256:
            guard value.count >= 16, value.count <= 32, value.count & 3 == 0 else {
                throw .malformedAttribute(type: type, reason: "length \(value.count), expected 16...32 in steps of 4")
            }
            self = .messageIntegritySHA256([UInt8](value))
        case T.fingerprint:
            try fixed(4)
            self = .fingerprint(reader.uint32()!)
        case T.errorCode:
            guard value.count >= 4 else { throw .malformedAttribute(type: type, reason: "shorter than 4 bytes") }
            _ = reader.uint16()
            let hundreds = Int(reader.uint8()! & 0x07)
            let number = Int(reader.uint8()!)
            guard (3...6).contains(hundreds), number < 100 else { throw .malformedAttribute(type: type, reason: "code \(hundreds)\(number) out of range") }
            let reasonBytes = reader.bytes(reader.remaining)!
            guard reasonBytes.count <= Self.maximumTextLength, let reason = String(validating: reasonBytes, as: UTF8.self) else {
                throw .malformedAttribute(type: type, reason: "bad reason phrase")
            }
            self = .errorCode(code: hundreds * 100 + number, reason: reason)
        case T.unknownAttributes:
            guard value.count & 1 == 0 else { throw .malformedAttribute(type: type, reason: "odd length") }
            var types: [UInt16] = []
            while let next = reader.uint16() { types.append(next) }
            self = .unknownAttributes(types)
        case T.priority:
            try fixed(4)
            self = .priority(reader.uint32()!)
        case T.useCandidate:
            try fixed(0)
            self = .useCandidate
        case T.iceControlled:
            try fixed(8)
            self = .iceControlled(tieBreaker: reader.uint64()!)
        case T.iceControlling:
            try fixed(8)
            self = .iceControlling(tieBreaker: reader.uint64()!)
        case T.lifetime:
            try fixed(4)
            self = .lifetime(seconds: reader.uint32()!)
        case T.data:
            self = .data([UInt8](value))
        case T.requestedTransport:
            try fixed(4)
            self = .requestedTransport(protocolNumber: reader.uint8()!)
        case T.channelNumber:
            try fixed(4)
            self = .channelNumber(reader.uint16()!)
        default:
            self = .other(type: type, value: [UInt8](value))
        }
    }

    private static func address(_ value: UnsafeRawBufferPointer, type: UInt16, xor transactionID: STUNTransactionID?) throws(STUNError) -> TransportAddress {
        var reader = ByteReader(value)
        guard value.count >= 4 else { throw .malformedAttribute(type: type, reason: "address shorter than 4 bytes") }
        _ = reader.uint8()
        let family = reader.uint8()!
        var port = reader.uint16()!
        if transactionID != nil { port ^= UInt16(stunMagicCookie >> 16) }
        switch family {
        case 0x01:
            guard value.count == 8 else { throw .malformedAttribute(type: type, reason: "IPv4 address length \(value.count)") }
            var ip = reader.uint32()!
            if transactionID != nil { ip ^= stunMagicCookie }
            return TransportAddress(ip: .v4(ip), port: port)
        case 0x02:
            guard value.count == 20 else { throw .malformedAttribute(type: type, reason: "IPv6 address length \(value.count)") }
            var high = reader.uint64()!, low = reader.uint64()!
            if let id = transactionID {
                high ^= UInt64(stunMagicCookie) << 32 | id.high >> 32
                low ^= (id.high & 0xFFFF_FFFF) << 32 | UInt64(id.low)
            }
            return TransportAddress(ip: .v6(high, low), port: port)
        default:
            throw .malformedAttribute(type: type, reason: "address family \(family)")
        }
    }

    public var typeNumber: UInt16 {
        typealias T = STUNAttributeType
        switch self {
        case .mappedAddress: return T.mappedAddress
        case .xorMappedAddress: return T.xorMappedAddress
        case .username: return T.username
        case .messageIntegrity: return T.messageIntegrity
        case .messageIntegritySHA256: return T.messageIntegritySHA256
        case .fingerprint: return T.fingerprint
        case .errorCode: return T.errorCode
        case .unknownAttributes: return T.unknownAttributes
        case .software: return T.software
        case .realm: return T.realm
        case .nonce: return T.nonce
        case .priority: return T.priority
        case .useCandidate: return T.useCandidate
        case .iceControlled: return T.iceControlled
        case .iceControlling: return T.iceControlling
        case .lifetime: return T.lifetime
        case .xorPeerAddress: return T.xorPeerAddress
        case .xorRelayedAddress: return T.xorRelayedAddress
        case .data: return T.data
        case .requestedTransport: return T.requestedTransport
        case .channelNumber: return T.channelNumber
        case .other(let type, _): return type
        }
    }

    func encode(into out: inout [UInt8], transactionID: STUNTransactionID, paddingByte: UInt8) {
        out.appendBigEndian(typeNumber)
        let lengthIndex = out.count
        out.appendBigEndian(UInt16(0))
        let start = out.count
        switch self {
        case .mappedAddress(let address):
            Self.encodeAddress(address, xor: nil, into: &out)
        case .xorMappedAddress(let address), .xorPeerAddress(let address), .xorRelayedAddress(let address):
            Self.encodeAddress(address, xor: transactionID, into: &out)
        case .username(let text), .software(let text), .realm(let text), .nonce(let text):
            out.append(contentsOf: text.utf8)
        case .messageIntegrity(let bytes), .messageIntegritySHA256(let bytes), .data(let bytes), .other(_, let bytes):
            out.append(contentsOf: bytes)
        case .fingerprint(let value), .priority(let value), .lifetime(let value):
            out.appendBigEndian(value)
        case .errorCode(let code, let reason):
            out.appendBigEndian(UInt16(0))
            out.append(UInt8(clamping: code / 100))
            out.append(UInt8(clamping: code % 100))
            out.append(contentsOf: reason.utf8)
        case .unknownAttributes(let types):
            for type in types { out.appendBigEndian(type) }
        case .useCandidate:
            break
        case .iceControlled(let value), .iceControlling(let value):
            out.appendBigEndian(value)
        case .requestedTransport(let number):
            out.append(contentsOf: [number, 0, 0, 0])
        case .channelNumber(let number):
            out.appendBigEndian(number)
            out.appendBigEndian(UInt16(0))
        }
        let length = out.count - start
        out.storeBigEndian(UInt16(truncatingIfNeeded: length), at: lengthIndex)
        let padding = (4 - length & 3) & 3
        for _ in 0..<padding { out.append(paddingByte) }
    }

    private static func encodeAddress(_ address: TransportAddress, xor transactionID: STUNTransactionID?, into out: inout [UInt8]) {
        out.append(0)
        let port = transactionID == nil ? address.port : address.port ^ UInt16(stunMagicCookie >> 16)
        switch address.ip {
        case .v4(let ip):
            out.append(0x01)
            out.appendBigEndian(port)
            out.appendBigEndian(transactionID == nil ? ip : ip ^ stunMagicCookie)
        case .v6(var high, var low):
            out.append(0x02)
            out.appendBigEndian(port)
            if let id = transactionID {
                high ^= UInt64(stunMagicCookie) << 32 | id.high >> 32
                low ^= (id.high & 0xFFFF_FFFF) << 32 | UInt64(id.low)
            }
            out.appendBigEndian(high)
            out.appendBigEndian(low)
        }
    }
}
