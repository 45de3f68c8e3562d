import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// One line of the load tool's signaling between the sending side and a receiver process
/// (`peerd-load receive` or `aiortc_receiver.py`), JSON on stdin/stdout, one object per line.
///
/// Parent -> receiver: `offer` (id, sdp), `mark`, `counts`, `quit`.
/// Receiver -> parent: `ready` (rss), `answer` (id, sdp), `error` (id?, message), `mark`
/// (cpuLoopNs, cpuProcessNs, rss, packets, connected), `counts` (perStream), `bye` (files, bytes).
struct LoadMessage: Codable, Sendable {
    var op: String
    var id: Int?
    var sdp: String?
    var message: String?
    /// CPU time of the receiving event loop thread(s) (peerd) or the asyncio thread (aiortc).
    var cpuLoopNs: Int64?
    /// CPU time of the whole receiver process.
    var cpuProcessNs: Int64?
    var rss: Int64?
    /// RTP packets received so far over all connections.
    var packets: Int?
    var connected: Int?
    /// Packets received per connection id ("0", "1", ...).
    var perStream: [String: Int]?
    var files: Int?
    var bytes: Int64?
    /// Median first-audio time after connected (ms), informative.
    var firstAudioMs: Double?

    init(op: String) { self.op = op }

    func encodedLine() -> Data {
        var data = (try? JSONEncoder().encode(self)) ?? Data("{\"op\":\"error\"}".utf8)
        data.append(0x0A)
        return data
    }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int64 {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int64(fields[1]) else { return 0 }
    return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
}

/// CPU time (user + system) of the calling thread.
func threadCPUNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// CPU time (user + system) of the whole process.
func processCPUNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Raises the open-file limit to the hard limit (one UDP socket per connection).
func raiseFileLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// Writes lines to a file descriptor under a lock (stdout of the receiver, stdin of the child).
final class LineWriter: Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init(handle: FileHandle) { self.handle = handle }

    func send(_ message: LoadMessage) {
        let data = message.encodedLine()
        lock.lock()
        defer { lock.unlock() }
        try? handle.write(contentsOf: data)
    }
}

/// Reads newline-separated JSON messages from a file descriptor on a dedicated thread.
func startLineReader(fd: Int32, onMessage: @escaping @Sendable (LoadMessage) -> Void, onEOF: @escaping @Sendable () -> Void) {
    let thread = Thread {
        guard let file = fdopen(fd, "r") else { onEOF(); return }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        let decoder = JSONDecoder()
        while true {
            let count = getline(&line, &capacity, file)
            if count < 0 { break }
            guard let line, count > 1 else { continue }
            let data = Data(bytes: line, count: count)
            if let message = try? decoder.decode(LoadMessage.self, from: data) { onMessage(message) }
        }
        free(line)
        onEOF()
    }
    thread.stackSize = 1 << 20
    thread.start()
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

func formatted(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

