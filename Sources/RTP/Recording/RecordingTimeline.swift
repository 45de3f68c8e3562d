// Places received audio packets on a recording timeline that follows the receiver's clock.
import Wire

/// Settings of a `RecordingTimeline`.
public struct RecordingTimelineConfiguration: Sendable, Equatable {
    /// Aligned mode: the room-wide recording start; position 0 of every file is this instant, so
    /// a participant who joins later starts with silence. Nil: position 0 is the first packet's arrival.
    public var origin: MonotonicTime?
    /// Samples (48 kHz) of one fill frame; gaps are filled and drift corrected in these units.
    public var frameSamples: Int
    /// A packet arriving further than this from where the timing model expects it starts a new
    /// segment (timestamp jump, stalled sender clock, restart).
    public var jumpThreshold: Duration
    /// Idle time kept open for late packets before `fillIdle(now:)` writes silence.
    public var idleHoldback: Duration
    /// Timeline span needed before the sender's clock rate is estimated (nominal before).
    public var rateEstimationSpan: Duration
    /// Largest accepted deviation of the sender's clock rate from nominal (fraction).
    public var maxRateDeviation: Double

    public init(origin: MonotonicTime? = nil, frameSamples: Int = 960, jumpThreshold: Duration = .seconds(1),
                idleHoldback: Duration = .milliseconds(500), rateEstimationSpan: Duration = .seconds(10),
                maxRateDeviation: Double = 0.01) {
        self.origin = origin
        self.frameSamples = max(120, frameSamples)
        self.jumpThreshold = jumpThreshold
        self.idleHoldback = idleHoldback
        self.rateEstimationSpan = rateEstimationSpan
        self.maxRateDeviation = maxRateDeviation
    }
}

/// Where a packet goes on the timeline.
public struct RecordingPlacement: Sendable, Equatable {
    /// Samples to fill before the packet (a multiple of `frameSamples`).
    public var fillSamples: Int
    /// How much of `fillSamples` (at its start) stands for lost packets rather than DTX silence.
    public var concealSamples: Int
    /// False when the packet falls before the current position (late, or dropped to track the clock).
    public var write: Bool
    /// True when the packet started a new segment (SSRC change, timestamp jump, first packet).
    public var newSegment: Bool
}

/// Counters of a `RecordingTimeline`.
public struct RecordingTimelineStatistics: Sendable, Equatable {
    public var packets = 0
    public var dropped = 0
    public var segments = 0
    public var silenceSamples: Int64 = 0
    public var concealSamples: Int64 = 0
    public var idleFillSamples: Int64 = 0
}

/// Maps RTP packets to sample positions of a recording that tracks the receiver's wallclock.
///
/// Within a segment (one SSRC, continuous timestamps) arrival time is modelled as a linear
/// function of the extended RTP timestamp (least squares, nominal rate until
/// `rateEstimationSpan`), which estimates the sender's clock drift. Each packet's modelled
/// arrival gives its position; the timeline fills the gap before it with whole silence frames
/// or drops it, keeping the written position within ¾ frame of the model.
public struct RecordingTimeline: Sendable {
    public let configuration: RecordingTimelineConfiguration
    /// Samples written so far (the end of the timeline), relative to the origin.
    public private(set) var position: Int64
    /// Position 0 on the monotonic clock (set by the first packet unless configured).
    public private(set) var origin: MonotonicTime?
    public private(set) var statistics = RecordingTimelineStatistics()

    private var ssrc: SSRC?
    private var timestamps = TimestampUnwrapper()
    private var sequences = SequenceUnwrapper()
    private var lastSequence: Int64?
    private var segmentStart = MonotonicTime.zero
    private var firstTimestamp: Int64 = 0
    // Least-squares sums of y (seconds since segmentStart) over x (ticks since firstTimestamp).
    private var n = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
    private var lastArrival = MonotonicTime.zero
    /// `configuration.jumpThreshold` in seconds (Duration arithmetic is 128-bit: kept off the per-packet path).
    private let jumpThresholdSeconds: Double
    private let rateEstimationSpanSeconds: Double

    /// Seconds from `from` to `to`, in plain 64-bit nanosecond arithmetic.
    @inline(__always)
    private static func seconds(from: MonotonicTime, to: MonotonicTime) -> Double {
        Double(to.nanoseconds &- from.nanoseconds) / 1e9
    }

    /// `initialPosition` is where writing starts (e.g. −pre-skip for Ogg Opus, so that decoded
    /// output position 0 is the origin).
    public init(configuration: RecordingTimelineConfiguration = RecordingTimelineConfiguration(), initialPosition: Int64 = 0) {
        self.configuration = configuration
        self.origin = configuration.origin
        self.position = initialPosition
        jumpThresholdSeconds = configuration.jumpThreshold.seconds
        rateEstimationSpanSeconds = configuration.rateEstimationSpan.seconds
    }

    /// Estimated sender clock rate in ticks per second of receiver time (48000 nominal).
    public var estimatedRate: Double {
        let (_, b) = model()
        return 1 / b
    }

    private func model() -> (a: Double, b: Double) {
        let nominal = 1.0 / 48_000
        guard n >= 1 else { return (0, nominal) }
        let spanTicks = sx / n
        let denominator = n * sxx - sx * sx
        if n >= 3, denominator > 0, spanTicks * 2 / 48_000 >= rateEstimationSpanSeconds {
            var b = (n * sxy - sx * sy) / denominator
            let limit = configuration.maxRateDeviation
            b = min(max(b, nominal / (1 + limit)), nominal / (1 - limit))
            return ((sy - b * sx) / n, b)
        }
        return ((sy - nominal * sx) / n, nominal)
    }

    private func modelled(ticks x: Double) -> Double {
        let (a, b) = model()
        return a + b * x
    }

    private mutating func startSegment(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp, arrival: MonotonicTime) {
        self.ssrc = ssrc
        timestamps = TimestampUnwrapper()
        sequences = SequenceUnwrapper()
        firstTimestamp = timestamps.unwrap(timestamp)
        lastSequence = sequences.unwrap(sequenceNumber)
        segmentStart = arrival
        n = 0; sx = 0; sy = 0; sxx = 0; sxy = 0
        statistics.segments += 1
    }

    /// Places a packet of `samples` 48 kHz samples (its Opus duration) that arrived at `arrival`.
    /// Call in sequence order (after a reorder buffer). When `write` is true the caller writes
    /// `fillSamples` of fill and then the packet; the position advances by both.
    public mutating func place(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp,
                               samples: Int, arrival: MonotonicTime) -> RecordingPlacement {
        statistics.packets += 1
        if origin == nil { origin = arrival }
        let frame = Int64(configuration.frameSamples)
        var newSegment = false
        var missing: Int64 = 0
        if self.ssrc != ssrc {
            startSegment(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp, arrival: arrival)
            newSegment = true
        } else {
            let extended = timestamps.peek(timestamp)
            let x = Double(extended - firstTimestamp)
            let y = Self.seconds(from: segmentStart, to: arrival)
            let predicted = modelled(ticks: x)
            if extended < firstTimestamp || abs(y - predicted) > jumpThresholdSeconds {
                startSegment(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp, arrival: arrival)
                newSegment = true
            } else {
                _ = timestamps.unwrap(timestamp)
                let seq = sequences.unwrap(sequenceNumber)
                if let last = lastSequence { missing = max(0, min(seq - last - 1, 3000)) }
                lastSequence = max(lastSequence ?? seq, seq)
            }
        }
        lastArrival = max(lastArrival, arrival)
        let x = Double(timestamps.peek(timestamp) - firstTimestamp)
        let y = Self.seconds(from: segmentStart, to: arrival)
        n += 1; sx += x; sy += y; sxx += x * x; sxy += x * y
        let base = Self.seconds(from: origin ?? segmentStart, to: segmentStart)
        let target = Int64(((base + modelled(ticks: x)) * 48_000).rounded())
        let error = target - position
        let tolerance = frame * 3 / 4
        if error <= -tolerance {
            statistics.dropped += 1
            return RecordingPlacement(fillSamples: 0, concealSamples: 0, write: false, newSegment: newSegment)
        }
        var fill: Int64 = 0
        if error >= tolerance { fill = (error + frame / 2) / frame * frame }
        let conceal = min(fill, missing * Int64(max(0, samples)))
        position += fill + Int64(max(0, samples))
        statistics.silenceSamples += fill - conceal
        statistics.concealSamples += conceal
        return RecordingPlacement(fillSamples: Int(fill), concealSamples: Int(conceal), write: true, newSegment: newSegment)
    }

    /// Silence to write at `now` while no packets arrive (DTX, a stalled sender), so the file keeps
    /// pace with the wallclock; leaves `idleHoldback` open for late packets. Whole frames.
    public mutating func fillIdle(now: MonotonicTime) -> Int {
        guard let origin else { return 0 }
        let open = now - configuration.idleHoldback
        let target = Int64((Double((open - origin).nanosecondsClamped) / 1e9 * 48_000).rounded(.down))
        let frame = Int64(configuration.frameSamples)
        guard target - position >= frame else { return 0 }
        let fill = (target - position) / frame * frame
        position += fill
        statistics.idleFillSamples += fill
        return Int(fill)
    }

    /// The sender's wallclock at timeline position 0, from a sender report of the current
    /// segment's source: the SR's NTP time minus the modelled position of its RTP timestamp.
    public func senderWallclockAtOrigin(senderReport sr: RTCPSenderReport) -> NTPTime? {
        guard sr.ssrc == ssrc, let origin, n >= 1 else { return nil }
        let x = Double(timestamps.peek(sr.rtpTimestamp) - firstTimestamp)
        let base = Double(((segmentStart - origin).nanosecondsClamped)) / 1e9
        let seconds = base + modelled(ticks: x)
        return NTPTime(secondsSince1900: sr.ntpTime.secondsSince1900 - seconds)
    }
}
