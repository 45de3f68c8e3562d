import CLoadInject
import DTLS
import ICE
import Foundation
import NIOCore
import NIOPosix
import Wire

/// The receiver child process and its replies. Thread-safety: `pending` and `queued` are touched
/// only on `loop` (the reader thread hops there), which is why the `@unchecked Sendable` is safe.
final class ReceiverLink: @unchecked Sendable {
    let loop: any EventLoop
    let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    let writer: LineWriter
    private var pending: [String: EventLoopPromise<LoadMessage>] = [:]
    private var queued: [String: [LoadMessage]] = [:]
    private var ended = false
    var onAnswer: (LoadMessage) -> Void = { _ in }

    struct Ended: Error, CustomStringConvertible {
        var op: String
        var description: String { "the receiver process ended before replying to \(op)" }
    }

    init(loop: any EventLoop, command: [String]) throws {
        self.loop = loop
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        writer = LineWriter(handle: stdinPipe.fileHandleForWriting)
        try process.run()
        startLineReader(fd: stdoutPipe.fileHandleForReading.fileDescriptor, onMessage: { [self] message in
            loop.execute { self.deliver(message) }
        }, onEOF: { [self] in
            loop.execute { self.end() }
        })
    }

    private func deliver(_ message: LoadMessage) {
        if message.op == "answer" || (message.op == "error" && message.id != nil) {
            onAnswer(message)
        } else if let promise = pending.removeValue(forKey: message.op) {
            promise.succeed(message)
        } else {
            queued[message.op, default: []].append(message)
        }
    }

    private func end() {
        ended = true
        for (op, promise) in pending { promise.fail(Ended(op: op)) }
        pending = [:]
    }

    /// Sends `op` (if not nil) and waits for the reply named `reply`.
    func request(_ op: String?, reply: String? = nil, timeout: TimeAmount = .seconds(60)) async throws -> LoadMessage {
        let name = reply ?? op ?? ""
        let future: EventLoopFuture<LoadMessage> = try await loop.submit { [self] in
            if var waiting = queued[name], !waiting.isEmpty {
                let first = waiting.removeFirst()
                queued[name] = waiting
                return loop.makeSucceededFuture(first)
            }
            if ended { return loop.makeFailedFuture(Ended(op: name)) }
            let promise = loop.makePromise(of: LoadMessage.self)
            pending[name] = promise
            loop.scheduleTask(in: timeout) { promise.fail(Ended(op: name + " (timeout)")) }
            if let op { writer.send(LoadMessage(op: op)) }
            return promise.futureResult
        }.get()
        return try await future.get()
    }

    func send(_ message: LoadMessage) { writer.send(message) }
}

/// One measured step: N streams at one receiver, over a fixed window.
struct StepResult {
    var receiver: String
    var streams: Int
    var connected: Int
    var failedConnections: Int
    var connectSeconds: Double
    var sent: Int
    var received: Int
    var lostPackets: Int
    var streamsWithLoss: Int
    var windowPackets: Int
    var loopMicrosPerPacket: Double
    var processMicrosPerPacket: Double
    var loopUtilization: Double
    var rssPerConnectionKiB: Double
    var senderRateFraction: Double
    var senderUtilization: Double
    var files: Int
    var recordedBytes: Int64
    var note: String?

    var lossless: Bool { failedConnections == 0 && connected == streams && lostPackets == 0 && senderRateFraction > 0.98 }
}

struct StepOptions {
    var receiverCommand: [String]
    var receiverName: String
    var warmup: Double = 2
    /// Streams start one after another over this many seconds (nil: 1 ms per stream); the warm-up
    /// is stretched to end at least 1.5 s after the last stream started.
    var ramp: Double?
    var window: Double = 10
    var drain: Double = 1.5
    var maxInFlight = 32
    /// The receiver puts every connection on one shared port: each sender gets its own socket.
    var sharedPort = false
    /// The SRTP profiles the senders offer (the senders are the DTLS servers, so the first the
    /// receiver also has is used): default the library's preference (AEAD_AES_256_GCM).
    var srtpProfiles = SRTPProfile.defaultPreference
    /// The receiver negotiates nothing (the C reference receiver): the senders use SRTP keys derived
    /// from their index and send to the port the receiver names in its "ready" line.
    var rawSRTP = false
    /// The senders packetize and protect every RTP packet as they send it, instead of protecting
    /// the whole run's packets before sending starts (`SenderFarm.prepare`).
    var liveSenders = false
    /// Prepared packets go out by a `sendto(2)` each on the sender's socket, never by `PacketInjector`.
    var sendtoSenders = false
}

func sleep(seconds: Double) async {
    try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
}

/// Connects `streams` sending peers to a fresh receiver process, sends for warmup + window,
/// and measures what the receiver got and what it cost.
func runStep(streams: Int, options: StepOptions, senderLoop: any EventLoop, certificate: DTLSCertificate,
             frames: [[UInt8]], log: (String) -> Void) async throws -> StepResult {
    let link = try ReceiverLink(loop: senderLoop, command: options.receiverCommand)
    defer { if link.process.isRunning { link.process.terminate() } }
    let farm = SenderFarm(count: streams, loop: senderLoop, certificate: certificate, frames: frames, maxInFlight: options.maxInFlight,
                          socketPerPeer: options.sharedPort,
                          injectsPackets: options.sharedPort && !options.liveSenders && !options.sendtoSenders,
                          srtpProfiles: options.srtpProfiles)
    let ready = try await link.request(nil, reply: "ready", timeout: .seconds(30))
    log("    receiver pid \(link.process.processIdentifier)")
    try await farm.bind()
    let connectStart = MonotonicTime.now()
    if options.rawSRTP {
        guard let port = ready.id, let portNumber = UInt16(exactly: port) else { throw ReceiverLink.Ended(op: "ready (with a port)") }
        try await senderLoop.submit { try farm.connectRaw(to: TransportAddress(ip: .v4(0x7F00_0001), port: portNumber)) }.get()
    } else {
        try await senderLoop.submit {
            farm.sendOffer = { id, sdp in
                var offer = LoadMessage(op: "offer")
                offer.id = id
                offer.sdp = sdp
                link.send(offer)
            }
            link.onAnswer = { message in
                guard let id = message.id else { return }
                if message.op == "answer", let sdp = message.sdp { farm.handleAnswer(id: id, sdp: sdp) } else { farm.handleError(id: id) }
            }
            farm.beginConnecting()
        }.get()
    }
    let connectDeadline = connectStart + .seconds(Int64(30 + streams / 50))
    var lastReport = connectStart
    while true {
        let (settled, connected, failed) = try await senderLoop.submit { (farm.settled, farm.connected, farm.failed) }.get()
        if settled || MonotonicTime.now() > connectDeadline { break }
        if MonotonicTime.now() - lastReport > .seconds(5) {
            lastReport = .now()
            log("    connecting: \(connected)/\(streams) connected, \(failed) failed")
        }
        await sleep(seconds: 0.1)
    }
    let connectSeconds = (MonotonicTime.now() - connectStart).seconds
    let (connected, failed, profiles) = try await senderLoop.submit { (farm.connected, farm.failed, farm.negotiatedProfiles) }.get()
    let profileList = profiles.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key.openSSLName)" }.joined(separator: ", ")
    log("    \(connected)/\(streams) connected in \(formatted(connectSeconds, 1)) s (\(failed) failed; SRTP: \(profileList)); sending")

    let ramp = options.ramp ?? Double(streams) / 1000
    if !options.liveSenders {
        let seconds = max(options.warmup, ramp + 1.5) + options.window + 1
        let prepareStart = MonotonicTime.now()
        let bytes = try await senderLoop.submit { farm.prepare(seconds: seconds) }.get()
        log("    senders prepared \(formatted(seconds, 1)) s of protected RTP (\(bytes / 1_000_000) MB) in \(formatted((MonotonicTime.now() - prepareStart).seconds, 1)) s")
        let (injecting, injectorError) = try await senderLoop.submit { (farm.injecting, farm.injectorError) }.get()
        if injecting {
            log("    senders write the prepared packets through one AF_PACKET socket on lo (sendmmsg, up to \(PEERD_INJECT_BATCH) a call)")
        } else if let injectorError {
            log("    senders send each prepared packet with sendto(2): \(injectorError)")
        }
    }
    try await senderLoop.submit {
        farm.rampMilliseconds = Int64(ramp * 1000)
        farm.startSending()
    }.get()
    await sleep(seconds: max(options.warmup, ramp + 1.5))
    let markA = try await link.request("mark")
    let wallA = MonotonicTime.now()
    let (sentA, senderCPUA, senderTimeA) = try await senderLoop.submit { (farm.totalSent, threadCPUNanoseconds(), MonotonicTime.now()) }.get()
    await sleep(seconds: options.window)
    let markB = try await link.request("mark")
    let wallB = MonotonicTime.now()
    let (sentB, senderCPUB, senderTimeB) = try await senderLoop.submit { (farm.totalSent, threadCPUNanoseconds(), MonotonicTime.now()) }.get()
    try await senderLoop.submit { farm.stopSending() }.get()
    await sleep(seconds: options.drain)
    let counts = try await link.request("counts")
    let (sentPerStream, sendErrors) = try await senderLoop.submit { (farm.peers.map(\.sent), farm.sendErrors) }.get()
    if sendErrors > 0 { log("    senders: the kernel refused \(sendErrors) datagrams (counted as sent)") }
    let bye = try await link.request("quit", reply: "bye", timeout: .seconds(120))
    await farm.close()
    link.process.waitUntilExit()

    let perStream = counts.perStream ?? [:]
    var lost = 0
    var lossy = 0
    var sent = 0
    var received = 0
    for (index, count) in sentPerStream.enumerated() {
        let got = perStream["\(index)"] ?? 0
        sent += count
        received += got
        if got < count { lost += count - got; lossy += 1 }
    }
    let window = (wallB - wallA).seconds
    let windowPackets = (markB.packets ?? 0) - (markA.packets ?? 0)
    let perPacket = { (a: Int64?, b: Int64?) -> Double in
        windowPackets > 0 ? Double((b ?? 0) - (a ?? 0)) / 1000 / Double(windowPackets) : .nan
    }
    let senderWindow = (senderTimeB - senderTimeA).seconds
    let expected = Double(connected) * 50 * senderWindow
    return StepResult(
        receiver: options.receiverName, streams: streams, connected: connected, failedConnections: failed,
        connectSeconds: connectSeconds, sent: sent, received: received, lostPackets: lost, streamsWithLoss: lossy,
        windowPackets: windowPackets,
        loopMicrosPerPacket: perPacket(markA.cpuLoopNs, markB.cpuLoopNs),
        processMicrosPerPacket: perPacket(markA.cpuProcessNs, markB.cpuProcessNs),
        loopUtilization: Double((markB.cpuLoopNs ?? 0) - (markA.cpuLoopNs ?? 0)) / 1e9 / window,
        rssPerConnectionKiB: Double((markB.rss ?? 0) - (ready.rss ?? 0)) / 1024 / Double(max(1, connected)),
        senderRateFraction: expected > 0 ? Double(sentB - sentA) / expected : 0,
        senderUtilization: Double(senderCPUB - senderCPUA) / 1e9 / senderWindow,
        files: bye.files ?? 0, recordedBytes: bye.bytes ?? 0, note: bye.message)
}

func tableHeader() -> String {
    "| receiver | streams | connected (s) | sent | lost (streams) | CPU µs/packet loop | CPU µs/packet process | loop busy | RSS/conn KiB | sender rate | sender busy | files |\n"
        + "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
}

func tableRow(_ r: StepResult) -> String {
    let connected = r.connected == r.streams ? "\(r.connected)" : "\(r.connected) (\(r.failedConnections) failed)"
    return "| \(r.receiver) | \(r.streams) | \(connected) (\(formatted(r.connectSeconds, 1))) | \(r.sent) | \(r.lostPackets) (\(r.streamsWithLoss)) | "
        + "\(formatted(r.loopMicrosPerPacket, 2)) | \(formatted(r.processMicrosPerPacket, 2)) | \(formatted(r.loopUtilization * 100, 0)) % | "
        + "\(formatted(r.rssPerConnectionKiB, 1)) | \(formatted(r.senderRateFraction * 100, 1)) % | \(formatted(r.senderUtilization * 100, 0)) % | \(r.files) |"
}
