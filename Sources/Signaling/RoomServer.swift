import CMemory
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Wire

/// A voice-room signaling server compatible with the existing one (room-protocol.md), serving the browser page too.
///
/// WebSocket on `/` and `/ws`; HTTP: `/` (page), `/app.js`, `/style.css`, `GET /health`,
/// `POST|GET /report/{name}` and `GET /reports` (status reports from test pages).
public actor RoomServer {
    /// How the server listens and what it tolerates.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port; read it from `port` once running.
        public var port: Int
        /// Largest accepted message, in bytes; bigger frames close the connection.
        public var maxMessageSize: Int
        /// Burst of messages a connection may send at once.
        public var rateBurst: Int
        /// Sustained messages per second per connection.
        public var ratePerSecond: Double
        /// Messages dropped for rate within `abuseWindow` that get a connection closed.
        public var abuseLimit: Int
        public var abuseWindow: Duration
        /// Outbound messages queued per connection before it is dropped as too slow.
        public var outboundQueueLimit: Int
        /// The largest room a client may create.
        public var maxRoomCapacity: Int
        /// Server-side WebSocket ping period (dead peers are dropped).
        public var pingInterval: Duration
        /// Upper bound on graceful shutdown before connections are cut.
        public var shutdownTimeout: Duration
        /// Serve HTTPS/wss with this (certificate chain and key); nil serves plain HTTP/ws.
        public var tls: TLSConfiguration?

        public init(
            host: String = "127.0.0.1", port: Int = 8080, maxMessageSize: Int = 64 * 1024, rateBurst: Int = 50,
            ratePerSecond: Double = 50, abuseLimit: Int = 100, abuseWindow: Duration = .seconds(10),
            outboundQueueLimit: Int = 512, maxRoomCapacity: Int = 100, pingInterval: Duration = .seconds(20),
            shutdownTimeout: Duration = .seconds(3), tls: TLSConfiguration? = nil
        ) {
            self.tls = tls
            self.host = host
            self.port = port
            self.maxMessageSize = maxMessageSize
            self.rateBurst = rateBurst
            self.ratePerSecond = ratePerSecond
            self.abuseLimit = abuseLimit
            self.abuseWindow = abuseWindow
            self.outboundQueueLimit = outboundQueueLimit
            self.maxRoomCapacity = maxRoomCapacity
            self.pingInterval = pingInterval
            self.shutdownTimeout = shutdownTimeout
        }
    }

    /// Errors from running the server.
    public enum ServerError: Error, Equatable, Sendable {
        case alreadyRunning
        case stoppedBeforeStart
    }

    public let configuration: Configuration
    private let logger: Logger
    private let hub: RoomHub
    private var serviceGroup: ServiceGroup?
    private var boundPort: Int?
    private var portWaiters: [CheckedContinuation<Int?, Never>] = []
    private var finished = false

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "peerd.signaling.server")) {
        self.configuration = configuration
        self.logger = logger
        self.hub = RoomHub(queueLimit: configuration.outboundQueueLimit, maxRoomCapacity: configuration.maxRoomCapacity, logger: logger)
    }

    /// The port the server is bound to, nil before it is listening.
    public var port: Int? { boundPort }

    /// Waits until the server listens and returns its port (nil if it stopped first).
    public func waitUntilListening() async -> Int? {
        if let boundPort { return boundPort }
        if finished { return nil }
        return await withCheckedContinuation { portWaiters.append($0) }
    }

    private func didBind(_ port: Int?) {
        boundPort = port
        logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port.map(String.init) ?? "?")"])
        for waiter in portWaiters { waiter.resume(returning: port) }
        portWaiters.removeAll()
    }

    private func didFinish() {
        finished = true
        boundPort = nil
        for waiter in portWaiters { waiter.resume(returning: nil) }
        portWaiters.removeAll()
    }

    /// Runs the server until `shutdown()` is called (or the task is cancelled).
    public func run() async throws {
        guard serviceGroup == nil, !finished else { throw ServerError.alreadyRunning }
        let config = configuration
        let hub = self.hub
        let logger = self.logger
        let web = WebAssets.load(logger: logger)

        let router = Router()
        for asset in web.files {
            router.get(RouterPath(stringLiteral: asset.path)) { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = asset.contentType
                headers[.cacheControl] = "no-cache"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
            }
        }
        router.get("/health") { _, _ in
            let h = await hub.health()
            // The process's C heap in use, so an operator (and the room soak) can tell growth from churn.
            let heap = peerd_heap_bytes_in_use()
            let json = "{\"status\":\"ok\",\"connections\":\(h.connections),\"users\":\(h.users),\"rooms\":\(h.rooms),"
                + "\"heapBytesInUse\":\(heap)}"
            return Self.jsonResponse(json)
        }
        router.post("/report/{name}") { request, context in
            let name = context.parameters.get("name") ?? ""
            let body = try await request.body.collect(upTo: 64 * 1024)
            await hub.storeReport(name: name, json: String(buffer: body))
            return Response(status: .noContent)
        }
        router.get("/report/{name}") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard let json = await hub.report(name: name) else { return Response(status: .notFound) }
            return Self.jsonResponse(json)
        }
        router.get("/reports") { _, _ in
            let all = await hub.allReports()
            let body = all.keys.sorted().map { key in
                "\(Self.jsonString(key)):\(all[key] ?? "null")"
            }.joined(separator: ",")
            return Self.jsonResponse("{\(body)}")
        }

        // The upgrade is decided by path here rather than by a WebSocket router: hummingbird-websocket 2.8.1's
        // router keeps each upgraded connection's request context in a box the context itself holds (a retain
        // cycle), so every connection served through it left about 750 bytes behind for good.
        let plain = HTTPServerBuilder.http1WebSocketUpgrade(
            configuration: .init(ws: .init(
                maxFrameSize: config.maxMessageSize,
                autoPing: .enabled(timePeriod: config.pingInterval),
                closeTimeout: .seconds(1)))
        ) { request, _, _ in
            guard Self.isWebSocketPath(request.path) else { return .dontUpgrade }
            return .upgrade([:]) { inbound, outbound, _ in
                await Self.serveConnection(inbound: inbound, outbound: outbound, hub: hub, config: config, logger: logger)
            }
        }
        let serverBuilder = try config.tls.map { try HTTPServerBuilder.tls(plain, tlsConfiguration: $0) } ?? plain
        let app = Application(
            router: router,
            server: serverBuilder,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "peerd-rooms"),
            onServerRunning: { channel in await self.didBind(channel.localAddress?.port) },
            logger: logger
        )
        var groupConfig = ServiceGroupConfiguration(services: [app], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = config.shutdownTimeout
        groupConfig.maximumCancellationDuration = .seconds(1)
        let group = ServiceGroup(configuration: groupConfig)
        serviceGroup = group
        defer { didFinish() }
        try await group.run()
    }

    /// Stops accepting, closes every connection and ends `run()`; bounded by `shutdownTimeout`.
    public func shutdown() async {
        logger.info("shutting down")
        await hub.shutdownAll()
        if let serviceGroup {
            await serviceGroup.triggerGracefulShutdown()
        } else {
            didFinish()
        }
    }

    /// Current counts, as served on `/health`.
    public func health() async -> (connections: Int, users: Int, rooms: Int) { await hub.health() }

    static func jsonResponse(_ json: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    /// The WebSocket endpoints: `/` and `/ws`, whatever the query string.
    static func isWebSocketPath(_ path: String?) -> Bool {
        guard let path else { return false }
        let withoutQuery = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return withoutQuery == "/" || withoutQuery == "/ws"
    }

    static func jsonString(_ s: String) -> String {
        (try? SignalingCodec.encode(s)) ?? "\"\""
    }

    static func serveConnection(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, hub: RoomHub, config: Configuration, logger: Logger
    ) async {
        guard let (id, stream) = await hub.open() else {
            try? await outbound.close(.goingAway, reason: "shutting down")
            return
        }
        enum Ending: Sendable { case writer, reader(abusive: Bool), timeout }
        await withTaskGroup(of: Ending.self) { group in
            group.addTask {
                for await text in stream {
                    do { try await outbound.write(.text(text)) } catch { break }
                }
                return .writer
            }
            group.addTask {
                var bucket = TokenBucket(capacity: config.rateBurst, refillPerSecond: config.ratePerSecond)
                var dropped = 0
                var windowStart = MonotonicTime.now()
                do {
                    for try await message in inbound.messages(maxSize: config.maxMessageSize) {
                        let now = MonotonicTime.now()
                        guard bucket.take(now: now) else {
                            if now - windowStart > config.abuseWindow {
                                windowStart = now
                                dropped = 0
                            }
                            dropped += 1
                            if dropped == 1 { await hub.sendError(RoomRegistry.ErrorText.rateLimited, to: id) }
                            if dropped > config.abuseLimit {
                                logger.warning("closing flooding connection", metadata: ["connection": "\(id)"])
                                return .reader(abusive: true)
                            }
                            continue
                        }
                        guard case .text(let text) = message else {
                            await hub.sendError(RoomRegistry.ErrorText.badMessage, to: id)
                            continue
                        }
                        do {
                            let decoded = try SignalingCodec.decodeClient(text)
                            await hub.receive(decoded, from: id)
                        } catch {
                            logger.debug("bad message", metadata: ["connection": "\(id)", "error": "\(error)"])
                            await hub.sendError(RoomRegistry.ErrorText.badMessage, to: id)
                        }
                    }
                } catch {
                    logger.debug("connection read ended", metadata: ["connection": "\(id)", "error": "\(error)"])
                }
                return .reader(abusive: false)
            }
            let first = await group.next()
            switch first {
            case .reader(abusive: true):
                // Let the queued replies (and the rate error) go out first, for at most a second.
                await hub.finishOutbound(id)
                group.addTask {
                    try? await Task.sleep(for: .seconds(1))
                    return .timeout
                }
                _ = await group.next()
                group.cancelAll()
                try? await outbound.close(.policyViolation, reason: "rate limit")
            case .writer:
                group.cancelAll()
                try? await outbound.close(.goingAway, reason: nil)
            default:
                group.cancelAll()
            }
        }
        await hub.close(id)
    }
}

/// The browser page files, read from the module's `Web` resources.
struct WebAssets: Sendable {
    struct File: Sendable {
        var path: String
        var contentType: String
        var bytes: [UInt8]
    }

    var files: [File]

    static func load(logger: Logger) -> WebAssets {
        guard let base = Bundle.module.url(forResource: "Web", withExtension: nil) else {
            logger.warning("web resources not found")
            return WebAssets(files: [])
        }
        var files: [File] = []
        let items = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        for name in items.sorted() {
            guard let data = FileManager.default.contents(atPath: base.appendingPathComponent(name).path) else { continue }
            let type: String
            if name.hasSuffix(".html") { type = "text/html; charset=utf-8" }
            else if name.hasSuffix(".js") { type = "text/javascript; charset=utf-8" }
            else if name.hasSuffix(".css") { type = "text/css; charset=utf-8" }
            else { type = "application/octet-stream" }
            let bytes = [UInt8](data)
            files.append(File(path: "/\(name)", contentType: type, bytes: bytes))
            if name == "index.html" { files.append(File(path: "/", contentType: type, bytes: bytes)) }
        }
        return WebAssets(files: files)
    }
}
