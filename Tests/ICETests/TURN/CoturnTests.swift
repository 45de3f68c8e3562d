import Foundation
import Testing
import Wire
@testable import ICE

/// A coturn process on loopback for one test, with long-term credentials u:p in realm "test".
final class CoturnProcess {
    let process = Process()
    let address: TransportAddress
    let logURL: URL
    let directory: URL

    init() throws {
        let candidates = ["/usr/bin/turnserver", "/usr/local/bin/turnserver"]
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SocketFailure("coturn's turnserver not found (apt-get install -y coturn)")
        }
        // A free UDP port: bind to port 0, read it, release it.
        let port = try UDPTestSocket().local.port
        address = TransportAddress(ip: IPAddress("127.0.0.1")!, port: port)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("coturn-\(port)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logURL = directory.appendingPathComponent("turnserver.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "-n", "--listening-ip=127.0.0.1", "--listening-port=\(port)", "--lt-cred-mech", "--user=u:p", "--realm=test",
            "--no-tls", "--no-dtls", "--allow-loopback-peers", "--no-cli", "--log-file=stdout",
            "--pidfile=\(directory.appendingPathComponent("pid").path)",
        ]
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    func stop() {
        // SIGKILL: the test runner's blocked signal mask is inherited by the child, so coturn may never see SIGTERM.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// coturn's output so far (read it before `stop()`, which deletes it).
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    deinit { stop() }

    /// Sends Binding requests until coturn answers (it takes a moment to start); returns the response.
    func waitUntilReady(from socket: UDPTestSocket, timeout: Duration = .seconds(10)) throws -> STUNMessage {
        let deadline = MonotonicTime.now() + timeout
        while MonotonicTime.now() < deadline {
            let request = STUNMessage(type: .bindingRequest, transactionID: .random())
            socket.send(request.encoded(fingerprint: true), to: address)
            if let (bytes, from) = socket.receive(timeout: .milliseconds(100)), from == address,
               let response = try? STUNMessage(decoding: bytes), response.transactionID == request.transactionID {
                return response
            }
            guard process.isRunning else { throw SocketFailure("turnserver exited: \(log.suffix(2000))") }
        }
        throw SocketFailure("turnserver did not answer a Binding request within \(timeout): \(log.suffix(2000))")
    }
}

/// Runs a `TURNClient` over a real UDP socket.
struct TURNSocketDriver {
    var client: TURNClient
    let socket: UDPTestSocket
    var events: [TURNEvent] = []
    /// Application data unwrapped from the server, with whether it came as ChannelData.
    var received: [(peer: TransportAddress, payload: [UInt8], viaChannel: Bool)] = []

    mutating func flush() {
        while let datagram = client.pollTransmit() { socket.send(datagram, to: client.server) }
    }

    /// Pumps until `done` holds or `timeout` passes; returns whether `done` held.
    @discardableResult
    mutating func run(timeout: Duration = .seconds(5), until done: (TURNSocketDriver) -> Bool) -> Bool {
        let deadline = MonotonicTime.now() + timeout
        while true {
            flush()
            while let event = client.pollEvent() { events.append(event) }
            if done(self) { return true }
            let now = MonotonicTime.now()
            if now >= deadline { return false }
            var wait = deadline - now
            if let next = client.nextTimeout { wait = min(wait, max(.zero, next - now)) }
            wait = min(wait, .milliseconds(50))
            if let (bytes, from) = socket.receive(timeout: wait), from == client.server {
                if let (peer, payload) = client.handleDatagram(bytes, now: MonotonicTime.now()) {
                    received.append((peer, payload, bytes.first.map { $0 >= 0x40 && $0 < 0x50 } ?? false))
                }
            }
            let after = MonotonicTime.now()
            if let next = client.nextTimeout, next <= after { client.handleTimeout(now: after) }
        }
    }
}

@Suite(.serialized) struct CoturnTests {
    @Test func bindingRequestGivesServerReflexiveAddress() throws {
        let coturn = try CoturnProcess()
        defer { coturn.stop() }
        let socket = try UDPTestSocket()
        let response = try coturn.waitUntilReady(from: socket)
        #expect(response.type == .bindingSuccess)
        #expect(response.xorMappedAddress == socket.local)
    }

    @Test func allocateRelayPermissionChannelRefreshClose() throws {
        let coturn = try CoturnProcess()
        defer { coturn.stop() }
        let clientSocket = try UDPTestSocket()
        _ = try coturn.waitUntilReady(from: clientSocket)
        let peer = try UDPTestSocket()

        var configuration = TURNConfiguration()
        configuration.software = "peerd-test"
        var driver = TURNSocketDriver(client: TURNClient(server: coturn.address, username: "u", password: "p", configuration: configuration),
                                      socket: clientSocket)
        let started = MonotonicTime.now()
        driver.client.start(now: started)
        let allocatedOK = driver.run { $0.client.state != .allocating }
        let allocationTime = MonotonicTime.now() - started
        try #require(allocatedOK && driver.client.state == .allocated, "state \(driver.client.state), events \(driver.events)\n\(coturn.log.suffix(3000))")
        guard case .allocated(let relayed, let mapped, let lifetime)? = driver.events.first else {
            Issue.record("first event \(driver.events)")
            return
        }
        print("coturn allocation on loopback took \(allocationTime) (401 round trip included)")
        #expect(relayed.ip == IPAddress("127.0.0.1")!)
        #expect(relayed.port != coturn.address.port)
        #expect(mapped == clientSocket.local)
        #expect(lifetime == .seconds(600))
        #expect(driver.client.droppedResponses == 0)

        // Permission, then a Send indication out and a Data indication back.
        driver.client.createPermission(for: peer.local.ip, now: .now())
        #expect(driver.run { $0.events.contains(.permissionCreated(peer.local.ip)) }, "\(driver.events)")
        let viaSend = driver.client.wrap(payload: Array("hello via Send".utf8), to: peer.local)
        #expect(viaSend.first! < 4)
        clientSocket.send(viaSend, to: coturn.address)
        let first = try #require(peer.receive(timeout: .seconds(3)), "peer got nothing through the relay")
        #expect(first.from == relayed)
        #expect(first.bytes == Array("hello via Send".utf8))
        peer.send(Array("reply via Data".utf8), to: relayed)
        #expect(driver.run { !$0.received.isEmpty })
        #expect(driver.received.first?.peer == peer.local)
        #expect(driver.received.first?.payload == Array("reply via Data".utf8))
        #expect(driver.received.first?.viaChannel == false)

        // Channel binding, then ChannelData both ways.
        let channel = try driver.client.bindChannel(peer: peer.local, now: .now())
        #expect(channel == 0x4000)
        #expect(driver.run { $0.events.contains(.channelBound(channel: 0x4000, peer: peer.local)) }, "\(driver.events)")
        let viaChannel = driver.client.wrap(payload: Array("hello via ChannelData".utf8), to: peer.local)
        #expect(viaChannel.prefix(2) == [0x40, 0x00])
        clientSocket.send(viaChannel, to: coturn.address)
        let second = try #require(peer.receive(timeout: .seconds(3)))
        #expect(second.from == relayed)
        #expect(second.bytes == Array("hello via ChannelData".utf8))
        peer.send(Array("reply via ChannelData".utf8), to: relayed)
        #expect(driver.run { $0.received.count >= 2 })
        #expect(driver.received.last?.peer == peer.local)
        #expect(driver.received.last?.payload == Array("reply via ChannelData".utf8))
        #expect(driver.received.last?.viaChannel == true)

        // Refresh now rather than in nine minutes.
        driver.client.refresh(now: .now())
        #expect(driver.run { $0.events.contains(.refreshed(lifetime: .seconds(600))) }, "\(driver.events)")

        // Deallocate, and check the relay is gone: data to it no longer reaches us.
        driver.client.close(now: .now())
        #expect(driver.run { $0.events.contains(.closed) }, "\(driver.events)")
        #expect(driver.client.state == .closed)
        // coturn confirms at once but tears the relay down from a timer: measure when it stops forwarding.
        let closedAt = MonotonicTime.now()
        var stoppedAfter: Duration?
        while MonotonicTime.now() - closedAt < .seconds(15) {
            peer.send(Array("after close".utf8), to: relayed)
            if clientSocket.receive(timeout: .milliseconds(200)) == nil {
                stoppedAfter = MonotonicTime.now() - closedAt
                break
            }
            usleep(100_000)
        }
        print("coturn stopped relaying \(stoppedAfter.map { "\($0)" } ?? "never (15 s)") after confirming the deallocation")
        #expect(stoppedAfter != nil, "the relay kept forwarding 15 s after deallocation")
        #expect(driver.client.droppedResponses == 0)
    }

    @Test func wrongPasswordIsRejectedByCoturn() throws {
        let coturn = try CoturnProcess()
        defer { coturn.stop() }
        let socket = try UDPTestSocket()
        _ = try coturn.waitUntilReady(from: socket)
        var driver = TURNSocketDriver(client: TURNClient(server: coturn.address, username: "u", password: "wrong"), socket: socket)
        driver.client.start(now: .now())
        #expect(driver.run { $0.client.state != .allocating })
        guard case .failed(.unauthorized) = driver.client.state else {
            Issue.record("expected unauthorized, got \(driver.client.state)")
            return
        }
    }
}
