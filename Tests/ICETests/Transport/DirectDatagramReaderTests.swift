import Glibc
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import ICE

/// The shared port's direct reads: recvmmsg into the reader's memory, sources parsed from the
/// kernel's sockaddr, oversized datagrams dropped and counted, and the paced socket set using it.
@Suite struct DirectDatagramReaderTests {
    /// Sends `payloads` from an ephemeral socket of `family` to `destination`; returns the sender's port.
    func send(_ payloads: [[UInt8]], to destination: TransportAddress) throws -> (descriptor: CInt, port: UInt16) {
        let sender = try DirectDatagramReader.boundSocket(TransportAddress(ip: destination.ip, port: 0))
        var source = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &source) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sender, $0, &length) } }
        let port = withUnsafeBytes(of: source) { DirectDatagramReader.address(at: $0.baseAddress!)!.port }
        let target = destination.socketAddress
        for payload in payloads {
            let sent = target.withSockAddr { address, size in payload.withUnsafeBytes { sendto(sender, $0.baseAddress, $0.count, 0, address, socklen_t(size)) } }
            #expect(sent == payload.count)
        }
        return (sender, port)
    }

    func boundAddress(_ descriptor: CInt) -> TransportAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return withUnsafeBytes(of: storage) { DirectDatagramReader.address(at: $0.baseAddress!)! }
    }

    @Test(arguments: ["127.0.0.1", "::1"])
    func readsBatchesWithTheirSourcesAndDropsOversizedDatagrams(host: String) throws {
        let receiver = try DirectDatagramReader.boundSocket(TransportAddress(ip: IPAddress(host)!, port: 0))
        defer { close(receiver) }
        let local = boundAddress(receiver)
        #expect(local.ip == IPAddress(host)! && local.port != 0)
        let payloads = (0..<10).map { [0x80, UInt8($0)] + [UInt8](repeating: UInt8($0), count: 100 + $0) }
        let oversized = [UInt8](repeating: 0x80, count: UDPSocketSet.maximumDatagramSize + 1)
        let sender = try send(Array(payloads[..<5]) + [oversized] + Array(payloads[5...]), to: local)
        defer { close(sender.descriptor) }

        let reader = DirectDatagramReader(descriptor: receiver, capacity: 4)
        var received: [ReceivedDatagram] = []
        var counts: [Int] = []
        while let count = reader.readBatch(local: local, { received.append($0) }), count > 0 { counts.append(count) }
        #expect(counts == [4, 4, 3], "11 datagrams in batches of at most 4")
        #expect(received.map(\.bytes) == payloads)
        #expect(received.allSatisfy { $0.source == TransportAddress(ip: IPAddress(host)!, port: sender.port) && $0.local == local })
        #expect(reader.dropped == 1, "the datagram over \(UDPSocketSet.maximumDatagramSize) bytes")
        #expect(reader.readBatch(local: local, { _ in }) == 0, "nothing waiting")
    }

    /// What a consumer leaves in the datagram is the next datagram's storage when nothing else holds
    /// it (no allocation per datagram); an array it kept a reference to, or took, is never written.
    @Test func reusesTheArrayLeftInTheDatagramUnlessItIsStillHeld() throws {
        let receiver = try DirectDatagramReader.boundSocket(TransportAddress(ip: IPAddress("127.0.0.1")!, port: 0))
        defer { close(receiver) }
        let local = boundAddress(receiver)
        // 0: fresh (then grown by the consumer, to mark it); 1: reuses 0's (seen by its capacity);
        // 2 (kept by the consumer): reuses 1's; 3: new (2's is held);
        // 4 (1,500 bytes, over the capacity made): new (maybe where 3's was); 5 (taken by the consumer):
        // reuses 4's; 6: new.
        let sizes = [160, 170, 150, 160, 1500, 120, 140]
        let payloads = sizes.enumerated().map { index, size in [0x80, UInt8(index)] + [UInt8](repeating: UInt8(index), count: size) }
        let sender = try send(payloads, to: local)
        defer { close(sender.descriptor) }

        let reader = DirectDatagramReader(descriptor: receiver, capacity: 16)
        var storage: [UnsafeRawPointer] = []
        var capacities: [Int] = []
        var seen: [[UInt8]] = []
        var kept: [UInt8] = []
        var taken: [UInt8] = []
        #expect(reader.readBatch(local: local) { datagram in
            storage.append(datagram.bytes.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) })
            seen.append(datagram.bytes.withUnsafeBufferPointer { Array($0) })  // a copy, holding no reference
            capacities.append(datagram.bytes.capacity)
            if datagram.bytes[1] == 2 { kept = datagram.bytes }
            if datagram.bytes[1] == 5 { swap(&taken, &datagram.bytes) }
            if datagram.bytes.first == 0x80, datagram.bytes[1] == 0 { datagram.bytes.reserveCapacity(8192) }  // marked
        } == payloads.count)
        #expect(capacities[1] >= 8192, "datagram 1 came in the array datagram 0 left (grown to mark it)")
        #expect(seen == payloads)
        #expect(kept == payloads[2], "the array the consumer kept was not written again")
        #expect(taken == payloads[5])
        #expect(storage[2] == storage[1], "refilled in place")
        #expect(storage[3] != storage[2], "the kept array is not reused")
        #expect(storage[5] == storage[4], "the larger array serves the next datagram")
        #expect(storage[6] != storage[5], "the taken array is not reused")
    }

    @Test func aBadDescriptorIsAnErrorNotACrash() {
        let reader = DirectDatagramReader(descriptor: -1, capacity: 8)
        #expect(reader.readBatch(local: TransportAddress("127.0.0.1:1")!, { _ in }) == nil)
    }

    /// A paced socket set binds its own sockets and reads them directly: a steady stream arrives
    /// whole, in wake-ups that each carry many datagrams, with NIO's read used after idle pauses.
    @Test func pacedSocketsReadDirectlyAndMissNothing() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = Mutex<[UInt8]>([])
        let wakeUps = Mutex(0)
        let configuration = UDPSocketSet.Configuration(vectorReadMessageCount: 16, socketBufferBytes: 1 << 20, readPacing: .milliseconds(20))
        let receiver = try await UDPSocketSet.bind(
            addresses: [IPAddress("127.0.0.1")!], configuration: configuration, eventLoop: loop,
            onReceive: { datagram in received.withLock { $0.append(datagram.bytes[1]) } },
            onReadComplete: { wakeUps.withLock { $0 += 1 } })
        let to = receiver.localAddresses[0]
        let sender = try send([], to: to)
        defer { close(sender.descriptor) }
        // Three bursts of 100 with idle gaps longer than the pacing: after each gap NIO's read waits
        // for the socket, then the paced direct reads take the rest.
        for burst in 0..<3 {
            for index in 0..<100 {
                let payload: [UInt8] = [0x80, UInt8((burst * 100 + index) & 0xFF)] + [UInt8](repeating: 1, count: 60)
                _ = to.socketAddress.withSockAddr { address, size in payload.withUnsafeBytes { sendto(sender.descriptor, $0.baseAddress, $0.count, 0, address, socklen_t(size)) } }
                if index % 10 == 9 { try await Task.sleep(for: .milliseconds(2)) }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        for _ in 0..<300 where received.withLock({ $0.count }) < 300 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(received.withLock { $0.count } == 300)
        #expect(received.withLock { $0 } == (0..<300).map { UInt8($0 & 0xFF) }, "in order, none lost or repeated")
        #expect(wakeUps.withLock { $0 } < 60, "300 datagrams over ~0.4 s in \(wakeUps.withLock { $0 }) wake-ups")
        let direct = await receiver.directReadCounts()
        #expect(direct.read > 150 && direct.read < 300, "after each idle gap NIO reads first, the paced reads take the rest: \(direct.read) of 300 read directly")
        #expect(direct.dropped == 0)
        await receiver.close()
    }
}
