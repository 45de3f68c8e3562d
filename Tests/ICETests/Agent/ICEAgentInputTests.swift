import Testing
import Wire
@testable import ICE

/// One agent driven by hand: the test plays the remote peer with crafted STUN messages.
private final class Harness {
    var agent: ICEAgent
    let local = TransportAddress("192.0.2.1:5000")!
    let remote = TransportAddress("198.51.100.7:7000")!
    let localCredentials: ICECredentials
    let remoteCredentials: ICECredentials
    var now = MonotonicTime.zero
    var rng = SplitMix64(seed: 42)

    init(role: ICERole, tieBreaker: UInt64 = 500, signalRemote: Bool = true) {
        var seedRNG = SplitMix64(seed: 1)
        localCredentials = .random(using: &seedRNG)
        remoteCredentials = .random(using: &seedRNG)
        var configuration = ICEAgentConfiguration()
        configuration.seed = 9
        configuration.tieBreaker = tieBreaker
        agent = ICEAgent(role: role, localCredentials: localCredentials, configuration: configuration)
        agent.addLocalCandidate(Candidate(foundation: "h", priority: Candidate.priority(type: .host, localPreference: 65535),
                                          address: .ip(local.ip), port: local.port, type: .host), base: local)
        agent.setRemoteCredentials(ufrag: remoteCredentials.ufrag, pwd: remoteCredentials.pwd)
        if signalRemote {
            agent.addRemoteCandidate(Candidate(foundation: "r", priority: Candidate.priority(type: .host, localPreference: 65535),
                                               address: .ip(remote.ip), port: remote.port, type: .host))
        }
    }

    /// A Binding request as the remote peer would send it, with knobs to break it.
    func request(useCandidate: Bool = false, controlling: Bool = true, tieBreaker: UInt64 = 1, username: String? = nil,
                          key: [UInt8]? = nil, integrity: Bool = true, fingerprint: Bool = true, extra: [STUNAttribute] = []) -> (STUNTransactionID, [UInt8]) {
        let id = STUNTransactionID.random(using: &rng)
        var attributes: [STUNAttribute] = [
            .username(username ?? localCredentials.ufrag + ":" + remoteCredentials.ufrag),
            .priority(Candidate.priority(type: .prflx, localPreference: 65535)),
            controlling ? .iceControlling(tieBreaker: tieBreaker) : .iceControlled(tieBreaker: tieBreaker),
        ] + extra
        if useCandidate { attributes.append(.useCandidate) }
        let message = STUNMessage(type: .bindingRequest, transactionID: id, attributes: attributes)
        let bytes = message.encoded(integrity: integrity ? .sha1(key: key ?? Array(localCredentials.pwd.utf8)) : nil, fingerprint: fingerprint)
        return (id, bytes)
    }

    /// A success response to one of the agent's requests, signed with the remote password.
    func response(to request: STUNMessage, mapped: TransportAddress? = nil, key: [UInt8]? = nil) -> [UInt8] {
        STUNMessage(type: .bindingSuccess, transactionID: request.transactionID, attributes: [.xorMappedAddress(mapped ?? local)])
            .encoded(integrity: .sha1(key: key ?? Array(remoteCredentials.pwd.utf8)), fingerprint: true)
    }

    func deliver(_ bytes: [UInt8], from source: TransportAddress? = nil) -> Bool {
        agent.handleDatagram(bytes, from: source ?? remote, to: local, now: now)
    }

    func drain() -> [ICETransmit] {
        var out: [ICETransmit] = []
        while let transmit = agent.pollTransmit() { out.append(transmit) }
        return out
    }

    func events() -> [ICEEvent] {
        var out: [ICEEvent] = []
        while let event = agent.pollEvent() { out.append(event) }
        return out
    }

    /// Advances time to the agent's next timeout (at most `limit` ahead) and returns what it sent.
    func tick(limit: Duration = .seconds(1)) -> [ICETransmit] {
        if let next = agent.nextTimeout, next <= now + limit { now = max(now, next) } else { now = now + limit }
        agent.handleTimeout(now: now)
        return drain()
    }

    /// Ticks until the agent sends a Binding request to the remote and returns it.
    func nextCheck() -> STUNMessage? {
        for _ in 0..<20 {
            for transmit in tick() where transmit.destination == remote {
                if let message = try? STUNMessage(decoding: transmit.bytes), message.type == .bindingRequest { return message }
            }
        }
        return nil
    }
}

private func decode(_ transmit: ICETransmit?) -> STUNMessage? {
    transmit.flatMap { try? STUNMessage(decoding: $0.bytes) }
}

@Suite("ICE agent input handling")
struct ICEAgentInputTests {
    @Test("valid request is answered with XOR-MAPPED-ADDRESS, integrity and fingerprint")
    func validRequest() throws {
        let h = Harness(role: .controlled)
        let (id, bytes) = h.request()
        #expect(h.deliver(bytes))
        let out = h.drain()
        let response = try #require(decode(out.first))
        #expect(response.type == .bindingSuccess && response.transactionID == id)
        #expect(response.xorMappedAddress == h.remote)
        #expect(response.hasFingerprint)
        #expect(response.verifyIntegrity(of: out[0].bytes, key: Array(h.localCredentials.pwd.utf8)))
        #expect(out[0].source == h.local && out[0].destination == h.remote && !out[0].viaRelay)
        #expect(h.agent.stats.requestsReceived == 1 && h.agent.stats.successResponsesSent == 1)
    }

    @Test("malformed and non-STUN datagrams")
    func malformed() {
        let h = Harness(role: .controlled, signalRemote: false)
        var (_, bytes) = h.request()
        bytes[3] &+= 4  // length field lies
        #expect(h.deliver(bytes))
        #expect(h.agent.stats.malformedDrops == 1)
        #expect(h.drain().isEmpty)
        #expect(!h.deliver([0x80, 0x60, 0, 1, 0, 0, 0, 0]))
        #expect(!h.deliver([22, 0xFE, 0xFD] + [UInt8](repeating: 0, count: 30)))
        #expect(!h.deliver([]))
        #expect(h.agent.state == .new && h.agent.remoteCandidates.isEmpty)
    }

    @Test("seeded mutations of a request never change state")
    func mutationLoop() {
        let h = Harness(role: .controlled, signalRemote: false)
        let (_, original) = h.request(useCandidate: true)
        var rng = SplitMix64(seed: 0xACE)
        var consumed = 0
        for _ in 0..<3000 {
            let mutated = mutate(original, using: &rng)
            guard mutated != original else { continue }
            if h.deliver(mutated) { consumed += 1 }
            _ = h.drain()
        }
        #expect(consumed > 0)
        #expect(h.agent.remoteCandidates.isEmpty)
        #expect(h.agent.selectedPair == nil && h.agent.state == .new)
        #expect(h.agent.stats.successResponsesSent == 0)
        // The original still works afterwards.
        #expect(h.deliver(original))
        #expect(h.agent.remoteCandidates.count == 1 && h.agent.remoteCandidates.first?.type == .prflx)
    }

    @Test("bad integrity is answered 401 and changes nothing")
    func badIntegrity() throws {
        let h = Harness(role: .controlled, signalRemote: false)
        let (_, bytes) = h.request(useCandidate: true, key: Array("wrong-password-wrong-pass".utf8))
        #expect(h.deliver(bytes))
        let out = h.drain()
        #expect(out.count == 1)
        let response = try #require(decode(out.first))
        #expect(response.type == .bindingError && response.errorCode?.code == 401)
        #expect(h.agent.stats.badIntegrityDrops == 1)
        #expect(h.agent.remoteCandidates.isEmpty)
        #expect(h.tick().isEmpty)  // no triggered check
        #expect(h.agent.state == .new)
    }

    @Test("wrong or missing USERNAME, missing integrity, missing fingerprint")
    func badUsername() throws {
        let h = Harness(role: .controlled, signalRemote: false)
        let (_, wrongLocal) = h.request(username: "nope:" + h.remoteCredentials.ufrag)
        #expect(h.deliver(wrongLocal))
        #expect(decode(h.drain().first)?.errorCode?.code == 401)
        let (_, wrongRemote) = h.request(username: h.localCredentials.ufrag + ":someoneelse")
        #expect(h.deliver(wrongRemote))
        #expect(decode(h.drain().first)?.errorCode?.code == 401)
        #expect(h.agent.stats.badUsernameDrops == 2)
        let (_, noIntegrity) = h.request(integrity: false)
        #expect(h.deliver(noIntegrity))
        #expect(decode(h.drain().first)?.errorCode?.code == 400)
        let (_, noFingerprint) = h.request(fingerprint: false)
        #expect(h.deliver(noFingerprint))
        #expect(h.drain().isEmpty)
        #expect(h.agent.stats.missingFingerprintDrops == 1)
        #expect(h.agent.remoteCandidates.isEmpty && h.agent.state == .new)
    }

    @Test("unknown comprehension-required attribute gets 420 with UNKNOWN-ATTRIBUTES")
    func unknownAttribute() throws {
        let h = Harness(role: .controlled)
        let (id, bytes) = h.request(extra: [.other(type: 0x7F31, value: [1, 2, 3, 4])])
        #expect(h.deliver(bytes))
        let out = h.drain()
        let response = try #require(decode(out.first))
        #expect(response.transactionID == id && response.errorCode?.code == 420)
        #expect(response.first { if case .unknownAttributes(let types) = $0 { types } else { nil } } == [UInt16(0x7F31)])
        #expect(response.verifyIntegrity(of: out[0].bytes, key: Array(h.localCredentials.pwd.utf8)))
        #expect(h.agent.stats.unknownAttributeRejections == 1)
        // Comprehension-optional unknown attributes are ignored.
        let (_, optional) = h.request(extra: [.other(type: 0xC0DE, value: [9, 9, 9, 9])])
        #expect(h.deliver(optional))
        #expect(decode(h.drain().first)?.type == .bindingSuccess)
    }

    @Test("responses to unknown transactions and with bad integrity are dropped")
    func unknownTransaction() throws {
        let h = Harness(role: .controlling)
        let stray = STUNMessage(type: .bindingSuccess, transactionID: STUNTransactionID(high: 1, low: 2), attributes: [.xorMappedAddress(h.local)])
        #expect(h.deliver(stray.encoded(integrity: .sha1(key: Array(h.remoteCredentials.pwd.utf8)), fingerprint: true)))
        #expect(h.agent.stats.unknownTransactionDrops == 1)
        let check = try #require(h.nextCheck())
        #expect(check.username == h.remoteCredentials.ufrag + ":" + h.localCredentials.ufrag)
        #expect(check.iceControlling == 500 && check.priority != nil && !check.useCandidate)
        #expect(h.deliver(h.response(to: check, key: Array("not-the-remote-password!!".utf8))))
        #expect(h.agent.stats.badIntegrityDrops == 1)
        #expect(h.agent.selectedPair == nil)
        // The transaction is still open: it retransmits the same bytes.
        let retransmit = try #require(h.nextCheck())
        #expect(retransmit.transactionID == check.transactionID)
        #expect(h.agent.stats.retransmissions >= 1)
    }

    @Test("response from another address fails the pair (symmetric check)")
    func asymmetricResponse() throws {
        let h = Harness(role: .controlling)
        let check = try #require(h.nextCheck())
        #expect(h.deliver(h.response(to: check), from: TransportAddress("198.51.100.8:7000")!))
        #expect(h.agent.stats.asymmetricResponses == 1)
        h.agent.endOfRemoteCandidates()
        h.agent.endOfLocalCandidates()
        for _ in 0..<5 { _ = h.tick() }
        #expect(h.agent.selectedPair == nil)
        #expect(h.agent.state == .failed)
    }

    @Test("controlled agent accepts aggressive nomination")
    func aggressiveNomination() throws {
        let h = Harness(role: .controlled, signalRemote: false)
        // Every check from the (browser) peer carries USE-CANDIDATE; the pair is not valid yet.
        let (_, bytes) = h.request(useCandidate: true)
        #expect(h.deliver(bytes))
        #expect(decode(h.drain().first)?.type == .bindingSuccess)
        #expect(h.agent.selectedPair == nil)
        // The triggered check goes out; its success makes the nominated pair selected.
        let check = try #require(h.nextCheck())
        #expect(check.iceControlled == 500 && !check.useCandidate)
        #expect(h.deliver(h.response(to: check)))
        let pair = try #require(h.agent.selectedPair)
        #expect(pair.remoteAddress == h.remote && pair.localBase == h.local && pair.remote.type == .prflx)
        #expect(h.events().contains(.selectedPairChanged(pair)))
        #expect(h.agent.state == .connected)
    }

    @Test("controlled agent selects at once when USE-CANDIDATE arrives on a valid pair")
    func nominationOnValidPair() throws {
        let h = Harness(role: .controlled)
        let check = try #require(h.nextCheck())
        #expect(h.deliver(h.response(to: check)))
        #expect(h.agent.selectedPair == nil)
        let (_, plain) = h.request()
        #expect(h.deliver(plain))
        #expect(h.agent.selectedPair == nil)
        let (_, nominating) = h.request(useCandidate: true)
        #expect(h.deliver(nominating))
        #expect(h.agent.selectedPair?.remoteAddress == h.remote)
    }

    @Test("controlling agent nominates with USE-CANDIDATE after a check succeeded")
    func regularNomination() throws {
        let h = Harness(role: .controlling)
        let check = try #require(h.nextCheck())
        #expect(!check.useCandidate)
        #expect(h.deliver(h.response(to: check)))
        let nomination = try #require(h.nextCheck())
        #expect(nomination.useCandidate && nomination.iceControlling == 500)
        #expect(h.agent.selectedPair == nil)
        #expect(h.deliver(h.response(to: nomination)))
        #expect(h.agent.selectedPair?.remoteAddress == h.remote)
    }

    @Test("role conflict as receiver", arguments: [(UInt64(100), false), (UInt64(900), true)])
    func roleConflictReceived(theirs: UInt64, switches: Bool) throws {
        let h = Harness(role: .controlling, tieBreaker: 500)
        let (_, bytes) = h.request(controlling: true, tieBreaker: theirs)
        #expect(h.deliver(bytes))
        let response = try #require(decode(h.drain().first))
        if switches {
            #expect(response.type == .bindingSuccess)
            #expect(h.agent.role == .controlled)
            #expect(h.events().contains(.roleChanged(.controlled)))
        } else {
            #expect(response.errorCode?.code == 487)
            #expect(h.agent.role == .controlling)
            #expect(h.agent.stats.roleConflictsSent == 1)
        }
    }

    @Test("controlled receiver of ICE-CONTROLLED compares tie-breakers", arguments: [(UInt64(100), true), (UInt64(900), false)])
    func roleConflictControlled(theirs: UInt64, switches: Bool) throws {
        let h = Harness(role: .controlled, tieBreaker: 500)
        let (_, bytes) = h.request(controlling: false, tieBreaker: theirs)
        #expect(h.deliver(bytes))
        let response = try #require(decode(h.drain().first))
        #expect(h.agent.role == (switches ? .controlling : .controlled))
        #expect(response.type == (switches ? .bindingSuccess : .bindingError))
    }

    @Test("487 response switches role and retries")
    func roleConflictResponse() throws {
        let h = Harness(role: .controlling)
        let check = try #require(h.nextCheck())
        let conflict = STUNMessage(type: .bindingError, transactionID: check.transactionID, attributes: [.errorCode(code: 487, reason: "Role Conflict")])
            .encoded(integrity: .sha1(key: Array(h.remoteCredentials.pwd.utf8)), fingerprint: true)
        #expect(h.deliver(conflict))
        #expect(h.agent.role == .controlled)
        let retry = try #require(h.nextCheck())
        #expect(retry.transactionID != check.transactionID)
        #expect(retry.iceControlled == 500 && retry.iceControlling == nil)
    }

    @Test("hostname (mDNS) and TCP candidates are dropped and counted")
    func droppedCandidates() throws {
        let h = Harness(role: .controlled, signalRemote: false)
        h.agent.addRemoteCandidate(try Candidate(parsing: "candidate:1 1 udp 2122260223 0f3c1d2e-aaaa-bbbb-cccc-123456789abc.local 54321 typ host"))
        h.agent.addRemoteCandidate(try Candidate(parsing: "candidate:2 1 tcp 1518280447 198.51.100.7 9 typ host tcptype active"))
        #expect(h.agent.remoteCandidates.isEmpty)
        #expect(h.agent.stats.droppedRemoteCandidates == 2)
        h.agent.addRemoteCandidate(try Candidate(parsing: "candidate:3 1 UDP 2122260223 198.51.100.7 7000 typ host"))
        #expect(h.agent.remoteCandidates.count == 1)
        #expect(h.agent.isKnownRemote(h.remote))
    }

    @Test("relay candidates send with viaRelay")
    func relayTransmits() throws {
        let h = Harness(role: .controlling, signalRemote: false)
        let relayed = TransportAddress("203.0.113.50:49152")!
        h.agent.addLocalCandidate(Candidate(foundation: "t", priority: Candidate.priority(type: .relay, localPreference: 65535),
                                            address: .ip(relayed.ip), port: relayed.port, type: .relay,
                                            relatedAddress: .ip(h.local.ip), relatedPort: h.local.port), base: relayed)
        h.agent.addRemoteCandidate(Candidate(foundation: "r", priority: 1000, address: .ip(h.remote.ip), port: h.remote.port, type: .host))
        var sent: [ICETransmit] = []
        for _ in 0..<5 { sent += h.tick() }
        #expect(sent.contains { $0.source == relayed && $0.viaRelay })
        #expect(sent.contains { $0.source == h.local && !$0.viaRelay })
    }

    @Test("gathering dedupes reflexive candidates equal to a host and completes")
    func gathering() throws {
        let h = Harness(role: .controlling, signalRemote: false)
        let server = TransportAddress("192.0.2.254:3478")!
        h.agent.addSTUNServer(server)
        h.agent.endOfLocalCandidates()
        let out = h.tick()
        let request = try #require(out.first { $0.destination == server })
        let message = try #require(decode(request))
        // A public host: the mapped address is the host itself.
        let same = STUNMessage(type: .bindingSuccess, transactionID: message.transactionID, attributes: [.xorMappedAddress(h.local)]).encoded(fingerprint: true)
        #expect(h.deliver(same, from: server))
        let events = h.events()
        #expect(!events.contains { if case .localCandidate = $0 { true } else { false } })
        #expect(events.contains(.gatheringComplete))
    }

    @Test("pair priority formula")
    func pairPriority() {
        #expect(ICEAgent.pairPriority(controlling: 10, controlled: 20) == (UInt64(10) << 32) + 40)
        #expect(ICEAgent.pairPriority(controlling: 20, controlled: 10) == (UInt64(10) << 32) + 41)
        // Out-of-range priorities (a peer's PRIORITY attribute can say anything) are clamped, not trapped on.
        let top = UInt64(0x7FFF_FFFF)
        #expect(ICEAgent.pairPriority(controlling: .max, controlled: .max) == top << 32 + 2 * top)
        #expect(ICEAgent.pairPriority(controlling: .max, controlled: 0x7FFF_FFFF) == top << 32 + 2 * top)
        let host = Candidate.priority(type: .host, localPreference: 65535), relay = Candidate.priority(type: .relay, localPreference: 65535)
        #expect(ICEAgent.pairPriority(controlling: host, controlled: host) > ICEAgent.pairPriority(controlling: host, controlled: relay))
    }

    @Test("a PRIORITY of 0xFFFFFFFF from a peer-reflexive address is handled")
    func hugePriority() {
        let h = Harness(role: .controlling, signalRemote: false)
        let id = STUNTransactionID(high: 7, low: 7)
        let bytes = STUNMessage(type: .bindingRequest, transactionID: id, attributes: [
            .username(h.localCredentials.ufrag + ":" + h.remoteCredentials.ufrag), .priority(.max), .iceControlled(tieBreaker: 1),
        ]).encoded(integrity: .sha1(key: Array(h.localCredentials.pwd.utf8)), fingerprint: true)
        #expect(h.deliver(bytes))
        #expect(h.agent.remoteCandidates.first?.priority == .max)
        #expect(h.nextCheck() != nil)
    }

    @Test("seeded mutations of check responses never select a pair")
    func responseMutationLoop() throws {
        let h = Harness(role: .controlling)
        let check = try #require(h.nextCheck())
        let original = h.response(to: check)
        var rng = SplitMix64(seed: 0xBEEF)
        for _ in 0..<3000 {
            let mutated = mutate(original, using: &rng)
            guard mutated != original else { continue }
            _ = h.deliver(mutated)
        }
        #expect(h.agent.selectedPair == nil)
        #expect(h.agent.stats.successResponsesReceived == 0)
        #expect(h.agent.stats.malformedDrops + h.agent.stats.badIntegrityDrops + h.agent.stats.unknownTransactionDrops > 0)
        // FINGERPRINT mutated into an unknown optional attribute after MESSAGE-INTEGRITY leaves a message whose
        // integrity holds; ICE still refuses it for the missing FINGERPRINT.
        #expect(h.agent.stats.missingFingerprintDrops > 0)
        // The genuine response is still accepted afterwards.
        #expect(h.deliver(original))
        #expect(h.agent.stats.successResponsesReceived == 1)
    }

    @Test("random credentials have RFC lengths and ice-chars")
    func credentials() {
        var rng = SplitMix64(seed: 3)
        let first = ICECredentials.random(using: &rng)
        #expect(first.isValid && first.ufrag.count >= 4 && first.pwd.count >= 22)
        var again = SplitMix64(seed: 3)
        #expect(ICECredentials.random(using: &again) == first)
        #expect(ICECredentials.random().isValid)
        #expect(!ICECredentials(ufrag: "abc", pwd: String(repeating: "a", count: 22)).isValid)
        #expect(!ICECredentials(ufrag: "abcd", pwd: String(repeating: "a", count: 21)).isValid)
    }
}
