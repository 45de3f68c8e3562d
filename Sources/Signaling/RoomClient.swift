import HummingbirdWSClient
import Logging
import NIOCore
import NIOSSL
import Wire

/// A room-protocol participant: connects, registers, joins a room, and keeps that up across drops.
///
/// Incoming traffic arrives on `events`. After a drop it reconnects with exponential backoff and
/// jitter, registers again under the same id and rejoins the room it was in.
public actor RoomClient {
    /// Where to connect and how to behave.
    public struct Configuration: Sendable {
        /// `ws://` or `wss://` URL of the room server.
        public var url: String
        /// Who we are; `id` is kept across reconnects.
        public var participant: Participant
        /// PEM certificates to trust instead of the system store (for tests and private CAs).
        public var trustedCAPEM: String?
        /// TLS server name to send and verify, e.g. when connecting to an IP address.
        public var sniHostname: String?
        /// WebSocket ping period; an unanswered ping drops the connection.
        public var pingInterval: Duration
        /// Largest message sent or accepted, in bytes.
        public var maxMessageSize: Int
        /// Messages queued for sending (while connected or not) before `send` refuses.
        public var sendQueueLimit: Int
        /// Whether to reconnect after a drop.
        public var reconnect: Bool
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(
            url: String, participant: Participant, trustedCAPEM: String? = nil, sniHostname: String? = nil,
            pingInterval: Duration = .seconds(15), maxMessageSize: Int = 64 * 1024, sendQueueLimit: Int = 256,
            reconnect: Bool = true, initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(10)
        ) {
            self.url = url
            self.participant = participant
            self.trustedCAPEM = trustedCAPEM
            self.sniHostname = sniHostname
            self.pingInterval = pingInterval
            self.maxMessageSize = maxMessageSize
            self.sendQueueLimit = sendQueueLimit
            self.reconnect = reconnect
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    /// What the client reports.
    public enum Event: Sendable, Equatable {
        /// First connection established and registration sent.
        case connected
        /// Connection re-established after a drop (registration and rejoin sent); `attempt` counts tries.
        case reconnected(attempt: Int)
        /// The connection dropped (or could not be made); `willRetry` says if a reconnect follows.
        case disconnected(reason: String, willRetry: Bool)
        /// A message from the server.
        case message(ServerMessage)
        /// A frame from the server that could not be decoded (ignored otherwise).
        case invalidMessage(SignalingError)
    }

    /// Why a send was refused.
    public enum ClientError: Error, Equatable, Sendable {
        case queueFull
        case messageTooLarge(size: Int, limit: Int)
        case notInRoom
        case stopped
        case encodingFailed
        case invalidTrustRoots
    }

    public let configuration: Configuration
    /// Everything the client observes, in order; finishes after `stop()`.
    public nonisolated let events: AsyncStream<Event>
    private let eventSink: AsyncStream<Event>.Continuation
    private let logger: Logger
    private var participant: Participant
    private var roomID: String?
    private var roomPassword: String?
    private var requestedRoom: (id: String, password: String?)?
    private var connection: AsyncStream<String>.Continuation?
    private var pending: [String] = []
    private var runTask: Task<Void, Never>?
    private var stopped = false
    private var everConnected = false
    private var lastReadError: String?

    public init(configuration: Configuration, logger: Logger = Logger(label: "peerd.signaling.client")) {
        self.configuration = configuration
        self.participant = configuration.participant
        self.logger = logger
        (events, eventSink) = AsyncStream<Event>.makeStream()
    }

    /// Our participant id.
    public nonisolated var id: String { configuration.participant.id }
    /// The room the server last confirmed we are in.
    public var currentRoom: String? { roomID }
    /// Whether a connection is up.
    public var isConnected: Bool { connection != nil }

    /// Starts connecting (and reconnecting) in the background.
    public func start() {
        guard runTask == nil, !stopped else { return }
        runTask = Task { await self.connectionLoop() }
    }

    /// Closes the connection, stops reconnecting and finishes `events`.
    public func stop() async {
        stopped = true
        connection?.finish()
        runTask?.cancel()
        await runTask?.value
        runTask = nil
        eventSink.finish()
    }

    /// Asks to join a room; `.message(.joinedRoom)` or `.message(.error)` follows.
    public func join(room: String, password: String? = nil) throws(ClientError) {
        requestedRoom = (room, password)
        try send(.joinRoom(roomID: room, userID: id, password: password))
    }

    /// Leaves the current room.
    public func leave() throws(ClientError) {
        guard let roomID else { throw .notInRoom }
        self.roomID = nil
        requestedRoom = nil
        try send(.leaveRoom(roomID: roomID, userID: id))
    }

    /// Announces the microphone state to the room.
    public func setMicrophone(enabled: Bool) throws(ClientError) {
        participant.microphoneEnabled = enabled
        guard let roomID else { throw .notInRoom }
        try send(.microphoneToggled(userID: id, roomID: roomID, enabled: enabled))
    }

    /// Announces that we started or stopped speaking.
    public func setSpeaking(_ speaking: Bool) throws(ClientError) {
        guard let roomID else { throw .notInRoom }
        try send(.speaking(userID: id, roomID: roomID, speaking: speaking))
    }

    /// Sends a SimplePeer signal to a participant of our room.
    public func sendSignal(to peer: String, data: SimplePeerSignal) throws(ClientError) {
        guard let roomID else { throw .notInRoom }
        try send(.signal(WebRTCSignal(from: id, to: peer, room: roomID, data: data)))
    }

    /// Queues any message for sending.
    public func send(_ message: ClientMessage) throws(ClientError) {
        guard !stopped else { throw .stopped }
        let text: String
        do { text = try SignalingCodec.encode(message) } catch { throw .encodingFailed }
        try sendText(text)
    }

    /// Queues a raw text frame (checked against the size limit only).
    public func sendText(_ text: String) throws(ClientError) {
        guard !stopped else { throw .stopped }
        let size = text.utf8.count
        guard size <= configuration.maxMessageSize else { throw .messageTooLarge(size: size, limit: configuration.maxMessageSize) }
        if let connection {
            if case .dropped = connection.yield(text) { throw .queueFull }
        } else {
            guard pending.count < configuration.sendQueueLimit else { throw .queueFull }
            pending.append(text)
        }
    }

    // MARK: - Connection management

    private func connectionLoop() async {
        var attempt = 0
        while !stopped, !Task.isCancelled {
            let reason = await connectOnce(attempt: attempt)
            let wasUp = connection != nil
            connection?.finish()
            connection = nil
            let willRetry = configuration.reconnect && !stopped && !Task.isCancelled
            eventSink.yield(.disconnected(reason: reason, willRetry: willRetry))
            logger.info("disconnected", metadata: ["reason": "\(reason)", "retry": "\(willRetry)"])
            guard willRetry else { break }
            attempt = wasUp ? 1 : attempt + 1
            let delay = backoff(attempt: attempt)
            do { try await Task.sleep(for: delay) } catch { break }
        }
    }

    /// Exponential backoff with jitter: a random delay in [d/2, d], d = initial · 2^(attempt-1) capped at max.
    func backoff(attempt: Int) -> Duration {
        let initial = Double(configuration.initialBackoff.nanosecondsClamped)
        let maximum = Double(configuration.maxBackoff.nanosecondsClamped)
        let exponent = Double(min(max(attempt - 1, 0), 30))
        let full = min(maximum, initial * pow2(exponent))
        let jittered = full * Double.random(in: 0.5...1.0)
        return .nanoseconds(Int64(jittered))
    }

    private func pow2(_ e: Double) -> Double {
        var v = 1.0
        for _ in 0..<Int(e) { v *= 2 }
        return v
    }

    private nonisolated func connectOnce(attempt: Int) async -> String {
        let config = configuration
        var tls: TLSConfiguration?
        if config.url.lowercased().hasPrefix("wss") {
            var t = TLSConfiguration.makeClientConfiguration()
            // A server that drops the TCP connection without close_notify must not stall stop() for NIO's default 5 s.
            t.shutdownTimeout = .seconds(1)
            if let pem = config.trustedCAPEM {
                do {
                    t.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
                } catch {
                    return "invalid trusted CA PEM"
                }
            }
            tls = t
        }
        let wsConfig = WebSocketClientConfiguration(
            maxFrameSize: config.maxMessageSize,
            autoPing: .enabled(timePeriod: config.pingInterval),
            sniHostname: config.sniHostname)
        do {
            let close = try await WebSocketClient.connect(
                url: config.url, configuration: wsConfig, tlsConfiguration: tls, logger: logger
            ) { inbound, outbound, _ in
                let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(config.sendQueueLimit))
                await self.didConnect(continuation, attempt: attempt)
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await text in stream {
                            do { try await outbound.write(.text(text)) } catch { return }
                        }
                    }
                    group.addTask {
                        do {
                            for try await message in inbound.messages(maxSize: config.maxMessageSize) {
                                guard case .text(let text) = message else { continue }
                                let keepGoing = await self.didReceive(text)
                                if !keepGoing { return }
                            }
                        } catch {
                            await self.noteReadError("\(error)")
                        }
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
            if let readError = await takeReadError() { return readError }
            if let close { return "closed: \(close.closeCode)\(close.reason.map { " \($0)" } ?? "")" }
            return "closed"
        } catch {
            return "\(error)"
        }
    }

    private func noteReadError(_ text: String) { lastReadError = text }

    private func takeReadError() -> String? {
        defer { lastReadError = nil }
        return lastReadError
    }

    private func didConnect(_ continuation: AsyncStream<String>.Continuation, attempt: Int) {
        guard !stopped else {
            continuation.finish()
            return
        }
        var queue: [String] = []
        participant.lastActivity = .now()
        participant.connected = true
        if let text = try? SignalingCodec.encode(ClientMessage.register(participant)) { queue.append(text) }
        if let roomID, let text = try? SignalingCodec.encode(ClientMessage.joinRoom(roomID: roomID, userID: id, password: roomPassword)) {
            queue.append(text)
        }
        for text in queue + pending { continuation.yield(text) }
        pending.removeAll()
        connection = continuation
        if everConnected {
            eventSink.yield(.reconnected(attempt: attempt))
        } else {
            everConnected = true
            eventSink.yield(.connected)
        }
        logger.info("connected", metadata: ["url": "\(configuration.url)", "user": "\(id)"])
    }

    /// Handles one text frame; false asks to drop the connection (and retry).
    private func didReceive(_ text: String) -> Bool {
        let message: ServerMessage
        do {
            message = try SignalingCodec.decodeServer(text)
        } catch {
            eventSink.yield(.invalidMessage(error))
            return true
        }
        switch message {
        case .joinedRoom(let room, let user) where user.id == id:
            roomID = room.id
            if let requestedRoom, requestedRoom.id == room.id { roomPassword = requestedRoom.password }
        case .roomCreated(let room) where room.creator == id:
            roomID = room.id
            roomPassword = nil
        case .leftRoom(let room, let user) where user == id && room == roomID:
            roomID = nil
        case .error(let text) where text == RoomRegistry.ErrorText.idInUse:
            eventSink.yield(.message(message))
            return false
        default:
            break
        }
        eventSink.yield(.message(message))
        return true
    }
}
