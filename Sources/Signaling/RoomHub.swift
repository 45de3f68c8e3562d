import Logging

/// The server's single owner of room state and of each connection's outbound queue.
actor RoomHub {
    private var registry: RoomRegistry
    private var outbound: [ConnectionID: AsyncStream<String>.Continuation] = [:]
    private var nextID: UInt64 = 1
    private var reports: [String: String] = [:]
    private let queueLimit: Int
    private let logger: Logger
    private var closed = false

    init(queueLimit: Int, maxRoomCapacity: Int, logger: Logger) {
        var registry = RoomRegistry()
        registry.maxRoomCapacity = maxRoomCapacity
        self.registry = registry
        self.queueLimit = queueLimit
        self.logger = logger
    }

    /// Opens a connection; nil once the hub is shutting down.
    func open() -> (ConnectionID, AsyncStream<String>)? {
        guard !closed else { return nil }
        let id = ConnectionID(nextID)
        nextID += 1
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(queueLimit))
        outbound[id] = continuation
        logger.debug("connection opened", metadata: ["connection": "\(id)"])
        return (id, stream)
    }

    func receive(_ message: ClientMessage, from id: ConnectionID) {
        guard outbound[id] != nil else { return }
        let deliveries = registry.handle(message, from: id)
        if case .register(let p) = message, registry.user(on: id) == p.id {
            logger.info("registered", metadata: ["connection": "\(id)", "user": "\(p.id)"])
        }
        deliver(deliveries)
    }

    func sendError(_ text: String, to id: ConnectionID) {
        deliver([Delivery(recipients: [id], message: .error(message: text))])
    }

    func close(_ id: ConnectionID) {
        guard let continuation = outbound.removeValue(forKey: id) else { return }
        continuation.finish()
        let user = registry.user(on: id)
        deliver(registry.disconnect(id))
        logger.debug("connection closed", metadata: ["connection": "\(id)", "user": "\(user ?? "-")"])
    }

    /// Ends a connection's outbound stream once what is queued has been written; it stays registered until `close`.
    func finishOutbound(_ id: ConnectionID) {
        outbound[id]?.finish()
    }

    /// Ends every connection's outbound stream and refuses new ones.
    func shutdownAll() {
        closed = true
        for (_, continuation) in outbound { continuation.finish() }
    }

    func storeReport(name: String, json: String) {
        if reports[name] == nil, reports.count >= 64 { return }
        reports[name] = json
    }

    func report(name: String) -> String? { reports[name] }
    func allReports() -> [String: String] { reports }

    func health() -> (connections: Int, users: Int, rooms: Int) {
        (outbound.count, registry.userCount, registry.roomCount)
    }

    private func deliver(_ deliveries: [Delivery]) {
        var slow: [ConnectionID] = []
        for delivery in deliveries where !delivery.recipients.isEmpty {
            let text: String
            do {
                text = try SignalingCodec.encode(delivery.message)
            } catch {
                logger.error("encoding failed", metadata: ["type": "\(delivery.message.type)"])
                continue
            }
            for recipient in delivery.recipients {
                guard let continuation = outbound[recipient] else { continue }
                if case .dropped = continuation.yield(text) { slow.append(recipient) }
            }
        }
        for id in slow {
            logger.warning("outbound queue full, closing", metadata: ["connection": "\(id)"])
            close(id)
        }
    }
}
