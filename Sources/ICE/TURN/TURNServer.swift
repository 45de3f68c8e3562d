/// One TURN server to allocate a relayed candidate on: a resolved address and long-term credentials.
///
/// `ICEServer` keeps URLs as browsers take them (host names included); the shell resolves names and
/// turns them into these (`TURNServerConfiguration.servers(from:resolve:)`), so the sans-IO cores
/// never see a DNS name.
public struct TURNServerConfiguration: Sendable, Hashable, CustomStringConvertible {
    public var address: TransportAddress
    public var username: String
    public var credential: String
    /// Transport to the server: `.udp`, or `.tcp` (a stream, RFC 8656 section 3.1; peer data still relayed over UDP).
    public var transport: ICEServerURL.Transport
    /// TLS over the TCP stream (`turns:`).
    public var tls: Bool

    public init(address: TransportAddress, username: String, credential: String, transport: ICEServerURL.Transport = .udp,
                tls: Bool = false) {
        self.address = address
        self.username = username
        self.credential = credential
        self.transport = tls ? .tcp : transport
        self.tls = tls
    }

    /// Whether the server is reached over a TCP or TLS stream.
    public var isStream: Bool { transport == .tcp }

    public var description: String { "\(tls ? "turns" : "turn"):\(address)?transport=\(transport.rawValue) (\(username))" }

    /// The TURN servers of `servers` that can be used: `turn:` URLs (UDP or TCP) and `turns:` URLs (TLS) with
    /// credentials, host names resolved by `resolve` (IP literals need none; a name it cannot resolve is skipped).
    public static func servers(from servers: [ICEServer], resolve: (String) -> IPAddress? = { _ in nil }) -> [TURNServerConfiguration] {
        var result: [TURNServerConfiguration] = []
        for server in servers {
            guard let username = server.username, let credential = server.credential else { continue }
            for url in server.urls where url.scheme == .turn || url.scheme == .turns {
                let ip: IPAddress?
                switch url.host {
                case .ip(let address): ip = address
                case .name(let name): ip = resolve(name)
                }
                guard let ip else { continue }
                let entry = TURNServerConfiguration(address: TransportAddress(ip: ip, port: url.port), username: username, credential: credential,
                                                    transport: url.transport, tls: url.scheme == .turns)
                if !result.contains(entry) { result.append(entry) }
            }
        }
        return result
    }
}

/// Which local candidates the peer connection uses (`RTCIceTransportPolicy`).
public enum ICETransportPolicy: String, Sendable, Hashable {
    /// Host, server-reflexive and relayed candidates.
    case all
    /// Relayed candidates only: host and server-reflexive candidates are neither signalled nor paired,
    /// so every check and all media go through a TURN allocation.
    case relay
}

/// A TURN server the shell reaches over a TCP (or TLS) connection on a peer connection core's behalf.
public struct TURNStreamConnection: Sendable, Hashable {
    /// Names the connection to the core (transmits, bytes read, closure).
    public let id: Int
    public let server: TransportAddress
    public let tls: Bool

    public init(id: Int, server: TransportAddress, tls: Bool) {
        self.id = id
        self.server = server
        self.tls = tls
    }
}

/// How a `turns:` server's certificate is verified.
public enum TURNTLSTrust: Sendable, Hashable {
    /// The system's trust roots; the certificate must name the server's IP address.
    case system
    /// The CA or self-signed certificates of a PEM file (instead of the system's); the certificate must name the IP address.
    case certificates(pemFile: String)
    /// No verification at all: for tests only (anyone on the path can read and change the TURN traffic).
    case insecureNoVerification
}
