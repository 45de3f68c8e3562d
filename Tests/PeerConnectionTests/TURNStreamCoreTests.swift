import DTLS
import ICE
import Testing
import Wire
@testable import PeerConnection

/// The core's side of TURN over TCP/TLS, without sockets: framed transmits out, bytes in, garbage fails the allocation.
@Suite struct TURNStreamCoreTests {
    let server = TransportAddress(ip: IPAddress("192.0.2.10")!, port: 3478)

    func core() throws -> PeerConnectionCore {
        var configuration = PeerConnectionConfiguration(certificate: try DTLSCertificate.generate())
        configuration.turnServers = [TURNServerConfiguration(address: server, username: "u", credential: "p", transport: .tcp)]
        configuration.iceTransportPolicy = .relay
        let core = PeerConnectionCore(configuration: configuration)
        // Two host sockets of the family: still one connection to the stream server.
        core.addHostCandidates([TransportAddress(ip: IPAddress("127.0.0.1")!, port: 40_000),
                                TransportAddress(ip: IPAddress("127.0.0.2")!, port: 40_001)])
        core.endOfLocalCandidates()
        return core
    }

    @Test func allocateGoesOutFramedOnTheStreamAndNotOverUDP() throws {
        let core = try core()
        #expect(core.turnStreamConnections == [TURNStreamConnection(id: 0, server: server, tls: false)])
        let now = MonotonicTime.zero + .seconds(1)
        core.handleTimeout(now: now)
        let transmit = try #require(core.pollTURNStreamTransmit())
        #expect(transmit.connection == 0)
        #expect(core.pollTransmit() == nil)
        var framer = TURNStreamFramer()
        framer.append(transmit.bytes)
        guard case .stun(let bytes) = try framer.nextMessage() else { Issue.record("not STUN"); return }
        let request = try STUNMessage(decoding: bytes)
        #expect(request.type == STUNMessageType(method: .allocate, messageClass: .request))
        // Reliable transport: no retransmission after several RTOs (and before the 5 s allocation timeout).
        core.handleTimeout(now: now + .seconds(3))  // over UDP a retransmission would be due
        #expect(core.pollTURNStreamTransmit() == nil)
    }

    @Test func garbageFromTheServerFailsTheAllocation() throws {
        let core = try core()
        let now = MonotonicTime.zero + .seconds(1)
        core.handleTimeout(now: now)
        while core.pollTURNStreamTransmit() != nil {}
        core.handleTURNStreamBytes([0xC0, 0, 0, 4, 1, 2, 3, 4], connection: 0, now: now)
        #expect(core.turnStreamConnectionFailed(0))
        #expect(core.counters.turnAllocationFailures == 1)
        #expect(core.turnFailures.map(\.error) == [.streamClosed])
        // A closed stream reported afterwards changes nothing.
        core.turnStreamClosed(connection: 0, now: now)
        #expect(core.counters.turnAllocationFailures == 1)
        #expect(core.localCandidates.isEmpty)
    }
}
