import NIOCore
import NIOPosix
import Synchronization
import Testing
import Wire
@testable import ICE

/// `SharedUDPPort` itself, with a plain attachment in place of a connection.
@Suite struct SharedUDPPortTests {
    private static let loopback = IPAddress("127.0.0.1")!

    /// A connection asks for `onReadComplete` per datagram (its `onReceive` returns whether it has sends
    /// to flush or timers to re-arm). A batch of media for which it asked nothing costs it no call; a
    /// batch with one datagram that asked costs exactly one, whatever else the batch held.
    @Test func readCompleteFollowsOnlyBatchesWhereTheConnectionAskedForIt() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: loop)
        let portAddress = port.localAddresses[0]
        let received = Mutex<[UInt8]>([])  // first byte of each datagram, in arrival order
        let readCompletes = Mutex(0)
        let attachment = try await port.attach(
            localUfrag: "portUfrag", eventLoop: loop,
            onReceive: { datagram in
                let first = datagram.bytes[0]
                received.withLock { $0.append(first) }
                return first < 128  // STUN asks for a read-complete, media (RTP's 0x80) does not
            },
            onReadComplete: { readCompletes.withLock { $0 += 1 } })
        let client = try await UDPSocketSet.bind(addresses: [Self.loopback], eventLoop: loop, onReceive: { _ in })
        let clientAddress = client.localAddresses[0]
        func send(_ datagrams: [[UInt8]]) async throws {
            try await loop.submit {
                for datagram in datagrams { try client.send(datagram, from: clientAddress, to: portAddress) }
                client.flush()
            }.get()
        }
        func waitForReceived(_ count: Int) async throws {
            for _ in 0..<400 where received.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(5)) }
            #expect(received.withLock { $0.count } == count)
            // What the loop has queued after the reads (the read-complete) runs before this returns.
            for _ in 0..<3 { try await loop.submit {}.get() }
        }

        // A Binding request naming the attachment's ufrag reaches it and teaches the port the source.
        let request = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username("portUfrag:client")])
        try await send([request.encoded()])
        try await waitForReceived(1)
        #expect(readCompletes.withLock { $0 } == 1)

        // Media from that source, in one burst: routed by source, no read-complete.
        let media = (0..<40).map { index in [0x80, 0x6F, 0x00, UInt8(index)] + [UInt8](repeating: 0x5A, count: 60) }
        try await send(media)
        try await waitForReceived(41)
        #expect(readCompletes.withLock { $0 } == 1, "media that asked for nothing brought a read-complete")

        // Media with one STUN datagram among it: one read-complete more.
        try await send(Array(media.prefix(5)) + [STUNMessage(type: .bindingRequest, transactionID: .random(),
                                                             attributes: [.username("portUfrag:client")]).encoded()])
        try await waitForReceived(47)
        #expect(readCompletes.withLock { $0 } == 2)
        #expect(received.withLock { Array($0[1..<41]) } == [UInt8](repeating: 0x80, count: 40))

        await attachment.detach()
        await client.close()
        await port.close()
    }

    /// With paced direct reads the port hands each handled datagram's array back to the reader for a
    /// later datagram: a connection that decrypts in place and keeps some packets' bytes (as a jitter
    /// buffer keeps its packets) still sees every datagram as sent, and what it kept stays intact.
    @Test func reusedReceiveBuffersNeverOverwriteBytesAConnectionKept() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let configuration = UDPSocketSet.Configuration(vectorReadMessageCount: 8, readPacing: .milliseconds(2))
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, configuration: configuration, eventLoop: loop)
        let portAddress = port.localAddresses[0]
        let seen = Mutex<[[UInt8]]>([])
        let kept = Mutex<[[UInt8]]>([])
        let attachment = try await port.attach(
            localUfrag: "reuse", eventLoop: loop,
            onReceive: { datagram in
                let copy = datagram.bytes.withUnsafeBufferPointer { Array($0) }  // a copy, holding no reference
                seen.withLock { $0.append(copy) }
                if datagram.bytes[0] == 0x80, datagram.bytes[3] % 3 == 0 {
                    kept.withLock { $0.append(datagram.bytes) }  // a reference kept: never to be reused
                }
                // Written in place, as SRTP decrypts: only this datagram's own storage may change.
                datagram.bytes.withUnsafeMutableBufferPointer { buffer in
                    for index in 4..<buffer.count { buffer[index] = 0xEE }
                }
                return false
            },
            onReadComplete: {})
        let client = try await UDPSocketSet.bind(addresses: [Self.loopback], eventLoop: loop, onReceive: { _ in })
        let clientAddress = client.localAddresses[0]
        let request = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username("reuse:client")])
        try await loop.submit {
            try client.send(request.encoded(), from: clientAddress, to: portAddress)
            client.flush()
        }.get()
        for _ in 0..<400 where seen.withLock({ $0.count }) < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let media = (0..<200).map { index in [0x80, 0x6F, UInt8(index >> 8), UInt8(index & 0xFF)] + [UInt8](repeating: UInt8(index % 251), count: 100 + index % 40) }
        for chunk in stride(from: 0, to: media.count, by: 20) {
            try await loop.submit {
                for datagram in media[chunk..<chunk + 20] { try client.send(datagram, from: clientAddress, to: portAddress) }
                client.flush()
            }.get()
            try await Task.sleep(for: .milliseconds(3))
        }
        for _ in 0..<400 where seen.withLock({ $0.count }) < 201 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(seen.withLock { Array($0.dropFirst()) } == media, "every datagram as sent, in order")
        // Kept before the in-place write (which then copied the shared storage first), and never refilled.
        #expect(kept.withLock { $0 } == media.filter { $0[3] % 3 == 0 })

        await attachment.detach()
        await client.close()
        await port.close()
    }

    /// The demultiplexer's keys do not hold their attachments, so nothing may name a detached one: an
    /// ICE restart's ufrag registered late, or a send that would teach the port a source, after the
    /// detach, routes nothing to it (the datagrams are counted as unrouted).
    @Test func aDetachedConnectionIsNotRegisteredAgainByLateCalls() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: loop)
        let portAddress = port.localAddresses[0]
        let received = Mutex(0)
        let attachment = try await port.attach(localUfrag: "before", eventLoop: loop,
                                               onReceive: { _ in received.withLock { $0 += 1 }; return false },
                                               onReadComplete: {})
        let client = try await UDPSocketSet.bind(addresses: [Self.loopback], eventLoop: loop, onReceive: { _ in })
        let clientAddress = client.localAddresses[0]
        await attachment.detach()
        // Late: a restart's new ufrag, and DTLS sent to the client (which would make its source ours).
        attachment.register(localUfrag: "after")
        try await loop.submit {
            attachment.send([0x16, 0xFE, 0xFD] + [UInt8](repeating: 0, count: 20), from: portAddress, to: clientAddress)
            attachment.flush()
        }.get()
        let before = try await port.statistics()
        let requests = ["before:client", "after:client"].map {
            STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username($0)]).encoded()
        }
        let dtls: [UInt8] = [0x16, 0xFE, 0xFD] + [UInt8](repeating: 1, count: 20)
        try await loop.submit {
            for datagram in requests + [dtls] { try client.send(datagram, from: clientAddress, to: portAddress) }
            client.flush()
        }.get()
        var after = before
        for _ in 0..<400 where after.unroutedDrops - before.unroutedDrops < 3 {
            try await Task.sleep(for: .milliseconds(5))
            after = try await port.statistics()
        }
        #expect(after.unroutedDrops - before.unroutedDrops == 3)
        #expect(received.withLock { $0 } == 0)
        #expect(after.attachments == 0)
        await client.close()
        await port.close()
    }
    /// A connection's timer on the port runs once its deadline has passed: at the first read batch
    /// from then on when datagrams come, else by the port's own timer `timerLeeway` after the deadline.
    @Test func aPortTimerRidesTheFirstReadBatchPastItsDeadlineOrFiresAtTheLeeway() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: loop)
        let portAddress = port.localAddresses[0]
        let leeway = Duration.milliseconds(400)
        try await loop.submit { port.timerLeeway = leeway }.get()
        let fired = Mutex<[MonotonicTime]>([])
        let attachment = try await port.attach(localUfrag: "timerUfrag", eventLoop: loop,
                                               onReceive: { _ in false }, onReadComplete: {},
                                               onTimer: { fired.withLock { $0.append(.now()) } })
        #expect(attachment.runsTimers)
        func waitForFires(_ count: Int) async throws {
            for _ in 0..<400 where fired.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(5)) }
            #expect(fired.withLock { $0.count } == count)
        }

        // No datagrams: the port's own timer, at the deadline plus the leeway.
        let quiet = MonotonicTime.now() + .milliseconds(50)
        try await loop.submit { attachment.setTimer(at: quiet) }.get()
        try await waitForFires(1)
        let firstFire = try #require(fired.withLock { $0.first })
        #expect(firstFire >= quiet + leeway)

        // A datagram after the deadline: its read batch runs the timer, long before the leeway is up.
        // The leeway is now far longer than any scheduling delay of this test (a 100 ms sleep has
        // overrun past 400 ms on two loaded cores, so the port's own timer came first): only the read
        // batch can run the timer between the datagram's send and the leeway.
        let longLeeway = Duration.seconds(30)
        try await loop.submit { port.timerLeeway = longLeeway }.get()
        let client = try await UDPSocketSet.bind(addresses: [Self.loopback], eventLoop: loop, onReceive: { _ in })
        let clientAddress = client.localAddresses[0]
        let busy = MonotonicTime.now() + .milliseconds(50)
        try await loop.submit { attachment.setTimer(at: busy) }.get()
        try await Task.sleep(for: .milliseconds(100))
        #expect(fired.withLock { $0.count } == 1, "the timer ran with no datagram, before its leeway")
        let request = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [.username("timerUfrag:client")])
        let sentAt = try await loop.submit {
            try client.send(request.encoded(), from: clientAddress, to: portAddress)
            client.flush()
            return MonotonicTime.now()
        }.get()
        try await waitForFires(2)
        let secondFire = try #require(fired.withLock { $0.last })
        #expect(secondFire >= busy)
        #expect(secondFire >= sentAt, "the timer ran before the datagram came")
        #expect(secondFire < busy + longLeeway, "the read batch did not run the due timer")

        await attachment.detach()
        await client.close()
        await port.close()
    }

    /// An earlier deadline supersedes a later one (which then never fires); a later one leaves the
    /// earlier standing; a detached connection's timer never runs.
    @Test func aPortTimerFiresOnceAtItsEarliestDeadlineAndNotAfterADetach() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: loop)
        try await loop.submit { port.timerLeeway = .milliseconds(10) }.get()
        let fired = Mutex<[MonotonicTime]>([])
        let attachment = try await port.attach(localUfrag: "timerUfrag", eventLoop: loop,
                                               onReceive: { _ in false }, onReadComplete: {},
                                               onTimer: { fired.withLock { $0.append(.now()) } })
        let start = MonotonicTime.now()
        try await loop.submit {
            attachment.setTimer(at: start + .milliseconds(300))
            attachment.setTimer(at: start + .milliseconds(60))   // supersedes
            attachment.setTimer(at: start + .milliseconds(200))  // later: the 60 ms one stands
        }.get()
        try await Task.sleep(for: .milliseconds(600))
        let fires = fired.withLock { $0 }
        #expect(fires.count == 1)
        if let first = fires.first {
            #expect(first >= start + .milliseconds(60))
            #expect(first < start + .milliseconds(200))
        }

        // Far enough ahead that the detach comes first even on a loaded machine.
        try await loop.submit { attachment.setTimer(at: .now() + .milliseconds(700)) }.get()
        await attachment.detach()
        try await Task.sleep(for: .milliseconds(900))
        #expect(fired.withLock { $0.count } == 1, "a detached connection's timer ran")
        await port.close()
    }
}
