#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import Signaling

/// Load generator for the room server (issue 6): N WebSocket clients in R rooms relaying `webrtc-signal`s.
///
///     signaling-load [--clients 1000] [--rooms 50] [--rate 2] [--duration 20] [--server spawn|inprocess]
///                    [--url ws://127.0.0.1:PORT/ws [--server-pid PID]] [--window 64] [--setup-timeout 90]
///     signaling-load --server-only [--port 0]     (prints "LISTENING <port>", runs until stdin closes)
@main
struct SignalingLoad {
    enum ServerMode: String { case spawn, inprocess, external }

    static func main() async throws {
        var plan = LoadPlan()
        var mode = ServerMode.spawn
        var serverOnly = false
        var serverPort = 0
        var serverPID: Int32?
        var args = CommandLine.arguments.dropFirst().makeIterator()
        func value(_ name: String) -> String {
            guard let v = args.next() else { fail("\(name) needs a value") }
            return v
        }
        func number(_ name: String, _ range: ClosedRange<Double>) -> Double {
            guard let v = Double(value(name)), range.contains(v) else { fail("\(name) must be in \(range)") }
            return v
        }
        while let arg = args.next() {
            switch arg {
            case "--clients": plan.clients = Int(number(arg, 2...5000))
            case "--rooms": plan.rooms = Int(number(arg, 1...1000))
            case "--rate": plan.rate = number(arg, 0.1...50)
            case "--duration": plan.duration = number(arg, 1...120)
            case "--window": plan.registerWindow = Int(number(arg, 1...10000))
            case "--setup-timeout": plan.setupTimeout = number(arg, 1...600)
            case "--seed": plan.seed = UInt64(number(arg, 0...1e15))
            case "--server":
                guard let m = ServerMode(rawValue: value(arg)), m != .external else { fail("--server is spawn or inprocess") }
                mode = m
            case "--url":
                let url = value(arg)
                guard let parsed = URLComponents(string: url), parsed.scheme == "ws", let port = parsed.port,
                      ["127.0.0.1", "localhost"].contains(parsed.host ?? "") else {
                    fail("--url must be ws://127.0.0.1:PORT/path (loopback only)")
                }
                plan.port = port
                plan.path = parsed.path.isEmpty ? "/" : parsed.path
                mode = .external
            case "--server-pid": serverPID = Int32(number(arg, 1...4_194_304))
            case "--server-only": serverOnly = true
            case "--port": serverPort = Int(number(arg, 0...65535))
            case "-h", "--help":
                print("usage: signaling-load [--clients N] [--rooms R] [--rate PER_S] [--duration S] "
                      + "[--server spawn|inprocess | --url ws://127.0.0.1:P/ws [--server-pid PID]] [--window W] "
                      + "[--setup-timeout S] [--seed N] | --server-only [--port P]")
                return
            default: fail("unknown argument \(arg)")
            }
        }
        guard plan.rooms <= plan.clients / 2 else { fail("need at least two clients per room") }

        if serverOnly {
            try await runServerOnly(port: serverPort)
            return
        }

        var logger = Logger(label: "signaling-load.server")
        logger.logLevel = .warning
        var inProcess: RoomServer?
        var inProcessTask: Task<Void, any Error>?
        var child: Process?
        var childInput: Pipe?

        switch mode {
        case .inprocess:
            let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0), logger: logger)
            inProcessTask = Task { try await server.run() }
            guard let port = await server.waitUntilListening() else { fail("in-process server did not start") }
            plan.port = port
            inProcess = server
        case .spawn:
            let (process, input, port) = try spawnServer()
            child = process
            childInput = input
            serverPID = process.processIdentifier
            plan.port = port
        case .external:
            break
        }
        print("uptime:\(shell("uptime"))")
        print("server: \(mode.rawValue) on 127.0.0.1:\(plan.port)\(plan.path)\(serverPID.map { " pid \($0)" } ?? "")")
        print("plan: \(plan.clients) clients, \(plan.rooms) rooms, \(plan.rate)/s per client for \(plan.duration) s")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let clientThread = try await loop.submit { ProcStats.currentThreadID() }.get()
        let pid = serverPID
        let sampler: @Sendable (String) -> Sample = { phase in
            Sample(
                phase: phase, seconds: 0,
                server: pid.flatMap { ProcStats.process($0) },
                own: ProcStats.process(getpid()) ?? ProcStats(cpuSeconds: 0, rssKiB: 0, peakRSSKiB: 0),
                clientThreadCPU: clientThread.flatMap { ProcStats.thread($0) } ?? 0)
        }
        let finalPlan = plan
        let result = try await loop.flatSubmit {
            Coordinator(plan: finalPlan, loop: loop, sampler: sampler).run()
        }.get()
        // Let the server see the closes before sampling its idle state.
        try? await Task.sleep(for: .seconds(1))
        let after = sampler("after-close")

        report(result, mode: mode, after: after)

        if let inProcess {
            await inProcess.shutdown()
            _ = try? await inProcessTask?.value
        }
        if let child, let childInput {
            try? childInput.fileHandleForWriting.close()
            let deadline = Date().addingTimeInterval(10)
            while child.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if child.isRunning { child.terminate() }
        }
        try await group.shutdownGracefully()
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("signaling-load: \(message)\n".utf8))
        exit(2)
    }

    static func shell(_ command: String) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return "" }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
    }

    // MARK: server process

    /// Runs a RoomServer on 127.0.0.1 until standard input closes.
    static func runServerOnly(port: Int) async throws {
        var logger = Logger(label: "peerd.signaling.server")
        logger.logLevel = .warning
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: port), logger: logger)
        let task = Task { try await server.run() }
        guard let bound = await server.waitUntilListening() else { fail("server did not start") }
        print("LISTENING \(bound)")
        fflush(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 256)
                while read(0, &buffer, buffer.count) > 0 {}
                done.resume()
            }
        }
        await server.shutdown()
        _ = try? await task.value
    }

    /// Starts this executable with `--server-only` and reads its port.
    static func spawnServer() throws -> (Process, Pipe, Int) {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: me)
        process.arguments = ["--server-only", "--port", "0"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        let fd = output.fileHandleForReading.fileDescriptor
        var byte: UInt8 = 0
        while line.count < 200, read(fd, &byte, 1) == 1, byte != 0x0A { line.append(byte) }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("LISTENING "), let port = Int(text.dropFirst("LISTENING ".count)) else {
            fail("spawned server said \"\(text)\"")
        }
        return (process, input, port)
    }

    // MARK: report

    static func report(_ r: LoadResult, mode: ServerMode, after: Sample) {
        func ms(_ ns: Int64) -> String { String(format: "%.2f ms", Double(ns) / 1e6) }
        func pct(_ q: Double) -> Int64 {
            guard !r.latencies.isEmpty else { return 0 }
            return r.latencies[min(r.latencies.count - 1, Int(Double(r.latencies.count) * q))]
        }
        func sample(_ name: String) -> Sample? { r.samples.first { $0.phase == name } }
        print("")
        print("=== results ===")
        if let aborted = r.aborted { print("ABORTED: \(aborted)") }
        print("clients: connected \(r.connected), failed \(r.connectFailures), registered \(r.registered), joined \(r.joined), closed by server \(r.closedByServer)")
        var previous: Sample?
        for s in r.samples + [after] {
            var line = String(format: "%-12@ t=%7.2f s", s.phase as NSString, s.seconds)
            if let server = s.server {
                line += String(format: "  server RSS %7.1f MiB (peak %7.1f)", Double(server.rssKiB) / 1024, Double(server.peakRSSKiB) / 1024)
                if let p = previous?.server, s.seconds > previous!.seconds, s.phase != "after-close" {
                    let cpu = server.cpuSeconds - p.cpuSeconds
                    line += String(format: "  server CPU %7.2f s (%5.1f%% of a core)", cpu, 100 * cpu / (s.seconds - previous!.seconds))
                }
            }
            line += String(format: "  loadgen RSS %7.1f MiB", Double(s.own.rssKiB) / 1024)
            if let p = previous, s.seconds > p.seconds, s.phase != "after-close" {
                let own = s.own.cpuSeconds - p.own.cpuSeconds
                let clients = s.clientThreadCPU - p.clientThreadCPU
                if mode == .inprocess {
                    line += String(format: "  clients CPU %6.2f s, server (rest of process) CPU %6.2f s (%5.1f%% of a core)",
                                   clients, own - clients, 100 * (own - clients) / (s.seconds - p.seconds))
                } else {
                    line += String(format: "  loadgen CPU %6.2f s", own)
                }
            }
            print(line)
            if s.phase != "after-close" { previous = s }
        }
        print(String(format: "users-updated frames %d (%.1f MB); other frames %d (%.1f MB)",
                     r.usersUpdatedFrames, Double(r.usersUpdatedBytes) / 1e6, r.otherFrames, Double(r.otherBytes) / 1e6))
        if let a = sample("joined"), let b = sample("signaled") {
            let seconds = b.seconds - a.seconds
            print(String(format: "signals sent %d, delivered %d (%.3f%%), %.0f/s, avg %d bytes",
                         r.signalsSent, r.signalsReceived, 100 * Double(r.signalsReceived) / Double(max(1, r.signalsSent)),
                         Double(r.signalsSent) / seconds, r.signalBytesSent / max(1, r.signalsSent)))
        }
        print("relay latency (send -> server -> receive, n=\(r.latencies.count)): p50 \(ms(pct(0.5))), p90 \(ms(pct(0.9))), "
              + "p99 \(ms(pct(0.99))), p99.9 \(ms(pct(0.999))), max \(ms(r.latencies.last ?? 0))")
        if !r.errors.isEmpty { print("errors from server: \(r.errors)") }
    }
}
