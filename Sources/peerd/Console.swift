import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// How peerd writes its log lines.
enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-12-03T09:00:00.123Z info peerd: message key=value`
    case plain
    /// One JSON object per line: `{"time":…,"level":…,"label":…,"message":…,"metadata":{…}}`.
    case json
}

/// The terminal: log lines on standard error and, on a TTY, one live status line kept below them
/// (cleared before each log line and drawn again after it).
///
/// Thread-safety: every member is guarded by `lock` (log handlers run on any thread), which is
/// why the `@unchecked Sendable` is safe.
final class Console: @unchecked Sendable {
    static let shared = Console(isTTY: isatty(STDERR_FILENO) == 1)

    let isTTY: Bool
    private let lock = NSLock()
    private var status: String?

    init(isTTY: Bool) { self.isTTY = isTTY }

    func log(_ line: String) {
        lock.withLock {
            var text = ""
            if status != nil { text += "\r\u{1B}[2K" }
            text += line + "\n"
            if let status { text += status }
            write(text)
        }
    }

    /// Replaces the status line (TTY only; ignored otherwise).
    func setStatus(_ line: String?) {
        guard isTTY else { return }
        lock.withLock {
            let width = Self.terminalWidth()
            let clipped = line.map { $0.count > width ? String($0.prefix(max(1, width - 1))) + "…" : $0 }
            write("\r\u{1B}[2K" + (clipped ?? ""))
            status = clipped
        }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private static func terminalWidth() -> Int {
        var size = winsize()
        let result = withUnsafeMutablePointer(to: &size) { ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), $0) }
        if result == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 120
    }
}

/// A swift-log handler writing plain or JSON lines through the `Console`.
struct ConsoleLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, format: LogFormat, level: Logger.Level, console: Console = .shared) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.console = console
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        console.log(Self.format(format, label: label, level: event.level, message: "\(event.message)", metadata: merged, date: Date()))
    }

    // ISO8601DateFormatter is thread-safe for formatting (Foundation formatters are, since macOS
    // 10.9 and in swift-corelibs-foundation); it is never mutated after this initializer.
    nonisolated(unsafe) static let timeFormatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()

    static func format(_ format: LogFormat, label: String, level: Logger.Level, message: String, metadata: Logger.Metadata, date: Date) -> String {
        let time = timeFormatter.string(from: date)
        switch format {
        case .plain:
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(time) \(level) \(label): \(message)\(fields.isEmpty ? "" : " " + fields)"
        case .json:
            var object: [String: Any] = ["time": time, "level": level.rawValue, "label": label, "message": message]
            if !metadata.isEmpty { object["metadata"] = metadata.mapValues { "\($0)" } }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// The live status line: who is in the room, each connection's state, level and speaking.
enum StatusLine {
    static func render(room: String, muted: Bool, summaries: [PeerSummary]) -> String {
        let present = summaries.filter { $0.phase != "closed" }
        var parts = ["\(room): \(present.count) participant\(present.count == 1 ? "" : "s")\(muted ? " · muted" : "")"]
        for peer in present {
            let level = peer.lastLevel >= 127 ? "   " : meter(dBov: peer.lastLevel)
            parts.append("\(peer.id) \(peer.phase)/\(peer.iceState) \(level)\(peer.speaking ? " speaking" : "")")
        }
        return parts.joined(separator: " | ")
    }

    /// Three-step level meter: -20 dBov and louder is full.
    static func meter(dBov: Int) -> String {
        let bars = dBov <= 20 ? 3 : dBov <= 40 ? 2 : dBov <= 60 ? 1 : 0
        return String(repeating: "▮", count: bars) + String(repeating: "▯", count: 3 - bars)
    }
}
