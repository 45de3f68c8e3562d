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
                    demux.noteSent(to: transmit.destination, by: index)
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
}
