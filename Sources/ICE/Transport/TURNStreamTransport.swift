import NIOCore
import NIOPosix
import NIOSSL

/// TCP and TLS connections to TURN servers (RFC 8656 section 3.1) for one peer connection, on one event
/// loop. Bytes go in and out unframed: framing is the sans-IO core's (`TURNStreamFramer`).
///
/// Thread-safety: every mutable member is touched only on `eventLoop` (the owner calls `open`, `send`
/// and `closeAll` there; channel callbacks hop there); that confinement is why `@unchecked Sendable` is safe.
public final class TURNStreamTransport: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private let trust: TURNTLSTrust
    private let onBytes: (Int, [UInt8]) -> Void
    private let onClosed: (Int) -> Void
    private var channels: [Int: any Channel] = [:]
    /// Writes made before the connection is up.
    private var pending: [Int: [[UInt8]]] = [:]
    private var closed = false

    /// `onBytes(connection, bytes)` and `onClosed(connection)` run on `eventLoop`.
    public init(eventLoop: any EventLoop, trust: TURNTLSTrust,
                onBytes: @escaping (Int, [UInt8]) -> Void, onClosed: @escaping (Int) -> Void) {
        self.eventLoop = eventLoop
        self.trust = trust
        self.onBytes = onBytes
        self.onClosed = onClosed
    }

    /// Connects (TCP, then TLS for `turns:`); writes made meanwhile are sent once connected.
    public func open(_ connection: TURNStreamConnection) {
        eventLoop.preconditionInEventLoop()
        guard !closed, channels[connection.id] == nil, pending[connection.id] == nil else { return }
        pending[connection.id] = []
        let sslContext: NIOSSLContext?
        do { sslContext = connection.tls ? try Self.makeContext(trust) : nil } catch {
            fail(connection.id)
            return
        }
        let id = connection.id
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let handler = try NIOSSLClientHandler(context: sslContext, serverHostname: nil)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(StreamHandler(id: id, owner: self))
                }
            }
        bootstrap.connect(to: connection.server.socketAddress).hop(to: eventLoop).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard !closed, pending[id] != nil else { channel.close(promise: nil); return }
                channels[id] = channel
                for bytes in pending.removeValue(forKey: id) ?? [] { write(channel, bytes) }
                channel.flush()
            case .failure:
                fail(id)
            }
        }
    }

    /// Writes bytes (already framed) on connection `id`, or keeps them until it is up.
    public func send(_ bytes: [UInt8], connection id: Int) {
        eventLoop.preconditionInEventLoop()
        if let channel = channels[id] {
            write(channel, bytes)
            channel.flush()
        } else if pending[id] != nil {
            pending[id]!.append(bytes)
        }
    }

    /// Closes connection `id` (for example on garbage from the server).
    public func close(connection id: Int) {
        eventLoop.preconditionInEventLoop()
        pending[id] = nil
        channels.removeValue(forKey: id)?.close(promise: nil)
    }

    /// Closes every connection after what was written is sent.
    public func closeAll() {
        eventLoop.preconditionInEventLoop()
        closed = true
        pending.removeAll()
        for channel in channels.values { channel.close(promise: nil) }
        channels.removeAll()
    }

    private func write(_ channel: any Channel, _ bytes: [UInt8]) {
        channel.write(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    private func fail(_ id: Int) {
        let known = pending[id] != nil || channels[id] != nil
        pending[id] = nil
        channels.removeValue(forKey: id)?.close(promise: nil)
        if known, !closed { onClosed(id) }
    }

    fileprivate func received(_ bytes: [UInt8], on id: Int) {
        guard !closed else { return }
        onBytes(id, bytes)
    }

    fileprivate func channelEnded(_ id: Int) {
        fail(id)
    }

    private static func makeContext(_ trust: TURNTLSTrust) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch trust {
        case .system:
            break
        case .certificates(let pemFile):
            tls.trustRoots = .file(pemFile)
        case .insecureNoVerification:
            tls.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: tls)
    }
}

/// Hands a connection's bytes to its transport (on the channel's loop, which is the transport's).
private final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let id: Int
    let owner: TURNStreamTransport

    init(id: Int, owner: TURNStreamTransport) {
        self.id = id
        self.owner = owner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let bytes = buffer.readBytes(length: buffer.readableBytes), !bytes.isEmpty { owner.received(bytes, on: id) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        owner.channelEnded(id)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
