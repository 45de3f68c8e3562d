import Wire

/// Errors from decoding a DNS/mDNS message or making a name.
public enum MDNSError: Error, Equatable, Sendable {
    case truncated(needed: Int, available: Int)
    case tooLarge(Int)
    /// The header's counts need more bytes than the message has.
    case countsExceedMessage(questions: Int, records: Int, available: Int)
    case labelTooLong(Int)
    case nameTooLong
    /// A label type other than 00 (label) or 11 (pointer).
    case badLabelType(UInt8)
    /// A compression pointer that does not point strictly before the name part holding it (this forbids loops).
    case pointerNotBackward(at: Int, target: Int)
    case labelNotUTF8(at: Int)
    case emptyLabel
    case rdataLengthMismatch(type: UInt16, expected: Int, actual: Int)
    case recordOverrun(at: Int, length: Int, available: Int)
    case trailingBytes(Int)
}

/// A domain name as labels (bytes of each label are UTF-8, as mDNS uses). Equality is exact; use `matches` for DNS's case-insensitive comparison.
public struct MDNSName: Hashable, Sendable, CustomStringConvertible {
    public var labels: [String]

    public static let maximumLength = 255

    public init(labels: [String]) { self.labels = labels }

    /// Splits dotted text (`abc.local` or `abc.local.`). Throws for empty or over-long labels.
    public init(_ text: String) throws(MDNSError) {
        var trimmed = Substring(text)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        var labels: [String] = []
        if !trimmed.isEmpty {
            for part in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
                guard !part.isEmpty else { throw .emptyLabel }
                guard part.utf8.count <= 63 else { throw .labelTooLong(part.utf8.count) }
                labels.append(String(part))
            }
        }
        guard Self.wireLength(labels) <= Self.maximumLength else { throw .nameTooLong }
        self.labels = labels
    }

    static func wireLength(_ labels: [String]) -> Int { labels.reduce(1) { $0 + 1 + $1.utf8.count } }

    /// ASCII case-insensitive comparison (RFC 4343).
    public func matches(_ other: MDNSName) -> Bool {
        guard labels.count == other.labels.count else { return false }
        return zip(labels, other.labels).allSatisfy { Self.asciiLowercased($0) == Self.asciiLowercased($1) }
    }

    static func asciiLowercased(_ label: String) -> [UInt8] {
        label.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
    }

    var lowercasedKey: [[UInt8]] { labels.map(Self.asciiLowercased) }

    public var description: String { labels.isEmpty ? "." : labels.joined(separator: ".") }
}

/// DNS record types we name.
public enum MDNSRecordType {
    public static let a: UInt16 = 1
    public static let aaaa: UInt16 = 28
    public static let any: UInt16 = 255
}

/// One question. In mDNS the top bit of the class is the unicast-response (QU) bit.
public struct MDNSQuestion: Hashable, Sendable {
    public var name: MDNSName
    public var type: UInt16
    /// The class without the QU bit (1 is IN).
    public var recordClass: UInt16
    public var unicastResponse: Bool

    public init(name: MDNSName, type: UInt16, recordClass: UInt16 = 1, unicastResponse: Bool = false) {
        self.name = name
        self.type = type
        self.recordClass = recordClass & 0x7FFF
        self.unicastResponse = unicastResponse
    }
}

/// Record data: A and AAAA typed, anything else raw (uncompressed as received).
public enum MDNSRecordData: Hashable, Sendable {
    case a(IPAddress)
    case aaaa(IPAddress)
    case other([UInt8])
}

/// One resource record. In mDNS the top bit of the class is the cache-flush bit.
public struct MDNSRecord: Hashable, Sendable {
    public var name: MDNSName
    public var type: UInt16
    public var recordClass: UInt16
    public var cacheFlush: Bool
    public var ttl: UInt32
    public var data: MDNSRecordData

    public init(name: MDNSName, type: UInt16, recordClass: UInt16 = 1, cacheFlush: Bool = false, ttl: UInt32, data: MDNSRecordData) {
        self.name = name
        self.type = type
        self.recordClass = recordClass & 0x7FFF
        self.cacheFlush = cacheFlush
        self.ttl = ttl
        self.data = data
    }

    /// An A or AAAA record for `address`.
    public init(name: MDNSName, address: IPAddress, ttl: UInt32, cacheFlush: Bool = false) {
        self.init(name: name, type: address.isIPv4 ? MDNSRecordType.a : MDNSRecordType.aaaa, cacheFlush: cacheFlush, ttl: ttl,
                  data: address.isIPv4 ? .a(address) : .aaaa(address))
    }

    /// The address of an A or AAAA record.
    public var address: IPAddress? {
        switch data {
        case .a(let ip), .aaaa(let ip): ip
        case .other: nil
        }
    }
}

/// A DNS message (RFC 1035 section 4) as mDNS uses it (RFC 6762).
public struct MDNSMessage: Hashable, Sendable {
    public var id: UInt16
    /// The header flags word (QR is 0x8000, AA 0x0400).
    public var flags: UInt16
    public var questions: [MDNSQuestion]
    public var answers: [MDNSRecord]
    public var authorities: [MDNSRecord]
    public var additionals: [MDNSRecord]

    /// mDNS messages are at most 9000 bytes (RFC 6762 section 17).
    public static let maximumLength = 9000
    public static let headerLength = 12
    static let maximumPointerHops = 64

    public init(id: UInt16 = 0, flags: UInt16 = 0, questions: [MDNSQuestion] = [], answers: [MDNSRecord] = [],
                authorities: [MDNSRecord] = [], additionals: [MDNSRecord] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    public var isResponse: Bool { flags & 0x8000 != 0 }

    // MARK: Decoding

    public init(parsing bytes: [UInt8]) throws(MDNSError) {
        guard bytes.count >= Self.headerLength else { throw .truncated(needed: Self.headerLength, available: bytes.count) }
        guard bytes.count <= Self.maximumLength else { throw .tooLarge(bytes.count) }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
        id = u16(0)
        flags = u16(2)
        let counts = (Int(u16(4)), Int(u16(6)), Int(u16(8)), Int(u16(10)))
        let records = counts.1 + counts.2 + counts.3
        // A question is at least 5 bytes (root name, type, class); a record at least 11.
        guard counts.0 * 5 + records * 11 <= bytes.count - Self.headerLength else {
            throw .countsExceedMessage(questions: counts.0, records: records, available: bytes.count - Self.headerLength)
        }
        var offset = Self.headerLength
        func need(_ count: Int) throws(MDNSError) {
            guard offset + count <= bytes.count else { throw .truncated(needed: offset + count, available: bytes.count) }
        }
        questions = []
        questions.reserveCapacity(counts.0)
        for _ in 0..<counts.0 {
            let name = try Self.parseName(bytes, at: &offset)
            try need(4)
            let type = u16(offset), rawClass = u16(offset + 2)
            offset += 4
            questions.append(MDNSQuestion(name: name, type: type, recordClass: rawClass & 0x7FFF, unicastResponse: rawClass & 0x8000 != 0))
        }
        func parseRecords(_ count: Int) throws(MDNSError) -> [MDNSRecord] {
            var out: [MDNSRecord] = []
            out.reserveCapacity(count)
            for _ in 0..<count {
                let name = try Self.parseName(bytes, at: &offset)
                try need(10)
                let type = u16(offset), rawClass = u16(offset + 2)
                let ttl = UInt32(u16(offset + 4)) << 16 | UInt32(u16(offset + 6))
                let length = Int(u16(offset + 8))
                offset += 10
                guard offset + length <= bytes.count else { throw .recordOverrun(at: offset, length: length, available: bytes.count - offset) }
                let rdata = bytes[offset..<offset + length]
                offset += length
                let data: MDNSRecordData
                switch type {
                case MDNSRecordType.a:
                    guard length == 4 else { throw .rdataLengthMismatch(type: type, expected: 4, actual: length) }
                    data = .a(IPAddress(bytes: rdata)!)
                case MDNSRecordType.aaaa:
                    guard length == 16 else { throw .rdataLengthMismatch(type: type, expected: 16, actual: length) }
                    data = .aaaa(IPAddress(bytes: rdata)!)
                default:
                    data = .other(Array(rdata))
                }
                out.append(MDNSRecord(name: name, type: type, recordClass: rawClass & 0x7FFF, cacheFlush: rawClass & 0x8000 != 0, ttl: ttl, data: data))
            }
            return out
        }
        answers = try parseRecords(counts.1)
        authorities = try parseRecords(counts.2)
        additionals = try parseRecords(counts.3)
        guard offset == bytes.count else { throw .trailingBytes(bytes.count - offset) }
    }

    /// Reads a possibly compressed name at `offset`, advancing it past the name's bytes in place.
    /// Every pointer must target a position strictly before the start of the part it sits in, so
    /// the positions read strictly decrease at each jump: no loops are possible.
    static func parseName(_ bytes: [UInt8], at offset: inout Int) throws(MDNSError) -> MDNSName {
        var labels: [String] = []
        var position = offset
        var segmentStart = offset
        var jumped = false
        var wireLength = 1
        var hops = 0
        while true {
            guard position < bytes.count else { throw .truncated(needed: position + 1, available: bytes.count) }
            let length = Int(bytes[position])
            switch length >> 6 {
            case 0:
                if length == 0 {
                    if !jumped { offset = position + 1 }
                    return MDNSName(labels: labels)
                }
                guard position + 1 + length <= bytes.count else { throw .truncated(needed: position + 1 + length, available: bytes.count) }
                wireLength += 1 + length
                guard wireLength <= MDNSName.maximumLength else { throw .nameTooLong }
                guard let label = String(validating: bytes[position + 1..<position + 1 + length], as: UTF8.self) else {
                    throw .labelNotUTF8(at: position)
                }
                labels.append(label)
                position += 1 + length
            case 3:
                guard position + 1 < bytes.count else { throw .truncated(needed: position + 2, available: bytes.count) }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < segmentStart else { throw .pointerNotBackward(at: position, target: target) }
                hops += 1
                guard hops <= maximumPointerHops else { throw .nameTooLong }
                if !jumped { offset = position + 2 }
                jumped = true
                position = target
                segmentStart = target
            default:
                throw .badLabelType(UInt8(length))
            }
        }
    }

    // MARK: Encoding

    /// Serializes, compressing repeated name suffixes with pointers when `compress` is true.
    public func serialized(compress: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        out.appendBigEndian(id)
        out.appendBigEndian(flags)
        out.appendBigEndian(UInt16(truncatingIfNeeded: questions.count))
        out.appendBigEndian(UInt16(truncatingIfNeeded: answers.count))
        out.appendBigEndian(UInt16(truncatingIfNeeded: authorities.count))
        out.appendBigEndian(UInt16(truncatingIfNeeded: additionals.count))
        var table: [[[UInt8]]: Int] = [:]
        func writeName(_ name: MDNSName) {
            let key = name.labels.map { Array($0.utf8) }
            for index in name.labels.indices {
                let suffix = Array(key[index...])
                if compress, let target = table[suffix] {
                    out.appendBigEndian(UInt16(0xC000 | target))
                    return
                }
                if compress, out.count < 0x3FFF, table[suffix] == nil { table[suffix] = out.count }
                let label = Array(name.labels[index].utf8)
                out.append(UInt8(truncatingIfNeeded: label.count))
                out.append(contentsOf: label)
            }
            out.append(0)
        }
        for question in questions {
            writeName(question.name)
            out.appendBigEndian(question.type)
            out.appendBigEndian(question.recordClass | (question.unicastResponse ? 0x8000 : 0))
        }
        for record in answers + authorities + additionals {
            writeName(record.name)
            out.appendBigEndian(record.type)
            out.appendBigEndian(record.recordClass | (record.cacheFlush ? 0x8000 : 0))
            out.appendBigEndian(record.ttl)
            let rdata: [UInt8] = switch record.data {
            case .a(let ip), .aaaa(let ip): ip.bytes
            case .other(let raw): raw
            }
            out.appendBigEndian(UInt16(truncatingIfNeeded: rdata.count))
            out.append(contentsOf: rdata)
        }
        return out
    }
}
