import DTLS
import ICE
import RTP
import SDP
import Testing
import Wire
@testable import PeerConnection

func iceConfiguration(seed: UInt64) -> ICEAgentConfiguration {
    var configuration = ICEAgentConfiguration()
    configuration.seed = seed
    return configuration
}

/// Two cores wired back to back through an in-process network with a virtual clock.
final class Pair {
    let a: PeerConnectionCore
    let b: PeerConnectionCore
    let addressA = TransportAddress("10.0.0.1:40000")!
    let addressB = TransportAddress("10.0.0.2:50000")!
    var now = MonotonicTime(nanoseconds: 1_000_000_000)
    var eventsA: [PeerConnectionEvent] = []
    var eventsB: [PeerConnectionEvent] = []
    /// Return false to drop a datagram.
    var filter: (_ bytes: [UInt8], _ from: TransportAddress, _ to: TransportAddress) -> Bool = { _, _, _ in true }

    init(trickle: Bool = true, sendsAudioB: Bool = true) throws {
        let certificateA = try DTLSCertificate.generate()
        let certificateB = try DTLSCertificate.generate()
        a = PeerConnectionCore(configuration: PeerConnectionConfiguration(certificate: certificateA, ice: iceConfiguration(seed: 1), trickle: trickle, ssrc: 1111))
        b = PeerConnectionCore(configuration: PeerConnectionConfiguration(certificate: certificateB, ice: iceConfiguration(seed: 2), sendsAudio: sendsAudioB, trickle: trickle, ssrc: 2222))
        a.addHostCandidates([addressA])
        b.addHostCandidates([addressB])
        a.endOfLocalCandidates()
        b.endOfLocalCandidates()
    }

    /// Moves datagrams and timers until nothing is left or `until` holds; at most `limit` of virtual time.
    func run(limit: Duration = .seconds(5), until: () -> Bool = { false }) {
        let end = now + limit
        while now < end {
            var moved = false
            while let out = a.pollTransmit() {
                moved = true
                if out.to == addressB && filter(out.bytes, out.from, out.to) {
                    if let media = b.handleDatagram(out.bytes, from: out.from, to: addressB, now: now) { eventsB.append(media) }
                }
            }
            while let out = b.pollTransmit() {
                moved = true
                if out.to == addressA && filter(out.bytes, out.from, out.to) {
                    if let media = a.handleDatagram(out.bytes, from: out.from, to: addressA, now: now) { eventsA.append(media) }
                }
            }
            while let event = a.pollEvent() { eventsA.append(event) }
            while let event = b.pollEvent() { eventsB.append(event) }
            if until() { return }
            if !moved {
                let next = [a.nextTimeout, b.nextTimeout].compactMap { $0 }.min() ?? end
                now = max(now + .milliseconds(1), min(next, end))
                a.handleTimeout(now: now)
                b.handleTimeout(now: now)
            }
        }
    }

    func negotiate() throws {
        let offer = try a.createOffer(now: now)
        let answer = try b.acceptOffer(try SessionDescription(parsing: offer.serialized()), now: now)
        try a.setRemoteAnswer(try SessionDescription(parsing: answer.serialized()), now: now)
        for candidate in a.localCandidates { b.addRemoteCandidate(candidate) }
        for candidate in b.localCandidates { a.addRemoteCandidate(candidate) }
    }
}

@Suite struct PeerConnectionCoreTests {
    @Test func twoPeersConnectAndExchangeSRTP() throws {
        let pair = try Pair()
        let start = pair.now
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        #expect(pair.a.isConnected && pair.b.isConnected)
        #expect(pair.a.srtpProfile == pair.b.srtpProfile)
        #expect(pair.a.audio?.codec.name == .opus)
        // The per-packet shortcut to the audio-level extension ID follows what was negotiated.
        #expect(pair.a.audioLevelExtensionID != nil)
        #expect(pair.a.audioLevelExtensionID == pair.a.audio?.extensions.audioLevel)
        #expect(pair.b.audioLevelExtensionID == pair.b.audio?.extensions.audioLevel)
        print("two cores: connected after \(Double((pair.now - start).nanosecondsClamped) / 1e6) ms of virtual time")

        // A sends one RTP packet; B gets it decrypted, with the payload intact.
        let rtp = RTPPacket(payloadType: 111, sequenceNumber: 7, timestamp: 960, ssrc: 1111, payload: [0xF8, 0xFF, 0xFE][...])
        pair.a.sendRTP(rtp.serialized())
        pair.run(limit: .milliseconds(10)) { pair.eventsB.contains { if case .rtp = $0 { true } else { false } } }
        let received = pair.eventsB.compactMap { event -> RTPPacket? in if case .rtp(let packet) = event { packet } else { nil } }
        #expect(received.count == 1)
        #expect(received.first?.ssrc == 1111 && Array(received.first?.payload ?? []) == [0xF8, 0xFF, 0xFE])

        // RTCP the other way.
        let rr = RTCPCompoundPacket(packets: [.receiverReport(RTCPReceiverReport(ssrc: 2222))])
        pair.b.sendRTCP(try rr.serialized())
        pair.run(limit: .milliseconds(10)) { pair.eventsA.contains { if case .rtcp = $0 { true } else { false } } }
        #expect(pair.eventsA.contains { if case .rtcp = $0 { true } else { false } })
        #expect(pair.a.counters.srtpFailures == 0 && pair.b.counters.srtpFailures == 0)
    }

    @Test func aDatagramHandedOverAloneIsDecryptedInPlace() throws {
        let pair = try Pair()
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        try #require(pair.a.isConnected && pair.b.isConnected)
        pair.run(limit: .milliseconds(50))  // let the handshake's last datagrams settle
        let rtp = RTPPacket(payloadType: 111, sequenceNumber: 9, timestamp: 1920, ssrc: 1111, payload: [UInt8](repeating: 0x5A, count: 80)[...])
        pair.a.sendRTP(rtp.serialized())
        var outgoing: [UInt8]?
        while outgoing == nil, let out = pair.a.pollTransmit() {
            if out.to == pair.addressB, out.bytes.count > 80, (128...191).contains(out.bytes[0]) { outgoing = out.bytes }
        }
        let srtp = try #require(outgoing)
        // The only reference, handed over: the payload the core returns lies in the same buffer.
        let datagram = srtp.withUnsafeBufferPointer { [UInt8]($0) }  // a buffer of its own
        let base = datagram.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        let media = pair.b.handleDatagram(consume datagram, from: pair.addressA, to: pair.addressB, now: pair.now)
        guard case .rtp(let packet) = media else {
            Issue.record("no RTP came back: \(String(describing: media))")
            return
        }
        #expect(Array(packet.payload) == [UInt8](repeating: 0x5A, count: 80))
        let payloadBase = packet.payload.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        #expect(payloadBase == base + UInt(packet.payload.startIndex), "SRTP copied the datagram before decrypting it")
        // A caller that keeps its own reference still gets a correct packet (the array copies itself).
        pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: 10, timestamp: 2880, ssrc: 1111, payload: [1, 2, 3][...]).serialized())
        var kept: [UInt8] = []
        while kept.isEmpty, let out = pair.a.pollTransmit() {
            if out.to == pair.addressB, (128...191).contains(out.bytes[0]) { kept = out.bytes }
        }
        let keptCopy = kept
        guard case .rtp(let second) = pair.b.handleDatagram(kept, from: pair.addressA, to: pair.addressB, now: pair.now) else {
            Issue.record("no RTP came back for the second packet")
            return
        }
        #expect(Array(second.payload) == [1, 2, 3])
        #expect(kept == keptCopy, "the caller's array was changed")
    }

    @Test func fullSDPModeCarriesCandidatesInTheDescriptions() throws {
        let pair = try Pair(trickle: false)
        let offer = try pair.a.createOffer(now: pair.now)
        #expect(offer.media[0].candidates.count == 1)
        #expect(offer.media[0].endOfCandidates)
        let answer = try pair.b.acceptOffer(try SessionDescription(parsing: offer.serialized()), now: pair.now)
        #expect(answer.media[0].candidates.count == 1)
        try pair.a.setRemoteAnswer(try SessionDescription(parsing: answer.serialized()), now: pair.now)
        pair.run { pair.a.isConnected && pair.b.isConnected }
        #expect(pair.a.isConnected && pair.b.isConnected)
    }

    @Test func glareRollbackThenAnswer() throws {
        let pair = try Pair()
        let offerA = try pair.a.createOffer(now: pair.now)
        _ = try pair.b.createOffer(now: pair.now)
        // B is polite: it rolls back its own offer and answers A's.
        #expect(throws: PeerConnectionError.self) { _ = try pair.b.acceptOffer(offerA, now: pair.now) }
        pair.b.rollback()
        #expect(pair.b.signalingState == .stable)
        let answer = try pair.b.acceptOffer(offerA, now: pair.now)
        try pair.a.setRemoteAnswer(answer, now: pair.now)
        for candidate in pair.a.localCandidates { pair.b.addRemoteCandidate(candidate) }
        for candidate in pair.b.localCandidates { pair.a.addRemoteCandidate(candidate) }
        pair.run { pair.a.isConnected && pair.b.isConnected }
        #expect(pair.a.isConnected && pair.b.isConnected)
    }

    @Test func mediaFromUnknownSourcesAndGarbageIsDroppedAndCounted() throws {
        let pair = try Pair()
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        let stranger = TransportAddress("10.9.9.9:999")!
        pair.b.handleDatagram([0x80, 111] + [UInt8](repeating: 1, count: 40), from: stranger, to: pair.addressB, now: pair.now)
        pair.b.handleDatagram([0x80, 111] + [UInt8](repeating: 1, count: 40), from: pair.addressA, to: pair.addressB, now: pair.now)
        pair.b.handleDatagram([0xFF, 1, 2], from: pair.addressA, to: pair.addressB, now: pair.now)
        pair.b.handleDatagram([0x16, 0xFE, 0xFD, 0, 0], from: stranger, to: pair.addressB, now: pair.now)
        #expect(pair.b.counters.droppedUnknownSource == 2)
        #expect(pair.b.counters.srtpFailures == 1)
        #expect(pair.b.counters.droppedUnknownClass == 1)
        // The session still works.
        pair.a.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: 1, timestamp: 1, ssrc: 1111, payload: [1][...]).serialized())
        pair.run(limit: .milliseconds(10)) { pair.eventsB.contains { if case .rtp = $0 { true } else { false } } }
        #expect(pair.eventsB.contains { if case .rtp = $0 { true } else { false } })
    }

    @Test func badOffersAreRefusedWithoutDisturbingTheCore() throws {
        let pair = try Pair()
        var offer = try pair.a.createOffer(now: pair.now)
        offer.media[0].removeAttributes(named: "fingerprint")
        #expect(throws: PeerConnectionError.negotiation(.missingFingerprint)) { _ = try pair.b.acceptOffer(offer, now: pair.now) }
        #expect(pair.b.signalingState == .stable)
        #expect(throws: PeerConnectionError.self) { try pair.b.setRemoteAnswer(offer, now: pair.now) }
    }

    @Test func closeSendsCloseNotifyAndStops() throws {
        let pair = try Pair()
        try pair.negotiate()
        pair.run { pair.a.isConnected && pair.b.isConnected }
        pair.a.close(now: pair.now)
        pair.run(limit: .milliseconds(50)) { !pair.b.isConnected }
        #expect(pair.a.signalingState == .closed)
        #expect(!pair.b.isConnected, "the other side saw close_notify")
        #expect(throws: PeerConnectionError.closed) { _ = try pair.a.createOffer(now: pair.now) }
    }
}
