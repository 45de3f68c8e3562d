/// The type of an ICE candidate (RFC 8445 section 5.1.1).
public enum CandidateType: String, Sendable, Hashable, CaseIterable {
    case host, srflx, prflx, relay

    /// The RFC 8445 recommended type preference.
    public var preference: UInt32 {
        switch self {
        case .host: 126
        case .prflx: 110
        case .srflx: 100
        case .relay: 0
        }
    }
}

/// Where a candidate is: an IP address, or a hostname such as an mDNS `<uuid>.local` name.
public enum CandidateAddress: Hashable, Sendable, CustomStringConvertible {
    case ip(IPAddress)
    case hostname(String)

    public init(_ text: String) {
        if let ip = IPAddress(text) { self = .ip(ip) } else { self = .hostname(text) }
    }

    /// Whether this is an mDNS name that must be resolved before use (RFC 8839 section 5.1, draft-ietf-mmusic-mdns-ice-candidates).
    public var isMulticastDNSName: Bool {
        if case .hostname(let name) = self { return name.lowercased().hasSuffix(".local") }
        return false
    }

    public var ipAddress: IPAddress? { if case .ip(let ip) = self { ip } else { nil } }

    public var description: String {
        switch self {
        case .ip(let ip): ip.description
        case .hostname(let name): name
        }
    }
}

/// The transport of a candidate: UDP, TCP (RFC 6544) or something else kept by name.
public enum CandidateTransport: Hashable, Sendable, CustomStringConvertible {
    case udp, tcp
    case other(String)

    public init(_ text: String) {
        switch text.lowercased() {
        case "udp": self = .udp
        case "tcp": self = .tcp
        default: self = .other(text)
        }
    }

    public var description: String {
        switch self {
        case .udp: "udp"
        case .tcp: "tcp"
        case .other(let name): name
        }
    }
}

/// Errors from parsing a candidate attribute.
public enum CandidateParseError: Error, Equatable, Sendable {
    case tooLong(Int)
    case missingField(String)
    case badFoundation(String)
    case badComponent(String)
    case badPriority(String)
    case badPort(String)
    case missingType
    case badType(String)
    case badRelatedAddress(String)
    case danglingExtension(String)
    case badAddress(String)
    case invalidCharacter
}

/// An ICE candidate as carried in SDP `a=candidate:` and trickle messages (RFC 8839 section 5.1).
///
/// Extensions after the type (tcptype, generation, ufrag, network-id, network-cost and any
/// unknown ones) are kept in order, so a candidate re-serializes as it came.
public struct Candidate: Hashable, Sendable, CustomStringConvertible {
    public var foundation: String
    public var component: UInt16
    public var transport: CandidateTransport {
        didSet { transportSpelling = transport.description }
    }
    /// The transport token as it was written ("UDP" from Firefox, "udp" from Chromium), re-emitted as is.
    private var transportSpelling: String
    public var priority: UInt32
    public var address: CandidateAddress
    public var port: UInt16
    public var type: CandidateType
    public var relatedAddress: CandidateAddress?
    public var relatedPort: UInt16?
    /// Extension attributes (name, value) in their order, raddr/rport excluded.
    public var extensions: [Extension]

    public struct Extension: Hashable, Sendable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(foundation: String, component: UInt16 = 1, transport: CandidateTransport = .udp, priority: UInt32,
                address: CandidateAddress, port: UInt16, type: CandidateType,
                relatedAddress: CandidateAddress? = nil, relatedPort: UInt16? = nil, extensions: [Extension] = []) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.transportSpelling = transport.description
        self.priority = priority
        self.address = address
        self.port = port
        self.type = type
        self.relatedAddress = relatedAddress
        self.relatedPort = relatedPort
        self.extensions = extensions
    }

    /// The longest candidate accepted, in bytes, not counting its `a=` and `candidate:` prefixes
    /// and line end: what `description` writes after `candidate:` is never longer (it only drops
    /// repeated spaces and leading zeros), so every candidate parsed re-parses from its description.
    public static let maximumLength = 1024

    /// Parses `candidate:...` (the trickle form), `a=candidate:...` or the bare attribute value.
    public init(parsing text: String) throws(CandidateParseError) {
        // Bounded before anything is copied; the prefixes and a line end may come on top.
        guard text.utf8.count <= Self.maximumLength + 16 else { throw .tooLong(text.utf8.count) }
        var bytes = Array(text.utf8)[...]
        if bytes.starts(with: "a=".utf8) { bytes = bytes.dropFirst(2) }
        if bytes.starts(with: "candidate:".utf8) { bytes = bytes.dropFirst(10) }
        while let last = bytes.last, last == 0x0D || last == 0x0A { bytes = bytes.dropLast() }
        // (Once the limit was on the whole text: a bare 1,018-byte candidate parsed, and its
        // description, 1,026 bytes with the `candidate:` prefix, did not — found by the fuzzer.)
        guard bytes.count <= Self.maximumLength else { throw .tooLong(bytes.count) }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { throw .invalidCharacter }
        let fields = bytes.split(separator: 0x20, omittingEmptySubsequences: true)
        guard fields.count >= 8 else { throw .missingField(fields.count < 6 ? "address/port" : "typ") }
        func string(_ field: ArraySlice<UInt8>) -> String { String(decoding: field, as: UTF8.self) }

        let foundation = fields[0]
        guard (1...32).contains(foundation.count), foundation.allSatisfy({ Self.isICEChar($0) }) else {
            throw .badFoundation(string(foundation))
        }
        guard let component = Self.decimal(fields[1], max: 256), component >= 1 else { throw .badComponent(string(fields[1])) }
        guard let priority = Self.decimal(fields[3], max: UInt64(UInt32.max)), priority > 0 else { throw .badPriority(string(fields[3])) }
        let addressBytes = fields[4]
        guard addressBytes.count <= 255, addressBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .badAddress(string(addressBytes)) }
        guard let port = Self.decimal(fields[5], max: 65535) else { throw .badPort(string(fields[5])) }
        guard fields[6].elementsEqual("typ".utf8) else { throw .missingType }
        guard let type = CandidateType(rawValue: string(fields[7])) else { throw .badType(string(fields[7])) }

        self.foundation = string(foundation)
        self.component = UInt16(component)
        let transportText = string(fields[2])
        self.transport = CandidateTransport(transportText)
        self.transportSpelling = transportText
        self.priority = UInt32(priority)
        self.address = CandidateAddress(string(addressBytes))
        self.port = UInt16(port)
        self.type = type
        self.extensions = []

        var index = 8
        while index < fields.count {
            guard index + 1 < fields.count else { throw .danglingExtension(string(fields[index])) }
            let name = fields[index], item = fields[index + 1]
            if name.elementsEqual("raddr".utf8) {
                relatedAddress = CandidateAddress(string(item))
            } else if name.elementsEqual("rport".utf8) {
                guard let related = Self.decimal(item, max: 65535) else { throw .badRelatedAddress(string(item)) }
                relatedPort = UInt16(related)
            } else {
                extensions.append(Extension(name: string(name), value: string(item)))
            }
            index += 2
        }
    }

    /// A decimal number of at most 10 digits, no sign, not above `max`.
    private static func decimal(_ digits: ArraySlice<UInt8>, max: UInt64) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        return value <= max ? value : nil
    }

    /// ice-char: ALPHA / DIGIT / "+" / "/"
    private static func isICEChar(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2B || byte == 0x2F
    }

    /// The attribute value: `candidate:<foundation> <component> ...` (prefix it with `a=` for an SDP line).
    public var description: String {
        var out = "candidate:\(foundation) \(component) \(transportSpelling) \(priority) \(address) \(port) typ \(type.rawValue)"
        if let relatedAddress { out += " raddr \(relatedAddress)" }
        if let relatedPort { out += " rport \(relatedPort)" }
        for item in extensions { out += " \(item.name) \(item.value)" }
        return out
    }

    public func extensionValue(_ name: String) -> String? { extensions.first { $0.name == name }?.value }

    /// RFC 6544 tcptype: active, passive or so.
    public var tcpType: String? { extensionValue("tcptype") }
    public var generation: UInt32? { extensionValue("generation").flatMap { UInt32($0) } }
    public var usernameFragment: String? { extensionValue("ufrag") }
    public var networkID: UInt32? { extensionValue("network-id").flatMap { UInt32($0) } }
    public var networkCost: UInt32? { extensionValue("network-cost").flatMap { UInt32($0) } }

    /// The transport address, when the candidate's address is an IP (not an unresolved hostname).
    public var transportAddress: TransportAddress? {
        address.ipAddress.map { TransportAddress(ip: $0, port: port) }
    }

    /// RFC 8445 section 5.1.2.1: (2^24) type preference + (2^8) local preference + (256 - component).
    public static func priority(type: CandidateType, localPreference: UInt16, component: UInt16 = 1) -> UInt32 {
        (type.preference << 24) + (UInt32(localPreference) << 8) + (256 - UInt32(min(component, 256)))
    }
}
