import CShims
import NIOCore
import Wire

/// One UDP socket per local address on one fixed port, shared by many connections (ICE agents),
/// as server deployments behind firewalls need (a single open port for every peer).
///
/// Received datagrams go through a `SharedPortDemultiplexer` to the attachment (connection) they
/// belong to: a Binding request by the local ufrag of its USERNAME, a STUN response by the transaction
/// ID of the request the attachment sent (so several connections can ask the same STUN server),
/// everything else by its source (learned from routed requests and from the addresses an attachment
/// sent DTLS to). A datagram for no known attachment is counted and dropped.
///
/// Limitation: a source is owned by one attachment at a time, so two connections on the port must
/// not allocate from the same TURN server through it (nor could they: TURN allows one allocation per
/// 5-tuple; Data indications and ChannelData from the server carry no transaction ID).
/// `PeerConnectionDriver` therefore gives each connection on a shared port its own ephemeral socket
/// for its TURN allocations.
///
/// Thread-safety: the demultiplexer, the attachment table and the pending read-complete list are
/// touched only on `eventLoop` (the sockets' loop); every entry point either runs there or hops
/// there with `execute`/`submit`. That confinement is why the `@unchecked Sendable` below is safe.
public final class SharedUDPPort: @unchecked Sendable {
    /// Counters of the port (read with `statistics()`).
    public struct Statistics: Sendable, Equatable {
        /// Datagrams that matched no attachment (unknown ufrag, unknown source, detached connection).
        public var unroutedDrops: Int
        /// STUN responses to no remembered transaction, from an unknown source.
        public var unknownTransactionDrops: Int
        /// STUN requests without a usable USERNAME.
        public var badUsernameDrops: Int
        public var attachments: Int
    }

    /// One connection's view of the port: its sends go out through the shared sockets, and the
    /// datagrams routed to it arrive through `onReceive` on its own event loop. `onReceive` returns
    /// whether the connection wants `onReadComplete` after the batch (it queued sends to flush, or
    /// its timers may have moved); a media packet needs none.
    public final class Attachment: @unchecked Sendable {
        // Immutable after init, except `pendingReadComplete` and `prefetchHints`, which only the port's loop touches.
        let id: Int
        let port: SharedUDPPort
        public let eventLoop: any EventLoop
        /// The attachment runs on the port's loop: no hop on receive or send.
        let sameLoop: Bool
        let onReceive: @Sendable (inout ReceivedDatagram) -> Bool
        let onReadComplete: @Sendable () -> Void
        let onTimer: (@Sendable () -> Void)?
        var pendingReadComplete = false
        /// The deadline of this attachment's live entry in the port's timer heap, and that entry's
        /// generation (older entries of this attachment are stale). Port loop only.
        var timerDeadline: MonotonicTime?
        var timerGeneration: UInt32 = 0
        /// What handling this connection's next datagram touches (see `PrefetchHints`); port loop only.
        var prefetchHints = PrefetchHints()

        init(id: Int, port: SharedUDPPort, eventLoop: any EventLoop,
             onReceive: @escaping @Sendable (inout ReceivedDatagram) -> Bool, onReadComplete: @escaping @Sendable () -> Void,
             onTimer: (@Sendable () -> Void)?) {
            self.id = id
            self.port = port
            self.eventLoop = eventLoop
            self.sameLoop = eventLoop === port.eventLoop
            self.onReceive = onReceive
            self.onReadComplete = onReadComplete
            self.onTimer = onTimer
        }

        /// Whether the port runs this connection's timers (`setTimer`): it is on the port's loop and
        /// gave an `onTimer` when it attached.
        public var runsTimers: Bool { sameLoop && onTimer != nil }

        /// Asks the port to call `onTimer` once `deadline` has passed: after the first read batch
        /// from then on, or at the latest `timerLeeway` later (a timer of the port's own fires then
        /// when no datagram came). A connection's long timers (consent checks, retransmissions) so
        /// ride the wake-ups that read its media instead of waking the loop for themselves, and what
        /// they send leaves in that batch's flush. A pending earlier deadline stands: `onTimer` comes
        /// at that one, and the connection asks again for what is due next. Call on the port's loop,
        /// and only when `runsTimers`.
        public func setTimer(at deadline: MonotonicTime) {
            port.eventLoop.preconditionInEventLoop()
            guard onTimer != nil, port.attachments[id] === self else { return }
            if let current = timerDeadline, current <= deadline { return }
            timerGeneration &+= 1
            timerDeadline = deadline
            port.pushTimer(PortTimerHeap.Entry(deadline: deadline, generation: timerGeneration, attachment: self))
        }

        /// The shared sockets' addresses (the host candidates of every attached connection).
        public var localAddresses: [TransportAddress] { port.sockets.localAddresses }

        /// Routes requests for `localUfrag` here too (after an ICE restart). Callable from any loop.
        public func register(localUfrag: String) {
            port.onLoop { [self] in
                // Not once detached: the demultiplexer's keys do not keep their attachment alive.
                guard port.attachments[id] === self else { return }
                port.demultiplexer.register(localUfrag: localUfrag, for: AttachmentKey(self))
            }
        }

        /// Sets what the port prefetches for this connection before handling a batch of datagrams
        /// that holds one of its own. Callable from any loop; used only when the connection runs on the
        /// port's loop (where its datagrams are handled in batches).
        public func setPrefetchHints(_ hints: PrefetchHints) {
            guard sameLoop else { return }
            if port.eventLoop.inEventLoop { prefetchHints = hints } else { port.eventLoop.execute { [self] in prefetchHints = hints } }
        }

        /// Queues a datagram on the shared socket bound to `local`; `flush()` sends the batch.
        /// Call on this attachment's event loop.
        public func send(_ bytes: [UInt8], from local: TransportAddress, to remote: TransportAddress) {
            // STUN requests teach the demultiplexer their transaction IDs, DTLS its destination
            // (`noteSent` passes over RTP/RTCP, which goes to an address its checks already taught).
            if sameLoop {
                port.noteSent(bytes, to: remote, by: self)
                try? port.sockets.send(bytes, from: local, to: remote)
            } else {
                // The demultiplexer is confined to the port's loop, so a connection on another loop
                // hops there (once per datagram; NIO would hop for the socket write anyway).
                port.eventLoop.execute { [self] in
                    port.noteSent(bytes, to: remote, by: self)
                    try? port.sockets.send(bytes, from: local, to: remote)
                }
            }
        }

        /// Sends what `send` queued. On the port's loop the flush is shared: it happens once, at the
        /// end of the port's read batch or of the current loop task, for every connection that asked
        /// (one `sendmmsg` for the batch instead of one `sendmsg` per connection).
        public func flush() {
            if sameLoop { port.requestFlush() } else { port.eventLoop.execute { [port] in port.sockets.flush() } }
        }

        /// Stops routing to this connection: its ufrags and learned sources are forgotten.
        public func detach() async {
            try? await port.eventLoop.submit { [self] in
                // Everything that names this attachment without holding it goes in the same step.
                port.demultiplexer.unregister(AttachmentKey(self))
                port.routed.removeAll { $0.key == AttachmentKey(self) }
                port.attachments[id] = nil
                // Its timer entries (the live one and any superseded ones) hold it: they go too.
                timerDeadline = nil
                port.timers.removeAll { $0.attachment === self }
                port.armBackstop()
            }.get()
        }
    }

    /// Socket settings for a port that carries many participants' streams (`peerd join --port`):
    /// 32-datagram `recvmmsg` batches, a large kernel buffer for bursts, and reads paced 2 ms apart,
    /// so each wake-up takes full batches. The buffer: 16 MiB asked, 32 MiB granted (the kernel
    /// doubles it) to a process with CAP_NET_ADMIN, else twice `net.core.rmem_max` at most (Debian's
    /// default 208 KiB: 416 KiB). At 3,000 streams (150,000 datagrams a second) 32 MiB hold about
    /// 270 ms, and the 8 MiB an `rmem_max` of 4 MiB allows, 67 ms: peerd-load at 3,000 streams on a
    /// 2-core VM lost datagrams in bursts of 150–200 ms with 67 ms of room.
    /// A datagram waits at most 2 ms more, a tenth of an audio packet's 20 ms. peerd-load: paced 1 ms
    /// apart, about 12 % less CPU per packet than reading as soon as the socket is readable (1,000
    /// streams); 2 ms, 4 % less again, and 4 ms another 3 % for twice the wait (700 streams, paired
    /// simultaneous runs).
    public static let serverConfiguration = UDPSocketSet.Configuration(vectorReadMessageCount: 32, socketBufferBytes: 16 << 20,
                                                                       readPacing: .milliseconds(2))

    public let eventLoop: any EventLoop
    /// Set once in `bind` before the port is handed out; immutable afterwards.
    public private(set) var sockets: UDPSocketSet!
    /// Routes to the attachment objects themselves: a routed datagram needs no second lookup.
    /// Its keys do not retain their attachments (see `AttachmentKey`): `attachments` does.
    ///
    /// Unchecked exclusivity here and on `pending` and `routed`: they are touched per datagram, and
    /// the runtime check the optimizer keeps on each access that spans a release costs a call. No
    /// two accesses can overlap: each is one call on the value (which calls nothing back) or an
    /// element's read or `take`, never held across a connection's handler; what a handler starts
    /// (a send's `noteSent`, a detach) runs after the access ended or as a later task of the loop.
    @exclusivity(unchecked) fileprivate var demultiplexer = SharedPortDemultiplexer<AttachmentKey>()
    /// Every attached connection, held here; detaching removes it from the demultiplexer and from
    /// `routed` in the same step.
    fileprivate var attachments: [Int: Attachment] = [:]
    private var nextID = 0
    @exclusivity(unchecked) private var pending: [Attachment] = []
    /// Datagrams routed to connections on this loop and not handled yet: a batch is routed first,
    /// and each connection's `PrefetchHints` prefetched, then handled in order (the cache misses of
    /// many connections' cold state overlap instead of coming one after another).
    @exclusivity(unchecked) fileprivate var routed: [(key: AttachmentKey, datagram: ReceivedDatagram?)] = []
    /// Routed datagrams handled at once at most (the prefetched state of a batch stays in cache).
    public static let handlingBatch = 32
    /// Arrays of handled datagrams, handed back to the socket's reader one per datagram it delivers,
    /// so that it copies the next datagram into one instead of allocating (see `receive`).
    @exclusivity(unchecked) private var spareBuffers: [[UInt8]] = []
    private static let spareBufferLimit = 2 * handlingBatch

    /// How late after its deadline the port may run a connection's timer (`Attachment.setTimer`):
    /// long enough that a port read every 2 ms (`serverConfiguration`) reaches it first while
    /// datagrams flow. Settable for tests; port loop only.
    public var timerLeeway: Duration = .milliseconds(4)
    fileprivate var timers = PortTimerHeap()
    /// The port's own timer, at the first heap entry's deadline plus `timerLeeway`.
    private var backstop: Scheduled<Void>?
    private var backstopDeadline: MonotonicTime?
    /// While the port handles a read batch or runs timers, flush requests wait for its one flush.
    private var batching = false
    private var flushRequested = false
    /// A flush requested outside a batch is queued once, to the end of the current loop task.
    private var flushQueued = false

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The shared port's addresses.
    public var localAddresses: [TransportAddress] { sockets.localAddresses }

    /// Binds one socket per address on `port` (0: one ephemeral port per socket, for tests).
    /// `configuration.portRange` is ignored: the port is the setting. A server socket carries many
    /// streams: give it a large batch (the default 32) and, for many connections, `socketBufferBytes`.
    public static func bind(addresses: [IPAddress], port: UInt16, configuration: UDPSocketSet.Configuration = .init(),
                            eventLoop: any EventLoop) async throws -> SharedUDPPort {
        let shared = SharedUDPPort(eventLoop: eventLoop)
        var configuration = configuration
        configuration.portRange = port == 0 ? nil : port...port
        let sockets = try await UDPSocketSet.bind(
            addresses: addresses, configuration: configuration, eventLoop: eventLoop,
            handling: { [shared] datagram in shared.receive(&datagram) },
            onReadComplete: { [shared] in shared.readComplete() })
        try await eventLoop.submit { shared.sockets = sockets }.get()
        return shared
    }

    /// Attaches a connection whose local ufrag is `localUfrag`. `onReceive` and `onReadComplete` run
    /// on `eventLoop` (the connection's loop), the second after each batch that brought it a datagram
    /// for which `onReceive` returned true. `onReceive` may take the datagram's bytes; when it leaves
    /// them in the datagram instead, holding no other reference, the port reuses their storage for a
    /// later datagram (no allocation per datagram).
    /// `onTimer`, when given, lets a connection on the port's loop have the port run its timers
    /// (`Attachment.setTimer`).
    public func attach(localUfrag: String, eventLoop connectionLoop: any EventLoop,
                       onReceive: @escaping @Sendable (inout ReceivedDatagram) -> Bool,
                       onReadComplete: @escaping @Sendable () -> Void,
                       onTimer: (@Sendable () -> Void)? = nil) async throws -> Attachment {
        try await eventLoop.submit { [self] in
            nextID += 1
            let attachment = Attachment(id: nextID, port: self, eventLoop: connectionLoop,
                                        onReceive: onReceive, onReadComplete: onReadComplete, onTimer: onTimer)
            attachments[nextID] = attachment
            demultiplexer.register(localUfrag: localUfrag, for: AttachmentKey(attachment))
            return attachment
        }.get()
    }

    public func statistics() async throws -> Statistics {
        try await eventLoop.submit { [self] in
            Statistics(unroutedDrops: demultiplexer.unroutedDrops,
                       unknownTransactionDrops: demultiplexer.unknownTransactionDrops,
                       badUsernameDrops: demultiplexer.badUsernameDrops, attachments: attachments.count)
        }.get()
    }

    /// Closes the sockets (attached connections stop receiving).
    public func close() async {
        await sockets.close()
    }

    /// The demultiplexer learns from what `attachment` sends, while it is attached.
    fileprivate func noteSent(_ bytes: [UInt8], to remote: TransportAddress, by attachment: Attachment) {
        // RTP and RTCP teach nothing: no lookup for the sends that are most of the traffic.
        guard let first = bytes.first, !(128...191).contains(first), attachments[attachment.id] === attachment else { return }
        demultiplexer.noteSent(bytes, to: remote, by: AttachmentKey(attachment))
    }

    fileprivate func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// A datagram from a socket's reader. Its bytes are moved on (routed) and, in their place, the
    /// reader gets the array of a datagram handled earlier to copy its next one into; an unrouted
    /// datagram's own array stays with the reader for that.
    private func receive(_ received: inout ReceivedDatagram) {
        // A detached attachment is unregistered from the demultiplexer in the same step that removes
        // it from `attachments`: what routes here is attached, and held there.
        guard let key = demultiplexer.route(received.bytes, from: received.source) else { return }
        var datagram = ReceivedDatagram(bytes: [], source: received.source, local: received.local)
        swap(&datagram.bytes, &received.bytes)
        if let spare = spareBuffers.popLast() { received.bytes = spare }
        if key.sameLoop {
            // Not touched yet (the key is all routing needed): its first lines are fetched while the
            // batch fills, and its hints read when the batch is handled (6 lines: the attachment with
            // its 24 hint ranges).
            peerd_prefetch_lines(UnsafeRawPointer(key.reference.toOpaque()), 6)
            if routed.count >= Self.handlingBatch { handleRouted() }
            routed.append((key, consume datagram))
        } else {
            // A connection on another loop must handle its datagrams there (its core is confined to
            // that loop): one hop per datagram, then its flush, only for connections not on this loop.
            let attachment = key.reference.takeUnretainedValue()
            let hop = consume datagram
            attachment.eventLoop.execute {
                var datagram = hop
                if attachment.onReceive(&datagram) { attachment.onReadComplete() }
            }
        }
    }

    /// Hands the routed datagrams to their connections, in the order they arrived.
    ///
    /// The attachments are used through their unretained keys: each is held by `attachments` until a
    /// detach, which runs as a task of this loop and takes its datagrams out of `routed` first, while
    /// a batch is handled within one read of this loop. No retain and release of each connection's
    /// cold attachment per datagram (a locked instruction on a cache miss: 3 % of the loop, `perf`).
    private func handleRouted() {
        // Nothing appends to `routed` while it is handled: datagrams arrive only from the socket reads.
        for index in routed.indices {
            routed[index].key.reference._withUnsafeGuaranteedRef { attachment in
                attachment.prefetchHints.forEach { address, lines in peerd_prefetch_lines(address, Int32(lines)) }
            }
        }
        for index in routed.indices {
            // Taken out, so the connection gets the datagram's only reference: SRTP decrypts its
            // bytes in place, where a second reference would make the array copy itself first.
            guard var datagram = routed[index].datagram.take() else { continue }
            routed[index].key.reference._withUnsafeGuaranteedRef { attachment in
                if attachment.onReceive(&datagram), !attachment.pendingReadComplete {
                    attachment.pendingReadComplete = true
                    pending.append(attachment)
                }
            }
            // What the connection left in the datagram (its bytes, when it kept no reference to them)
            // becomes a spare for the reader.
            if spareBuffers.count < Self.spareBufferLimit, datagram.bytes.capacity >= DirectDatagramReader.recycledCapacity {
                var bytes: [UInt8] = []
                swap(&bytes, &datagram.bytes)
                spareBuffers.append(consume bytes)
            }
        }
        routed.removeAll(keepingCapacity: true)
    }

    private func readComplete() {
        batching = true
        if !routed.isEmpty { handleRouted() }
        if !pending.isEmpty {
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            for attachment in batch {
                attachment.pendingReadComplete = false
                attachment.onReadComplete()
            }
        }
        if !timers.isEmpty { runDueTimers() }
        endBatch()
    }

    // MARK: Flushes and timers shared by the connections on this loop

    fileprivate func requestFlush() {
        if batching {
            flushRequested = true
        } else if !flushQueued {
            flushQueued = true
            eventLoop.execute { [self] in
                flushQueued = false
                sockets.flush()
            }
        }
    }

    private func endBatch() {
        batching = false
        if flushRequested {
            flushRequested = false
            sockets.flush()
        }
    }

    fileprivate func pushTimer(_ entry: PortTimerHeap.Entry) {
        let wasFirst = timers.first?.deadline
        timers.push(entry)
        if wasFirst.map({ entry.deadline < $0 }) ?? true { armBackstop() }
    }

    /// Runs the timers whose deadline has passed (in deadline order), then re-arms the backstop.
    private func runDueTimers() {
        guard let first = timers.first else { return }
        let now = MonotonicTime.now()
        guard first.deadline <= now else { return }
        while let entry = timers.first, entry.deadline <= now {
            timers.popFirst()
            let attachment = entry.attachment
            guard attachment.timerGeneration == entry.generation, attachment.timerDeadline != nil,
                  attachments[attachment.id] === attachment else { continue }
            attachment.timerDeadline = nil
            attachment.onTimer?()
        }
        armBackstop()
    }

    /// Keeps the port's own timer at the first deadline plus the leeway (none when no timer is set).
    fileprivate func armBackstop() {
        let wanted = timers.first.map { $0.deadline + timerLeeway }
        guard wanted != backstopDeadline else { return }
        backstop?.cancel()
        backstopDeadline = wanted
        guard let wanted else {
            backstop = nil
            return
        }
        backstop = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, wanted.nanoseconds)))) { [self] in
            backstop = nil
            backstopDeadline = nil
            batching = true
            runDueTimers()
            endBatch()
            armBackstop()
        }
    }
}

/// An attachment as the demultiplexer's key: its identity, unretained (the port's `attachments`
/// holds every attached connection, and detaching removes its keys in the same step), with whether
/// it runs on the port's loop, so routing a datagram touches nothing of the attachment.
struct AttachmentKey: Hashable, Sendable {
    let reference: Unmanaged<SharedUDPPort.Attachment>
    let sameLoop: Bool

    init(_ attachment: SharedUDPPort.Attachment) {
        reference = Unmanaged.passUnretained(attachment)
        sameLoop = attachment.sameLoop
    }

    static func == (lhs: AttachmentKey, rhs: AttachmentKey) -> Bool { lhs.reference.toOpaque() == rhs.reference.toOpaque() }
    func hash(into hasher: inout Hasher) { hasher.combine(reference.toOpaque()) }
}
