/// Why an ICE server URL (RFC 7064 / RFC 7065) or an `ICEServer` was rejected.
public enum ICEServerURLError: Error, Equatable, Sendable {
    case empty
    case missingScheme
    case unknownScheme(String)
    /// `stun://host`: these URIs have no authority part.
    case unexpectedAuthority
    case missingHost
    case invalidHost(String)
    case unterminatedIPv6Literal
    case invalidPort(String)
    /// A query on a `stun:`/`stuns:` URL, which takes none.
    case queryNotAllowed(ICEServerURL.Scheme)
    case unknownQueryParameter(String)
    case invalidTransport(String)
    /// `turns:...?transport=udp` (DTLS is not supported).
    case transportNotAllowed(scheme: ICEServerURL.Scheme, transport: ICEServerURL.Transport)
    case fragmentNotAllowed
    /// A `turn:`/`turns:` URL in an `ICEServer` without a username or a credential.
    case missingCredentials
    case noURLs
}

/// The host of an ICE server URL: an IP literal or a DNS name (lowercased).
public enum ICEServerHost: Hashable, Sendable, CustomStringConvertible {
    case ip(IPAddress)
    case name(String)

    public var description: String {
        switch self {
        case .ip(let ip): ip.isIPv4 ? ip.description : "[\(ip)]"
        case .name(let name): name
        }
    }
}

/// A parsed `stun:`, `stuns:`, `turn:` or `turns:` URL as browsers accept them in `RTCIceServer.urls`.
public struct ICEServerURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Hashable, Sendable {
        case stun, stuns, turn, turns
    }

    public enum Transport: String, Hashable, Sendable {
        case udp, tcp
    }

    public var scheme: Scheme
    public var host: ICEServerHost
    /// The port, defaulted to 3478 (stun, turn) or 5349 (stuns, turns).
    public var port: UInt16
    /// For TURN: the transport to the server (udp by default for `turn:`, tcp for `turns:`). STUN URLs: udp for `stun:`, tcp for `stuns:`.
    public var transport: Transport
    /// Whether `?transport=` was given explicitly.
    public var transportExplicit: Bool

    public static let defaultPort: UInt16 = 3478
    public static let defaultSecurePort: UInt16 = 5349

    public var isTURN: Bool { scheme == .turn || scheme == .turns }
    public var isSecure: Bool { scheme == .stuns || scheme == .turns }

    /// Parses one URL. Scheme and host are case-insensitive; IPv6 literals go in brackets.
    public init(parsing text: String) throws(ICEServerURLError) {
        var rest = Substring(text)
        guard !rest.isEmpty else { throw .empty }
        guard let colon = rest.firstIndex(of: ":") else { throw .missingScheme }
        let schemeText = rest[..<colon]
        guard !schemeText.isEmpty else { throw .missingScheme }
        guard let scheme = Scheme(rawValue: schemeText.lowercased()) else { throw .unknownScheme(String(schemeText)) }
        rest = rest[rest.index(after: colon)...]
        if rest.hasPrefix("//") { throw .unexpectedAuthority }
        if rest.contains("#") { throw .fragmentNotAllowed }
        if rest.contains("@") { throw .invalidHost(String(rest)) }

        var query: Substring?
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }

        // Host, then an optional port.
        let host: ICEServerHost
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .unterminatedIPv6Literal }
            let literal = rest[rest.index(after: rest.startIndex)..<close]
            guard literal.contains(":"), let ip = IPAddress(literal), !ip.isIPv4 else { throw .invalidHost(String(rest[...close])) }
            host = .ip(ip)
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw .invalidHost(String(rest)) }
                portText = after.dropFirst()
            }
        } else {
            var hostText = rest
            if let portColon = rest.firstIndex(of: ":") {
                hostText = rest[..<portColon]
                portText = rest[rest.index(after: portColon)...]
            }
            guard !hostText.isEmpty else { throw .missingHost }
            if let ip = IPAddress(hostText), ip.isIPv4 {
                host = .ip(ip)
            } else {
                guard Self.isValidHostName(hostText) else { throw .invalidHost(String(hostText)) }
                host = .name(hostText.lowercased())
            }
        }

        var port = scheme == .stuns || scheme == .turns ? Self.defaultSecurePort : Self.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = UInt16(portText), value != 0 else { throw .invalidPort(String(portText)) }
            port = value
        }

        var transport: Transport = scheme == .turns || scheme == .stuns ? .tcp : .udp
        var explicit = false
        if let query {
            guard scheme == .turn || scheme == .turns else { throw .queryNotAllowed(scheme) }
            let parts = query.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].lowercased() == "transport" else { throw .unknownQueryParameter(String(query)) }
            guard let value = Transport(rawValue: parts[1].lowercased()) else { throw .invalidTransport(String(parts[1])) }
            if scheme == .turns && value == .udp { throw .transportNotAllowed(scheme: scheme, transport: value) }
            transport = value
            explicit = true
        }

        self.scheme = scheme
        self.host = host
        self.port = port
        self.transport = transport
        self.transportExplicit = explicit
    }

    /// RFC 3986 reg-name restricted to what DNS names use: letters, digits, '-', '_' and '.', no empty labels.
    static func isValidHostName(_ text: Substring) -> Bool {
        guard text.utf8.count <= 253 else { return false }
        var labelLength = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "."):
                guard labelLength > 0 else { return false }
                labelLength = 0
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                labelLength += 1
                guard labelLength <= 63 else { return false }
            default:
                return false
            }
        }
        return labelLength > 0 || text.hasSuffix(".") && text.count > 1
    }

    public var description: String {
        var text = "\(scheme.rawValue):\(host)"
        let defaultPort = isSecure ? Self.defaultSecurePort : Self.defaultPort
        if port != defaultPort { text += ":\(port)" }
        if transportExplicit { text += "?transport=\(transport.rawValue)" }
        return text
    }
}

/// An `RTCIceServer`: one or more URLs sharing a username and credential.
public struct ICEServer: Hashable, Sendable {
    public var urls: [ICEServerURL]
    public var username: String?
    public var credential: String?

    public init(urls: [ICEServerURL], username: String? = nil, credential: String? = nil) {
        self.urls = urls
        self.username = username
        self.credential = credential
    }

    /// Parses every URL; like browsers, requires a username and a credential when any URL is a TURN URL.
    public init(urls: [String], username: String? = nil, credential: String? = nil) throws(ICEServerURLError) {
        guard !urls.isEmpty else { throw .noURLs }
        var parsed: [ICEServerURL] = []
        for url in urls { parsed.append(try ICEServerURL(parsing: url)) }
        if parsed.contains(where: \.isTURN) && (username == nil || credential == nil) { throw .missingCredentials }
        self.init(urls: parsed, username: username, credential: credential)
    }
}
