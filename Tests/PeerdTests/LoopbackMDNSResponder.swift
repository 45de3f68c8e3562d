import Foundation
import ICE
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// An mDNS responder on loopback for tests, as browsers run one for their `<uuid>.local` host
/// candidates: a UDP socket on 0.0.0.0:5353 (SO_REUSEPORT, so other responders may share the port)
/// joined to 224.0.0.251 on 127.0.0.1, answering with `MDNSResponder` on its own thread.
///
/// Thread-safety: `responder` and `queries` are guarded by `lock`; the socket is used by the
/// thread only (and closed after it stopped), which is why the `@unchecked Sendable` is safe.
final class LoopbackMDNSResponder: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ what: String) { description = "\(what): errno \(errno) (\(String(cString: strerror(errno))))" }
    }

    private let fd: Int32
    private let lock = NSLock()
    private var responder = MDNSResponder()
    private var queriesAnswered = 0
    private var running = true
    private var thread: Thread?

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = MDNSGroup.port.bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { let failure = Failure("bind 0.0.0.0:5353"); close(fd); throw failure }
        var request = ip_mreq()
        request.imr_multiaddr.s_addr = UInt32(0xE000_00FB).bigEndian
        request.imr_interface.s_addr = UInt32(0x7F00_0001).bigEndian
        guard setsockopt(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &request, socklen_t(MemoryLayout<ip_mreq>.size)) == 0 else {
            let failure = Failure("IP_ADD_MEMBERSHIP on 127.0.0.1"); close(fd); throw failure
        }
        self.fd = fd
        let thread = Thread { [self] in serve() }
        thread.start()
        self.thread = thread
    }

    func publish(_ name: String, _ address: IPAddress = .v4(0x7F00_0001)) throws {
        try lock.withLock { try responder.publish(name: name, addresses: [address]) }
    }

    var answered: Int { lock.withLock { queriesAnswered } }

    func stop() {
        lock.withLock { running = false }
        while thread?.isFinished == false { usleep(10_000) }
        close(fd)
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 9000)
        while lock.withLock({ running }) {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) == 1 else { continue }
            var source = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                }
            }
            guard count > 0 else { continue }
            let from = TransportAddress(ip: .v4(UInt32(bigEndian: source.sin_addr.s_addr)), port: UInt16(bigEndian: source.sin_port))
            guard let response = lock.withLock({ responder.respond(to: Array(buffer[..<count]), from: from) }) else { continue }
            guard case .v4(let ip) = response.destination.ip else { continue }
            var destination = sockaddr_in()
            destination.sin_family = sa_family_t(AF_INET)
            destination.sin_port = response.destination.port.bigEndian
            destination.sin_addr.s_addr = ip.bigEndian
            let sent = response.payload.withUnsafeBytes { payload in
                withUnsafePointer(to: &destination) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, payload.baseAddress, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            if sent == response.payload.count { lock.withLock { queriesAnswered += 1 } }
        }
    }
}
