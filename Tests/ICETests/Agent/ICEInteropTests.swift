import Foundation
import Testing
import Wire
@testable import ICE
#if canImport(Glibc)
import Glibc
#endif

/// The aioice side (`Fixtures/aioice/ice_peer.py`, shared with the ICE benchmark): gathers a loopback
/// host candidate, prints its description as JSON, reads ours, connects, echoes one datagram and
/// stays up a second longer for consent checks.
private var aioicePeerScript: String { fixturesDirectory().appendingPathComponent("aioice/ice_peer.py").path }

/// A non-blocking IPv4 UDP socket on loopback for the interop test.
private struct LoopbackSocket {
    let fd: Int32
    let address: TransportAddress

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw InteropError.socket("socket") }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw InteropError.socket("bind") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        self.address = TransportAddress(ip: .v4(0x7F00_0001), port: UInt16(bigEndian: socketAddress.sin_port))
    }

    func send(_ bytes: [UInt8], to destination: TransportAddress) {
        guard case .v4(let ip) = destination.ip else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = destination.port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    func receive() -> (bytes: [UInt8], source: TransportAddress)? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
        }
        guard count >= 0 else { return nil }
        let source = TransportAddress(ip: .v4(UInt32(bigEndian: address.sin_addr.s_addr)), port: UInt16(bigEndian: address.sin_port))
        return (Array(buffer[..<count]), source)
    }

    func wait(milliseconds: Int32) {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, max(0, milliseconds))
    }
}

private enum InteropError: Error { case socket(String), protocolError(String) }

private func readLine(_ handle: FileHandle, deadline: Date) -> String? {
    var bytes: [UInt8] = []
    while Date() < deadline {
        let chunk = handle.readData(ofLength: 1)
        guard let byte = chunk.first else { return nil }
        if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
    return nil
}

private func aioiceAvailable() -> Bool {
    let check = Process()
    check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    check.arguments = ["python3", "-c", "import aioice"]
    check.standardOutput = FileHandle.nullDevice
    check.standardError = FileHandle.nullDevice
    guard (try? check.run()) != nil else { return false }
    check.waitUntilExit()
    return check.terminationStatus == 0
}

@Suite("ICE agent interop with aioice", .serialized)
struct ICEInteropTests {
    @Test("connects to aioice on loopback and exchanges a datagram", arguments: [ICERole.controlling, .controlled])
    func aioiceInterop(role: ICERole) throws {
        guard aioiceAvailable() else {
            Issue.record("python3 with aioice is required for this test: pip install aioice")
            return
        }
        let socket = try LoopbackSocket()
        defer { close(socket.fd) }
        var agent = ICEAgent(role: role, localCredentials: .random())
        let host = Candidate(foundation: "1", priority: Candidate.priority(type: .host, localPreference: 65535),
                             address: .ip(socket.address.ip), port: socket.address.port, type: .host)
        agent.addLocalCandidate(host, base: socket.address)
        agent.endOfLocalCandidates()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", aioicePeerScript, role == .controlling ? "controlled" : "controlling", "--echo",
                             "--connect-timeout", "20", "--linger", "1"]
        let input = Pipe(), output = Pipe()
        let errorLog = FileManager.default.temporaryDirectory.appendingPathComponent("aioice-\(role)-\(getpid()).log")
        _ = FileManager.default.createFile(atPath: errorLog.path, contents: nil)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errorLog)
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let hello = try #require(readLine(output.fileHandleForReading, deadline: Date() + 10), "aioice printed nothing; see \(errorLog.path)")
        let description = try #require(try JSONSerialization.jsonObject(with: Data(hello.utf8)) as? [String: Any])
        let ufrag = try #require(description["ufrag"] as? String), pwd = try #require(description["pwd"] as? String)
        let candidates = try #require(description["candidates"] as? [String])
        agent.setRemoteCredentials(ufrag: ufrag, pwd: pwd)
        for text in candidates { agent.addRemoteCandidate(try Candidate(parsing: text)) }
        agent.endOfRemoteCandidates()
        #expect(!agent.remoteCandidates.isEmpty)

        let ours: [String: Any] = ["ufrag": agent.localCredentials.ufrag, "pwd": agent.localCredentials.pwd,
                                   "candidates": [String(host.description.dropFirst("candidate:".count))]]
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: ours) + Data("\n".utf8))

        let start = MonotonicTime.now()
        var sentData = false
        var echo: [UInt8]?
        var echoAt: MonotonicTime?
        while MonotonicTime.now() - start < .seconds(20) {
            let now = MonotonicTime.now()
            if let next = agent.nextTimeout, next <= now { agent.handleTimeout(now: now) }
            while let transmit = agent.pollTransmit() { socket.send(transmit.bytes, to: transmit.destination) }
            while agent.pollEvent() != nil {}
            if !sentData, let pair = agent.selectedPair {
                socket.send(Array("hello from swift".utf8), to: pair.remoteAddress)
                sentData = true
            }
            if let echoAt, now - echoAt > .milliseconds(500) { break }
            let wait = agent.nextTimeout.map { max(0, min(50, Int32(($0 - MonotonicTime.now()).nanosecondsClamped / 1_000_000))) } ?? 50
            socket.wait(milliseconds: wait)
            while let (bytes, source) = socket.receive() {
                if !agent.handleDatagram(bytes, from: source, to: socket.address, now: MonotonicTime.now()), agent.isKnownRemote(source) {
                    echo = bytes
                    echoAt = MonotonicTime.now()
                }
            }
        }
        let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
        #expect(agent.selectedPair != nil, "no pair selected; aioice log:\n\(log)")
        #expect(agent.state == .connected || agent.state == .completed)
        #expect(echo == Array("echo:hello from swift".utf8), "aioice log:\n\(log)")
        #expect(agent.stats.badIntegrityDrops == 0 && agent.stats.malformedDrops == 0)
        if let echoAt { print("ICE interop with aioice (we are \(role)): echo after \(echoAt - start)") }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "aioice log:\n\(log)")
        try? FileManager.default.removeItem(at: errorLog)
    }
}
