import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A datagram as it arrived: its bytes, who sent it, and which local socket (candidate base) got it.
public struct ReceivedDatagram: Sendable {
    public var bytes: [UInt8]
    public var source: TransportAddress
    public var local: TransportAddress
}

/// Errors of the UDP shell.
public enum UDPTransportError: Error, Equatable, Sendable {
    case noUsableAddress
    case bindFailed(address: String, reason: String)
    case unknownLocalSocket(TransportAddress)
}

/// The UDP sockets of one ICE component (RTP and RTCP muxed): one socket per local address, all on
/// one event loop. It carries STUN, DTLS and SRTP alike and hands every datagram, unparsed, to one
/// receive callback on that loop; RFC 7983 demultiplexing happens in the caller, in one place.
public final class UDPSocketSet: Sendable {
    public struct Configuration: Sendable {
        /// Ports to try, in order (nil: an ephemeral port chosen by the kernel).
        public var portRange: ClosedRange<UInt16>?
        /// recvmmsg batch size (NIO's datagramVectorReadMessageCount); 1 disables vector reads.
        public var vectorReadMessageCount: Int
        /// SO_RCVBUF / SO_SNDBUF, for servers that take many streams on one socket. The kernel grants
        /// at most twice `net.core.rmem_max` by SO_RCVBUF; a paced socket (`readPacing`) first asks
        /// with SO_RCVBUFFORCE, which a process with CAP_NET_ADMIN is granted whatever that limit (at
        /// 150,000 datagrams a second, the 8 MiB an `rmem_max` of 4 MiB allows hold 67 ms: a vCPU or
        /// a loop that stalls longer than that loses datagrams).
        public var socketBufferBytes: Int?
        /// Read pacing, for a socket that carries many streams: after a batch of reads, the socket is
        /// read again only this much later (nil: as soon as it is readable). Datagrams wait in the
        /// kernel's buffer meanwhile, so each wake-up takes full `recvmmsg` batches instead of one
        /// readiness event and one system call for every few datagrams; each datagram waits at most
        /// this long more. Size `socketBufferBytes` for what arrives in that time.
        public var readPacing: TimeAmount?
        /// Reads (`recvmmsg` batches, or single datagrams) per wake-up: NIO's `maxMessagesPerRead`.
        /// A wake-up stops early at the first read that finds the socket empty.
        public var readsPerWakeUp: Int

        public init(portRange: ClosedRange<UInt16>? = nil, vectorReadMessageCount: Int = 32, socketBufferBytes: Int? = nil,
                    readPacing: TimeAmount? = nil, readsPerWakeUp: Int = 4) {
            self.portRange = portRange
            self.vectorReadMessageCount = vectorReadMessageCount
            self.socketBufferBytes = socketBufferBytes
            self.readPacing = readPacing
            self.readsPerWakeUp = max(1, readsPerWakeUp)
        }
    }

    /// Largest datagram received whole (larger ones are truncated by the kernel and then fail to parse).
    public static let maximumDatagramSize = 2048

    public let eventLoop: any EventLoop
    /// Bound sockets by their local transport address (the candidate bases).
    public let sockets: [TransportAddress: any Channel]

    public var localAddresses: [TransportAddress] { sockets.keys.sorted { $0.description < $1.description } }

    /// Loop-confined: which destinations the kernel routes from which local address (see `send`),
    /// and whether writes wait for a flush (a read batch that produced nothing flushes nothing).
    private struct SendState {
        var routes = RouteCheck()
        var needsFlush = false

        /// Whether a datagram from `local` to `remote` may be written; if so, a flush is due.
        mutating func admit(from local: IPAddress, to remote: TransportAddress) -> Bool {
            guard routes.admits(from: local, to: remote) else { return false }
            needsFlush = true
            return true
        }
    }
    private let state: NIOLoopBoundBox<SendState>

    private init(eventLoop: any EventLoop, sockets: [TransportAddress: any Channel]) {
        self.eventLoop = eventLoop
        self.sockets = sockets
        state = .makeBoxSendingValue(SendState(), eventLoop: eventLoop)
    }

    /// Datagrams not sent because the kernel cannot send to their destination from that socket
    /// (port 0, another address family, a non-loopback address from a loopback socket, broadcast,
    /// no route). Call on `eventLoop`.
    public var unroutableDrops: Int { state.value.routes.drops }

    /// Binds one socket per address on `eventLoop`. `onReceive` and `onReadComplete` run on that loop:
    /// the second after each batch of reads, a good moment to flush what the batch produced.
    public static func bind(
        addresses: [IPAddress],
        configuration: Configuration = .init(),
        eventLoop: any EventLoop,
        onReceive: @escaping @Sendable (consuming ReceivedDatagram) -> Void,
        onReadComplete: @escaping @Sendable () -> Void = {}
    ) async throws -> UDPSocketSet {
        try await bind(addresses: addresses, configuration: configuration, eventLoop: eventLoop,
                       handling: taking(onReceive), onReadComplete: onReadComplete)
    }

    /// Receives each datagram in place: the handler may take its bytes or leave them (see
    /// `DirectDatagramReader.readBatch`: an array left there is reused for the next datagram).
    typealias DatagramHandler = @Sendable (inout ReceivedDatagram) -> Void

    /// A handler that takes every datagram's bytes (moved, not copied) for `onReceive`.
    private static func taking(_ onReceive: @escaping @Sendable (consuming ReceivedDatagram) -> Void) -> DatagramHandler {
        { datagram in
            var bytes: [UInt8] = []
            swap(&bytes, &datagram.bytes)
            onReceive(ReceivedDatagram(bytes: consume bytes, source: datagram.source, local: datagram.local))
        }
    }

    /// `bind`, with each datagram handed over in place (the shared port hands buffers back this way).
    static func bind(
        addresses: [IPAddress],
        configuration: Configuration = .init(),
        eventLoop: any EventLoop,
        handling onReceive: @escaping DatagramHandler,
        onReadComplete: @escaping @Sendable () -> Void = {}
    ) async throws -> UDPSocketSet {
        guard !addresses.isEmpty else { throw UDPTransportError.noUsableAddress }
        var sockets: [TransportAddress: any Channel] = [:]
        do {
            for ip in addresses {
                let channel = try await bindOne(ip: ip, configuration: configuration, eventLoop: eventLoop,
                                                onReceive: onReceive, onReadComplete: onReadComplete)
                guard let local = channel.localAddress.flatMap(TransportAddress.init(socketAddress:)) else {
                    try? await channel.close()
                    throw UDPTransportError.bindFailed(address: ip.description, reason: "no local address")
                }
                sockets[local] = channel
            }
        } catch {
            for channel in sockets.values { try? await channel.close() }
            throw error
        }
        return UDPSocketSet(eventLoop: eventLoop, sockets: sockets)
    }

    /// A nonblocking, close-on-exec UDP socket bound to `address` (port 0: one the kernel picks), for
    /// `adopt` when the caller also wants the descriptor (to write to it directly, say).
    public static func boundSocket(_ address: TransportAddress) throws(UDPTransportError) -> CInt {
        try DirectDatagramReader.boundSocket(address)
    }

    /// Adopts sockets that are already bound (for example created inside another network namespace,
    /// or handed over by a supervisor), on `eventLoop`, with the same callbacks as `bind`. The set
    /// owns the descriptors from now on and closes them in `close()`.
    public static func adopt(
        boundSockets descriptors: [CInt],
        configuration: Configuration = .init(),
        eventLoop: any EventLoop,
        onReceive: @escaping @Sendable (consuming ReceivedDatagram) -> Void,
        onReadComplete: @escaping @Sendable () -> Void = {}
    ) async throws -> UDPSocketSet {
        guard !descriptors.isEmpty else { throw UDPTransportError.noUsableAddress }
        var sockets: [TransportAddress: any Channel] = [:]
        do {
            for descriptor in descriptors {
                let bootstrap = makeBootstrap(configuration: configuration, eventLoop: eventLoop, descriptor: descriptor,
                                              onReceive: taking(onReceive), onReadComplete: onReadComplete)
                let channel = try await bootstrap.withBoundSocket(descriptor).get()
                guard let local = channel.localAddress.flatMap(TransportAddress.init(socketAddress:)) else {
                    try? await channel.close()
                    throw UDPTransportError.bindFailed(address: "fd \(descriptor)", reason: "not a bound IP socket")
                }
                sockets[local] = channel
            }
        } catch {
            for channel in sockets.values { try? await channel.close() }
            throw error
        }
        return UDPSocketSet(eventLoop: eventLoop, sockets: sockets)
    }

    /// `descriptor`: the socket the channel will adopt, if the caller made it. With read pacing, the
    /// paced reads then go through a `DirectDatagramReader` on it instead of NIO's read path.
    private static func makeBootstrap(configuration: Configuration, eventLoop: any EventLoop, descriptor: CInt? = nil,
                                      receiveBufferSet: Bool = false,
                                      onReceive: @escaping DatagramHandler,
                                      onReadComplete: @escaping @Sendable () -> Void) -> DatagramBootstrap {
        var bootstrap = DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let direct = configuration.readPacing == nil ? nil : descriptor.map {
                        DirectDatagramReader(descriptor: $0, capacity: configuration.vectorReadMessageCount)
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        UDPReceiveHandler(readPacing: configuration.readPacing, readsPerWakeUp: configuration.readsPerWakeUp,
                                          vector: max(1, configuration.vectorReadMessageCount), direct: direct,
                                          onReceive: onReceive, onReadComplete: onReadComplete))
                }
            }
        // NIO splits one receive buffer across a vector read: give each message room for a full datagram.
        let messages = max(1, configuration.vectorReadMessageCount)
        bootstrap = bootstrap.channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: messages * Self.maximumDatagramSize))
        if messages > 1 {
            bootstrap = bootstrap.channelOption(.datagramVectorReadMessageCount, value: messages)
        }
        bootstrap = bootstrap.channelOption(.maxMessagesPerRead, value: UInt(configuration.readsPerWakeUp))
        if configuration.readPacing != nil {
            bootstrap = bootstrap.channelOption(.autoRead, value: false)  // the handler asks for each read
        }
        if let bytes = configuration.socketBufferBytes {
            // A receive buffer already forced on the descriptor is not asked again: SO_RCVBUF would cap it.
            if !receiveBufferSet { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(bytes)) }
            bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
        }
        return bootstrap
    }

    private static func bindOne(ip: IPAddress, configuration: Configuration, eventLoop: any EventLoop,
                                onReceive: @escaping DatagramHandler,
                                onReadComplete: @escaping @Sendable () -> Void) async throws -> any Channel {
        let ports: [UInt16] = configuration.portRange.map { Array($0) } ?? [0]
        var lastError: (any Error)?
        for port in ports {
            do {
                if configuration.readPacing != nil {
                    // Paced sockets are read directly (see `DirectDatagramReader`): bind here to know the descriptor.
                    let descriptor = try DirectDatagramReader.boundSocket(TransportAddress(ip: ip, port: port))
                    let forced = configuration.socketBufferBytes.map { forceReceiveBuffer(descriptor, bytes: $0) } ?? false
                    let bootstrap = makeBootstrap(configuration: configuration, eventLoop: eventLoop, descriptor: descriptor,
                                                  receiveBufferSet: forced, onReceive: onReceive, onReadComplete: onReadComplete)
                    // NIO owns the descriptor from here, also when this fails (closing it again could
                    // close a descriptor reused meanwhile).
                    return try await bootstrap.withBoundSocket(descriptor).get()
                }
                let bootstrap = makeBootstrap(configuration: configuration, eventLoop: eventLoop, onReceive: onReceive, onReadComplete: onReadComplete)
                return try await bootstrap.bind(to: TransportAddress(ip: ip, port: port).socketAddress).get()
            } catch {
                lastError = error
            }
        }
        throw UDPTransportError.bindFailed(address: ip.description, reason: "\(lastError.map { "\($0)" } ?? "no port")")
    }

    /// SO_RCVBUFFORCE: true when granted (the process has CAP_NET_ADMIN), false to fall back to SO_RCVBUF.
    private static func forceReceiveBuffer(_ descriptor: CInt, bytes: Int) -> Bool {
        var value = Int32(clamping: bytes)
        return setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// The kernel's receive buffer size of each socket (SO_RCVBUF as read back: twice what was granted).
    public func receiveBufferSizes() async throws -> [TransportAddress: Int] {
        var sizes: [TransportAddress: Int] = [:]
        for (address, channel) in sockets {
            sizes[address] = Int(try await channel.getOption(.socketOption(.so_rcvbuf)).get())
        }
        return sizes
    }

    /// Queues a datagram on the socket bound to `local`. Call on `eventLoop`; `flush()` sends the batch.
    ///
    /// A destination the kernel would refuse (EINVAL, EACCES, ENETUNREACH...) is dropped here and
    /// counted instead: NIO closes a datagram channel on such a send error, so one bogus candidate
    /// from a remote peer would otherwise silence the socket for every connection that uses it.
    /// Each local/remote address pair is checked once, by `connect(2)` on a throwaway socket (a
    /// route lookup, nothing is sent).
    public func send(_ bytes: [UInt8], from local: TransportAddress, to remote: TransportAddress) throws(UDPTransportError) {
        guard let channel = sockets[local] else { throw .unknownLocalSocket(local) }
        // One loop-bound access per datagram: the route check also marks the flush as due.
        guard state.value.admit(from: local.ip, to: remote) else { return }
        let buffer = channel.allocator.buffer(bytes: bytes)
        channel.write(AddressedEnvelope(remoteAddress: remote.socketAddress, data: buffer), promise: nil)
    }

    /// Sends what `send` queued since the last flush (nothing to do, and no channel touched, when it
    /// queued nothing: the common case after a read batch of received media). Call on `eventLoop`.
    public func flush() {
        guard state.value.needsFlush else { return }
        state.value.needsFlush = false
        for channel in sockets.values { channel.flush() }
    }

    public func close() async {
        for channel in sockets.values { try? await channel.close() }
    }

    /// How many datagrams the paced sockets read directly (`DirectDatagramReader`), and how many of
    /// those the reader dropped (longer than `maximumDatagramSize`, unknown address family).
    public func directReadCounts() async -> (read: Int, dropped: Int) {
        var read = 0, dropped = 0
        for channel in sockets.values {
            guard let counts = try? await channel.eventLoop.submit({ () -> (Int, Int) in
                let handler = try channel.pipeline.syncOperations.handler(type: UDPReceiveHandler.self)
                return (handler.datagramsReadDirectly, handler.direct?.dropped ?? 0)
            }).get() else { continue }
            read += counts.0
            dropped += counts.1
        }
        return (read, dropped)
    }
}

/// Thin: turns each received envelope into a `ReceivedDatagram` for the owner's callback.
final class UDPReceiveHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    /// The socket's bound address, read once the channel is bound (the initializer runs before bind).
    var local: TransportAddress?
    let onReceive: UDPSocketSet.DatagramHandler
    let onReadComplete: @Sendable () -> Void
    /// With read pacing, the channel does not read on its own (`autoRead` off): the handler asks for
    /// the first read when the socket is bound and for each next one `readPacing` after a batch.
    let readPacing: TimeAmount?
    private var nextRead: Scheduled<Void>?
    /// `recvmmsg` calls per wake-up and datagrams per call.
    let readsPerWakeUp: Int
    let vector: Int
    /// A wake-up that read this many datagrams (reads per wake-up × batch) may have left more
    /// behind: the next read follows at once, so pacing never caps the rate the socket is drained at.
    var fullWakeUp: Int { readsPerWakeUp * vector }
    private var datagramsThisWakeUp = 0
    /// Paced reads after the first go through this reader, when the socket set made the socket
    /// itself; NIO's read path is used whenever nothing was waiting (to wait for readability).
    let direct: DirectDatagramReader?
    /// Datagrams that came through `direct` (the rest came through NIO's read path).
    private(set) var datagramsReadDirectly = 0

    init(readPacing: TimeAmount?, readsPerWakeUp: Int, vector: Int, direct: DirectDatagramReader? = nil,
         onReceive: @escaping UDPSocketSet.DatagramHandler, onReadComplete: @escaping @Sendable () -> Void) {
        self.readPacing = readPacing
        self.readsPerWakeUp = max(1, readsPerWakeUp)
        self.vector = max(1, vector)
        self.direct = direct
        self.onReceive = onReceive
        self.onReadComplete = onReadComplete
    }

    func channelActive(context: ChannelHandlerContext) {
        if local == nil { local = context.channel.localAddress.flatMap(TransportAddress.init(socketAddress:)) }
        if readPacing != nil { context.read() }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        nextRead?.cancel()
        nextRead = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        datagramsThisWakeUp += 1
        if local == nil { local = context.channel.localAddress.flatMap(TransportAddress.init(socketAddress:)) }
        guard let source = TransportAddress(socketAddress: envelope.remoteAddress), let local else { return }
        let bytes = envelope.data.withUnsafeReadableBytes { [UInt8]($0) }
        var datagram = ReceivedDatagram(bytes: consume bytes, source: source, local: local)
        onReceive(&datagram)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        onReadComplete()
        let full = datagramsThisWakeUp >= fullWakeUp
        datagramsThisWakeUp = 0
        guard readPacing != nil else { return }
        scheduleRead(context: context, immediately: full)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and similar surface here; a UDP socket stays usable.
    }

    /// The next paced read: `readPacing` from now, or at once after a full wake-up.
    private func scheduleRead(context: ChannelHandlerContext, immediately: Bool) {
        guard let readPacing, nextRead == nil else { return }
        if immediately && direct == nil {
            context.read()
            return
        }
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        nextRead = context.eventLoop.scheduleTask(in: immediately ? .zero : readPacing) {
            let (handler, context) = loopBound.value
            handler.nextRead = nil
            if let direct = handler.direct {
                handler.readDirectly(direct, context: context)
            } else {
                context.read()
            }
        }
    }

    /// Up to `readsPerWakeUp` batches straight from the socket. Nothing waiting (or an error, which
    /// NIO's read then reports): back to NIO's read, which waits for the socket to become readable.
    private func readDirectly(_ reader: DirectDatagramReader, context: ChannelHandlerContext) {
        guard context.channel.isActive, let local else { return }
        var total = 0
        for _ in 0..<readsPerWakeUp {
            guard let count = reader.readBatch(local: local, onReceive) else { break }
            total += count
            datagramsReadDirectly += count
            if count < reader.capacity { break }
        }
        guard total > 0 else {
            context.read()
            return
        }
        onReadComplete()
        scheduleRead(context: context, immediately: total >= readsPerWakeUp * reader.capacity)
    }
}

extension TransportAddress {
    /// From a NIO socket address (IPv4 or IPv6; nil for Unix sockets).
    public init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let address):
            self.init(ip: .v4(UInt32(bigEndian: address.address.sin_addr.s_addr)), port: UInt16(bigEndian: address.address.sin_port))
        case .v6(let address):
            let bytes = withUnsafeBytes(of: address.address.sin6_addr) { [UInt8]($0) }
            guard let ip = IPAddress(bytes: bytes[...]) else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: address.address.sin6_port))
        case .unixDomainSocket:
            return nil
        }
    }

    /// As a NIO socket address, built directly from the bytes (no text round trip).
    public var socketAddress: SocketAddress {
        switch ip {
        case .v4(let value):
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = port.bigEndian
            raw.sin_addr.s_addr = value.bigEndian
            return SocketAddress(raw, host: "")
        case .v6:
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = port.bigEndian
            let bytes = ip.bytes
            withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: bytes) }
            return SocketAddress(raw, host: "")
        }
    }
}

/// Remembers, per local and remote address, whether the kernel can send there (checked once with
/// `connect(2)` on a throwaway UDP socket bound to the local address: a route lookup only).
struct RouteCheck {
    private struct Key: Hashable {
        var local: IPAddress
        var remote: IPAddress
    }

    private var verdicts: [Key: Bool] = [:]
    private(set) var drops = 0
    /// Bounded: remote candidates are bounded per connection, but many connections share a socket.
    static let capacity = 8192

    mutating func admits(from local: IPAddress, to remote: TransportAddress) -> Bool {
        let key = Key(local: local, remote: remote.ip)
        let verdict: Bool
        if remote.port == 0 {
            verdict = false
        } else if let known = verdicts[key] {
            verdict = known
        } else {
            verdict = Self.kernelRoutes(from: local, to: remote)
            if verdicts.count >= Self.capacity { verdicts.removeAll(keepingCapacity: true) }
            verdicts[key] = verdict
        }
        if !verdict { drops += 1 }
        return verdict
    }

    static func kernelRoutes(from local: IPAddress, to remote: TransportAddress) -> Bool {
        let localAddress = TransportAddress(ip: local, port: 0)
        switch (local, remote.ip) {
        case (.v4, .v4), (.v6, .v6): break
        default: return false
        }
        let family: CInt = if case .v4 = local { AF_INET } else { AF_INET6 }
        let fd = socket(family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return true }  // out of descriptors: cannot tell, let NIO try
        defer { close(fd) }
        let bound = localAddress.socketAddress.withSockAddr { bind(fd, $0, socklen_t($1)) }
        guard bound == 0 else { return true }  // the address may be going away; the real socket decides
        return remote.socketAddress.withSockAddr { connect(fd, $0, socklen_t($1)) } == 0
    }
}
