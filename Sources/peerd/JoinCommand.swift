import ArgumentParser
import DTLS
import Dispatch
import Foundation
import ICE
import Logging
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `peerd join`: the room bot.
struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a voice room as a participant: talk, listen, record every participant.",
        discussion: """
            peerd registers with the room server, joins the room, and keeps exactly one connection per remote participant whatever the offer order: it answers offers, offers to participants who do not offer within --offer-delay, and is the polite side on glare.

            It records each participant to DIR/<participant-id>.ogg|wav (ids made safe for file names), appends joins, leaves, mic toggles and speaking to DIR/events.jsonl, and writes getStats-shaped statistics of every connection to DIR/stats.json every --stats-interval seconds. Browsers' <uuid>.local (mDNS) candidates are resolved with one-shot mDNS queries. When consent is lost or ICE fails on a connection, peerd restarts ICE (a new offer with new credentials) and media stays on the old path until a new one is found.

            On a terminal a status line shows every participant's connection state, level and speaking; otherwise logs are plain lines or JSON (--log-format json). PEERD_LOG_LEVEL=debug logs more. SIGINT/SIGTERM: peerd leaves the room, closes every connection and finalizes every file.

            Examples:
              peerd join ws://127.0.0.1:8080/ws --room general --tone 440 --record rec/
              peerd join wss://rooms.example.org/ws --room important \\
                --password secret --play greeting.ogg
              peerd join ws://127.0.0.1:8080/ws --room general --echo \\
                --stun stun:stun.example.org:3478 \\
                --turn 'turn:198.51.100.7:3478?transport=udp' \\
                --turn-username alice --turn-credential s3cret
              peerd join ws://127.0.0.1:8080/ws --room general --muted \\
                --record rec/ --format wav --log-format json
              peerd join ws://127.0.0.1:8080/ws --room general --name Bot \\
                --id bot-1 --trickle off --duration 60
            """
    )

    @Argument(help: "The room server's WebSocket URL (ws:// or wss://).")
    var url: String

    @Option(help: ArgumentHelp("The room to join (e.g. --room general).", valueName: "ID"))
    var room: String

    @Option(help: ArgumentHelp("Room password, for private rooms (e.g. --password secret).", valueName: "PASSWORD"))
    var password: String?

    @Option(help: ArgumentHelp("Display name shown to the other participants (e.g. --name \"Recorder\").", valueName: "NAME"))
    var name = "peerd"

    @Option(help: ArgumentHelp("Participant id (default: peerd-<random>; e.g. --id bot-1).", valueName: "ID"))
    var id: String?

    @Option(help: ArgumentHelp("Record every remote participant to DIR/<participant-id>.ogg|wav; events go to DIR/events.jsonl, statistics to DIR/stats.json (e.g. --record rec/).", valueName: "DIR"))
    var record: String?

    @Option(help: ArgumentHelp("Recording format: ogg (Opus pass-through, no re-encoding) or wav (decoded, with loss concealment).", valueName: "ogg|wav"))
    var format = "ogg"

    @Flag(help: ArgumentHelp("With --record, also write the mixed room track (every participant decoded and summed, aligned from peerd's start) to DIR/room-mix.ogg|wav (e.g. --record rec/ --mix)."))
    var mix = false

    @Option(help: ArgumentHelp("Play this file into the room (Ogg Opus .ogg/.opus sent as is, or 48 kHz WAV), looped (e.g. --play greeting.ogg).", valueName: "FILE"))
    var play: String?

    @Option(help: ArgumentHelp("Send a sine tone of this frequency (e.g. --tone 440).", valueName: "HZ"))
    var tone: Double?

    @Option(help: ArgumentHelp("Capture from this ALSA device (e.g. --alsa default, --alsa hw:0).", valueName: "DEVICE"))
    var alsa: String?

    @Flag(help: "Send back what peerd hears (the last participant's audio).")
    var echo = false

    @Flag(help: "Join muted (the others see the microphone off; nothing is sent).")
    var muted = false

    @Option(help: ArgumentHelp("STUN server as browsers take it, e.g. --stun stun:198.51.100.7:3478 (repeatable).", valueName: "URL"))
    var stun: [String] = []

    @Option(help: ArgumentHelp("TURN server as browsers take it (an RTCIceServer URL), e.g. --turn 'turn:198.51.100.7:3478?transport=udp' (repeatable), with --turn-username and --turn-credential. peerd reaches TURN servers over UDP.", valueName: "URL"))
    var turn: [String] = []

    @Option(help: ArgumentHelp("Username for the --turn servers, as RTCIceServer.username (e.g. --turn-username alice).", valueName: "USERNAME"))
    var turnUsername: String?

    @Option(help: ArgumentHelp("Credential for the --turn servers, as RTCIceServer.credential (e.g. --turn-credential s3cret).", valueName: "CREDENTIAL"))
    var turnCredential: String?

    @Option(help: ArgumentHelp("Candidates to use, as RTCConfiguration.iceTransportPolicy: all, or relay (only through --turn).", valueName: "all|relay"))
    var iceTransportPolicy = "all"

    @Option(help: ArgumentHelp("Trickle ICE: on (candidates one by one) or off (all candidates inside the SDP), e.g. --trickle off.", valueName: "on|off"))
    var trickle = "on"

    @Option(help: ArgumentHelp("One UDP port for every connection, demultiplexed by ICE username (servers behind firewalls); STUN answers are told apart by transaction, and with --turn each connection allocates from its own ephemeral socket. The port is read in batches (2 ms apart): the lighter choice for many participants. E.g. --port 3478.", valueName: "PORT"))
    var port: UInt16?

    @Option(help: ArgumentHelp("UDP ports each connection binds its own sockets from, e.g. --port-range 40000-40099.", valueName: "A-B"))
    var portRange: String?

    @Flag(help: "Also use loopback addresses (for tests on one machine).")
    var loopback = false

    @Option(help: ArgumentHelp("Seconds to wait for a participant's offer before offering ourselves (e.g. --offer-delay 2).", valueName: "SECONDS"))
    var offerDelay = 4.0

    @Option(help: ArgumentHelp("Leave after this many seconds (default: until SIGINT/SIGTERM; e.g. --duration 60).", valueName: "SECONDS"))
    var duration: Double?

    @Option(help: ArgumentHelp("Trust this CA certificate (PEM file) for wss://, in addition to the system store.", valueName: "FILE"))
    var caFile: String?

    @Option(help: ArgumentHelp("Seconds between writes of the connection statistics (getStats shape) to DIR/stats.json or --stats-file; 0 turns them off.", valueName: "SECONDS"))
    var statsInterval = 2.0

    @Option(help: ArgumentHelp("Write the connection statistics here instead of DIR/stats.json (e.g. --stats-file /tmp/stats.json).", valueName: "FILE"))
    var statsFile: String?

    @Option(help: ArgumentHelp("Seconds to wait for an answer to the mDNS query for a browser's <uuid>.local candidate; unanswered names are dropped.", valueName: "SECONDS"))
    var mdnsTimeout = 3.0

    @Option(help: ArgumentHelp("Log lines as plain text or JSON objects, one per line (e.g. --log-format json).", valueName: "plain|json"))
    var logFormat = "plain"

    @Flag(inversion: .prefixedNo, help: "On a terminal, keep a live status line (participants, connection states, levels, speaking).")
    var status = true

    func validate() throws {
        guard url.hasPrefix("ws://") || url.hasPrefix("wss://") else { throw ValidationError("the URL must start with ws:// or wss://") }
        guard ["ogg", "wav"].contains(format) else { throw ValidationError("--format must be ogg or wav") }
        if mix && record == nil { throw ValidationError("--mix needs --record DIR (the mix is written to DIR/room-mix.ogg|wav)") }
        guard ["on", "off"].contains(trickle) else { throw ValidationError("--trickle must be on or off") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be plain or json") }
        guard statsInterval >= 0, mdnsTimeout > 0, offerDelay >= 0 else {
            throw ValidationError("--stats-interval, --mdns-timeout and --offer-delay must not be negative")
        }
        if !turn.isEmpty, turnUsername == nil || turnCredential == nil {
            throw ValidationError("--turn needs --turn-username and --turn-credential (as browsers' RTCIceServer does)")
        }
        guard let policy = ICETransportPolicy(rawValue: iceTransportPolicy) else { throw ValidationError("--ice-transport-policy must be all or relay") }
        guard policy == .all || !turn.isEmpty else { throw ValidationError("--ice-transport-policy relay needs a --turn server") }
        if let portRange, Self.parsePortRange(portRange) == nil { throw ValidationError("--port-range must be A-B with 1 <= A <= B <= 65535") }
        if port != nil && portRange != nil { throw ValidationError("choose one of --port and --port-range") }
        if port == 0 { throw ValidationError("--port must be 1...65535") }
        let sources = [play != nil, tone != nil, alsa != nil, echo].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("choose one of --play, --tone, --alsa, --echo") }
    }

    /// "40000-40099" → 40000...40099 (nil when malformed, reversed, or including port 0).
    /// What to say when the kernel granted the shared port less receive buffer than `asked`
    /// (`reported`: SO_RCVBUF as read back, twice what was granted); nil when it granted it all.
    static func receiveBufferWarning(reported: Int, asked: Int) -> String? {
        let granted = reported / 2
        guard granted < asked else { return nil }
        return "the shared port's receive buffer is \(granted >> 10) KiB of the \(asked >> 10) KiB asked "
            + "(net.core.rmem_max; root or CAP_NET_ADMIN is granted more): with many participants, bursts may be lost"
    }

    static func parsePortRange(_ text: String) -> ClosedRange<UInt16>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = UInt16(parts[0]), let high = UInt16(parts[1]), low >= 1, low <= high else { return nil }
        return low...high
    }

    func run() async throws {
        let logFormat = LogFormat(rawValue: logFormat) ?? .plain
        let level = ProcessInfo.processInfo.environment["PEERD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, format: logFormat, level: level) }
        let logger = Logger(label: "peerd")
        var options = RoomBotOptions(url: url, room: room, password: password, name: name,
                                     id: id ?? "peerd-" + String(UInt32.random(in: 0...UInt32.max), radix: 36))
        options.recordDirectory = record
        options.format = RecordFormat(rawValue: format) ?? .ogg
        options.mixRoom = mix
        if let play { options.audio = .file(play) }
        if let tone { options.audio = .tone(tone) }
        if let alsa { options.audio = .alsa(alsa) }
        if echo { options.audio = .echo }
        options.muted = muted
        options.trickle = trickle == "on"
        options.offerDelay = .milliseconds(Int64(offerDelay * 1000))
        options.interfaces = InterfaceFilter(includeLoopback: loopback)
        options.statsInterval = .milliseconds(Int64(statsInterval * 1000))
        options.statsPath = statsFile
        options.mdnsTimeout = .milliseconds(Int64(mdnsTimeout * 1000))
        if let caFile { options.trustedCAPEM = try String(contentsOfFile: caFile, encoding: .utf8) }
        for text in stun {
            let url = try ICEServerURL(parsing: text)
            let ip: IPAddress?
            switch url.host {
            case .ip(let address): ip = address
            case .name(let name): ip = resolveIPv4(name)
            }
            guard let ip else { throw ValidationError("\(text): cannot resolve the STUN server's name") }
            options.stunServers.append(TransportAddress(ip: ip, port: url.port))
        }
        if !turn.isEmpty {
            let server = try ICEServer(urls: turn, username: turnUsername, credential: turnCredential)
            options.turnServers = TURNServerConfiguration.servers(from: [server], resolve: resolveIPv4)
            guard !options.turnServers.isEmpty else {
                throw ValidationError("no usable --turn server: peerd needs turn: URLs over UDP with a resolvable host")
            }
        }
        options.iceTransportPolicy = ICETransportPolicy(rawValue: iceTransportPolicy) ?? .all

        let loop = MultiThreadedEventLoopGroup.singleton.next()
        options.portRange = portRange.flatMap(Self.parsePortRange)
        if let port {
            let addresses = NetworkInterfaces.addresses().filter { options.interfaces.admits($0) }.map(\.address)
            let unique = addresses.reduce(into: [IPAddress]()) { if !$0.contains($1) { $0.append($1) } }
            // Every participant's stream arrives on these sockets: large batches, a large kernel buffer, paced reads.
            options.sharedPort = try await SharedUDPPort.bind(addresses: unique, port: port,
                                                              configuration: SharedUDPPort.serverConfiguration, eventLoop: loop)
            logger.info("one UDP port for every connection: \(options.sharedPort?.localAddresses.map(\.description) ?? [])")
            if let sockets = options.sharedPort?.sockets, let asked = SharedUDPPort.serverConfiguration.socketBufferBytes,
               let reported = try? await sockets.receiveBufferSizes().values.min(),
               let warning = Self.receiveBufferWarning(reported: reported, asked: asked) {
                logger.warning("\(warning)")
            }
        }
        logger.info("SRTP: \(SRTPCrypto.summary)")
        let bot = try RoomBot(options: options, loop: loop, logger: logger)
        let runner = Task { await bot.run() }
        let roomID = options.room
        let statusTask: Task<Void, Never>? = status && logFormat == .plain && Console.shared.isTTY ? Task {
            while !Task.isCancelled {
                let summaries = await bot.summaries()
                Console.shared.setStatus(StatusLine.render(room: roomID, muted: await bot.isMuted, summaries: summaries))
                try? await Task.sleep(for: .milliseconds(500))
            }
        } : nil
        await waitForStop(seconds: duration)
        statusTask?.cancel()
        Console.shared.setStatus(nil)
        logger.info("leaving the room")
        let deadline = Task { try await Task.sleep(for: .seconds(2)); logger.warning("shutdown took over 2 s") }
        await bot.stop()
        await options.sharedPort?.close()
        deadline.cancel()
        runner.cancel()
        for summary in await bot.summaries() {
            logger.info("\(summary.id): \(summary.packetsReceived) packets\(summary.recording.map { ", recorded to \($0)" } ?? "")")
        }
        let earlier = await bot.departuresNotSummarized()
        if earlier > 0 { logger.info("and \(earlier) earlier participant(s) who left (see events.jsonl)") }
    }
}

/// The first IPv4 address of a host name (getaddrinfo), for STUN and TURN servers given by name.
func resolveIPv4(_ name: String) -> IPAddress? {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return nil }
    defer { freeaddrinfo(result) }
    guard let address = first.pointee.ai_addr, first.pointee.ai_family == AF_INET else { return nil }
    return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { .v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)) }
}

/// Returns on SIGINT, SIGTERM, or after `seconds`.
func waitForStop(seconds: Double?) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = StopOnce(continuation)
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { once.fire() }
            source.resume()
            once.retain(source)
        }
        if let seconds {
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { once.fire() }
        }
    }
}

/// Resumes a continuation once, from whichever signal or timer comes first.
final class StopOnce: @unchecked Sendable {
    // Guarded by `lock`; that is what makes this class safe to share between the signal sources.
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    func retain(_ source: any DispatchSourceSignal) { lock.withLock { sources.append(source) } }

    func fire() {
        let pending = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            defer { continuation = nil }
            return continuation
        }
        pending?.resume()
    }
}
