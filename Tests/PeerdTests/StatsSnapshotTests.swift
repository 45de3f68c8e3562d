import Foundation
import Testing
@testable import peerd

@Suite struct StatsSnapshotTests {
    static func sample(_ participant: String, packets: Int) -> ConnectionStats {
        ConnectionStats(
            participant: participant, timestamp: 1.7e12, connectionState: "closed", iceConnectionState: "connected",
            dtlsConnected: true, srtpProfile: "aeadAES256GCM", iceRestarts: 1, mdnsCandidatesResolved: 1, mdnsCandidatesDropped: 0,
            droppedUnknownSource: 2, srtpFailures: 0, droppedBeforeKeys: 3,
            candidatePair: .init(local: .init(address: "127.0.0.1", port: 5000, candidateType: "host", priority: 2_130_706_431),
                                 remote: .init(address: "192.168.1.7", port: 5001, candidateType: "srflx", priority: 1_694_498_815),
                                 packetsSent: packets, packetsReceived: packets + 1, bytesSent: 100_000, bytesReceived: 100_001,
                                 currentRoundTripTime: 0.0015),
            inboundRtp: .init(ssrc: 1234, mid: "0", codec: "opus", packetsReceived: packets, bytesReceived: 100_000, packetsLost: -1,
                              packetsDuplicated: 1, jitter: 0.001, audioLevel: 0.1, audioLevelDBov: 20, speaking: true,
                              concealedFrames: 3, silentFrames: nil, playoutDelay: nil, lastPacketReceivedTimestamp: 1.7e12),
            outboundRtp: .init(ssrc: 55, mid: "0", codec: "opus", packetsSent: packets, bytesSent: 100_000, audioLevelDBov: 30),
            remoteInboundRtp: .init(packetsLost: 0, fractionLost: 0.25, jitter: 0.002, roundTripTime: nil))
    }

    /// The file written with the ended connections encoded once is the same document as encoding
    /// them every time, and valid JSON, with none, one or many of them.
    @Test(arguments: [0, 1, 256])
    func preEncodedEndedConnectionsMakeTheSameDocument(endedCount: Int) throws {
        let ended = (0..<endedCount).map { Self.sample("gone-\($0) \"quoted\" /x", packets: $0) }
        let live = [Self.sample("here-1", packets: 5), Self.sample("here-2", packets: 6)]
        let whole = try StatsSnapshot(peerd: "peerd-1", room: "general", time: "2026-12-05T17:00:00.000Z",
                                      connections: live, closedConnections: ended).json()
        let spliced = try StatsSnapshot.json(peerd: "peerd-1", room: "general", time: "2026-12-05T17:00:00.000Z",
                                             connections: live, closed: ended.map(StatsSnapshot.encodeClosed))
        #expect(spliced == whole)
        let decoded = try JSONDecoder().decode(StatsSnapshot.self, from: spliced)
        #expect(decoded.closedConnections == ended)
        #expect(decoded.connections == live)
        #expect(decoded.peerd == "peerd-1" && decoded.room == "general")
    }
}
