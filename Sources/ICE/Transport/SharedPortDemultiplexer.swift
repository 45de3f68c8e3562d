import Wire

/// Routes the datagrams of one shared UDP port to the ICE agents (connections) that use it, as
/// server deployments behind firewalls need (one open port for every peer), sans-IO.
///
/// A connectivity check names its agent: the USERNAME of a Binding request is
/// `<receiver's ufrag>:<sender's ufrag>`, and the receiver's ufrag is unique per agent. Once a request
/// from a source was routed, everything else from that source (responses, DTLS, SRTP) goes to the
/// same agent; so do datagrams from addresses an agent sent to (`noteSent`), which covers responses to
/// its own checks before the peer's first request arrives.
public struct SharedPortDemultiplexer<ID: Hashable & Sendable>: Sendable {
    private var byUfrag: [String: ID] = [:]
    private var bySource: [TransportAddress: ID] = [:]
    private var sources: [ID: Set<TransportAddress>] = [:]
    /// Upper bound on remembered sources per agent (candidate pairs are bounded the same way).
    public var maximumSourcesPerAgent = 128

    /// Datagrams that matched no agent: an unknown ufrag, or a non-STUN datagram from an unknown source.
    public private(set) var unroutedDrops = 0
    /// STUN requests without a usable USERNAME.
    public private(set) var badUsernameDrops = 0

    public init() {}

    /// Routes requests whose USERNAME starts with `localUfrag` to `id` (call again with the new ufrag after an ICE restart).
    public mutating func register(localUfrag: String, for id: ID) {
        byUfrag[localUfrag] = id
    }

    /// Forgets `id`: its ufrags and sources.
    public mutating func unregister(_ id: ID) {
        byUfrag = byUfrag.filter { $0.value != id }
        for source in sources[id] ?? [] where bySource[source] == id { bySource[source] = nil }
        sources[id] = nil
    }

    /// `id` sent a datagram to `destination`: what comes back from there is its.
    public mutating func noteSent(to destination: TransportAddress, by id: ID) {
        remember(destination, for: id)
    }

    /// The agent a received datagram belongs to, or nil (counted) when none.
    public mutating func route(_ datagram: [UInt8], from source: TransportAddress) -> ID? {
        let isSTUNRequest = datagram.count >= 20 && datagram[0] < 4 && (datagram[0] & 0x01) == 0 && (datagram[1] & 0x10) == 0
        if isSTUNRequest {
            guard let message = try? STUNMessage(decoding: datagram), let username = message.username,
                  let colon = username.firstIndex(of: ":") else {
                badUsernameDrops += 1
                return nil
            }
            guard let id = byUfrag[String(username[..<colon])] else {
                unroutedDrops += 1
                return nil
            }
            remember(source, for: id)
            return id
        }
        guard let id = bySource[source] else {
            unroutedDrops += 1
            return nil
        }
        return id
    }

    private mutating func remember(_ source: TransportAddress, for id: ID) {
        if let previous = bySource[source], previous != id { sources[previous]?.remove(source) }
        guard (sources[id]?.count ?? 0) < maximumSourcesPerAgent || sources[id]?.contains(source) == true else { return }
        bySource[source] = id
        sources[id, default: []].insert(source)
    }
}
