import Testing
import Wire
@testable import ICE

@Suite struct SharedPortDemultiplexerTests {
    func host(_ address: TransportAddress) -> Candidate {
        Candidate(foundation: "1", priority: Candidate.priority(type: .host, localPreference: 65535),
                  address: .ip(address.ip), port: address.port, type: .host)
    }

    /// Two server-side agents on one port, two clients: checks, responses and media reach the right agent.
    @Test func twoAgentsShareOnePortAndEachConnectsToItsOwnPeer() throws {
        let shared = TransportAddress("192.0.2.1:3478")!
        let clientAddresses = [TransportAddress("198.51.100.1:5000")!, TransportAddress("198.51.100.2:6000")!]
        var configuration = ICEAgentConfiguration()
        var servers: [ICEAgent] = []
        var clients: [ICEAgent] = []
        var demux = SharedPortDemultiplexer<Int>()
        for index in 0..<2 {
            configuration.seed = UInt64(10 + index)
            var server = ICEAgent(role: .controlled, localCredentials: .random(), configuration: configuration)
            configuration.seed = UInt64(20 + index)
            var client = ICEAgent(role: .controlling, localCredentials: .random(), configuration: configuration)
            server.addLocalCandidate(host(shared), base: shared)
            client.addLocalCandidate(host(clientAddresses[index]), base: clientAddresses[index])
            server.setRemoteCredentials(ufrag: client.localCredentials.ufrag, pwd: client.localCredentials.pwd)
            client.setRemoteCredentials(ufrag: server.localCredentials.ufrag, pwd: server.localCredentials.pwd)
            client.addRemoteCandidate(host(shared))
            server.addRemoteCandidate(host(clientAddresses[index]))
            demux.register(localUfrag: server.localCredentials.ufrag, for: index)
            servers.append(server)
            clients.append(client)
        }
        var now = MonotonicTime(nanoseconds: 1_000_000_000)
        var misrouted = 0
        for _ in 0..<2000 where servers.contains(where: { $0.selectedPair == nil }) || clients.contains(where: { $0.selectedPair == nil }) {
            for index in 0..<2 {
                while let transmit = clients[index].pollTransmit() {
                    guard transmit.destination == shared, let id = demux.route(transmit.bytes, from: transmit.source) else { continue }
                    if id != index { misrouted += 1 }
                    _ = servers[id].handleDatagram(transmit.bytes, from: transmit.source, to: shared, now: now)
                }
                while let transmit = servers[index].pollTransmit() {
                    demux.noteSent(transmit.bytes, to: transmit.destination, by: index)
                    if let client = clientAddresses.firstIndex(of: transmit.destination) {
                        _ = clients[client].handleDatagram(transmit.bytes, from: shared, to: transmit.destination, now: now)
                    }
                }
            }
            now = now + .milliseconds(10)
            for index in 0..<2 {
                clients[index].handleTimeout(now: now)
                servers[index].handleTimeout(now: now)
            }
        }
        #expect(misrouted == 0)
        for index in 0..<2 {
            #expect(servers[index].selectedPair?.remoteAddress == clientAddresses[index])
            #expect(clients[index].selectedPair?.remoteAddress == shared)
            #expect(servers[index].stats.badUsernameDrops == 0 && servers[index].stats.badIntegrityDrops == 0)
        }
        // Media (here a DTLS-looking datagram) follows the source the checks came from.
        #expect(demux.route([22, 254, 253] + [UInt8](repeating: 0, count: 20), from: clientAddresses[1]) == 1)
        #expect(demux.route([0x80, 111, 0, 1], from: clientAddresses[0]) == 0)
        #expect(demux.unroutedDrops == 0)
    }

    @Test func unknownUfragsAndSourcesAreDroppedAndCounted() throws {
        var demux = SharedPortDemultiplexer<String>()
        demux.register(localUfrag: "abcd", for: "x")
        let stranger = TransportAddress("203.0.113.5:1000")!
        let request = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username("zzzz:peer")])
            .encoded(integrity: .sha1(key: Array("passwordpasswordpassword".utf8)), fingerprint: true)
        #expect(demux.route(request, from: stranger) == nil)
        #expect(demux.route([0x80, 0, 0, 0], from: stranger) == nil)
        #expect(demux.unroutedDrops == 2)
        let anonymous = STUNMessage(type: .bindingRequest, transactionID: .random()).encoded(fingerprint: true)
        #expect(demux.route(anonymous, from: stranger) == nil)
        #expect(demux.badUsernameDrops == 1)
        let ours = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username("abcd:peer")]).encoded(fingerprint: true)
        #expect(demux.route(ours, from: stranger) == "x")
        #expect(demux.route([0x80, 0, 0, 0], from: stranger) == "x")
        demux.unregister("x")
        #expect(demux.route(ours, from: stranger) == nil)
        #expect(demux.route([0x80, 0, 0, 0], from: stranger) == nil)
    }

    /// Two agents on one port gather from the same STUN server: the server answers both from one
    /// address, and each response reaches the agent whose request carried its transaction ID.
    @Test func twoAgentsAskTheSameSTUNServerAndEachGetsItsOwnResponse() throws {
        let shared = TransportAddress("192.0.2.1:3478")!
        let server = TransportAddress("203.0.113.9:3478")!
        let mapped = TransportAddress("198.51.100.77:3478")!
        var demux = SharedPortDemultiplexer<Int>()
        var agents: [ICEAgent] = []
        var configuration = ICEAgentConfiguration()
        for index in 0..<2 {
            configuration.seed = UInt64(30 + index)
            var agent = ICEAgent(role: .controlled, localCredentials: .random(), configuration: configuration)
            agent.addLocalCandidate(host(shared), base: shared)
            agent.addSTUNServer(server)
            agent.endOfLocalCandidates()
            demux.register(localUfrag: agent.localCredentials.ufrag, for: index)
            agents.append(agent)
        }
        // Collect each agent's first Binding request to the server (the port learns its transaction).
        var now = MonotonicTime(nanoseconds: 1_000_000_000)
        var requests: [(agent: Int, message: STUNMessage)] = []
        for _ in 0..<20 where requests.count < 2 {
            for index in 0..<2 {
                agents[index].handleTimeout(now: now)
                while let transmit = agents[index].pollTransmit() {
                    demux.noteSent(transmit.bytes, to: transmit.destination, by: index)
                    #expect(transmit.destination == server)
                    let message = try STUNMessage(decoding: transmit.bytes)
                    #expect(message.type == .bindingRequest)
                    if !requests.contains(where: { $0.agent == index }) { requests.append((index, message)) }
                }
            }
            now = now + .milliseconds(50)
        }
        try #require(requests.count == 2)
        #expect(demux.pendingTransactions >= 2)
        // The server answers in reverse order, from its one address; each response reaches its agent.
        for (agent, request) in requests.reversed() {
            let response = STUNMessage(type: .bindingSuccess, transactionID: request.transactionID,
                                       attributes: [.xorMappedAddress(mapped)]).encoded(fingerprint: true)
            #expect(demux.route(response, from: server) == agent)
            _ = agents[agent].handleDatagram(response, from: server, to: shared, now: now)
        }
        for index in 0..<2 {
            #expect(agents[index].localCandidates.contains { $0.type == .srflx && $0.port == mapped.port })
        }
        // The entries went with their responses: a duplicate of the first response now falls back to
        // the source, which the first agent to ask owns (no response of the other agent is stolen by it).
        let duplicate = STUNMessage(type: .bindingSuccess, transactionID: requests[1].message.transactionID,
                                    attributes: [.xorMappedAddress(mapped)]).encoded(fingerprint: true)
        #expect(demux.route(duplicate, from: server) == requests[0].agent)
        #expect(demux.unknownTransactionDrops == 0 && demux.unroutedDrops == 0)
    }

    @Test func responsesToUnknownTransactionsAreDroppedAndCounted() throws {
        var demux = SharedPortDemultiplexer<String>()
        demux.register(localUfrag: "abcd", for: "x")
        let server = TransportAddress("203.0.113.9:3478")!
        let stranger = TransportAddress("203.0.113.5:1000")!
        let request = STUNMessage(type: .bindingRequest, transactionID: .random()).encoded(fingerprint: true)
        demux.noteSent(request, to: server, by: "x")
        let unknown = STUNMessage(type: .bindingSuccess, transactionID: .random()).encoded(fingerprint: true)
        let error = STUNMessage(type: .bindingError, transactionID: .random(), attributes: [.errorCode(code: 400, reason: "Bad")])
            .encoded(fingerprint: true)
        #expect(demux.route(unknown, from: stranger) == nil)
        #expect(demux.route(error, from: stranger) == nil)
        #expect(demux.unknownTransactionDrops == 2)
        #expect(demux.unroutedDrops == 0)
        // Indications and responses an agent sends teach no transaction.
        let indication = STUNMessage(type: .bindingIndication, transactionID: .random()).encoded(fingerprint: true)
        demux.noteSent(indication, to: stranger, by: "x")
        demux.noteSent(unknown, to: stranger, by: "x")
        #expect(demux.pendingTransactions == 1)
        // Unregistering forgets the agent's transactions.
        demux.unregister("x")
        #expect(demux.pendingTransactions == 0)
        let answer = STUNMessage(type: .bindingSuccess, transactionID: try STUNMessage(decoding: request).transactionID)
            .encoded(fingerprint: true)
        #expect(demux.route(answer, from: server) == nil)
        #expect(demux.unknownTransactionDrops == 3)
    }

    @Test func theTransactionTableIsBoundedAndForgetsTheOldestFirst() throws {
        var demux = SharedPortDemultiplexer<Int>()
        demux.maximumPendingTransactions = 100
        let server = TransportAddress("203.0.113.9:3478")!
        var sent: [(id: Int, transaction: STUNTransactionID)] = []
        for index in 0..<1000 {
            let transaction = STUNTransactionID.random()
            demux.noteSent(STUNMessage(type: .bindingRequest, transactionID: transaction).encoded(fingerprint: true), to: server, by: index)
            sent.append((index, transaction))
            // Every other request is answered at once: its entry goes.
            if index % 2 == 1 {
                let response = STUNMessage(type: .bindingSuccess, transactionID: transaction).encoded(fingerprint: true)
                #expect(demux.route(response, from: server) == index)
            }
            #expect(demux.pendingTransactions <= 100)
        }
        // An answered request holds its entry until the response arrives, so the last insertion
        // (999) evicted one more: the newest 99 unanswered requests (even indices 802...998) remain.
        #expect(demux.pendingTransactions == 99)
        #expect(demux.evictedTransactions == 500 - 99)
        for (id, transaction) in sent.suffix(198) where id % 2 == 0 {
            #expect(demux.route(STUNMessage(type: .bindingSuccess, transactionID: transaction).encoded(fingerprint: true), from: server) == id)
        }
        #expect(demux.pendingTransactions == 0)
        // An evicted one (800, 2) falls back to the source, whose owner is the first agent that asked (0).
        for evicted in [sent[800].transaction, sent[2].transaction] {
            #expect(demux.route(STUNMessage(type: .bindingSuccess, transactionID: evicted).encoded(fingerprint: true), from: server) == 0)
        }
        // A retransmission (same transaction ID) renews its entry instead of adding one.
        let again = STUNTransactionID.random()
        let request = STUNMessage(type: .bindingRequest, transactionID: again).encoded(fingerprint: true)
        for _ in 0..<5 { demux.noteSent(request, to: server, by: 7) }
        #expect(demux.pendingTransactions == 1)
        #expect(demux.route(STUNMessage(type: .bindingError, transactionID: again).encoded(fingerprint: true), from: server) == 7)
    }
}
