/// CRC-32 as used by STUN FINGERPRINT (ISO-HDLC / IEEE 802.3: reflected, polynomial 0xEDB88320,
/// initial value and final xor 0xFFFFFFFF).
public enum CRC32 {
    /// Slicing-by-8 tables: `tables[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
    @usableFromInline static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[index] = crc
        }
        for index in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    @inlinable public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        // The running CRC is the closure's own local (captured, it would go through memory every step).
        tables.withUnsafeBufferPointer { t in
            var crc: UInt32 = 0xFFFF_FFFF
            var index = 0
            let count = bytes.count
            while index + 8 <= count {
                let low = bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian ^ crc
                let high = bytes.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self).littleEndian
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
            return crc ^ 0xFFFF_FFFF
        }
    }

    @inlinable public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// The Ogg page CRC (RFC 3533): polynomial 0x04C11DB7, not reflected, initial value 0, no final xor.
public enum OggCRC {
    /// `tables[k][i]`: the CRC of byte i followed by k zero bytes (slicing by 8: eight bytes per step).
    @usableFromInline static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index) << 24
            for _ in 0..<8 { crc = (crc & 0x8000_0000) != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
            tables[index] = crc
        }
        for k in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(k - 1) * 256 + index]
                tables[k * 256 + index] = (previous << 8) ^ tables[Int(previous >> 24)]
            }
        }
        return tables
    }()

    @inlinable public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        // The running CRC is the closure's own local (captured, it would go through memory every step).
        tables.withUnsafeBufferPointer { t in
            var crc = crc
            var index = 0
            let count = bytes.count
            // A page body is kilobytes: eight bytes per step (the first four take the running CRC).
            while index + 8 <= count {
                let high = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ crc
                let low = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(high >> 24)] ^ t[6 * 256 + Int((high >> 16) & 0xFF)]
                    ^ t[5 * 256 + Int((high >> 8) & 0xFF)] ^ t[4 * 256 + Int(high & 0xFF)]
                    ^ t[3 * 256 + Int(low >> 24)] ^ t[2 * 256 + Int((low >> 16) & 0xFF)]
                    ^ t[1 * 256 + Int((low >> 8) & 0xFF)] ^ t[Int(low & 0xFF)]
                index += 8
            }
            while index < count {
                crc = (crc << 8) ^ t[Int(((crc >> 24) ^ UInt32(bytes[index])) & 0xFF)]
                index += 1
            }
            return crc
        }
    }

    /// One byte at a time (the definition; `update` must agree with it).
    static func updateBytewise(_ crc: UInt32, _ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = crc
        for byte in bytes { crc = (crc << 8) ^ tables[Int(((crc >> 24) ^ UInt32(byte)) & 0xFF)] }
        return crc
    }

    @inlinable public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }
}
