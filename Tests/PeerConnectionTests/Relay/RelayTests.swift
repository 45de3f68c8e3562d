import DTLS
import Foundation
import ICE
import NIOPosix
import RTP
import SDP
import Synchronization
import Testing
import Wire
@testable import PeerConnection

/// Two drivers negotiated back to back (A offers), with their candidates exchanged once `ready` says so.
struct DriverPair {
    let a: PeerConnectionDriver
    let b: PeerConnectionDriver
    let logA: EventLog
    let logB: EventLog

    /// Waits (real time) until `condition` holds; returns whether it did.
    static func wait(_ timeout: Duration = .seconds(10), until condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = MonotonicTime.now() + timeout
        while MonotonicTime.now() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return try await condition()
    }

    func gatheringDone(_ log: EventLog) -> Bool { log.events.withLock { $0.contains("gatheringComplete") } }

    /// Offer/answer, then, once both finished gathering (STUN gathering starts with the description),
    /// every local candidate to the other side.
    func negotiate() async throws {
        let offer = try await a.withCore { try $0.createOffer(now: .now()).serialized() }
        let answer = try await b.withCore { try $0.acceptOffer(try SessionDescription(parsing: offer), now: .now()).serialized() }
        try await a.withCore { try $0.setRemoteAnswer(try SessionDescription(parsing: answer), now: .now()) }
        #expect(await Self.wait { gatheringDone(logA) && gatheringDone(logB) }, "gathering did not complete")
        let candidatesA = try await a.withCore { $0.localCandidates }
        let candidatesB = try await b.withCore { $0.localCandidates }
        try await b.withCore { core in for candidate in candidatesA { core.addRemoteCandidate(candidate) } }
        try await a.withCore { core in for candidate in candidatesB { core.addRemoteCandidate(candidate) } }
    }

    func connected() -> Bool {
        logA.connectedAt.withLock { $0 } != nil && logB.connectedAt.withLock { $0 } != nil
    }

    /// Sends `count` Opus-like packets each way and waits until both sides received them all.
    func exchangeAudio(count: Int = 50, timeout: Duration = .seconds(10)) async throws -> (aToB: Int, bToA: Int) {
        let ssrcA = a.core.configuration.ssrc, ssrcB = b.core.configuration.ssrc
        for (driver, ssrc) in [(a, ssrcA), (b, ssrcB)] {
            try await driver.withCore { core in
                for index in 0..<count {
                    core.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(rawValue: UInt16(index)),
                                           timestamp: RTPTimestamp(rawValue: UInt32(index * 960)), ssrc: SSRC(rawValue: ssrc),
                                           payload: [0xF8, 0xFF, 0xFE, UInt8(index)][...]).serialized())
                }
            }
        }
        _ = await Self.wait(timeout) { logB.rtp.withLock { $0.count } >= count && logA.rtp.withLock { $0.count } >= count }
        let aToB = logB.rtp.withLock { packets in packets.filter { $0.ssrc.rawValue == ssrcA && $0.payload.prefix(3) == [0xF8, 0xFF, 0xFE] }.count }
        let bToA = logA.rtp.withLock { packets in packets.filter { $0.ssrc.rawValue == ssrcB && $0.payload.prefix(3) == [0xF8, 0xFF, 0xFE] }.count }
        return (aToB, bToA)
    }

    func close() async {
        await a.close()
        await b.close()
    }
}

func relayTestConfiguration(ssrc: UInt32) throws -> PeerConnectionConfiguration {
    PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: ssrc)
}

/// Relayed candidates from a real coturn on loopback, wired through `PeerConnectionCore`.
@Suite(.serialized) struct RelayTests {
    @Test func connectionOnlyThroughTheRelayCarriesSRTPBothWays() async throws {
        let turn = try TURNServerProcess()
        defer { turn.stop() }
        try turn.waitUntilReady()

        var configurationA = try relayTestConfiguration(ssrc: 0xA)
        configurationA.turnServers = [TURNServerConfiguration(address: turn.address, username: "u", credential: "p")]
        configurationA.iceTransportPolicy = .relay   // host candidates neither signalled nor paired on A
        let configurationB = try relayTestConfiguration(ssrc: 0xB)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        let a = try await PeerConnectionDriver.start(configuration: configurationA, interfaces: .loopbackOnly, eventLoop: loop) { logA.record($0) }
        let b = try await PeerConnectionDriver.start(configuration: configurationB, interfaces: .loopbackOnly, eventLoop: loop) { logB.record($0) }
        let pair = DriverPair(a: a, b: b, logA: logA, logB: logB)

        let started = MonotonicTime.now()
        try await pair.negotiate()
        let candidatesA = try await a.withCore { $0.localCandidates }
        #expect(candidatesA.count == 1, "\(candidatesA)")
        let relay = try #require(candidatesA.first { $0.type == .relay }, "no relay candidate: \(candidatesA)\n\(turn.log.suffix(2000))")
        #expect(relay.transportAddress?.ip == IPAddress("127.0.0.1")!)
        #expect(relay.transportAddress?.port != turn.address.port)
        #expect(relay.relatedAddress != nil && relay.relatedPort != nil)

        let connected = await DriverPair.wait { pair.connected() }
        try #require(connected, "A: \(logA.events.withLock { $0 })\nB: \(logB.events.withLock { $0 })\n\(turn.log.suffix(3000))")
        print("relay-only connection on loopback: connected \(Double((MonotonicTime.now() - started).nanosecondsClamped) / 1e6) ms after negotiation started")

        let pairA = try #require(try await a.withCore { $0.selectedPair })
        let pairB = try #require(try await b.withCore { $0.selectedPair })
        #expect(pairA.local.type == .relay && pairA.viaRelay)
        #expect(pairA.localBase == relay.transportAddress)
        // B talks to the relayed address: every datagram between them crosses coturn.
        #expect(pairB.remoteAddress == relay.transportAddress)

        let received = try await pair.exchangeAudio()
        #expect(received.aToB == 50)
        #expect(received.bToA == 50)

        let countersA = try await a.withCore { $0.counters }
        #expect(countersA.turnAllocations == 1)
        #expect(countersA.turnAllocationFailures == 0)
        #expect(countersA.relayedDatagramsSent >= 50)
        #expect(countersA.relayedDatagramsReceived >= 50)
        // Once the channel is bound, the server forwards to A as ChannelData, unwrapped in the demux.
        #expect(countersA.relayedChannelDataReceived > 0)
        #expect(countersA.droppedUnknownClass == 0)
        await pair.close()
    }

    @Test func allocationsAreRefreshedWhileMediaFlows() async throws {
        // coturn grants at most 4 s to the Allocate (it answers Refresh with its default 600 s), so
        // without a refresh at half the lifetime the relay would be gone after 4 s.
        let turn = try TURNServerProcess(extraArguments: ["--max-allocate-lifetime=4"])
        defer { turn.stop() }
        try turn.waitUntilReady()

        var configurationA = try relayTestConfiguration(ssrc: 0xA)
        configurationA.turnServers = [TURNServerConfiguration(address: turn.address, username: "u", credential: "p")]
        configurationA.iceTransportPolicy = .relay
        configurationA.turn.requestedLifetime = .seconds(4)  // refreshed at half the lifetime, after 2 s
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        let a = try await PeerConnectionDriver.start(configuration: configurationA, interfaces: .loopbackOnly, eventLoop: loop) { logA.record($0) }
        let b = try await PeerConnectionDriver.start(configuration: try relayTestConfiguration(ssrc: 0xB), interfaces: .loopbackOnly,
                                                     eventLoop: loop) { logB.record($0) }
        let pair = DriverPair(a: a, b: b, logA: logA, logB: logB)
        try await pair.negotiate()
        try #require(await DriverPair.wait { pair.connected() }, "\(logA.events.withLock { $0 })\n\(turn.log.suffix(2000))")
        let connectedAt = MonotonicTime.now()
        let refreshed = await DriverPair.wait(.seconds(6)) { (try? await a.withCore { $0.counters.turnRefreshes }) ?? 0 >= 1 }
        let counters = try await a.withCore { $0.counters }
        let failures = try await a.withCore { $0.turnFailures.map { "\($0)" } }
        let relays = try await a.withCore { $0.relayDescriptions }
        #expect(refreshed, "refreshes \(counters.turnRefreshes), failures \(failures), \(relays)")
        #expect(counters.turnAllocationsLost == 0)
        #expect(relays.count == 1 && relays[0].contains("allocated"), "\(relays)")
        // Past the first lifetime (4 s), the relay still carries media.
        try await Task.sleep(for: max(.zero, .seconds(5) - (MonotonicTime.now() - connectedAt)))
        let received = try await pair.exchangeAudio(count: 20)
        #expect(received.aToB == 20 && received.bToA == 20)
        await pair.close()
    }

    @Test func turnServersThatAnswerErrorsOrNothingGiveNoRelayCandidateAndTheConnectionStillWorks() async throws {
        let turn = try TURNServerProcess()
        defer { turn.stop() }
        try turn.waitUntilReady()
        // A UDP port on loopback that nobody answers on.
        let silent = TransportAddress(ip: IPAddress("127.0.0.1")!, port: turn.address.port &+ 1)

        var configurationA = try relayTestConfiguration(ssrc: 0xA)
        configurationA.turnServers = [
            TURNServerConfiguration(address: turn.address, username: "u", credential: "wrong"),
            TURNServerConfiguration(address: silent, username: "u", credential: "p"),
        ]
        configurationA.turnAllocationTimeout = .seconds(1)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        let started = MonotonicTime.now()
        let a = try await PeerConnectionDriver.start(configuration: configurationA, interfaces: .loopbackOnly, eventLoop: loop) { logA.record($0) }
        let b = try await PeerConnectionDriver.start(configuration: try relayTestConfiguration(ssrc: 0xB), interfaces: .loopbackOnly,
                                                     eventLoop: loop) { logB.record($0) }
        let pair = DriverPair(a: a, b: b, logA: logA, logB: logB)
        try await pair.negotiate()
        let gatheringTook = MonotonicTime.now() - started
        #expect(gatheringTook < .seconds(3), "gathering waited \(gatheringTook)")

        let candidatesA = try await a.withCore { $0.localCandidates }
        #expect(!candidatesA.contains { $0.type == .relay })
        #expect(candidatesA.contains { $0.type == .host })
        let counters = try await a.withCore { $0.counters }
        #expect(counters.turnAllocations == 0)
        #expect(counters.turnAllocationFailures == 2)
        let failures = try await a.withCore { $0.turnFailures.map { "\($0.server) \($0.error)" } }
        #expect(failures.contains { $0.hasPrefix("\(turn.address) unauthorized") }, "\(failures)")
        #expect(failures.contains { $0.hasPrefix("\(silent) timeout") }, "\(failures)")

        try #require(await DriverPair.wait { pair.connected() }, "\(logA.events.withLock { $0 })")
        #expect(!logA.events.withLock { $0.contains { $0.hasPrefix("failed") } })
        let pairA = try await a.withCore { $0.selectedPair }
        #expect(pairA?.local.type == .host)
        let received = try await pair.exchangeAudio(count: 10)
        #expect(received.aToB == 10 && received.bToA == 10)
        await pair.close()
    }
}
