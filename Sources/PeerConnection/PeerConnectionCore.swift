import DTLS
import ICE
import RTP
import SDP
import Wire

/// Settings of one peer connection. Non-standard knobs live here, not on the API.
public struct PeerConnectionConfiguration: Sendable {
    public var certificate: DTLSCertificate
    public var ice: ICEAgentConfiguration
    public var stunServers: [TransportAddress]
    public var srtpProfiles: [SRTPProfile]
    /// Whether we have audio to send (sendrecv) or only listen (recvonly).
    public var sendsAudio: Bool
    /// Trickle ICE (candidates signalled one by one) or full SDP (all candidates inside).
    public var trickle: Bool
    public var ssrc: UInt32
    public var cname: String
    public var streamID: String
    /// TURN servers: one UDP allocation per server and host socket of the same family (one per family for
    /// TCP/TLS servers, whose connections the shell opens: `turnStreamConnections`) gives a relay
    /// candidate. A server that answers errors or nothing gives none (counted, see `turnFailures`).
    public var turnServers: [TURNServerConfiguration] = []
    /// `.relay` uses relayed candidates only (browsers' `iceTransportPolicy: "relay"`).
    public var iceTransportPolicy: ICETransportPolicy = .all
    /// Settings of the TURN clients.
    public var turn = TURNConfiguration()
    /// An allocation not made within this time is given up (counted), so that gathering completes.
    public var turnAllocationTimeout: Duration = .seconds(5)
    /// How the shell verifies `turns:` servers' certificates.
    public var turnTLSTrust: TURNTLSTrust = .system

    public init(certificate: DTLSCertificate, ice: ICEAgentConfiguration = ICEAgentConfiguration(), stunServers: [TransportAddress] = [],
                srtpProfiles: [SRTPProfile] = SRTPProfile.defaultPreference, sendsAudio: Bool = true, trickle: Bool = true,
                ssrc: UInt32 = UInt32.random(in: 1...UInt32.max), cname: String = "peerd-" + String(UInt32.random(in: 0...UInt32.max), radix: 36),
                streamID: String = "peerd") {
        self.certificate = certificate
        self.ice = ice
        self.stunServers = stunServers
        self.srtpProfiles = srtpProfiles
        self.sendsAudio = sendsAudio
        self.trickle = trickle
        self.ssrc = ssrc
        self.cname = cname
        self.streamID = streamID
    }
}

/// Why a connection failed or a call was refused.
public enum PeerConnectionError: Error, Equatable, Sendable {
    case negotiation(NegotiationError)
    case wrongSignalingState(String)
    case dtls(DTLSError)
    case srtp(String)
    case iceFailed
    case consentLost
    case closed
}

/// The JSEP signaling state (RFC 9429 section 3.2).
public enum SignalingState: String, Sendable {
    case stable, haveLocalOffer = "have-local-offer", haveRemoteOffer = "have-remote-offer", closed
}

/// What the connection tells its owner.
///
/// The rare large cases are `indirect` (boxed): an event is as large as its largest case, and every
/// received packet's `.rtp` goes through a few copies of one (a pair of candidates inline made each
/// of those 285 bytes; now the RTP packet sets the size).
public enum PeerConnectionEvent: Sendable {
    /// A local candidate to signal (trickle).
    indirect case localCandidate(Candidate)
    case gatheringComplete
    case iceStateChanged(ICEConnectionState)
    indirect case selectedPairChanged(ICECandidatePair)
    /// DTLS is up and SRTP keys are installed: media can flow.
    case connected(profile: SRTPProfile)
    /// An SRTP packet decrypted and parsed. Its payload is a slice of the received datagram.
    case rtp(RTPPacket)
    case rtcp(RTCPCompoundPacket)
    case failed(PeerConnectionError)
    case closed
}

/// Drop and error counters, for logs and metrics.
public struct PeerConnectionCounters: Sendable, Equatable {
    public var datagramsReceived = 0
    public var bytesReceived = 0
    public var datagramsSent = 0
    public var bytesSent = 0
    public var rtpReceived = 0
    public var rtcpReceived = 0
    public var rtpSent = 0
    public var rtcpSent = 0
    /// Media from an address ICE has not validated.
    public var droppedUnknownSource = 0
    /// Media before SRTP keys exist.
    public var droppedBeforeKeys = 0
    public var srtpFailures = 0
    public var malformedRTP = 0
    public var malformedRTCP = 0
    /// First byte outside RFC 7983's ranges.
    public var droppedUnknownClass = 0
    /// TURN allocations made (relay candidates gathered).
    public var turnAllocations = 0
    /// TURN allocations that failed (error answers, bad credentials, no answer): no relay candidate.
    public var turnAllocationFailures = 0
    /// Allocations lost after they were made (a refresh failed or the lifetime ran out).
    public var turnAllocationsLost = 0
    /// Allocation refreshes the servers confirmed.
    public var turnRefreshes = 0
    /// Datagrams sent through, and received from, TURN allocations (Send/Data indications or ChannelData).
    public var relayedDatagramsSent = 0
    public var relayedDatagramsReceived = 0
    /// Of those received, how many came as ChannelData (the channel was bound).
    public var relayedChannelDataReceived = 0
    /// Datagrams for a relayed path that could not be sent (no permission, allocation gone, queue full).
    public var relayDrops = 0
    public init() {}
}

/// One peer connection, sans-IO: ICE, DTLS-SRTP and JSEP for one audio section, demultiplexed in one
/// place (RFC 7983). Fed datagrams and time; returns datagrams to send, a next timeout and events.
///
/// Not thread-safe by design: it is confined to the event loop (or actor) that drives it.
public final class PeerConnectionCore {
    // What every received media packet reads or writes comes first, together: Swift lays a class's
    // stored properties out in declaration order, and with hundreds of connections each packet
    // finds its connection's state cold, so these few cache lines are the ones it has to fetch.
    private var isClosed = false
    /// The latest time any input carried (for calls without `now`, such as `sendRTP`).
    private var lastNow = MonotonicTime.zero
    /// The SRTP session, lent unretained to the receive path (`HeldReference`): it changes only in
    /// this class's own steps (keys from DTLS, close), never while a packet is being unprotected.
    private var srtp = HeldReference<SRTPSession>()
    /// The last source whose media was accepted: asking the agent again for every packet from the
    /// same source would copy the agent out of `agent` (its arrays and strings retained and
    /// released), the largest Swift cost per packet. Cleared whenever the agent may have changed
    /// its view of the remote side (every agent call ends in `drainAgent`, restarts included).
    private var acceptedMediaSource: TransportAddress?
    // `@exclusivity(unchecked)` on the five below: each received packet reads or updates them, and
    // the optimizer keeps a runtime exclusivity check (a call into the Swift runtime with a
    // thread-local lookup) on every access that spans a call it cannot see through, such as an
    // array's release. It is safe because no access to them can overlap another: they are private
    // (or privately set) to this class, which is confined to one loop, and every access is a read,
    // an assignment, an `OutputQueue` push or pop, or a call on a TURN client (a sans-IO value that
    // calls nothing back) — none of which can reach this object again while the access lasts.
    /// TURN allocations, one per configured server and host base of the same family.
    @exclusivity(unchecked) private var relays: [Relay] = []
    @exclusivity(unchecked) private var events = OutputQueue<PeerConnectionEvent>()
    /// (`hasQueuedOutput`, read after every datagram, looks at these three queues.)
    @exclusivity(unchecked) private var transmits = OutputQueue<(bytes: [UInt8], from: TransportAddress, to: TransportAddress)>()
    /// Bytes for TURN servers reached over TCP or TLS, already framed for the stream.
    @exclusivity(unchecked) private var streamTransmits = OutputQueue<(connection: Int, bytes: [UInt8])>()
    @exclusivity(unchecked) public private(set) var counters = PeerConnectionCounters()

    public let configuration: PeerConnectionConfiguration
    /// Our ICE credentials; new ones after an ICE restart (ours or the peer's).
    public private(set) var localCredentials: ICECredentials
    /// ICE restarts so far (started here or answered).
    public private(set) var iceRestarts = 0
    public private(set) var signalingState: SignalingState = .stable
    /// What was negotiated for audio, once a description pair is complete.
    public private(set) var audio: NegotiatedAudio? {
        didSet { audioLevelExtensionID = audio?.extensions.audioLevel }
    }
    /// The negotiated ssrc-audio-level extension ID (RFC 6464), as `audio?.extensions.audioLevel`:
    /// for per-packet readers, a copy of `audio` retains and releases its strings and arrays.
    public private(set) var audioLevelExtensionID: UInt8?
    public private(set) var remoteTransport: RemoteTransport?
    public private(set) var iceState: ICEConnectionState = .new
    public private(set) var isConnected = false
    public private(set) var srtpProfile: SRTPProfile?

    private var agent: ICEAgent?
    private var dtls: DTLSEndpoint?
    private var pendingLocalOffer: SessionDescription?
    private var lastLocalDescription: SessionDescription?
    private var hostCandidates: [(candidate: Candidate, base: TransportAddress)] = []
    private var localCandidatesComplete = false
    private var sessionVersion: UInt64 = 1
    private let sessionID = UInt64.random(in: 1...(UInt64(1) << 62))
    private var dtlsPeer: (local: TransportAddress, remote: TransportAddress)?
    /// Remote addresses of earlier selected pairs (validated by ICE then): media from them is still
    /// accepted after an ICE restart or a pair switch while the peer moves over (SRTP authenticates it).
    private var earlierMediaRemotes: [TransportAddress] = []
    private var gatheringCompleteEmitted = false
    /// Why each failed TURN allocation failed, in order (for logs).
    public private(set) var turnFailures: [(server: TransportAddress, error: TURNError)] = []

    public init(configuration: PeerConnectionConfiguration, localCredentials: ICECredentials = .random()) {
        self.configuration = configuration
        self.localCredentials = localCredentials
    }

    // MARK: Local candidates

    /// Host candidates for the sockets the shell bound (their addresses are the bases).
    public func addHostCandidates(_ bases: [TransportAddress]) {
        for (index, base) in bases.enumerated() where !hostCandidates.contains(where: { $0.base == base }) {
            // Prefer IPv4 over IPv6 slightly less than browsers do; distinct local preferences keep priorities unique.
            let preference = UInt16(clamping: (base.ip.isIPv4 ? 60_000 : 50_000) - index)
            let candidate = Candidate(foundation: String(CRC32.checksum(Array(base.ip.description.utf8)) % 1_000_000_000),
                                      priority: Candidate.priority(type: .host, localPreference: preference),
                                      address: .ip(base.ip), port: base.port, type: .host,
                                      extensions: [.init(name: "generation", value: "0")])
            hostCandidates.append((candidate, base))
            for server in configuration.turnServers where server.address.ip.isIPv4 == base.ip.isIPv4 {
                // A stream server gets one connection (and allocation) for the family, not one per host socket.
                if server.isStream, relays.contains(where: { $0.stream?.server == server.address && $0.stream?.tls == server.tls }) { continue }
                var turn = configuration.turn
                if turn.randomSeed != nil { turn.randomSeed! &+= UInt64(relays.count) }
                if server.isStream {
                    // RFC 8489 section 6.2.2: no retransmissions over a reliable transport; give up after Ti = 39.5 s.
                    turn.maxTransmissions = 1
                    turn.lastWaitMultiplier = max(1, Int((Duration.milliseconds(39_500) / turn.initialRTO).rounded(.up)))
                }
                var relay = Relay(client: TURNClient(server: server.address, username: server.username,
                                                     password: server.credential, configuration: turn),
                                  base: base, localPreference: preference)
                if server.isStream {
                    relay.stream = TURNStreamConnection(id: relays.count, server: server.address, tls: server.tls)
                }
                relays.append(relay)
            }
            guard configuration.iceTransportPolicy == .all else { continue }
            agent?.addLocalCandidate(candidate, base: base)
            emit(.localCandidate(candidate))
        }
    }

    /// No more host candidates will come (STUN gathering may still be running in the agent).
    public func endOfLocalCandidates() {
        localCandidatesComplete = true
        finishGatheringIfReady()
    }

    /// Once host candidates are complete and every TURN allocation was made or given up, the agent
    /// learns that no more local candidates come (it reports gathering complete after its STUN requests).
    private func finishGatheringIfReady() {
        guard localCandidatesComplete, !relays.contains(where: { !$0.finished }) else { return }
        agent?.endOfLocalCandidates()
        if agent == nil && stunServersInUse.isEmpty { emitGatheringComplete() }
    }

    private var stunServersInUse: [TransportAddress] {
        configuration.iceTransportPolicy == .all ? configuration.stunServers : []
    }

    private func emitGatheringComplete() {
        guard !gatheringCompleteEmitted else { return }
        gatheringCompleteEmitted = true
        emit(.gatheringComplete)
    }

    public var localCandidates: [Candidate] {
        let hosts = configuration.iceTransportPolicy == .all ? hostCandidates.map(\.candidate) : []
        let gathered = agent?.localCandidates.filter { $0.type != .host } ?? relays.compactMap(\.candidate)
        return hosts + gathered
    }

    // MARK: Signaling

    /// Creates our offer (`have-local-offer`). With full SDP, call it after gathering completes.
    public func createOffer(now: MonotonicTime) throws(PeerConnectionError) -> SessionDescription {
        guard !isClosed else { throw .closed }
        advance(now)
        guard signalingState == .stable else { throw .wrongSignalingState("createOffer in \(signalingState.rawValue)") }
        ensureAgent(role: .controlling, now: now)
        let offer = JSEP.makeOffer(localParameters())
        pendingLocalOffer = offer
        signalingState = .haveLocalOffer
        return offer
    }

    /// Drops our pending offer (the polite side on glare), back to `stable`.
    public func rollback() {
        guard signalingState == .haveLocalOffer else { return }
        pendingLocalOffer = nil
        signalingState = .stable
    }

    /// Starts an ICE restart (RFC 8445 section 9, RFC 9429 section 4.1.8.1): new local credentials,
    /// which the next `createOffer` carries; checks start over once the answer brings the peer's new
    /// credentials. The DTLS association and SRTP keys stay, and media keeps the selected pair (the
    /// last one, even after consent was lost) until the new checks select one. Call it in `stable`.
    public func restartICE() throws(PeerConnectionError) {
        guard !isClosed else { throw .closed }
        guard signalingState == .stable else { throw .wrongSignalingState("restartICE in \(signalingState.rawValue)") }
        restartLocalICE()
    }

    private func restartLocalICE() {
        localCredentials = .random()
        rememberValidatedRemotes()
        agent?.restart(newLocalCredentials: localCredentials)
        acceptedMediaSource = nil
        iceRestarts += 1
    }

    /// Applies the remote answer to our pending offer.
    public func setRemoteAnswer(_ answer: SessionDescription, now: MonotonicTime) throws(PeerConnectionError) {
        guard !isClosed else { throw .closed }
        advance(now)
        guard signalingState == .haveLocalOffer, let offer = pendingLocalOffer else {
            throw .wrongSignalingState("answer in \(signalingState.rawValue)")
        }
        let negotiated: (audio: NegotiatedAudio, transport: RemoteTransport)
        do { negotiated = try JSEP.acceptAnswer(answer, toOffer: offer) } catch { throw .negotiation(error) }
        let role: DTLSRole
        do { role = try DTLSRole.forOfferer(answerSetup: negotiated.transport.setup) } catch {
            throw .negotiation(.badSetup(negotiated.transport.setup.rawValue))
        }
        try apply(audio: negotiated.audio, transport: negotiated.transport, dtlsRole: role, now: now)
        lastLocalDescription = offer
        pendingLocalOffer = nil
        signalingState = .stable
    }

    /// Answers a remote offer (first negotiation or renegotiation). Returns the answer to send.
    public func acceptOffer(_ offer: SessionDescription, now: MonotonicTime) throws(PeerConnectionError) -> SessionDescription {
        guard !isClosed else { throw .closed }
        advance(now)
        guard signalingState == .stable else { throw .wrongSignalingState("offer in \(signalingState.rawValue)") }
        ensureAgent(role: .controlled, now: now)
        var negotiated: (answer: SessionDescription, audio: NegotiatedAudio, transport: RemoteTransport)
        do { negotiated = try JSEP.answer(offer, local: localParameters()) } catch { throw .negotiation(error) }
        // New ICE credentials in an offer are an ICE restart (RFC 8839 section 4.4.1.1.1): the answer
        // carries new credentials too, unless we restarted already (our restart offer lost on glare).
        if let previous = remoteTransport, agent?.remoteCredentials != nil,
           previous.iceUfrag != negotiated.transport.iceUfrag || previous.icePwd != negotiated.transport.icePwd {
            restartLocalICE()
            do { negotiated = try JSEP.answer(offer, local: localParameters()) } catch { throw .negotiation(error) }
        }
        let role: DTLSRole
        do { role = try DTLSRole.forAnswerer(offerSetup: negotiated.transport.setup).role } catch {
            throw .negotiation(.badSetup(negotiated.transport.setup.rawValue))
        }
        try apply(audio: negotiated.audio, transport: negotiated.transport, dtlsRole: role, now: now)
        lastLocalDescription = negotiated.answer
        return negotiated.answer
    }

    /// A trickled remote candidate (`candidate:...`), before or after the remote description.
    public func addRemoteCandidate(_ candidate: Candidate) {
        guard candidate.component == 1 else { return }
        ensureAgentExists()
        agent?.addRemoteCandidate(candidate)
    }

    public func endOfRemoteCandidates() {
        ensureAgentExists()
        agent?.endOfRemoteCandidates()
    }

    private func apply(audio: NegotiatedAudio, transport: RemoteTransport, dtlsRole: DTLSRole, now: MonotonicTime) throws(PeerConnectionError) {
        let previous = remoteTransport
        self.audio = audio
        self.remoteTransport = transport
        acceptedMediaSource = nil
        // New remote credentials restart the agent's checks (a remote ICE restart).
        if let previous, previous.iceUfrag != transport.iceUfrag || previous.icePwd != transport.icePwd { rememberValidatedRemotes() }
        agent?.setRemoteCredentials(ufrag: transport.iceUfrag, pwd: transport.icePwd)
        for candidate in transport.candidates { agent?.addRemoteCandidate(candidate) }
        if transport.endOfCandidates { agent?.endOfRemoteCandidates() }
        // A renegotiation with the same DTLS identity keeps the DTLS association and SRTP keys.
        if let previous, dtls != nil, previous.fingerprints == transport.fingerprints { return }
        do {
            dtls = try DTLSEndpoint(role: dtlsRole, certificate: configuration.certificate,
                                    remoteFingerprints: transport.fingerprints, srtpProfiles: configuration.srtpProfiles)
        } catch {
            throw .dtls(error)
        }
        srtp.object = nil
        isConnected = false
        if dtlsRole == .server || agent?.selectedPair != nil { startDTLS(now: now) }
    }

    private func ensureAgentExists() {
        if agent == nil { ensureAgent(role: .controlled, now: .zero) }
    }

    private func ensureAgent(role: ICERole, now: MonotonicTime) {
        guard agent == nil else { return }
        var agent = ICEAgent(role: role, localCredentials: localCredentials, configuration: configuration.ice)
        for server in stunServersInUse { agent.addSTUNServer(server) }
        if configuration.iceTransportPolicy == .all {
            for host in hostCandidates { agent.addLocalCandidate(host.candidate, base: host.base) }
        }
        for relay in relays {
            if let candidate = relay.candidate, let relayed = relay.client.relayedAddress { agent.addLocalCandidate(candidate, base: relayed) }
        }
        if localCandidatesComplete && !relays.contains(where: { !$0.finished }) { agent.endOfLocalCandidates() }
        self.agent = agent
        acceptedMediaSource = nil
    }

    private func localParameters() -> LocalDescriptionParameters {
        sessionVersion += 1
        return LocalDescriptionParameters(
            iceUfrag: localCredentials.ufrag, icePwd: localCredentials.pwd,
            fingerprint: configuration.certificate.fingerprint, ssrc: configuration.ssrc, cname: configuration.cname,
            streamID: configuration.streamID, trackID: "audio-\(configuration.ssrc)", sendsAudio: configuration.sendsAudio,
            candidates: configuration.trickle ? [] : localCandidates, gatheringComplete: !configuration.trickle,
            trickle: configuration.trickle, sessionID: sessionID, sessionVersion: sessionVersion)
    }

    private var startedDTLS = false

    private func startDTLS(now: MonotonicTime) {
        guard let dtls, dtls.state == .idle else { return }
        dtls.start(now: now)
        startedDTLS = true
        drainDTLS(now: now)
    }

    // MARK: Input

    /// One datagram from the socket set: demultiplexed here, by first byte (RFC 7983), in one place.
    /// Datagrams from a TURN server are TURN's own (responses, Data indications, ChannelData): their
    /// inner datagram comes back through this same demultiplexer as if from the peer, to the relayed address.
    /// Consumes the bytes: a caller that passes its last reference lets SRTP decrypt them in place.
    ///
    /// Returns the media the datagram carried (`.rtp` or `.rtcp`), handed back at once instead of
    /// queued: a packet a connection per 20 ms is most of the traffic, and with many connections a
    /// queue append and poll per packet means touching more of the connection's cold state. Everything
    /// else, and media that arrives over TURN streams (several packets per read), comes from `pollEvent()`.
    @discardableResult
    public func handleDatagram(_ datagram: consuming [UInt8], from source: TransportAddress, to local: TransportAddress,
                               now: MonotonicTime) -> PeerConnectionEvent? {
        var bytes = consume datagram
        return handleDatagram(&bytes, from: source, to: local, now: now)
    }

    /// The same, for a datagram in a buffer the caller reuses: SRTP decrypts media in place there, and
    /// the returned packet's payload is a slice of it (the buffer is free again once that is gone).
    @discardableResult
    public func handleDatagram(_ datagram: inout [UInt8], from source: TransportAddress, to local: TransportAddress,
                               now: MonotonicTime) -> PeerConnectionEvent? {
        guard !isClosed, !datagram.isEmpty else { return nil }
        counters.datagramsReceived += 1
        counters.bytesReceived += datagram.count
        advance(now)
        let media = demultiplex(&datagram, from: source, to: local, now: now, relayed: false)
        if !relays.isEmpty {
            drainRelays(now: now)
            // A TURN server's answer may have given the agent its relay candidate or ended gathering:
            // what that makes the agent send or report goes out now, not at its next timer.
            drainAgent(now: now)
        }
        return media
    }

    /// Adds what handling the next media packet touches: this core and its SRTP session.
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        hints.add(self, bytes: 512)
        srtp.object?.addPrefetchHints(&hints)
    }

    /// Whether events or datagrams are waiting to be polled (a shell may skip polling when not).
    public var hasQueuedOutput: Bool { !events.isEmpty || !transmits.isEmpty || !streamTransmits.isEmpty }

    private func demultiplex(_ datagram: inout [UInt8], from source: TransportAddress, to local: TransportAddress,
                             now: MonotonicTime, relayed: Bool) -> PeerConnectionEvent? {
        guard let first = datagram.first else { return nil }
        let relayIndex = relayed || relays.isEmpty ? nil : relays.firstIndex { $0.stream == nil && $0.base == local && $0.client.server == source }
        switch PacketClass.classify(firstByte: first) {
        case .stun:
            // A TURN server may be a STUN server too: Binding goes to the agent, other methods to TURN.
            if let relayIndex, STUNMessage.peekHeader(datagram)?.type.method != .binding {
                return receiveFromTURNServer(relayIndex, datagram, now: now)
            }
            ensureAgentExists()
            _ = agent?.handleDatagram(datagram, from: source, to: local, now: now)
            drainAgent(now: now)
        case .dtls:
            guard let dtls, agent?.isKnownRemoteInPlace(source) == true else {
                counters.droppedUnknownSource += 1
                return nil
            }
            if dtlsPeer == nil || agent?.selectedPair == nil { dtlsPeer = (local, source) }
            if !startedDTLS { startDTLS(now: now) }
            dtls.handleDatagram(datagram, now: now)
            drainDTLS(now: now)
        case .rtpOrRTCP:
            return receiveMedia(&datagram, from: source, now: now)
        case .turnChannel:
            guard let relayIndex else { counters.droppedUnknownClass += 1; return nil }
            return receiveFromTURNServer(relayIndex, datagram, now: now)
        case .unknown:
            counters.droppedUnknownClass += 1
        }
        return nil
    }

    private func receiveFromTURNServer(_ index: Int, _ datagram: [UInt8], now: MonotonicTime) -> PeerConnectionEvent? {
        let inner = relays[index].client.handleDatagram(datagram, now: now)
        drainRelays(now: now)
        guard let inner, let relayedAddress = relays[index].client.relayedAddress else { return nil }
        counters.relayedDatagramsReceived += 1
        if PacketClass.classify(firstByte: datagram[0]) == .turnChannel { counters.relayedChannelDataReceived += 1 }
        var payload = inner.payload
        return demultiplex(&payload, from: inner.peer, to: relayedAddress, now: now, relayed: true)
    }

    private func receiveMedia(_ packet: inout [UInt8], from source: TransportAddress, now: MonotonicTime) -> PeerConnectionEvent? {
        guard !srtp.isEmpty else { counters.droppedBeforeKeys += 1; return nil }
        if source != acceptedMediaSource {
            // In place: `agent?.isKnownRemote` copies the whole agent (a retain of each array and string).
            guard agent?.isKnownRemoteInPlace(source) == true || earlierMediaRemotes.contains(source) else {
                counters.droppedUnknownSource += 1
                return nil
            }
            acceptedMediaSource = source
        }
        if packet.count >= 2, isRTCP(secondByte: packet[1]) {
            do { try srtp.withObject { try $0.unprotectRTCP(&packet) } } catch { counters.srtpFailures += 1; return nil }
            do {
                let compound = try RTCPCompoundPacket(parsing: packet)
                counters.rtcpReceived += 1
                return .rtcp(compound)
            } catch {
                counters.malformedRTCP += 1
            }
        } else {
            do { try srtp.withObject { try $0.unprotectRTP(&packet) } } catch { counters.srtpFailures += 1; return nil }
            do {
                let rtp = try RTPPacket(parsing: packet)
                counters.rtpReceived += 1
                return .rtp(rtp)
            } catch {
                counters.malformedRTP += 1
            }
        }
        return nil
    }

    public func handleTimeout(now: MonotonicTime) {
        guard !isClosed else { return }
        advance(now)
        for index in relays.indices {
            if let deadline = relays[index].client.nextTimeout, deadline <= now { relays[index].client.handleTimeout(now: now) }
            if !relays[index].finished, let startedAt = relays[index].startedAt, now >= startedAt + configuration.turnAllocationTimeout {
                relays[index].client.close(now: now)
                relayFailed(index, error: .timeout(.allocate))
            }
        }
        drainRelays(now: now)
        if let deadline = agent?.nextTimeoutInPlace(), deadline <= now {
            agent?.handleTimeout(now: now)
        }
        drainAgent(now: now)
        if let dtls, let deadline = dtls.nextTimeout, deadline <= now {
            dtls.handleTimeout(now: now)
            drainDTLS(now: now)
        }
    }

    public var nextTimeout: MonotonicTime? {
        var earliest = agent?.nextTimeoutInPlace()  // in place: `agent?.nextTimeout` copies the agent
        func consider(_ time: MonotonicTime?) {
            guard let time else { return }
            if let current = earliest, current <= time { return }
            earliest = time
        }
        consider(dtls?.nextTimeout)
        for relay in relays {
            // Allocations start at the first input with a time: ask for one at once.
            if relay.startedAt == nil, !relay.finished { consider(lastNow) }
            consider(relay.client.nextTimeout)
            if !relay.finished, let startedAt = relay.startedAt { consider(startedAt + configuration.turnAllocationTimeout) }
        }
        return earliest
    }

    // MARK: Output

    /// Protects and queues an RTP packet (built by the send stream) on the selected path.
    public func sendRTP(_ packet: [UInt8]) {
        guard let srtp = srtp.object, let path = mediaPath else { return }
        var bytes = packet
        bytes.reserveCapacity(packet.count + SRTPSession.maxTrailerLength)
        do { try srtp.protectRTP(&bytes) } catch { counters.srtpFailures += 1; return }
        counters.rtpSent += 1
        queue(bytes, from: path.local, to: path.remote)
    }

    /// Protects and queues an RTCP compound packet.
    public func sendRTCP(_ packet: [UInt8]) {
        guard let srtp = srtp.object, let path = mediaPath else { return }
        var bytes = packet
        do { try srtp.protectRTCP(&bytes) } catch { counters.srtpFailures += 1; return }
        counters.rtcpSent += 1
        queue(bytes, from: path.local, to: path.remote)
    }

    public func pollTransmit() -> (bytes: [UInt8], from: TransportAddress, to: TransportAddress)? {
        transmits.poll()
    }

    /// TURN servers to reach over TCP or TLS: the shell opens one connection for each, feeds what it reads
    /// to `handleTURNStreamBytes`, writes what `pollTURNStreamTransmit` returns and reports a closed stream
    /// with `turnStreamClosed`.
    public var turnStreamConnections: [TURNStreamConnection] { relays.compactMap(\.stream) }

    /// Bytes to write on a TURN stream connection (messages already framed).
    public func pollTURNStreamTransmit() -> (connection: Int, bytes: [UInt8])? {
        streamTransmits.poll()
    }

    /// Bytes read from a TURN stream connection: any split of the server's messages. Garbage fails the
    /// allocation (the shell should close the connection: `turnStreamConnectionFailed` tells it).
    public func handleTURNStreamBytes(_ bytes: [UInt8], connection: Int, now: MonotonicTime) {
        guard !isClosed, let index = relays.firstIndex(where: { $0.stream?.id == connection }) else { return }
        advance(now)
        relays[index].framer.append(bytes)
        do {
            while let message = try relays[index].framer.nextMessage() {
                counters.datagramsReceived += 1
                counters.bytesReceived += message.bytes.count
                if case .stun = message, STUNMessage.peekHeader(message.bytes)?.type.method == .binding { continue }  // no Binding over TURN streams
                // Several packets per read: media from a stream is queued with the other events.
                if let media = receiveFromTURNServer(index, message.bytes, now: now) { emit(media) }
            }
        } catch {
            turnStreamClosed(connection: connection, now: now)
        }
        drainRelays(now: now)
        drainAgent(now: now)
        drainDTLS(now: now)
    }

    /// Whether a stream connection failed on garbage (the shell closes it).
    public func turnStreamConnectionFailed(_ connection: Int) -> Bool {
        relays.first(where: { $0.stream?.id == connection })?.framer.failure != nil
    }

    /// A TURN stream connection could not be opened or was closed: its allocation is gone.
    public func turnStreamClosed(connection: Int, now: MonotonicTime) {
        guard !isClosed, let index = relays.firstIndex(where: { $0.stream?.id == connection }),
              !relays[index].streamClosed else { return }
        relays[index].streamClosed = true
        relays[index].client.close(now: now)
        while relays[index].client.pollTransmit() != nil {}
        relayFailed(index, error: .streamClosed)
    }

    public func pollEvent() -> PeerConnectionEvent? {
        events.poll()
    }

    /// Sends DTLS close_notify (after the caller's RTCP BYE) and stops.
    public func close(now: MonotonicTime) {
        guard !isClosed else { return }
        advance(now)
        if let dtls {
            dtls.close(now: now)
            drainDTLS(now: now)
        }
        // Deallocate (Refresh with lifetime 0); the request goes out once, unretried.
        for index in relays.indices { relays[index].client.close(now: now) }
        drainRelays(now: now)
        agent?.close()
        isClosed = true
        signalingState = .closed
        emit(.closed)
    }

    public var selectedPair: ICECandidatePair? { agent?.selectedPair }
    public var iceStats: ICEAgentStats? { agent?.stats }
    public var srtpStatistics: SRTPStatistics? { srtp.object?.statistics }

    // MARK: Internals

    private var mediaPath: (local: TransportAddress, remote: TransportAddress)? {
        if let path = agent?.selectedPath { return (path.localBase, path.remote) }
        return dtlsPeer
    }

    /// Queues a datagram from a local base; from a relayed address it goes through that TURN allocation.
    private func queue(_ bytes: [UInt8], from: TransportAddress, to: TransportAddress) {
        if !relays.isEmpty, let index = relays.firstIndex(where: { $0.relayedAddress == from }) {
            sendRelayed(index, bytes, to: to)
            return
        }
        queueDirect(bytes, from: from, to: to)
    }

    private func queueDirect(_ bytes: [UInt8], from: TransportAddress, to: TransportAddress) {
        counters.datagramsSent += 1
        counters.bytesSent += bytes.count
        transmits.append((bytes, from, to))
    }

    private func emit(_ event: PeerConnectionEvent) { events.append(event) }

    /// Before an ICE restart drops the agent's remote candidates: media keeps coming from every
    /// address the old generation validated until the new one selects a pair. A controlling peer
    /// (Chromium) may be sending from a validated pair other than our selected one: dropping it
    /// lost 0.2-0.5 s of audio over each restart.
    private func rememberValidatedRemotes() {
        for address in agent?.validatedRemoteAddresses ?? [] { rememberEarlierRemote(address) }
        if let acceptedMediaSource { rememberEarlierRemote(acceptedMediaSource) }
    }

    private func rememberEarlierRemote(_ address: TransportAddress) {
        guard !earlierMediaRemotes.contains(address) else { return }
        earlierMediaRemotes.append(address)
        if earlierMediaRemotes.count > 8 { earlierMediaRemotes.removeFirst() }
    }

    private func drainAgent(now: MonotonicTime) {
        guard agent != nil else {
            acceptedMediaSource = nil
            return
        }
        while let transmit = agent?.pollTransmit() {
            // Transmits from a relayed base (`viaRelay`) are wrapped for their TURN allocation in `queue`.
            queue(transmit.bytes, from: transmit.source, to: transmit.destination)
        }
        while let event = agent?.pollEvent() {
            // Which sources the agent accepts changes only with an event (a pair selected, consent
            // lost, failure): a consent check answered keeps the accepted source, so the next media
            // packet skips the agent's lookup (the agent's cold lines: its selected pair and remote candidates).
            acceptedMediaSource = nil
            switch event {
            case .localCandidate(let candidate):
                emit(.localCandidate(candidate))
            case .gatheringComplete:
                emitGatheringComplete()
            case .stateChanged(let state):
                iceState = state
                emit(.iceStateChanged(state))
                if state == .failed { emit(.failed(.iceFailed)) }
            case .selectedPairChanged(let pair):
                if let earlier = dtlsPeer?.remote, earlier != pair.remoteAddress { rememberEarlierRemote(earlier) }
                dtlsPeer = (pair.localBase, pair.remoteAddress)
                emit(.selectedPairChanged(pair))
                if dtls != nil, !startedDTLS { startDTLS(now: now) }
            case .consentLost:
                emit(.failed(.consentLost))
            case .roleChanged:
                break
            }
        }
    }

    private func drainDTLS(now: MonotonicTime) {
        guard let dtls else { return }
        while let bytes = dtls.pollTransmit() {
            guard let path = mediaPath else { continue }
            queue(bytes, from: path.local, to: path.remote)
        }
        while let event = dtls.pollEvent() {
            switch event {
            case .connected(let profile, let keys, _):
                do {
                    srtp.object = try SRTPSession(profile: profile, keys: keys)
                    srtpProfile = profile
                    isConnected = true
                    emit(.connected(profile: profile))
                } catch {
                    emit(.failed(.srtp("\(error)")))
                }
            case .applicationData:
                break
            case .closed:
                isConnected = false
            case .failed(let error):
                isConnected = false
                emit(.failed(.dtls(error)))
            }
        }
    }
}

// MARK: - TURN relays

/// One TURN allocation of the connection: its sans-IO client, the host socket it talks from, and
/// datagrams held until the permission for their peer is installed.
struct Relay {
    var client: TURNClient
    /// The host socket (candidate base) the allocation was made from.
    let base: TransportAddress
    let localPreference: UInt16
    var startedAt: MonotonicTime?
    /// Allocated or given up: gathering no longer waits for it.
    var finished = false
    var candidate: Candidate?
    /// Peers whose ChannelBind failed: Send indications only for them.
    var noChannel: Set<TransportAddress> = []
    var held: [(peer: TransportAddress, bytes: [UInt8])] = []
    /// Set when the server is reached over TCP or TLS rather than from `base`'s UDP socket.
    var stream: TURNStreamConnection?
    var framer = TURNStreamFramer()
    var streamClosed = false

    var relayedAddress: TransportAddress? { client.relayedAddress }

    static let maximumHeld = 64
}

extension PeerConnectionCore {
    /// One line per TURN allocation (server, base, state, relayed address, expiry), for logs.
    public var relayDescriptions: [String] {
        relays.map { relay in
            let expiry = relay.client.expiresAt.map { "expires in \($0 - lastNow)" } ?? "no expiry"
            return "\(relay.client.server) from \(relay.base): \(relay.client.state), relayed \(relay.relayedAddress.map { "\($0)" } ?? "-"), \(expiry), "
                + "\(relay.client.droppedResponses) responses dropped, \(relay.client.ignoredDatagrams) datagrams ignored, \(relay.held.count) held, no channel to \(relay.noChannel)"
        }
    }

    /// Records the latest time and starts allocations that wait for one.
    private func advance(_ now: MonotonicTime) {
        if now > lastNow { lastNow = now }
        for index in relays.indices where relays[index].startedAt == nil && !relays[index].finished {
            relays[index].startedAt = now
            relays[index].client.start(now: now)
        }
        if !relays.isEmpty { drainRelays(now: now) }
    }

    /// Sends `bytes` to `peer` through allocation `index`: ChannelData once a channel is bound, a Send
    /// indication while only the permission is, held back until one of them is installed.
    private func sendRelayed(_ index: Int, _ bytes: [UInt8], to peer: TransportAddress) {
        guard relays[index].client.state == .allocated else {
            counters.relayDrops += 1
            return
        }
        let now = lastNow
        let hasChannel = relays[index].client.channel(for: peer) != nil
        if !hasChannel, !relays[index].noChannel.contains(peer) {
            do { try relays[index].client.bindChannel(peer: peer, now: now) } catch { relays[index].noChannel.insert(peer) }
        }
        if !hasChannel && !relays[index].client.hasPermission(for: peer.ip) {
            relays[index].client.createPermission(for: peer.ip, now: now)
            if relays[index].held.count < Relay.maximumHeld {
                relays[index].held.append((peer, bytes))
            } else {
                counters.relayDrops += 1
            }
            drainRelays(now: now)
            return
        }
        let wrapped = relays[index].client.wrap(payload: bytes, to: peer)
        counters.relayedDatagramsSent += 1
        sendToServer(index, wrapped)
        drainRelays(now: now)
    }

    /// Sends a message to allocation `index`'s server: a datagram from its host socket, or framed on its stream.
    private func sendToServer(_ index: Int, _ bytes: [UInt8]) {
        guard let stream = relays[index].stream else {
            queueDirect(bytes, from: relays[index].base, to: relays[index].client.server)
            return
        }
        counters.datagramsSent += 1
        counters.bytesSent += bytes.count
        streamTransmits.append((stream.id, TURNStreamFramer.framed(bytes)))
    }

    /// Sends what the TURN clients produced and handles their events.
    private func drainRelays(now: MonotonicTime) {
        for index in relays.indices {
            while let datagram = relays[index].client.pollTransmit() {
                sendToServer(index, datagram)
            }
            while let event = relays[index].client.pollEvent() {
                handleRelayEvent(index, event, now: now)
            }
        }
    }

    private func handleRelayEvent(_ index: Int, _ event: TURNEvent, now: MonotonicTime) {
        switch event {
        case .allocated(let relayed, let mapped, _):
            guard !relays[index].finished else { return }
            relays[index].finished = true
            counters.turnAllocations += 1
            let base = relays[index].base
            let server = relays[index].client.server
            let candidate = Candidate(
                foundation: "r" + String(CRC32.checksum(Array("\(server)|\(base.ip)".utf8)) % 1_000_000_000),
                priority: Candidate.priority(type: .relay, localPreference: relays[index].localPreference),
                address: .ip(relayed.ip), port: relayed.port, type: .relay,
                relatedAddress: mapped.map { .ip($0.ip) }, relatedPort: mapped?.port,
                extensions: [.init(name: "generation", value: "0")])
            relays[index].candidate = candidate
            agent?.addLocalCandidate(candidate, base: relayed)
            emit(.localCandidate(candidate))
            finishGatheringIfReady()
        case .failed(let error):
            relayFailed(index, error: error)
        case .refreshed:
            counters.turnRefreshes += 1
        case .permissionCreated(let ip):
            releaseHeld(index) { $0.ip == ip }
        case .channelBound(_, let peer):
            releaseHeld(index) { $0 == peer }
        case .permissionFailed(let ip, _):
            let before = relays[index].held.count
            relays[index].held.removeAll { $0.peer.ip == ip }
            counters.relayDrops += before - relays[index].held.count
        case .channelBindFailed(let peer, _):
            relays[index].noChannel.insert(peer)
        case .closed:
            break
        }
    }

    /// An allocation failed or was given up: no relay candidate from it (or none any more).
    private func relayFailed(_ index: Int, error: TURNError) {
        turnFailures.append((relays[index].client.server, error))
        counters.relayDrops += relays[index].held.count
        relays[index].held.removeAll()
        if relays[index].finished {
            if relays[index].candidate != nil { counters.turnAllocationsLost += 1 }
            return
        }
        relays[index].finished = true
        counters.turnAllocationFailures += 1
        finishGatheringIfReady()
    }

    private func releaseHeld(_ index: Int, where matches: (TransportAddress) -> Bool) {
        let ready = relays[index].held.filter { matches($0.peer) }
        guard !ready.isEmpty else { return }
        relays[index].held.removeAll { matches($0.peer) }
        for item in ready {
            let wrapped = relays[index].client.wrap(payload: item.bytes, to: item.peer)
            counters.relayedDatagramsSent += 1
            sendToServer(index, wrapped)
        }
    }
}

extension RTCPReceiverReportSchedule {
    /// The receiver reports of `core`'s negotiated audio: its SSRC and CNAME, reduced-size RTCP when
    /// negotiated. Nil before a description pair is complete.
    public init?(core: PeerConnectionCore, start: MonotonicTime, using generator: inout some RandomNumberGenerator) {
        guard let audio = core.audio else { return nil }
        self.init(ssrc: SSRC(rawValue: core.configuration.ssrc), cname: core.configuration.cname,
                  reducedSize: audio.rtcpReducedSize, start: start, using: &generator)
    }
}
