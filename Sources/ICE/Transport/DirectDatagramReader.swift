import CShims

#if canImport(Glibc)
import Glibc
#endif

/// Reads batches of datagrams from a UDP socket with one `recvmmsg(2)` into memory it owns, and
/// hands each on as a `ReceivedDatagram`. The shared port's paced reads use it: NIO's own read path
/// builds a `SocketAddress` for every datagram (with the address as text, through `inet_ntop`), an
/// envelope and a pipeline event, about 8 % of the receive path at 1,000 streams (`perf`).
///
/// The socket stays NIO's (its channel writes, closes and, when nothing is waiting, waits for it to
/// become readable); the reader only reads, on the channel's event loop, while the channel is active.
/// Not thread-safe: owned by one `UDPReceiveHandler`.
final class DirectDatagramReader {
    let descriptor: CInt
    /// Datagrams per `recvmmsg` (at most 64).
    let capacity: Int
    private let bufferSize = UDPSocketSet.maximumDatagramSize
    private static let sourceSize = MemoryLayout<sockaddr_storage>.size
    private let buffers: UnsafeMutablePointer<UInt8>
    private let lengths: UnsafeMutablePointer<UInt32>
    private let sources: UnsafeMutablePointer<UInt8>
    /// Datagrams longer than `UDPSocketSet.maximumDatagramSize` (dropped) and from an address family
    /// other than IPv4 or IPv6.
    private(set) var dropped = 0
    /// The array the next datagram is copied into: what the last `deliver` left in its datagram (a
    /// consumer that is done with a buffer hands one back there, see `readBatch`), else a new one.
    private var spare: [UInt8] = []
    /// Arrays made here have room for a datagram of this size (the media of a connection, STUN and
    /// most DTLS records), so a recycled array is refilled without growing.
    static let recycledCapacity = 1280

    init(descriptor: CInt, capacity: Int) {
        self.descriptor = descriptor
        self.capacity = min(64, max(1, capacity))
        buffers = .allocate(capacity: self.capacity * bufferSize)
        lengths = .allocate(capacity: self.capacity)
        sources = .allocate(capacity: self.capacity * Self.sourceSize)
    }

    deinit {
        buffers.deallocate()
        lengths.deallocate()
        sources.deallocate()
    }

    /// Reads what is waiting, up to `capacity` datagrams, and calls `deliver` for each. Returns how
    /// many were read (0: none was waiting), or nil on a socket error.
    ///
    /// `deliver` may take the datagram's bytes, and may leave an array it is done with in their place
    /// (the shared port hands back the buffer of a datagram handled earlier): the next datagram is
    /// copied into that array when nothing else holds it, so a steady stream allocates nothing per
    /// datagram. An array still referenced elsewhere is left alone (copy on write gives the next
    /// datagram new storage).
    func readBatch(local: TransportAddress, _ deliver: (inout ReceivedDatagram) -> Void) -> Int? {
        let count = peerd_recv_batch(descriptor, buffers, bufferSize, UInt32(capacity), lengths, sources, Self.sourceSize)
        guard count >= 0 else { return nil }
        for index in 0..<Int(count) {
            let length = Int(lengths[index])
            guard length > 0, let source = Self.address(at: UnsafeRawPointer(sources + index * Self.sourceSize)) else {
                dropped += 1
                continue
            }
            var bytes: [UInt8] = []
            swap(&bytes, &spare)
            if bytes.capacity >= length {
                bytes.removeAll(keepingCapacity: true)  // in place when unique, else new storage of that capacity
            } else {
                bytes = []
                bytes.reserveCapacity(max(length, Self.recycledCapacity))
            }
            bytes.append(contentsOf: UnsafeBufferPointer(start: buffers + index * bufferSize, count: length))
            var datagram = ReceivedDatagram(bytes: consume bytes, source: source, local: local)
            deliver(&datagram)
            swap(&spare, &datagram.bytes)
        }
        return Int(count)
    }

    /// A `sockaddr_in` or `sockaddr_in6` as the kernel filled it in.
    static func address(at raw: UnsafeRawPointer) -> TransportAddress? {
        let family = raw.loadUnaligned(as: sa_family_t.self)
        switch Int32(family) {
        case AF_INET:
            let address = raw.loadUnaligned(as: sockaddr_in.self)
            return TransportAddress(ip: .v4(UInt32(bigEndian: address.sin_addr.s_addr)), port: UInt16(bigEndian: address.sin_port))
        case AF_INET6:
            let address = raw.loadUnaligned(as: sockaddr_in6.self)
            let bytes = withUnsafeBytes(of: address.sin6_addr) { [UInt8]($0) }
            guard let ip = IPAddress(bytes: bytes[...]) else { return nil }
            return TransportAddress(ip: ip, port: UInt16(bigEndian: address.sin6_port))
        default:
            return nil
        }
    }

    /// A non-blocking UDP socket bound to `address` (the caller hands it to NIO, which owns it then).
    static func boundSocket(_ address: TransportAddress) throws(UDPTransportError) -> CInt {
        let family = address.ip.isIPv4 ? AF_INET : AF_INET6
        let descriptor = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .bindFailed(address: "\(address)", reason: "socket: errno \(errno)") }
        if !address.ip.isIPv4 {
            var only: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &only, socklen_t(MemoryLayout<Int32>.size))
        }
        let result = address.socketAddress.withSockAddr { raw, length in Glibc.bind(descriptor, raw, socklen_t(length)) }
        guard result == 0 else {
            let error = errno
            close(descriptor)
            throw .bindFailed(address: "\(address)", reason: "bind: \(String(cString: strerror(error)))")
        }
        return descriptor
    }
}
