import Foundation
import ICE
import Logging
import NIOPosix
import Signaling
import Testing
@testable import peerd

/// peerd in a room with real headless Chromium pages (Debian's `chromium`), each with its own fake
/// tone: checks both directions by dominant frequency, and prints a table.
@Suite(.serialized) struct ChromiumInteropTests {
    struct Row {
        var case_: String
        var browser: String
        var peerdHeardHz: Double?
        var peerdAudibleSeconds: Double
        var browserHeardHz: Int?
    }

    static let rows = RowLog()

    final class RowLog: @unchecked Sendable {
        // Guarded by `lock`.
        private let lock = NSLock()
        private var rows: [Row] = []
        func add(_ row: Row) {
            lock.withLock { rows.append(row) }
            print("| \(row.case_) | \(row.browser) | peerd heard \(row.peerdHeardHz.map { "\(Int($0)) Hz" } ?? "nothing") for \(String(format: "%.1f", row.peerdAudibleSeconds)) s | browser heard peerd at \(row.browserHeardHz.map { "\($0) Hz" } ?? "nothing") |")
        }
    }

    func requireChromium() throws -> String {
        guard let path = Chromium.find() else {
            Issue.record("Chromium is not installed: run scripts/setup.sh --with-test-tools (apt-get install chromium)")
            throw CancellationError()
        }
        return path
    }

    func startServer() async throws -> (RoomServer, Task<Void, any Error>, Int) {
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let task = Task { try await server.run() }
        let port = try #require(await server.waitUntilListening())
        return (server, task, port)
    }

    func startBot(port: Int, tone: Double, directory: String, trickle: Bool = true) throws -> (RoomBot, Task<Void, Never>) {
        try Interop.startBot(port: port, tone: tone, directory: directory, trickle: trickle)
    }

    /// Waits until peerd has received `packets` from every browser and every browser hears peerd.
    func waitForAudio(bot: RoomBot, browsers: [Chromium.Session], peers: Int, timeout: Duration = .seconds(25)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let summaries = await bot.summaries()
            let peerdHears = summaries.filter { $0.packetsReceived > 150 }.count >= peers
            let browsersHear = browsers.allSatisfy { ($0.heardFrequencies()["peerd-test"] ?? 0) > 0 }
            if peerdHears && browsersHear { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    func run(case name: String, tones: [Double], peerdFirst: Bool, trickle: Bool) async throws {
        let chromium = try requireChromium()
        let directory = NSTemporaryDirectory() + "peerd-interop-\(UUID().uuidString)"
        var keep = false
        defer {
            if keep { try? FileManager.default.moveItem(atPath: directory, toPath: NSTemporaryDirectory() + "peerd-interop-failed-\(UUID().uuidString)") }
            try? FileManager.default.removeItem(atPath: directory)
        }
        let (server, serverTask, port) = try await startServer()
        var bot: RoomBot?
        var botTask: Task<Void, Never>?
        if peerdFirst {
            (bot, botTask) = try startBot(port: port, tone: 440, directory: directory, trickle: trickle)
            try await Task.sleep(for: .milliseconds(500))
        }
        var sessions: [(String, Chromium.Session)] = []
        for (index, tone) in tones.enumerated() {
            let browserName = "chr\(index + 1)"
            let url = "http://127.0.0.1:\(port)/?autojoin=1&processing=0&name=\(browserName)&room=general&trickle=\(trickle ? 1 : 0)"
            sessions.append((browserName, try Chromium.start(binary: chromium, url: url, toneHz: tone)))
        }
        if !peerdFirst {
            try await Task.sleep(for: .seconds(3))
            (bot, botTask) = try startBot(port: port, tone: 440, directory: directory, trickle: trickle)
        }
        let peerd = try #require(bot)
        try await waitForAudio(bot: peerd, browsers: sessions.map(\.1), peers: tones.count)
        // Let a few more seconds of audio flow both ways before measuring.
        try await Task.sleep(for: .seconds(3))
        let summaries = await peerd.summaries()
        var heardByBrowsers: [String: Int] = [:]
        for (browserName, session) in sessions { heardByBrowsers[browserName] = session.heardFrequencies()["peerd-test"] }
        // peerd's own talk detector sent говорит when its tone started: every page must have shown it.
        for (browserName, session) in sessions {
            #expect(session.sawSpeaking("peerd-test"), "\(browserName) showed peerd speaking")
        }
        await peerd.stop()
        botTask?.cancel()
        for (_, session) in sessions { _ = session.stop() }
        await server.shutdown()
        serverTask.cancel()

        #expect(summaries.count == tones.count, "peerd has one connection per browser")
        for (index, tone) in tones.enumerated() {
            let browserName = "chr\(index + 1)"
            // The page registers with a random id; peerd's summary ids are those ids. Match by recorded tone.
            let analyses = summaries.compactMap { $0.recording.flatMap(RecordingAnalysis.analyze(path:)) }
            let match = analyses.first { abs(($0.dominantHz ?? 0) - tone) < 25 }
            Self.rows.add(Row(case_: name, browser: "\(browserName) (\(Int(tone)) Hz)", peerdHeardHz: match?.dominantHz,
                              peerdAudibleSeconds: match?.audibleSeconds ?? 0, browserHeardHz: heardByBrowsers[browserName]))
            if match == nil { keep = true }
            #expect(match != nil, "peerd recorded \(browserName)'s \(Int(tone)) Hz tone (recordings: \(analyses.map { $0.dominantHz ?? 0 }); \(summaries.map { "\($0.id) \($0.packetsReceived) packets of \($0.averagePayloadBytes) bytes, level \($0.lastLevel) -dBov, \($0.recorder)" }))")
            #expect((match?.audibleSeconds ?? 0) >= 1.5, "at least 1.5 s of \(browserName) recorded")
            let heard = heardByBrowsers[browserName] ?? 0
            #expect(abs(heard - 440) <= 25, "\(browserName) hears peerd's 440 Hz tone (heard \(heard) Hz)")
        }
        let events = (try? String(contentsOfFile: directory + "/events.jsonl", encoding: .utf8)) ?? ""
        #expect(events.contains("\"event\":\"join\""), "events.jsonl records joins")
    }

    @Test func oneChromiumPeerdJoinsLastTrickle() async throws {
        try await run(case: "peerd joins last, trickle", tones: [660], peerdFirst: false, trickle: true)
    }

    @Test func oneChromiumPeerdJoinsFirstNonTrickle() async throws {
        try await run(case: "peerd joins first, full SDP", tones: [660], peerdFirst: true, trickle: false)
    }

    @Test func twoChromiumsAndPeerd() async throws {
        try await run(case: "two browsers, peerd joins first", tones: [660, 880], peerdFirst: true, trickle: true)
    }
}
