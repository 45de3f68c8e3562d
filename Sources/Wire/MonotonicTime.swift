/// A point on a monotonic clock, in nanoseconds from an arbitrary origin.
///
/// Sans-IO cores (ICE agent, DTLS endpoint, RTP streams, playout) take time as a value of this
/// type instead of reading a clock, so tests drive them with a virtual clock. The shell makes
/// values from `MonotonicTime.now()` (CLOCK_MONOTONIC).
public struct MonotonicTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    @inlinable public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = MonotonicTime(nanoseconds: 0)

    @inlinable public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    @inlinable public static func + (lhs: Self, rhs: Duration) -> Self {
        MonotonicTime(nanoseconds: lhs.nanoseconds &+ rhs.nanosecondsClamped)
    }

    @inlinable public static func - (lhs: Self, rhs: Duration) -> Self {
        MonotonicTime(nanoseconds: lhs.nanoseconds &- rhs.nanosecondsClamped)
    }

    @inlinable public static func - (lhs: Self, rhs: Self) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    @inlinable public static func += (lhs: inout Self, rhs: Duration) { lhs = lhs + rhs }

    public var description: String { "t+\(Double(nanoseconds) / 1e6)ms" }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to Int64.
    @inlinable public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product &+ attoseconds / 1_000_000_000
    }

    /// The duration in seconds as a Double.
    @inlinable public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MonotonicTime {
    /// The current CLOCK_MONOTONIC time. Only the shell (ring 3) calls this.
    public static func now() -> MonotonicTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicTime(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }
}
