// G.711 µ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8), ITU-T G.711 segment coding.

/// G.711 companding between 16-bit linear PCM and 8-bit µ-law / A-law codes.
public enum G711 {
    /// µ-law (PCMU) code for one linear sample (14-bit magnitude, bias 0x84, clip at 8159).
    @inlinable public static func encodeMuLaw(_ sample: Int16) -> UInt8 {
        var value = Int(sample) >> 2
        let mask: Int
        if value < 0 {
            value = -value
            mask = 0x7F
        } else {
            mask = 0xFF
        }
        value = min(value, 8159) + (0x84 >> 2)
        var segment = 0
        while segment < 8 && value > (0x40 << segment) - 1 { segment += 1 }
        guard segment < 8 else { return UInt8(0x7F ^ mask) }
        let code = (segment << 4) | ((value >> (segment + 1)) & 0x0F)
        return UInt8(code ^ mask)
    }

    /// Linear sample for one µ-law (PCMU) code.
    @inlinable public static func decodeMuLaw(_ code: UInt8) -> Int16 {
        let inverted = Int(~code)
        var t = ((inverted & 0x0F) << 3) + 0x84
        t <<= (inverted & 0x70) >> 4
        return Int16(inverted & 0x80 != 0 ? 0x84 - t : t - 0x84)
    }

    /// A-law (PCMA) code for one linear sample (13-bit, even bits inverted).
    @inlinable public static func encodeALaw(_ sample: Int16) -> UInt8 {
        var value = Int(sample) >> 3
        let mask: Int
        if value >= 0 {
            mask = 0xD5
        } else {
            mask = 0x55
            value = -value - 1
        }
        var segment = 0
        while segment < 8 && value > (0x20 << segment) - 1 { segment += 1 }
        guard segment < 8 else { return UInt8(0x7F ^ mask) }
        var code = segment << 4
        code |= segment < 2 ? (value >> 1) & 0x0F : (value >> segment) & 0x0F
        return UInt8(code ^ mask)
    }

    /// Linear sample for one A-law (PCMA) code.
    @inlinable public static func decodeALaw(_ code: UInt8) -> Int16 {
        let value = Int(code ^ 0x55)
        var t = (value & 0x0F) << 4
        let segment = (value & 0x70) >> 4
        switch segment {
        case 0: t += 8
        case 1: t += 0x108
        default: t = (t + 0x108) << (segment - 1)
        }
        return Int16(value & 0x80 != 0 ? t : -t)
    }

    /// Encodes PCM to µ-law (PCMU) codes.
    public static func encodeMuLaw(_ samples: [Int16]) -> [UInt8] { samples.map { encodeMuLaw($0) } }
    /// Decodes µ-law (PCMU) codes to PCM.
    public static func decodeMuLaw(_ codes: [UInt8]) -> [Int16] { codes.map { decodeMuLaw($0) } }
    /// Encodes PCM to A-law (PCMA) codes.
    public static func encodeALaw(_ samples: [Int16]) -> [UInt8] { samples.map { encodeALaw($0) } }
    /// Decodes A-law (PCMA) codes to PCM.
    public static func decodeALaw(_ codes: [UInt8]) -> [Int16] { codes.map { decodeALaw($0) } }
}
