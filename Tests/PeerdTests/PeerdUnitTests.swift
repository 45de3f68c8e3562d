import Testing
@testable import peerd

@Suite struct SafeFileNameTests {
    @Test func hostileIdsStayInsideTheDirectory() {
        for id in ["../../x", "/etc/passwd", "..", ".hidden", "a/b", "a\\b", "\u{0}nul", String(repeating: "x", count: 500), "", "имя"] {
            let name = SafeFileName.from(participantID: id)
            #expect(!name.contains("/") && !name.contains("\\") && !name.hasPrefix(".") && !name.isEmpty, "\(id) -> \(name)")
            #expect(name.utf8.count <= 64 + 9, "\(name)")
            #expect(name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) })
        }
    }

    @Test func plainIdsAreKeptAndDistinctIdsStayDistinct() {
        #expect(SafeFileName.from(participantID: "chr1") == "chr1")
        #expect(SafeFileName.from(participantID: "user-42_a.b") == "user-42_a.b")
        #expect(SafeFileName.from(participantID: "a/b") != SafeFileName.from(participantID: "a_b"))
        #expect(SafeFileName.from(participantID: "a/b") != SafeFileName.from(participantID: "a\\b"))
    }
}

import Foundation
import ICE
import Logging
import NIOPosix
import Signaling
import Wire

/// Bad input reaching the bot through the room: signals from strangers and from those who left, a
/// flood of offers, broken SDP, hostile ids, an unwritable record directory. The bot is not
/// connected to a server here; messages are injected as if the room server had sent them.
@Suite(.serialized) struct BotBadInputTests {
    func makeBot(directory: String? = nil) throws -> RoomBot {
        var options = RoomBotOptions(url: "ws://127.0.0.1:9/ws", room: "general", name: "peerd", id: "peerd-test")
        options.recordDirectory = directory
        options.interfaces = .loopbackOnly
        options.offerDelay = .seconds(60)
        options.statsInterval = .zero
        return try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test.bad-input"))
    }

    func offer(from: String, to: String = "peerd-test", sdp: String = "v=0\r\nthis is not SDP\r\n") -> ServerMessage {
        .signal(WebRTCSignal(from: from, to: to, room: "general", data: .offer(sdp: sdp)))
    }

    func members(_ ids: [String]) -> ServerMessage {
        .roomParticipantsUpdated(roomID: "general", participants: (ids + ["peerd-test"]).map { Participant(id: $0, name: $0) })
    }

    @Test func signalsFromStrangersAndForOthersAreIgnored() async throws {
        let bot = try makeBot()
        await bot.inject(offer(from: "ghost"))
        await bot.inject(.signal(WebRTCSignal(from: "ghost", to: "peerd-test", room: "general",
                                              data: .candidate(ICECandidateInit(candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host")))))
        await bot.inject(members(["alice"]))
        await bot.inject(offer(from: "alice", to: "someone-else"))
        #expect(await bot.ignoredSignalCount == 3)
        #expect(await bot.statistics().map(\.participant) == ["alice"], "no connection for strangers")
        await bot.stop()
    }

    @Test func signalsFromAParticipantWhoLeftAreIgnored() async throws {
        let bot = try makeBot()
        await bot.inject(members(["alice", "bob"]))
        await bot.inject(.leftRoom(roomID: "general", userID: "alice"))
        #expect(await bot.statistics().map(\.participant) == ["bob"])
        await bot.inject(offer(from: "alice"))
        #expect(await bot.ignoredSignalCount == 1)
        #expect(await bot.statistics().map(\.participant) == ["bob"], "the one who left gets no new connection")
        await bot.stop()
    }

    @Test func aFloodOfOffersIsCutOffAndOtherConnectionsStay() async throws {
        let bot = try makeBot()
        await bot.inject(members(["flooder", "bob"]))
        for _ in 0..<500 { await bot.inject(offer(from: "flooder")) }
        #expect(await bot.ignoredSignalCount == 500 - RoomBot.maximumOffersPerWindow)
        let participants = await bot.statistics().map(\.participant)
        #expect(participants == ["bob", "flooder"])
        // Broken SDP was refused: no connection state moved.
        let flooder = try #require(await bot.statistics().first { $0.participant == "flooder" })
        #expect(!flooder.dtlsConnected && flooder.connectionState == "waitingForOffer")
        await bot.stop()
    }

    /// A bot that records a room for days sees thousands of participants come and go: what it keeps
    /// about those who left (their summaries and final statistics) is the last `keptDepartures`.
    @Test func aBotKeepsOnlyTheLastDeparturesOfALongRoom() async throws {
        let bot = try makeBot()
        let batches = 6, perBatch = 50
        for batch in 0..<batches {
            let ids = Set((0..<perBatch).map { "visitor-\(batch)-\($0)" })
            await bot.inject(members(ids.sorted()))
            // Each gets a connection (a driver with its sockets) before leaving.
            var attached = false
            for _ in 0..<200 where !attached {
                let present = await bot.summaries().filter { ids.contains($0.id) && $0.phase != "closed" }
                attached = present.count == perBatch && present.allSatisfy { $0.iceState != "-" }
                if !attached { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(attached, "batch \(batch): every visitor has a connection")
            await bot.inject(members([]))
        }
        let summaries = await bot.summaries()
        #expect(summaries.count == RoomBot.keptDepartures)
        #expect(summaries.allSatisfy { $0.phase == "closed" })
        #expect(await bot.departuresNotSummarized() == batches * perBatch - RoomBot.keptDepartures)
        let kept = Set(summaries.map(\.id))
        let dropped = batches * perBatch - RoomBot.keptDepartures
        #expect((0..<perBatch).filter { kept.contains("visitor-0-\($0)") }.count == perBatch - dropped, "the oldest are dropped")
        #expect((1..<batches).allSatisfy { batch in (0..<perBatch).allSatisfy { kept.contains("visitor-\(batch)-\($0)") } },
                "every later departure is kept")
        #expect(await bot.statistics().isEmpty, "no connection left")
        await bot.stop()
    }

    /// getStats' lastPacketReceivedTimestamp: the last packet's arrival on the wallclock, from the
    /// monotonic arrival time the receive path keeps (no wallclock read per packet).
    @Test func lastPacketTimestampIsTheArrivalOnTheWallclock() {
        let peer = RemotePeer(id: "p", offerDeadline: .now())
        let arrival = MonotonicTime(nanoseconds: 50_000_000_000)
        let wallclock = Date(timeIntervalSince1970: 1_800_000_000.25)
        #expect(peer.statistics(wallclock: wallclock, now: arrival).inboundRtp == nil, "no packet yet")
        peer.packetsReceived = 1
        peer.lastPacketAt = arrival
        let later = peer.statistics(wallclock: wallclock, now: arrival + .milliseconds(1_500))
        #expect(later.inboundRtp?.lastPacketReceivedTimestamp == 1_799_999_998_750)
        let atOnce = peer.statistics(wallclock: wallclock, now: arrival)
        #expect(atOnce.inboundRtp?.lastPacketReceivedTimestamp == 1_800_000_000_250)
    }

    @Test func hostileIdsRecordInsideTheDirectoryOnly() throws {
        let base = NSTemporaryDirectory() + "peerd-hostile-\(UUID().uuidString)"
        let directory = base + "/rec"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        for id in ["../x", "../../etc/x", "/tmp/abs", "..", "a\u{0}b", String(repeating: "é", count: 5000)] {
            let peer = RemotePeer(id: id, offerDeadline: .now())
            peer.openRecorder(directory: directory, format: .wav, stereo: false)
            #expect(peer.recordingError == nil, "\(id.prefix(20)): \(peer.recordingError ?? "")")
            #expect(peer.finishRecording() == nil)
        }
        let inside = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(inside.count == 6 && inside.allSatisfy { $0.hasSuffix(".wav") && !$0.hasPrefix(".") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: base) == ["rec"], "nothing written next to DIR")
    }

    /// A bot on `url` whose log lines are collected, running; its `run()` task is returned too.
    private func loggingBot(url: String, lines: CollectedLog) throws -> (RoomBot, Task<Void, Never>) {
        var options = RoomBotOptions(url: url, room: "general", name: "peerd", id: "peerd-test")
        options.interfaces = .loopbackOnly
        options.statsInterval = .zero
        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(),
                              logger: Logger(label: "test.bot") { _ in CollectingLogHandler(log: lines) })
        return (bot, Task { await bot.run() })
    }

    @Test func unreachableRoomServerIsLoggedAndStopIsPrompt() async throws {
        let lines = CollectedLog()
        let (bot, task) = try loggingBot(url: "ws://127.0.0.1:9/ws", lines: lines)
        try await lines.waitFor("signaling disconnected", seconds: 10)
        #expect(lines.contains("signaling disconnected"), "a clear log line when the room server cannot be reached: \(lines.all)")
        let start = ContinuousClock.now
        await bot.stop()
        task.cancel()
        #expect(ContinuousClock.now - start < .seconds(2), "stop() returns within 2 s even without a server")
    }

    @Test func stoppingClosesSignalingWithoutAWarning() async throws {
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let serverTask = Task { try await server.run() }
        defer { serverTask.cancel() }
        let port = try #require(await server.waitUntilListening())
        let lines = CollectedLog()
        let (bot, task) = try loggingBot(url: "ws://127.0.0.1:\(port)/ws", lines: lines)
        try await lines.waitFor("signaling connected", seconds: 10)
        #expect(lines.contains("signaling connected"), "\(lines.all)")
        await bot.stop()
        task.cancel()
        try await lines.waitFor("signaling closed", seconds: 3)
        // peerd closed the connection itself: an info line, no warning (the demo printed one at every exit).
        #expect(lines.contains("info signaling closed"), "\(lines.all)")
        #expect(!lines.contains("signaling disconnected"), "\(lines.all)")
        #expect(!lines.all.contains { $0.hasPrefix("warning") || $0.hasPrefix("error") }, "\(lines.all)")
    }

    @Test func unwritableRecordDirectoryIsAClearError() throws {
        let file = NSTemporaryDirectory() + "peerd-file-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        defer { try? FileManager.default.removeItem(atPath: file) }
        // A path under a regular file, and one on a read-only file system (even root cannot write there).
        for path in [file + "/rec", "/proc/peerd-\(UUID().uuidString)"] {
            #expect(throws: (any Error).self, "\(path)") { _ = try makeBot(directory: path) }
        }
    }
}

/// Statistics, logs and the status line.
@Suite struct ConsoleAndStatsTests {
    @Test func audioLevelIsLinearLikeGetStats() {
        #expect(linearAudioLevel(dBov: 0) == 1)
        #expect(linearAudioLevel(dBov: 127) == 0)
        #expect(abs(linearAudioLevel(dBov: 20) - 0.1) < 1e-12)
    }

    @Test func jsonLogLinesAreOneObjectEach() throws {
        let line = ConsoleLogHandler.format(.json, label: "peerd", level: .warning, message: "refused the offer of \"x\"\nnext",
                                            metadata: ["participant": "chr1"], date: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning" && object["label"] as? String == "peerd")
        #expect(object["message"] as? String == "refused the offer of \"x\"\nnext")
        #expect((object["metadata"] as? [String: String])?["participant"] == "chr1")
        #expect((object["time"] as? String)?.hasPrefix("2027-01-15T08:00:00") == true)
        let plain = ConsoleLogHandler.format(.plain, label: "peerd", level: .info, message: "hello", metadata: [:], date: Date())
        #expect(plain.hasSuffix(" info peerd: hello"))
    }

    @Test func statusLineShowsParticipantsStatesLevelsAndSpeaking() {
        let peers = [PeerSummary(id: "chr1", phase: "connected", packetsReceived: 10, speaking: true, recording: nil, iceState: "connected", lastLevel: 15),
                     PeerSummary(id: "ff2", phase: "answering", packetsReceived: 0, speaking: false, recording: nil, iceState: "checking")]
        let line = StatusLine.render(room: "general", muted: true, summaries: peers)
        #expect(line.hasPrefix("general: 2 participants · muted"))
        #expect(line.contains("chr1 connected/connected ▮▮▮ speaking"))
        #expect(line.contains("ff2 answering/checking") && !line.contains("ff2 answering/checking ▮"))
    }

    @Test func joinHelpExplainsEveryOptionWithExamples() {
        let help = JoinCommand.helpMessage(columns: 200)
        for option in ["--room", "--password", "--name", "--id", "--record", "--format", "--play", "--tone", "--alsa", "--echo",
                       "--muted", "--stun", "--trickle", "--log-format", "--stats-interval", "--stats-file", "--mdns-timeout",
                       "--no-status", "--duration", "--offer-delay", "--turn", "--turn-username", "--turn-credential",
                       "--ice-transport-policy"] {
            #expect(help.contains(option), "\(option) missing from peerd join --help")
        }
        #expect(help.contains("Examples:") && help.contains("peerd join ws://"))
    }

    @Test func turnOptionsAreTakenAsBrowsersTakeThem() throws {
        let base = ["ws://127.0.0.1:8080/ws", "--room", "general"]
        _ = try JoinCommand.parse(base + ["--turn", "turn:127.0.0.1:3478?transport=udp", "--turn-username", "u", "--turn-credential", "p",
                                          "--ice-transport-policy", "relay"])
        _ = try JoinCommand.parse(base + ["--stun", "stun:127.0.0.1:3478", "--turn", "turn:127.0.0.1", "--turn", "turn:127.0.0.2:3479",
                                          "--turn-username", "u", "--turn-credential", "p"])
        // Like RTCIceServer: a TURN URL without a username and credential is refused; relay needs TURN.
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--turn", "turn:127.0.0.1:3478"]) }
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--turn", "turn:127.0.0.1", "--turn-username", "u"]) }
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--ice-transport-policy", "relay"]) }
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--ice-transport-policy", "none"]) }
        #expect(resolveIPv4("localhost") == .v4(0x7F00_0001))
        #expect(resolveIPv4("no-such-host.invalid") == nil)
    }
}

@Suite struct ServeCommandTests {
    @Test func pingIntervalIsParsedAndBounded() throws {
        #expect(try ServeCommand.parse([]).pingPeriod == .seconds(20))
        #expect(try ServeCommand.parse(["--ping-interval", "1.5"]).pingPeriod == .milliseconds(1500))
        for bad in ["0", "0.01", "3601", "nan", "-2"] {
            #expect(throws: (any Error).self, "--ping-interval \(bad) accepted") { _ = try ServeCommand.parse(["--ping-interval", bad]) }
        }
    }
}

@Suite struct PrefetchRefreshTests {
    @Test func hintsAreRefreshedEverySecondForTenSecondsThenEveryTenSeconds() {
        let visits = (1...1_000).filter { RemotePeer.refreshesPrefetchHints(atVisit: $0) }
        #expect(visits == Array(stride(from: 1, through: 91, by: 10)) + Array(stride(from: 101, through: 901, by: 100)))
    }
}

/// Log lines collected for assertions. Guarded by `lock`, which makes the `@unchecked Sendable` safe.
final class CollectedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    func contains(_ text: String) -> Bool { lock.withLock { lines.contains { $0.contains(text) } } }
    var all: [String] { lock.withLock { lines } }

    /// Returns once a line contains `text`, or after `seconds` (the caller checks).
    func waitFor(_ text: String, seconds: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline, !contains(text) { try await Task.sleep(for: .milliseconds(50)) }
    }
}

struct CollectingLogHandler: LogHandler {
    let log: CollectedLog
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { log.append("\(event.level) \(event.message)") }
}
