import Foundation
import Testing
@testable import Signaling

/// Writes a 48 kHz mono 16-bit WAV with a sine tone.
private func writeTone(_ url: URL, frequency: Double, seconds: Double = 2) throws {
    let rate = 48_000
    let count = Int(Double(rate) * seconds)
    var pcm = [UInt8]()
    pcm.reserveCapacity(count * 2)
    for i in 0..<count {
        let v = Int16(sin(2 * Double.pi * frequency * Double(i) / Double(rate)) * 12_000)
        pcm.append(UInt8(truncatingIfNeeded: v))
        pcm.append(UInt8(truncatingIfNeeded: v >> 8))
    }
    var wav = [UInt8]()
    func u32(_ v: Int) { wav += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)] }
    func u16(_ v: Int) { wav += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    wav += Array("RIFF".utf8); u32(36 + pcm.count); wav += Array("WAVE".utf8)
    wav += Array("fmt ".utf8); u32(16); u16(1); u16(1); u32(rate); u32(rate * 2); u16(2); u16(16)
    wav += Array("data".utf8); u32(pcm.count); wav += pcm
    try Data(wav).write(to: url)
}

/// Terminates the browsers and waits (off the cooperative pool) until they have exited, so their profiles can be removed.
private func stopAll(_ processes: [Process]) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread {
            for p in processes where p.isRunning { p.terminate() }
            for p in processes { p.waitUntilExit() }
            continuation.resume()
        }.start()
    }
}

private func findChromium() -> String? {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

@Suite("Browser page in headless Chromium", .serialized, .timeLimit(.minutes(3)))
struct BrowserPageTests {
    /// Two pages join one room and each hears the other's fake tone; both offer at once (glare), in each ICE mode mix.
    @Test(arguments: [(1, 0), (1, 1), (0, 0)])
    func twoPagesHearEachOther(aliceTrickle: Int, bobTrickle: Int) async throws {
        guard let chromium = findChromium() else {
            Issue.record("chromium not found: apt-get install -y chromium")
            return
        }
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peerd-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let pages: [(name: String, tone: Double, trickle: Int)] = [("alice", 500, aliceTrickle), ("bob", 1200, bobTrickle)]
        var processes: [Process] = []
        defer { for p in processes where p.isRunning { p.terminate() } }
        for page in pages {
            let wav = dir.appendingPathComponent("\(page.name).wav")
            try writeTone(wav, frequency: page.tone)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chromium)
            p.arguments = [
                "--headless=new", "--no-sandbox", "--enable-logging=stderr", "--v=0", "--disable-gpu", "--no-first-run", "--mute-audio",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--use-file-for-fake-audio-capture=\(wav.path)", "--autoplay-policy=no-user-gesture-required",
                "--allow-loopback-in-peer-connection", "--user-data-dir=\(dir.appendingPathComponent("profile-\(page.name)").path)",
                "http://127.0.0.1:\(port)/?autojoin=1&name=\(page.name)&room=channel1&trickle=\(page.trickle)",
            ]
            p.standardOutput = FileHandle.nullDevice
            let log = dir.appendingPathComponent("\(page.name).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            p.standardError = try FileHandle(forWritingTo: log)
            try p.run()
            processes.append(p)
        }

        struct PeerView: Equatable { var state: String; var hz: Double }
        func peerViews(_ name: String) async -> [PeerView] {
            guard let r = try? await httpRequest(port: port, path: "/report/\(name)"), r.status == 200,
                  let report = try? json(r.body), case .object(let peers)? = report["peers"] else { return [] }
            return peers.values.map { PeerView(state: $0["state"]?.stringValue ?? "", hz: $0["dominantHz"]?.numberValue ?? 0) }
        }
        func hears(_ listener: String, _ tone: Double) async -> Bool {
            let views = await peerViews(listener)
            return views.count == 1 && views[0].state == "connected" && abs(views[0].hz - tone) < 40
        }
        /// Whether `listener`'s participants list has shown another participant speaking.
        func seesSpeaking(_ listener: String) async -> Bool {
            guard let r = try? await httpRequest(port: port, path: "/report/\(listener)"), r.status == 200,
                  let report = try? json(r.body), case .object(let seen)? = report["seenSpeaking"] else { return false }
            return seen.values.contains { $0.boolValue == true }
        }
        let start = ContinuousClock.now
        var done = false
        var aliceSeesSpeaking = false, bobSeesSpeaking = false
        while ContinuousClock.now - start < .seconds(60) {
            if !aliceSeesSpeaking { aliceSeesSpeaking = await seesSpeaking("alice") }
            if !bobSeesSpeaking { bobSeesSpeaking = await seesSpeaking("bob") }
            if await hears("alice", 1200), await hears("bob", 500), aliceSeesSpeaking, bobSeesSpeaking { done = true; break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(aliceSeesSpeaking && bobSeesSpeaking, "each page shows the other speaking (говорит from its level detector)")
        let elapsed = ContinuousClock.now - start
        let aliceReport = (try? await httpRequest(port: port, path: "/report/alice").body) ?? "none"
        let bobReport = (try? await httpRequest(port: port, path: "/report/bob").body) ?? "none"
        func consoleLines(_ name: String) -> String {
            let text = (try? String(contentsOf: dir.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("CONSOLE") && !$0.contains("PEERD_STATUS") }.suffix(20).joined(separator: "\n")
        }
        #expect(done, "after \(elapsed): alice=\(aliceReport) bob=\(bobReport)\nalice console:\n\(consoleLines("alice"))\nbob console:\n\(consoleLines("bob"))")
        // Both pages registered as room members on the server, each exactly once.
        let room = try json(try await httpRequest(port: port, path: "/health").body)
        #expect(room["users"] == .number(2))
        await stopAll(processes)
        await server.shutdown()
        try await task.value
    }
}
