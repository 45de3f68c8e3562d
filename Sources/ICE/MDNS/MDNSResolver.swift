import Wire

/// The mDNS multicast groups and port (RFC 6762 section 3).
public enum MDNSGroup {
    public static let port: UInt16 = 5353
    public static let ipv4 = TransportAddress(ip: .v4(0xE000_00FB), port: 5353)
    public static let ipv6 = TransportAddress(ip: .v6(0xFF02_0000_0000_0000, 0xFB), port: 5353)
}

/// Settings for an `MDNSResolver`.
public struct MDNSResolverConfiguration: Sendable, Equatable {
    /// Give up on a name after this long.
    public var timeout: Duration = .seconds(3)
    /// Extra queries after the first one.
    public var retransmissions = 2
    /// Time between queries.
    public var retransmitInterval: Duration = .seconds(1)
    /// Set the QU (unicast response) bit on the first query (RFC 6762 section 5.4).
    public var unicastResponseOnFirstQuery = true
    /// Ask for AAAA as well as A.
    public var queryIPv6 = true

    public init() {}
}

/// What an `MDNSResolver` reports.
public enum MDNSEvent: Equatable, Sendable {
    case resolved(name: String, addresses: [IPAddress])
    case timedOut(name: String)
}

/// One-shot mDNS resolution (RFC 6762 section 5.1), sans-IO.
///
/// Each datagram from `pollTransmit()` goes to `MDNSGroup.ipv4` (and/or `MDNSGroup.ipv6`) from an
/// ephemeral port; responders answer one-shot queries by unicast to that port. Responses go to
/// `handleDatagram(_:now:)`.
public struct MDNSResolver: Sendable {
    public let configuration: MDNSResolverConfiguration
    /// Datagrams that did not parse.
    public private(set) var malformedDatagrams = 0

    private struct Pending: Sendable {
        var text: String
        var name: MDNSName
        var deadline: MonotonicTime
        var queriesSent: Int
        var nextQuery: MonotonicTime
    }

    private var pending: [Pending] = []
    private var outgoing: [[UInt8]] = []
    private var events: [MDNSEvent] = []
    private var nextID: UInt16 = 1

    public init(configuration: MDNSResolverConfiguration = MDNSResolverConfiguration()) {
        self.configuration = configuration
    }

    /// Starts resolving `name` (e.g. `1f2e....local`); a name already being resolved is not queried twice.
    public mutating func resolve(name: String, now: MonotonicTime) throws(MDNSError) {
        let parsed = try MDNSName(name)
        guard !parsed.labels.isEmpty else { throw .emptyLabel }
        if pending.contains(where: { $0.name.matches(parsed) }) { return }
        pending.append(Pending(text: name, name: parsed, deadline: now + configuration.timeout, queriesSent: 0, nextQuery: now))
        sendDueQueries(now: now)
    }

    /// Names still being resolved.
    public var pendingNames: [String] { pending.map(\.text) }

    public mutating func pollTransmit() -> [UInt8]? {
        outgoing.isEmpty ? nil : outgoing.removeFirst()
    }

    public mutating func pollEvent() -> MDNSEvent? {
        events.isEmpty ? nil : events.removeFirst()
    }

    public var nextTimeout: MonotonicTime? {
        pending.map { $0.queriesSent <= configuration.retransmissions ? min($0.nextQuery, $0.deadline) : $0.deadline }.min()
    }

    /// Matches A/AAAA records (answers and additionals, TTL > 0) against pending names, case-insensitively.
    public mutating func handleDatagram(_ datagram: [UInt8], now: MonotonicTime) {
        let message: MDNSMessage
        do { message = try MDNSMessage(parsing: datagram) } catch { malformedDatagrams += 1; return }
        guard message.isResponse, message.flags & 0x7800 == 0 else { return }
        let records = message.answers + message.additionals
        pending.removeAll { entry in
            var addresses: [IPAddress] = []
            for record in records where record.ttl > 0 && record.recordClass == 1 && record.name.matches(entry.name) {
                if let address = record.address, !addresses.contains(address) { addresses.append(address) }
            }
            guard !addresses.isEmpty else { return false }
            events.append(.resolved(name: entry.text, addresses: addresses))
            return true
        }
    }

    public mutating func handleTimeout(now: MonotonicTime) {
        pending.removeAll { entry in
            guard now >= entry.deadline else { return false }
            events.append(.timedOut(name: entry.text))
            return true
        }
        sendDueQueries(now: now)
    }

    private mutating func sendDueQueries(now: MonotonicTime) {
        for index in pending.indices where pending[index].queriesSent <= configuration.retransmissions && pending[index].nextQuery <= now {
            let first = pending[index].queriesSent == 0
            let unicast = first && configuration.unicastResponseOnFirstQuery
            var questions = [MDNSQuestion(name: pending[index].name, type: MDNSRecordType.a, unicastResponse: unicast)]
            if configuration.queryIPv6 {
                questions.append(MDNSQuestion(name: pending[index].name, type: MDNSRecordType.aaaa, unicastResponse: unicast))
            }
            let message = MDNSMessage(id: nextID, questions: questions)
            nextID &+= 1
            outgoing.append(message.serialized())
            pending[index].queriesSent += 1
            pending[index].nextQuery = now + configuration.retransmitInterval
        }
    }
}

/// Answers mDNS queries for names we published (`<uuid>.local` host candidates), sans-IO.
public struct MDNSResponder: Sendable {
    /// What to send and where.
    public struct Response: Equatable, Sendable {
        public var payload: [UInt8]
        public var destination: TransportAddress
    }

    private var published: [[[UInt8]]: (name: MDNSName, addresses: [IPAddress])] = [:]
    /// TTL of our records (RFC 6762 recommends 120 s for host records).
    public var ttl: UInt32 = 120

    public init() {}

    /// Publishes `name` with these addresses (replacing earlier ones).
    public mutating func publish(name: String, addresses: [IPAddress]) throws(MDNSError) {
        let parsed = try MDNSName(name)
        published[parsed.lowercasedKey] = (parsed, addresses)
    }

    public mutating func unpublish(name: String) {
        guard let parsed = try? MDNSName(name) else { return }
        published[parsed.lowercasedKey] = nil
    }

    /// The response to a query datagram from `source`, or nil when it asks nothing we own.
    /// Queries from a port other than 5353 (one-shot, "legacy unicast") get a unicast reply echoing
    /// the id and questions, TTL at most 10 s; QU questions get a unicast reply; others go to the group.
    public func respond(to datagram: [UInt8], from source: TransportAddress) -> Response? {
        guard let query = try? MDNSMessage(parsing: datagram), !query.isResponse, query.flags & 0x7800 == 0 else { return nil }
        let legacy = source.port != MDNSGroup.port
        var answers: [MDNSRecord] = []
        var answeredQuestions: [MDNSQuestion] = []
        var unicast = legacy
        for question in query.questions where question.recordClass == 1 || question.recordClass == 255 {
            guard let entry = published[question.name.lowercasedKey] else { continue }
            var matched = false
            for address in entry.addresses {
                let type = address.isIPv4 ? MDNSRecordType.a : MDNSRecordType.aaaa
                guard question.type == type || question.type == MDNSRecordType.any else { continue }
                let record = MDNSRecord(name: entry.name, address: address, ttl: legacy ? min(ttl, 10) : ttl, cacheFlush: !legacy)
                if !answers.contains(record) { answers.append(record) }
                matched = true
            }
            if matched {
                answeredQuestions.append(question)
                if question.unicastResponse { unicast = true }
            }
        }
        guard !answers.isEmpty else { return nil }
        let response = MDNSMessage(id: legacy ? query.id : 0, flags: 0x8400,
                                   questions: legacy ? answeredQuestions.map { MDNSQuestion(name: $0.name, type: $0.type) } : [],
                                   answers: answers)
        let destination = unicast ? source : (source.ip.isIPv4 ? MDNSGroup.ipv4 : MDNSGroup.ipv6)
        return Response(payload: response.serialized(), destination: destination)
    }
}
