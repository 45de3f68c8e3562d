import Foundation

/// Appends one JSON object per line to `DIR/events.jsonl`: joins, leaves, mic toggles, speaking
/// start/stop and connection changes, each with a wallclock time.
final class EventsLog {
    private let handle: FileHandle?
    private let formatter: ISO8601DateFormatter

    init(directory: String?) {
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let directory else { handle = nil; return }
        let path = (directory as NSString).appendingPathComponent("events.jsonl")
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    func append(_ event: String, participant: String, fields: [String: String] = [:]) {
        guard let handle else { return }
        var object: [String: String] = fields
        object["time"] = formatter.string(from: Date())
        object["event"] = event
        object["participant"] = participant
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }

    func close() { try? handle?.close() }
}
