/// The memory a connection's next received packet will touch: its objects and buffers, as address
/// ranges a receive loop prefetches before it handles the packet.
///
/// With hundreds of connections on one port, a connection's state is cold each time its next packet
/// arrives (20 ms later, after every other connection ran): handling the packet walks a chain of
/// objects (port attachment, driver, core, SRTP, receive stream, recorder, writer, buffers), and each
/// first touch is a cache miss that waits on the one before. A port that reads a batch of datagrams
/// first prefetches the hints of every connection in the batch, so those misses overlap, then
/// handles the datagrams in order.
///
/// Only hints: a stale address (an object freed or a buffer reallocated since) costs a wasted
/// prefetch and nothing else, since a prefetch never faults. The owner refreshes them now and then.
public struct PrefetchHints: Sendable, Equatable {
    /// Ranges kept at most; later additions are ignored.
    public static let capacity = 24
    /// Cache lines prefetched at most per range.
    public static let maximumLines = 16
    public static let lineSize = 64

    /// How many ranges are set.
    public private(set) var count = 0
    /// Each range as its first line's address with the number of lines (1...63) in the low 6 bits.
    /// (Visible to inlined code: `forEach` runs per received datagram, in the port's module, and
    /// called instead of inlined it took a 200-byte copy of the hints each time.)
    @usableFromInline private(set) var entries = InlineArray<24, UInt>(repeating: 0)

    public init() {}

    /// A range of `bytes` bytes from `address` (at most `maximumLines` lines).
    public mutating func add(address: UnsafeRawPointer, bytes: Int) {
        guard count < Self.capacity, bytes > 0 else { return }
        let start = UInt(bitPattern: Int(bitPattern: address))
        let firstLine = start & ~UInt(Self.lineSize - 1)
        let end = start + UInt(bytes)
        let lines = min(Self.maximumLines, Int((end - firstLine + UInt(Self.lineSize) - 1) / UInt(Self.lineSize)))
        entries[count] = firstLine | UInt(lines)
        count += 1
    }

    /// An object's first `bytes` bytes, from its header (the reference count every retain writes).
    /// (Past the object's end is harmless: another heap block's lines, fetched for nothing.)
    public mutating func add(_ object: AnyObject, bytes: Int = 256) {
        add(address: UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()), bytes: bytes)
    }

    /// An array's buffer: its header (reference count, count, capacity) and up to `bytes` bytes of
    /// elements (0: the header only).
    public mutating func add<Element>(_ array: [Element], bytes: Int = 256) {
        guard array.capacity > 0 else { return }  // the shared empty-array storage: nothing to prefetch
        array.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            // The elements follow the array object's 32-byte header (64-bit platforms).
            add(address: base - 32, bytes: 32 + min(bytes, raw.count))
        }
    }

    /// Calls `body` with each range: its first line's address and its number of lines.
    @inlinable @inline(__always)
    public func forEach(_ body: (UnsafeRawPointer, Int) -> Void) {
        // Through a span: subscripting the inline array itself copied all of it for each element.
        let entries = entries.span
        for index in 0..<count {
            let entry = entries[unchecked: index]
            let lines = Int(entry & UInt(Self.lineSize - 1))
            guard let address = UnsafeRawPointer(bitPattern: entry & ~UInt(Self.lineSize - 1)) else { continue }
            body(address, lines)
        }
    }

    public static func == (lhs: PrefetchHints, rhs: PrefetchHints) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for index in 0..<lhs.count where lhs.entries[index] != rhs.entries[index] { return false }
        return true
    }
}
