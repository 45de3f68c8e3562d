import Foundation

/// Appends one JSON object per line to `DIR/events.jsonl`: joins, leaves, mic toggles, speaking
/// start/stop and connection changes, each with a wallclock time.
///
/// A failed write (disk full, directory removed) is counted, never fatal; nothing is written after
/// `close()`. A lock makes it safe from the bot's loop and from tasks alike.
final class EventsLog {
    private var handle: FileHandle?
    private let formatter: ISO8601DateFormatter
    private let lock = NSLock()
    /// Lines that could not be written.
    private(set) var failedWrites = 0

    init(directory: String?) {
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let directory else { handle = nil; return }
        let path = (directory as NSString).appendingPathComponent("events.jsonl")
        // A file that cannot be created leaves `handle` nil and no events are written (the bot checks at start that DIR is writable).
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    func append(_ event: String, participant: String, fields: [String: String] = [:]) {
        lock.lock()
        defer { lock.unlock() }
        guard let handle else { return }
        var object: [String: String] = fields
        object["time"] = formatter.string(from: Date())
        object["event"] = event
        object["participant"] = participant
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        do { try handle.write(contentsOf: data + Data("\n".utf8)) } catch { failedWrites += 1 }
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        try? handle?.close()
        handle = nil
    }
}
