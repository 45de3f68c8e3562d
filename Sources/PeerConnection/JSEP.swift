import DTLS
import ICE
import RTP
import SDP

/// Audio codecs peerd sends and receives.
public enum AudioCodecName: String, Sendable, Hashable {
    case opus, pcmu = "PCMU", pcma = "PCMA"
}

/// The codec both sides agreed on for the audio section.
public struct NegotiatedCodec: Sendable, Hashable {
    public var name: AudioCodecName
    public var payloadType: UInt8
    public var clockRate: UInt32
    public var channels: UInt16
    /// The remote side's Opus fmtp (what it wants to receive), or empty for G.711.
    public var opusParameters: OpusParameters
}

/// Negotiated RTP header extension ids (nil when not negotiated).
public struct NegotiatedExtensions: Sendable, Hashable {
    public var audioLevel: UInt8?
    public var mid: UInt8?
    public var absSendTime: UInt8?

    public init(audioLevel: UInt8? = nil, mid: UInt8? = nil, absSendTime: UInt8? = nil) {
        self.audioLevel = audioLevel
        self.mid = mid
        self.absSendTime = absSendTime
    }
}

/// What a remote description tells about the transport: ICE credentials and candidates, DTLS identity and role.
public struct RemoteTransport: Sendable, Equatable {
    public var iceUfrag: String
    public var icePwd: String
    public var iceLite: Bool
    public var candidates: [Candidate]
    /// Candidate lines that did not parse or that peerd cannot use (kept for the log).
    public var rejectedCandidates: [String]
    public var endOfCandidates: Bool
    public var fingerprints: [CertificateFingerprint]
    public var setup: DTLSSetup
}

/// The audio section as negotiated.
public struct NegotiatedAudio: Sendable, Equatable {
    public var mid: String
    public var mediaIndex: Int
    public var codec: NegotiatedCodec
    /// Another codec the remote also accepts, in its preference order (used if Opus is absent).
    public var extensions: NegotiatedExtensions
    /// Our direction as it stands in the answer (or in our offer, once answered).
    public var localDirection: SDPDirection
    public var rtcpReducedSize: Bool
    /// SSRCs and CNAME the remote announced (a=ssrc), if any.
    public var remoteSSRCs: [UInt32]
    public var remoteCNAME: String?

    public var sends: Bool { localDirection == .sendrecv || localDirection == .sendonly }
    public var receives: Bool { localDirection == .sendrecv || localDirection == .recvonly }
}

/// Everything about our side that goes into an offer or an answer.
public struct LocalDescriptionParameters: Sendable {
    public var iceUfrag: String
    public var icePwd: String
    public var fingerprint: CertificateFingerprint
    public var ssrc: UInt32
    public var cname: String
    public var streamID: String
    public var trackID: String
    /// Whether we have audio to send (a source): sendrecv, else recvonly.
    public var sendsAudio: Bool
    /// Candidates to put in the SDP (full mode); empty with trickle.
    public var candidates: [Candidate]
    /// True when gathering is complete (adds a=end-of-candidates).
    public var gatheringComplete: Bool
    public var trickle: Bool
    public var sessionID: UInt64
    public var sessionVersion: UInt64

    public init(iceUfrag: String, icePwd: String, fingerprint: CertificateFingerprint, ssrc: UInt32, cname: String,
                streamID: String, trackID: String, sendsAudio: Bool = true, candidates: [Candidate] = [],
                gatheringComplete: Bool = false, trickle: Bool = true, sessionID: UInt64, sessionVersion: UInt64 = 1) {
        self.iceUfrag = iceUfrag
        self.icePwd = icePwd
        self.fingerprint = fingerprint
        self.ssrc = ssrc
        self.cname = cname
        self.streamID = streamID
        self.trackID = trackID
        self.sendsAudio = sendsAudio
        self.candidates = candidates
        self.gatheringComplete = gatheringComplete
        self.trickle = trickle
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
    }
}

/// Why a remote description was refused.
public enum NegotiationError: Error, Equatable, Sendable {
    case malformedSDP(SDPError)
    case noAudioSection
    case noCommonCodec(offered: [String])
    case notDTLSSRTP(proto: String)
    case missingICECredentials
    case missingFingerprint
    case badFingerprint(String)
    case badSetup(String)
    case missingMid
    case answerDoesNotMatchOffer(String)
}

/// JSEP (RFC 9429) for one audio m-line: offers, answers, and reading the remote side's.
public enum JSEP {
    public static let audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    public static let midURI = "urn:ietf:params:rtp-hdrext:sdes:mid"
    public static let absSendTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    static let audioProto = "UDP/TLS/RTP/SAVPF"
    /// Our Opus fmtp: what we want to receive.
    static let localOpusParameters = OpusParameters(minptime: 10, useInbandFEC: true)

    // MARK: Offers

    /// Our offer: one sendrecv (or recvonly) audio section, Opus preferred, G.711 accepted, BUNDLE.
    public static func makeOffer(_ local: LocalDescriptionParameters) -> SessionDescription {
        var description = sessionSkeleton(local, mids: ["0"])
        let formats = ["111", "0", "8"]
        var audio = MediaDescription(kind: .audio, port: 9, proto: audioProto, formats: formats,
                                     connection: SDPConnection(address: "0.0.0.0"))
        appendTransportAttributes(to: &audio, local, setup: .actpass)
        audio.append(SDPAttribute("mid", "0"))
        audio.append(ExtMap(id: 1, uri: audioLevelURI))
        audio.append(ExtMap(id: 4, uri: midURI))
        audio.append(SDPAttribute(local.sendsAudio ? "sendrecv" : "recvonly"))
        if local.sendsAudio { audio.append(MediaStreamID(streamId: local.streamID, trackId: local.trackID)) }
        audio.append(SDPAttribute("rtcp-mux"))
        audio.append(SDPAttribute("rtcp-rsize"))
        audio.append(RTPMap(payloadType: 111, encodingName: "opus", clockRate: 48000, channels: 2))
        audio.append(SDPAttribute("fmtp", "111 " + localOpusParameters.serialized()))
        audio.append(RTPMap(payloadType: 0, encodingName: "PCMU", clockRate: 8000))
        audio.append(RTPMap(payloadType: 8, encodingName: "PCMA", clockRate: 8000))
        if local.sendsAudio { appendSSRC(to: &audio, local) }
        appendCandidates(to: &audio, local)
        description.media = [audio]
        return description
    }

    /// Reads the remote answer to our offer.
    public static func acceptAnswer(_ answer: SessionDescription, toOffer offer: SessionDescription)
        throws(NegotiationError) -> (audio: NegotiatedAudio, transport: RemoteTransport) {
        guard let offerAudio = offer.media.first, let mid = offerAudio.mid else { throw .missingMid }
        guard let index = answer.media.firstIndex(where: { $0.mid == mid }) ?? (answer.media.isEmpty ? nil : 0) else {
            throw .answerDoesNotMatchOffer("no section for mid \(mid)")
        }
        let section = answer.media[index]
        guard section.kind == .audio, section.port != 0 else { throw .noAudioSection }
        let transport = try remoteTransport(answer, section)
        guard transport.setup == .active || transport.setup == .passive else {
            throw .badSetup("answer setup must be active or passive, not \(transport.setup.rawValue)")
        }
        let codec = try chooseCodec(section)
        let extensions = negotiatedExtensions(section, accepting: [audioLevelURI: 1, midURI: 4])
        let ourDirection = offerAudio.direction
        let localDirection = reverse(section.direction).intersect(ourDirection)
        let audio = NegotiatedAudio(mid: mid, mediaIndex: index, codec: codec, extensions: extensions,
                                    localDirection: localDirection, rtcpReducedSize: section.rtcpRsize,
                                    remoteSSRCs: remoteSSRCs(section), remoteCNAME: remoteCNAME(section))
        return (audio, transport)
    }

    // MARK: Answers

    /// Answers a remote offer: accepts its first usable audio section, rejects every other
    /// section (port 0, e.g. SimplePeer's `m=application`), keeps the BUNDLE group to what was accepted.
    public static func answer(_ offer: SessionDescription, local: LocalDescriptionParameters)
        throws(NegotiationError) -> (answer: SessionDescription, audio: NegotiatedAudio, transport: RemoteTransport) {
        guard let audioIndex = offer.media.firstIndex(where: { $0.kind == .audio && $0.port != 0 }) else {
            throw .noAudioSection
        }
        let section = offer.media[audioIndex]
        guard section.proto.uppercased().contains("SAVPF") || section.proto.uppercased().contains("SAVP") else {
            throw .notDTLSSRTP(proto: section.proto)
        }
        guard section.proto.uppercased().contains("TLS") else { throw .notDTLSSRTP(proto: section.proto) }
        guard let mid = section.mid else { throw .missingMid }
        let transport = try remoteTransport(offer, section)
        let setup: DTLSSetup
        do { setup = try DTLSRole.forAnswerer(offerSetup: transport.setup).answerSetup } catch {
            throw .badSetup("offer setup \(transport.setup.rawValue)")
        }
        let codec = try chooseCodec(section)
        let extensions = negotiatedExtensions(section, accepting: nil)

        let offered = section.direction
        let wanted: SDPDirection = local.sendsAudio ? .sendrecv : .recvonly
        let localDirection = reverse(offered).intersect(wanted)

        var description = sessionSkeleton(local, mids: [mid])
        var media: [MediaDescription] = []
        for (index, offeredSection) in offer.media.enumerated() {
            guard index == audioIndex else {
                media.append(rejected(offeredSection))
                continue
            }
            var audio = MediaDescription(kind: .audio, port: 9, proto: section.proto,
                                         formats: [String(codec.payloadType)], connection: SDPConnection(address: "0.0.0.0"))
            appendTransportAttributes(to: &audio, local, setup: setup)
            audio.append(SDPAttribute("mid", mid))
            for (uri, id) in [(audioLevelURI, extensions.audioLevel), (absSendTimeURI, extensions.absSendTime), (midURI, extensions.mid)] {
                if let id { audio.append(ExtMap(id: UInt16(id), uri: uri)) }
            }
            audio.append(SDPAttribute(localDirection.rawValue))
            if localDirection == .sendrecv || localDirection == .sendonly {
                audio.append(MediaStreamID(streamId: local.streamID, trackId: local.trackID))
            }
            audio.append(SDPAttribute("rtcp-mux"))
            if section.rtcpRsize { audio.append(SDPAttribute("rtcp-rsize")) }
            audio.append(RTPMap(payloadType: codec.payloadType, encodingName: codec.name.rawValue, clockRate: codec.clockRate,
                                channels: codec.name == .opus ? 2 : nil))
            if codec.name == .opus {
                audio.append(SDPAttribute("fmtp", "\(codec.payloadType) " + localOpusParameters.serialized()))
            }
            if localDirection == .sendrecv || localDirection == .sendonly { appendSSRC(to: &audio, local) }
            appendCandidates(to: &audio, local)
            media.append(audio)
        }
        description.media = media
        let audio = NegotiatedAudio(mid: mid, mediaIndex: audioIndex, codec: codec, extensions: extensions,
                                    localDirection: localDirection, rtcpReducedSize: section.rtcpRsize,
                                    remoteSSRCs: remoteSSRCs(section), remoteCNAME: remoteCNAME(section))
        return (description, audio, transport)
    }

    // MARK: Pieces

    static func sessionSkeleton(_ local: LocalDescriptionParameters, mids: [String]) -> SessionDescription {
        var description = SessionDescription(origin: SDPOrigin(sessionId: local.sessionID, sessionVersion: local.sessionVersion,
                                                               address: "127.0.0.1"))
        description.append(SDPGroup(semantics: "BUNDLE", mids: mids))
        description.append(SDPAttribute("msid-semantic", " WMS \(local.streamID)"))
        return description
    }

    static func appendTransportAttributes(to media: inout MediaDescription, _ local: LocalDescriptionParameters, setup: DTLSSetup) {
        media.append(SDPAttribute("rtcp", "9 IN IP4 0.0.0.0"))
        media.append(SDPAttribute("ice-ufrag", local.iceUfrag))
        media.append(SDPAttribute("ice-pwd", local.icePwd))
        if local.trickle { media.append(SDPAttribute("ice-options", "trickle")) }
        media.append(SDPAttribute("fingerprint", local.fingerprint.sdpValue))
        media.append(SDPAttribute("setup", setup.rawValue))
    }

    static func appendSSRC(to media: inout MediaDescription, _ local: LocalDescriptionParameters) {
        media.append(SSRCAttribute(ssrc: local.ssrc, attribute: "cname", value: local.cname))
        media.append(SSRCAttribute(ssrc: local.ssrc, attribute: "msid", value: "\(local.streamID) \(local.trackID)"))
    }

    static func appendCandidates(to media: inout MediaDescription, _ local: LocalDescriptionParameters) {
        for candidate in local.candidates { media.append(SDPAttribute("candidate", String(candidate.description.dropFirst("candidate:".count)))) }
        if local.gatheringComplete { media.append(SDPAttribute("end-of-candidates")) }
    }

    /// A rejected section (RFC 9429 5.3.1): same kind, proto and formats, port 0, only its mid kept.
    static func rejected(_ offered: MediaDescription) -> MediaDescription {
        var section = MediaDescription(kind: offered.kind, port: 0, proto: offered.proto, formats: offered.formats,
                                       connection: SDPConnection(address: "0.0.0.0"))
        if let mid = offered.mid { section.append(SDPAttribute("mid", mid)) }
        return section
    }

    static func remoteTransport(_ description: SessionDescription, _ section: MediaDescription) throws(NegotiationError) -> RemoteTransport {
        guard let ufrag = description.iceUfrag(for: section), let pwd = description.icePwd(for: section) else {
            throw .missingICECredentials
        }
        let sdpFingerprints = description.fingerprints(for: section)
        guard !sdpFingerprints.isEmpty else { throw .missingFingerprint }
        var fingerprints: [CertificateFingerprint] = []
        for fingerprint in sdpFingerprints {
            do { fingerprints.append(try CertificateFingerprint(sdpValue: fingerprint.attributeValue)) } catch {
                throw .badFingerprint(fingerprint.attributeValue)
            }
        }
        let setupValue = description.setup(for: section)?.rawValue ?? "actpass"
        guard let setup = DTLSSetup(rawValue: setupValue) else { throw .badSetup(setupValue) }
        var candidates: [Candidate] = []
        var rejected: [String] = []
        for line in section.candidates {
            if let candidate = try? Candidate(parsing: line), candidate.component == 1 {
                candidates.append(candidate)
            } else {
                rejected.append(line)
            }
        }
        return RemoteTransport(iceUfrag: ufrag, icePwd: pwd, iceLite: description.iceLite || section.iceLite,
                               candidates: candidates, rejectedCandidates: rejected, endOfCandidates: section.endOfCandidates,
                               fingerprints: fingerprints, setup: setup)
    }

    /// Opus if offered, else PCMU, else PCMA, in the remote's order of preference among those.
    static func chooseCodec(_ section: MediaDescription) throws(NegotiationError) -> NegotiatedCodec {
        var fallback: NegotiatedCodec?
        for format in section.formats {
            guard let payloadType = UInt8(format), let map = section.rtpmap(payloadType: payloadType) else { continue }
            switch map.encodingName.lowercased() {
            case "opus" where map.clockRate == 48000:
                let parameters = section.fmtp(payloadType: payloadType).map { OpusParameters.parse($0.attributeValue.split(separator: " ", maxSplits: 1).last ?? "") } ?? OpusParameters()
                return NegotiatedCodec(name: .opus, payloadType: payloadType, clockRate: 48000, channels: map.channels ?? 2, opusParameters: parameters)
            case "pcmu" where map.clockRate == 8000 && fallback == nil:
                fallback = NegotiatedCodec(name: .pcmu, payloadType: payloadType, clockRate: 8000, channels: 1, opusParameters: OpusParameters())
            case "pcma" where map.clockRate == 8000 && fallback == nil:
                fallback = NegotiatedCodec(name: .pcma, payloadType: payloadType, clockRate: 8000, channels: 1, opusParameters: OpusParameters())
            default:
                continue
            }
        }
        // Static payload types 0 and 8 need no rtpmap.
        if fallback == nil {
            if section.formats.contains("0") { fallback = NegotiatedCodec(name: .pcmu, payloadType: 0, clockRate: 8000, channels: 1, opusParameters: OpusParameters()) }
            else if section.formats.contains("8") { fallback = NegotiatedCodec(name: .pcma, payloadType: 8, clockRate: 8000, channels: 1, opusParameters: OpusParameters()) }
        }
        guard let fallback else { throw .noCommonCodec(offered: section.rtpmaps.map { $0.encodingName }) }
        return fallback
    }

    /// The extensions we understand, with the remote's ids (or, when reading an answer, those it kept of ours).
    static func negotiatedExtensions(_ section: MediaDescription, accepting ours: [String: UInt8]?) -> NegotiatedExtensions {
        var result = NegotiatedExtensions()
        for map in section.extmaps where map.id >= 1 && map.id <= 14 {
            if let ours, ours[map.uri] != UInt8(map.id) { continue }
            switch map.uri {
            case audioLevelURI: result.audioLevel = UInt8(map.id)
            case midURI: result.mid = UInt8(map.id)
            case absSendTimeURI where ours == nil: result.absSendTime = UInt8(map.id)
            default: break
            }
        }
        return result
    }

    static func remoteSSRCs(_ section: MediaDescription) -> [UInt32] {
        var seen: [UInt32] = []
        for attribute in section.ssrcs where !seen.contains(attribute.ssrc) { seen.append(attribute.ssrc) }
        return seen
    }

    static func remoteCNAME(_ section: MediaDescription) -> String? {
        section.ssrcs.first { $0.attribute == "cname" }?.value
    }

    static func reverse(_ direction: SDPDirection) -> SDPDirection {
        switch direction {
        case .sendonly: .recvonly
        case .recvonly: .sendonly
        default: direction
        }
    }
}

extension SDPDirection {
    /// The direction allowed by both: sending only if both allow it, receiving likewise.
    func intersect(_ other: SDPDirection) -> SDPDirection {
        let sends = (self == .sendrecv || self == .sendonly) && (other == .sendrecv || other == .sendonly)
        let receives = (self == .sendrecv || self == .recvonly) && (other == .sendrecv || other == .recvonly)
        switch (sends, receives) {
        case (true, true): return .sendrecv
        case (true, false): return .sendonly
        case (false, true): return .recvonly
        case (false, false): return .inactive
        }
    }
}
