// Receiving side of one RTP stream: RFC 3550 A.1 sequence validation, A.8 jitter, A.3 loss,
// receiver report blocks and the RTP → sender wallclock mapping from sender reports.
import Wire

/// What `RTPReceiveStream.receive` decided about a packet.
public enum RTPReceiveVerdict: Sendable, Equatable {
    /// A valid packet in sequence (or a tolerated reordering); `extendedSequence` is its 32-bit-plus value.
    case accepted(extendedSequence: Int64)
    /// Still in probation (RFC 3550 A.1): not yet delivered.
    case probation
    /// The same sequence number was seen recently.
    case duplicate
    /// Older than the highest sequence number (within MAX_MISORDER), but not a duplicate: delivered late.
    case reordered(extendedSequence: Int64)
    /// A jump too large to accept; a second packet following it restarts the sequence.
    case badSequence
    /// The source restarted (a big jump confirmed, or a new SSRC); state was reset and the packet accepted.
    case restarted(extendedSequence: Int64)
    /// Payload type not in the accepted set: counted and dropped.
    case unknownPayloadType(PayloadType)
}

/// Counters of an `RTPReceiveStream`.
public struct RTPReceiveStatistics: Sendable, Equatable {
    public var packetsReceived: Int = 0
    /// Payload bytes of accepted packets.
    public var bytesReceived: Int = 0
    public var duplicates: Int = 0
    public var reordered: Int = 0
    public var unknownPayloadType: Int = 0
    public var badSequence: Int = 0
    public var restarts: Int = 0
    public var ssrcChanges: Int = 0
    public var senderReports: Int = 0
}

/// The receiving half of one RTP stream. Sans-IO: pass each packet with its arrival time.
public struct RTPReceiveStream: Sendable {
    public static let minSequential = 2
    public static let maxDropout = 3000
    public static let maxMisorder = 100
    static let sequenceModulus: Int64 = 1 << 16

    /// Accepted payload types (empty = accept all).
    public let payloadTypes: Set<PayloadType>
    /// The same as two 64-bit masks over the 7-bit payload type: checked on every packet without
    /// hashing or touching the set's storage.
    private let payloadTypeMask: (low: UInt64, high: UInt64)
    /// RTP clock rate (48000 for Opus).
    public let clockRate: Int
    public private(set) var ssrc: SSRC?
    public private(set) var statistics = RTPReceiveStatistics()

    // RFC 3550 A.1 source state.
    private var maxSeq: UInt16 = 0
    private var cycles: Int64 = 0
    private var baseSeq: Int64 = 0
    private var badSeq: Int64 = sequenceModulus + 1
    private var probation = 0
    private var received: Int64 = 0
    private var expectedPrior: Int64 = 0
    private var receivedPrior: Int64 = 0
    private var transit: Double?
    /// Interarrival jitter in RTP units (A.8), as a Double.
    public private(set) var jitter: Double = 0
    /// Bit set over the last 1024 extended sequence numbers, for duplicate detection.
    /// Inline, not an array: no storage of its own to allocate, and no second cache line to fetch.
    private var seen = InlineArray<16, UInt64>(repeating: 0)

    /// The last sender report and its arrival time.
    public private(set) var lastSenderReport: RTCPSenderReport?
    public private(set) var lastSenderReportArrival: MonotonicTime?

    public init(payloadTypes: Set<PayloadType> = [], clockRate: Int = 48_000) {
        self.payloadTypes = payloadTypes
        var mask: (low: UInt64, high: UInt64) = (0, 0)
        for type in payloadTypes {
            let value = type.rawValue & 0x7F
            if value < 64 { mask.low |= 1 << UInt64(value) } else { mask.high |= 1 << UInt64(value - 64) }
        }
        payloadTypeMask = mask
        self.clockRate = max(1, clockRate)
    }

    /// Highest extended sequence number received (cycles + max seq).
    public var extendedHighestSequence: Int64 { cycles + Int64(maxSeq) }
    /// Packets expected since the (re)start: extended highest − base + 1.
    public var expected: Int64 { ssrc == nil || probation > 0 ? 0 : extendedHighestSequence - baseSeq + 1 }
    /// Cumulative lost packets (negative with duplicates counted by senders; here received excludes duplicates).
    public var cumulativeLost: Int64 { expected - received }
    /// Jitter in milliseconds.
    public var jitterMilliseconds: Double { jitter * 1000 / Double(clockRate) }

    private mutating func initSequence(_ seq: UInt16) {
        baseSeq = Int64(seq)
        maxSeq = seq
        badSeq = Self.sequenceModulus + 1
        cycles = 0
        received = 0
        receivedPrior = 0
        expectedPrior = 0
        transit = nil
        jitter = 0
        seen = InlineArray(repeating: 0)
    }

    private func acceptsPayloadType(_ type: PayloadType) -> Bool {
        let value = type.rawValue
        guard value < 128 else { return false }
        return value < 64 ? payloadTypeMask.low & (1 << UInt64(value)) != 0 : payloadTypeMask.high & (1 << UInt64(value - 64)) != 0
    }

    private func wasSeen(_ extended: Int64) -> Bool {
        let bit = Int(extended & 1023)
        return seen[bit >> 6] & (1 << UInt64(bit & 63)) != 0
    }

    private mutating func markSeen(_ extended: Int64) {
        let bit = Int(extended & 1023)
        seen[bit >> 6] |= 1 << UInt64(bit & 63)
    }

    private mutating func clearSeen(after old: Int64, through new: Int64) {
        guard new > old else { return }
        if new - old >= 1024 { seen = InlineArray(repeating: 0); return }
        var e = old + 1
        while e <= new {
            let bit = Int(e & 1023)
            seen[bit >> 6] &= ~(1 << UInt64(bit & 63))
            e += 1
        }
    }

    /// Processes the header of a received packet; `payloadLength` counts toward bytesReceived.
    public mutating func receive(_ header: RTPFixedHeader, payloadLength: Int, arrival: MonotonicTime) -> RTPReceiveVerdict {
        receive(ssrc: header.ssrc, payloadType: header.payloadType, sequenceNumber: header.sequenceNumber,
                timestamp: header.timestamp, payloadLength: payloadLength, arrival: arrival)
    }

    /// Processes a parsed packet.
    public mutating func receive(_ packet: RTPPacket, arrival: MonotonicTime) -> RTPReceiveVerdict {
        receive(ssrc: packet.ssrc, payloadType: packet.payloadType, sequenceNumber: packet.sequenceNumber,
                timestamp: packet.timestamp, payloadLength: packet.payload.count, arrival: arrival)
    }

    /// Processes the fields of a received packet.
    public mutating func receive(ssrc packetSSRC: SSRC, payloadType: PayloadType, sequenceNumber: SequenceNumber,
                                 timestamp: RTPTimestamp, payloadLength: Int, arrival: MonotonicTime) -> RTPReceiveVerdict {
        if payloadTypeMask != (0, 0) && !acceptsPayloadType(payloadType) {
            statistics.unknownPayloadType += 1
            return .unknownPayloadType(payloadType)
        }
        let seq = sequenceNumber.rawValue
        var restarted = false
        if ssrc != packetSSRC {
            if ssrc != nil { statistics.ssrcChanges += 1; restarted = true }
            ssrc = packetSSRC
            initSequence(seq)
            maxSeq = seq &- 1
            probation = restarted ? 0 : Self.minSequential
            if restarted { lastSenderReport = nil; lastSenderReportArrival = nil; maxSeq = seq }
        }
        var verdict: RTPReceiveVerdict
        let udelta = seq &- maxSeq
        if probation > 0 {
            if seq == maxSeq &+ 1 {
                probation -= 1
                maxSeq = seq
                if probation == 0 {
                    initSequence(seq)
                    verdict = .accepted(extendedSequence: Int64(seq))
                } else {
                    return .probation
                }
            } else {
                probation = Self.minSequential - 1
                maxSeq = seq
                return .probation
            }
        } else if restarted {
            verdict = .restarted(extendedSequence: Int64(seq))
        } else if udelta == 0 {
            statistics.duplicates += 1
            return .duplicate
        } else if udelta < Self.maxDropout {
            let old = extendedHighestSequence
            if seq < maxSeq { cycles += Self.sequenceModulus }
            maxSeq = seq
            clearSeen(after: old, through: extendedHighestSequence)
            verdict = .accepted(extendedSequence: extendedHighestSequence)
        } else if udelta <= UInt16(truncatingIfNeeded: Int(Self.sequenceModulus) - Self.maxMisorder) {
            if Int64(seq) == badSeq {
                statistics.restarts += 1
                initSequence(seq)
                verdict = .restarted(extendedSequence: Int64(seq))
            } else {
                badSeq = Int64((seq &+ 1))
                statistics.badSequence += 1
                return .badSequence
            }
        } else {
            let back = Int64(maxSeq &- seq)
            let extended = extendedHighestSequence - back
            if extended < baseSeq || wasSeen(extended) {
                statistics.duplicates += 1
                return .duplicate
            }
            statistics.reordered += 1
            verdict = .reordered(extendedSequence: extended)
        }
        let extended: Int64
        switch verdict {
        case .accepted(let e), .restarted(let e), .reordered(let e): extended = e
        default: extended = extendedHighestSequence
        }
        markSeen(extended)
        received += 1
        statistics.packetsReceived += 1
        statistics.bytesReceived += payloadLength
        updateJitter(timestamp: timestamp, arrival: arrival)
        return verdict
    }

    private mutating func updateJitter(timestamp: RTPTimestamp, arrival: MonotonicTime) {
        let arrivalUnits = Double(arrival.nanoseconds) * Double(clockRate) / 1e9
        // Transit modulo 2^32 relative to the timestamp, kept as a Double with wrap handling.
        let t = arrivalUnits - Double(timestamp.rawValue)
        if let previous = transit {
            var d = abs(t - previous)
            d = d.truncatingRemainder(dividingBy: 4_294_967_296.0)
            if d > 2_147_483_648.0 { d = 4_294_967_296.0 - d }
            // A timestamp jump is not jitter: ignore differences over 10 s.
            if d < Double(clockRate) * 10 { jitter += (d - jitter) / 16 }
        }
        transit = t
    }

    /// Reads a sender report from this source (others are ignored); returns true when used.
    @discardableResult
    public mutating func receiveSenderReport(_ report: RTCPSenderReport, arrival: MonotonicTime) -> Bool {
        guard report.ssrc == ssrc else { return false }
        lastSenderReport = report
        lastSenderReportArrival = arrival
        statistics.senderReports += 1
        return true
    }

    /// The sender's wallclock (NTP) for an RTP timestamp, from the last sender report; nil before one.
    public func senderWallclock(for timestamp: RTPTimestamp) -> NTPTime? {
        guard let sr = lastSenderReport else { return nil }
        let seconds = Double(sr.rtpTimestamp.distance(to: timestamp)) / Double(clockRate)
        return NTPTime(secondsSince1900: sr.ntpTime.secondsSince1900 + seconds)
    }

    /// A receiver report block for `now`; updates the "since last report" state for the fraction
    /// lost (RFC 3550 A.3). Nil before the source is validated.
    public mutating func makeReportBlock(now: MonotonicTime) -> RTCPReportBlock? {
        guard let ssrc, probation == 0 else { return nil }
        let expectedInterval = expected - expectedPrior
        expectedPrior = expected
        let receivedInterval = received - receivedPrior
        receivedPrior = received
        let lostInterval = expectedInterval - receivedInterval
        let fraction: UInt8 = expectedInterval <= 0 || lostInterval <= 0
            ? 0 : UInt8(min(255, (lostInterval << 8) / expectedInterval))
        let lost = Int32(clamping: min(max(cumulativeLost, -0x80_0000), 0x7F_FFFF))
        var lsr: UInt32 = 0
        var dlsr: UInt32 = 0
        if let sr = lastSenderReport, let at = lastSenderReportArrival {
            lsr = sr.ntpTime.compact
            dlsr = NTPTime.compact(fromSeconds: (now - at).seconds)
        }
        return RTCPReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: lost,
                               extendedHighestSequence: UInt32(truncatingIfNeeded: extendedHighestSequence),
                               jitter: UInt32(min(jitter, Double(UInt32.max))), lastSR: lsr, delaySinceLastSR: dlsr)
    }
}
