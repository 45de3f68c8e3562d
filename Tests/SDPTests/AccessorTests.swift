import Testing
import SDP

@Suite("Typed accessors on captured SDPs")
struct AccessorTests {
    @Test func chromium156Offer() throws {
        let sdp = try SDPFixtures.parse("chromium156-offer-to-aiortc1.16-full.sdp")
        #expect(sdp.version == 0)
        #expect(sdp.origin == SDPOrigin(username: "-", sessionId: "1191426379315883014", sessionVersion: "2",
                                        netType: "IN", addrType: "IP4", address: "127.0.0.1"))
        #expect(sdp.origin.sessionIdNumber == 1_191_426_379_315_883_014)
        #expect(sdp.origin.sessionVersionNumber == 2)
        #expect(sdp.sessionName == "-")
        #expect(sdp.timings == [SDPTiming(start: 0, stop: 0)])
        #expect(sdp.bundleGroup == SDPGroup(semantics: "BUNDLE", mids: ["0", "1"]))
        #expect(sdp.groups.count == 1)
        #expect(sdp.extmapAllowMixed)
        #expect(sdp.msidSemantic == MsidSemantic(semantic: "WMS", identifiers: ["02b882a7-38bc-4ade-be0f-f1d7dede4bd5"]))
        #expect(sdp.attributes[2] == SDPAttribute("msid-semantic", " WMS 02b882a7-38bc-4ade-be0f-f1d7dede4bd5"))
        #expect(sdp.iceUfrag == nil)
        #expect(sdp.media.count == 2)

        let audio = try #require(sdp.media(mid: "0"))
        #expect(sdp.mediaIndex(mid: "0") == 0)
        #expect(audio.kind == .audio)
        #expect(audio.port == 49120)
        #expect(audio.portCount == nil)
        #expect(audio.proto == "UDP/TLS/RTP/SAVPF")
        #expect(audio.formats == ["111", "63", "9", "0", "8", "13", "110", "126"])
        #expect(audio.connection == SDPConnection(netType: "IN", addrType: "IP4", address: "127.0.0.1"))
        #expect(audio.rtcp == RTCPAttribute(port: 9, connection: SDPConnection(address: "0.0.0.0")))
        #expect(audio.candidates == [
            "2401993427 1 udp 2122260223 127.0.0.1 49120 typ host generation 0 network-id 1 network-cost 50",
            "4058275915 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 network-id 1 network-cost 50",
        ])
        #expect(!audio.endOfCandidates)
        #expect(audio.iceUfrag == "pebs")
        #expect(audio.icePwd == "BmzCOoK/IuDg7eFVi9ICPg7D")
        #expect(sdp.iceUfrag(for: audio) == "pebs")
        let fingerprint = try #require(audio.fingerprints.first)
        #expect(audio.fingerprints.count == 1)
        #expect(fingerprint.hashFunction == "sha-256")
        #expect(fingerprint.bytes.count == 32)
        #expect(fingerprint.bytes.prefix(3) == [0x72, 0x8C, 0x48])
        #expect(fingerprint.bytes.last == 0x51)
        #expect(fingerprint.hexString == "72:8C:48:E7:69:6D:96:08:6F:FC:74:B7:FA:B7:94:0B:63:F9:6E:7D:17:FD:D8:25:4E:E5:6C:53:36:2C:9E:51")
        #expect(audio.setup == .actpass)
        #expect(audio.mid == "0")
        #expect(audio.extmaps == [
            ExtMap(id: 1, uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            ExtMap(id: 2, uri: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            ExtMap(id: 3, uri: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
            ExtMap(id: 4, uri: "urn:ietf:params:rtp-hdrext:sdes:mid"),
        ])
        #expect(audio.extmapID(forURI: "urn:ietf:params:rtp-hdrext:sdes:mid") == 4)
        #expect(audio.extmapID(forURI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level") == 1)
        #expect(audio.extmapID(forURI: "urn:example:none") == nil)
        #expect(audio.explicitDirection == .sendrecv)
        #expect(audio.msids == [MediaStreamID(streamId: "02b882a7-38bc-4ade-be0f-f1d7dede4bd5",
                                              trackId: "71b1b0fe-ad38-488a-b889-038afb9b6598")])
        #expect(audio.rtcpMux)
        #expect(audio.rtcpRsize)
        #expect(audio.rtcpXR == ["rcvr-rtt=all"])
        #expect(audio.opusPayloadType == 111)
        #expect(audio.rtpmap(payloadType: 111) == RTPMap(payloadType: 111, encodingName: "opus", clockRate: 48000, channels: 2))
        #expect(audio.rtpmap(payloadType: 9) == RTPMap(payloadType: 9, encodingName: "G722", clockRate: 8000))
        #expect(audio.rtpmaps.map(\.payloadType) == [111, 63, 9, 0, 8, 13, 110, 126])
        let opusFmtp = try #require(audio.fmtp(payloadType: 111))
        #expect(opusFmtp.parameters == [.keyValue(key: "minptime", value: "10"), .keyValue(key: "useinbandfec", value: "1")])
        #expect(opusFmtp.value(for: "useinbandfec") == "1")
        #expect(opusFmtp.value(for: "stereo") == nil)
        #expect(audio.fmtp(payloadType: 63)?.parameters == [.raw("111/111")])
        #expect(audio.rtcpFeedbacks == [RTCPFeedback(payloadType: 111, type: "transport-cc")])
        #expect(audio.rtcpFeedbacks(payloadType: 111).count == 1)
        #expect(audio.rtcpFeedbacks(payloadType: 9).isEmpty)
        #expect(audio.payloadType(encodingName: "telephone-event", clockRate: 8000) == 126)
        #expect(audio.payloadType(encodingName: "TELEPHONE-EVENT") == 110)
        #expect(audio.ssrcs == [
            SSRCAttribute(ssrc: 4_096_585_393, attribute: "cname", value: "5UTSDazCudtQsEh9"),
            SSRCAttribute(ssrc: 4_096_585_393, attribute: "msid",
                          value: "02b882a7-38bc-4ade-be0f-f1d7dede4bd5 71b1b0fe-ad38-488a-b889-038afb9b6598"),
        ])
        #expect(audio.ssrcGroups.isEmpty)
        #expect(audio.sctpPort == nil)

        let data = try #require(sdp.media(mid: "1"))
        #expect(data.kind == .application)
        #expect(data.port == 34109)
        #expect(data.proto == "UDP/DTLS/SCTP")
        #expect(data.formats == ["webrtc-datachannel"])
        #expect(data.sctpPort == 5000)
        #expect(data.maxMessageSize == 262_144)
        #expect(data.opusPayloadType == nil)
        #expect(data.rtpmaps.isEmpty)
        #expect(data.explicitDirection == nil)
        #expect(data.direction == .sendrecv)
        #expect(sdp.media(mid: "2") == nil)
    }

    @Test func chromium156TrickleOffer() throws {
        let sdp = try SDPFixtures.parse("chromium156-offer-to-aiortc1.16-trickle.sdp")
        let audio = try #require(sdp.media.first)
        #expect(audio.port == 9)
        #expect(audio.connection?.address == "0.0.0.0")
        #expect(audio.candidates.isEmpty)
        #expect(audio.iceOptions == ["trickle"])
        #expect(sdp.iceOptions(for: audio) == ["trickle"])
        #expect(audio.iceUfrag == "pNf/")
        #expect(audio.icePwd == "oIjgobzUUzHL2+NVpKlpqmWR")
    }

    @Test func firefox153Offer() throws {
        let sdp = try SDPFixtures.parse("firefox153-offer-to-chromium156-full.sdp")
        #expect(sdp.origin.username == "mozilla...THIS_IS_SDPARTA-99.0")
        #expect(sdp.origin.sessionId == "1722125948408197296")
        #expect(sdp.origin.sessionVersion == "0")
        #expect(sdp.origin.address == "0.0.0.0")
        #expect(sdp.explicitDirection == .sendrecv)
        #expect(sdp.bundleGroup?.mids == ["0", "1"])
        #expect(sdp.msidSemantic == MsidSemantic(semantic: "WMS", identifiers: ["*"]))
        let sessionPrint = try #require(sdp.fingerprints.first)
        #expect(sessionPrint.hashFunction == "sha-256")
        #expect(sessionPrint.bytes.prefix(2) == [0x3C, 0x92])
        #expect(sessionPrint.bytes.last == 0xDC)

        let audio = try #require(sdp.media(mid: "0"))
        #expect(audio.port == 38030)
        #expect(audio.formats == ["109", "9", "0", "8", "101"])
        #expect(audio.fingerprints.isEmpty)
        #expect(sdp.fingerprints(for: audio) == [sessionPrint])
        #expect(audio.candidates.count == 8)
        #expect(audio.candidates[4] == "0 2 UDP 2122187006 127.0.0.1 54320 typ host")
        #expect(audio.endOfCandidates)
        #expect(audio.extmaps[1] == ExtMap(id: 2, direction: .recvonly, uri: "urn:ietf:params:rtp-hdrext:csrc-audio-level"))
        #expect(audio.extmapID(forURI: "urn:ietf:params:rtp-hdrext:sdes:mid") == 3)
        #expect(audio.extmapID(forURI: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01") == 7)
        #expect(audio.extmapAllowMixed)
        #expect(audio.opusPayloadType == 109)
        #expect(audio.fmtp(payloadType: 109) == FormatParameters(payloadType: 109, [
            "maxplaybackrate": "48000", "stereo": "1", "useinbandfec": "1",
        ]))
        #expect(audio.fmtp(payloadType: 101)?.parameters == [.raw("0-15")])
        #expect(audio.icePwd == "59fb69035f16cb36c9ef29aaec9c0a12")
        #expect(audio.iceUfrag == "9f20e74b")
        #expect(audio.msids == [MediaStreamID(streamId: "{0d21a591-18be-4cba-bcd3-68e3fcd97db1}",
                                              trackId: "{ee0726a5-309f-4a45-9d2d-9639dbed4648}")])
        #expect(audio.rtcp == RTCPAttribute(port: 54320, connection: SDPConnection(address: "127.0.0.1")))
        #expect(audio.rtcpFeedbacks.map(\.payloadType) == [109, 9, 0, 8])
        #expect(audio.rtpmap(payloadType: 9) == RTPMap(payloadType: 9, encodingName: "G722", clockRate: 8000, channels: 1))
        #expect(audio.rtpmap(payloadType: 101)?.encodingName == "telephone-event")
        #expect(audio.setup == .actpass)
        #expect(sdp.setup(for: audio) == .actpass)
        #expect(audio.ssrcs == [SSRCAttribute(ssrc: 1_134_241_451, attribute: "cname",
                                              value: "{4b5e5f42-2245-4cb0-907e-4d0533a55c28}")])
        #expect(audio.rtcpMux)
        #expect(!audio.rtcpRsize)

        let data = try #require(sdp.media(mid: "1"))
        #expect(data.port == 33393)
        #expect(data.sctpPort == 5000)
        #expect(data.maxMessageSize == 1_073_741_823)
        #expect(sdp.direction(for: data) == .sendrecv)
    }

    @Test func aiortcAnswer() throws {
        let sdp = try SDPFixtures.parse("aiortc1.16-answer-to-chromium156-full.sdp")
        #expect(sdp.origin == SDPOrigin(username: "-", sessionId: 4_004_557_420, sessionVersion: 4_004_557_420,
                                        address: "0.0.0.0"))
        #expect(sdp.bundleGroup == SDPGroup(semantics: "BUNDLE", mids: ["0", "1"]))
        #expect(sdp.msidSemantic == MsidSemantic(semantic: "WMS", identifiers: ["*"]))
        #expect(!sdp.extmapAllowMixed)
        let audio = try #require(sdp.media(mid: "0"))
        #expect(audio.port == 38833)
        #expect(audio.formats == ["111", "9", "0", "8"])
        #expect(audio.explicitDirection == .sendrecv)
        #expect(audio.extmaps == [ExtMap(id: 1, uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                                  ExtMap(id: 4, uri: "urn:ietf:params:rtp-hdrext:sdes:mid")])
        #expect(sdp.extmapID(forURI: "urn:ietf:params:rtp-hdrext:sdes:mid", in: audio) == 4)
        #expect(audio.opusPayloadType == 111)
        #expect(audio.fmtps.isEmpty)
        #expect(audio.ssrcs.first?.ssrc == 2_163_933_895)
        #expect(audio.candidates == ["16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 38833 typ host"])
        #expect(audio.endOfCandidates)
        #expect(audio.iceUfrag == "jay2")
        #expect(audio.icePwd == "tcPimNygjABrYfybWmCTd6")
        #expect(sdp.icePwd(for: audio) == "tcPimNygjABrYfybWmCTd6")
        #expect(audio.fingerprints.map(\.hashFunction) == ["sha-256", "sha-384", "sha-512"])
        #expect(audio.fingerprints.map(\.bytes.count) == [32, 48, 64])
        #expect(audio.fingerprints[0].bytes.prefix(2) == [0xED, 0x29])
        #expect(audio.setup == .active)
        #expect(audio.rtcp?.port == 9)
        let data = try #require(sdp.media(mid: "1"))
        #expect(data.sctpPort == 5000)
        #expect(data.maxMessageSize == 262_144)
        #expect(data.setup == .active)
        #expect(data.fingerprints == audio.fingerprints)
    }
}
