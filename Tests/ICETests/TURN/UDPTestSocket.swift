import Foundation
import Wire
@testable import ICE
#if canImport(Glibc)
import Glibc
#endif

struct SocketFailure: Error, CustomStringConvertible {
    var description: String
    init(_ what: String) { description = "\(what): errno \(errno) (\(String(cString: strerror(errno))))" }
}

/// A blocking IPv4 UDP socket for tests, with `poll`-based receive timeouts.
/// Used from one test function only (not shared between tasks).
final class UDPTestSocket {
    let fd: Int32
    let local: TransportAddress

    init(ip: String = "127.0.0.1", port: UInt16 = 0, reuse: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure("socket") }
        if reuse {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = Self.makeSockaddr(TransportAddress(ip: IPAddress(ip)!, port: port))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { let error = SocketFailure("bind \(ip):\(port)"); close(fd); throw error }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        local = Self.transportAddress(actual)
    }

    deinit { close(fd) }

    static func makeSockaddr(_ address: TransportAddress) -> sockaddr_in {
        guard case .v4(let value) = address.ip else { fatalError("IPv4 only") }
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = address.port.bigEndian
        raw.sin_addr.s_addr = value.bigEndian
        return raw
    }

    static func transportAddress(_ raw: sockaddr_in) -> TransportAddress {
        TransportAddress(ip: .v4(UInt32(bigEndian: raw.sin_addr.s_addr)), port: UInt16(bigEndian: raw.sin_port))
    }

    /// Joins an IPv4 multicast group on the interface with address `interface`, and sends multicast through it.
    func joinMulticast(group: IPAddress, interface: IPAddress) throws {
        guard case .v4(let groupValue) = group, case .v4(let interfaceValue) = interface else { throw SocketFailure("IPv4 only") }
        var request = ip_mreq()
        request.imr_multiaddr.s_addr = groupValue.bigEndian
        request.imr_interface.s_addr = interfaceValue.bigEndian
        guard setsockopt(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &request, socklen_t(MemoryLayout<ip_mreq>.size)) == 0 else {
            throw SocketFailure("IP_ADD_MEMBERSHIP")
        }
        try setMulticastInterface(interface)
    }

    func setMulticastInterface(_ interface: IPAddress) throws {
        guard case .v4(let interfaceValue) = interface else { throw SocketFailure("IPv4 only") }
        var address = in_addr(s_addr: interfaceValue.bigEndian)
        guard setsockopt(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, &address, socklen_t(MemoryLayout<in_addr>.size)) == 0 else {
            throw SocketFailure("IP_MULTICAST_IF")
        }
        var loop: UInt8 = 1
        setsockopt(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, &loop, 1)
    }

    func send(_ bytes: [UInt8], to destination: TransportAddress) {
        var address = Self.makeSockaddr(destination)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        precondition(sent == bytes.count, "sendto failed: \(SocketFailure("sendto"))")
    }

    /// Waits up to `timeout` for one datagram.
    func receive(timeout: Duration) -> (bytes: [UInt8], from: TransportAddress)? {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, min(timeout.nanosecondsClamped / 1_000_000, 10_000)))
        guard poll(&descriptor, 1, milliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var source = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer[..<count]), Self.transportAddress(source))
    }
}
