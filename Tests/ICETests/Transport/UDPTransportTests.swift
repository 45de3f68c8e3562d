import Foundation
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

    /// Read pacing: datagrams that arrive while the socket waits are taken in one wake-up, and a
    /// wake-up that read a full batch reads again at once, so a burst far larger than one wake-up
    /// still arrives whole (pacing must never cap the rate a busy port is drained at).
    @Test("a paced socket's receive buffer is forced past net.core.rmem_max when the process may (CAP_NET_ADMIN), capped by it otherwise")
    func pacedSocketReceiveBuffer() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let limitText = try String(contentsOfFile: "/proc/sys/net/core/rmem_max", encoding: .utf8)
        let limit = try #require(Int(limitText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let asked = 2 * limit + 4096  // more than SO_RCVBUF alone can be granted
        let paced = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!],
            configuration: .init(vectorReadMessageCount: 8, socketBufferBytes: asked, readPacing: .milliseconds(2)),
            eventLoop: loop, onReceive: { _ in })
        let unpaced = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!], configuration: .init(vectorReadMessageCount: 8, socketBufferBytes: asked),
            eventLoop: loop, onReceive: { _ in })
        defer { Task { await paced.close(); await unpaced.close() } }
        let pacedSize = try #require(try await paced.receiveBufferSizes().values.first)
        let unpacedSize = try #require(try await unpaced.receiveBufferSizes().values.first)
        // Whether this process may force (CAP_NET_ADMIN: root in this project's CI), asked of a throwaway socket.
        let probe = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var one: Int32 = 4096
        let mayForce = setsockopt(probe, SOL_SOCKET, SO_RCVBUFFORCE, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
        close(probe)
        #expect(pacedSize == (mayForce ? 2 * asked : 2 * limit))
        #expect(unpacedSize == 2 * limit)
    }

    @Test func pacedReadsBatchWhatArrivesMeanwhileAndDrainBurstsWhole() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = Mutex(0)
        let batches = Mutex<[Int]>([])
        let pending = Mutex(0)
        let configuration = UDPSocketSet.Configuration(vectorReadMessageCount: 8, socketBufferBytes: 4 << 20, readPacing: .seconds(1))
        let receiver = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!], configuration: configuration, eventLoop: loop,
            onReceive: { _ in received.withLock { $0 += 1 }; pending.withLock { $0 += 1 } },
            onReadComplete: { let count = pending.withLock { value in defer { value = 0 }; return value }; batches.withLock { $0.append(count) } })
        let sender = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: loop, onReceive: { _ in })
        let to = receiver.localAddresses[0], from = sender.localAddresses[0]
        func send(_ count: Int) async throws {
            try await loop.submit {
                for index in 0..<count { try sender.send([0x80, UInt8(truncatingIfNeeded: index)] + [UInt8](repeating: 7, count: 100), from: from, to: to) }
                sender.flush()
            }.get()
        }
        func waitFor(_ total: Int) async throws {
            for _ in 0..<500 where received.withLock({ $0 }) < total { try await Task.sleep(for: .milliseconds(10)) }
        }

        // One datagram wakes the socket; ten more sent 5 ms apart just after it land within the
        // 1 s pause and come in one or two wake-ups, not ten. (The pause is long so that a loaded
        // machine, with the whole suite running, still sends all ten inside it: with 150 ms, a
        // parallel run once stretched the sends over several pauses.)
        try await send(1)
        try await waitFor(1)
        // The first wake-up's read-complete follows its datagram: count from after it.
        for _ in 0..<500 where batches.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
        let wakeUpsBefore = batches.withLock { $0.count }
        let sendStart = ContinuousClock.now
        for _ in 0..<10 {
            try await send(1)
            try await Task.sleep(for: .milliseconds(5))
        }
        // On a loaded machine the ten sends may still span more than one pause: each pause they
        // span allows one wake-up more (they take about 60 ms when the machine is not loaded).
        let sendSpan = ContinuousClock.now - sendStart
        let allowed = 2 + Int(sendSpan / .seconds(1))
        try await waitFor(11)
        #expect(received.withLock { $0 } == 11)
        let wakeUps = batches.withLock { $0.count } - wakeUpsBefore
        #expect(wakeUps >= 1 && wakeUps <= allowed,
                "the 10 datagrams, sent over \(sendSpan), took \(wakeUps) wake-ups: \(batches.withLock { $0 })")

        // 2,000 datagrams at once: 62 full wake-ups of 4 × 8; at one wake-up per 1 s pause that would
        // take a minute, so arriving within 5 s means full wake-ups were followed at once.
        let start = ContinuousClock.now
        try await send(2_000)
        try await waitFor(2_011)
        #expect(received.withLock { $0 } == 2_011)
        #expect(ContinuousClock.now - start < .seconds(5), "the burst took \(ContinuousClock.now - start)")
        #expect(batches.withLock { $0 }.max() == 32, "a wake-up reads at most 4 recvmmsg batches of 8")
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
