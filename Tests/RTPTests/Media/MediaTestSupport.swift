// Shared helpers for the media tests: a seeded PRNG, temporary directories and external tools.
import Foundation
import Testing

/// SplitMix64: a small deterministic PRNG for mutation loops.
struct MediaSplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A mutated copy of `bytes`: bit flip, byte set, truncation, insertion or deletion.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        let rounds = Int.random(in: 1...4, using: &self)
        for _ in 0..<rounds {
            switch Int.random(in: 0..<5, using: &self) {
            case 0 where !out.isEmpty:
                let i = Int.random(in: 0..<out.count, using: &self)
                out[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &self)
            case 1 where !out.isEmpty:
                let i = Int.random(in: 0..<out.count, using: &self)
                out[i] = [0, 0xFF, 0x7F, 0x80, UInt8.random(in: 0...255, using: &self)][Int.random(in: 0..<5, using: &self)]
            case 2:
                out = Array(out.prefix(Int.random(in: 0...out.count, using: &self)))
            case 3:
                let i = Int.random(in: 0...out.count, using: &self)
                out.insert(contentsOf: (0..<Int.random(in: 1...8, using: &self)).map { _ in UInt8.random(in: 0...255, using: &self) }, at: i)
            default:
                if !out.isEmpty {
                    let i = Int.random(in: 0..<out.count, using: &self)
                    out.remove(at: i)
                }
            }
        }
        return out
    }
}

/// A unique directory under /tmp, removed by `remove()`.
struct MediaTempDirectory {
    let url: URL
    init() throws {
        url = URL(fileURLWithPath: "/tmp").appendingPathComponent("peerd-media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Result of running an external tool.
struct MediaToolResult {
    var status: Int32
    var output: String
}

enum MediaTools {
    /// The absolute path of `name` on PATH, or nil.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `name` with `arguments`, merging stdout and stderr. Records a test failure with an
    /// install hint and returns nil if the tool is missing.
    static func run(_ name: String, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> MediaToolResult? {
        guard let executable = find(name) else {
            Issue.record("\(name) not found on PATH: install it (apt-get install -y opus-tools ffmpeg)",
                         sourceLocation: sourceLocation)
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return MediaToolResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}

func readFileBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFileBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}
