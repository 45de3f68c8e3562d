import DTLS
import ICE
import NIOCore
import NIOPosix
import RTP
import SDP
import Synchronization
import Testing
import Wire
@testable import PeerConnection

/// Many connections on one UDP port (`SharedUDPPort`), each talking to its own remote peer.
@Suite struct SharedPortTests {
    private static let loopback = IPAddress("127.0.0.1")!

    private func connect(_ offerer: PeerConnectionDriver, _ answerer: PeerConnectionDriver) async throws {
        let offer = try await offerer.withCore { try $0.createOffer(now: .now()).serialized() }
        let answer = try await answerer.withCore { try $0.acceptOffer(try SessionDescription(parsing: offer), now: .now()).serialized() }
        try await offerer.withCore { try $0.setRemoteAnswer(try SessionDescription(parsing: answer), now: .now()) }
        let offererCandidates = try await offerer.withCore { $0.localCandidates }
        let answererCandidates = try await answerer.withCore { $0.localCandidates }
        try await answerer.withCore { core in for candidate in offererCandidates { core.addRemoteCandidate(candidate) } }
        try await offerer.withCore { core in for candidate in answererCandidates { core.addRemoteCandidate(candidate) } }
    }

    private func send(_ count: Int, from driver: PeerConnectionDriver, ssrc: UInt32, payload: [UInt8], firstSequence: Int) async throws {
        try await driver.withCore { core in
            for index in 0..<count {
                let sequence = firstSequence + index
                core.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(rawValue: UInt16(sequence)),
                                       timestamp: RTPTimestamp(rawValue: UInt32(sequence * 960)), ssrc: SSRC(rawValue: ssrc), payload: payload[...]).serialized())
            }
        }
    }

    private func waitFor(_ condition: () -> Bool) async throws {
        for _ in 0..<600 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// A closed connection is freed, on a shared port as on its own sockets: a long-running bot with
    /// participants coming and going must not keep every past connection (its core, DTLS and SRTP
    /// state) alive. On a shared port the attachment's receive callback holds the driver, and the
    /// driver its attachment: close must break that.
    @Test(arguments: [true, false])
    func aClosedConnectionIsFreed(sharedPort useSharedPort: Bool) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: loop)
        weak var weakDriver: PeerConnectionDriver?
        weak var weakCore: PeerConnectionCore?
        do {
            let configuration = PeerConnectionConfiguration(certificate: try DTLSCertificate.generate())
            let driver = if useSharedPort {
                try await PeerConnectionDriver.start(configuration: configuration, sharedPort: port, eventLoop: loop, onEvent: { _ in })
            } else {
                try await PeerConnectionDriver.start(configuration: configuration, interfaces: .loopbackOnly, eventLoop: loop, onEvent: { _ in })
            }
            _ = try await driver.withCore { try $0.createOffer(now: .now()).serialized() }
            weakDriver = driver
            weakCore = driver.core
            await driver.close()
        }
        // Let the loop finish what the close scheduled.
        for _ in 0..<200 where weakDriver != nil { try await loop.submit {}.get(); try await Task.sleep(for: .milliseconds(5)) }
        #expect(weakDriver == nil, "the closed driver is still referenced")
        #expect(weakCore == nil, "the closed core is still referenced")
        #expect(try await port.statistics().attachments == 0)
        await port.close()
    }

    @Test func threeConnectionsOnOneSharedPortCarryTheirOwnMediaAndSurviveAClose() async throws {
        // Two loops: connections 0 and 2 run on the port's loop, connection 1 on the other (the hop path).
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let portLoop = group.next(), otherLoop = group.next()
        #expect(otherLoop !== portLoop)
        // The media below arrives as one burst of 288 datagrams from three peers: room for all of it in
        // the socket buffer even when the port's loop is late (tests running in parallel on 2 cores).
        // With the kernel's default buffer (~208 KiB, ~270 such datagrams) a run lost 32 of them
        // (UDP `RcvbufErrors` +32): the kernel's drop, not the port's, but not what this test is about.
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0,
                                                configuration: .init(socketBufferBytes: 1 << 20), eventLoop: portLoop)
        let portAddress = try #require(port.localAddresses.first)

        let count = 3
        var shared: [PeerConnectionDriver] = [], remote: [PeerConnectionDriver] = []
        var sharedLogs: [EventLog] = [], remoteLogs: [EventLog] = []
        for index in 0..<count {
            let sharedLog = EventLog(), remoteLog = EventLog()
            shared.append(try await PeerConnectionDriver.start(
                configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: UInt32(100 + index)),
                sharedPort: port, eventLoop: index == 1 ? otherLoop : portLoop, onEvent: { sharedLog.record($0) }))
            remote.append(try await PeerConnectionDriver.start(
                configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: UInt32(200 + index)),
                interfaces: .loopbackOnly, eventLoop: group.next(), onEvent: { remoteLog.record($0) }))
            sharedLogs.append(sharedLog)
            remoteLogs.append(remoteLog)
        }
        for index in 0..<count {
            #expect(try await shared[index].withCore { $0.localCandidates.map(\.port) } == [portAddress.port])
            #expect(shared[index].sockets == nil)
            // Alternate who offers, so the shared side is once ICE-controlling, once controlled.
            if index % 2 == 0 { try await connect(shared[index], remote[index]) } else { try await connect(remote[index], shared[index]) }
        }
        let logs = sharedLogs + remoteLogs
        try await waitFor { logs.allSatisfy { $0.connectedAt.withLock { $0 } != nil } }
        for (index, log) in logs.enumerated() { #expect(log.connectedAt.withLock { $0 } != nil, "connection \(index) did not connect") }

        // Prefetch hints on the shared side, one of them stale (an object freed since): only hints.
        for index in 0..<count {
            try await (index == 1 ? otherLoop : portLoop).submit { [driver = shared[index]] in
                let stale = Stale()
                let address = UnsafeRawPointer(Unmanaged.passUnretained(stale).toOpaque())
                driver.refreshPrefetchHints { $0.add(address: address, bytes: 256) }
            }.get()
        }

        // Media both ways on each connection, with its own SSRCs and payloads: more packets than the
        // port handles per batch (it routes a batch first, then hands it on), each side in order.
        let packets = 3 * SharedUDPPort.handlingBatch
        for index in 0..<count {
            try await send(packets, from: shared[index], ssrc: UInt32(100 + index), payload: [UInt8(index), 0x5A], firstSequence: 0)
            try await send(packets, from: remote[index], ssrc: UInt32(200 + index), payload: [UInt8(index), 0xA5], firstSequence: 0)
        }
        try await waitFor { logs.allSatisfy { $0.rtp.withLock { $0.count } >= packets } }
        for index in 0..<count {
            let atRemote = remoteLogs[index].rtp.withLock { $0 }, atShared = sharedLogs[index].rtp.withLock { $0 }
            #expect(atRemote.count == packets)
            #expect(atRemote.allSatisfy { $0.ssrc.rawValue == UInt32(100 + index) && Array($0.payload) == [UInt8(index), 0x5A] })
            #expect(atShared.count == packets)
            #expect(atShared.allSatisfy { $0.ssrc.rawValue == UInt32(200 + index) && Array($0.payload) == [UInt8(index), 0xA5] })
            #expect(atShared.map(\.sequenceNumber.rawValue) == (0..<packets).map { UInt16($0) }, "connection \(index): out of order")
        }

        // Garbage to the shared port from an unknown source: counted, dropped, nobody hears it.
        let before = try await port.statistics()
        #expect(before.attachments == count)
        let stranger = try await UDPSocketSet.bind(addresses: [Self.loopback], eventLoop: portLoop, onReceive: { _ in })
        let strangerAddress = stranger.localAddresses[0]
        let stunHeaderWithoutUsername: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 7, count: 12)
        let garbage: [[UInt8]] = [
            [0x80, 0x6F, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 100, 1, 2, 3],  // RTP-looking
            [0x17, 0xFE, 0xFD] + [UInt8](repeating: 0, count: 30),        // DTLS-looking
            [UInt8](repeating: 0xFF, count: 200),
            [0x42],
        ]
        try await portLoop.submit {
            for datagram in garbage + [stunHeaderWithoutUsername] { try stranger.send(datagram, from: strangerAddress, to: portAddress) }
            stranger.flush()
        }.get()
        var after = before
        for _ in 0..<400 where after.unroutedDrops - before.unroutedDrops < garbage.count || after.badUsernameDrops == before.badUsernameDrops {
            try await Task.sleep(for: .milliseconds(5))
            after = try await port.statistics()
        }
        #expect(after.unroutedDrops - before.unroutedDrops == garbage.count)
        #expect(after.badUsernameDrops - before.badUsernameDrops == 1)
        await stranger.close()

        // Closing connection 1 detaches it; 0 and 2 keep carrying media.
        await shared[1].close()
        #expect(try await port.statistics().attachments == count - 1)
        for index in [0, 2] {
            try await send(10, from: shared[index], ssrc: UInt32(100 + index), payload: [UInt8(index), 0x5A], firstSequence: packets)
            try await send(10, from: remote[index], ssrc: UInt32(200 + index), payload: [UInt8(index), 0xA5], firstSequence: packets)
        }
        try await waitFor { [0, 2].allSatisfy { sharedLogs[$0].rtp.withLock { $0.count } >= packets + 10 && remoteLogs[$0].rtp.withLock { $0.count } >= packets + 10 } }
        for index in [0, 2] {
            #expect(remoteLogs[index].rtp.withLock { $0.count } == packets + 10)
            #expect(sharedLogs[index].rtp.withLock { $0.count } == packets + 10)
            #expect(sharedLogs[index].rtp.withLock { $0.allSatisfy { $0.ssrc.rawValue == UInt32(200 + index) } })
        }
        // What the closed connection's peer still sends is dropped, not delivered to a neighbour.
        let droppedBefore = try await port.statistics().unroutedDrops
        try await send(5, from: remote[1], ssrc: 201, payload: [1, 0xA5], firstSequence: packets)
        var droppedAfter = droppedBefore
        for _ in 0..<400 where droppedAfter - droppedBefore < 5 {
            try await Task.sleep(for: .milliseconds(5))
            droppedAfter = try await port.statistics().unroutedDrops
        }
        #expect(droppedAfter - droppedBefore >= 5)
        #expect(sharedLogs[1].rtp.withLock { $0.count } == packets)
        for index in [0, 2] { #expect(sharedLogs[index].rtp.withLock { $0.allSatisfy { $0.ssrc.rawValue == UInt32(200 + index) } }) }

        for driver in [shared[0], shared[2]] + remote { await driver.close() }
        #expect(try await port.statistics().attachments == 0)
        await port.close()
        try await group.shutdownGracefully()
    }

    /// A STUN server on loopback that answers each transaction once, reporting `mappedIP` with the
    /// client's source port (the client's own address would equal the host candidate and be dropped).
    /// It holds the first `holdFirst` requests and answers them together in reverse order, so a
    /// response routed to the wrong connection would leave the right one without its candidate.
    private final class TestSTUNServer: Sendable {
        let requests = Mutex<(pending: [(STUNTransactionID, TransportAddress)], answered: Set<STUNTransactionID>, count: Int)>(([], [], 0))
        private let socketBox = Mutex<UDPSocketSet?>(nil)
        let mappedIP: IPAddress
        let holdFirst: Int

        init(mappedIP: IPAddress, holdFirst: Int) {
            self.mappedIP = mappedIP
            self.holdFirst = holdFirst
        }

        var socket: UDPSocketSet? { socketBox.withLock { $0 } }

        func start(loop: any EventLoop) async throws -> TransportAddress {
            let socket = try await UDPSocketSet.bind(addresses: [SharedPortTests.loopback], eventLoop: loop,
                                                     onReceive: { [self] datagram in receive(datagram) })
            socketBox.withLock { $0 = socket }
            return socket.localAddresses[0]
        }

        private func receive(_ datagram: ReceivedDatagram) {
            guard let message = try? STUNMessage(decoding: datagram.bytes), message.type == .bindingRequest,
                  let socket else { return }
            let toAnswer: [(STUNTransactionID, TransportAddress)] = requests.withLock { state in
                guard !state.answered.contains(message.transactionID),
                      !state.pending.contains(where: { $0.0 == message.transactionID }) else { return [] }
                state.count += 1
                state.pending.append((message.transactionID, datagram.source))
                guard state.count >= holdFirst else { return [] }
                let batch = Array(state.pending.reversed())
                state.pending.removeAll()
                for (transaction, _) in batch { state.answered.insert(transaction) }
                return batch
            }
            for (transaction, client) in toAnswer {
                let response = STUNMessage(type: .bindingSuccess, transactionID: transaction,
                                           attributes: [.xorMappedAddress(TransportAddress(ip: mappedIP, port: client.port))])
                    .encoded(fingerprint: true)
                try? socket.send(response, from: datagram.local, to: client)
            }
            socket.flush()
        }
    }

    @Test func twoConnectionsOnOneSharedPortGatherFromTheSameSTUNServerAndConnect() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let portLoop = group.next(), otherLoop = group.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: portLoop)
        let portAddress = try #require(port.localAddresses.first)
        // Another loopback address: reachable (the remote peer may get the candidate and check it), not the host candidate.
        let mappedIP = IPAddress("127.0.0.2")!
        let server = TestSTUNServer(mappedIP: mappedIP, holdFirst: 2)
        let serverAddress = try await server.start(loop: otherLoop)

        var shared: [PeerConnectionDriver] = [], remote: [PeerConnectionDriver] = []
        var logs: [EventLog] = []
        for index in 0..<2 {
            let sharedLog = EventLog(), remoteLog = EventLog()
            shared.append(try await PeerConnectionDriver.start(
                configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), stunServers: [serverAddress],
                                                           ssrc: UInt32(300 + index)),
                sharedPort: port, eventLoop: index == 1 ? otherLoop : portLoop, onEvent: { sharedLog.record($0) }))
            remote.append(try await PeerConnectionDriver.start(
                configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: UInt32(400 + index)),
                interfaces: .loopbackOnly, eventLoop: group.next(), onEvent: { remoteLog.record($0) }))
            logs += [sharedLog, remoteLog]
        }
        // Offering starts each shared connection's gathering: both ask the server from the one port.
        for index in 0..<2 { try await connect(shared[index], remote[index]) }

        var reflexive: [[Candidate]] = [[], []]
        for _ in 0..<600 {
            for index in 0..<2 { reflexive[index] = try await shared[index].withCore { $0.localCandidates.filter { $0.type == .srflx } } }
            if reflexive.allSatisfy({ !$0.isEmpty }) && logs.allSatisfy({ $0.connectedAt.withLock { $0 } != nil }) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        for index in 0..<2 {
            #expect(reflexive[index].count == 1, "connection \(index) has no server-reflexive candidate")
            #expect(reflexive[index].first.map { $0.address == .ip(mappedIP) && $0.port == portAddress.port && $0.relatedPort == portAddress.port } == true)
        }
        // Each transaction was answered once, and every response reached the connection that asked.
        let served = server.requests.withLock { ($0.count, $0.answered.count) }
        #expect(served.0 == 2 && served.1 == 2)
        let statistics = try await port.statistics()
        #expect(statistics.unknownTransactionDrops == 0)
        #expect(statistics.unroutedDrops == 0)
        // The connections themselves still work through the port the STUN server also answers on.
        for (index, log) in logs.enumerated() { #expect(log.connectedAt.withLock { $0 } != nil, "connection \(index) did not connect: \(log.events.withLock { $0 })") }
        for index in 0..<2 {
            try await send(10, from: remote[index], ssrc: UInt32(400 + index), payload: [UInt8(index)], firstSequence: 0)
        }
        try await waitFor { [0, 2].allSatisfy { logs[$0].rtp.withLock { $0.count } >= 10 } }
        for index in 0..<2 {
            #expect(logs[2 * index].rtp.withLock { $0.count == 10 && $0.allSatisfy { $0.ssrc.rawValue == UInt32(400 + index) } })
        }

        for driver in shared + remote { await driver.close() }
        await server.socket?.close()
        await port.close()
        try await group.shutdownGracefully()
    }

    /// Two connections on one shared port allocate from the same coturn (one allocation per client
    /// 5-tuple): each allocates through its own ephemeral socket and connects relay-only.
    @Test func twoConnectionsOnOneSharedPortEachAllocateFromTheSameTURNServer() async throws {
        let turn = try TURNServerProcess()
        defer { turn.stop() }
        try turn.waitUntilReady()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let portLoop = group.next(), otherLoop = group.next()
        let port = try await SharedUDPPort.bind(addresses: [Self.loopback], port: 0, eventLoop: portLoop)
        let portAddress = try #require(port.localAddresses.first)

        var pairs: [DriverPair] = []
        for index in 0..<2 {
            var configuration = PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: UInt32(500 + index))
            configuration.turnServers = [TURNServerConfiguration(address: turn.address, username: "u", credential: "p")]
            configuration.iceTransportPolicy = .relay
            let sharedLog = EventLog(), remoteLog = EventLog()
            let shared = try await PeerConnectionDriver.start(configuration: configuration, sharedPort: port,
                                                              eventLoop: index == 1 ? otherLoop : portLoop, onEvent: { sharedLog.record($0) })
            let remote = try await PeerConnectionDriver.start(
                configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: UInt32(600 + index)),
                interfaces: .loopbackOnly, eventLoop: group.next(), onEvent: { remoteLog.record($0) })
            #expect(shared.sockets == nil)
            pairs.append(DriverPair(a: shared, b: remote, logA: sharedLog, logB: remoteLog))
        }
        for pair in pairs { try await pair.negotiate() }

        var relays: [TransportAddress] = []
        for (index, pair) in pairs.enumerated() {
            let candidates = try await pair.a.withCore { $0.localCandidates }
            let relay = try #require(candidates.first { $0.type == .relay }, "connection \(index): no relay candidate: \(candidates)\n\(turn.log.suffix(2000))")
            #expect(candidates.count == 1)
            // The allocation's mapped address is the connection's own socket, not the shared port.
            #expect(relay.relatedPort != nil && relay.relatedPort != portAddress.port)
            relays.append(try #require(relay.transportAddress))
        }
        #expect(Set(relays).count == 2, "one allocation each: \(relays)")

        for (index, pair) in pairs.enumerated() {
            let connected = await DriverPair.wait { pair.connected() }
            try #require(connected, "connection \(index): \(pair.logA.events.withLock { $0 })\n\(turn.log.suffix(3000))")
        }
        for (index, pair) in pairs.enumerated() {
            let selected = try #require(try await pair.a.withCore { $0.selectedPair })
            #expect(selected.local.type == .relay && selected.viaRelay && selected.localBase == relays[index])
            let received = try await pair.exchangeAudio()
            #expect(received.aToB == 50 && received.bToA == 50, "connection \(index): \(received)")
            let counters = try await pair.a.withCore { $0.counters }
            #expect(counters.turnAllocations == 1 && counters.turnAllocationFailures == 0)
            #expect(counters.relayedDatagramsReceived >= 50)
        }
        // Nothing of TURN went astray on the shared port.
        let statistics = try await port.statistics()
        #expect(statistics.unroutedDrops == 0 && statistics.unknownTransactionDrops == 0)

        for pair in pairs { await pair.close() }
        #expect(try await port.statistics().attachments == 0)
        await port.close()
        try await group.shutdownGracefully()
    }
}

/// An object whose address outlives it (a stale prefetch hint).
private final class Stale {
    var payload = [UInt8](repeating: 1, count: 300)
}
