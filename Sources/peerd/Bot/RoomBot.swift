import DTLS
import Foundation
import ICE
import Logging
import Metrics
import NIOCore
import PeerConnection
import RTP
import SDP
import Signaling
import Wire

/// What the bot sends into the room.
enum OutgoingAudio: Sendable {
    case silence
    case tone(Double)
    case file(String)
    case alsa(String)
    case echo
}

struct RoomBotOptions: Sendable {
    var url: String
    var room: String
    var password: String?
    var name: String
    var id: String
    var recordDirectory: String?
    var format: RecordFormat = .ogg
    var audio: OutgoingAudio = .silence
    var muted = false
    var stunServers: [TransportAddress] = []
    var trickle = true
    var interfaces = InterfaceFilter()
    /// One UDP port for every connection (`--port`), demultiplexed by ICE username; nil: each
    /// connection binds its own sockets, on `portRange` (`--port-range`) when set.
    var sharedPort: SharedUDPPort?
    var portRange: ClosedRange<UInt16>?
    /// How long to wait for a participant's offer before offering ourselves.
    var offerDelay: Duration = .seconds(4)
    var trustedCAPEM: String?
    /// Also record the mixed room track (every participant summed) to DIR/room-mix.ogg|wav.
    var mixRoom = false
    /// TURN servers (one relayed candidate per server and host socket) and the candidate policy.
    var turnServers: [TURNServerConfiguration] = []
    var iceTransportPolicy: ICETransportPolicy = .all
    /// Offers beyond `RoomBot.maximumOffersPerWindow` within this window are held back (flood protection).
    var offerWindow: Duration = .seconds(10)
    /// ICE timers (consent freshness, timeouts) of every connection.
    var ice = ICEAgentConfiguration()
    /// How long to wait for an answer to an mDNS query for a browser's `<uuid>.local` candidate.
    var mdnsTimeout: Duration = .seconds(3)
    /// An ICE restart that selected no new pair by then is tried again.
    var iceRestartTimeout: Duration = .seconds(10)
    /// Stop restarting ICE with a participant after this many attempts (their tab may be gone).
    var maximumICERestarts = 30
    /// Where to write the getStats-shaped statistics of every connection (default DIR/stats.json
    /// when recording), and how often.
    var statsPath: String?
    var statsInterval: Duration = .seconds(2)
    /// swift-metrics backend for the per-connection gauges (the global one by default).
    var metricsFactory: (any MetricsFactory)?
}

/// A snapshot for status lines, the demo table and tests.
struct PeerSummary: Sendable {
    var id: String
    var phase: String
    var packetsReceived: Int
    var speaking: Bool
    var recording: String?
    var iceState: String
    var lastLevel = 127
    var averagePayloadBytes = 0
    var recorder: String = ""
}

/// peerd as a room participant: one peer connection per remote participant, whatever the offer
/// order; polite on glare; records everyone; sends one shared audio source to all.
///
/// Confinement: all mutable state is touched only on `loop` (signaling events hop onto it), which
/// is why the `@unchecked Sendable` is safe.
final class RoomBot: @unchecked Sendable {
    let options: RoomBotOptions
    let loop: any EventLoop
    let client: RoomClient
    let logger: Logger
    private let certificate: DTLSCertificate
    private var peers: [String: RemotePeer] = [:]
    /// Summaries of participants who left (their files are finalized), the last
    /// `keptDepartures` of them: a bot that records a room for days must not grow with every visit.
    private var departed: [PeerSummary] = []
    /// How many departures fell out of `departed` (older than the kept ones).
    private var forgottenDepartures = 0
    /// How many departed participants' summaries and final statistics are kept.
    static let keptDepartures = 256
    /// Serial of the last `RemotePeer` made (see `RemotePeer.serial`).
    private var nextPeerSerial = 0
    /// Events dropped because their driver belongs to a peer object that was replaced or removed.
    private(set) var staleDriverEvents = 0
    private var roomMembers: Set<String> = []
    private var joined = false
    private let events: EventsLog
    private var source: (any AudioSource)?
    private var encoder: OpusEncoder?
    private var echoFrame: [UInt8]?
    private var talk = TalkDetector()
    private var selfSpeaking = false
    private var muted: Bool
    private var mediaTask: Scheduled<Void>?
    /// The peers the 20 ms ticks visit: those we send to (connected, with a send stream). Every peer
    /// is visited on the housekeeping ticks only, which rebuild this list; a recorder with 1,000
    /// participants then touches each one 10 times a second instead of 50.
    private var sendingPeers: [RemotePeer] = []
    private var mediaStart = MonotonicTime.now()
    private var frameIndex: Int64 = 0
    private var rng = SystemRandomNumberGenerator()
    private var stopped = false
    /// The mixed room track, when `mixRoom` is set (its origin is the bot's start).
    private var roomMix: RoomMixRecorder?
    private var roomMixTickDue = MonotonicTime.zero
    let mdns: MDNSLookup
    private let metrics: ConnectionMetrics
    /// The last statistics of connections that ended (participants who left), newest last, encoded
    /// once as they end (they do not change; stats.json is rewritten every few seconds).
    private var closedStatsJSON: [Data] = []
    private var nextStatsAt = MonotonicTime.now()

    init(options: RoomBotOptions, loop: any EventLoop, logger: Logger) throws {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.muted = options.muted
        certificate = try DTLSCertificate.generate()
        if let directory = options.recordDirectory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw BotError.recordDirectoryNotWritable(directory)
            }
        }
        events = EventsLog(directory: options.recordDirectory)
        if options.mixRoom, let directory = options.recordDirectory {
            let path = (directory as NSString).appendingPathComponent(options.format == .ogg ? "room-mix.ogg" : "room-mix.wav")
            roomMix = try RoomMixRecorder(path: path, format: options.format == .ogg ? .oggOpus(bitrate: 48_000) : .wav, origin: .now())
        }
        let mdnsAddresses = NetworkInterfaces.addresses().filter { options.interfaces.admits($0) }.map(\.address)
            .reduce(into: [IPAddress]()) { if !$0.contains($1) { $0.append($1) } }
        mdns = MDNSLookup(addresses: mdnsAddresses, timeout: options.mdnsTimeout, loop: loop, logger: logger)
        metrics = ConnectionMetrics(factory: options.metricsFactory ?? MetricsSystem.factory)
        let participant = Participant(id: options.id, name: options.name, microphoneEnabled: !options.muted)
        client = RoomClient(configuration: RoomClient.Configuration(url: options.url, participant: participant,
                                                                    trustedCAPEM: options.trustedCAPEM),
                            logger: Logger(label: "peerd.signaling"))
        switch options.audio {
        case .silence, .echo: source = nil
        case .tone(let frequency): source = ToneSource(frequency: frequency)
        case .file(let path): source = try Self.fileSource(path)
        case .alsa(let device): source = try ALSACapture(device: device)
        }
        encoder = try OpusEncoder(channels: 1, application: .voip, frameDuration: .ms20)
    }

    enum BotError: Error, CustomStringConvertible {
        case recordDirectoryNotWritable(String)
        case unsupportedFile(String)
        var description: String {
            switch self {
            case .recordDirectoryNotWritable(let path): "record directory \(path) is not writable"
            case .unsupportedFile(let path): "\(path): only .ogg/.opus (Ogg Opus) and .wav files can be played"
            }
        }
    }

    static func fileSource(_ path: String) throws -> any AudioSource {
        let lower = path.lowercased()
        if lower.hasSuffix(".wav") { return try WAVFileSource(path: path, loop: true) }
        if lower.hasSuffix(".ogg") || lower.hasSuffix(".opus") {
            guard let data = FileManager.default.contents(atPath: path) else { throw AudioSourceError.unreadable(path: path) }
            return try OggOpusFileSource(bytes: [UInt8](data), loop: true)
        }
        throw BotError.unsupportedFile(path)
    }

    var sendsAudio: Bool {
        if case .silence = options.audio { return false }
        return true
    }

    // MARK: Run

    /// Connects, joins and serves until `stop()`.
    func run() async {
        await client.start()
        loop.execute { self.startMediaClock() }
        for await event in client.events {
            loop.execute { self.handle(event) }
            if stopped { break }
        }
    }

    /// Leaves the room, closes every connection (RTCP BYE, DTLS close_notify) and finalizes files.
    /// A second call (a signal handler and a caller both stopping) returns at once.
    func stop() async {
        let drivers: [PeerConnectionDriver]? = (try? await loop.submit { () -> [PeerConnectionDriver]? in
            guard !self.stopped else { return nil }
            // The last statistics, of the connections as they were before leaving.
            self.writeStats(now: .now())
            self.stopped = true
            self.mediaTask?.cancel()
            var drivers: [PeerConnectionDriver] = []
            for peer in self.peers.values {
                self.sendBye(peer)
                if let failure = peer.finishRecording() { self.logger.error("finalizing the recording of \(peer.id) failed: \(failure)") }
                if let driver = peer.driver { drivers.append(driver) }
                peer.phase = .closed
                self.events.append("leave", participant: peer.id, fields: ["reason": "peerd stopped"])
            }
            if let mix = self.roomMix {
                do { try mix.finish() } catch { self.logger.error("finalizing the room mix failed: \(error)") }
                self.roomMix = nil
            }
            return drivers
        }.get()) ?? nil
        guard let drivers else { return }
        try? await client.leave()
        for driver in drivers { await driver.close() }
        await client.stop()
        await mdns.close()
        try? await loop.submit { self.events.close() }.get()
    }

    /// Everyone peerd had a connection with: present participants first, then the last
    /// `keptDepartures` who left.
    func summaries() async -> [PeerSummary] {
        (try? await loop.submit {
            self.peers.values.sorted { $0.id < $1.id }.map(self.summary) + self.departed
        }.get()) ?? []
    }

    /// Departed participants no longer in `summaries()` (more than `keptDepartures` left).
    func departuresNotSummarized() async -> Int {
        (try? await loop.submit { self.forgottenDepartures }.get()) ?? 0
    }

    private func summary(_ peer: RemotePeer) -> PeerSummary {
        PeerSummary(id: peer.id, phase: peer.phase.rawValue, packetsReceived: peer.packetsReceived, speaking: peer.speaking,
                    recording: recordingPath(peer), iceState: peer.core.map { "\($0.iceState)" } ?? "-",
                    lastLevel: Int(peer.lastLevel),
                    averagePayloadBytes: peer.packetsReceived > 0 ? peer.payloadBytesReceived / peer.packetsReceived : 0,
                    recorder: peer.oggRecorder.object.map { "\($0.statistics)" } ?? peer.wavRecorder.map { "\($0.statistics)" } ?? "")
    }

    func recordingPath(_ peer: RemotePeer) -> String? {
        guard let directory = options.recordDirectory, peer.packetsReceived > 0 else { return nil }
        return (directory as NSString).appendingPathComponent(peer.fileName + (options.format == .ogg ? ".ogg" : ".wav"))
    }

    var isMuted: Bool {
        get async { (try? await loop.submit { self.muted }.get()) ?? false }
    }

    func setMuted(_ value: Bool) async {
        try? await loop.submit { self.muted = value }.get()
        try? await client.setMicrophone(enabled: !value)
        events.append(value ? "mute" : "unmute", participant: options.id)
    }

    // MARK: Signaling events

    private func handle(_ event: RoomClient.Event) {
        switch event {
        case .connected:
            logger.info("signaling connected; joining room \(options.room)")
            joinRoom()
        case .reconnected(let attempt):
            logger.notice("signaling reconnected (attempt \(attempt)); rejoined room \(options.room)")
            events.append("signaling-reconnected", participant: options.id)
        case .disconnected(let reason, let willRetry):
            // After `stop()` the bot closes the connection itself: not a warning.
            if stopped {
                logger.info("signaling closed (\(reason))")
            } else {
                logger.warning("signaling disconnected: \(reason)\(willRetry ? "; reconnecting" : "")")
            }
        case .message(let message):
            handle(message)
        case .invalidMessage(let error):
            logger.warning("ignored an invalid message from the room server: \(error)")
        }
    }

    private func joinRoom() {
        let room = options.room, password = options.password, muted = self.muted
        Task {
            do {
                try await client.join(room: room, password: password)
                if muted { try await client.setMicrophone(enabled: false) }
            } catch {
                logger.error("could not join room \(room): \(error)")
            }
        }
    }

    private func handle(_ message: ServerMessage) {
        switch message {
        case .joinedRoom(let room, let user):
            joined = true
            logger.info("joined room \(room.id) (\(room.name))")
            // The room only learns our state once we are in it (the client refuses говорит before that, and a
            // rejoin after a reconnect starts from a fresh record): announce it now.
            if user.id == options.id {
                let speaking = selfSpeaking, muted = self.muted
                Task { [client] in
                    if muted { try? await client.setMicrophone(enabled: false) }
                    if speaking { try? await client.setSpeaking(true) }
                }
            }
        case .roomParticipantsUpdated(let roomID, let participants) where roomID == options.room:
            updateMembers(participants.map(\.id))
        case .leftRoom(let roomID, let userID) where roomID == options.room:
            removeMember(userID, reason: "left")
        case .signal(let signal):
            handle(signal)
        case .microphoneToggled(let userID, let roomID, let enabled) where roomID == options.room:
            events.append(enabled ? "mic-on" : "mic-off", participant: userID)
        case .speaking(let userID, let roomID, let speaking) where roomID == options.room && userID != options.id:
            events.append(speaking ? "speaking-announced" : "silence-announced", participant: userID)
        case .error(let text):
            logger.warning("room server error: \(text)")
        default:
            break
        }
    }

    private func updateMembers(_ ids: [String]) {
        let now = MonotonicTime.now()
        let current = Set(ids).subtracting([options.id])
        for id in current.subtracting(roomMembers) {
            events.append("join", participant: id)
            logger.info("participant \(id) joined")
        }
        for id in roomMembers.subtracting(current) { removeMember(id, reason: "left") }
        roomMembers = current
        for id in current where peers[id] == nil {
            let peer = makePeer(id: id, offerDeadline: now + options.offerDelay)
            peers[id] = peer
            createDriver(for: peer)
        }
    }

    private func removeMember(_ id: String, reason: String) {
        guard roomMembers.remove(id) != nil || peers[id] != nil else { return }
        events.append("leave", participant: id, fields: ["reason": reason])
        logger.info("participant \(id) \(reason)")
        closePeer(id)
    }

    private func closePeer(_ id: String) {
        guard let peer = peers.removeValue(forKey: id) else { return }
        roomMix?.removeParticipant(id)
        metrics.remove(id)
        if peer.driver != nil {
            var final = peer.statistics()
            final.connectionState = "closed"
            do {
                closedStatsJSON.append(try StatsSnapshot.encodeClosed(final))
                if closedStatsJSON.count > Self.keptDepartures { closedStatsJSON.removeFirst() }
            } catch {
                logger.warning("could not encode the final statistics of \(id): \(error)")
            }
        }
        sendBye(peer)
        peer.finishRecording()
        peer.phase = .closed
        if peer.packetsReceived > 0 || peer.driver != nil {
            departed.append(summary(peer))
            if departed.count > Self.keptDepartures {
                departed.removeFirst()
                forgottenDepartures += 1
            }
        }
        if let driver = peer.driver { Task { await driver.close() } }
    }

    /// Signals dropped: addressed to someone else, from someone not in the room (or who left), or
    /// over the offer rate limit.
    private(set) var ignoredSignals = 0
    static let maximumOffersPerWindow = 20

    /// Handles a message as if the room server had sent it (tests).
    func inject(_ message: ServerMessage) async {
        try? await loop.submit { self.handle(message) }.get()
    }

    var ignoredSignalCount: Int {
        get async { (try? await loop.submit { self.ignoredSignals }.get()) ?? 0 }
    }

    private func handle(_ signal: WebRTCSignal) {
        guard signal.to == options.id else { ignoredSignals += 1; return }
        guard roomMembers.contains(signal.from) || peers[signal.from] != nil else {
            ignoredSignals += 1
            logger.warning("ignored a signal from \(signal.from), who is not in room \(options.room)")
            return
        }
        let peer: RemotePeer
        if let existing = peers[signal.from] {
            peer = existing
        } else {
            peer = makePeer(id: signal.from, offerDeadline: .now() + options.offerDelay)
            peers[signal.from] = peer
            createDriver(for: peer)
        }
        let pending: RemotePeer.PendingSignal
        switch signal.data {
        case .offer(let sdp):
            // A flood of offers from one participant is cut off (each would renegotiate): at most
            // `maximumOffersPerWindow` per `offerWindow`; of the rest only the newest is kept, and
            // answered when the window ends (a legitimate offer after a flood is not lost).
            let now = MonotonicTime.now()
            if now - peer.offerWindowStart >= options.offerWindow {
                peer.offerWindowStart = now
                peer.offersInWindow = 0
            }
            peer.offersInWindow += 1
            guard peer.offersInWindow <= Self.maximumOffersPerWindow else {
                ignoredSignals += 1
                if peer.offersInWindow == Self.maximumOffersPerWindow + 1 {
                    logger.warning("\(peer.id) sends too many offers (over \(Self.maximumOffersPerWindow) in \(options.offerWindow)): only the last one will be answered, when the window ends")
                }
                peer.deferredOffer = sdp
                return
            }
            pending = .offer(sdp)
        case .answer(let sdp): pending = .answer(sdp)
        case .candidate(let candidate):
            pending = candidate.candidate.isEmpty ? .endOfCandidates : .candidate(candidate.candidate)
        case .renegotiate, .transceiverRequest, .unknown:
            logger.debug("ignored signal \(signal.data) from \(signal.from)")
            return
        }
        guard peer.driver != nil else {
            if peer.pendingSignals.count < 256 { peer.pendingSignals.append(pending) }
            return
        }
        apply(pending, to: peer)
    }

    private func apply(_ signal: RemotePeer.PendingSignal, to peer: RemotePeer) {
        guard let driver = peer.driver else { return }
        let now = MonotonicTime.now()
        switch signal {
        case .offer(let sdp):
            let hostnames = driver.withCoreOnLoop { core -> [Candidate] in
                if core.signalingState == .haveLocalOffer {
                    logger.info("glare with \(peer.id): rolling back our offer and answering theirs")
                    core.rollback()
                }
                do {
                    let offer = try SessionDescription(parsing: sdp)
                    // A renegotiation or ICE restart of a working connection keeps it (DTLS and SRTP stay up).
                    let established = core.isConnected && peer.phase == .connected
                    let restartsBefore = core.iceRestarts
                    let answer = try core.acceptOffer(offer, now: now)
                    if !established {
                        peer.phase = .answering
                        peer.connectDeadline = now + .seconds(10)
                    }
                    send(.answer(sdp: answer.serialized()), to: peer.id)
                    // Trickle: the candidates gathered before the answer go right after it.
                    if options.trickle { for candidate in core.localCandidates { sendCandidate(candidate, to: peer.id) } }
                    if core.iceRestarts > restartsBefore {
                        logger.notice("\(peer.id) restarted ICE: answered with new credentials")
                        events.append("ice-restart-answered", participant: peer.id)
                        peer.iceRestartDue = nil
                        peer.iceRestartDeadline = now + options.iceRestartTimeout
                    }
                    return core.remoteTransport?.candidates.filter(\.address.isMulticastDNSName) ?? []
                } catch {
                    logger.warning("refused the offer of \(peer.id): \(error)")
                    return []
                }
            }
            for candidate in hostnames { resolveMDNS(candidate, for: peer) }
        case .answer(let sdp):
            let hostnames = driver.withCoreOnLoop { core -> [Candidate] in
                do {
                    try core.setRemoteAnswer(try SessionDescription(parsing: sdp), now: now)
                    return core.remoteTransport?.candidates.filter(\.address.isMulticastDNSName) ?? []
                } catch {
                    logger.warning("refused the answer of \(peer.id): \(error)")
                    return []
                }
            }
            for candidate in hostnames { resolveMDNS(candidate, for: peer) }
        case .candidate(let text):
            do {
                let candidate = try Candidate(parsing: text)
                if candidate.address.isMulticastDNSName {
                    resolveMDNS(candidate, for: peer)
                    return
                }
                driver.withCoreOnLoop { $0.addRemoteCandidate(candidate) }
            } catch {
                logger.debug("ignored a bad candidate from \(peer.id): \(error)")
            }
        case .endOfCandidates:
            driver.withCoreOnLoop { $0.endOfRemoteCandidates() }
        }
    }

    /// Resolves a browser's `<uuid>.local` candidate (RFC 8828) with a one-shot mDNS query and adds it
    /// with the address; a name nobody answers for drops that candidate only.
    private func resolveMDNS(_ candidate: Candidate, for peer: RemotePeer) {
        let name = candidate.address.description
        mdns.resolve(name) { [self] address in
            guard peers[peer.id] === peer, peer.phase != .closed, let driver = peer.driver else { return }
            guard let address else {
                peer.mdnsDropped += 1
                logger.info("dropped the mDNS candidate \(name) of \(peer.id): no answer within \(options.mdnsTimeout)")
                return
            }
            peer.mdnsResolved += 1
            var resolved = candidate
            resolved.address = .ip(address)
            logger.debug("resolved the mDNS candidate \(name) of \(peer.id) to \(address)")
            driver.withCoreOnLoop { $0.addRemoteCandidate(resolved) }
        }
    }

    private func send(_ data: SimplePeerSignal, to peer: String) {
        Task { [client, logger] in
            do { try await client.sendSignal(to: peer, data: data) } catch {
                logger.warning("could not signal \(peer): \(error)")
            }
        }
    }

    // MARK: Peer connections

    /// Participant `id`'s current peer object (call on `loop`; for tests).
    func currentPeer(of id: String) -> RemotePeer? { peers[id] }

    private func makePeer(id: String, offerDeadline: MonotonicTime) -> RemotePeer {
        nextPeerSerial += 1
        return RemotePeer(id: id, offerDeadline: offerDeadline, serial: nextPeerSerial)
    }

    private func createDriver(for peer: RemotePeer) {
        var configuration = PeerConnectionConfiguration(certificate: certificate, ice: options.ice, stunServers: options.stunServers,
                                                        sendsAudio: sendsAudio, trickle: options.trickle)
        configuration.ice.seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        configuration.turnServers = options.turnServers
        configuration.iceTransportPolicy = options.iceTransportPolicy
        let interfaces = options.interfaces
        let sharedPort = options.sharedPort
        var sockets = PeerConnectionDriver.defaultSocketConfiguration
        sockets.portRange = options.portRange
        let id = peer.id, serial = peer.serial
        // The driver's events run on `loop`, where the peer is confined (hence `nonisolated(unsafe)`):
        // the handler holds the peer it was made for, so a media packet costs no lookup by participant
        // id (a string hash and two cache misses per packet). The driver lets go of its handler when it
        // is closed, and every driver is (leave, restarted negotiation, replaced peer, stop).
        nonisolated(unsafe) let owner = peer
        Task {
            do {
                let onEvent: @Sendable (PeerConnectionEvent) -> Void = { [weak self] event in self?.handlePeerEvent(owner, event) }
                let driver = if let sharedPort {
                    try await PeerConnectionDriver.start(configuration: configuration, sharedPort: sharedPort, eventLoop: loop, onEvent: onEvent)
                } else {
                    try await PeerConnectionDriver.start(configuration: configuration, interfaces: interfaces, sockets: sockets,
                                                         eventLoop: loop, onEvent: onEvent)
                }
                loop.execute { self.attach(driver, to: id, serial: serial) }
            } catch {
                logger.error("could not open sockets for \(id): \(error)")
            }
        }
    }

    private func attach(_ driver: PeerConnectionDriver, to id: String, serial: Int) {
        // The peer this driver was made for, not a newer one of the same participant.
        guard let peer = peers[id], peer.serial == serial, peer.phase != .closed else {
            Task { await driver.close() }
            return
        }
        peer.driver = driver
        let pending = peer.pendingSignals
        peer.pendingSignals = []
        for signal in pending { apply(signal, to: peer) }
    }

    private func offer(to peer: RemotePeer) {
        guard let driver = peer.driver, peer.phase == .waitingForOffer || peer.phase == .offering else { return }
        driver.withCoreOnLoop { core in
            if core.signalingState == .haveLocalOffer { core.rollback() }
            guard core.signalingState == .stable, core.audio == nil else { return }
            do {
                let offer = try core.createOffer(now: .now())
                peer.phase = .offering
                peer.offerAttempts += 1
                // Browsers drop offers that arrive before their microphone is open: offer again later if unanswered.
                peer.offerDeadline = .now() + .seconds(4)
                peer.connectDeadline = .now() + .seconds(10)
                send(.offer(sdp: offer.serialized()), to: peer.id)
                logger.info("offered to \(peer.id) (attempt \(peer.offerAttempts))")
                if options.trickle { for candidate in core.localCandidates { sendCandidate(candidate, to: peer.id) } }
            } catch {
                logger.warning("could not offer to \(peer.id): \(error)")
            }
        }
    }

    /// A negotiation that did not connect in time (lost signals, or glare where the other side also
    /// gave way) is started over on a fresh connection, offering after a short random wait.
    private func restartNegotiation(_ stale: RemotePeer, now: MonotonicTime) {
        guard stale.restarts < 5 else { return }
        logger.notice("no connection with \(stale.id) after negotiating; starting over")
        events.append("renegotiating", participant: stale.id)
        stale.phase = .closed
        if let driver = stale.driver { Task { await driver.close() } }
        let fresh = makePeer(id: stale.id, offerDeadline: now + .milliseconds(Int64.random(in: 200...1500, using: &rng)))
        fresh.restarts = stale.restarts + 1
        peers[stale.id] = fresh
        createDriver(for: fresh)
    }

    private func sendCandidate(_ candidate: Candidate, to peer: String) {
        send(.candidate(ICECandidateInit(candidate: candidate.description, sdpMLineIndex: 0, sdpMid: "0")), to: peer)
    }

    /// On the loop, for every event of the driver made for `peer` (its handler holds the peer object).
    /// The events of a driver whose peer object was closed are dropped and counted: a peer object that
    /// left `peers` (replaced by a rejoin or a restarted negotiation, or removed at leave) is closed, as
    /// is every peer once the bot stops; a late `.connected` or `.rtp` of an old connection must not
    /// touch the new one or its file.
    func handlePeerEvent(_ peer: RemotePeer, _ event: PeerConnectionEvent) {
        guard peer.phase != .closed else {
            staleDriverEvents += 1
            return
        }
        let id = peer.id
        let now = MonotonicTime.now()
        switch event {
        case .localCandidate(let candidate):
            // Candidates gathered before the first description are sent right after it (see offer/answer).
            if options.trickle, peer.phase == .offering || peer.phase == .answering || peer.phase == .connected {
                sendCandidate(candidate, to: id)
            }
        case .gatheringComplete:
            break
        case .iceStateChanged(let state):
            logger.info("ICE with \(id): \(state)")
        case .selectedPairChanged(let pair):
            logger.info("ICE pair with \(id): \(pair.localBase) -> \(pair.remoteAddress)")
            if peer.iceRestartDeadline != nil || peer.iceRestartDue != nil {
                peer.iceRestartDeadline = nil
                peer.iceRestartDue = nil
                peer.iceRestartAttempts = 0
                logger.notice("ICE restart with \(id) done: media on \(pair.localBase) -> \(pair.remoteAddress)")
                events.append("ice-restarted", participant: id, fields: ["pair": "\(pair.localBase) -> \(pair.remoteAddress)"])
            }
        case .connected(let profile):
            peer.phase = .connected
            events.append("connected", participant: id, fields: ["srtp": "\(profile)"])
            logger.info("connected to \(id) (\(profile))")
            startSending(to: peer, now: now)
        case .rtp(let packet):
            receive(packet, from: peer, now: now)
        case .rtcp(let compound):
            for packet in compound.packets {
                if case .senderReport(let report) = packet {
                    _ = peer.receiveStream.receiveSenderReport(report, arrival: now)
                    peer.oggRecorder.object?.receiveSenderReport(report)
                }
            }
            // Report blocks about our stream come in RRs, and in SRs from peers that also send (browsers): RTT and loss.
            _ = peer.sendStream?.receiveRTCP(compound.packets, arrival: now, wallclock: wallclock())
        case .failed(let error):
            logger.warning("connection with \(id) failed: \(error)")
            events.append("connection-failed", participant: id, fields: ["error": "\(error)"])
            // Consent lost or ICE failed on an established connection: this side restarts ICE.
            if error == .consentLost || error == .iceFailed, peer.phase == .connected,
               peer.iceRestartDue == nil, peer.iceRestartDeadline == nil {
                peer.iceRestartDue = now
            }
        case .closed:
            break
        }
    }

    private func wallclock() -> NTPTime { NTPTime(unixSeconds: Date().timeIntervalSince1970) }

    private func startSending(to peer: RemotePeer, now: MonotonicTime) {
        guard let core = peer.core, let audio = core.audio, audio.sends, peer.sendStream == nil else { return }
        let configuration = RTPSendStreamConfiguration(
            ssrc: SSRC(rawValue: core.configuration.ssrc), payloadType: PayloadType(rawValue: audio.codec.payloadType) ?? 111,
            cname: core.configuration.cname, mid: audio.mid,
            audioLevelExtensionID: audio.extensions.audioLevel, midExtensionID: audio.extensions.mid,
            reducedSizeRTCP: audio.rtcpReducedSize)
        peer.sendStream = RTPSendStream(configuration: configuration, start: now, using: &rng)
        sendingPeers.append(peer)  // from the next tick, not the next housekeeping
    }

    private func receive(_ packet: RTPPacket, from peer: RemotePeer, now: MonotonicTime) {
        // Packets still in flight after leave/stop are not recorded: the file is final.
        guard !stopped, peer.phase != .closed else { return }
        _ = peer.receiveStream.receive(packet, arrival: now)
        peer.packetsReceived += 1
        peer.payloadBytesReceived += packet.payload.count
        peer.lastPacketAt = now
        if peer.firstAudioAt == nil {
            peer.firstAudioAt = now
            events.append("first-audio", participant: peer.id)
        }
        let stereo = packet.payload.first.map { $0 & 0x04 != 0 } ?? false
        peer.openRecorder(directory: options.recordDirectory, format: options.format, stereo: stereo)
        peer.record(packet, now: now)
        peer.recordedSinceHousekeeping = true
        if let roomMix {
            do { try roomMix.receive(participant: peer.id, packet, arrival: now) } catch {
                logger.error("room mix: \(error); mixing stopped")
                self.roomMix = nil
            }
        }
        if let recordingError = peer.recordingError {
            logger.error("recording \(peer.id) failed: \(recordingError)")
            peer.recordingError = nil
            peer.finishRecording()
        }
        if let id = peer.core?.audioLevelExtensionID, let element = packet.headerExtensionElement(id: id),
           let level = try? AudioLevelExtension.parse(from: element) {
            peer.lastLevel = level.level
            peer.levelSinceHousekeeping = true
            if let event = peer.talk.add(level: level.level, at: now) { speakingChanged(peer, event) }
        }
        if case .echo = options.audio { echoFrame = Array(packet.payload) }
    }

    private func speakingChanged(_ peer: RemotePeer, _ event: TalkEvent) {
        if case .started = event { peer.speaking = true } else { peer.speaking = false }
        events.append(peer.speaking ? "speaking-start" : "speaking-stop", participant: peer.id)
    }

    private func sendBye(_ peer: RemotePeer) {
        guard let driver = peer.driver else { return }
        if var stream = peer.sendStream {
            let bye = stream.close(now: .now(), wallclock: wallclock(), reason: "peerd leaving")
            peer.sendStream = stream
            driver.withCoreOnLoop { $0.sendRTCP(bye) }
        } else if let reports = peer.receiverReports {
            // Receive-only: RR + SDES + BYE (RFC 3550 §6.6), once.
            peer.receiverReports = nil
            let blocks = peer.receiveStream.makeReportBlock(now: .now()).map { [$0] } ?? []
            let bye = reports.goodbye(reportBlocks: blocks, reason: "peerd leaving")
            driver.withCoreOnLoop { $0.sendRTCP(bye) }
        }
    }

    /// A connected participant we send nothing to still hears from us what we receive from it: RTCP
    /// receiver reports at the RFC 3550 interval (loss, jitter, LSR/DLSR for its round-trip time),
    /// as browsers send them for what they only receive.
    private func sendReceiverReport(to peer: RemotePeer, driver: PeerConnectionDriver, now: MonotonicTime) {
        if peer.receiverReports == nil, let core = peer.core {
            peer.receiverReports = RTCPReceiverReportSchedule(core: core, start: now, using: &rng)
        }
        if let rtcp = peer.receiverReports?.poll(now: now, receiving: &peer.receiveStream) { driver.sendRTCPOnLoop(rtcp) }
    }

    // MARK: Media clock

    /// Every 20 ms from a fixed origin (no drift): one frame out to every connected peer, and RTCP.
    /// Every 100 ms (`housekeepingTicks`) also recorder flushes, talk detection, negotiation deadlines
    /// (offers to participants who did not offer in time) and ICE supervision, for every peer.
    private func startMediaClock() {
        mediaStart = .now()
        frameIndex = 0
        scheduleNextFrame()
    }

    private func scheduleNextFrame() {
        guard !stopped else { return }
        frameIndex += 1
        let due = mediaStart + .milliseconds(20 * frameIndex)
        mediaTask = loop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, due.nanoseconds)))) { [self] in
            mediaTick(now: .now())
            scheduleNextFrame()
        }
    }

    /// The housekeeping (recorders' silence fill and flush, speaking detection, negotiation deadlines,
    /// ICE supervision) runs on every `housekeepingTicks`-th media tick: per participant a visit is as
    /// costly as a received packet (its state is cold), and 100 ms is finer than the talk detector's
    /// hysteresis, a recording's page flush and a negotiation's deadlines need. The ticks between
    /// visit only the peers we send to.
    static let housekeepingTicks: Int64 = 5

    private func mediaTick(now: MonotonicTime) {
        let housekeeping = frameIndex % Self.housekeepingTicks == 0
        let frame = nextOutgoingFrame(now: now)
        if let roomMix, now >= roomMixTickDue {
            roomMixTickDue = now + .milliseconds(100)
            do { try roomMix.tick(now: now) } catch {
                logger.error("room mix: \(error); mixing stopped")
                self.roomMix = nil
            }
        }
        if options.statsInterval > .zero, now >= nextStatsAt {
            nextStatsAt = now + options.statsInterval
            writeStats(now: now)
        }
        guard housekeeping else {
            for peer in sendingPeers where peer.phase == .connected {
                if let driver = peer.driver { sendFrame(frame, to: peer, driver: driver, now: now) }
            }
            return
        }
        sendingPeers.removeAll(keepingCapacity: true)
        for peer in Array(peers.values) {
            if peer.phase == .offering || peer.phase == .answering, let deadline = peer.connectDeadline, now >= deadline {
                restartNegotiation(peer, now: now)
                continue
            }
            guard let driver = peer.driver else { continue }
            if peer.phase == .waitingForOffer || peer.phase == .offering, now >= peer.offerDeadline, peer.offerAttempts < 5 {
                offer(to: peer)
            }
            if let sdp = peer.deferredOffer, now - peer.offerWindowStart >= options.offerWindow {
                peer.deferredOffer = nil
                peer.offerWindowStart = now
                peer.offersInWindow = 1
                logger.info("answering the last of \(peer.id)'s offers held back during its flood")
                apply(.offer(sdp), to: peer)
            }
            // Silence fill, idle flush and the talk detector's decay matter once packets stop.
            if !peer.recordedSinceHousekeeping { peer.tickRecorder(now: now) }
            if let failure = peer.recordingError {
                logger.error("recording \(peer.id) failed: \(failure)")
                peer.recordingError = nil
            }
            if !peer.levelSinceHousekeeping, let event = peer.talk.evaluate(now: now) { speakingChanged(peer, event) }
            peer.recordedSinceHousekeeping = false
            peer.levelSinceHousekeeping = false
            if peer.phase == .connected {
                superviseICE(peer, driver: driver, now: now)
                peer.refreshPrefetchHints()
            }
            guard peer.phase == .connected else { continue }
            guard peer.sendStream != nil else {
                sendReceiverReport(to: peer, driver: driver, now: now)
                continue
            }
            sendingPeers.append(peer)
            sendFrame(frame, to: peer, driver: driver, now: now)
        }
    }

    /// The tick's frame (or a skipped frame) and any RTCP due, to one connected peer with a send stream.
    private func sendFrame(_ frame: ([UInt8], UInt8)?, to peer: RemotePeer, driver: PeerConnectionDriver, now: MonotonicTime) {
        guard var stream = peer.sendStream else { return }
        if let (opus, level) = frame, let packet = stream.packetize(opusFrame: opus, level: level) {
            driver.sendRTPOnLoop(packet)
        } else {
            stream.skipFrame()
        }
        let blocks = peer.receiveStream.makeReportBlock(now: now).map { [$0] } ?? []
        if let rtcp = stream.pollRTCP(now: now, wallclock: wallclock(), reportBlocks: blocks) {
            driver.sendRTCPOnLoop(rtcp)
        }
        peer.sendStream = stream
    }

    /// Starts (or retries) an ICE restart when one is due: new credentials in an offer over signaling.
    /// Media keeps the old pair until the new checks select one.
    private func superviseICE(_ peer: RemotePeer, driver: PeerConnectionDriver, now: MonotonicTime) {
        if let deadline = peer.iceRestartDeadline, now >= deadline {
            peer.iceRestartDeadline = nil
            peer.iceRestartDue = now
        }
        guard let due = peer.iceRestartDue, now >= due else { return }
        guard peer.iceRestartAttempts < options.maximumICERestarts else {
            peer.iceRestartDue = nil
            logger.warning("gave up restarting ICE with \(peer.id) after \(peer.iceRestartAttempts) attempts")
            return
        }
        driver.withCoreOnLoop { core in
            // An unanswered offer of ours (an earlier attempt) is withdrawn.
            if core.signalingState == .haveLocalOffer { core.rollback() }
            guard core.signalingState == .stable else { return }
            do {
                try core.restartICE()
                let offer = try core.createOffer(now: now)
                peer.iceRestartDue = nil
                peer.iceRestartAttempts += 1
                peer.iceRestartDeadline = now + options.iceRestartTimeout
                send(.offer(sdp: offer.serialized()), to: peer.id)
                if options.trickle { for candidate in core.localCandidates { sendCandidate(candidate, to: peer.id) } }
                logger.notice("restarting ICE with \(peer.id) (attempt \(peer.iceRestartAttempts)): offered new credentials")
                events.append("ice-restart", participant: peer.id, fields: ["attempt": "\(peer.iceRestartAttempts)"])
            } catch {
                peer.iceRestartDue = now + .seconds(1)
                logger.warning("could not restart ICE with \(peer.id): \(error)")
            }
        }
    }

    /// Restarts ICE with `participant` now, as after a consent loss (operators and tests); false when
    /// there is no established connection with them.
    @discardableResult
    func restartICE(participant id: String) async -> Bool {
        (try? await loop.submit { () -> Bool in
            guard let peer = self.peers[id], peer.phase == .connected else { return false }
            peer.iceRestartDue = .now()
            peer.iceRestartDeadline = nil
            return true
        }.get()) ?? false
    }

    // MARK: Statistics

    /// getStats-shaped statistics of every current connection.
    func statistics() async -> [ConnectionStats] {
        (try? await loop.submit { self.currentStatistics() }.get()) ?? []
    }

    private func currentStatistics() -> [ConnectionStats] {
        let wallclock = Date()
        return peers.values.sorted { $0.id < $1.id }.map { $0.statistics(wallclock: wallclock) }
    }

    var statsPath: String? {
        options.statsPath ?? options.recordDirectory.map { ($0 as NSString).appendingPathComponent("stats.json") }
    }

    /// Updates the metrics and rewrites the stats file (atomically: readers never see half a file).
    private func writeStats(now: MonotonicTime) {
        let connections = currentStatistics()
        for stats in connections { metrics.update(stats) }
        guard let path = statsPath else { return }
        do {
            let json = try StatsSnapshot.json(peerd: options.id, room: options.room, time: ConsoleLogHandler.timeFormatter.string(from: Date()),
                                              connections: connections, closed: closedStatsJSON)
            try json.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.warning("could not write \(path): \(error)")
        }
    }

    /// The frame every peer gets this tick (encoded once), with its RFC 6464 level; nil when muted or silent.
    private func nextOutgoingFrame(now: MonotonicTime) -> ([UInt8], UInt8)? {
        if case .echo = options.audio {
            defer { echoFrame = nil }
            return muted ? nil : echoFrame.map { ($0, 30) }
        }
        guard var current = source, let frame = current.nextFrame() else { return nil }
        source = current
        switch frame {
        case .pcm(let pcm):
            let level = audioLevel(pcm: pcm)
            if let event = talk.add(level: muted ? 127 : level, at: now) { ownSpeaking(event.isStart) }
            guard !muted, let encoder, let opus = try? encoder.encode(pcm) else { return nil }
            return (opus, level)
        case .opus(let packet):
            if let event = talk.add(level: muted ? 127 : 40, at: now) { ownSpeaking(event.isStart) }
            return muted ? nil : (packet, 40)
        }
    }

    private func ownSpeaking(_ speaking: Bool) {
        guard speaking != selfSpeaking else { return }
        selfSpeaking = speaking
        events.append(speaking ? "speaking-start" : "speaking-stop", participant: options.id)
        Task { [client] in try? await client.setSpeaking(speaking) }
    }
}

extension TalkEvent {
    var isStart: Bool { if case .started = self { true } else { false } }
}
