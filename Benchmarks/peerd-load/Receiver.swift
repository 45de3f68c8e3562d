import DTLS
import Foundation
import ICE
import NIOCore
import NIOPosix
import PeerConnection
import RTP
import SDP
import Wire

/// The receiving side of the load: the peerd receive path, composed from the library types the
/// bot uses (Sources/peerd/Bot/RoomBot.swift + RemotePeer.swift), without signaling: one
/// `PeerConnectionDriver` per connection (its own UDP socket on 127.0.0.1, ICE, DTLS, SRTP), an
/// `RTPReceiveStream`, the talk detector on the audio-level extension, and an Ogg Opus
/// pass-through recorder (or a WAV recorder that decodes) per connection, all on ONE event loop.
/// Per packet it does what `RoomBot.receive(_:from:now:)` does.
///
/// Runs as a child process (`peerd-load receive`) so that its RSS and CPU are its own.
enum ReceiverMode {
    static func run(arguments: [String]) async throws {
        var format = "ogg"
        var directory: String?
        var vector: Int?
        var talk = true
        var shared = false
        var prefetch = true
        var record = true
        var owner = true
        var pacing: Double?
        var consentInterval: Double?
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "--format": index += 1; format = arguments[index]
            case "--dir": index += 1; directory = arguments[index]
            case "--vector": index += 1; vector = Int(arguments[index])
            case "--no-talk": talk = false
            case "--no-record": record = false
            case "--no-owner": owner = false
            case "--no-prefetch": prefetch = false
            case "--shared-port": shared = true
            case "--read-pacing": index += 1; pacing = Double(arguments[index])
            case "--consent-interval": index += 1; consentInterval = Double(arguments[index])
            default: break
            }
            index += 1
        }
        raiseFileLimit()
        let dir = directory ?? (NSTemporaryDirectory() + "peerd-load-\(getpid())")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let receiver = try LoadReceiver(loop: group.next(), directory: dir, decode: format == "wav",
                                        output: LineWriter(handle: FileHandle.standardOutput))
        if let vector { receiver.socketConfiguration = UDPSocketSet.Configuration(vectorReadMessageCount: vector) }
        receiver.talkDetection = talk
        receiver.recording = record
        receiver.ownerWork = owner
        receiver.prefetch = prefetch
        if let consentInterval { receiver.consentInterval = .milliseconds(Int64(consentInterval * 1000)) }
        if shared {
            // As `peerd join --port`: one socket for every connection, with the server settings.
            var configuration = SharedUDPPort.serverConfiguration
            if let vector { configuration.vectorReadMessageCount = vector }
            if let pacing { configuration.readPacing = pacing > 0 ? .microseconds(Int64(pacing * 1000)) : nil }
            receiver.sharedPort = try await SharedUDPPort.bind(addresses: [.v4(0x7F00_0001)], port: 0,
                                                               configuration: configuration, eventLoop: receiver.loop)
        }
        receiver.start()
        var ready = LoadMessage(op: "ready")
        ready.rss = residentBytes()
        receiver.output.send(ready)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let resumed = ResumeOnce(done)
            startLineReader(fd: 0, onMessage: { message in
                if receiver.handle(message) { resumed.resume() }
            }, onEOF: { resumed.resume() })
        }
        let bye = try await receiver.finish()
        receiver.output.send(bye)
        exit(0)
    }
}

/// Resumes a continuation at most once (from whichever thread gets there first).
final class ResumeOnce: Sendable {
    private let lock = NSLock()
    private nonisolated(unsafe) var continuation: CheckedContinuation<Void, Never>?
    // nonisolated(unsafe) is safe: `continuation` is only read and cleared under `lock`.

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    func resume() {
        lock.lock()
        let pending = continuation
        continuation = nil
        lock.unlock()
        pending?.resume()
    }
}

/// What the receiver keeps per connection (as the bot's `RemotePeer`). Confined to the loop.
final class ReceivedConnection {
    let id: Int
    var driver: PeerConnectionDriver?
    // Unchecked exclusivity, as on the bot's `RemotePeer` (mutated per packet, value types that
    // call nothing back); the talk detector early, in the lines the prefetch hints cover, as there.
    @exclusivity(unchecked) var talk = TalkDetector()
    @exclusivity(unchecked) var receiveStream = RTPReceiveStream()
    /// Lent unretained to the receive path (as the bot's `RemotePeer`): replaced only when the
    /// recorder opens and finishes, never during a packet.
    var oggRecorder = HeldReference<OggOpusRecorder>()
    var wavRecorder: WAVRecorder?
    var recorderOpened = false
    /// As the bot's `RemotePeer`: a connection it sends nothing to gets receiver reports.
    var receiverReports: RTCPReceiverReportSchedule?
    var recordedSinceHousekeeping = false
    var levelSinceHousekeeping = false
    var prefetchRefreshes = 0
    var audioLevelID: UInt8?
    var packets = 0
    var payloadBytes = 0
    var connectedAt: MonotonicTime?
    var firstAudioAt: MonotonicTime?
    var failure: String?

    init(id: Int) { self.id = id }
}

/// Thread-safety: every mutable member is touched only on `loop` (the handlers hop there), which
/// is why the `@unchecked Sendable` is safe.
final class LoadReceiver: @unchecked Sendable {
    let loop: any EventLoop
    let certificate: DTLSCertificate
    let directory: String
    let decode: Bool
    let output: LineWriter
    private var connections: [Int: ReceivedConnection] = [:]
    private var ordered: [ReceivedConnection] = []
    private var totalPackets = 0
    private var connectedCount = 0
    private var mediaTask: RepeatedTask?
    private var housekeepingTicks = 0
    /// `--no-prefetch` turns the shared port's prefetch hints off (experiments only).
    var prefetch = true
    /// Experiments (`--vector`, `--no-talk`); the defaults are what the bot does.
    var socketConfiguration: UDPSocketSet.Configuration?
    var talkDetection = true
    /// `--no-record`: packets are not recorded; `--no-owner`: an RTP event is only counted (what
    /// the receive path costs without its owner's work). Experiments only.
    var recording = true
    /// `--consent-interval SECONDS`: the receiver's RFC 7675 check interval (default the agent's 5 s).
    /// Experiments only: short to magnify what a consent check costs, long to leave it out.
    var consentInterval: Duration?
    var ownerWork = true
    /// `--shared-port`: every connection on this one port (as `peerd join --port`).
    var sharedPort: SharedUDPPort?

    /// When the receiver started (a file modified before is a previous run's).
    private let started = Date(timeIntervalSinceNow: -1)

    init(loop: any EventLoop, directory: String, decode: Bool, output: LineWriter) throws {
        self.loop = loop
        self.directory = directory
        self.decode = decode
        self.output = output
        certificate = try DTLSCertificate.generate()
    }

    /// The bot's media clock, receive half: recorder flushes and talk evaluation per peer, on every
    /// `RoomBot.housekeepingTicks`-th 20 ms tick (100 ms), as the bot does.
    func start() {
        mediaTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
            let now = MonotonicTime.now()
            housekeepingTicks += 1
            for connection in ordered {
                // As the bot: tell a shared port what this connection's packets touch, once a second for
                // ten seconds, then every ten seconds (see `RemotePeer.refreshPrefetchHints`).
                if prefetch, housekeepingTicks % 10 == connection.id % 10,
                   connection.prefetchRefreshes < 10 || (housekeepingTicks / 10) % 10 == (connection.id / 10) % 10 {
                    connection.prefetchRefreshes += 1
                    refreshPrefetchHints(connection)
                }
                // As the bot: a connection whose packets flow needs no tick (see `RemotePeer`).
                if !connection.recordedSinceHousekeeping {
                    do {
                        try connection.oggRecorder.object?.tick(now: now)
                        try connection.wavRecorder?.tick(now: now)
                    } catch {
                        connection.failure = "\(error)"
                    }
                }
                if talkDetection, !connection.levelSinceHousekeeping { _ = connection.talk.evaluate(now: now) }
                if connection.connectedAt != nil, let driver = connection.driver { sendReceiverReport(connection, driver: driver, now: now) }
                connection.recordedSinceHousekeeping = false
                connection.levelSinceHousekeeping = false
            }
        }
    }

    /// As `RoomBot.sendReceiverReport(to:driver:now:)`: RTCP receiver reports at the RFC 3550 interval.
    private func sendReceiverReport(_ connection: ReceivedConnection, driver: PeerConnectionDriver, now: MonotonicTime) {
        if connection.receiverReports == nil {
            var rng = SystemRandomNumberGenerator()
            connection.receiverReports = RTCPReceiverReportSchedule(core: driver.core, start: now, using: &rng)
        }
        if let rtcp = connection.receiverReports?.poll(now: now, receiving: &connection.receiveStream) { driver.sendRTCPOnLoop(rtcp) }
    }

    /// Returns true on `quit`.
    func handle(_ message: LoadMessage) -> Bool {
        switch message.op {
        case "offer":
            guard let id = message.id, let sdp = message.sdp else { return false }
            answer(id: id, sdp: sdp)
        case "mark":
            loop.execute { [self] in
                var reply = LoadMessage(op: "mark")
                reply.cpuLoopNs = threadCPUNanoseconds()
                reply.cpuProcessNs = processCPUNanoseconds()
                reply.rss = residentBytes()
                reply.packets = totalPackets
                reply.connected = connectedCount
                output.send(reply)
            }
        case "counts":
            loop.execute { [self] in
                var reply = LoadMessage(op: "counts")
                reply.perStream = Dictionary(uniqueKeysWithValues: ordered.map { ("\($0.id)", $0.packets) })
                let delays = ordered.compactMap { c in c.firstAudioAt.flatMap { f in c.connectedAt.map { (f - $0).seconds * 1000 } } }.sorted()
                reply.firstAudioMs = delays.isEmpty ? nil : delays[delays.count / 2]
                reply.packets = totalPackets
                output.send(reply)
            }
        case "quit":
            return true
        default:
            break
        }
        return false
    }

    private func answer(id: Int, sdp: String) {
        Task { [self] in
            do {
                let offer = try SessionDescription(parsing: sdp)
                var configuration = PeerConnectionConfiguration(certificate: certificate, sendsAudio: false, trickle: false)
                configuration.ice.seed = UInt64.random(in: 0...UInt64.max)
                if let consentInterval { configuration.ice.consentInterval = consentInterval }
                // As the bot: the driver's handler holds its connection (confined to the loop, where the
                // events run: hence `nonisolated(unsafe)`), no lookup by id per packet.
                nonisolated(unsafe) let connection = ReceivedConnection(id: id)
                try await loop.submit { [self] in
                    connections[id] = connection
                    ordered.append(connection)
                }.get()
                let onEvent: @Sendable (PeerConnectionEvent) -> Void = { [self] event in handleEvent(connection, event) }
                let driver = if let sharedPort {
                    try await PeerConnectionDriver.start(configuration: configuration, sharedPort: sharedPort,
                                                         eventLoop: loop, onEvent: onEvent)
                } else if let socketConfiguration {
                    try await PeerConnectionDriver.start(configuration: configuration, interfaces: .loopbackOnly,
                                                         sockets: socketConfiguration, eventLoop: loop, onEvent: onEvent)
                } else {
                    try await PeerConnectionDriver.start(configuration: configuration, interfaces: .loopbackOnly,
                                                         eventLoop: loop, onEvent: onEvent)
                }
                let answer = try await driver.withCore { core in try core.acceptOffer(offer, now: .now()).serialized() }
                try await loop.submit { [self] in connections[id]?.driver = driver }.get()
                var reply = LoadMessage(op: "answer")
                reply.id = id
                reply.sdp = answer
                output.send(reply)
            } catch {
                var reply = LoadMessage(op: "error")
                reply.id = id
                reply.message = "\(error)"
                output.send(reply)
            }
        }
    }

    /// On the loop, for every event of connection `id` (as `RoomBot.handlePeerEvent`).
    private func handleEvent(_ connection: ReceivedConnection, _ event: PeerConnectionEvent) {
        let now = MonotonicTime.now()
        switch event {
        case .connected:
            connection.connectedAt = now
            connectedCount += 1
        case .rtp(let packet):
            receive(packet, on: connection, now: now)
        case .rtcp(let compound):
            for packet in compound.packets {
                if case .senderReport(let report) = packet {
                    _ = connection.receiveStream.receiveSenderReport(report, arrival: now)
                    connection.oggRecorder.object?.receiveSenderReport(report)
                }
            }
        case .failed(let error):
            connection.failure = "\(error)"
        default:
            break
        }
    }

    /// What `RoomBot.receive(_:from:now:)` does per packet, minus the event log and echo.
    private func receive(_ packet: RTPPacket, on connection: ReceivedConnection, now: MonotonicTime) {
        connection.packets += 1
        totalPackets += 1
        guard ownerWork else { return }
        _ = connection.receiveStream.receive(packet, arrival: now)
        connection.payloadBytes += packet.payload.count
        if connection.firstAudioAt == nil {
            connection.firstAudioAt = now
            connection.audioLevelID = connection.driver?.core.audioLevelExtensionID
        }
        if !connection.recorderOpened, recording {
            let stereo = packet.payload.first.map { $0 & 0x04 != 0 } ?? false
            openRecorder(connection, stereo: stereo)
        }
        do {
            try connection.oggRecorder.withObject { recorder in
                let wallclock = recorder.startWallclock == nil ? NTPTime(unixSeconds: Date().timeIntervalSince1970) : nil
                try recorder.receive(packet, arrival: now, wallclock: wallclock)
            }
            if let wav = connection.wavRecorder {
                try wav.receive(ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                                payload: Array(packet.payload), arrival: now)
            }
        } catch {
            connection.failure = "\(error)"
        }
        connection.recordedSinceHousekeeping = true
        if talkDetection, let id = connection.audioLevelID, let element = packet.headerExtensionElement(id: id),
           let level = try? AudioLevelExtension.parse(from: element) {
            connection.levelSinceHousekeeping = true
            _ = connection.talk.add(level: level.level, at: now)
        }
    }

    private func refreshPrefetchHints(_ connection: ReceivedConnection) {
        connection.driver?.refreshPrefetchHints { hints in
            hints.add(connection, bytes: 512)
            connection.oggRecorder.object?.addPrefetchHints(&hints)
        }
    }

    private func recordingPath(_ connection: ReceivedConnection) -> String {
        (directory as NSString).appendingPathComponent("stream-\(connection.id)" + (decode ? ".wav" : ".ogg"))
    }

    private func openRecorder(_ connection: ReceivedConnection, stereo: Bool) {
        connection.recorderOpened = true
        let path = recordingPath(connection)
        do {
            if decode {
                connection.wavRecorder = try WAVRecorder(path: path, channels: stereo ? 2 : 1, createInBackground: true)
            } else {
                let file = OggFileOutput(creatingInBackground: path)  // as the bot does
                connection.oggRecorder.object = try OggOpusRecorder(output: file, channels: stereo ? 2 : 1,
                                                             serialNumber: UInt32.random(in: 1...UInt32.max))
            }
        } catch {
            connection.failure = "\(error)"
        }
    }

    /// Finalizes every recording and reports how many files and bytes were written.
    func finish() async throws -> LoadMessage {
        try await loop.submit { [self] in
            mediaTask?.cancel()
            var failures = 0
            for connection in ordered {
                do {
                    try connection.oggRecorder.object?.finish()
                    try connection.wavRecorder?.finish()
                } catch {
                    failures += 1
                }
                if connection.failure != nil { failures += 1 }
            }
            // This run's files only: the directory is reused, and may hold a larger run's files.
            var files = 0
            var bytes: Int64 = 0
            for connection in ordered where connection.recorderOpened {
                let attributes = try? FileManager.default.attributesOfItem(atPath: recordingPath(connection))
                guard let size = attributes?[.size] as? NSNumber, let modified = attributes?[.modificationDate] as? Date,
                      modified >= started else { continue }
                files += 1
                bytes += size.int64Value
            }
            var bye = LoadMessage(op: "bye")
            bye.files = files
            bye.bytes = bytes
            bye.message = failures == 0 ? nil : "\(failures) connection(s) reported a failure"
            return bye
        }.get()
    }
}
