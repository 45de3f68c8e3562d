/// Byte-level helpers for tokenizing SDP text. They work on UTF-8 so that splitting never
/// depends on grapheme clustering.
enum SDPText {
    static let space = UInt8(ascii: " ")
    static let colon = UInt8(ascii: ":")
    static let slash = UInt8(ascii: "/")
    static let equals = UInt8(ascii: "=")
    static let semicolon = UInt8(ascii: ";")

    /// Splits at every `separator`, keeping empty pieces.
    static func split(_ text: String, _ separator: UInt8) -> [String] {
        var pieces: [String] = []
        var current: [UInt8] = []
        for byte in text.utf8 {
            if byte == separator {
                pieces.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(byte)
            }
        }
        pieces.append(String(decoding: current, as: UTF8.self))
        return pieces
    }

    /// Splits at spaces; nil if any piece is empty (double, leading or trailing space).
    static func tokens(_ text: String) -> [String]? {
        let pieces = split(text, space)
        return pieces.contains(where: \.isEmpty) ? nil : pieces
    }

    /// Splits at the first `separator`; the second part is nil when there is none.
    static func splitOnce(_ text: String, _ separator: UInt8) -> (String, String?) {
        let bytes = text.utf8
        guard let index = bytes.firstIndex(of: separator) else { return (text, nil) }
        let head = String(decoding: bytes[bytes.startIndex..<index], as: UTF8.self)
        let tail = String(decoding: bytes[bytes.index(after: index)...], as: UTF8.self)
        return (head, tail)
    }

    /// Removes leading and trailing spaces and tabs.
    static func trimmed(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == space || bytes[start] == 9 { start += 1 }
        while end > start, bytes[end - 1] == space || bytes[end - 1] == 9 { end -= 1 }
        if start == 0 && end == bytes.count { return text }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// Parses a non-empty run of ASCII digits (no sign, no spaces) without overflow.
    static func number<T: FixedWidthInteger & UnsignedInteger>(_ text: String, as type: T.Type = T.self) -> T? {
        guard let value = uint64(text) else { return nil }
        return T(exactly: value)
    }

    static func uint64(_ text: String) -> UInt64? {
        var value: UInt64 = 0
        var sawDigit = false
        for byte in text.utf8 {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(UInt64(byte &- 0x30))
            if overflow1 || overflow2 { return nil }
            value = added
            sawDigit = true
        }
        return sawDigit ? value : nil
    }

    /// True if `text` is a non-empty run of ASCII digits.
    static func isDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }

    static func equalsIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where lower(p) != lower(q) { return false }
        return true
    }

    static func lower(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte + 32 : byte
    }
}
