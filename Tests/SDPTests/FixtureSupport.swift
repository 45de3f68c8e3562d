import Foundation
import Testing
import SDP

/// Locates Fixtures/sdp by walking up from this file.
enum SDPFixtures {
    static let directory: URL? = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            let candidate = url.appendingPathComponent("Fixtures/sdp")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            url = url.deletingLastPathComponent()
        }
        return nil
    }()

    /// Every `*.sdp` fixture file name, sorted.
    static func names() throws -> [String] {
        let directory = try #require(directory, "Fixtures/sdp not found above \(#filePath)")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sdp") }.sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        let directory = try #require(directory, "Fixtures/sdp not found")
        return [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    static func text(_ name: String) throws -> String {
        String(decoding: try bytes(name), as: UTF8.self)
    }

    /// Text with every line end turned into CRLF.
    static func crlf(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
    }

    static func parse(_ name: String) throws -> SessionDescription {
        try SessionDescription(parsing: try text(name))
    }
}

/// SplitMix64: a small deterministic PRNG for the mutation tests.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(max(bound, 1)))
    }
}
