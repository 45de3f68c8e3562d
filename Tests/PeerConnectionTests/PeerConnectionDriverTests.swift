import DTLS
import ICE
import NIOPosix
import RTP
import SDP
import Synchronization
import Testing
import Wire
@testable import PeerConnection

/// Collects a driver's events from the event loop for the test to inspect.
final class EventLog: Sendable {
    let events = Mutex<[String]>([])
    let rtp = Mutex<[RTPPacket]>([])
    let connectedAt = Mutex<MonotonicTime?>(nil)
    let firstRTPAt = Mutex<MonotonicTime?>(nil)

    func record(_ event: PeerConnectionEvent) {
        switch event {
        case .rtp(let packet):
            rtp.withLock { $0.append(packet) }
            firstRTPAt.withLock { if $0 == nil { $0 = .now() } }
        case .connected:
            connectedAt.withLock { $0 = .now() }
            events.withLock { $0.append("connected") }
        default:
            events.withLock { $0.append("\(event)") }
        }
    }
}

@Suite struct PeerConnectionDriverTests {
    @Test func twoDriversConnectOverLoopbackUDPAndCarryAudio() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        let a = try await PeerConnectionDriver.start(
            configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: 1),
            interfaces: .loopbackOnly, eventLoop: loop, onEvent: { logA.record($0) })
        let b = try await PeerConnectionDriver.start(
            configuration: PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(), ssrc: 2),
            interfaces: .loopbackOnly, eventLoop: loop, onEvent: { logB.record($0) })

        let start = MonotonicTime.now()
        let offer = try await a.withCore { try $0.createOffer(now: .now()).serialized() }
        let answer = try await b.withCore { try $0.acceptOffer(try SessionDescription(parsing: offer), now: .now()).serialized() }
        try await a.withCore { try $0.setRemoteAnswer(try SessionDescription(parsing: answer), now: .now()) }
        let candidatesA = try await a.withCore { $0.localCandidates }
        let candidatesB = try await b.withCore { $0.localCandidates }
        try await b.withCore { core in for candidate in candidatesA { core.addRemoteCandidate(candidate) } }
        try await a.withCore { core in for candidate in candidatesB { core.addRemoteCandidate(candidate) } }

        for _ in 0..<300 where logA.connectedAt.withLock({ $0 }) == nil || logB.connectedAt.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(5))
        }
        let connected = try #require(logA.connectedAt.withLock { $0 })
        #expect(logB.connectedAt.withLock { $0 } != nil)

        // 50 packets of 20 ms from A to B.
        try await a.withCore { core in
            for index in 0..<50 {
                core.sendRTP(RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(rawValue: UInt16(index)), timestamp: RTPTimestamp(rawValue: UInt32(index * 960)),
                                       ssrc: 1, payload: [0xF8, 0xFF, 0xFE][...]).serialized())
            }
        }
        for _ in 0..<200 where logB.rtp.withLock({ $0.count }) < 50 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(logB.rtp.withLock { $0.count } == 50)
        #expect(logB.rtp.withLock { $0.allSatisfy { $0.ssrc == 1 && Array($0.payload) == [0xF8, 0xFF, 0xFE] } })
        let firstAudio = try #require(logB.firstRTPAt.withLock { $0 })
        print("two drivers on loopback: connected \(Double((connected - start).nanosecondsClamped) / 1e6) ms, first audio \(Double((firstAudio - start).nanosecondsClamped) / 1e6) ms after the offer")

        await a.close()
        await b.close()
    }
}
