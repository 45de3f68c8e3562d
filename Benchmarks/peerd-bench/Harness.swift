import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A minimal benchmark harness: runs a body in batches, reports the median ns per operation.
struct Bench {
    var filter: String?
    var results: [(name: String, nanosecondsPerOp: Double, note: String)] = []

    /// Runs `body` `iterations` times per round, 7 rounds after a warm-up round, and records the median.
    mutating func measure(_ name: String, iterations: Int = 100_000, note: String = "", _ body: () -> Void) {
        if let filter, !name.contains(filter) { return }
        for _ in 0..<max(1, iterations / 10) { body() }
        var rounds: [Double] = []
        for _ in 0..<7 {
            let start = MonotonicTime.now()
            for _ in 0..<iterations { body() }
            let elapsed = MonotonicTime.now() - start
            rounds.append(Double(elapsed.nanosecondsClamped) / Double(iterations))
        }
        rounds.sort()
        let median = rounds[rounds.count / 2]
        results.append((name, median, note))
        print(pad(name, 58) + pad(format(median), 12, left: true) + " ns/op  " + note)
    }

    func format(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? padding + text : text + padding
    }
}

/// Keeps the optimizer from deleting work whose result is unused.
@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

func peakResidentKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}
