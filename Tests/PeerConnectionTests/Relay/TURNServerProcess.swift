import Foundation
import ICE
import Testing
import Wire

struct TestSetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A coturn (`turnserver`) process for one test: STUN and TURN over UDP with long-term credentials
/// u:p in realm "test", optionally inside a network namespace (`ip netns exec`).
final class TURNServerProcess {
    let process = Process()
    let address: TransportAddress
    let directory: URL
    let logURL: URL

    static var binary: String? {
        ["/usr/bin/turnserver", "/usr/local/bin/turnserver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `namespace`: run it there (root). `loopbackPeers`: allow relaying to 127.0.0.0/8 (loopback tests).
    init(listening ip: IPAddress = IPAddress("127.0.0.1")!, port: UInt16? = nil, namespace: String? = nil,
         loopbackPeers: Bool = true, tls: (certificate: String, key: String, port: UInt16)? = nil, extraArguments: [String] = []) throws {
        guard let binary = Self.binary else {
            throw TestSetupFailure("coturn's turnserver not found (apt-get install -y coturn)")
        }
        let port = port ?? UInt16.random(in: 20_000...29_999)
        address = TransportAddress(ip: ip, port: port)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerd-turn-\(port)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logURL = directory.appendingPathComponent("turnserver.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        var arguments = [
            "-n", "--listening-ip=\(ip)", "--relay-ip=\(ip)", "--listening-port=\(port)", "--lt-cred-mech", "--user=u:p", "--realm=test",
            "--no-dtls", "--no-tcp-relay", "--no-cli", "--log-file=stdout", "--simple-log",
            "--pidfile=\(directory.appendingPathComponent("pid").path)",
            "--userdb=\(directory.appendingPathComponent("turndb").path)",
            "--min-port=49152", "--max-port=49999",
        ]
        if loopbackPeers { arguments.append("--allow-loopback-peers") }
        if let tls {
            arguments += ["--cert=\(tls.certificate)", "--pkey=\(tls.key)", "--tls-listening-port=\(tls.port)"]
        } else {
            arguments.append("--no-tls")
        }
        arguments += extraArguments
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// coturn's output so far.
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until coturn says its servers run (its listeners are open then).
    func waitUntilReady(timeout: Duration = .seconds(10)) throws {
        let deadline = MonotonicTime.now() + timeout
        while MonotonicTime.now() < deadline {
            if log.contains("Total General servers") || log.contains("Total auth threads") {
                usleep(200_000)
                return
            }
            guard process.isRunning else { throw TestSetupFailure("turnserver exited: \(log.suffix(2000))") }
            usleep(50_000)
        }
        throw TestSetupFailure("turnserver not ready within \(timeout): \(log.suffix(2000))")
    }

    func stop() {
        // SIGKILL: the test runner's blocked signal mask is inherited, so coturn may never see SIGTERM.
        // `ip netns exec` execs the server, so the process id is coturn's own.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
