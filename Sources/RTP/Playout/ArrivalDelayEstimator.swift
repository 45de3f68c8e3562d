// Target playout delay from the measured arrival-delay distribution (NetEq-style).
import Wire

/// Estimates how much delay a playout buffer needs from packet arrival times.
///
/// Each packet's transit (arrival time minus its media time) is compared with the fastest packet
/// whose timestamp lies within `window` of the newest; the difference is its relative arrival
/// delay. The worst relative delay of each `period` feeds a histogram that forgets old samples
/// geometrically; the target is its `quantile` plus `leadTime`, clamped to `minTarget...maxTarget`.
public struct ArrivalDelayEstimator: Sendable {
    /// Settings of an `ArrivalDelayEstimator`.
    public struct Configuration: Sendable, Equatable {
        public var window: Duration = .seconds(2)
        public var period: Duration = .milliseconds(500)
        public var quantile: Double = 0.95
        /// Weight kept by the histogram at each new sample (0 < f < 1).
        public var forgetFactor: Double = 0.97
        public var bucketWidth: Duration = .milliseconds(2)
        public var minTarget: Duration = .milliseconds(20)
        public var maxTarget: Duration = .seconds(1)
        public var startTarget: Duration = .milliseconds(80)
        /// Added to the quantile: how long before its play time a frame must be there.
        public var leadTime: Duration = .milliseconds(20)

        public init() {}
    }

    public let configuration: Configuration
    private var entries: [(timestamp: Int64, transit: Int64)] = []
    private var newestTimestamp: Int64?
    private var histogram: [Double]
    private var samplesFed = 0
    private var periodStart: MonotonicTime?
    private var periodWorst: Int64 = 0
    /// Transit (ns) of the fastest packet in the window; nil before the first packet.
    public private(set) var baseTransit: Int64?
    /// The current target delay in nanoseconds.
    public private(set) var targetNanoseconds: Int64
    /// The last relative delay measured, in nanoseconds.
    public private(set) var lastRelativeDelay: Int64 = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        let buckets = Int(configuration.maxTarget.nanosecondsClamped / max(1, configuration.bucketWidth.nanosecondsClamped)) + 1
        histogram = [Double](repeating: 0, count: max(1, buckets))
        targetNanoseconds = Self.clamp(configuration.startTarget.nanosecondsClamped, configuration)
    }

    /// Nanoseconds of media time at 48 kHz for `samples`.
    @inlinable public static func nanoseconds(samples: Int64) -> Int64 { samples &* 62_500 / 3 }

    /// Forgets the transit window (new timestamp base, e.g. an SSRC change); keeps the histogram.
    public mutating func resetWindow() {
        entries.removeAll(keepingCapacity: true)
        newestTimestamp = nil
        baseTransit = nil
        periodStart = nil
        periodWorst = 0
    }

    /// Records a packet with extended 48 kHz timestamp `timestamp` arriving at `arrival`;
    /// returns its relative arrival delay in nanoseconds.
    @discardableResult
    public mutating func update(timestamp: Int64, arrival: MonotonicTime) -> Int64 {
        let transit = arrival.nanoseconds &- Self.nanoseconds(samples: timestamp)
        let newest = max(newestTimestamp ?? timestamp, timestamp)
        newestTimestamp = newest
        let windowSamples = configuration.window.nanosecondsClamped / 1_000_000 * 48
        entries.removeAll { $0.timestamp < newest - windowSamples }
        entries.append((timestamp, transit))
        var base = transit
        for entry in entries where entry.transit < base { base = entry.transit }
        baseTransit = base
        let relative = transit - base
        lastRelativeDelay = relative

        if let start = periodStart, arrival - start < configuration.period {
            periodWorst = max(periodWorst, relative)
        } else {
            if periodStart != nil { feed(periodWorst) }
            periodStart = arrival
            periodWorst = relative
        }
        return relative
    }

    private mutating func feed(_ relative: Int64) {
        let width = max(1, configuration.bucketWidth.nanosecondsClamped)
        let bucket = min(histogram.count - 1, Int(max(0, relative) / width))
        let forget = min(configuration.forgetFactor, 1 - 1 / Double(samplesFed + 1))
        for index in histogram.indices { histogram[index] *= forget }
        histogram[bucket] += 1 - forget
        samplesFed += 1

        var cumulative = 0.0
        var quantileNanoseconds = Double(histogram.count) * Double(width)
        for (index, mass) in histogram.enumerated() where mass > 0 {
            if cumulative + mass >= configuration.quantile - 1e-9 {
                let fraction = min(1, max(0, (configuration.quantile - cumulative) / mass))
                quantileNanoseconds = (Double(index) + fraction) * Double(width)
                break
            }
            cumulative += mass
        }
        targetNanoseconds = Self.clamp(Int64(quantileNanoseconds) + configuration.leadTime.nanosecondsClamped, configuration)
    }

    private static func clamp(_ value: Int64, _ configuration: Configuration) -> Int64 {
        min(max(value, configuration.minTarget.nanosecondsClamped), configuration.maxTarget.nanosecondsClamped)
    }
}
