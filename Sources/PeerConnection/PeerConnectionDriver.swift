import ICE
import NIOCore
import Wire

/// Runs a `PeerConnectionCore` on one SwiftNIO event loop with its own UDP sockets (or attached to a
/// `SharedUDPPort`): datagrams in, timers, transmits out (batched, flushed after each read batch),
/// events to the owner's handler.
///
/// Thread-safety: every mutable member is touched only on `eventLoop` (checked with
/// `eventLoop.preconditionInEventLoop()` in debug builds); that confinement is why the
/// `@unchecked Sendable` below is safe.
public final class PeerConnectionDriver: @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let core: PeerConnectionCore
    public private(set) var sockets: UDPSocketSet?
    /// Set instead of `sockets` when the connection runs on a `SharedUDPPort`.
    private var sharedPort: SharedUDPPort.Attachment?
    private var sharedPortUfrag: String?
    /// On a shared port, this connection's own ephemeral sockets for its TURN-over-UDP allocations
    /// (TURN allows one allocation per client 5-tuple, so connections on one port cannot each
    /// allocate through it): TURN messages and ChannelData to `turnServerAddresses` leave from here,
    /// and what the servers send here reaches the core as if received on the shared socket of the
    /// same IP (the relays' base). STUN Binding requests to the same servers stay on the shared port.
    private var turnSockets: UDPSocketSet?
    private var turnServerAddresses: Set<TransportAddress> = []
    /// The owner's event handler, in a box of its own (see `emit`).
    private var eventHandler = EventHandler { _ in }
    private var timer: Scheduled<Void>?
    private var timerDeadline: MonotonicTime?
    private var closed = false
    /// TCP/TLS connections to the TURN servers reached over streams (none for UDP-only configurations).
    private var turnStreams: TURNStreamTransport?
    /// False while only SRTP/SRTCP arrived since the timer was last armed: media never moves the
    /// core's timers, so a read batch of media skips the `nextTimeout` computation.
    private var timersMayHaveMoved = true
    /// Datagrams were queued on the sockets since the last flush. A read batch of received media
    /// queues none: its read-complete then skips the flush calls (the socket set's own flush would
    /// find nothing to send, but an attachment on another loop than its port's hops there to ask).
    private var unflushedSends = false

    /// A connection's own sockets carry one participant's stream (50 packets/s): a recvmmsg batch of
    /// 4 holds what arrives between two wake-ups, and keeps the receive buffer at 8 KiB per socket
    /// instead of the 64 KiB a 32-message batch reserves (peerd-load: −72 KiB per connection, no
    /// CPU change measured with batches of 1).
    public static let defaultSocketConfiguration = UDPSocketSet.Configuration(vectorReadMessageCount: 4)

    init(core: PeerConnectionCore, eventLoop: any EventLoop) {
        self.core = core
        self.eventLoop = eventLoop
    }

    /// Binds one UDP socket per admitted local address, adds them as host candidates, and starts.
    /// `onEvent` runs on `eventLoop` for every event of the core.
    public static func start(configuration: PeerConnectionConfiguration, interfaces: InterfaceFilter,
                             sockets socketConfiguration: UDPSocketSet.Configuration = PeerConnectionDriver.defaultSocketConfiguration,
                             eventLoop: any EventLoop,
                             onEvent: @escaping @Sendable (PeerConnectionEvent) -> Void) async throws -> PeerConnectionDriver {
        let addresses = NetworkInterfaces.addresses().filter { interfaces.admits($0) }.map(\.address)
        let unique = addresses.reduce(into: [IPAddress]()) { if !$0.contains($1) { $0.append($1) } }
        return try await start(configuration: configuration, eventLoop: eventLoop, onEvent: onEvent) { onReceive, onReadComplete in
            try await UDPSocketSet.bind(addresses: unique, configuration: socketConfiguration, eventLoop: eventLoop,
                                        onReceive: onReceive, onReadComplete: onReadComplete)
        }
    }

    /// The same on sockets the caller already bound (for example inside a network namespace); the
    /// driver owns them from now on. Their addresses become the host candidates.
    public static func start(configuration: PeerConnectionConfiguration, boundSockets: [CInt],
                             sockets socketConfiguration: UDPSocketSet.Configuration = PeerConnectionDriver.defaultSocketConfiguration,
                             eventLoop: any EventLoop,
                             onEvent: @escaping @Sendable (PeerConnectionEvent) -> Void) async throws -> PeerConnectionDriver {
        try await start(configuration: configuration, eventLoop: eventLoop, onEvent: onEvent) { onReceive, onReadComplete in
            try await UDPSocketSet.adopt(boundSockets: boundSockets, configuration: socketConfiguration, eventLoop: eventLoop,
                                         onReceive: onReceive, onReadComplete: onReadComplete)
        }
    }

    /// The same on a port shared with other connections (`SharedUDPPort`): the shared sockets'
    /// addresses become the host candidates, datagrams for this connection's ufrag (and the sources
    /// it learned) arrive here, and `close()` detaches it from the port (which stays open). With TURN
    /// servers over UDP, the connection also binds ephemeral sockets of its own on the port's IPs for
    /// its allocations (one allocation per client 5-tuple): relayed traffic flows through them.
    public static func start(configuration: PeerConnectionConfiguration, sharedPort: SharedUDPPort,
                             eventLoop: any EventLoop,
                             onEvent: @escaping @Sendable (PeerConnectionEvent) -> Void) async throws -> PeerConnectionDriver {
        let driver = PeerConnectionDriver(core: PeerConnectionCore(configuration: configuration), eventLoop: eventLoop)
        // Nobody else holds the core yet: reading it off the loop is safe here.
        let ufrag = driver.core.localCredentials.ufrag
        let turnServers = Set(configuration.turnServers.filter { !$0.isStream }.map(\.address))
        var turnSockets: UDPSocketSet?
        if !turnServers.isEmpty {
            let ips = sharedPort.localAddresses.map(\.ip).reduce(into: [IPAddress]()) { if !$0.contains($1) { $0.append($1) } }
            turnSockets = try await UDPSocketSet.bind(
                addresses: ips, configuration: defaultSocketConfiguration, eventLoop: eventLoop,
                onReceive: { [driver] datagram in driver.receiveFromTURNServer(datagram) }, onReadComplete: { [driver] in driver.flush() })
        }
        let attachment: SharedUDPPort.Attachment
        do {
            attachment = try await sharedPort.attach(
                localUfrag: ufrag, eventLoop: eventLoop,
                onReceive: { [driver] datagram in driver.receiveNeedingFlush(&datagram) },
                onReadComplete: { [driver] in driver.flush() },
                onTimer: { [driver] in driver.timerFired() })
        } catch {
            await turnSockets?.close()
            throw error
        }
        try await eventLoop.submit { [turnSockets] in
            driver.sharedPort = attachment
            driver.sharedPortUfrag = ufrag
            driver.turnSockets = turnSockets
            driver.turnServerAddresses = turnServers
            driver.eventHandler = EventHandler(onEvent)
            driver.core.addHostCandidates(attachment.localAddresses)
            driver.core.endOfLocalCandidates()
            driver.openTURNStreams()
            driver.pump()
        }.get()
        return driver
    }

    private static func start(
        configuration: PeerConnectionConfiguration, eventLoop: any EventLoop,
        onEvent: @escaping @Sendable (PeerConnectionEvent) -> Void,
        makeSockets: (_ onReceive: @escaping @Sendable (consuming ReceivedDatagram) -> Void,
                      _ onReadComplete: @escaping @Sendable () -> Void) async throws -> UDPSocketSet
    ) async throws -> PeerConnectionDriver {
        let driver = PeerConnectionDriver(core: PeerConnectionCore(configuration: configuration), eventLoop: eventLoop)
        let sockets = try await makeSockets({ [driver] datagram in driver.receive(taking: datagram) }, { [driver] in driver.flush() })
        try await eventLoop.submit {
            driver.sockets = sockets
            driver.eventHandler = EventHandler(onEvent)
            driver.core.addHostCandidates(sockets.localAddresses)
            driver.core.endOfLocalCandidates()
            driver.openTURNStreams()
            driver.pump()
        }.get()
        return driver
    }

    /// Runs `body` with the core on the event loop, then sends what it produced.
    @discardableResult
    public func withCore<T: Sendable>(_ body: @escaping @Sendable (PeerConnectionCore) throws -> T) async throws -> T {
        try await eventLoop.submit { [self] in
            let result = try body(core)
            pump()
            return result
        }.get()
    }

    /// The same, for callers already on the event loop.
    public func withCoreOnLoop<T>(_ body: (PeerConnectionCore) throws -> T) rethrows -> T {
        eventLoop.preconditionInEventLoop()
        let result = try body(core)
        pump()
        return result
    }

    /// Sends an RTP packet, on the loop: the core protects and queues it, and it leaves with the
    /// next flush. Unlike `withCoreOnLoop`, nothing is re-armed: sending media moves none of the
    /// core's timers (a bot sends a packet per participant every 20 ms; re-arming would compute the
    /// core's next deadline for each).
    public func sendRTPOnLoop(_ packet: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard !closed else { return }
        core.sendRTP(packet)
        drain()
        flushSends()
    }

    /// The same for an RTCP compound packet.
    public func sendRTCPOnLoop(_ packet: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard !closed else { return }
        core.sendRTCP(packet)
        drain()
        flushSends()
    }

    /// Closes the connection (DTLS close_notify) and its sockets.
    public func close() async {
        let shared = try? await eventLoop.submit { [self] in
            core.close(now: .now())
            pump()
            flush()
            closed = true
            timer?.cancel()
            turnStreams?.closeAll()
            return sharedPort
        }.get()
        await sockets?.close()
        await turnSockets?.close()
        await shared?.detach()
        // The attachment's receive callback holds this driver and the driver its attachment: let go
        // of it (and of the owner's handler), so a closed connection is freed.
        try? await eventLoop.submit { [self] in
            sharedPort = nil
            eventHandler = EventHandler { _ in }
        }.get()
    }

    /// `receive`, then whether `flush` has work (sends to flush, a timer to re-arm): on a shared
    /// port, a media packet that caused neither costs its connection no read-complete call.
    private func receiveNeedingFlush(_ datagram: inout ReceivedDatagram) -> Bool {
        receive(&datagram)
        return unflushedSends || timersMayHaveMoved
    }

    private func receive(taking datagram: consuming ReceivedDatagram) {
        var owned = consume datagram
        receive(&owned)
    }

    /// Handles the datagram in its own buffer and leaves the buffer there (the shared port reuses it).
    private func receive(_ datagram: inout ReceivedDatagram) {
        guard !closed else { return }
        // RFC 7983: 128...191 is RTP/RTCP; STUN, DTLS and the rest may move ICE or DTLS timers.
        if !(128...191).contains(datagram.bytes.first ?? 0) { timersMayHaveMoved = true }
        let source = datagram.source, local = datagram.local
        // Media comes back directly (no queue); anything else the datagram caused is drained. SRTP
        // decrypts in place: the datagram holds the bytes' only reference, and the packet's slices of
        // them are gone once the owner has handled it.
        if let media = core.handleDatagram(&datagram.bytes, from: source, to: local, now: .now()) {
            emit(media)
        }
        if core.hasQueuedOutput { drain() }
    }

    /// A datagram on this connection's own TURN socket (shared-port mode): from a TURN server, it
    /// reaches the core as received on the shared socket of the same IP, the base of its relays.
    private func receiveFromTURNServer(_ datagram: ReceivedDatagram) {
        guard !closed, turnServerAddresses.contains(datagram.source),
              let base = sharedPort?.localAddresses.first(where: { $0.ip == datagram.local.ip }) else { return }
        timersMayHaveMoved = true
        if let media = core.handleDatagram(datagram.bytes, from: datagram.source, to: base, now: .now()) { emit(media) }
        drain()
    }

    /// Whether a transmit on a shared port goes out of this connection's own TURN socket instead:
    /// a TURN message (any STUN method but Binding) or ChannelData (RFC 7983: 64...79) to a TURN server.
    private func turnSocketAddress(for bytes: [UInt8], to destination: TransportAddress, from base: TransportAddress) -> TransportAddress? {
        guard let turnSockets, turnServerAddresses.contains(destination), let first = bytes.first else { return nil }
        let isChannelData = (64...79).contains(first)
        let isTURNMessage = STUNMessage.peekHeader(bytes).map { $0.type.method != .binding } ?? false
        guard isChannelData || isTURNMessage else { return nil }
        return turnSockets.localAddresses.first { $0.ip == base.ip }
    }

    /// On a shared port, tells the port what handling this connection's next datagram touches, so it
    /// prefetches that before handling a batch (see `PrefetchHints`): this driver, the core, its SRTP
    /// session, and what `owner` adds (the objects its event handler touches per packet: recorder,
    /// receive stream, buffers). Call on the driver's loop now and then (buffers move as they grow).
    public func refreshPrefetchHints(owner: (inout PrefetchHints) -> Void = { _ in }) {
        guard let sharedPort else { return }
        var hints = PrefetchHints()
        hints.add(self, bytes: 192)
        hints.add(eventHandler, bytes: 32)
        if let context = eventHandler.context { hints.add(address: context, bytes: 64) }
        core.addPrefetchHints(&hints)
        owner(&hints)
        sharedPort.setPrefetchHints(hints)
    }

    /// Hands an event to the owner's handler without retaining the handler's box or its context:
    /// a retain is a locked instruction, which waits for every store before it to reach the cache,
    /// and each media packet's call retained the handler's context, a line nothing else brings in
    /// (2.5 % of the loop in `swift_retain` at 2,000 streams). The box is held by `eventHandler` for
    /// the whole call: it is replaced only at start and in `close()`, in tasks of this loop of their
    /// own, never from inside a handler call.
    @inline(__always)
    private func emit(_ event: PeerConnectionEvent) {
        Unmanaged.passUnretained(eventHandler)._withUnsafeGuaranteedRef { $0.handle(event) }
    }

    private func flush() {
        flushSends()
        if timersMayHaveMoved {
            timersMayHaveMoved = false
            armTimer()
        }
    }

    private func flushSends() {
        guard unflushedSends else { return }
        unflushedSends = false
        sockets?.flush()
        sharedPort?.flush()
        turnSockets?.flush()
    }

    /// Drains events and transmits, flushes, and re-arms the timer.
    func pump() {
        if let sharedPort, core.localCredentials.ufrag != sharedPortUfrag {  // an ICE restart
            sharedPortUfrag = core.localCredentials.ufrag
            sharedPort.register(localUfrag: core.localCredentials.ufrag)
        }
        drain()
        timersMayHaveMoved = true
        flush()
    }

    private func drain() {
        while let event = core.pollEvent() { emit(event) }
        if let turnStreams {
            while let transmit = core.pollTURNStreamTransmit() { turnStreams.send(transmit.bytes, connection: transmit.connection) }
        }
        if let sockets {
            while let transmit = core.pollTransmit() {
                unflushedSends = true
                try? sockets.send(transmit.bytes, from: transmit.from, to: transmit.to)
            }
        } else if let sharedPort {
            while let transmit = core.pollTransmit() {
                unflushedSends = true
                if let own = turnSocketAddress(for: transmit.bytes, to: transmit.to, from: transmit.from) {
                    try? turnSockets?.send(transmit.bytes, from: own, to: transmit.to)
                } else {
                    sharedPort.send(transmit.bytes, from: transmit.from, to: transmit.to)
                }
            }
        }
    }

    /// Opens the TCP/TLS connections of the TURN servers the core reaches over streams (on the loop).
    private func openTURNStreams() {
        let connections = core.turnStreamConnections
        guard !connections.isEmpty else { return }
        let transport = TURNStreamTransport(
            eventLoop: eventLoop, trust: core.configuration.turnTLSTrust,
            onBytes: { [weak self] id, bytes in
                guard let self, !closed else { return }
                timersMayHaveMoved = true
                core.handleTURNStreamBytes(bytes, connection: id, now: .now())
                if core.turnStreamConnectionFailed(id) { turnStreams?.close(connection: id) }
                pump()
            },
            onClosed: { [weak self] id in
                guard let self, !closed else { return }
                core.turnStreamClosed(connection: id, now: .now())
                pump()
            })
        turnStreams = transport
        for connection in connections { transport.open(connection) }
    }

    /// A deadline at least this far ahead (consent checks, STUN and DTLS retransmissions) goes to the
    /// shared port's timers when the port runs them (`SharedUDPPort.Attachment.setTimer`): it runs after
    /// a read batch of the port, up to the port's leeway (4 ms) late. Nearer ones (check pacing during
    /// connectivity checks) keep an exact timer of the loop.
    static let portTimerHorizon: Duration = .milliseconds(100)

    private func armTimer() {
        guard let deadline = core.nextTimeout else { return }
        armTimer(at: deadline)
    }

    private func armTimer(at deadline: MonotonicTime) {
        guard !closed else { return }
        if let sharedPort, sharedPort.runsTimers, deadline - MonotonicTime.now() >= Self.portTimerHorizon {
            sharedPort.setTimer(at: deadline)
            return
        }
        if let current = timerDeadline, current <= deadline, timer != nil { return }
        timer?.cancel()
        timerDeadline = deadline
        let nioDeadline = NIODeadline.uptimeNanoseconds(UInt64(max(0, deadline.nanoseconds)))
        timer = eventLoop.scheduleTask(deadline: nioDeadline) { [self] in
            timer = nil
            timerDeadline = nil
            timerFired()
        }
    }

    /// A timer (the loop's or the shared port's) reached its deadline. The core's next deadline may
    /// have moved later since it was armed (a response ended a retransmission, say): then nothing is
    /// due, and the timer is only armed again.
    private func timerFired() {
        guard !closed else { return }
        let now = MonotonicTime.now()
        if let next = core.nextTimeout, next > now {
            armTimer(at: next)
            return
        }
        core.handleTimeout(now: now)
        pump()
    }
}

/// A driver's event handler: a constant closure in a box, which the driver calls through an
/// unretained reference (`PeerConnectionDriver.emit`).
private final class EventHandler {
    let handle: (PeerConnectionEvent) -> Void
    /// The closure's context (the owner's captures, which its call reads first), for prefetch
    /// hints. A Swift closure value is two words, its function and its context; read as two plain
    /// pointers, the second is the context. Only a hint: were the layout another, a prefetch of the
    /// wrong address costs nothing but itself (a prefetch never faults).
    let context: UnsafeRawPointer?

    init(_ handle: @escaping (PeerConnectionEvent) -> Void) {
        self.handle = handle
        context = MemoryLayout.size(ofValue: handle) == 2 * MemoryLayout<UnsafeRawPointer>.size
            ? unsafeBitCast(handle, to: (UnsafeRawPointer?, UnsafeRawPointer?).self).1 : nil
    }
}
