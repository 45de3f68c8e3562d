import Wire

/// A token bucket rate limiter; time is an input.
public struct TokenBucket: Sendable, Equatable {
    /// Maximum tokens (the burst).
    public let capacity: Double
    /// Tokens added per second.
    public let refillPerSecond: Double
    private(set) var tokens: Double
    private var last: MonotonicTime?

    public init(capacity: Int, refillPerSecond: Double) {
        self.capacity = Double(max(1, capacity))
        self.refillPerSecond = max(0, refillPerSecond)
        self.tokens = Double(max(1, capacity))
    }

    /// Takes one token if there is one.
    public mutating func take(now: MonotonicTime) -> Bool {
        if let last, now > last {
            let elapsed = Double(now.nanoseconds - last.nanoseconds) / 1e9
            tokens = min(capacity, tokens + elapsed * refillPerSecond)
        }
        if last == nil || now > last! { last = now }
        if tokens >= 1 {
            tokens -= 1
            return true
        }
        return false
    }
}
