import Foundation
import ICE
import Metrics
import PeerConnection
import RTP
import Wire

/// Statistics of one peer connection in the shape of WebRTC's `getStats()` (W3C webrtc-stats):
/// the selected candidate pair, inbound and outbound RTP, and what the remote side reported
/// (`remote-inbound-rtp`). Field names follow the spec; times are in seconds like the spec's RTT
/// and jitter. Absent figures are omitted (JSON null), not zero.
struct ConnectionStats: Codable, Sendable, Equatable {
    struct CandidateStats: Codable, Sendable, Equatable {
        var address: String
        var port: Int
        var candidateType: String
        var `protocol` = "udp"
        var priority: UInt32
    }

    struct CandidatePairStats: Codable, Sendable, Equatable {
        var state = "succeeded"
        var nominated = true
        var local: CandidateStats
        var remote: CandidateStats
        /// Datagrams and bytes on the connection's sockets, both ways (STUN, DTLS, SRTP).
        var packetsSent: Int
        var packetsReceived: Int
        var bytesSent: Int
        var bytesReceived: Int
        /// From RTCP (LSR/DLSR), seconds.
        var currentRoundTripTime: Double?
    }

    struct InboundRTPStats: Codable, Sendable, Equatable {
        var kind = "audio"
        var ssrc: UInt32?
        var mid: String?
        var codec: String?
        var packetsReceived: Int
        var bytesReceived: Int
        /// RFC 3550 cumulative loss (expected - received), as getStats reports it.
        var packetsLost: Int64
        var packetsDuplicated: Int
        /// Interarrival jitter, seconds.
        var jitter: Double
        /// Linear 0...1 from the RFC 6464 level of the last packet (0 when none).
        var audioLevel: Double
        /// dBov of the last packet (127 = silence or unknown).
        var audioLevelDBov: Int
        var speaking: Bool
        /// Concealment on the recording timeline (WAV recordings decode and conceal; Ogg pass-through does not).
        var concealedFrames: Int?
        var silentFrames: Int?
        /// peerd has no playout (it records): absent.
        var playoutDelay: Double?
        var lastPacketReceivedTimestamp: Double?
    }

    struct OutboundRTPStats: Codable, Sendable, Equatable {
        var kind = "audio"
        var ssrc: UInt32
        var mid: String?
        var codec: String?
        var packetsSent: Int
        var bytesSent: Int
        var audioLevelDBov: Int?
    }

    struct RemoteInboundRTPStats: Codable, Sendable, Equatable {
        var packetsLost: Int
        /// 0...1, from the last report block.
        var fractionLost: Double
        /// Seconds.
        var jitter: Double
        var roundTripTime: Double?
    }

    var participant: String
    /// Milliseconds since 1970, like getStats' timestamp.
    var timestamp: Double
    var connectionState: String
    var iceConnectionState: String
    var dtlsConnected: Bool
    var srtpProfile: String?
    var iceRestarts: Int
    var mdnsCandidatesResolved: Int
    var mdnsCandidatesDropped: Int
    /// Datagrams dropped by the connection: from addresses ICE did not validate, failing SRTP
    /// authentication, or arriving before the keys.
    var droppedUnknownSource: Int
    var srtpFailures: Int
    var droppedBeforeKeys: Int
    var candidatePair: CandidatePairStats?
    var inboundRtp: InboundRTPStats?
    var outboundRtp: OutboundRTPStats?
    var remoteInboundRtp: RemoteInboundRTPStats?
}

/// What `DIR/stats.json` holds: one snapshot of every current connection, and the final one of
/// each connection that ended. Compact JSON with sorted keys (`jq . stats.json` pretty-prints it).
struct StatsSnapshot: Codable, Sendable {
    var peerd: String
    var room: String
    var time: String
    var connections: [ConnectionStats]
    /// The last statistics of connections that ended while peerd was in the room.
    var closedConnections: [ConnectionStats] = []

    func json() throws -> Data {
        try Self.encoder.encode(self)
    }

    /// The same document, with the ended connections given already encoded (`encodeClosed`): they do not
    /// change, and a long-running recorder rewrites the file every few seconds with up to 256 of them.
    static func json(peerd: String, room: String, time: String, connections: [ConnectionStats], closed: [Data]) throws -> Data {
        let live = try encoder.encode(StatsSnapshot(peerd: peerd, room: room, time: time, connections: connections))
        // `live` is {"closedConnections":[],"connections":...}: sorted keys put the ended ones first.
        let emptyClosed = Data(#"{"closedConnections":[],"#.utf8)
        guard live.starts(with: emptyClosed) else { throw EncodingError.invalidValue(live, .init(codingPath: [], debugDescription: "unexpected layout")) }
        var out = Data(#"{"closedConnections":["#.utf8)
        out.reserveCapacity(live.count + closed.reduce(0) { $0 + $1.count + 1 })
        for (index, fragment) in closed.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(fragment)
        }
        out.append(contentsOf: Data("],".utf8))
        out.append(live[(live.startIndex + emptyClosed.count)...])
        return out
    }

    /// One ended connection's final statistics, encoded once for every later `json(...)`.
    static func encodeClosed(_ stats: ConnectionStats) throws -> Data {
        try encoder.encode(stats)
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension ConnectionStats.CandidateStats {
    init(_ candidate: Candidate) {
        self.init(address: candidate.address.description, port: Int(candidate.port), candidateType: candidate.type.rawValue,
                  protocol: "\(candidate.transport)", priority: candidate.priority)
    }
}

/// Linear audio level (0...1) from RFC 6464 -dBov, as getStats' `audioLevel`.
func linearAudioLevel(dBov: UInt8) -> Double {
    dBov >= 127 ? 0 : pow(10, -Double(dBov) / 20)
}

extension RemotePeer {
    /// The connection's statistics at `wallclock`, which is the monotonic time `now`.
    func statistics(wallclock: Date = Date(), now: MonotonicTime = .now()) -> ConnectionStats {
        let core = self.core
        var pair: ConnectionStats.CandidatePairStats?
        let rtt = sendStream?.feedback?.roundTripTime
        if let selected = core?.selectedPair, let counters = core?.counters {
            pair = .init(local: .init(selected.local), remote: .init(selected.remote),
                         packetsSent: counters.datagramsSent, packetsReceived: counters.datagramsReceived,
                         bytesSent: counters.bytesSent, bytesReceived: counters.bytesReceived, currentRoundTripTime: rtt)
        }
        let audio = core?.audio
        var inbound: ConnectionStats.InboundRTPStats?
        if packetsReceived > 0 {
            let recorder = wavRecorder?.statistics ?? oggRecorder.object?.statistics
            inbound = .init(ssrc: receiveStream.ssrc?.rawValue, mid: audio?.mid, codec: audio.map { "\($0.codec.name)" },
                            packetsReceived: packetsReceived, bytesReceived: payloadBytesReceived,
                            packetsLost: max(0, receiveStream.cumulativeLost),
                            packetsDuplicated: receiveStream.statistics.duplicates,
                            jitter: receiveStream.jitterMilliseconds / 1000,
                            audioLevel: linearAudioLevel(dBov: lastLevel), audioLevelDBov: Int(lastLevel), speaking: speaking,
                            concealedFrames: recorder.map(\.concealedFrames), silentFrames: recorder.map(\.silenceFrames),
                            playoutDelay: nil, lastPacketReceivedTimestamp: lastPacketAt.map { at in
                                ((wallclock.timeIntervalSince1970 - (now - at).seconds) * 1000).rounded()
                            })
        }
        var outbound: ConnectionStats.OutboundRTPStats?
        var remoteInbound: ConnectionStats.RemoteInboundRTPStats?
        if let stream = sendStream {
            outbound = .init(ssrc: stream.configuration.ssrc.rawValue, mid: audio?.mid, codec: audio.map { "\($0.codec.name)" },
                             packetsSent: Int(stream.packetCount), bytesSent: Int(stream.octetCount), audioLevelDBov: nil)
            if let feedback = stream.feedback {
                let clockRate = Double(audio?.codec.clockRate ?? 48_000)
                remoteInbound = .init(packetsLost: Int(feedback.reportBlock.cumulativeLost),
                                      fractionLost: Double(feedback.reportBlock.fractionLost) / 256,
                                      jitter: Double(feedback.reportBlock.jitter) / clockRate, roundTripTime: feedback.roundTripTime)
            }
        }
        return ConnectionStats(
            participant: id, timestamp: (wallclock.timeIntervalSince1970 * 1000).rounded(),
            connectionState: phase.rawValue, iceConnectionState: core.map { $0.iceState.rawValue } ?? "new",
            dtlsConnected: core?.isConnected ?? false, srtpProfile: core?.srtpProfile.map { "\($0)" },
            iceRestarts: core?.iceRestarts ?? 0, mdnsCandidatesResolved: mdnsResolved, mdnsCandidatesDropped: mdnsDropped,
            droppedUnknownSource: core?.counters.droppedUnknownSource ?? 0, srtpFailures: core?.counters.srtpFailures ?? 0,
            droppedBeforeKeys: core?.counters.droppedBeforeKeys ?? 0,
            candidatePair: pair, inboundRtp: inbound, outboundRtp: outbound, remoteInboundRtp: remoteInbound)
    }
}

/// The same figures as swift-metrics gauges (labels `peerd_*`, dimension `participant`), for whatever
/// metrics backend the embedding program bootstrapped (none by default: the calls are no-ops).
final class ConnectionMetrics {
    private let factory: any MetricsFactory
    private var gauges: [String: [String: Gauge]] = [:]

    init(factory: any MetricsFactory) { self.factory = factory }

    private func gauge(_ label: String, _ participant: String) -> Gauge {
        if let existing = gauges[participant]?[label] { return existing }
        let gauge = Gauge(label: label, dimensions: [("participant", participant)], factory: factory)
        gauges[participant, default: [:]][label] = gauge
        return gauge
    }

    func update(_ stats: ConnectionStats) {
        let id = stats.participant
        gauge("peerd_connected", id).record(stats.dtlsConnected ? 1 : 0)
        gauge("peerd_ice_restarts", id).record(stats.iceRestarts)
        if let pair = stats.candidatePair {
            gauge("peerd_transport_bytes_sent", id).record(pair.bytesSent)
            gauge("peerd_transport_bytes_received", id).record(pair.bytesReceived)
            gauge("peerd_transport_packets_sent", id).record(pair.packetsSent)
            gauge("peerd_transport_packets_received", id).record(pair.packetsReceived)
            if let rtt = pair.currentRoundTripTime { gauge("peerd_round_trip_time_seconds", id).record(rtt) }
        }
        if let inbound = stats.inboundRtp {
            gauge("peerd_rtp_packets_received", id).record(inbound.packetsReceived)
            gauge("peerd_rtp_bytes_received", id).record(inbound.bytesReceived)
            gauge("peerd_rtp_packets_lost", id).record(inbound.packetsLost)
            gauge("peerd_rtp_jitter_seconds", id).record(inbound.jitter)
            gauge("peerd_audio_level", id).record(inbound.audioLevel)
            gauge("peerd_speaking", id).record(inbound.speaking ? 1 : 0)
            if let concealed = inbound.concealedFrames { gauge("peerd_concealed_frames", id).record(concealed) }
        }
        if let outbound = stats.outboundRtp {
            gauge("peerd_rtp_packets_sent", id).record(outbound.packetsSent)
            gauge("peerd_rtp_bytes_sent", id).record(outbound.bytesSent)
        }
        if let remote = stats.remoteInboundRtp {
            gauge("peerd_remote_fraction_lost", id).record(remote.fractionLost)
            gauge("peerd_remote_packets_lost", id).record(remote.packetsLost)
        }
    }

    /// A participant left: its gauges go away.
    func remove(_ participant: String) {
        for gauge in (gauges.removeValue(forKey: participant) ?? [:]).values { gauge.destroy() }
    }
}
