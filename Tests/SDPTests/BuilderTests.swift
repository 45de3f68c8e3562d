import Testing
import SDP

@Suite("Building and editing descriptions")
struct BuilderTests {
    @Test func builtAnswerSerializesAsExpected() throws {
        var sdp = SessionDescription(origin: SDPOrigin(sessionId: 4_004_557_420, sessionVersion: 1, address: "0.0.0.0"))
        sdp.groups = [SDPGroup(semantics: "BUNDLE", mids: ["0", "1"])]
        sdp.msidSemantic = MsidSemantic(semantic: "WMS", identifiers: ["*"])

        var audio = MediaDescription(kind: .audio, port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: ["111", "0"],
                                     connection: SDPConnection(address: "0.0.0.0"))
        audio.mid = "0"
        audio.direction = .sendrecv
        audio.extmaps = [ExtMap(id: 1, uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                         ExtMap(id: 4, direction: .sendonly, uri: "urn:ietf:params:rtp-hdrext:sdes:mid")]
        audio.rtcp = RTCPAttribute(port: 9, connection: SDPConnection(address: "0.0.0.0"))
        audio.rtcpMux = true
        audio.rtpmaps = [RTPMap(payloadType: 111, encodingName: "opus", clockRate: 48000, channels: 2),
                         RTPMap(payloadType: 0, encodingName: "PCMU", clockRate: 8000)]
        audio.fmtps = [FormatParameters(payloadType: 111, ["minptime": "10", "useinbandfec": "1"])]
        audio.rtcpFeedbacks = [RTCPFeedback(payloadType: 111, type: "transport-cc"),
                               RTCPFeedback(payloadType: nil, type: "nack", subtype: "pli")]
        audio.ptime = 20
        audio.msids = [MediaStreamID(streamId: "s", trackId: "t")]
        audio.append(SSRCAttribute(ssrc: 1234, attribute: "cname", value: "peerd"))
        audio.iceUfrag = "abcd"
        audio.icePwd = "0123456789abcdefghijkl"
        audio.iceOptions = ["trickle"]
        audio.fingerprints = [SDPFingerprint(hashFunction: "sha-256", bytes: (0..<32).map { UInt8($0 * 7) })]
        audio.setup = .active
        audio.candidates = ["1 1 udp 2130706431 192.0.2.1 40000 typ host"]
        audio.endOfCandidates = true

        var data = MediaDescription(kind: .application, port: 9, proto: "UDP/DTLS/SCTP",
                                    formats: ["webrtc-datachannel"], connection: SDPConnection(address: "0.0.0.0"))
        data.mid = "1"
        data.sctpPort = 5000
        data.maxMessageSize = 262_144
        sdp.media = [audio, data]

        let expected = [
            "v=0",
            "o=- 4004557420 1 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1",
            "a=msid-semantic:WMS *",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "a=sendrecv",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:4/sendonly urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 PCMU/8000",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtcp-fb:111 transport-cc",
            "a=rtcp-fb:* nack pli",
            "a=ptime:20",
            "a=msid:s t",
            "a=ssrc:1234 cname:peerd",
            "a=ice-ufrag:abcd",
            "a=ice-pwd:0123456789abcdefghijkl",
            "a=ice-options:trickle",
            "a=fingerprint:sha-256 00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9",
            "a=setup:active",
            "a=candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host",
            "a=end-of-candidates",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 0.0.0.0",
            "a=mid:1",
            "a=sctp-port:5000",
            "a=max-message-size:262144",
        ].map { $0 + "\r\n" }.joined()
        #expect(sdp.serialized() == expected)
        let reparsed = try SessionDescription(parsing: expected)
        #expect(reparsed == sdp)
        #expect(reparsed.media[0].opusPayloadType == 111)
        #expect(reparsed.media[0].extmaps[1].direction == .sendonly)
        #expect(reparsed.media[0].rtcpFeedbacks(payloadType: 0) == [RTCPFeedback(payloadType: nil, type: "nack", subtype: "pli")])
        #expect(reparsed.media[0].ptime == 20)
    }

    @Test func settersReplaceInPlace() throws {
        var sdp = try SDPFixtures.parse("chromium156-offer-to-aiortc1.16-full.sdp")
        var audio = sdp.media[0]
        let names = audio.attributes.map(\.name)
        let directionIndex = try #require(names.firstIndex(of: "sendrecv"))
        audio.direction = .recvonly
        #expect(audio.attributes[directionIndex] == SDPAttribute("recvonly"))
        #expect(audio.attributes.count == names.count)
        #expect(audio.direction == .recvonly)

        let ufragIndex = try #require(names.firstIndex(of: "ice-ufrag"))
        audio.iceUfrag = "wxyz"
        #expect(audio.attributes[ufragIndex] == SDPAttribute("ice-ufrag", "wxyz"))

        let setupIndex = try #require(names.firstIndex(of: "setup"))
        audio.setup = .passive
        #expect(audio.attributes[setupIndex] == SDPAttribute("setup", "passive"))

        audio.fingerprints = []
        #expect(!audio.hasAttribute("fingerprint"))
        audio.rtcpMux = false
        #expect(!audio.rtcpMux)
        audio.candidates.append("9 1 udp 1 192.0.2.9 9 typ host")
        #expect(audio.candidates.count == 3)
        #expect(audio.attributes.firstIndex { $0.name == "candidate" } == 1)
        audio.endOfCandidates = true
        #expect(audio.attributes.last == SDPAttribute("end-of-candidates"))
        audio.mid = nil
        #expect(audio.mid == nil)
        audio.rtpmaps = audio.rtpmaps.filter { $0.payloadType == 111 }
        #expect(audio.rtpmaps.count == 1)
        #expect(audio.opusPayloadType == 111)
        sdp.media[0] = audio

        sdp.media[1].sctpPort = nil
        #expect(sdp.media[1].sctpPort == nil)
        sdp.media[1].maxMessageSize = 65536
        #expect(sdp.media[1].value(of: "max-message-size") == "65536")

        sdp.origin.incrementSessionVersion()
        #expect(sdp.origin.sessionVersion == "3")
        sdp.extmapAllowMixed = false
        sdp.iceLite = true
        #expect(sdp.attributes.last == SDPAttribute("ice-lite"))

        let reparsed = try SessionDescription(parsing: sdp.serialized())
        #expect(reparsed == sdp)
        #expect(reparsed.media(mid: "1")?.maxMessageSize == 65536)
    }

    @Test func fingerprintParsing() {
        let value = "sha-1 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33"
        let fingerprint = SDPFingerprint(attributeValue: value)
        #expect(fingerprint?.bytes.count == 20)
        #expect(fingerprint?.bytes[10] == 0xAA)
        #expect(fingerprint?.attributeValue == value.uppercased().replacingOccurrences(of: "SHA-1", with: "sha-1"))
        #expect(SDPFingerprint(attributeValue: "sha-256 00:11") == nil)
        #expect(SDPFingerprint(attributeValue: "sha-256") == nil)
        #expect(SDPFingerprint(attributeValue: "x-hash 0:11") == nil)
        #expect(SDPFingerprint(attributeValue: "x-hash 00:11:") == nil)
        #expect(SDPFingerprint(attributeValue: "x-hash 00:1G") == nil)
        #expect(SDPFingerprint(attributeValue: "x-hash 00:11")?.bytes == [0x00, 0x11])
    }

    @Test func nonASCIITextRoundTrips() throws {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=Grüße 🎧\r\ni=e\u{301}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\ni=ソ\r\na=x-note:naïve\r\n"
        let sdp = try SessionDescription(parsing: text)
        #expect(sdp.sessionName == "Grüße 🎧")
        #expect(sdp.media[0].title == "ソ")
        #expect(sdp.serialized() == text)
        #expect(sdp.serializedBytes() == Array(text.utf8))
    }

    @Test func optionalSessionLinesAndUnknownLinesAreKept() throws {
        let text = [
            "v=0", "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5", "s=SDP Seminar",
            "i=A Seminar on the session description protocol", "u=http://www.example.com/seminars/sdp.pdf",
            "e=j.doe@example.com (Jane Doe)", "p=+1 617 555-6011", "c=IN IP4 224.2.17.12/127",
            "b=AS:128", "t=2873397496 2873404696", "r=7d 1h 0 25h", "t=0 0", "z=2882844526 -1h 2898848070 0",
            "k=clear:secret", "a=recvonly", "x=unknown session line",
            "m=audio 49170/2 RTP/AVP 0", "i=voice", "c=IN IP4 224.2.17.12/127", "b=TIAS:64000", "k=prompt",
            "a=rtpmap:0 PCMU/8000", "y=unknown media line",
            "m=video 51372 RTP/AVP 99", "a=rtpmap:99 h263-1998/90000", "a=rtcp-fb:* ccm fir",
            "m=message 9 TCP/MSRP *",
        ].map { $0 + "\r\n" }.joined()
        let sdp = try SessionDescription(parsing: text)
        #expect(sdp.serialized() == text)
        #expect(sdp.origin.username == "jdoe")
        #expect(sdp.sessionInformation == "A Seminar on the session description protocol")
        #expect(sdp.uri == "http://www.example.com/seminars/sdp.pdf")
        #expect(sdp.emails == ["j.doe@example.com (Jane Doe)"])
        #expect(sdp.phones == ["+1 617 555-6011"])
        #expect(sdp.connection?.address == "224.2.17.12/127")
        #expect(sdp.bandwidths == [SDPBandwidth(type: "AS", value: 128)])
        #expect(sdp.timings == [SDPTiming(start: 2_873_397_496, stop: 2_873_404_696, repeats: ["7d 1h 0 25h"]), SDPTiming()])
        #expect(sdp.timeZones == "2882844526 -1h 2898848070 0")
        #expect(sdp.encryptionKey == "clear:secret")
        #expect(sdp.explicitDirection == .recvonly)
        #expect(sdp.extraLines == [SDPLine(type: "x", value: "unknown session line")])
        #expect(sdp.media.map(\.kind) == [.audio, .video, .message])
        #expect(sdp.media[0].portCount == 2)
        #expect(sdp.media[0].title == "voice")
        #expect(sdp.media[0].bandwidths == [SDPBandwidth(type: "TIAS", value: 64000)])
        #expect(sdp.media[0].encryptionKey == "prompt")
        #expect(sdp.media[0].extraLines == [SDPLine(type: "y", value: "unknown media line")])
        #expect(sdp.direction(for: sdp.media[0]) == .recvonly)
        #expect(sdp.media[1].rtcpFeedbacks(payloadType: 99) == [RTCPFeedback(payloadType: nil, type: "ccm", subtype: "fir")])
        #expect(sdp.media[2].formats == ["*"])

        let moved = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nq=early\r\nt=0 0\r\na=foo\r\n"
        let parsedMoved = try SessionDescription(parsing: moved)
        #expect(parsedMoved.serialized() == "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=foo\r\nq=early\r\n")
        #expect(try SessionDescription(parsing: parsedMoved.serialized()) == parsedMoved)
        #expect(parsedMoved.media.isEmpty)
    }
}
