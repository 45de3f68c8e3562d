import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ICE
import Logging
import NIOPosix
import Signaling
import Testing
@testable import peerd

/// What the interop tests share: a room server that can be restarted on its port, the peerd bot
/// in-process, headless browser pages (Chromium and Firefox) that report to the room server and take
/// commands from it, and a who-heard-whom table.
enum Interop {
    static let peerdID = "peerd-test"
    static let peerdTone = 440.0
    static let tolerance = 25.0

    /// Starts peerd as a room participant (in this process; one built binary for all tests).
    static func startBot(port: Int, tone: Double = peerdTone, directory: String, trickle: Bool = true,
                         offerDelay: Duration = .seconds(8), logger: Logger = Logger(label: "test.peerd")) throws -> (RoomBot, Task<Void, Never>) {
        try startBot(port: port, audio: .tone(tone), directory: directory, trickle: trickle, offerDelay: offerDelay, logger: logger)
    }

    /// A bot that sends `audio` (`.silence`: nothing at all) and records to `directory`.
    static func startBot(port: Int, audio: OutgoingAudio, directory: String, trickle: Bool = true,
                         offerDelay: Duration = .seconds(8), logger: Logger = Logger(label: "test.peerd")) throws -> (RoomBot, Task<Void, Never>) {
        var options = RoomBotOptions(url: "ws://127.0.0.1:\(port)/ws", room: "general", name: "peerd", id: peerdID)
        options.recordDirectory = directory
        options.audio = audio
        options.trickle = trickle
        // Browsers offer to every participant they see; waiting long enough means peerd answers them
        // (a page answers an early offer before its microphone is open, and then sends silence).
        options.offerDelay = offerDelay
        options.interfaces = InterfaceFilter(includeLoopback: true, onlyAddresses: [IPAddress("127.0.0.1")!])
        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger)
        return (bot, Task { await bot.run() })
    }

    /// Polls `condition` until it holds or `timeout` passes; prints how long it took. Returns whether it held.
    static func waitUntil(_ what: String, timeout: Duration, poll: Duration = .milliseconds(250),
                          _ condition: () async -> Bool) async -> Bool {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if await condition() {
                print("[interop] \(what): after \(seconds(ContinuousClock.now - start)) s")
                return true
            }
            try? await Task.sleep(for: poll)
        }
        print("[interop] \(what): NOT within \(seconds(timeout)) s")
        return false
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    static func near(_ hz: Double?, _ target: Double) -> Bool {
        guard let hz else { return false }
        return abs(hz - target) <= tolerance
    }

    static func temporaryDirectory(_ prefix: String) -> String {
        NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    }

    /// Whether an Ogg file ends with an end-of-stream page (the recorder finalized it).
    static func oggIsFinalized(path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path), data.count > 27 else { return false }
        let bytes = [UInt8](data)
        var index = bytes.count - 27
        while index >= 0 {
            if bytes[index] == 0x4F, bytes[index + 1] == 0x67, bytes[index + 2] == 0x67, bytes[index + 3] == 0x53 {
                return bytes[index + 5] & 0x04 != 0
            }
            index -= 1
        }
        return false
    }
}

/// Captures the bot's log lines so tests can check what it decided (glare, refusals).
final class LogCapture: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    func count(containing text: String) -> Int { lock.withLock { lines.filter { $0.contains(text) }.count } }
    func all() -> [String] { lock.withLock { lines } }

    var logger: Logger {
        Logger(label: "test.peerd") { _ in Handler(capture: self) }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.append("\(event.level) \(event.message)")
            if event.level >= .warning { FileHandle.standardError.write(Data("peerd \(event.level): \(event.message)\n".utf8)) }
        }
    }
}

/// What a page reports (app.js `status`, posted to `/report/<name>` every second).
struct PageStatus: Decodable, Sendable {
    struct Peer: Decodable, Sendable {
        var state: String?
        var dominantHz: Int?
        var level: Double?
        /// getStats' remote-inbound-rtp of the page's outgoing audio: what the other side's RTCP receiver reports said.
        var remoteInbound: RemoteInbound?
    }

    struct RemoteInbound: Decodable, Sendable {
        var packetsLost: Int?
        var fractionLost: Double?
        var jitter: Double?
        var roundTripTime: Double?
        var roundTripTimeMeasurements: Int?
    }

    var id: String
    var name: String
    var joined: Bool?
    var peers: [String: Peer]?
    var seenSpeaking: [String: Bool]?
    var speakingAnnounced: [String: [Bool]]?
    var microphoneAnnounced: [String: [Bool]]?
    var microphones: [String: Bool]?
    var glares: Int?
    var commandsDone: Int?

    /// The dominant frequency the page hears from `id` (nil if no connection or silence).
    func heardHz(_ id: String) -> Double? {
        guard let hz = peers?[id]?.dominantHz, hz > 0 else { return nil }
        return Double(hz)
    }

    func connected(to id: String) -> Bool { peers?[id]?.state == "connected" }
}

/// The room server on a fixed port (it can be restarted there mid-call), and the HTTP side the pages
/// report to and take commands from.
actor InteropRoom {
    private(set) var server: RoomServer
    private var serverTask: Task<Void, any Error>
    let port: Int
    private var commandSeq: [String: Int] = [:]
    private let session: URLSession

    init() async throws {
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let task = Task { try await server.run() }
        guard let port = await server.waitUntilListening() else { throw InteropError.serverDidNotStart }
        self.server = server
        self.serverTask = task
        self.port = port
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.timeoutIntervalForRequest = 5
        session = URLSession(configuration: configuration)
    }

    enum InteropError: Error { case serverDidNotStart }

    nonisolated func pageURL(name: String, trickle: Bool = true, control: Bool = false) -> String {
        "http://127.0.0.1:\(port)/?autojoin=1&processing=0&name=\(name)&room=general&trickle=\(trickle ? 1 : 0)\(control ? "&control=1" : "")"
    }

    /// Stops the room server (every WebSocket drops), leaves the port closed for `downFor` (reconnects
    /// are refused meanwhile) and starts a fresh, empty one on the same port.
    func restartServer(downFor: Duration = .zero) async throws {
        await server.shutdown()
        _ = try? await serverTask.value
        try await Task.sleep(for: downFor)
        let fresh = RoomServer(configuration: .init(host: "127.0.0.1", port: port))
        let task = Task { try await fresh.run() }
        guard await fresh.waitUntilListening() != nil else { throw InteropError.serverDidNotStart }
        server = fresh
        serverTask = task
    }

    func shutdown() async {
        await server.shutdown()
        serverTask.cancel()
        session.invalidateAndCancel()
    }

    /// Every page's last report, by page name.
    func reports() async -> [String: PageStatus] {
        guard let url = URL(string: "http://127.0.0.1:\(port)/reports"),
              let (data, _) = try? await session.data(from: url) else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        var result: [String: PageStatus] = [:]
        for (name, value) in object where !name.hasPrefix("cmd-") {
            guard let json = try? JSONSerialization.data(withJSONObject: value),
                  let status = try? JSONDecoder().decode(PageStatus.self, from: json) else { continue }
            result[name] = status
        }
        return result
    }

    /// Tells a page (opened with control=1) to act: leave, join, mute, unmute (as a person would), or
    /// reoffer / garbage towards participant `target` (a fresh connection; hostile signals).
    func command(_ page: String, _ action: String, to target: String? = nil) async {
        let seq = (commandSeq[page] ?? 0) + 1
        commandSeq[page] = seq
        guard let url = URL(string: "http://127.0.0.1:\(port)/report/cmd-\(page)") else { return }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = Data("{\"seq\":\(seq),\"action\":\"\(action)\"\(target.map { ",\"to\":\"\($0)\"" } ?? "")}".utf8)
        _ = try? await session.data(for: request)
        print("[interop] told \(page) to \(action)")
    }
}

/// A headless browser page in the room with its own fake tone.
final class BrowserPage: @unchecked Sendable {
    enum Kind: String, Sendable { case chromium = "Chromium", firefox = "Firefox" }

    let name: String
    let kind: Kind
    let toneHz: Double
    // `process` is only signalled from `kill()`/`stop()`, called by the owning test.
    private let process: Process
    let profile: String
    let logPath: String

    private init(name: String, kind: Kind, toneHz: Double, process: Process, profile: String, logPath: String) {
        self.name = name
        self.kind = kind
        self.toneHz = toneHz
        self.process = process
        self.profile = profile
        self.logPath = logPath
    }

    var label: String { "\(name) (\(kind.rawValue), \(Int(toneHz)) Hz)" }

    static func findFirefox() -> String? {
        ["/usr/bin/firefox-esr", "/usr/bin/firefox"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Fails the test loudly (and stops it) when the browser is not installed.
    static func require(_ kind: Kind) throws -> String {
        switch kind {
        case .chromium:
            if let path = Chromium.find() { return path }
            Issue.record("Chromium is not installed: run scripts/setup.sh --with-test-tools (apt-get install chromium)")
        case .firefox:
            if let path = findFirefox() { return path }
            Issue.record("Firefox ESR is not installed: run scripts/setup.sh --with-test-tools (apt-get install firefox-esr)")
        }
        throw CancellationError()
    }

    static func chromium(name: String, toneHz: Double, url: String) throws -> BrowserPage {
        let session = try Chromium.start(binary: try require(.chromium), url: url, toneHz: toneHz)
        return BrowserPage(name: name, kind: .chromium, toneHz: toneHz, process: session.process, profile: session.profile, logPath: session.output)
    }

    /// Firefox ESR headless with a fake microphone tone, real host candidates (no mDNS names) and loopback ICE.
    static func firefox(name: String, toneHz: Double, url: String) throws -> BrowserPage {
        let binary = try require(.firefox)
        let profile = Interop.temporaryDirectory("peerd-firefox")
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        let prefs: [(String, String)] = [
            ("media.navigator.streams.fake", "true"),
            ("media.navigator.permission.disabled", "true"),
            ("media.navigator.audio.fake_frequency", "\(Int(toneHz))"),
            ("media.peerconnection.ice.loopback", "true"),
            // Firefox hides host addresses behind mDNS .local names unless this is off.
            ("media.peerconnection.ice.obfuscate_host_addresses", "false"),
            ("media.cubeb.force_mock_context", "true"),
            ("media.autoplay.default", "0"),
            ("media.autoplay.blocking_policy", "0"),
            ("devtools.console.stdout.content", "true"),
            ("browser.shell.checkDefaultBrowser", "false"),
            ("browser.startup.homepage_override.mstone", "\"ignore\""),
            ("datareporting.policy.dataSubmissionEnabled", "false"),
            ("toolkit.telemetry.reportingpolicy.firstRun", "false"),
            ("app.update.disabledForTesting", "true"),
        ]
        let userJS = prefs.map { "user_pref(\"\($0.0)\", \($0.1));" }.joined(separator: "\n") + "\n"
        _ = FileManager.default.createFile(atPath: profile + "/user.js", contents: Data(userJS.utf8))
        let log = profile + "/firefox.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--headless", "--no-remote", "--profile", profile, url]
        var environment = ProcessInfo.processInfo.environment
        environment["MOZ_HEADLESS"] = "1"
        process.environment = environment
        // The log goes to a file: a pipe nobody reads would fill up and block the browser.
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return BrowserPage(name: name, kind: .firefox, toneHz: toneHz, process: process, profile: profile, logPath: log)
    }

    /// The browser process and its descendants (content and helper processes), from /proc.
    private func processTree() -> [pid_t] {
        let root = process.processIdentifier
        var children: [pid_t: [pid_t]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { continue }
            let fields = stat[close.upperBound...].split(separator: " ")
            if fields.count > 1, let parent = pid_t(fields[1]) { children[parent, default: []].append(pid) }
        }
        var tree = [root]
        var index = 0
        while index < tree.count {
            tree += children[tree[index]] ?? []
            index += 1
        }
        return tree
    }

    /// The tab dies: SIGKILL to the browser and every process it started, no goodbye.
    func kill() {
        for pid in processTree() { Glibc.kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Closes the browser, then removes its profile (keeps the log's tail in the test output if asked).
    func stop(printLogTail: Bool = false) {
        if printLogTail, let text = try? String(contentsOfFile: logPath, encoding: .utf8) {
            let lines = text.split(separator: "\n").filter { !$0.contains("PEERD_STATUS") }.suffix(25)
            print("--- \(label) log tail ---\n" + lines.joined(separator: "\n"))
        }
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        }
        if process.isRunning { kill() }
        // Helpers that outlived the main process.
        for pid in processTree().dropFirst() { Glibc.kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: profile)
    }
}

/// peerd's side of the table: what it recorded from one participant.
struct RecordedTrack: Sendable {
    var participantID: String
    var path: String
    var analysis: RecordingAnalysis?
    var finalized: Bool
}

/// Prints a who-heard-whom table: rows are listeners, columns what they heard from whom.
enum HeardTable {
    /// `pagesChecked`: whether the test asserts what the pages hear from each other (a mesh); when not,
    /// those rows say so, since a page that left or died in the test may rightly hear nothing.
    static func print(case name: String, pages: [BrowserPage], reports: [String: PageStatus], recordings: [String: [RecordedTrack]],
                      pagesChecked: Bool) {
        var lines: [String] = ["", "who heard whom — \(name)"]
        lines.append("listener                           | source                             | heard")
        lines.append(String(repeating: "-", count: 100))
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        let peerdLabel = "peerd (\(Int(Interop.peerdTone)) Hz)"
        for page in pages {
            let report = reports[page.name]
            // The page hears peerd and the other pages.
            let fromPeerd = report?.heardHz(Interop.peerdID).map { "\(Int($0)) Hz" } ?? "nothing"
            lines.append("\(pad(page.label, 34)) | \(pad(peerdLabel, 34)) | \(fromPeerd)")
            for other in pages where other.name != page.name {
                guard let otherID = reports[other.name]?.id else { continue }
                let heard = report?.heardHz(otherID).map { "\(Int($0)) Hz" } ?? "nothing"
                lines.append("\(pad(page.label, 34)) | \(pad(other.label, 34)) | \(heard)\(pagesChecked ? "" : " (page to page: not checked in this case)")")
            }
        }
        for page in pages {
            guard let id = reports[page.name]?.id else {
                lines.append("\(pad(peerdLabel, 34)) | \(pad(page.label, 34)) | (page never reported its id)")
                continue
            }
            let tracks = recordings[id] ?? []
            if tracks.isEmpty { lines.append("\(pad(peerdLabel, 34)) | \(pad(page.label, 34)) | nothing recorded") }
            for track in tracks {
                let hz = track.analysis?.dominantHz.map { "\(Int($0.rounded())) Hz" } ?? "silence"
                let secs = String(format: "%.1f", track.analysis?.audibleSeconds ?? 0)
                lines.append("\(pad(peerdLabel, 34)) | \(pad(page.label, 34)) | \(hz), \(secs) s audible in \((track.path as NSString).lastPathComponent)\(track.finalized ? "" : " (not finalized)")")
            }
        }
        Swift.print(lines.joined(separator: "\n"))
    }
}
