import DTLS
import Foundation
import ICE
import SDP
import Testing
@testable import PeerConnection

func fixture(_ name: String, file: String = #filePath) throws -> SessionDescription {
    var url = URL(fileURLWithPath: file).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Fixtures").path) { url.deleteLastPathComponent() }
    let text = try String(contentsOf: url.appendingPathComponent("Fixtures/sdp/\(name)"), encoding: .utf8)
    return try SessionDescription(parsing: text)
}

let localFingerprint = CertificateFingerprint(algorithm: .sha256, bytes: Array(0..<32))

func localParameters(sendsAudio: Bool = true, candidates: [Candidate] = [], trickle: Bool = true) -> LocalDescriptionParameters {
    LocalDescriptionParameters(iceUfrag: "abcd", icePwd: "0123456789012345678901", fingerprint: localFingerprint,
                               ssrc: 0x1234_5678, cname: "peerd-cname", streamID: "peerd", trackID: "audio0",
                               sendsAudio: sendsAudio, candidates: candidates, gatheringComplete: !trickle,
                               trickle: trickle, sessionID: 42)
}

@Suite struct JSEPAnswerTests {
    @Test func answersChromiumOfferRejectingTheDataChannel() throws {
        let offer = try fixture("chromium156-offer-to-aiortc1.16-trickle.sdp")
        let (answer, audio, transport) = try JSEP.answer(offer, local: localParameters())
        #expect(audio.mid == "0")
        #expect(audio.codec.name == .opus && audio.codec.payloadType == 111)
        #expect(audio.codec.opusParameters.useInbandFEC == true)
        #expect(audio.extensions == NegotiatedExtensions(audioLevel: 1, mid: 4, absSendTime: 2))
        #expect(audio.localDirection == .sendrecv)
        #expect(audio.rtcpReducedSize)
        #expect(audio.remoteSSRCs == [2_376_710_859])
        #expect(audio.remoteCNAME == "e5rQcoyvZp2dcefa")
        #expect(transport.iceUfrag == "pNf/")
        #expect(transport.setup == .actpass)
        #expect(transport.fingerprints.first?.algorithm == .sha256)

        // The answer parses, has both sections in order, and rejects the application one.
        let reparsed = try SessionDescription(parsing: answer.serialized())
        #expect(reparsed.media.count == 2)
        #expect(reparsed.media[0].kind == .audio && reparsed.media[0].port == 9)
        #expect(reparsed.media[0].formats == ["111"])
        #expect(reparsed.media[0].setup == .active)
        #expect(reparsed.media[0].fingerprints.first?.attributeValue == localFingerprint.sdpValue)
        #expect(reparsed.media[0].rtcpMux && reparsed.media[0].rtcpRsize)
        #expect(reparsed.media[0].extmaps.map(\.uri).contains(JSEP.audioLevelURI))
        #expect(!reparsed.media[0].extmaps.map(\.uri).contains { $0.contains("transport-wide-cc") })
        #expect(reparsed.media[0].ssrcs.contains { $0.ssrc == 0x1234_5678 && $0.attribute == "cname" })
        #expect(reparsed.media[1].kind == .application && reparsed.media[1].port == 0 && reparsed.media[1].mid == "1")
        #expect(reparsed.bundleGroup?.mids == ["0"])
    }

    @Test func answersEveryCapturedOffer() throws {
        for name in ["chromium156-offer-to-aiortc1.16-full.sdp", "chromium156-offer-to-firefox153-full.sdp",
                     "firefox153-offer-to-chromium156-full.sdp", "firefox153-offer-to-aiortc1.16-full.sdp",
                     "aiortc1.16-offer-to-chromium156-full.sdp", "aiortc1.16-offer-to-firefox153-full.sdp"] {
            let offer = try fixture(name)
            let (answer, audio, transport) = try JSEP.answer(offer, local: localParameters())
            #expect(audio.codec.name == .opus, "\(name)")
            #expect(!transport.candidates.isEmpty, "\(name): full offers carry candidates")
            #expect(transport.candidates.allSatisfy { $0.component == 1 }, "\(name)")
            #expect(answer.media.count == offer.media.count, "\(name)")
            #expect(try SessionDescription(parsing: answer.serialized()) == answer, "\(name)")
        }
    }

    @Test func firefoxOfferUsesItsPayloadTypeAndSessionLevelFingerprint() throws {
        let offer = try fixture("firefox153-offer-to-chromium156-full.sdp")
        let (answer, audio, transport) = try JSEP.answer(offer, local: localParameters(sendsAudio: false))
        #expect(audio.codec.payloadType == 109)
        #expect(audio.localDirection == .recvonly)
        #expect(!transport.fingerprints.isEmpty)
        #expect(answer.media[audio.mediaIndex].direction == .recvonly)
        #expect(answer.media[audio.mediaIndex].ssrcs.isEmpty)
    }

    @Test func directionsIntersect() {
        #expect(JSEP.reverse(.sendonly).intersect(.sendrecv) == .recvonly)
        #expect(JSEP.reverse(.recvonly).intersect(.sendrecv) == .sendonly)
        #expect(JSEP.reverse(.recvonly).intersect(.recvonly) == .inactive)
        #expect(JSEP.reverse(.inactive).intersect(.sendrecv) == .inactive)
        #expect(JSEP.reverse(.sendrecv).intersect(.recvonly) == .recvonly)
    }

    @Test func fallsBackToG711AndRefusesUnknownCodecs() throws {
        var offer = try fixture("chromium156-offer-to-aiortc1.16-trickle.sdp")
        offer.media[0].formats = ["0", "8"]
        let (_, audio, _) = try JSEP.answer(offer, local: localParameters())
        #expect(audio.codec.name == .pcmu && audio.codec.clockRate == 8000)
        offer.media[0].formats = ["9"]
        #expect(throws: NegotiationError.noCommonCodec(offered: ["opus", "red", "G722", "PCMU", "PCMA", "CN", "telephone-event", "telephone-event"])) {
            _ = try JSEP.answer(offer, local: localParameters())
        }
    }

    @Test func refusesOffersWithoutDTLSSRTPOrCredentials() throws {
        let base = try fixture("chromium156-offer-to-aiortc1.16-trickle.sdp")
        var plain = base
        plain.media[0].proto = "RTP/AVP"
        #expect(throws: NegotiationError.notDTLSSRTP(proto: "RTP/AVP")) { _ = try JSEP.answer(plain, local: localParameters()) }
        var noFingerprint = base
        noFingerprint.media[0].removeAttributes(named: "fingerprint")
        #expect(throws: NegotiationError.missingFingerprint) { _ = try JSEP.answer(noFingerprint, local: localParameters()) }
        var noUfrag = base
        noUfrag.media[0].removeAttributes(named: "ice-ufrag")
        #expect(throws: NegotiationError.missingICECredentials) { _ = try JSEP.answer(noUfrag, local: localParameters()) }
        var noAudio = base
        noAudio.media.removeFirst()
        #expect(throws: NegotiationError.noAudioSection) { _ = try JSEP.answer(noAudio, local: localParameters()) }
        var holdconn = base
        holdconn.media[0].setValue("holdconn", for: "setup")
        #expect(throws: NegotiationError.self) { _ = try JSEP.answer(holdconn, local: localParameters()) }
    }
}

@Suite struct JSEPOfferTests {
    @Test func offerRoundTripsThroughOurOwnAnswer() throws {
        let candidate = try Candidate(parsing: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host")
        let offer = JSEP.makeOffer(localParameters(candidates: [candidate], trickle: false))
        let text = offer.serialized()
        #expect(text.contains("a=group:BUNDLE 0\r\n"))
        #expect(text.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\n"))
        #expect(text.contains("a=setup:actpass\r\n"))
        #expect(text.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"))
        #expect(text.contains("a=end-of-candidates\r\n"))
        let parsedOffer = try SessionDescription(parsing: text)

        // A second peerd answers it; the first reads that answer.
        var remote = localParameters()
        remote.iceUfrag = "wxyz"
        remote.ssrc = 99
        let (answer, answererAudio, answererView) = try JSEP.answer(parsedOffer, local: remote)
        #expect(answererView.candidates == [candidate])
        #expect(answererView.endOfCandidates)
        #expect(answererAudio.extensions == NegotiatedExtensions(audioLevel: 1, mid: 4))
        let (audio, transport) = try JSEP.acceptAnswer(try SessionDescription(parsing: answer.serialized()), toOffer: offer)
        #expect(audio.codec.name == .opus && audio.codec.payloadType == 111)
        #expect(audio.extensions == NegotiatedExtensions(audioLevel: 1, mid: 4))
        #expect(audio.localDirection == .sendrecv)
        #expect(audio.remoteSSRCs == [99])
        #expect(transport.iceUfrag == "wxyz")
        #expect(transport.setup == .active)
    }

    @Test func acceptsCapturedAnswersToBrowserOffers() throws {
        // aiortc's answer to Chromium's offer reads as an answer to an offer with the same mid.
        let offer = try fixture("chromium156-offer-to-aiortc1.16-full.sdp")
        let answer = try fixture("aiortc1.16-answer-to-chromium156-full.sdp")
        let (audio, transport) = try JSEP.acceptAnswer(answer, toOffer: offer)
        #expect(audio.codec.name == .opus)
        #expect(transport.setup == .active || transport.setup == .passive)
    }

    @Test func answerWithActpassIsRefused() throws {
        let offer = JSEP.makeOffer(localParameters())
        var (answer, _, _) = try JSEP.answer(offer, local: localParameters())
        answer.media[0].setValue("actpass", for: "setup")
        #expect(throws: NegotiationError.self) { _ = try JSEP.acceptAnswer(answer, toOffer: offer) }
    }
}
