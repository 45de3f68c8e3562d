import Foundation
import Logging
import NIOSSL
import Testing
@testable import Signaling

private func client(_ id: String, port: Int, configure: (inout RoomClient.Configuration) -> Void = { _ in }) -> RoomClient {
    var config = RoomClient.Configuration(url: "ws://127.0.0.1:\(port)/ws", participant: Participant(id: id, name: "Имя \(id)"))
    config.initialBackoff = .milliseconds(100)
    config.maxBackoff = .milliseconds(500)
    configure(&config)
    return RoomClient(configuration: config, logger: quietLogger)
}

private let quietLogger: Logger = {
    var logger = Logger(label: "test.client")
    logger.logLevel = ProcessInfo.processInfo.environment["SIGNALING_TEST_TRACE"] != nil ? .trace : .critical
    return logger
}()

private func participantIDs(_ m: ServerMessage, room: String = "general") -> [String]? {
    if case .roomParticipantsUpdated(let r, let list) = m, r == room { return list.map(\.id) }
    return nil
}

@Suite("Server and client over real sockets", .serialized, .timeLimit(.minutes(2)))
struct ServerClientTests {
    @Test func clientLifecycleAgainstServer() async throws {
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        let a = client("A", port: port), b = client("B", port: port)
        let ea = collect(a), eb = collect(b)
        await a.start()
        #expect(await ea.first { $0 == .connected ? true : nil } == true)
        // Registration replies: users, then rooms with the five presets.
        let users = await ea.message { m -> [String]? in if case .usersUpdated(let u) = m { return u.map(\.id) }; return nil }
        #expect(users == ["A"])
        let rooms = await ea.message { m -> [String]? in if case .roomsUpdated(let r) = m { return r.map(\.id) }; return nil }
        #expect(rooms == ["general", "important", "channel1", "channel2", "channel3"])

        try await a.join(room: "general")
        let joined = await ea.message { m -> String? in if case .joinedRoom(let r, let u) = m { return "\(r.id)/\(u.id)" }; return nil }
        #expect(joined == "general/A")
        #expect(await ea.message { participantIDs($0) } == ["A"])
        #expect(await a.currentRoom == "general")

        await b.start()
        try await b.join(room: "general")
        #expect(await eb.message { participantIDs($0) } == ["A", "B"])
        #expect(await ea.message { participantIDs($0) } == ["A", "B"])

        // Relay, both directions, payload unchanged.
        let offer = SimplePeerSignal.offer(sdp: "v=0\r\ns=-\r\n")
        try await a.sendSignal(to: "B", data: offer)
        let got = await eb.message { m -> WebRTCSignal? in if case .signal(let s) = m { return s }; return nil }
        #expect(got == WebRTCSignal(from: "A", to: "B", room: "general", data: offer))
        let cand = SimplePeerSignal.candidate(ICECandidateInit(candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMLineIndex: 0, sdpMid: "0"))
        try await b.sendSignal(to: "A", data: cand)
        #expect(await ea.message { m -> SimplePeerSignal? in if case .signal(let s) = m { return s.data }; return nil } == cand)

        // Mic and speaking reach both, sender included.
        try await a.setMicrophone(enabled: false)
        for inbox in [ea, eb] {
            #expect(await inbox.message { m -> Bool? in if case .microphoneToggled("A", "general", let on) = m { return on }; return nil } == false)
        }
        try await b.setSpeaking(true)
        for inbox in [ea, eb] {
            #expect(await inbox.message { m -> Bool? in if case .speaking("B", "general", let s) = m { return s }; return nil } == true)
        }

        // Leave: A hears it, then the new list.
        try await b.leave()
        #expect(await ea.message { m -> String? in if case .leftRoom("general", let u) = m { return u }; return nil } == "B")
        #expect(await ea.message { participantIDs($0) } == ["A"])

        // Disconnect counts as leaving.
        try await b.join(room: "general")
        #expect(await ea.message { participantIDs($0) } == ["A", "B"])
        await b.stop()
        #expect(await ea.message { m -> String? in if case .leftRoom("general", let u) = m { return u }; return nil } == "B")
        #expect(await ea.message { participantIDs($0) } == ["A"])

        // Errors: unknown room, full room, wrong password.
        try await a.join(room: "nowhere")
        #expect(await ea.message { m -> String? in if case .error(let t) = m { return t }; return nil } == RoomRegistry.ErrorText.roomNotFound)
        try await a.send(.createRoom(name: "Тесная", creator: "A", maxParticipants: 1, isPrivate: true, password: "pw"))
        let created = await ea.message { m -> Room? in if case .roomCreated(let r) = m { return r }; return nil }
        let room = try #require(created)
        #expect(room.password == nil, "passwords are never broadcast")
        #expect(await ea.message { m -> String? in if case .joinedRoom(let r, _) = m { return r.id }; return nil } == room.id)
        let c = client("C", port: port)
        let ec = collect(c)
        await c.start()
        try await c.join(room: room.id, password: "pw")
        #expect(await ec.message { m -> String? in if case .error(let t) = m { return t }; return nil } == RoomRegistry.ErrorText.roomFull)
        try await a.send(.createRoom(name: "Закрытая", creator: "A", maxParticipants: 5, isPrivate: true, password: "pw"))
        let second = try #require(await ec.message { m -> Room? in if case .roomCreated(let r) = m { return r }; return nil })
        try await c.join(room: second.id, password: "нет")
        #expect(await ec.message { m -> String? in if case .error(let t) = m { return t }; return nil } == RoomRegistry.ErrorText.wrongPassword)
        try await c.join(room: second.id, password: "pw")
        #expect(await ec.message { participantIDs($0, room: second.id) } == ["A", "C"])

        await a.stop()
        await c.stop()
        #expect(await ea.isFinished || true)
        await server.shutdown()
        try await task.value
    }

    @Test func scriptedSessionMatchesProtocolOrder() async throws {
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        let a = try await RawSocket.connect(port: port)
        try a.send(.register(sampleUser("A")))
        #expect(await a.types(2) == [MessageType.usersUpdated, MessageType.roomsUpdated])
        let b = try await RawSocket.connect(port: port)
        try b.send(.register(sampleUser("B")))
        #expect(await b.types(2) == [MessageType.usersUpdated, MessageType.roomsUpdated])
        #expect(await a.types(1) == [MessageType.usersUpdated])
        try a.send(.joinRoom(roomID: "channel1", userID: "A", password: nil))
        #expect(await a.types(2) == [MessageType.joinedRoom, MessageType.roomParticipantsUpdated])
        try b.send(.joinRoom(roomID: "channel1", userID: "B", password: nil))
        #expect(await b.types(2) == [MessageType.joinedRoom, MessageType.roomParticipantsUpdated])
        #expect(await a.types(1) == [MessageType.roomParticipantsUpdated])
        try a.send(.signal(WebRTCSignal(from: "A", to: "B", room: "channel1", data: .renegotiate)))
        #expect(await b.types(1) == [MessageType.signal])
        try a.send(.microphoneToggled(userID: "A", roomID: "channel1", enabled: false))
        #expect(await a.types(1) == [MessageType.microphoneToggled])
        #expect(await b.types(1) == [MessageType.microphoneToggled])
        try b.send(.speaking(userID: "B", roomID: "channel1", speaking: true))
        #expect(await a.types(1) == [MessageType.speaking])
        #expect(await b.types(1) == [MessageType.speaking])
        try a.send(.getRooms)
        guard case .roomsUpdated(let rooms) = await a.next() else { Issue.record("expected rooms"); return }
        #expect(rooms.first { $0.id == "channel1" }?.participants == ["A", "B"])
        try b.send(.getRoomParticipants(roomID: "channel1"))
        #expect(await b.types(1) == [MessageType.roomParticipantsUpdated])
        try a.send(.createRoom(name: "Новая", creator: "A", maxParticipants: 4, isPrivate: false, password: nil))
        // A leaves channel1 for the new room: B hears left + list, then both hear created; A gets joined.
        #expect(await b.types(3) == [MessageType.leftRoom, MessageType.roomParticipantsUpdated, MessageType.roomCreated])
        #expect(await a.types(2) == [MessageType.roomCreated, MessageType.joinedRoom])
        try b.send(.leaveRoom(roomID: "channel1", userID: "B"))
        #expect(await b.silent(), "the leaver of an emptied room gets nothing")
        b.close()
        #expect(await b.waitClosed())
        #expect(await a.silent(), "B was in no room, so A hears nothing")
        #expect(await a.inbox.isFinished == false)
        await server.shutdown()
        try await task.value
    }

    @Test func reconnectsAfterServerRestartAndRejoins() async throws {
        let (server1, port, task1) = try await startServer()
        let a = client("A", port: port), b = client("B", port: port)
        let ea = collect(a), eb = collect(b)
        await a.start()
        await b.start()
        try await a.join(room: "channel2")
        try await b.join(room: "channel2")
        #expect(await ea.message { m -> Set<String>? in
            if let ids = participantIDs(m, room: "channel2"), ids.count == 2 { return Set(ids) }; return nil
        } == ["A", "B"])
        await server1.shutdown()
        try await task1.value
        #expect(await ea.first { e -> Bool? in if case .disconnected(_, let retry) = e { return retry }; return nil } == true)
        #expect(await eb.first { e -> Bool? in if case .disconnected = e { return true }; return nil } == true)
        try await Task.sleep(for: .milliseconds(300))

        let (server2, port2, task2) = try await startServer(port: port)
        #expect(port2 == port)
        #expect(await ea.first(timeout: .seconds(10)) { e -> Bool? in if case .reconnected = e { return true }; return nil } == true)
        // Both re-register and rejoin channel2 on the new server: each sees the other again.
        #expect(await eb.message(timeout: .seconds(10)) { m -> Bool? in
            if let ids = participantIDs(m, room: "channel2"), Set(ids) == ["A", "B"] { return true }; return nil
        } == true)
        #expect(await a.currentRoom == "channel2")
        try await a.sendSignal(to: "B", data: .answer(sdp: "v=0"))
        #expect(await eb.message { m -> String? in if case .signal(let s) = m { return s.from }; return nil } == "A")
        await a.stop()
        await b.stop()
        await server2.shutdown()
        try await task2.value
    }

    @Test func hostileInputIsRefusedAndOthersAreUnaffected() async throws {
        let (server, port, task) = try await startServer { $0.abuseLimit = 60 }
        defer { task.cancel() }
        let good = try await registered("good", port: port)
        try good.send(.joinRoom(roomID: "general", userID: "good", password: nil))
        _ = await good.next(type: MessageType.roomParticipantsUpdated)

        let bad = try await RawSocket.connect(port: port)
        // Before registering: room actions are refused.
        try bad.send(.joinRoom(roomID: "general", userID: "bad", password: nil))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.notRegistered))
        for text in [
            "not json at all",
            "[1,2,3]",
            #"{"нет_типа":1}"#,
            #"{"тип":"присоединиться-к-комнате","комната_id":5,"пользователь_id":"bad","пароль":null}"#,
            #"{"тип":"присоединиться-к-комнате","пользователь_id":"bad"}"#,
            #"{"тип":"присоединиться","пользователь":{"id":"bad","имя":"x"}}"#,
        ] {
            bad.send(text)
            #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.badMessage), "for \(text)")
        }
        bad.send(#"{"тип":"неизвестно","x":1}"#)
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.unknownType))
        // Taking over a live id is refused.
        try bad.send(.register(sampleUser("good")))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.idInUse))
        try bad.send(.register(sampleUser("bad")))
        _ = await bad.next(type: MessageType.roomsUpdated)
        _ = await good.next(type: MessageType.usersUpdated)
        // Forged sender and cross-room target.
        try bad.send(.joinRoom(roomID: "channel3", userID: "bad", password: nil))
        _ = await bad.next(type: MessageType.roomParticipantsUpdated)
        try bad.send(.signal(WebRTCSignal(from: "good", to: "good", room: "general", data: .offer(sdp: "x"))))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.notYourID))
        try bad.send(.signal(WebRTCSignal(from: "bad", to: "good", room: "channel3", data: .offer(sdp: "x"))))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.recipientNotInRoom))
        try bad.send(.signal(WebRTCSignal(from: "bad", to: "good", room: "general", data: .offer(sdp: "x"))))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.recipientNotInRoom))
        try bad.send(.microphoneToggled(userID: "good", roomID: "general", enabled: false))
        #expect(await bad.next() == .error(message: RoomRegistry.ErrorText.notYourID))
        #expect(await good.silent(), "nothing leaked to the victim")

        // Huge frame: the connection is closed.
        let huge = try await registered("huge", port: port)
        huge.send(#"{"тип":"получить-комнаты","x":""# + String(repeating: "a", count: 100_000) + "\"}")
        #expect(await huge.waitClosed())

        // Flood: an error first, then disconnection.
        let flood = try await registered("flood", port: port)
        for _ in 0..<400 { try flood.send(.getRooms) }
        var sawRateError = false
        while let m = await flood.next(timeout: .seconds(3)) {
            if case .error(let t) = m, t == RoomRegistry.ErrorText.rateLimited { sawRateError = true }
        }
        #expect(sawRateError)
        #expect(await flood.waitClosed())

        // The well-behaved client still works and the server is healthy.
        try good.send(.getRooms)
        #expect(await good.next(type: MessageType.roomsUpdated) != nil)
        let health = try await httpRequest(port: port, path: "/health")
        #expect(health.status == 200)
        #expect(try json(health.body)["status"] == .string("ok"))
        await server.shutdown()
        try await task.value
    }

    @Test func clientRefusesOversizeAndQueueOverflow() async throws {
        // No server on this port: messages queue up to the limit while disconnected.
        let c = client("Q", port: 1) { $0.sendQueueLimit = 3; $0.maxMessageSize = 1000 }
        await #expect(throws: RoomClient.ClientError.messageTooLarge(size: 1021, limit: 1000)) {
            try await c.sendText(String(repeating: "x", count: 1021))
        }
        for _ in 0..<3 { try await c.send(.getRooms) }
        await #expect(throws: RoomClient.ClientError.queueFull) { try await c.send(.getRooms) }
        await #expect(throws: RoomClient.ClientError.notInRoom) { try await c.sendSignal(to: "x", data: .renegotiate) }
        // Backoff grows and stays within [d/2, d].
        for attempt in 1...8 {
            let d = await c.backoff(attempt: attempt)
            let full = min(500.0, 100.0 * Double(1 << (attempt - 1)))
            #expect(d >= .milliseconds(full / 2) && d <= .milliseconds(full), "attempt \(attempt): \(d)")
        }
        await c.stop()
        await #expect(throws: RoomClient.ClientError.stopped) { try await c.send(.getRooms) }
    }

    @Test func clientDropsOversizeIncomingFrames() async throws {
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        // users-updated for one user fits in 400 bytes; rooms-updated with five rooms (~1.3 KB) does not.
        let small = client("S", port: port) { $0.maxMessageSize = 400; $0.reconnect = false }
        let normal = client("N", port: port) { $0.reconnect = false }
        let smallEvents = collect(small), normalEvents = collect(normal)
        await small.start()
        let users = await smallEvents.message { m -> Bool? in if case .usersUpdated = m { return true }; return nil }
        #expect(users == true, "a frame under the limit is accepted")
        await normal.start()
        var smallSawRooms = false
        let dropped = await smallEvents.first { e -> Bool? in
            if case .message(.roomsUpdated) = e { smallSawRooms = true }
            if case .disconnected(_, let retry) = e { return retry }
            return nil
        }
        #expect(dropped == false, "the oversize frame ends the connection (no retry configured)")
        #expect(!smallSawRooms)
        #expect(await normalEvents.message { m -> Int? in if case .roomsUpdated(let r) = m { return r.count }; return nil } == 5)
        let normalDropped = await normalEvents.first(timeout: .milliseconds(500)) { e -> Bool? in
            if case .disconnected = e { return true }; return nil
        }
        #expect(normalDropped == nil)
        await small.stop()
        await normal.stop()
        await server.shutdown()
        try await task.value
    }

    @Test func httpEndpointsAndPage() async throws {
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        let page = try await httpRequest(port: port, path: "/")
        #expect(page.status == 200)
        #expect(page.body.contains("<script src=\"/app.js\">"))
        let js = try await httpRequest(port: port, path: "/app.js")
        #expect(js.status == 200 && js.body.contains("webrtc-signal"))
        #expect(try await httpRequest(port: port, path: "/style.css").status == 200)
        let health = try json(try await httpRequest(port: port, path: "/health").body)
        #expect(health["rooms"] == .number(5))
        #expect(try await httpRequest(port: port, method: "POST", path: "/report/alice", body: #"{"peers":{"x":1}}"#).status == 204)
        #expect(try json(try await httpRequest(port: port, path: "/report/alice").body)["peers"]?["x"] == .number(1))
        #expect(try json(try await httpRequest(port: port, path: "/reports").body)["alice"]?["peers"] != nil)
        #expect(try await httpRequest(port: port, path: "/report/bob").status == 404)
        await server.shutdown()
        try await task.value
    }

    @Test func webSocketsUpgradeOnSlashAndSlashWsOnly() async throws {
        let (server, port, task) = try await startServer()
        defer { task.cancel() }
        // Both endpoints, with or without a query string, serve the room protocol.
        for path in ["/", "/ws", "/ws?room=general", "/?x=1"] {
            let socket = try await RawSocket.connect(port: port, path: path)
            try socket.send(ClientMessage.getRooms)
            #expect(await socket.next(type: "комнаты-обновлены") != nil, "no reply on \(path)")
            socket.close()
            #expect(await socket.waitClosed(), "\(path) did not close")
        }
        // Other paths do not upgrade (and the page is still served over plain HTTP).
        for path in ["/wss", "/health", "/ws/x"] {
            await #expect(throws: TestFailure.self, "\(path) upgraded") { _ = try await RawSocket.connect(port: port, path: path) }
        }
        #expect(try await httpRequest(port: port, path: "/").status == 200)
        // Health reports the heap in use (glibc's mallinfo2), and no connection is left.
        let health = try json(try await httpRequest(port: port, path: "/health").body)
        guard case .number(let heap)? = health["heapBytesInUse"] else {
            Issue.record("no heapBytesInUse in /health")
            return
        }
        #expect(heap > 100_000)
        #expect(await server.health().connections == 0)
        await server.shutdown()
        try await task.value
    }

    @Test func webSocketPathMatching() {
        #expect(RoomServer.isWebSocketPath("/"))
        #expect(RoomServer.isWebSocketPath("/ws"))
        #expect(RoomServer.isWebSocketPath("/ws?a=b?c"))
        #expect(RoomServer.isWebSocketPath("/?"))
        #expect(!RoomServer.isWebSocketPath(nil))
        #expect(!RoomServer.isWebSocketPath(""))
        #expect(!RoomServer.isWebSocketPath("/ws/"))
        #expect(!RoomServer.isWebSocketPath("//ws"))
        #expect(!RoomServer.isWebSocketPath("/app.js"))
    }

    @Test func shutdownIsBoundedWithAStuckClient() async throws {
        let (server, port, task) = try await startServer { $0.shutdownTimeout = .seconds(2) }
        let fd = try await stuckWebSocket(port: port)
        defer { close(fd) }
        let normal = try await registered("n", port: port)
        let start = ContinuousClock.now
        await server.shutdown()
        _ = try? await task.value
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(5), "shutdown took \(elapsed)")
        #expect(await normal.waitClosed())
        #expect(await server.port == nil)
    }
}

/// Makes a CA and a server certificate for localhost/127.0.0.1 with the openssl CLI.
private func makeCertificates() throws -> (caPEM: String, chainPEM: String, keyPEM: String) {
    guard let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("openssl CLI not found: install the openssl package")
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peerd-signaling-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: openssl)
        p.arguments = args
        p.currentDirectoryURL = dir
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("openssl \(args.first ?? "") failed") }
    }
    try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        .write(to: dir.appendingPathComponent("ext.cnf"), atomically: true, encoding: .utf8)
    try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=peerd test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
    try run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"])
    func read(_ name: String) throws -> String { try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8) }
    return (try read("ca.pem"), try read("server.pem"), try read("server.key"))
}

@Suite("TLS", .serialized, .timeLimit(.minutes(1)))
struct TLSTests {
    @Test func wssWithPrivateCAAndSNI() async throws {
        let certs = try makeCertificates()
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certs.chainPEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(certs.keyPEM.utf8), format: .pem)
        let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        let (server, port, task) = try await startServer { $0.tls = tls }
        defer { task.cancel() }

        // Trusting the test CA, with SNI "localhost" for an IP URL: connects, registers, joins.
        let good = RoomClient(configuration: .init(
            url: "wss://127.0.0.1:\(port)/ws", participant: Participant(id: "T", name: "tls"),
            trustedCAPEM: certs.caPEM, sniHostname: "localhost", reconnect: false), logger: quietLogger)
        let events = collect(good)
        await good.start()
        #expect(await events.first { $0 == .connected ? true : nil } == true)
        try await good.join(room: "general")
        #expect(await events.message { m -> String? in if case .joinedRoom(let r, _) = m { return r.id }; return nil } == "general")

        // With the system trust store the private CA is refused: no connection.
        let untrusting = RoomClient(configuration: .init(
            url: "wss://127.0.0.1:\(port)/ws", participant: Participant(id: "U", name: "x"), sniHostname: "localhost", reconnect: false), logger: quietLogger)
        let uevents = collect(untrusting)
        await untrusting.start()
        let first = await uevents.next()
        guard case .disconnected(let reason, false) = first else { Issue.record("expected a refused connection, got \(String(describing: first))"); return }
        #expect(reason.lowercased().contains("certificate") || reason.lowercased().contains("ssl") || reason.lowercased().contains("handshake"), "\(reason)")

        let t0 = ContinuousClock.now
        await good.stop()
        let t1 = ContinuousClock.now
        await untrusting.stop()
        let t2 = ContinuousClock.now
        await server.shutdown()
        try await task.value
        #expect(t1 - t0 < .seconds(2), "stop over TLS is bounded: \(t1 - t0)")
        #expect(t2 - t1 < .seconds(1))
    }
}
