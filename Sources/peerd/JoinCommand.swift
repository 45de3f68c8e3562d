import ArgumentParser
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
            peerd registers with the room server, joins the room, and keeps exactly one connection per
            remote participant whatever the offer order (it answers offers, offers to participants who do
            not offer within --offer-delay, and is the polite side on glare).

            Examples:
              peerd join ws://127.0.0.1:8080/ws --room general --tone 440 --record rec/
              peerd join wss://rooms.example.org/ws --room important --password secret --play greeting.ogg
              peerd join ws://127.0.0.1:8080/ws --room general --echo --stun stun:stun.example.org:3478
            """
    )

    @Argument(help: "The room server's WebSocket URL (ws:// or wss://).")
    var url: String

    @Option(help: "The room to join (e.g. general).")
    var room: String

    @Option(help: "Room password, for private rooms.")
    var password: String?

    @Option(help: "Display name shown to the other participants.")
    var name = "peerd"

    @Option(help: "Participant id (default: peerd-<random>).")
    var id: String?

    @Option(help: "Record every remote participant to DIR/<participant-id>.ogg|wav, and events to DIR/events.jsonl.")
    var record: String?

    @Option(help: "Recording format: ogg (Opus pass-through, no re-encoding) or wav (decoded, with loss concealment).")
    var format = "ogg"

    @Option(help: "Play this file into the room (Ogg Opus .ogg/.opus sent as is, or 48 kHz WAV), looped.")
    var play: String?

    @Option(help: "Send a sine tone of this frequency in Hz.")
    var tone: Double?

    @Option(help: "Capture from this ALSA device (e.g. default, hw:0).")
    var alsa: String?

    @Flag(help: "Send back what peerd hears.")
    var echo = false

    @Flag(help: "Join muted (the others see the microphone off).")
    var muted = false

    @Option(help: "STUN server as browsers take it, e.g. stun:stun.example.org:3478 (repeatable).")
    var stun: [String] = []

    @Option(help: "Trickle ICE: on (candidates one by one) or off (all candidates inside the SDP).")
    var trickle = "on"

    @Flag(help: "Also use loopback addresses (for tests on one machine).")
    var loopback = false

    @Option(help: "Seconds to wait for a participant's offer before offering ourselves.")
    var offerDelay = 4.0

    @Option(help: "Leave after this many seconds (default: until SIGINT/SIGTERM).")
    var duration: Double?

    @Option(help: "Trust this CA certificate (PEM file) for wss://, in addition to the system store.")
    var caFile: String?

    func validate() throws {
        guard url.hasPrefix("ws://") || url.hasPrefix("wss://") else { throw ValidationError("the URL must start with ws:// or wss://") }
        guard ["ogg", "wav"].contains(format) else { throw ValidationError("--format must be ogg or wav") }
        guard ["on", "off"].contains(trickle) else { throw ValidationError("--trickle must be on or off") }
        let sources = [play != nil, tone != nil, alsa != nil, echo].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("choose one of --play, --tone, --alsa, --echo") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["PEERD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        let logger = Logger(label: "peerd")
        var options = RoomBotOptions(url: url, room: room, password: password, name: name,
                                     id: id ?? "peerd-" + String(UInt32.random(in: 0...UInt32.max), radix: 36))
        options.recordDirectory = record
        options.format = RecordFormat(rawValue: format) ?? .ogg
        if let play { options.audio = .file(play) }
        if let tone { options.audio = .tone(tone) }
        if let alsa { options.audio = .alsa(alsa) }
        if echo { options.audio = .echo }
        options.muted = muted
        options.trickle = trickle == "on"
        options.offerDelay = .milliseconds(Int64(offerDelay * 1000))
        options.interfaces = InterfaceFilter(includeLoopback: loopback)
        if let caFile { options.trustedCAPEM = try String(contentsOfFile: caFile, encoding: .utf8) }
        for text in stun {
            let url = try ICEServerURL(parsing: text)
            guard case .ip(let ip) = url.host else { throw ValidationError("\(text): give the STUN server as an IP address") }
            options.stunServers.append(TransportAddress(ip: ip, port: url.port))
        }

        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger)
        let runner = Task { await bot.run() }
        await waitForStop(seconds: duration)
        logger.info("leaving the room")
        let deadline = Task { try await Task.sleep(for: .seconds(2)); logger.warning("shutdown took over 2 s") }
        await bot.stop()
        deadline.cancel()
        runner.cancel()
        for summary in await bot.summaries() {
            logger.info("\(summary.id): \(summary.packetsReceived) packets\(summary.recording.map { ", recorded to \($0)" } ?? "")")
        }
    }
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
