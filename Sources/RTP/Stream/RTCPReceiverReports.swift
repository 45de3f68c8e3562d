// RTCP of a participant that receives and does not send: receiver reports (RFC 3550 §6.4.2).
import Wire

/// When and what a receive-only participant reports: an RR compound (RR + SDES CNAME; the RR alone
/// in RFC 5506 reduced-size mode, except every fourth report) at the RFC 3550 interval of
/// `RTPSendStream` (5 s randomised to 0.5–1.5×, half that before the first). A sender's reports
/// carry the report blocks instead (SR), so a participant that sends polls its send stream, not
/// this. The other side learns loss, jitter and — from LSR/DLSR — the round-trip time of what it
/// sends (browsers show them as `remote-inbound-rtp`, and adapt their Opus encoder to the loss).
public struct RTCPReceiverReportSchedule: Sendable {
    public let ssrc: SSRC
    public let cname: String
    public let reducedSize: Bool
    public private(set) var nextReportTime: MonotonicTime
    public private(set) var reportsSent = 0
    private var rng: RTPSplitMix64

    public init(ssrc: SSRC, cname: String, reducedSize: Bool, start: MonotonicTime,
                using generator: inout some RandomNumberGenerator) {
        self.ssrc = ssrc
        self.cname = cname
        self.reducedSize = reducedSize
        rng = RTPSplitMix64(seed: UInt64.random(in: 0...UInt64.max, using: &generator))
        nextReportTime = start + RTCPInterval.next(first: true, using: &rng)
    }

    /// When a report is due at `now`, the compound to send with `reportBlocks` (at most 31; none
    /// before anything was received) and the next one scheduled; else nil.
    public mutating func poll(now: MonotonicTime, reportBlocks: [RTCPReportBlock]) -> [UInt8]? {
        guard now >= nextReportTime else { return nil }
        var packets: [RTCPPacket] = [.receiverReport(RTCPReceiverReport(ssrc: ssrc, reportBlocks: Array(reportBlocks.prefix(31))))]
        if !reducedSize || reportsSent % 4 == 0 {
            packets.append(.sourceDescription(RTCPSourceDescription(chunks: [
                RTCPSDESChunk(ssrc: ssrc, items: [RTCPSDESItem(type: .cname, text: cname)]),
            ])))
        }
        reportsSent += 1
        nextReportTime = now + RTCPInterval.next(first: false, using: &rng)
        return try? RTCPCompoundPacket(packets: packets).serialized()
    }

    /// The same, with the report block of `stream` — made only when a report is due: making a block
    /// starts the stream's next loss interval, so a caller asking every tick would report loss over
    /// the tick instead of over the report interval.
    public mutating func poll(now: MonotonicTime, receiving stream: inout RTPReceiveStream) -> [UInt8]? {
        guard now >= nextReportTime else { return nil }
        return poll(now: now, reportBlocks: stream.makeReportBlock(now: now).map { [$0] } ?? [])
    }

    /// The last compound when leaving: RR (with `reportBlocks`) + SDES CNAME + BYE.
    public func goodbye(reportBlocks: [RTCPReportBlock], reason: String? = nil) -> [UInt8] {
        let compound = RTCPCompoundPacket(packets: [
            .receiverReport(RTCPReceiverReport(ssrc: ssrc, reportBlocks: Array(reportBlocks.prefix(31)))),
            .sourceDescription(RTCPSourceDescription(chunks: [
                RTCPSDESChunk(ssrc: ssrc, items: [RTCPSDESItem(type: .cname, text: cname)]),
            ])),
            .goodbye(RTCPGoodbye(ssrcs: [ssrc], reason: reason.map { Array($0.utf8.prefix(255)) })),
        ])
        return (try? compound.serialized()) ?? []
    }
}
