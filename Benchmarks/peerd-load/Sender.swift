import CLoadInject
import DTLS
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ICE
import NIOCore
import NIOPosix
import PeerConnection
import RTP
import SDP
import Wire

/// One sending peer: a real `PeerConnectionCore` (ICE controlling, DTLS client, SRTP) and an
/// `RTPSendStream` sending a pre-encoded 20 ms Opus frame every 20 ms.
final class SenderPeer {
    enum State { case idle, offered, connected, failed }
    let index: Int
    let core: PeerConnectionCore
    /// Its own socket when the receiver puts every connection on one shared port (then the
    /// receiver's address no longer tells the connections apart, so each sender needs its own).
    var sockets: UDPSocketSet?
    /// That socket's descriptor (NIO reads it; the farm writes to it with `sendto(2)`), or -1.
    var descriptor: CInt = -1
    var state = State.idle
    var stream: RTPSendStream?
    var sent = 0
    var frame = 0
    /// Raw mode (the C reference receiver): SRTP with keys derived from the index, sent straight
    /// from the peer's socket to the receiver, with no ICE or DTLS.
    var raw: (srtp: SRTPSession, local: TransportAddress, remote: TransportAddress)?
    /// Prepared RTP packets, SRTP-protected before sending started (`SenderFarm.prepare`), one
    /// after another in `prepared.bytes`; packet k ends at `prepared.ends[k]`. Sent in order, one
    /// per frame, to `prepared.remote`; live packetizing takes over when they run out.
    var prepared: (bytes: [UInt8], ends: [Int32], remote: TransportAddress)?
    var nextPrepared = 0
    /// The peer's own IPv4 socket address (host order), as the source of its injected packets.
    var injectionSource: (ip: UInt32, port: UInt16)?

    init(index: Int, core: PeerConnectionCore) {
        self.index = index
        self.core = core
    }
}

/// N sending peers on one event loop sharing ONE UDP socket (demultiplexed by the receiver's
/// address, which differs per connection since peerd binds a socket per connection). One socket
/// lets NIO batch the sends of a tick into sendmmsg, so the senders stay cheaper than the
/// receiver they load. Stream `i` sends in 1 ms slot `i % 20` of every 20 ms, spreading the load.
///
/// With a socket per peer (a receiver on one shared port tells the connections apart by their
/// source), sends cannot be batched across sockets: the farm makes each socket itself, lets NIO
/// read it (`UDPSocketSet.adopt`) and writes every datagram with one `sendto(2)` on it, without
/// NIO's write path (an envelope, a buffer and a pending-write queue per datagram cost about
/// twice the kernel's send in `perf`, and the senders must outrun the receiver they load).
///
/// Thread-safety: every mutable member is touched only on `loop`; that is why the
/// `@unchecked Sendable` is safe.
final class SenderFarm: @unchecked Sendable {
    let loop: any EventLoop
    let certificate: DTLSCertificate
    let frames: [[UInt8]]
    let count: Int
    let maxInFlight: Int
    /// A socket per sending peer (for a receiver on one shared port) instead of one for all.
    let socketPerPeer: Bool
    let srtpProfiles: [SRTPProfile]
    private(set) var sockets: UDPSocketSet?
    private var peerSockets: [UDPSocketSet] = []
    private var peerDescriptors: [CInt] = []
    private var local = TransportAddress(ip: .v4(0x7F00_0001), port: 0)
    private(set) var peers: [SenderPeer] = []
    private var byRemote: [TransportAddress: SenderPeer] = [:]
    private var slots: [[SenderPeer]] = Array(repeating: [], count: 20)
    private var nextToOffer = 0
    private var inFlight = 0
    private(set) var connected = 0
    /// The SRTP profile each connection negotiated, counted.
    private(set) var negotiatedProfiles: [SRTPProfile: Int] = [:]
    private(set) var failed = 0
    private(set) var unknownSource = 0
    /// Datagrams `sendto(2)` refused (a full send buffer): counted as sent all the same, so a
    /// refused packet shows as lost at the receiver, never as a loss hidden from it.
    private(set) var sendErrors = 0
    /// With a socket per peer, prepared packets are written by `PacketInjector` (one AF_PACKET
    /// socket on loopback, `sendmmsg` batches) instead of a `sendto(2)` each, when it can open.
    let injectsPackets: Bool
    private var injector: PacketInjector?
    /// Whether the injector is in use (it needs CAP_NET_RAW).
    var injecting: Bool { injector != nil }
    /// Why the injector could not open, when asked for.
    private(set) var injectorError: String?
    private(set) var totalSent = 0
    private var sweepTask: RepeatedTask?
    private var sweepCount = 0
    private var sendTask: RepeatedTask?
    private var sendStart = MonotonicTime.zero
    private var lastSlot: Int64 = -1
    private var rng = SystemRandomNumberGenerator()
    /// Where offers go (the receiver's stdin).
    var sendOffer: (Int, String) -> Void = { _, _ in }

    init(count: Int, loop: any EventLoop, certificate: DTLSCertificate, frames: [[UInt8]], maxInFlight: Int = 32,
         socketPerPeer: Bool = false, injectsPackets: Bool = false, srtpProfiles: [SRTPProfile] = SRTPProfile.defaultPreference) {
        self.count = count
        self.injectsPackets = injectsPackets
        self.srtpProfiles = srtpProfiles
        self.socketPerPeer = socketPerPeer
        self.loop = loop
        self.certificate = certificate
        self.frames = frames
        self.maxInFlight = maxInFlight
    }

    func bind() async throws {
        if socketPerPeer {
            var bound: [UDPSocketSet] = []
            var descriptors: [CInt] = []
            for index in 0..<count {
                let descriptor = try UDPSocketSet.boundSocket(TransportAddress(ip: .v4(0x7F00_0001), port: 0))
                // NIO owns the descriptor from here (it closes it in `close()`, also if this fails).
                bound.append(try await UDPSocketSet.adopt(
                    boundSockets: [descriptor], configuration: .init(vectorReadMessageCount: 4),
                    eventLoop: loop, onReceive: { [self] in receive($0, peer: index) }, onReadComplete: {}))
                descriptors.append(descriptor)
            }
            try await loop.submit { [self, bound, descriptors] in
                peerSockets = bound
                peerDescriptors = descriptors
                if injectsPackets {
                    do { injector = try PacketInjector() } catch { injectorError = "\(error)" }
                }
            }.get()
            return
        }
        let sockets = try await UDPSocketSet.bind(
            addresses: [.v4(0x7F00_0001)], configuration: .init(vectorReadMessageCount: 32, socketBufferBytes: 16 << 20),
            eventLoop: loop, onReceive: { [self] in receive($0) }, onReadComplete: { [self] in flush() })
        try await loop.submit { [self] in
            self.sockets = sockets
            local = sockets.localAddresses[0]
        }.get()
    }

    /// Creates the peers and starts offering (at most `maxInFlight` handshakes at a time).
    func beginConnecting() {
        loop.preconditionInEventLoop()
        for index in 0..<count {
            var configuration = PeerConnectionConfiguration(certificate: certificate, srtpProfiles: srtpProfiles, sendsAudio: true, trickle: false)
            configuration.ice.seed = UInt64.random(in: 0...UInt64.max)
            let core = PeerConnectionCore(configuration: configuration)
            let peer = SenderPeer(index: index, core: core)
            if socketPerPeer {
                peer.sockets = peerSockets[index]
                peer.descriptor = peerDescriptors[index]
                peer.injectionSource = Self.injectionSource(peerSockets[index])
                core.addHostCandidates(peerSockets[index].localAddresses)
            } else {
                core.addHostCandidates([local])
            }
            core.endOfLocalCandidates()
            peers.append(peer)
        }
        sweepTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { [self] _ in sweep() }
        offerMore()
    }

    var settled: Bool { connected + failed == count }

    /// Stream `index`'s AEAD_AES_256_GCM master key (32 bytes) and salt (12), as
    /// `Benchmarks/c/reference_receiver.c` derives them.
    static func rawKeys(index: Int) -> (key: [UInt8], salt: [UInt8]) {
        ((0..<32).map { UInt8((index * 7 + $0 * 13 + 1) & 0xFF) }, (0..<12).map { UInt8((index * 11 + $0 * 3 + 5) & 0xFF) })
    }

    /// SSRC of stream `index` in raw mode (the C reference receiver finds the stream by it).
    static func rawSSRC(index: Int) -> UInt32 { 0x5000_0000 + UInt32(index) }

    /// Raw mode: every peer "connected" at once, sending SRTP (keys from `rawKeys`) from its own
    /// socket to `receiver` (needs a socket per peer).
    func connectRaw(to receiver: TransportAddress) throws {
        loop.preconditionInEventLoop()
        precondition(socketPerPeer, "raw mode sends from a socket per peer")
        for index in 0..<count {
            let configuration = PeerConnectionConfiguration(certificate: certificate, srtpProfiles: srtpProfiles, sendsAudio: true, trickle: false)
            let peer = SenderPeer(index: index, core: PeerConnectionCore(configuration: configuration))
            peer.sockets = peerSockets[index]
            peer.descriptor = peerDescriptors[index]
            peer.injectionSource = Self.injectionSource(peerSockets[index])
            let keys = Self.rawKeys(index: index)
            // The sender's local keys are the receiver's remote ones; the other half is unused.
            let material = SRTPKeyingMaterial(localKey: keys.key, localSalt: keys.salt, remoteKey: keys.key, remoteSalt: keys.salt)
            peer.raw = (try SRTPSession(profile: .aeadAes256Gcm, keys: material), peerSockets[index].localAddresses[0], receiver)
            let streamConfiguration = RTPSendStreamConfiguration(
                ssrc: SSRC(rawValue: Self.rawSSRC(index: index)), payloadType: 111, cname: "load-\(index)", mid: "0",
                audioLevelExtensionID: 1, midExtensionID: 9, reducedSizeRTCP: true)
            peer.stream = RTPSendStream(configuration: streamConfiguration, start: .now(), using: &rng)
            peer.state = .connected
            connected += 1
            negotiatedProfiles[.aeadAes256Gcm, default: 0] += 1
            slots[index % 20].append(peer)
            peers.append(peer)
        }
    }

    /// Protects and sends one raw-mode packet from the peer's socket.
    private func sendRaw(_ peer: SenderPeer, _ packet: [UInt8], rtcp: Bool) {
        guard let raw = peer.raw else { return }
        var bytes = packet
        do {
            if rtcp { try raw.srtp.protectRTCP(&bytes) } else { try raw.srtp.protectRTP(&bytes) }
        } catch {
            return
        }
        send(bytes, to: raw.remote, from: peer)
    }

    /// One datagram from the peer's own socket, straight to the kernel (IPv4; anything else, or a
    /// peer without a descriptor, goes through NIO).
    private func send(_ bytes: [UInt8], to remote: TransportAddress, from peer: SenderPeer) {
        bytes.withUnsafeBytes { send($0, to: remote, from: peer) }
    }

    private func send(_ bytes: UnsafeRawBufferPointer, to remote: TransportAddress, from peer: SenderPeer) {
        guard peer.descriptor >= 0, case .v4(let ip) = remote.ip else {
            if let own = peer.sockets, let from = own.localAddresses.first {
                try? own.send(Array(bytes), from: from, to: remote)
                own.flush()
            } else if let sockets {
                try? sockets.send(Array(bytes), from: local, to: remote)  // the farm's one socket: flushed with the tick's batch
            }
            return
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = remote.port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(peer.descriptor, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if sent < 0 { sendErrors += 1 }
    }

    private static func injectionSource(_ sockets: UDPSocketSet) -> (ip: UInt32, port: UInt16)? {
        guard let local = sockets.localAddresses.first, case .v4(let ip) = local.ip else { return nil }
        return (ip, local.port)
    }

    private func offerMore() {
        while inFlight < maxInFlight, nextToOffer < count {
            let peer = peers[nextToOffer]
            nextToOffer += 1
            do {
                let offer = try peer.core.createOffer(now: .now())
                peer.state = .offered
                inFlight += 1
                sendOffer(peer.index, offer.serialized())
            } catch {
                peer.state = .failed
                failed += 1
            }
        }
    }

    func handleAnswer(id: Int, sdp: String) {
        guard id < peers.count else { return }
        let peer = peers[id]
        do {
            let answer = try SessionDescription(parsing: sdp)
            for address in Self.candidateAddresses(in: sdp) { byRemote[address] = peer }
            try peer.core.setRemoteAnswer(answer, now: .now())
        } catch {
            fail(peer)
        }
        drain(peer)
        flush()
    }

    func handleError(id: Int) {
        guard id < peers.count else { return }
        fail(peers[id])
    }

    private func fail(_ peer: SenderPeer) {
        guard peer.state == .offered else { return }
        peer.state = .failed
        failed += 1
        inFlight -= 1
        offerMore()
    }

    /// host candidate addresses from `a=candidate:` lines (the receiver's sockets).
    static func candidateAddresses(in sdp: String) -> [TransportAddress] {
        sdp.split(whereSeparator: \.isNewline).compactMap { line in
            guard line.hasPrefix("a=candidate:") else { return nil }
            let fields = line.split(separator: " ")
            guard fields.count > 5, let port = UInt16(fields[5]) else { return nil }
            return TransportAddress("\(fields[4]):\(port)")
        }
    }

    private func receive(_ datagram: ReceivedDatagram, peer index: Int) {
        guard index < peers.count else { return }
        let peer = peers[index]
        peer.core.handleDatagram(datagram.bytes, from: datagram.source, to: datagram.local, now: .now())
        drain(peer)
    }

    private func receive(_ datagram: ReceivedDatagram) {
        guard let peer = byRemote[datagram.source] else { unknownSource += 1; return }
        peer.core.handleDatagram(datagram.bytes, from: datagram.source, to: datagram.local, now: .now())
        drain(peer)
    }

    private func drain(_ peer: SenderPeer) {
        while let event = peer.core.pollEvent() {
            switch event {
            case .connected:
                guard peer.state == .offered else { continue }
                peer.state = .connected
                connected += 1
                if let profile = peer.core.srtpProfile { negotiatedProfiles[profile, default: 0] += 1 }
                inFlight -= 1
                if let audio = peer.core.audio {
                    let configuration = RTPSendStreamConfiguration(
                        ssrc: SSRC(rawValue: peer.core.configuration.ssrc), payloadType: PayloadType(rawValue: audio.codec.payloadType) ?? 111,
                        cname: peer.core.configuration.cname, mid: audio.mid,
                        audioLevelExtensionID: audio.extensions.audioLevel, midExtensionID: audio.extensions.mid,
                        reducedSizeRTCP: audio.rtcpReducedSize)
                    peer.stream = RTPSendStream(configuration: configuration, start: .now(), using: &rng)
                }
                slots[peer.index % 20].append(peer)
                offerMore()
            case .failed:
                fail(peer)
            default:
                break
            }
        }
        if peer.sockets != nil {
            while let transmit = peer.core.pollTransmit() { send(transmit.bytes, to: transmit.to, from: peer) }
            return
        }
        guard let sockets else { return }
        while let transmit = peer.core.pollTransmit() {
            try? sockets.send(transmit.bytes, from: transmit.from, to: transmit.to)
        }
    }

    private func flush() {
        sockets?.flush()
    }

    /// Timers: handshaking peers every 10 ms, connected ones (consent, RTCP) every 200 ms.
    private func sweep() {
        sweepCount += 1
        let now = MonotonicTime.now()
        let all = sweepCount % 20 == 0
        for peer in peers where peer.state == .offered || (all && peer.state == .connected) {
            if let deadline = peer.core.nextTimeout, deadline <= now {
                peer.core.handleTimeout(now: now)
                drain(peer)
            }
        }
        flush()
    }

    /// Protects each connected stream's next `seconds` × 50 RTP packets now, before sending starts,
    /// so that sending one costs a `sendto(2)` and no packetizing or SRTP: on 2 cores the senders
    /// share the machine with the receiver they load, and at 3,000 streams they could not send the
    /// full rate live. The bytes on the wire are the same as live sending's (each packet is made by
    /// the stream's `RTPSendStream` and protected by the connection's SRTP context, in order); RTCP
    /// stays live. Returns the bytes prepared. A stream whose packet cannot be prepared (SRTP refused
    /// it, or the connection's media path moved) keeps what was prepared before it and goes on live
    /// after; that one packet is never sent nor counted, a gap in its sequence and no loss.
    @discardableResult
    func prepare(seconds: Double) -> Int {
        loop.preconditionInEventLoop()
        let packetsPerStream = Int(seconds * 50)
        var total = 0
        for peer in peers where peer.state == .connected {
            guard var stream = peer.stream else { continue }
            var bytes: [UInt8] = []
            var ends: [Int32] = []
            ends.reserveCapacity(packetsPerStream)
            var remote: TransportAddress?
            drain(peer)  // anything queued before goes out first; below, each sendRTP queues just its packet
            for index in 0..<packetsPerStream {
                guard let packet = stream.packetize(opusFrame: frames[(peer.frame + index) % frames.count], level: 40) else { break }
                if let raw = peer.raw {
                    var protected = packet
                    guard (try? raw.srtp.protectRTP(&protected)) != nil else { break }
                    bytes += protected
                    remote = raw.remote
                } else {
                    peer.core.sendRTP(packet)
                    guard let transmit = peer.core.pollTransmit(), remote == nil || transmit.to == remote else { break }
                    bytes += transmit.bytes
                    remote = transmit.to
                }
                ends.append(Int32(bytes.count))
            }
            peer.stream = stream
            if let remote, !ends.isEmpty {
                peer.prepared = (bytes, ends, remote)
                peer.nextPrepared = 0
                total += bytes.count
            }
        }
        return total
    }

    /// Sends the peer's next prepared packet, if it has one left.
    private func sendPrepared(_ peer: SenderPeer) -> Bool {
        guard let prepared = peer.prepared, peer.nextPrepared < prepared.ends.count else {
            peer.prepared = nil
            return false
        }
        let start = peer.nextPrepared == 0 ? 0 : Int(prepared.ends[peer.nextPrepared - 1])
        let end = Int(prepared.ends[peer.nextPrepared])
        peer.nextPrepared += 1
        prepared.bytes.withUnsafeBytes { all in
            let packet = UnsafeRawBufferPointer(rebasing: all[start..<end])
            if let injector, let source = peer.injectionSource, case .v4(let destination) = prepared.remote.ip {
                // The pointer outlives this closure until the batch is written: the bytes are the
                // peer's prepared array, which nothing mutates or frees before `flushInjected()` at
                // the end of this slot (a peer is visited once a slot; see `sendDue`).
                if injector.enqueue(from: source, to: (destination, prepared.remote.port), payload: packet) { flushInjected() }
            } else {
                send(packet, to: prepared.remote, from: peer)
            }
        }
        return true
    }

    /// Stream `i` starts sending `i × rampMilliseconds / count` ms after `startSending` (0: all at
    /// once). Participants do not all start talking in the same 20 ms; a receiving bot creates a
    /// participant's recording file at its first packet, which costs about 0.8 ms on this machine's ext4.
    var rampMilliseconds: Int64 = 0

    func startSending() {
        loop.preconditionInEventLoop()
        sendStart = .now()
        lastSlot = -1
        sendTask = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { [self] _ in sendDue() }
    }

    /// Sends every frame due by now (catching up if the loop was late, so the rate stays 50/s
    /// per stream for as long as the sender has the CPU).
    private func sendDue() {
        let now = MonotonicTime.now()
        let current = (now.nanoseconds - sendStart.nanoseconds) / 1_000_000
        guard current > lastSlot else { return }
        // A sender more than 100 ms late drops those frames (counted as not sent, so the rate
        // column shows it) instead of queueing an unbounded burst.
        if current - lastSlot > 100 { lastSlot = current - 100 }
        let wallclock = NTPTime(unixSeconds: Date().timeIntervalSince1970)
        var slot = lastSlot + 1
        while slot <= current {
            for peer in slots[Int(slot % 20)] where peer.state == .connected {
                if rampMilliseconds > 0, slot < Int64(peer.index) * rampMilliseconds / Int64(count) { continue }
                guard var stream = peer.stream else { continue }
                let raw = peer.raw != nil
                if peer.prepared != nil, sendPrepared(peer) {
                    peer.sent += 1
                    totalSent += 1
                } else if let packet = stream.packetize(opusFrame: frames[peer.frame % frames.count], level: 40) {
                    if raw { sendRaw(peer, packet, rtcp: false) } else { peer.core.sendRTP(packet) }
                    peer.sent += 1
                    totalSent += 1
                }
                peer.frame += 1
                if let rtcp = stream.pollRTCP(now: now, wallclock: wallclock) {
                    if raw { sendRaw(peer, rtcp, rtcp: true) } else { peer.core.sendRTCP(rtcp) }
                }
                peer.stream = stream
                if !raw { drain(peer) }
            }
            flushInjected()  // each slot's batch out before the next slot may visit a peer again
            slot += 1
        }
        lastSlot = current
        flush()
    }

    private func flushInjected() {
        guard let injector else { return }
        sendErrors += injector.flush()
    }

    func stopSending() {
        sendTask?.cancel()
        sendTask = nil
    }

    func close() async {
        try? await loop.submit { [self] in
            stopSending()
            sweepTask?.cancel()
            sweepTask = nil
        }.get()
        try? await loop.submit { [self] in
            injector?.close()
            injector = nil
        }.get()
        await sockets?.close()
        for own in peerSockets { await own.close() }
    }
}

/// peerd-load's cheap way to send prepared packets (`CLoadInject`): one AF_PACKET socket on the
/// loopback interface writes IPv4 UDP datagrams with each peer's own source address and port, up
/// to 64 per `sendmmsg(2)`. The receiver's kernel gets the same datagrams as from the peers' sockets
/// (same 5-tuple and payload), for about half the sender's CPU: no socket lookup, UDP send path or
/// system call per datagram. Sending used most of a core at 3,000 streams and reached 60 % of the
/// rate on slower machines. Needs CAP_NET_RAW; loop-confined like the farm.
///
/// A datagram written onto `lo` this way carries no route (a socket's send attaches one), so the
/// kernel routes it on arrival and, by default, drops it: 127/8 is routed only with
/// `route_localnet`, and a local source is accepted only with `accept_local` (drop reasons
/// IP_LOCALNET, IP_LOCAL_SOURCE). The injector sets both on `lo` while it is open and puts back
/// what was there when it closes, or when the run ends by a signal it can catch. A run killed by
/// SIGKILL cannot: the values to put back are also in a ledger file (`ledgerPath`, with the PID of
/// the run that wrote it), and the next injector whose ledger names a dead process puts them back
/// first. Both concern only packets arriving on `lo` without a route, i.e. written by a raw socket
/// like this one: ordinary loopback traffic is unaffected.
final class PacketInjector {
    enum OpenError: Error, CustomStringConvertible {
        case socket(errno: Int32)
        case setting(String)
        var description: String {
            switch self {
            case .socket(let code): "AF_PACKET socket on lo: \(String(cString: strerror(code)))"
            case .setting(let path): "cannot set \(path) to 1"
            }
        }
    }

    private static let settings = ["/proc/sys/net/ipv4/conf/lo/route_localnet", "/proc/sys/net/ipv4/conf/lo/accept_local"]
    private let descriptor: CInt
    private var batch: [peerd_inject_datagram]
    /// The settings this injector changed, with the values to put back.
    private var changed: [(path: String, value: String)] = []

    /// Where an open injector keeps the settings it changed: a line with its PID, then one line per
    /// setting, `path value`. Removed when it puts them back.
    static let ledgerPath = "/run/peerd-load-lo-settings"

    init() throws(OpenError) {
        let descriptor = peerd_inject_open()
        guard descriptor >= 0 else { throw .socket(errno: -descriptor) }
        self.descriptor = descriptor
        batch = []
        batch.reserveCapacity(Int(PEERD_INJECT_BATCH))
        Self.restoreAfterKilledRun()
        _ = peerd_inject_remove_on_signal(Self.ledgerPath)
        for path in Self.settings {
            guard let value = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
                close()
                throw .setting(path)
            }
            guard value != "1" else { continue }
            guard (try? "1\n".write(toFile: path, atomically: false, encoding: .utf8)) != nil else {
                close()
                throw .setting(path)
            }
            changed.append((path, value))
            // A run ended by ^C or `kill` puts the setting back too (SIGKILL cannot be caught: the ledger).
            _ = peerd_inject_restore_on_signal(path, "\(value)\n")
            Self.writeLedger(changed)
        }
    }

    /// Records what to put back, for the next run if this one is killed before it can.
    private static func writeLedger(_ changed: [(path: String, value: String)]) {
        let text = "\(getpid())\n" + changed.map { "\($0.path) \($0.value)\n" }.joined()
        try? text.write(toFile: ledgerPath, atomically: true, encoding: .utf8)
    }

    /// Puts back the settings of a ledger whose run is gone (killed by SIGKILL): a ledger of a live
    /// run (another peerd-load sending now) is left to that run.
    static func restoreAfterKilledRun() {
        guard let text = try? String(contentsOfFile: ledgerPath, encoding: .utf8) else { return }
        let lines = text.split(separator: "\n")
        guard let first = lines.first, let pid = pid_t(first) else {
            unlink(ledgerPath)  // not a ledger this tool wrote: nothing to trust in it
            return
        }
        if pid != getpid(), kill(pid, 0) == 0 || errno == EPERM { return }
        for line in lines.dropFirst() {
            let fields = line.split(separator: " ")
            // Only the settings this tool changes, and only to a plain value.
            guard fields.count == 2, settings.contains(String(fields[0])), fields[1].allSatisfy(\.isNumber) else { continue }
            try? "\(fields[1])\n".write(toFile: String(fields[0]), atomically: false, encoding: .utf8)
        }
        unlink(ledgerPath)
        FileHandle.standardError.write(Data("peerd-load: lo settings put back from \(ledgerPath) (run \(pid) was killed before it could)\n".utf8))
    }

    deinit { close() }

    private var closed = false

    /// Closes the socket and puts back the settings it changed.
    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(descriptor)
        for (path, value) in changed.reversed() { try? "\(value)\n".write(toFile: path, atomically: false, encoding: .utf8) }
        if !changed.isEmpty {
            peerd_inject_forget_restores()
            unlink(Self.ledgerPath)
        }
        changed = []
    }

    /// Queues a datagram; true when the batch is full (call `flush()`). `payload` must stay valid
    /// until then.
    func enqueue(from source: (ip: UInt32, port: UInt16), to destination: (ip: UInt32, port: UInt16),
                 payload: UnsafeRawBufferPointer) -> Bool {
        batch.append(peerd_inject_datagram(
            source_ip: source.ip, destination_ip: destination.ip, source_port: source.port, destination_port: destination.port,
            length: UInt32(payload.count), payload: payload.baseAddress?.assumingMemoryBound(to: UInt8.self)))
        return batch.count >= Int(PEERD_INJECT_BATCH)
    }

    /// Writes the queued datagrams; returns how many the kernel refused.
    func flush() -> Int {
        guard !batch.isEmpty else { return 0 }
        var written = 0
        batch.withUnsafeBufferPointer { all in
            while written < all.count {
                let result = peerd_inject_send(descriptor, all.baseAddress! + written, Int32(all.count - written))
                guard result > 0 else { break }  // refused: the rest counts as sent and shows as loss
                written += Int(result)
            }
        }
        let refused = batch.count - written
        batch.removeAll(keepingCapacity: true)
        return refused
    }
}

/// 50 pre-encoded 20 ms Opus frames (one second of a 440 Hz tone, mono, 48 kHz), sent in a loop.
func preEncodedFrames() throws -> [[UInt8]] {
    let encoder = try OpusEncoder(channels: 1)
    var frames: [[UInt8]] = []
    for index in 0..<50 {
        let pcm = (0..<960).map { sample -> Int16 in
            let t = Double(index * 960 + sample) / 48_000
            return Int16(8_000 * sin(2 * Double.pi * 440 * t))
        }
        frames.append(try encoder.encode(pcm))
    }
    return frames
}
