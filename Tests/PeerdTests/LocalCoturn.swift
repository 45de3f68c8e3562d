import Foundation
import Testing

/// coturn on 127.0.0.1 for one test: UDP only, long-term credentials alice / s3cret in realm
/// `peerd`, loopback peers allowed, relay ports in `relayPorts`. Records an issue and returns nil
/// when coturn is not installed. `stop()` kills it (SIGKILL: the test runner's blocked signal mask
/// is inherited, so coturn may never see SIGTERM) and removes its directory.
final class LocalCoturn {
    let port: UInt16
    private let process: Process
    private let directory: String

    private init(port: UInt16, process: Process, directory: String) {
        self.port = port
        self.process = process
        self.directory = directory
    }

    static func start(relayPorts: ClosedRange<Int>, label: String) async throws -> LocalCoturn? {
        guard let binary = ["/usr/bin/turnserver", "/usr/local/bin/turnserver"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            Issue.record("coturn's turnserver is not installed: run scripts/setup.sh --with-test-tools (apt-get install coturn)")
            return nil
        }
        let port = UInt16.random(in: 30_000...39_999)
        let directory = NSTemporaryDirectory() + "peerd-\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let logPath = directory + "/turnserver.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port=\(port)", "--lt-cred-mech",
                             "--user=alice:s3cret", "--realm=peerd", "--no-tls", "--no-dtls", "--no-tcp-relay", "--no-cli",
                             "--log-file=stdout", "--simple-log", "--allow-loopback-peers", "--pidfile=\(directory)/pid",
                             "--userdb=\(directory)/turndb", "--min-port=\(relayPorts.lowerBound)", "--max-port=\(relayPorts.upperBound)"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let coturn = LocalCoturn(port: port, process: process, directory: directory)
        do {
            try await BotConnectionTests.waitFor(seconds: 10) {
                ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("Total General servers")
            }
        } catch {
            coturn.stop()
            throw error
        }
        return coturn
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
