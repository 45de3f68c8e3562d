/// One TURN server to allocate a relayed candidate on: a resolved address and long-term credentials.
///
/// `ICEServer` keeps URLs as browsers take them (host names included); the shell resolves names and
/// turns them into these (`TURNServerConfiguration.servers(from:resolve:)`), so the sans-IO cores
/// never see a DNS name.
public struct TURNServerConfiguration: Sendable, Hashable, CustomStringConvertible {
    public var address: TransportAddress
    public var username: String
    public var credential: String
    /// Transport to the server. Only `.udp` allocations are made by the peer connection today.
    public var transport: ICEServerURL.Transport

    public init(address: TransportAddress, username: String, credential: String, transport: ICEServerURL.Transport = .udp) {
        self.address = address
        self.username = username
        self.credential = credential
        self.transport = transport
    }

    public var description: String { "turn:\(address)?transport=\(transport.rawValue) (\(username))" }

    /// The TURN servers of `servers` that can be used: `turn:` URLs over UDP with credentials, host
    /// names resolved by `resolve` (IP literals need none; a name it cannot resolve is skipped).
    public static func servers(from servers: [ICEServer], resolve: (String) -> IPAddress? = { _ in nil }) -> [TURNServerConfiguration] {
        var result: [TURNServerConfiguration] = []
        for server in servers {
            guard let username = server.username, let credential = server.credential else { continue }
            for url in server.urls where url.scheme == .turn && url.transport == .udp {
                let ip: IPAddress?
                switch url.host {
                case .ip(let address): ip = address
                case .name(let name): ip = resolve(name)
                }
                guard let ip else { continue }
                let entry = TURNServerConfiguration(address: TransportAddress(ip: ip, port: url.port), username: username, credential: credential)
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
