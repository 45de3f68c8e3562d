import Testing
import SDP

@Suite("SDP mutation and truncation")
struct MutationTests {
    /// Parses `bytes`; if that succeeds, checks serialize → parse gives the same value and the
    /// same text again. Returns whether it parsed.
    @discardableResult
    static func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let lineCount = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count
        do {
            let parsed = try SessionDescription(parsing: bytes)
            let text = parsed.serialized()
            do {
                let again = try SessionDescription(parsing: text)
                #expect(again == parsed, sourceLocation: sourceLocation)
                #expect(again.serialized() == text, sourceLocation: sourceLocation)
            } catch {
                Issue.record("re-parse of serialized output failed: \(error)\n\(text)", sourceLocation: sourceLocation)
            }
            return true
        } catch {
            if let line = error.line {
                #expect(line >= 1 && line <= lineCount + 1, "line \(line) of \(lineCount)", sourceLocation: sourceLocation)
            }
            return false
        }
    }

    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    static func join(_ lines: [[UInt8]]) -> [UInt8] {
        lines.flatMap { $0 + [0x0A] }
    }

    static let alphabet = Array("0123456789 :/=;*-.abcmotsvAZ\r\n\t{}+".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + rng.below(3)) {
            switch rng.below(7) {
            case 0:
                var lines = lines(bytes)
                if !lines.isEmpty { lines.remove(at: rng.below(lines.count)) }
                bytes = join(lines)
            case 1:
                var lines = lines(bytes)
                if !lines.isEmpty {
                    let index = rng.below(lines.count)
                    lines.insert(lines[index], at: rng.below(lines.count + 1))
                }
                bytes = join(lines)
            case 2:
                if !bytes.isEmpty { bytes[rng.below(bytes.count)] = alphabet[rng.below(alphabet.count)] }
            case 3:
                if !bytes.isEmpty { bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8)) }
            case 4:
                bytes.removeLast(rng.below(bytes.count + 1))
            case 5:
                bytes.insert(alphabet[rng.below(alphabet.count)], at: rng.below(bytes.count + 1))
            default:
                var lines = lines(bytes)
                if lines.count > 1 { lines.swapAt(rng.below(lines.count), rng.below(lines.count)) }
                bytes = join(lines)
            }
        }
        return bytes
    }

    @Test func seededMutationsOfAllFixtures() throws {
        var rng = SplitMix64(state: 0x5D9_2026)
        var parsed = 0
        var rejected = 0
        for name in try SDPFixtures.names() {
            let original = try SDPFixtures.bytes(name)
            for _ in 0..<250 {
                if Self.check(Self.mutate(original, &rng)) { parsed += 1 } else { rejected += 1 }
            }
        }
        #expect(parsed + rejected >= 4000)
        #expect(parsed > 200, "too few mutants parsed (\(parsed)) for the round-trip check to mean much")
        #expect(rejected > 200, "too few mutants rejected (\(rejected))")
    }

    @Test func truncationAtEveryLength() throws {
        let bytes = try SDPFixtures.bytes("chromium156-offer-to-aiortc1.16-full.sdp")
        var parsedPrefixes = 0
        for length in 0...bytes.count where Self.check(Array(bytes.prefix(length))) {
            parsedPrefixes += 1
        }
        // Every cut after "t=0 0\r\n" that ends on a complete line (or inside a free-form one) parses.
        #expect(parsedPrefixes > 40)
        #expect(Self.check(bytes))
    }

    @Test func truncationAroundLineEnds() throws {
        for name in try SDPFixtures.names() {
            let bytes = try SDPFixtures.bytes(name)
            var parsedPrefixes = 0
            for (index, byte) in bytes.enumerated() where byte == 0x0A {
                for length in max(0, index - 1)...min(bytes.count, index + 2)
                where Self.check(Array(bytes.prefix(length))) {
                    parsedPrefixes += 1
                }
            }
            #expect(parsedPrefixes > 20, "\(name): only \(parsedPrefixes) prefixes parsed")
        }
    }
}
