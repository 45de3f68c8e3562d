import Foundation
import HummingbirdWSClient
import Logging
import Testing
@testable import Signaling

/// A queue that async tests can wait on with a timeout.
actor Inbox<Element: Sendable> {
    private var items: [Element] = []
    private var finished = false
    private var waiter: (id: Int, continuation: CheckedContinuation<Element?, Never>)?
    private var nextWaiter = 0

    func push(_ item: Element) {
        if let w = waiter {
            waiter = nil
            w.continuation.resume(returning: item)
        } else {
            items.append(item)
        }
    }

    func finish() {
        finished = true
        if let w = waiter {
            waiter = nil
            w.continuation.resume(returning: nil)
        }
    }

    var isFinished: Bool { finished && items.isEmpty }

    /// The next item, or nil on timeout or when finished.
    func next(timeout: Duration = .seconds(10)) async -> Element? {
        if !items.isEmpty { return items.removeFirst() }
        if finished { return nil }
        nextWaiter += 1
        let id = nextWaiter
        return await withCheckedContinuation { continuation in
            waiter = (id, continuation)
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        if let w = waiter, w.id == id {
            waiter = nil
            w.continuation.resume(returning: nil)
        }
    }

    /// Drops everything queued.
    func drain() { items.removeAll() }
}

/// A bare WebSocket client for hostile and exact-order tests.
final class RawSocket: Sendable {
    enum Out: Sendable { case text(String), close }
    let inbox: Inbox<String>
    private let out: AsyncStream<Out>.Continuation
    private let task: Task<Void, Never>
    /// Gets one item once the connection has ended.
    let closed: Inbox<String>

    private init(out: AsyncStream<Out>.Continuation, task: Task<Void, Never>, inbox: Inbox<String>, closed: Inbox<String>) {
        self.out = out
        self.task = task
        self.inbox = inbox
        self.closed = closed
    }

    static func connect(port: Int, path: String = "/ws", maxFrameSize: Int = 1 << 20) async throws -> RawSocket {
        let (stream, continuation) = AsyncStream<Out>.makeStream()
        let opened = Inbox<Bool>()
        let inbox = Inbox<String>()
        let closed = Inbox<String>()
        let task = Task {
            var logger = Logger(label: "test.raw")
            logger.logLevel = .critical
            do {
                let frame = try await WebSocketClient.connect(
                    url: "ws://127.0.0.1:\(port)\(path)", configuration: .init(maxFrameSize: maxFrameSize), logger: logger
                ) { inbound, outbound, _ in
                    await opened.push(true)
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await item in stream {
                                switch item {
                                case .text(let t): do { try await outbound.write(.text(t)) } catch { return }
                                case .close: try? await outbound.close(.normalClosure, reason: nil); return
                                }
                            }
                        }
                        group.addTask {
                            do {
                                for try await message in inbound.messages(maxSize: maxFrameSize) {
                                    if case .text(let t) = message { await inbox.push(t) }
                                }
                            } catch {}
                        }
                        await group.next()
                        group.cancelAll()
                    }
                }
                await closed.push("closed \(frame.map { "\($0.closeCode)" } ?? "-")")
            } catch {
                await opened.push(false)
                await closed.push("error \(error)")
            }
            await inbox.finish()
        }
        let socket = RawSocket(out: continuation, task: task, inbox: inbox, closed: closed)
        guard await opened.next(timeout: .seconds(5)) == true else { throw TestFailure("could not connect to 127.0.0.1:\(port)") }
        return socket
    }

    func send(_ text: String) { out.yield(.text(text)) }
    func send(_ message: ClientMessage) throws { out.yield(.text(try SignalingCodec.encode(message))) }
    func close() { out.yield(.close) }

    /// Next server message, decoded.
    func next(timeout: Duration = .seconds(10)) async -> ServerMessage? {
        guard let text = await inbox.next(timeout: timeout) else { return nil }
        return try? SignalingCodec.decodeServer(text)
    }

    /// Skips messages until one has the given type.
    func next(type: String, timeout: Duration = .seconds(10)) async -> ServerMessage? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let m = await next(timeout: deadline - ContinuousClock.now) else { return nil }
            if m.type == type { return m }
        }
        return nil
    }

    /// The types of the next `count` messages.
    func types(_ count: Int, timeout: Duration = .seconds(10)) async -> [String] {
        var out: [String] = []
        for _ in 0..<count {
            guard let m = await next(timeout: timeout) else { break }
            out.append(m.type)
        }
        return out
    }

    /// True if nothing arrives within `window`.
    func silent(for window: Duration = .milliseconds(300)) async -> Bool {
        await inbox.next(timeout: window) == nil
    }

    /// Waits until the connection ends.
    func waitClosed(timeout: Duration = .seconds(10)) async -> Bool {
        await closed.next(timeout: timeout) != nil
    }

    deinit { task.cancel() }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts a server on 127.0.0.1, port 0 unless given; returns it, its port and the run task.
func startServer(port: Int = 0, tweak: (inout RoomServer.Configuration) -> Void = { _ in }) async throws -> (RoomServer, Int, Task<Void, any Error>) {
    var config = RoomServer.Configuration(host: "127.0.0.1", port: port)
    tweak(&config)
    var logger = Logger(label: "test.server")
    logger.logLevel = .critical
    let server = RoomServer(configuration: config, logger: logger)
    let task = Task { try await server.run() }
    guard let bound = await server.waitUntilListening() else {
        task.cancel()
        throw TestFailure("server did not start")
    }
    return (server, bound, task)
}

/// Registers a raw socket as `id` and consumes the registration replies.
func registered(_ id: String, port: Int) async throws -> RawSocket {
    let s = try await RawSocket.connect(port: port)
    try s.send(.register(sampleUser(id)))
    _ = await s.next(type: MessageType.roomsUpdated)
    return s
}

/// A plain HTTP/1.1 request over a TCP socket; returns status and body.
/// The blocking socket work runs on its own thread so it never starves the cooperative pool.
func httpRequest(port: Int, method: String = "GET", path: String, body: String? = nil) async throws -> (status: Int, body: String) {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try blockingHTTPRequest(port: port, method: method, path: path, body: body) })
        }
        thread.start()
    }
}

private func blockingHTTPRequest(port: Int, method: String, path: String, body: String?) throws -> (status: Int, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw TestFailure("connect failed") }
    let payload = Array((body ?? "").utf8)
    var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if body != nil { request += "Content-Type: application/json\r\nContent-Length: \(payload.count)\r\n" }
    request += "\r\n"
    let bytes = Array(request.utf8) + payload
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headEnd = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response: \(text.prefix(200))") }
    let statusLine = text[..<headEnd.lowerBound].split(separator: "\r\n").first ?? ""
    let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, String(text[headEnd.upperBound...]))
}

/// Opens a TCP connection, performs the WebSocket upgrade and then never reads or answers again.
func stuckWebSocket(port: Int) async throws -> Int32 {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try blockingStuckWebSocket(port: port) }) }.start()
    }
}

private func blockingStuckWebSocket(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw TestFailure("connect failed") }
    let request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    guard n > 0, String(decoding: buffer[0..<n], as: UTF8.self).contains("101") else { throw TestFailure("upgrade failed") }
    return fd
}

/// Collects a RoomClient's events into an inbox.
func collect(_ client: RoomClient) -> Inbox<RoomClient.Event> {
    let inbox = Inbox<RoomClient.Event>()
    Task {
        for await event in client.events { await inbox.push(event) }
        await inbox.finish()
    }
    return inbox
}

extension Inbox where Element == RoomClient.Event {
    /// Skips events until `match` returns a value.
    func first<T>(timeout: Duration = .seconds(10), _ match: (RoomClient.Event) -> T?) async -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let event = await next(timeout: deadline - ContinuousClock.now) else { return nil }
            if let value = match(event) { return value }
        }
        return nil
    }

    /// Skips events until a server message satisfies `match`.
    func message<T>(timeout: Duration = .seconds(10), _ match: (ServerMessage) -> T?) async -> T? {
        await first(timeout: timeout) { event in
            if case .message(let m) = event { return match(m) }
            return nil
        }
    }
}
