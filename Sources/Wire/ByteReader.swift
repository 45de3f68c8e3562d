/// A bounds-checked, big-endian reader over borrowed bytes.
///
/// Every read returns `nil` instead of reading past the end, so each codec can turn a short
/// buffer into its own typed error. It never copies: `bytes(_:)` returns a view into the
/// same buffer. Use it inside `withUnsafeBytes` on the caller's storage.
public struct ByteReader {
    public let buffer: UnsafeRawBufferPointer
    public var offset: Int

    @inlinable public init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    @inlinable public var remaining: Int { buffer.count - offset }
    @inlinable public var isAtEnd: Bool { offset >= buffer.count }

    @inlinable public mutating func uint8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return buffer[offset]
    }

    @inlinable public mutating func uint16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1])
    }

    @inlinable public mutating func uint24() -> UInt32? {
        guard remaining >= 3 else { return nil }
        defer { offset += 3 }
        return UInt32(buffer[offset]) << 16 | UInt32(buffer[offset + 1]) << 8 | UInt32(buffer[offset + 2])
    }

    @inlinable public mutating func uint32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self).bigEndian
    }

    @inlinable public mutating func uint64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self).bigEndian
    }

    /// A view of the next `count` bytes (no copy), or nil if fewer remain.
    @inlinable public mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
    }

    /// Copies the next `count` bytes into an array, or nil if fewer remain.
    @inlinable public mutating func array(_ count: Int) -> [UInt8]? {
        guard let view = bytes(count) else { return nil }
        return [UInt8](view)
    }

    @inlinable @discardableResult public mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }
}

extension Array where Element == UInt8 {
    @inlinable public mutating func appendBigEndian(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable public mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable public mutating func appendBigEndian(_ value: UInt64) {
        appendBigEndian(UInt32(truncatingIfNeeded: value >> 32))
        appendBigEndian(UInt32(truncatingIfNeeded: value))
    }

    @inlinable public mutating func appendLittleEndian(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    @inlinable public mutating func appendLittleEndian(_ value: UInt32) {
        appendLittleEndian(UInt16(truncatingIfNeeded: value))
        appendLittleEndian(UInt16(truncatingIfNeeded: value >> 16))
    }

    @inlinable public mutating func appendLittleEndian(_ value: UInt64) {
        appendLittleEndian(UInt32(truncatingIfNeeded: value))
        appendLittleEndian(UInt32(truncatingIfNeeded: value >> 32))
    }

    /// Overwrites two bytes at `index` with `value`, big-endian.
    @inlinable public mutating func storeBigEndian(_ value: UInt16, at index: Int) {
        self[index] = UInt8(truncatingIfNeeded: value >> 8)
        self[index + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// Overwrites four bytes at `index` with `value`, big-endian.
    @inlinable public mutating func storeBigEndian(_ value: UInt32, at index: Int) {
        self[index] = UInt8(truncatingIfNeeded: value >> 24)
        self[index + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[index + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[index + 3] = UInt8(truncatingIfNeeded: value)
    }
}
