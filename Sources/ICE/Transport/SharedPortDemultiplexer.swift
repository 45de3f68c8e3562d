import Wire

/// Routes the datagrams of one shared UDP port to the ICE agents (connections) that use it, as
/// server deployments behind firewalls need (one open port for every peer), sans-IO.
///
/// A connectivity check names its agent: the USERNAME of a Binding request is
/// `<receiver's ufrag>:<sender's ufrag>`, and the receiver's ufrag is unique per agent. Once a request
/// from a source was routed, everything else from that source (DTLS, SRTP) goes to the same agent;
/// so do datagrams from addresses an agent sent DTLS to (`noteSent`).
///
/// A STUN response goes to the agent that sent the request with its transaction ID (`noteSent`
/// remembers the IDs of the requests an agent sends), before any lookup by source: a STUN server
/// answers every connection on the port from one address, so its address belongs to nobody. The
/// table is bounded (`maximumPendingTransactions`, oldest dropped first, entries dropped when their
/// response arrives); a response it no longer knows falls back to the lookup by source.
public struct SharedPortDemultiplexer<ID: Hashable & Sendable>: Sendable {
    private var byUfrag: [String: ID] = [:]
    /// Source → agent: looked up for every datagram that is not a STUN request (see `AddressTable`).
    private var bySource = AddressTable<ID>()
    private var sources: [ID: Set<TransportAddress>] = [:]
    /// Upper bound on remembered sources per agent (candidate pairs are bounded the same way).
    public var maximumSourcesPerAgent = 128

    /// Transaction ID of a request an agent sent → the agent, and the serial of its entry in `transactionOrder`.
    private var transactions: [STUNTransactionID: (id: ID, serial: UInt64)] = [:]
    /// Insertion order of `transactions` (oldest first from `transactionHead`), for eviction; may hold
    /// stale entries (answered or re-sent transactions), compacted when it grows past twice the bound.
    private var transactionOrder: [(transaction: STUNTransactionID, serial: UInt64)] = []
    private var transactionHead = 0
    private var nextSerial: UInt64 = 0
    /// Upper bound on remembered outstanding transactions (the oldest is forgotten first). A few
    /// thousand covers the requests in flight of hundreds of connections (ICE paces them at 50/s).
    public var maximumPendingTransactions = 4096

    /// Datagrams that matched no agent: an unknown ufrag, or a non-STUN datagram from an unknown source.
    public private(set) var unroutedDrops = 0
    /// STUN requests without a usable USERNAME.
    public private(set) var badUsernameDrops = 0
    /// STUN responses whose transaction ID no agent sent (or was forgotten) and whose source is unknown.
    public private(set) var unknownTransactionDrops = 0
    /// Transactions forgotten unanswered because the table was full.
    public private(set) var evictedTransactions = 0
    /// Outstanding transactions currently remembered.
    public var pendingTransactions: Int { transactions.count }

    public init() {}

    /// Routes requests whose USERNAME starts with `localUfrag` to `id` (call again with the new ufrag after an ICE restart).
    public mutating func register(localUfrag: String, for id: ID) {
        byUfrag[localUfrag] = id
    }

    /// Forgets `id`: its ufrags, sources and outstanding transactions.
    public mutating func unregister(_ id: ID) {
        byUfrag = byUfrag.filter { $0.value != id }
        transactions = transactions.filter { $0.value.id != id }
        for source in sources[id] ?? [] where bySource[source] == id { bySource[source] = nil }
        sources[id] = nil
    }

    /// `id` sent `datagram` to `destination`. A STUN request: its response (by transaction ID) is
    /// `id`'s; the destination is learned only while no other agent owns it (a STUN server answers
    /// the requests of many agents from one address: its responses go by transaction ID anyway, and
    /// the first agent keeps what else comes from there, such as a TURN server's Data indications).
    /// Anything else but RTP/RTCP (RFC 7983: DTLS): what comes back from `destination` is `id`'s.
    public mutating func noteSent(_ datagram: [UInt8], to destination: TransportAddress, by id: ID) {
        guard let first = datagram.first, !(128...191).contains(first) else { return }
        if let header = STUNMessage.peekHeader(datagram) {
            guard header.type.messageClass == .request else { return }  // responses and indications teach nothing
            rememberTransaction(header.transactionID, for: id)
            if bySource[destination] == nil { remember(destination, for: id) }
        } else {
            remember(destination, for: id)
        }
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
        let response = STUNMessage.peekHeader(datagram).flatMap { header in
            header.type.messageClass == .successResponse || header.type.messageClass == .errorResponse ? header.transactionID : nil
        }
        let isSTUNResponse = response != nil
        if let response, let entry = transactions.removeValue(forKey: response) {
            return entry.id
        }
        guard let id = bySource[source] else {
            if isSTUNResponse { unknownTransactionDrops += 1 } else { unroutedDrops += 1 }
            return nil
        }
        return id
    }

    private mutating func rememberTransaction(_ transaction: STUNTransactionID, for id: ID) {
        nextSerial += 1
        transactions[transaction] = (id, nextSerial)  // a retransmission renews its entry
        transactionOrder.append((transaction, nextSerial))
        while transactions.count > max(1, maximumPendingTransactions), transactionHead < transactionOrder.count {
            let oldest = transactionOrder[transactionHead]
            transactionHead += 1
            if transactions[oldest.transaction]?.serial == oldest.serial {
                transactions[oldest.transaction] = nil
                evictedTransactions += 1
            }
        }
        if transactionOrder.count > 2 * max(1, maximumPendingTransactions) {
            // Drop the stale entries (answered or renewed): what stays is at most the bound.
            transactionOrder = transactionOrder[transactionHead...].filter { transactions[$0.transaction]?.serial == $0.serial }
            transactionHead = 0
        }
    }

    private mutating func remember(_ source: TransportAddress, for id: ID) {
        if let previous = bySource[source], previous != id { sources[previous]?.remove(source) }
        guard (sources[id]?.count ?? 0) < maximumSourcesPerAgent || sources[id]?.contains(source) == true else { return }
        bySource[source] = id
        sources[id, default: []].insert(source)
    }
}
