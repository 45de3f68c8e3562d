import CMemory
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A minimal benchmark harness: runs a body in batches, reports the median ns per operation.
///
/// Every benchmark name is `group/what`; the optional command-line filter selects the names that
/// contain it (case-insensitive), so `peerd-bench srtp` runs one group.
struct Bench {
    var filter: String?
    var results: [(name: String, nanosecondsPerOp: Double, note: String)] = []

    init(filter: String?) {
        self.filter = filter?.lowercased()
    }

    /// Whether the filter selects `name`.
    func enabled(_ name: String) -> Bool {
        guard let filter else { return true }
        return name.lowercased().contains(filter)
    }

    /// Whether the filter selects any of `names` (to skip expensive set-up).
    func enabled(any names: [String]) -> Bool { names.contains { enabled($0) } }

    /// Runs `body` `iterations` times per round, 7 rounds after a warm-up round, and records the median.
    mutating func measure(_ name: String, iterations: Int = 100_000, note: String = "", _ body: () -> Void) {
        guard enabled(name) else { return }
        for _ in 0..<max(1, iterations / 10) { body() }
        var rounds: [Double] = []
        for _ in 0..<7 {
            let start = MonotonicTime.now()
            for _ in 0..<iterations { body() }
            let elapsed = MonotonicTime.now() - start
            rounds.append(Double(elapsed.nanosecondsClamped) / Double(iterations))
        }
        record(name, median(rounds), note: note)
    }

    /// Runs `body` `runs` times (after `warmUp` untimed runs); `body` returns the nanoseconds of
    /// the part it timed itself. Records the median and prints min and max too.
    mutating func sample(_ name: String, runs: Int, warmUp: Int = 2, note: String = "", _ body: () -> Int64) {
        guard enabled(name) else { return }
        for _ in 0..<warmUp { _ = body() }
        var samples: [Double] = []
        for _ in 0..<runs { samples.append(Double(body())) }
        samples.sort()
        let spread = "[min \(humanTime(samples.first!)), max \(humanTime(samples.last!)), n=\(runs)]"
        record(name, median(samples), note: note.isEmpty ? spread : note + " " + spread)
    }

    /// Times the whole of `body`, `runs` times; see `sample`.
    mutating func sampleWhole(_ name: String, runs: Int, warmUp: Int = 2, note: String = "", _ body: () -> Void) {
        sample(name, runs: runs, warmUp: warmUp, note: note) {
            let start = MonotonicTime.now()
            body()
            return (MonotonicTime.now() - start).nanosecondsClamped
        }
    }

    /// Records a figure measured elsewhere (ns per operation).
    mutating func record(_ name: String, _ nanosecondsPerOp: Double, note: String = "") {
        results.append((name, nanosecondsPerOp, note))
        print(pad(name, 62) + pad(format(nanosecondsPerOp), 12, left: true) + " ns/op " + pad("(" + humanTime(nanosecondsPerOp) + ")", 11) + " " + note)
    }

    /// Prints a figure that is not a time (memory, counts, derived rates).
    func report(_ name: String, _ value: String, note: String = "") {
        print(pad(name, 62) + pad(value, 12, left: true) + "              " + note)
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    func format(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    func humanTime(_ nanoseconds: Double) -> String {
        func fixed(_ v: Double, _ digits: Int) -> String {
            var scale = 1.0
            for _ in 0..<digits { scale *= 10 }
            let n = Int((v * scale).rounded())
            let whole = n / Int(scale)
            let frac = String(n % Int(scale))
            return digits == 0 ? "\(whole)" : "\(whole)." + String(repeating: "0", count: digits - frac.count) + frac
        }
        if nanoseconds < 1_000 { return fixed(nanoseconds, 0) + " ns" }
        if nanoseconds < 1_000_000 { return fixed(nanoseconds / 1_000, 2) + " µs" }
        if nanoseconds < 1_000_000_000 { return fixed(nanoseconds / 1_000_000, 2) + " ms" }
        return fixed(nanoseconds / 1_000_000_000, 2) + " s"
    }

    func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? padding + text : text + padding
    }
}

/// Keeps the optimizer from deleting work whose result is unused.
@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// Nanoseconds since `start`.
func elapsedNanoseconds(since start: MonotonicTime) -> Int64 { (MonotonicTime.now() - start).nanosecondsClamped }

func peakResidentKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}

/// Current resident set size in KiB (from /proc/self/statm), or nil if unreadable.
func currentResidentKiB() -> Int? {
    guard let text = readSmallFile("/proc/self/statm") else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

/// Bytes the C heap has handed out (glibc `mallinfo2`: small blocks in use plus mmapped blocks);
/// the resident set size where the C library has no `mallinfo2`.
func heapBytesInUse() -> Int {
    let heap = Int(peerd_heap_bytes_in_use())
    return heap > 0 ? heap : (currentResidentKiB() ?? 0) * 1024
}

/// The 1, 5 and 15 minute load averages, as in `uptime`.
func loadAverage() -> String {
    guard let text = readSmallFile("/proc/loadavg") else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

private func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 511) }
    guard count > 0 else { return nil }
    return String(decoding: buffer[0..<count], as: UTF8.self)
}
