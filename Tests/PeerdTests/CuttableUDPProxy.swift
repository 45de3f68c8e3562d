import Foundation
import ICE
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A UDP relay on loopback that a test can cut and restore, standing in for a network path:
/// the participant talks to `participantFacing` believing it is peerd, peerd talks to `botFacing`
/// believing it is the participant. While cut, every datagram is dropped (both ways).
///
/// Thread-safety: the mutable state is guarded by `lock`; the sockets are used by the relay
/// thread only (and closed after it stopped), which is why the `@unchecked Sendable` is safe.
final class CuttableUDPProxy: @unchecked Sendable {
    private let participantSocket: Int32
    private let botSocket: Int32
    let participantFacing: TransportAddress
    let botFacing: TransportAddress
    private let lock = NSLock()
    private var botAddress: TransportAddress?
    private var participantAddress: TransportAddress?
    private var isCut = false
    private var running = true
    private var dropped = 0
    private var thread: Thread?

    init() throws {
        (participantSocket, participantFacing) = try Self.bindLoopback()
        (botSocket, botFacing) = try Self.bindLoopback()
        let thread = Thread { [self] in relay() }
        thread.start()
        self.thread = thread
    }

    /// Where datagrams from the participant go (peerd's real candidate).
    func setBotAddress(_ address: TransportAddress) { lock.withLock { if botAddress == nil { botAddress = address } } }

    var cut: Bool {
        get { lock.withLock { isCut } }
        set { lock.withLock { isCut = newValue } }
    }

    var droppedDatagrams: Int { lock.withLock { dropped } }

    func stop() {
        lock.withLock { running = false }
        while thread?.isFinished == false { usleep(10_000) }
        close(participantSocket)
        close(botSocket)
    }

    private static func bindLoopback() throws -> (Int32, TransportAddress) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackMDNSResponder.Failure("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { let failure = LoopbackMDNSResponder.Failure("bind"); close(fd); throw failure }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, TransportAddress(ip: .v4(0x7F00_0001), port: UInt16(bigEndian: actual.sin_port)))
    }

    private func relay() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while lock.withLock({ running }) {
            var descriptors = [pollfd(fd: participantSocket, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: botSocket, events: Int16(POLLIN), revents: 0)]
            guard poll(&descriptors, 2, 50) > 0 else { continue }
            for (index, descriptor) in descriptors.enumerated() where descriptor.revents & Int16(POLLIN) != 0 {
                var source = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let count = buffer.withUnsafeMutableBytes { raw in
                    withUnsafeMutablePointer(to: &source) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(descriptor.fd, raw.baseAddress, raw.count, 0, $0, &length) }
                    }
                }
                guard count > 0 else { continue }
                let from = TransportAddress(ip: .v4(UInt32(bigEndian: source.sin_addr.s_addr)), port: UInt16(bigEndian: source.sin_port))
                let (out, destination): (Int32, TransportAddress?) = lock.withLock {
                    if index == 0 { participantAddress = from }
                    if isCut { dropped += 1; return (-1, nil) }
                    return index == 0 ? (botSocket, botAddress) : (participantSocket, participantAddress)
                }
                guard let destination, case .v4(let ip) = destination.ip else { continue }
                var target = sockaddr_in()
                target.sin_family = sa_family_t(AF_INET)
                target.sin_port = destination.port.bigEndian
                target.sin_addr.s_addr = ip.bigEndian
                _ = buffer.withUnsafeBytes { raw in
                    withUnsafePointer(to: &target) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(out, raw.baseAddress, count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
        }
    }
}
