import ArgumentParser
import Foundation
import ICE
import Logging
import NIOPosix
import RTP
import Signaling

/// `peerd demo`: the whole thing on one machine, with a table at the end.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Local room server + web page + peerd bot (+ a headless Chromium participant if installed), then a table of who heard whom.",
        discussion: """
            Starts the room server on 127.0.0.1, a peerd bot in room general that sends a 440 Hz greeting tone and records everyone, and, if Chromium is installed, a headless Chromium page with a fake 660 Hz microphone. After --seconds it prints who joined, who heard whom at what frequency, and what was recorded where (the recordings, events.jsonl and stats.json). With --stay it keeps running so you can join from your own browser at the URL it prints. PEERD_LOG_LEVEL=info shows the bot's log.

            Examples:
              peerd demo
              peerd demo --seconds 10 --record demo-recordings
              peerd demo --port 0 --no-browser --stay
            """
    )

    @Option(help: ArgumentHelp("Port of the room server on 127.0.0.1 (0 picks a free one; e.g. --port 0).", valueName: "PORT"))
    var port = 8080

    @Option(help: ArgumentHelp("How long the browser participant stays (e.g. --seconds 10).", valueName: "SECONDS"))
    var seconds = 8.0

    @Option(help: ArgumentHelp("Where peerd records (default: a new temporary directory; e.g. --record demo-recordings).", valueName: "DIR"))
    var record: String?

    @Flag(help: "Do not start a Chromium participant even if Chromium is installed.")
    var noBrowser = false

    @Flag(help: "Keep running after the table (join from your own browser; Ctrl-C to stop).")
    var stay = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["PEERD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
            return handler
        }
        let logger = Logger(label: "peerd.demo")
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: port))
        let serverTask = Task { try await server.run() }
        guard let boundPort = await server.waitUntilListening() else {
            print("demo: the room server could not listen on 127.0.0.1:\(port) (is the port in use? try --port 0)")
            throw ExitCode(1)
        }
        let pageURL = "http://127.0.0.1:\(boundPort)/"
        print("demo: room server and page at \(pageURL)")

        let directory = record ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("peerd-demo-\(UInt32.random(in: 0...UInt32.max))")
        var options = RoomBotOptions(url: "ws://127.0.0.1:\(boundPort)/ws", room: "general", name: "peerd", id: "peerd-demo")
        options.recordDirectory = directory
        options.audio = .tone(440)
        options.interfaces = InterfaceFilter(includeLoopback: true, onlyAddresses: [IPAddress("127.0.0.1")!])
        options.offerDelay = .seconds(6)
        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger)
        let botTask = Task { await bot.run() }
        print("demo: peerd joined room general, sending a 440 Hz tone, recording to \(directory)")

        var browserHeard: [String: Int] = [:]
        if !noBrowser, let chromium = Chromium.find() {
            print("demo: starting headless Chromium (\(chromium)) with a 660 Hz microphone for \(Int(seconds)) s")
            let session = try Chromium.start(binary: chromium, url: pageURL + "?autojoin=1&processing=0&name=chromium&room=general", toneHz: 660)
            try await Task.sleep(for: .seconds(seconds))
            browserHeard = session.heardFrequencies()
            _ = session.stop()
        } else {
            print(noBrowser ? "demo: no browser participant (--no-browser)" : "demo: Chromium is not installed; no browser participant (apt-get install chromium to add one)")
            try await Task.sleep(for: .seconds(min(seconds, 3)))
        }

        let summaries = await bot.summaries()
        await bot.stop()
        botTask.cancel()

        print("")
        print("participant          joined  peerd heard      recorded                          browser heard peerd")
        print("-------------------  ------  ---------------  --------------------------------  -------------------")
        for summary in summaries {
            let analysis = summary.recording.flatMap { RecordingAnalysis.analyze(path: $0) }
            let heard = analysis?.dominantHz.map { "\(Int($0.rounded())) Hz, \(String(format: "%.1f", analysis?.audibleSeconds ?? 0)) s" } ?? "nothing"
            let browser = browserHeard.values.first.map { "\($0) Hz" } ?? "-"
            print(pad(summary.id, 19) + "  " + pad("yes", 6) + "  " + pad(heard, 15) + "  " + pad(summary.recording ?? "-", 32) + "  " + browser)
        }
        if summaries.isEmpty { print("(nobody else joined)") }
        print("")
        print("events: \((directory as NSString).appendingPathComponent("events.jsonl"))")
        print("statistics (getStats shape): \((directory as NSString).appendingPathComponent("stats.json"))")
        print("join from your own browser: \(pageURL)?room=general")

        if stay {
            print("demo: running; press Ctrl-C to stop")
            await waitForStop(seconds: nil)
        }
        // A graceful shutdown, bounded by the server's shutdown timeout, as `peerd serve` ends: cancelling
        // the server's task as well made Hummingbird log two errors after about half the demos.
        await server.shutdown()
        _ = await serverTask.result
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}

/// Headless Chromium as a room participant (fake microphone from a WAV tone).
enum Chromium {
    static func find() -> String? {
        for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return nil
    }

    final class Session: @unchecked Sendable {
        // `process` and `output` are only touched from `stop()`, called once by the owner.
        let process: Process
        let output: String
        let profile: String
        init(process: Process, output: String, profile: String) {
            self.process = process
            self.output = output
            self.profile = profile
        }

        /// Stops Chromium and returns, per remote peer id, the dominant frequency the page last reported.
        func stop() -> [String: Int] {
            process.interrupt()
            Thread.sleep(forTimeInterval: 0.3)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            let heard = heardFrequencies()
            try? FileManager.default.removeItem(atPath: profile)
            return heard
        }

        /// The page's last status report (it logs `PEERD_STATUS {json}` every second).
        func lastStatus() -> [String: Any]? {
            guard let data = FileManager.default.contents(atPath: output) else { return nil }
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n").reversed() {
                guard let start = line.range(of: "PEERD_STATUS ") else { continue }
                var json = String(line[start.upperBound...])
                // Chromium wraps console messages: `"PEERD_STATUS {...}", source: ... (372)`.
                if let end = json.range(of: "\", source:", options: .backwards) { json = String(json[..<end.lowerBound]) }
                if let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] { return object }
                let unescaped = json.replacingOccurrences(of: "\\\"", with: "\"")
                if let object = try? JSONSerialization.jsonObject(with: Data(unescaped.utf8)) as? [String: Any] { return object }
            }
            return nil
        }

        /// The page's own log (its `[peerd] …` console lines: signals sent and received, glares,
        /// failed candidates), with Chromium's timestamps: what a failed interop check prints.
        func pageLog() -> String {
            guard let data = FileManager.default.contents(atPath: output) else { return "(no Chromium log)" }
            return String(decoding: data, as: UTF8.self).split(separator: "\n")
                .filter { $0.contains("[peerd]") && !$0.contains("PEERD_STATUS") }.joined(separator: "\n")
        }

        /// Per remote peer id, the dominant frequency the page hears (0 for silence).
        func heardFrequencies() -> [String: Int] {
            guard let peers = lastStatus()?["peers"] as? [String: [String: Any]] else { return [:] }
            return peers.compactMapValues { ($0["dominantHz"] as? NSNumber)?.intValue }
        }

        /// Whether the page's participants list has shown `id` speaking (its `говорит` reached the page).
        func sawSpeaking(_ id: String) -> Bool {
            ((lastStatus()?["seenSpeaking"] as? [String: Any])?[id] as? Bool) == true
        }

        /// Per remote peer id, the page's connection state.
        func peerStates() -> [String: String] {
            guard let peers = lastStatus()?["peers"] as? [String: [String: Any]] else { return [:] }
            return peers.compactMapValues { $0["state"] as? String }
        }
    }

    static func start(binary: String, url: String, toneHz: Double) throws -> Session {
        let profile = (NSTemporaryDirectory() as NSString).appendingPathComponent("peerd-chromium-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        var tone = ToneGenerator(frequency: toneHz, amplitude: 0.4)
        let wav = WAVFile(sampleRate: 48_000, channels: 1, samples: tone.next(frames: 48_000 * 10))
        let wavPath = (profile as NSString).appendingPathComponent("tone.wav")
        try Data(wav.serialized()).write(to: URL(fileURLWithPath: wavPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--use-file-for-fake-audio-capture=\(wavPath)", "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection", "--user-data-dir=\(profile)", "--enable-logging=stderr", "--v=0",
            "--disable-gpu", "--no-first-run", "--mute-audio", url,
        ]
        // Chromium's log goes to a file: a pipe nobody reads would fill up and block it.
        let output = (profile as NSString).appendingPathComponent("chromium.log")
        // (If the log cannot be created, Chromium's stderr goes nowhere rather than into a pipe.)
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: output) ?? FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return Session(process: process, output: output, profile: profile)
    }
}
