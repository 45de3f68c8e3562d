import Testing
import Wire
@testable import ICE

private func selectedEvents(_ peer: SimPeer) -> [(time: MonotonicTime, pair: ICECandidatePair)] {
    peer.events.compactMap { if case .selectedPairChanged(let pair) = $0.event { ($0.time, pair) } else { nil } }
}

/// The pairs of both sides are mirror images: each sends to where the other receives.
private func expectMirrored(_ a: SimPeer, _ b: SimPeer, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let pairA = a.agent.selectedPair, let pairB = b.agent.selectedPair else {
        Issue.record("no selected pair: A \(a.agent.state) B \(b.agent.state)", sourceLocation: sourceLocation)
        return
    }
    #expect(pairA.remote.transportAddress == pairB.local.transportAddress, sourceLocation: sourceLocation)
    #expect(pairB.remote.transportAddress == pairA.local.transportAddress, sourceLocation: sourceLocation)
}

/// Sends one non-STUN datagram each way on the selected pairs and checks both arrive from a known remote.
private func expectDataFlows(_ network: SimNetwork, _ a: SimPeer, _ b: SimPeer, sourceLocation: SourceLocation = #_sourceLocation) {
    let before = (a.data.count, b.data.count)
    #expect(network.sendData([0x80, 0x00, 0x01], from: a), sourceLocation: sourceLocation)
    #expect(network.sendData([0x80, 0x00, 0x02], from: b), sourceLocation: sourceLocation)
    network.run(for: .milliseconds(100)) { a.data.count > before.0 && b.data.count > before.1 }
    #expect(b.data.last?.bytes == [0x80, 0x00, 0x01] && b.data.last?.known == true, sourceLocation: sourceLocation)
    #expect(a.data.last?.bytes == [0x80, 0x00, 0x02] && a.data.last?.known == true, sourceLocation: sourceLocation)
}

@Suite("ICE agent over a simulated network")
struct ICEAgentNetworkTests {
    @Test("host candidates connect", arguments: [(ICERole.controlling, ICERole.controlled), (.controlled, .controlling)])
    func hostConnect(roles: (ICERole, ICERole)) {
        let (network, a, b) = SimNetwork.pair(roleA: roles.0, roleB: roles.1)
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
        #expect(a.agent.selectedPair?.local.type == .host && a.agent.selectedPair?.remote.type == .host)
        #expect(a.states.starts(with: [.checking, .connected]))
        #expect(b.states.starts(with: [.checking, .connected]))
        let controlling = roles.0 == .controlling ? a : b
        let controlled = roles.0 == .controlling ? b : a
        // Regular nomination: USE-CANDIDATE is only sent after the controlling side had a success response.
        let firstNomination = network.log.first { entry in
            guard entry.source == controlling.bases[0], let m = try? STUNMessage(decoding: entry.bytes) else { return false }
            return m.type == .bindingRequest && m.useCandidate
        }
        let firstSuccessToControlling = network.log.first { entry in
            guard entry.destination == controlling.bases[0], let m = try? STUNMessage(decoding: entry.bytes) else { return false }
            return m.type == .bindingSuccess
        }
        let nominationTime = try? #require(firstNomination?.time)
        let successTime = try? #require(firstSuccessToControlling?.time)
        if let nominationTime, let successTime { #expect(successTime < nominationTime) }
        #expect(controlled.agent.role == .controlled && controlling.agent.role == .controlling)
        expectDataFlows(network, a, b)
        // A datagram from an unknown address is not STUN: the caller must check `isKnownRemote`.
        let consumed = a.agent.handleDatagram([0x80, 1, 2], from: TransportAddress("192.0.2.99:1")!, to: a.bases[0], now: network.now)
        #expect(!consumed)
        #expect(!a.agent.isKnownRemote(TransportAddress("192.0.2.99:1")!))
        if let connectedAt = controlled.connectedAt, let controllingAt = controlling.connectedAt {
            print("ICE host connect (virtual time, 10 ms one-way delay): controlling \(controllingAt), controlled \(connectedAt)")
        }
    }

    @Test("completed once checks finished and end-of-candidates received")
    func completes() {
        let (network, a, b) = SimNetwork.pair()
        a.agent.endOfRemoteCandidates()
        b.agent.endOfRemoteCandidates()
        network.run(for: .seconds(5)) { a.agent.state == .completed && b.agent.state == .completed }
        #expect(a.agent.state == .completed && b.agent.state == .completed)
    }

    @Test("server-reflexive candidates through a NAT", arguments: [SimNetwork.Filtering.endpointIndependent, .addressAndPortDependent])
    func oneSideBehindNAT(filtering: SimNetwork.Filtering) throws {
        let (network, a, b) = SimNetwork.pair(hostA: "10.0.0.2:5000", natA: filtering, stun: true)
        network.run(for: .seconds(10)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        let srflx = a.events.compactMap { if case .localCandidate(let c) = $0.event { c } else { nil } }
        #expect(srflx.count == 1 && srflx.first?.type == .srflx)
        #expect(srflx.first?.relatedAddress == .ip(IPAddress("10.0.0.2")!) && srflx.first?.relatedPort == 5000)
        #expect(srflx.first?.address == .ip(IPAddress("203.0.113.10")!))
        // B's host is public: its srflx equals its host and is not signalled.
        #expect(!b.events.contains { if case .localCandidate = $0.event { true } else { false } })
        #expect(a.events.contains { $0.event == .gatheringComplete } && b.events.contains { $0.event == .gatheringComplete })
        let pairB = try #require(b.agent.selectedPair)
        #expect(pairB.remoteAddress.ip == IPAddress("203.0.113.10")!)
        #expect([CandidateType.srflx, .prflx].contains(pairB.remote.type))
        #expect(a.agent.selectedPair?.local.type == .srflx)
        #expect(a.agent.selectedPair?.localBase == TransportAddress("10.0.0.2:5000")!)
        // The media path is the pair's base (the socket behind the NAT) and its remote address.
        let pathA = try #require(a.agent.selectedPath)
        #expect(pathA.localBase == TransportAddress("10.0.0.2:5000")! && pathA.remote == a.agent.selectedPair?.remoteAddress)
        #expect(b.agent.selectedPath?.localBase == pairB.localBase && b.agent.selectedPath?.remote == pairB.remoteAddress)
        expectDataFlows(network, a, b)
    }

    @Test("both sides behind NATs with endpoint-independent filtering")
    func bothBehindNAT() throws {
        let (network, a, b) = SimNetwork.pair(hostA: "10.0.0.2:5000", hostB: "10.1.0.2:6000",
                                              natA: .endpointIndependent, natB: .endpointIndependent, stun: true)
        network.run(for: .seconds(10)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
        let pairA = try #require(a.agent.selectedPair)
        #expect(pairA.local.type == .srflx && pairA.remote.type == .srflx)
        expectDataFlows(network, a, b)
    }

    @Test("both sides behind address-and-port-dependent filtering punch through")
    func holePunching() throws {
        let (network, a, b) = SimNetwork.pair(hostA: "10.0.0.2:5000", hostB: "10.1.0.2:6000",
                                              natA: .addressAndPortDependent, natB: .addressAndPortDependent, stun: true)
        network.run(for: .seconds(15)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
        #expect(network.dropped > 0)  // the first checks hit closed filters
        expectDataFlows(network, a, b)
    }

    @Test("same seed, same run")
    func deterministic() {
        func trace() -> [String] {
            let (network, a, b) = SimNetwork.pair(seed: 21)
            network.lossRate = 0.2
            network.run(for: .seconds(10)) { network.bothConnected(a, b) }
            return network.log.map { "\($0.time) \($0.source) \($0.destination) \($0.bytes)" }
        }
        let first = trace()
        #expect(!first.isEmpty)
        #expect(first == trace())
    }

    @Test("peer-reflexive remote candidates are learned from requests")
    func prflxRemote() throws {
        let (network, a, b) = SimNetwork.pair()
        // B never hears of A's candidates: drop the one signalled in setup by rebuilding B's view.
        b.agent = ICEAgent(role: .controlled, localCredentials: b.agent.localCredentials, configuration: b.agent.configuration)
        b.agent.addLocalCandidate(Candidate(foundation: "b1", priority: Candidate.priority(type: .host, localPreference: 65000),
                                            address: .ip(b.bases[0].ip), port: b.bases[0].port, type: .host), base: b.bases[0])
        b.agent.setRemoteCredentials(ufrag: a.agent.localCredentials.ufrag, pwd: a.agent.localCredentials.pwd)
        b.trickle = false
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        let pairB = try #require(b.agent.selectedPair)
        #expect(pairB.remote.type == .prflx)
        #expect(pairB.remoteAddress == a.bases[0])
        // Its priority comes from the PRIORITY attribute: the prflx preference with A's local preference.
        #expect(pairB.remote.priority == Candidate.priority(type: .prflx, localPreference: 65000))
    }

    @Test("peer-reflexive local candidate from XOR-MAPPED-ADDRESS")
    func prflxLocal() throws {
        // A is behind a NAT and has no STUN server: only its checks reveal its public address.
        let (network, a, b) = SimNetwork.pair(hostA: "10.0.0.2:5000", natA: .endpointIndependent)
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        let pairA = try #require(a.agent.selectedPair)
        #expect(pairA.local.type == .prflx)
        #expect(pairA.local.address == .ip(IPAddress("203.0.113.10")!))
        #expect(pairA.localBase == a.bases[0])
        #expect(b.agent.selectedPair?.remote.type == .prflx)
    }

    @Test("role conflict resolves", arguments: [ICERole.controlling, .controlled])
    func roleConflict(role: ICERole) {
        let (network, a, b) = SimNetwork.pair(roleA: role, roleB: role, tieBreakerA: 1000, tieBreakerB: 2000)
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
        #expect(a.agent.role != b.agent.role)
        // The larger tie-breaker (B) ends up controlling.
        #expect(b.agent.role == .controlling && a.agent.role == .controlled)
        let switches = a.agent.stats.roleSwitches + b.agent.stats.roleSwitches
        #expect(switches >= 1)
        let changed = (a.events + b.events).contains { if case .roleChanged = $0.event { true } else { false } }
        #expect(changed)
        #expect(a.agent.stats.roleConflictsSent + b.agent.stats.roleConflictsSent + a.agent.stats.roleConflictsReceived + b.agent.stats.roleConflictsReceived >= 1)
    }

    @Test("connects under 30% loss with retransmissions", arguments: [UInt64(3), 11, 29])
    func lossyConnect(seed: UInt64) {
        let (network, a, b) = SimNetwork.pair(seed: seed)
        network.lossRate = 0.3
        network.jitter = .milliseconds(20)
        network.run(for: .seconds(20)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
        #expect(network.dropped > 0)
        print("ICE 30% loss seed \(seed): connected at A \(a.connectedAt.map(String.init(describing:)) ?? "-"), B \(b.connectedAt.map(String.init(describing:)) ?? "-"), retransmissions \(a.agent.stats.retransmissions + b.agent.stats.retransmissions)")
    }

    @Test("consent lost after 30 s of silence")
    func consentLoss() throws {
        let (network, a, b) = SimNetwork.pair()
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        // Consent keeps the pair alive while the path works.
        network.run(for: .seconds(60))
        #expect(network.bothConnected(a, b))
        #expect(a.agent.stats.requestsSent > 10)
        let silenceStart = network.now
        network.blockAll = true
        network.run(for: .seconds(40))
        for peer in [a, b] {
            let disconnectedAt = try #require(peer.events.last { $0.event == .stateChanged(.disconnected) }?.time)
            let failedAt = try #require(peer.events.last { $0.event == .stateChanged(.failed) }?.time)
            let lostAt = try #require(peer.events.last { $0.event == .consentLost }?.time)
            #expect(disconnectedAt > silenceStart && disconnectedAt < silenceStart + .seconds(15))
            #expect(failedAt > disconnectedAt)
            #expect(lostAt == failedAt)
            // The last consent response came at most one consent interval (6 s) before the silence.
            #expect(lostAt >= silenceStart + .seconds(24) && lostAt <= silenceStart + .seconds(31))
            #expect(peer.agent.selectedPair == nil)
            #expect(peer.agent.state == .failed)
        }
    }

    @Test("disconnected recovers to connected when consent responses resume")
    func disconnectedRecovers() {
        let (network, a, b) = SimNetwork.pair()
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        network.blockAll = true
        network.run(for: .seconds(20)) { a.agent.state == .disconnected }
        #expect(a.agent.state == .disconnected)
        network.blockAll = false
        network.run(for: .seconds(10)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        #expect(!a.events.contains { $0.event == .consentLost })
    }

    @Test("ICE restart selects a new pair and keeps the old one until then")
    func restart() throws {
        let (network, a, b) = SimNetwork.pair()
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        let oldPair = try #require(a.agent.selectedPair)
        let selectionsBefore = selectedEvents(a).count

        // A gets a new, preferred interface and restarts; B learns of it 8 s later (slow signalling),
        // long enough for consent checks with the old credentials to run both ways meanwhile.
        var rng = SplitMix64(seed: 99)
        let newA = ICECredentials.random(using: &rng), newB = ICECredentials.random(using: &rng)
        let hostA2 = a.addHost("192.0.2.2:5002", foundation: "a2", localPreference: 65535)
        network.realmOf[hostA2.transportAddress!.ip] = .some(nil)
        a.agent.restart(newLocalCredentials: newA)
        #expect(a.agent.selectedPair == oldPair)
        let consentBefore = (a.agent.stats.successResponsesReceived, b.agent.stats.successResponsesReceived)
        network.run(for: .seconds(8))
        #expect(a.agent.selectedPair == oldPair)
        #expect(a.agent.state == .connected && b.isConnected)
        #expect(!a.states.contains(.disconnected) && !b.states.contains(.disconnected))
        #expect(a.agent.stats.successResponsesReceived > consentBefore.0 && b.agent.stats.successResponsesReceived > consentBefore.1)
        expectDataFlows(network, a, b)

        b.agent.restart(newLocalCredentials: newB)
        b.agent.setRemoteCredentials(ufrag: newA.ufrag, pwd: newA.pwd)
        a.agent.setRemoteCredentials(ufrag: newB.ufrag, pwd: newB.pwd)
        for candidate in a.agent.localCandidates { b.agent.addRemoteCandidate(candidate) }
        for candidate in b.agent.localCandidates { a.agent.addRemoteCandidate(candidate) }
        #expect(b.agent.selectedPair != nil)
        network.run(for: .seconds(5)) { selectedEvents(a).count > selectionsBefore && selectedEvents(b).count > selectionsBefore }
        #expect(network.bothConnected(a, b))
        let newPair = try #require(a.agent.selectedPair)
        #expect(newPair.localBase == TransportAddress("192.0.2.2:5002")!)
        #expect(newPair != oldPair)
        expectMirrored(a, b)
        expectDataFlows(network, a, b)
        // Consent with the new credentials keeps it up.
        network.run(for: .seconds(40))
        #expect(network.bothConnected(a, b))
        #expect(!a.events.contains { $0.event == .consentLost })
    }

    @Test("candidates before credentials, and credentials before candidates")
    func trickleOrdering() {
        let network = SimNetwork(seed: 5)
        var rng = SplitMix64(seed: 5)
        let a = SimPeer(name: "A", role: .controlling, credentials: .random(using: &rng), seed: 1)
        let b = SimPeer(name: "B", role: .controlled, credentials: .random(using: &rng), seed: 2)
        let hostA = a.addHost("192.0.2.1:5000"), hostB = b.addHost("198.51.100.1:6000")
        network.addPeer(a)
        network.addPeer(b)
        // A gets B's candidate first, credentials 300 ms later.
        a.agent.addRemoteCandidate(hostB)
        // B gets A's credentials now and A's candidate only after 1 s.
        b.agent.setRemoteCredentials(ufrag: a.agent.localCredentials.ufrag, pwd: a.agent.localCredentials.pwd)
        network.run(for: .milliseconds(300))
        #expect(a.agent.state == .new)
        a.agent.setRemoteCredentials(ufrag: b.agent.localCredentials.ufrag, pwd: b.agent.localCredentials.pwd)
        network.run(for: .milliseconds(700))
        b.agent.addRemoteCandidate(hostA)
        #expect(b.agent.remoteCandidates.count == 1 && b.agent.remoteCandidates.first?.type == .host)
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        #expect(network.bothConnected(a, b))
        expectMirrored(a, b)
    }

    @Test("fails when every pair fails and end-of-candidates was received")
    func failsWhenUnreachable() {
        let (network, a, b) = SimNetwork.pair()
        network.blockAll = true
        a.agent.endOfRemoteCandidates()
        network.run(for: .seconds(25)) { a.agent.state == .failed }
        #expect(a.agent.state == .failed)
        #expect(a.agent.selectedPair == nil)
        #expect(a.agent.stats.transactionTimeouts >= 1)
        // B never received end-of-candidates: it fails on the checking timeout.
        network.run(for: .seconds(10)) { b.agent.state == .failed }
        #expect(b.agent.state == .failed)
    }

    @Test("close stops everything")
    func close() {
        let (network, a, b) = SimNetwork.pair()
        network.run(for: .seconds(5)) { network.bothConnected(a, b) }
        a.agent.close()
        #expect(a.agent.state == .closed && a.agent.selectedPair == nil && a.agent.selectedPath == nil && a.agent.nextTimeout == nil)
        network.flush()
        #expect(a.states.last == .closed)
        let transmit = a.agent.pollTransmit()
        #expect(transmit == nil)
    }
}
