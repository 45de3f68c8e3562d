import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import ICE

@Suite struct UDPTransportTests {
    @Test func interfacesIncludeLoopbackAndFilterWorks() {
        let all = NetworkInterfaces.addresses()
        #expect(all.contains { $0.address == IPAddress("127.0.0.1") })
        let defaultFilter = InterfaceFilter()
        #expect(!all.filter { defaultFilter.admits($0) }.contains { $0.isLoopback })
        #expect(all.filter { InterfaceFilter.loopbackOnly.admits($0) }.map(\.address) == [IPAddress("127.0.0.1")!])
    }

    @Test func socketAddressConversionRoundTrips() {
        for text in ["127.0.0.1:5000", "[::1]:65535", "[2001:db8::7]:1", "0.0.0.0:0"] {
            let address = TransportAddress(text)!
            #expect(TransportAddress(socketAddress: address.socketAddress) == address)
        }
    }

    @Test func twoSocketSetsExchangeDatagramsOnLoopback() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = Mutex<[ReceivedDatagram]>([])
        let batches = Mutex(0)
        let receiver = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!], eventLoop: loop,
            onReceive: { datagram in received.withLock { $0.append(datagram) } },
            onReadComplete: { batches.withLock { $0 += 1 } })
        let sender = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: loop, onReceive: { _ in })
        let to = receiver.localAddresses[0], from = sender.localAddresses[0]
        #expect(to.port != 0 && to.port != from.port)

        try await loop.submit {
            for index in 0..<100 { try sender.send([0x80, UInt8(index)] + [UInt8](repeating: 7, count: 100), from: from, to: to) }
            sender.flush()
        }.get()
        for _ in 0..<200 where received.withLock({ $0.count }) < 100 { try await Task.sleep(for: .milliseconds(10)) }

        let datagrams = received.withLock { $0 }
        #expect(datagrams.count == 100)
        #expect(datagrams.allSatisfy { $0.source == from }, "\(datagrams.first.map { "\($0.source) \($0.local) \($0.bytes.count)" } ?? "") from \(from) to \(to)")
        #expect(datagrams.allSatisfy { $0.local == to && $0.bytes.count == 102 }, "\(datagrams.first.map { "\($0.local) \($0.bytes.count)" } ?? "")")
        #expect(Set(datagrams.map { $0.bytes[1] }).count == 100)
        #expect(batches.withLock { $0 } >= 1)
        #expect(throws: UDPTransportError.unknownLocalSocket(to)) { try sender.send([1], from: to, to: from) }
        await sender.close()
        await receiver.close()
    }

    /// NIO closes a datagram channel on a send error such as EINVAL: one bogus remote candidate
    /// (a public address paired with a loopback socket, broadcast, port 0) would silence the socket
    /// for every connection on it. Such destinations are dropped and counted; the socket goes on.
    @Test func destinationsTheKernelRefusesAreDroppedAndTheSocketKeepsWorking() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = Mutex(0)
        let receiver = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: loop,
                                                   onReceive: { _ in received.withLock { $0 += 1 } })
        let sender = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: loop, onReceive: { _ in })
        let to = receiver.localAddresses[0], from = sender.localAddresses[0]
        let refused = ["192.0.2.200:9", "255.255.255.255:9", "127.0.0.1:0", "[2001:db8::1]:9"].map { TransportAddress($0)! }
        let drops = try await loop.submit {
            for round in 0..<3 {
                for bogus in refused { try sender.send([0, 1, UInt8(round)], from: from, to: bogus) }
                try sender.send([0x80, UInt8(round)], from: from, to: to)
                sender.flush()
            }
            return sender.unroutableDrops
        }.get()
        #expect(drops == refused.count * 3)
        for _ in 0..<200 where received.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(received.withLock { $0 } == 3, "the socket still sends after the refused destinations")
        #expect(sender.sockets.values.allSatisfy { $0.isActive })
        await sender.close()
        await receiver.close()
    }

    @Test func portRangeIsHonouredAndExhaustionIsAnError() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        // Find a free port by binding once, then ask for exactly that port.
        let probe = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: loop, onReceive: { _ in })
        let port = probe.localAddresses[0].port
        await probe.close()
        let ranged = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!], configuration: .init(portRange: port...port), eventLoop: loop, onReceive: { _ in })
        #expect(ranged.localAddresses == [TransportAddress(ip: IPAddress("127.0.0.1")!, port: port)])
        await #expect(throws: UDPTransportError.self) {
            _ = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], configuration: .init(portRange: port...port),
                                            eventLoop: loop, onReceive: { _ in })
        }
        await ranged.close()
        await #expect(throws: UDPTransportError.noUsableAddress) {
            _ = try await UDPSocketSet.bind(addresses: [], eventLoop: loop, onReceive: { _ in })
        }
    }
}
