import ICE
import Logging
import NIOCore
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Resolves the `<uuid>.local` host candidates browsers send (RFC 6762 one-shot queries, RFC 8828
/// candidates), for the bot: the sans-IO `MDNSResolver` behind one UDP socket per IPv4 address the
/// bot uses, each sending the queries to 224.0.0.251:5353 out of its own interface
/// (IP_MULTICAST_IF); responders answer one-shot queries by unicast to that socket.
///
/// Confinement: every mutable member is touched only on `loop` (socket callbacks hop onto it), which
/// is why the `@unchecked Sendable` is safe.
final class MDNSLookup: @unchecked Sendable {
    typealias Completion = (IPAddress?) -> Void

    let loop: any EventLoop
    private let logger: Logger
    private let addresses: [IPAddress]
    private var resolver: MDNSResolver
    private var sockets: UDPSocketSet?
    private var opening = false
    private var closed = false
    private var waiters: [String: [Completion]] = [:]
    /// Answers already known (names are single-use UUIDs, but a name can arrive twice: trickled and in SDP).
    private var cache: [String: IPAddress?] = [:]
    private var timer: Scheduled<Void>?
    private(set) var queriesSent = 0

    /// `addresses`: the local IPv4 addresses to query from (the interfaces the peer connections use).
    init(addresses: [IPAddress], timeout: Duration = .seconds(3), loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.addresses = addresses.filter(\.isIPv4)
        var configuration = MDNSResolverConfiguration()
        configuration.timeout = timeout
        configuration.queryIPv6 = false
        configuration.retransmitInterval = min(.seconds(1), timeout / 3)
        resolver = MDNSResolver(configuration: configuration)
    }

    /// Resolves `name` to one IPv4 address, or nil when nobody answered in time (or the name is bad).
    /// Call on `loop`; `completion` runs on `loop`.
    func resolve(_ name: String, completion: @escaping Completion) {
        loop.preconditionInEventLoop()
        let key = name.lowercased()
        if let known = cache[key] { completion(known); return }
        guard !closed, !addresses.isEmpty else { completion(nil); return }
        if waiters[key] != nil { waiters[key]!.append(completion); return }
        do {
            try resolver.resolve(name: name, now: .now())
        } catch {
            logger.debug("not an mDNS name: \(name) (\(error))")
            completion(nil)
            return
        }
        waiters[key] = [completion]
        openSocketsIfNeeded()
        pump()
    }

    /// The same from any thread.
    func resolve(_ name: String) async -> IPAddress? {
        await withCheckedContinuation { (continuation: CheckedContinuation<IPAddress?, Never>) in
            loop.execute { self.resolve(name) { continuation.resume(returning: $0) } }
        }
    }

    func close() async {
        let sockets: UDPSocketSet? = try? await loop.submit {
            self.closed = true
            self.timer?.cancel()
            let pending = self.waiters.values.flatMap { $0 }
            self.waiters = [:]
            for completion in pending { completion(nil) }
            return self.sockets
        }.get()
        await sockets?.close()
    }

    private func openSocketsIfNeeded() {
        guard sockets == nil, !opening else { return }
        opening = true
        let addresses = self.addresses
        Task { [loop, logger] in
            do {
                let set = try await UDPSocketSet.bind(
                    addresses: addresses, configuration: .init(vectorReadMessageCount: 1), eventLoop: loop,
                    onReceive: { [weak self] datagram in self?.receive(datagram.bytes) })
                for (local, channel) in set.sockets {
                    guard case .v4(let value) = local.ip else { continue }
                    // IP_MULTICAST_IF takes an in_addr: the address in network byte order.
                    guard let provider = channel as? any SocketOptionProvider else { continue }
                    try await provider.setIPMulticastIF(in_addr(s_addr: value.bigEndian)).get()
                }
                loop.execute {
                    self.opening = false
                    guard !self.closed else { Task { await set.close() }; return }
                    self.sockets = set
                    self.pump()
                }
            } catch {
                logger.warning("mDNS: could not open query sockets (\(error)); .local candidates are dropped")
                loop.execute {
                    self.opening = false
                    self.closed = true
                    for (_, completions) in self.waiters { for completion in completions { completion(nil) } }
                    self.waiters = [:]
                }
            }
        }
    }

    private func receive(_ bytes: [UInt8]) {
        resolver.handleDatagram(bytes, now: .now())
        pump()
    }

    /// Sends due queries, reports results, re-arms the timer.
    private func pump() {
        if let sockets {
            while let query = resolver.pollTransmit() {
                for local in sockets.localAddresses {
                    try? sockets.send(query, from: local, to: MDNSGroup.ipv4)
                }
                queriesSent += 1
            }
            sockets.flush()
        }
        while let event = resolver.pollEvent() {
            switch event {
            case .resolved(let name, let addresses):
                let address = addresses.first(where: \.isIPv4) ?? addresses.first
                finish(name, address)
            case .timedOut(let name):
                finish(name, nil)
            }
        }
        timer?.cancel()
        timer = nil
        guard !closed, let deadline = resolver.nextTimeout else { return }
        timer = loop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, deadline.nanoseconds)))) { [self] in
            resolver.handleTimeout(now: .now())
            pump()
        }
    }

    private func finish(_ name: String, _ address: IPAddress?) {
        let key = name.lowercased()
        if cache.count > 4096 { cache.removeAll() }
        cache[key] = address
        for completion in waiters.removeValue(forKey: key) ?? [] { completion(address) }
    }
}
