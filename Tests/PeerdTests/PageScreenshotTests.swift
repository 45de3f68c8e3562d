import Foundation
import Signaling
import Testing
@testable import peerd

/// The browser page as a person sees it: headless Chromium renders it in a room next to a peerd bot,
/// and the screenshot is kept as a test artefact (artifacts/page.png).
@Suite struct PageScreenshotTests {
    @Test func pageRendersAndIsKeptAsAnArtefact() async throws {
        guard let chromium = Chromium.find() else {
            Issue.record("Chromium is not installed: run scripts/setup.sh --with-test-tools")
            return
        }
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let task = Task { try await server.run() }
        let port = try #require(await server.waitUntilListening())
        let directory = NSTemporaryDirectory() + "peerd-screenshot-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let png = directory + "/page.png"

        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--user-data-dir=\(directory)/profile", "--window-size=1280,800",
            "--virtual-time-budget=4000", "--screenshot=\(png)",
            "http://127.0.0.1:\(port)/?autojoin=1&name=screenshot&room=general",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(40)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await server.shutdown()
        task.cancel()

        let data = try #require(FileManager.default.contents(atPath: png), "Chromium wrote no screenshot")
        #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG file")
        #expect(data.count > 10_000, "a rendered page, not a blank image (\(data.count) bytes)")
        // Keep it where CI and people can look at it.
        var root = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) { root.deleteLastPathComponent() }
        let artifacts = root.appendingPathComponent("artifacts")
        try? FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: artifacts.appendingPathComponent("page.png"))
        try FileManager.default.copyItem(atPath: png, toPath: artifacts.appendingPathComponent("page.png").path)
    }
}
