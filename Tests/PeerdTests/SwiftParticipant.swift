import DTLS
import Foundation
import ICE
import Logging
import NIOCore
import NIOPosix
import PeerConnection
import RTP
import SDP
import Signaling
import Wire

/// A browser-like room participant built from peerd's own library modules, for tests that need
/// control a browser does not give: it offers to peerd as soon as it sees it, sends a tone, and
/// can announce its host candidate as a `<uuid>.local` mDNS name (published on a loopback
/// responder, as Chromium does), add an unresolvable mDNS candidate, and restart ICE.
///
/// Confinement: every mutable member is touched only on `loop`, which is why the
/// `@unchecked Sendable` is safe.
final class SwiftParticipant: @unchecked Sendable {
    struct Options {
        var trickle = true
        /// Publish the host candidate as an mDNS name on this responder (nil: plain IP candidates).
        var responder: LoopbackMDNSResponder?
        /// Also announce a `.local` candidate nobody answers for (with a higher priority).
        var unresolvableCandidate = false
        var tone = 660.0
        /// The audio level (RFC 6464, -dBov) its packets carry: 30 is quiet for the talk detector, 10 speech.
        var level: UInt8 = 30
        /// The participant it offers to: peerd's id in the test rooms. With two participants in the room,
        /// "the first other participant" was sometimes the other test participant, and then nobody
        /// offered to peerd (the shared-port tests let peerd offer after 1 s to get round it).
        var peer = "peerd-test"
        /// ICE timers (consent) of the participant's agent.
        var ice = ICEAgentConfiguration()
        /// Route every datagram through this relay (peerd's candidates are rewritten to it, ours to its other side).
        var proxy: CuttableUDPProxy?
    }

    let id: String
    let options: Options
    let loop: any EventLoop
    let client: RoomClient
    private(set) var driver: PeerConnectionDriver?
    private var eventsTask: Task<Void, Never>?
    private var peerdID: String?
    private var offered = false
    private var hostNames: [TransportAddress: String] = [:]
    let unresolvableName = "\(UUID().uuidString.lowercased()).local"
    private var sendStream: RTPSendStream?
    /// While true the participant sends no audio (as a muted browser track with DTX: nothing at all).
    var paused = false
    private var receiveStream = RTPReceiveStream()
    private var tone: ToneSource
    private let encoder: OpusEncoder
    private var mediaTask: RepeatedTask?
    private var rng = SystemRandomNumberGenerator()
    private(set) var packetsSent = 0
    private(set) var packetsReceived = 0
    private(set) var answers: [SessionDescription] = []
    private(set) var selectedPairs = 0
    /// RTCP from peerd: receiver reports with a block about our stream, and BYEs.
    private(set) var receiverReportBlocks = 0
    private(set) var goodbyes = 0
    /// The round-trip time our send stream computed from peerd's report blocks (LSR/DLSR), in seconds.
    var roundTripTime: Double? { sendStream?.feedback?.roundTripTime }
    private(set) var log: [String] = []

    private init(id: String, url: String, options: Options, loop: any EventLoop) throws {
        self.id = id
        self.options = options
        self.loop = loop
        client = RoomClient(configuration: .init(url: url, participant: Participant(id: id, name: id)),
                            logger: Logger(label: "test.participant"))
        tone = ToneSource(frequency: options.tone)
        encoder = try OpusEncoder(channels: 1, application: .voip, frameDuration: .ms20)
    }

    static func join(url: String, room: String, id: String, options: Options = Options()) async throws -> SwiftParticipant {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let participant = try SwiftParticipant(id: id, url: url, options: options, loop: loop)
        let configuration = PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ice: options.ice,
                                                        trickle: options.trickle, ssrc: 0x5157_0001)
        let driver = try await PeerConnectionDriver.start(configuration: configuration, interfaces: .loopbackOnly, eventLoop: loop) {
            [weak participant] event in participant?.handle(event)
        }
        try await loop.submit {
            participant.driver = driver
            for local in driver.sockets?.localAddresses ?? [] { participant.hostNames[local] = "\(UUID().uuidString.lowercased()).local" }
        }.get()
        if let responder = options.responder {
            for name in try await loop.submit({ Array(participant.hostNames.values) }).get() { try responder.publish(name) }
        }
        participant.eventsTask = Task {
            for await event in participant.client.events {
                participant.loop.execute { participant.handle(event, room: room) }
            }
        }
        await participant.client.start()
        try await participant.waitFor(seconds: 5) { await participant.client.isConnected }
        try await participant.client.join(room: room)
        return participant
    }

    func waitFor(seconds: Double, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func onLoop<T: Sendable>(_ body: @escaping @Sendable (SwiftParticipant) -> T) async -> T {
        try! await loop.submit { body(self) }.get()
    }

    func leave() async {
        try? await client.leave()
        await stop()
    }

    func stop() async {
        let driver = await onLoop { participant -> PeerConnectionDriver? in
            participant.mediaTask?.cancel()
            return participant.driver
        }
        await driver?.close()
        await client.stop()
        eventsTask?.cancel()
    }

    /// Restarts ICE toward peerd: new credentials in a new offer (and candidates, with trickle).
    func restartICE() async throws {
        try await loop.submit {
            guard let driver = self.driver, let peerdID = self.peerdID else { return }
            let offer = try driver.withCoreOnLoop { core -> SessionDescription in
                try core.restartICE()
                return try core.createOffer(now: .now())
            }
            self.sendOffer(offer, to: peerdID)
        }.get()
    }

    // MARK: Signaling

    private func handle(_ event: RoomClient.Event, room: String) {
        guard case .message(let message) = event else { return }
        switch message {
        case .roomParticipantsUpdated(let roomID, let participants) where roomID == room:
            guard !offered, participants.contains(where: { $0.id == options.peer }) else { return }
            offered = true
            peerdID = options.peer
            offer(to: options.peer)
        case .signal(let signal) where signal.to == id:
            handle(signal.data, from: signal.from)
        default:
            break
        }
    }

    private func offer(to peer: String) {
        guard let driver else { return }
        do {
            let offer = try driver.withCoreOnLoop { try $0.createOffer(now: .now()) }
            sendOffer(offer, to: peer)
        } catch {
            log.append("offer failed: \(error)")
        }
    }

    private func sendOffer(_ offer: SessionDescription, to peer: String) {
        var text = offer.serialized()
        if !options.trickle { text = rewriteCandidateLines(text) }
        send(.offer(sdp: text), to: peer)
        if options.trickle, let driver {
            let candidates = driver.withCoreOnLoop { $0.localCandidates }
            for candidate in candidates { for announced in announced(candidate) { sendCandidate(announced, to: peer) } }
        }
    }

    private func handle(_ data: SimplePeerSignal, from peer: String) {
        guard let driver else { return }
        do {
            switch data {
            case .answer(let sdp):
                let answer = try SessionDescription(parsing: sdp)
                answers.append(answer)
                try driver.withCoreOnLoop { try $0.setRemoteAnswer(answer, now: .now()) }
            case .offer(let sdp):
                let answer = try driver.withCoreOnLoop { try $0.acceptOffer(try SessionDescription(parsing: sdp), now: .now()) }
                send(.answer(sdp: answer.serialized()), to: peer)
            case .candidate(let candidate) where !candidate.candidate.isEmpty:
                var parsed = try Candidate(parsing: candidate.candidate)
                if let proxy = options.proxy {
                    // Only peerd's IPv4 host candidate, reached through the relay.
                    guard parsed.type == .host, let address = parsed.transportAddress, address.ip.isIPv4 else { return }
                    proxy.setBotAddress(address)
                    parsed.address = .ip(proxy.participantFacing.ip)
                    parsed.port = proxy.participantFacing.port
                }
                driver.withCoreOnLoop { $0.addRemoteCandidate(parsed) }
            default:
                break
            }
        } catch {
            log.append("signal from \(peer) failed: \(error)")
        }
    }

    /// How a local candidate is announced: under its mDNS name when a responder publishes it, plus
    /// (once per host candidate) an unresolvable `.local` candidate with a higher priority.
    private func announced(_ candidate: Candidate) -> [Candidate] {
        guard candidate.type == .host, let address = candidate.transportAddress else { return [candidate] }
        if let proxy = options.proxy {
            var relayed = candidate
            relayed.address = .ip(proxy.botFacing.ip)
            relayed.port = proxy.botFacing.port
            return [relayed]
        }
        var result: [Candidate] = []
        if options.unresolvableCandidate {
            var bogus = candidate
            bogus.address = .hostname(unresolvableName)
            bogus.port = 9
            bogus.foundation = "999"
            bogus.priority = candidate.priority + 1000
            result.append(bogus)
        }
        var named = candidate
        if options.responder != nil, let name = hostNames[address] { named.address = .hostname(name) }
        result.append(named)
        return result
    }

    private func rewriteCandidateLines(_ sdp: String) -> String {
        guard let driver else { return sdp }
        let candidates = driver.withCoreOnLoop { $0.localCandidates }
        var text = sdp
        for candidate in candidates {
            let line = "a=" + candidate.description
            let replacement = announced(candidate).map { "a=" + $0.description }.joined(separator: "\r\n")
            text = text.replacingOccurrences(of: line, with: replacement)
        }
        return text
    }

    private func send(_ data: SimplePeerSignal, to peer: String) {
        Task { [client] in try? await client.sendSignal(to: peer, data: data) }
    }

    private func sendCandidate(_ candidate: Candidate, to peer: String) {
        send(.candidate(ICECandidateInit(candidate: candidate.description, sdpMLineIndex: 0, sdpMid: "0")), to: peer)
    }

    // MARK: Media

    private func handle(_ event: PeerConnectionEvent) {
        switch event {
        case .connected:
            startMedia()
        case .selectedPairChanged:
            selectedPairs += 1
        case .rtp(let packet):
            _ = receiveStream.receive(packet, arrival: .now())
            packetsReceived += 1
        case .rtcp(let compound):
            for case .senderReport(let report) in compound.packets { _ = receiveStream.receiveSenderReport(report, arrival: .now()) }
            let ours = sendStream?.configuration.ssrc
            for case .receiverReport(let report) in compound.packets where report.reportBlocks.contains(where: { $0.ssrc == ours }) {
                receiverReportBlocks += 1
            }
            goodbyes += compound.packets.filter { if case .goodbye = $0 { true } else { false } }.count
            _ = sendStream?.receiveRTCP(compound.packets, arrival: .now(), wallclock: NTPTime(unixSeconds: Date().timeIntervalSince1970))
        default:
            break
        }
    }

    private func startMedia() {
        guard mediaTask == nil, let driver, let audio = driver.core.audio else { return }
        let core = driver.core
        let configuration = RTPSendStreamConfiguration(
            ssrc: SSRC(rawValue: core.configuration.ssrc), payloadType: PayloadType(rawValue: audio.codec.payloadType) ?? 111,
            cname: core.configuration.cname, mid: audio.mid, audioLevelExtensionID: audio.extensions.audioLevel,
            midExtensionID: audio.extensions.mid, reducedSizeRTCP: audio.rtcpReducedSize)
        sendStream = RTPSendStream(configuration: configuration, start: .now(), using: &rng)
        mediaTask = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { [self] _ in sendFrame() }
    }

    private func sendFrame() {
        guard let driver, var stream = sendStream, case .pcm(let pcm)? = tone.nextFrame(), let opus = try? encoder.encode(pcm) else { return }
        let now = MonotonicTime.now()
        if paused {
            stream.skipFrame()
        } else if let packet = stream.packetize(opusFrame: opus, level: options.level) {
            driver.withCoreOnLoop { $0.sendRTP(packet) }
            packetsSent += 1
        }
        let blocks = receiveStream.makeReportBlock(now: now).map { [$0] } ?? []
        if let rtcp = stream.pollRTCP(now: now, wallclock: NTPTime(unixSeconds: Date().timeIntervalSince1970), reportBlocks: blocks) {
            driver.withCoreOnLoop { $0.sendRTCP(rtcp) }
        }
        sendStream = stream
    }
}
