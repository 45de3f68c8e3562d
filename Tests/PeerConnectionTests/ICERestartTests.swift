import DTLS
import ICE
import RTP
import SDP
import Testing
import Wire
@testable import PeerConnection

/// ICE restart on an established connection (RFC 8445 section 9): two cores on the virtual network,
/// the network cut for longer than the consent timeout, then restored.
@Suite struct ICERestartTests {
    func received(_ events: [PeerConnectionEvent]) -> [RTPPacket] {
        events.compactMap { if case .rtp(let packet) = $0 { packet } else { nil } }
    }

    func selectedPairs(_ events: [PeerConnectionEvent]) -> Int {
        events.filter { if case .selectedPairChanged = $0 { true } else { false } }.count
    }

    func consentLost(_ events: [PeerConnectionEvent]) -> Bool {
        events.contains { if case .failed(.consentLost) = $0 { true } else { false } }
    }

    @Test(arguments: [true, false])
    func consentLostThenRestartBringsMediaBack(trickle: Bool) throws {
        let pair = try Pair(trickle: trickle)
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        #expect(pair.a.isConnected && pair.b.isConnected)
        let ufragA = pair.a.localCredentials.ufrag, ufragB = pair.b.localCredentials.ufrag

        // Cut the network for 35 s: both sides lose consent (30 s).
        var networkUp = false
        pair.filter = { _, _, _ in networkUp }
        pair.run(limit: .seconds(35)) { consentLost(pair.eventsA) && consentLost(pair.eventsB) }
        #expect(consentLost(pair.eventsA), "A lost consent")
        #expect(consentLost(pair.eventsB), "B lost consent")
        #expect(pair.a.selectedPair == nil)
        #expect(pair.a.isConnected, "DTLS and SRTP keys stay")

        // A detects it and restarts: a new offer with new credentials; B answers with new ones too.
        networkUp = true
        let pairsBeforeA = selectedPairs(pair.eventsA), pairsBeforeB = selectedPairs(pair.eventsB)
        try pair.a.restartICE()
        let offer = try pair.a.createOffer(now: pair.now)
        #expect(offer.media[0].iceUfrag != ufragA && offer.media[0].iceUfrag == pair.a.localCredentials.ufrag)
        let answer = try pair.b.acceptOffer(try SessionDescription(parsing: offer.serialized()), now: pair.now)
        #expect(answer.media[0].iceUfrag != ufragB && answer.media[0].iceUfrag == pair.b.localCredentials.ufrag)
        try pair.a.setRemoteAnswer(try SessionDescription(parsing: answer.serialized()), now: pair.now)
        if trickle {
            for candidate in pair.a.localCandidates { pair.b.addRemoteCandidate(candidate) }
            for candidate in pair.b.localCandidates { pair.a.addRemoteCandidate(candidate) }
        }
        #expect(pair.a.iceRestarts == 1 && pair.b.iceRestarts == 1)

        // Until a new pair is selected, media still goes out on the old path.
        let rtpBefore = pair.a.counters.rtpSent
        pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: 1, timestamp: 0, ssrc: 1111, payload: [0xF8][...]).serialized())
        #expect(pair.a.counters.rtpSent == rtpBefore + 1)

        pair.run(limit: .seconds(10)) { selectedPairs(pair.eventsA) > pairsBeforeA && selectedPairs(pair.eventsB) > pairsBeforeB }
        #expect(selectedPairs(pair.eventsA) > pairsBeforeA, "A selected a new pair")
        #expect(selectedPairs(pair.eventsB) > pairsBeforeB, "B selected a new pair")
        #expect(pair.a.selectedPair != nil && pair.b.selectedPair != nil)
        #expect(pair.a.iceState == .connected || pair.a.iceState == .completed)

        // Media flows both ways again, with the same SRTP keys.
        let beforeA = received(pair.eventsA).count, beforeB = received(pair.eventsB).count
        for sequence in UInt16(10)..<20 {
            pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(sequence), timestamp: RTPTimestamp(UInt32(sequence) * 960), ssrc: 1111, payload: [0xF8, 1][...]).serialized())
            pair.b.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(sequence), timestamp: RTPTimestamp(UInt32(sequence) * 960), ssrc: 2222, payload: [0xF8, 2][...]).serialized())
        }
        pair.run(limit: .milliseconds(50)) { received(pair.eventsA).count >= beforeA + 10 && received(pair.eventsB).count >= beforeB + 10 }
        #expect(received(pair.eventsB).count - beforeB == 10)
        #expect(received(pair.eventsA).count - beforeA == 10)
        #expect(pair.a.counters.srtpFailures == 0 && pair.b.counters.srtpFailures == 0)

        // Consent keeps being refreshed on the new pair: no new loss in the next 40 s.
        pair.eventsA.removeAll()
        pair.eventsB.removeAll()
        pair.run(limit: .seconds(40))
        #expect(!consentLost(pair.eventsA) && !consentLost(pair.eventsB))
        #expect(pair.a.selectedPair != nil && pair.b.selectedPair != nil)
    }

    /// The remote side restarts while the path still works: the answerer answers with new
    /// credentials and media never stops (the old pair carries it until the new one is selected).
    @Test func remoteRestartOnAWorkingPathKeepsMediaFlowing() throws {
        let pair = try Pair()
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        try pair.b.restartICE()
        let offer = try pair.b.createOffer(now: pair.now)
        let answer = try pair.a.acceptOffer(offer, now: pair.now)
        #expect(pair.a.selectedPair != nil, "the old pair stays selected during the restart")
        pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: 1, timestamp: 0, ssrc: 1111, payload: [0xF8][...]).serialized())
        try pair.b.setRemoteAnswer(answer, now: pair.now)
        pair.run(limit: .milliseconds(20))
        #expect(received(pair.eventsB).count == 1, "media on the old pair during the restart")
        for candidate in pair.a.localCandidates { pair.b.addRemoteCandidate(candidate) }
        for candidate in pair.b.localCandidates { pair.a.addRemoteCandidate(candidate) }
        let before = selectedPairs(pair.eventsA)
        pair.run(limit: .seconds(5)) { selectedPairs(pair.eventsA) > before }
        #expect(selectedPairs(pair.eventsA) > before)
        pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: 2, timestamp: 960, ssrc: 1111, payload: [0xF8][...]).serialized())
        pair.run(limit: .milliseconds(20))
        #expect(received(pair.eventsB).count == 2)
        #expect(pair.a.iceRestarts == 1 && pair.b.iceRestarts == 1)
    }

    @Test func restartNeedsStableState() throws {
        let pair = try Pair()
        _ = try pair.a.createOffer(now: pair.now)
        #expect(throws: PeerConnectionError.self) { try pair.a.restartICE() }
    }
}
