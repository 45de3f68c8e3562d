#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// CPU time and memory of a process (or one of its threads), read from /proc.
struct ProcStats: Sendable {
    /// User + system CPU time, in seconds.
    var cpuSeconds: Double
    /// Resident set size, in KiB (0 for a thread).
    var rssKiB: Int
    /// Peak resident set size (VmHWM), in KiB (0 for a thread).
    var peakRSSKiB: Int

    static let clockTicks: Double = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; nil if the process is gone.
    static func process(_ pid: Int32) -> ProcStats? {
        guard let cpu = cpuSeconds(statPath: "/proc/\(pid)/stat") else { return nil }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return ProcStats(cpuSeconds: cpu, rssKiB: field(status, "VmRSS:"), peakRSSKiB: field(status, "VmHWM:"))
    }

    /// CPU time of one thread of this process.
    static func thread(_ tid: Int32) -> Double? {
        cpuSeconds(statPath: "/proc/self/task/\(tid)/stat")
    }

    /// The calling thread's id (from /proc/thread-self).
    static func currentThreadID() -> Int32? {
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"),
              let last = link.split(separator: "/").last else { return nil }
        return Int32(last)
    }

    /// utime + stime (fields 14 and 15) of a stat file, in seconds.
    private static func cpuSeconds(statPath: String) -> Double? {
        guard let text = try? String(contentsOfFile: statPath, encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / clockTicks
    }

    private static func field(_ status: String, _ name: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            let digits = line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? ""
            return Int(digits) ?? 0
        }
        return 0
    }
}

/// One snapshot of server and load-generator resource use, taken at a phase boundary.
struct Sample: Sendable {
    var phase: String
    var seconds: Double
    /// The server process (spawned or given by --server-pid); nil when the server runs in-process.
    var server: ProcStats?
    /// This process (the load generator, plus the server when in-process).
    var own: ProcStats
    /// CPU time of the clients' event-loop thread.
    var clientThreadCPU: Double
}
