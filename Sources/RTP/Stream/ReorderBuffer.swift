// Restores RTP packet order: drops duplicates and hopelessly late packets, reports holes.
import Wire

/// What a `ReorderBuffer` delivers, in sequence order.
public enum ReorderOutput<Element: Sendable>: Sendable {
    /// The next packet in order.
    case packet(sequenceNumber: SequenceNumber, element: Element)
    /// Packets that did not arrive in time: `count` sequence numbers starting at `first`.
    case hole(first: SequenceNumber, count: Int)
    /// The sequence restarted (a jump beyond `maxJump`); what follows is a new run.
    case discontinuity
}

/// What `ReorderBuffer.insert` did with a packet.
public enum ReorderInsertResult: Sendable, Equatable {
    case buffered
    /// Already buffered or delivered.
    case duplicate
    /// Older than what was already delivered (its slot was reported as a hole): dropped.
    case tooLate
    /// A jump larger than `maxJump`: the buffer was flushed and restarted at this packet.
    case restarted
}

/// Counters of a `ReorderBuffer`.
public struct ReorderStatistics: Sendable, Equatable {
    public var inserted = 0
    public var delivered = 0
    public var duplicates = 0
    public var tooLate = 0
    public var holes = 0
    public var missingPackets = 0
    public var restarts = 0
    /// Packets that arrived after a later one (delivered in order anyway).
    public var reordered = 0

    public init() {}
}

/// A reorder buffer indexed by RTP sequence number. Sans-IO: `insert` with the arrival time,
/// then `drain(now:)` (or `next(now:)` one output at a time, without allocating) to take what
/// is ready. The head waits for a missing packet at most `maxWait` after a later packet
/// arrived, or until `capacity` packets are held.
///
/// Storage is a ring of slots indexed by the extended sequence number modulo its size (a power
/// of two that grows on demand up to `capacity` rounded up), so in-order packets cost no
/// hashing and no allocation. A packet too far ahead to fit the ring (but within `maxJump`)
/// cannot be waited for behind: everything held is delivered at once, the run up to it is
/// reported as one hole, and it becomes the new head. A 1024-bit window of recently passed
/// sequence numbers tells duplicates of delivered packets from packets that arrive too late.
public struct ReorderBuffer<Element: Sendable>: Sendable {
    public let maxWait: Duration
    public let capacity: Int
    /// A sequence jump larger than this (forward or back) restarts the buffer.
    public let maxJump: Int
    public var statistics: ReorderStatistics { _statistics }
    /// Packets currently held.
    public var count: Int { _count }
    @usableFromInline var _statistics = ReorderStatistics()
    @usableFromInline var _count = 0

    @usableFromInline
    struct Slot: Sendable {
        @usableFromInline var element: Element?
        @usableFromInline var arrival: MonotonicTime
        @inlinable init(element: Element?, arrival: MonotonicTime) {
            self.element = element
            self.arrival = arrival
        }
    }

    /// Ring size bound: `capacity` rounded up to a power of two.
    @usableFromInline let maxRingSize: Int
    @usableFromInline var ring: [Slot] = []
    @usableFromInline var mask = 0
    @usableFromInline var unwrapper = SequenceUnwrapper()
    /// Extended sequence number expected next (the head); nil before the first packet.
    @usableFromInline var nextExpected: Int64?
    @usableFromInline var highestInserted: Int64 = .min
    /// Bit i set: sequence number ≡ i (mod 1024), below `nextExpected` and at most 1024 behind
    /// it, was delivered (clear: reported missing).
    @usableFromInline var delivered = [UInt64](repeating: 0, count: 16)
    /// Outputs produced by `insert` (flushes, restarts) waiting for the next drain.
    @usableFromInline var pending: [ReorderOutput<Element>] = []
    @usableFromInline var pendingIndex = 0

    @inlinable public init(maxWait: Duration = .milliseconds(60), capacity: Int = 128, maxJump: Int = 3000) {
        self.maxWait = maxWait
        self.capacity = max(1, capacity)
        self.maxJump = max(1, maxJump)
        var size = 1
        while size < self.capacity { size <<= 1 }
        maxRingSize = max(2, size)
    }

    /// Adds a packet.
    @inlinable @discardableResult
    public mutating func insert(_ element: Element, sequenceNumber: SequenceNumber, arrival: MonotonicTime) -> ReorderInsertResult {
        _statistics.inserted += 1
        var extended = unwrapper.peek(sequenceNumber)
        var result = ReorderInsertResult.buffered
        if let expected = nextExpected {
            let reference = max(expected, highestInserted)
            if extended - reference > Int64(maxJump) || expected - extended > Int64(maxJump) {
                flushAll()
                pending.append(.discontinuity)
                _statistics.restarts += 1
                unwrapper = SequenceUnwrapper()
                extended = unwrapper.peek(sequenceNumber)
                nextExpected = extended
                highestInserted = .min
                clearDelivered()
                result = .restarted
            } else if extended < expected {
                if expected - extended <= 1024 && isDelivered(extended) {
                    _statistics.duplicates += 1
                    return .duplicate
                }
                _statistics.tooLate += 1
                return .tooLate
            } else if extended - expected < Int64(ring.count), ring[index(extended)].element != nil {
                _statistics.duplicates += 1
                return .duplicate
            }
        } else {
            nextExpected = extended
        }
        _ = unwrapper.unwrap(sequenceNumber)
        if extended < highestInserted { _statistics.reordered += 1 }
        makeRoom(for: extended)
        highestInserted = max(highestInserted, extended)
        ring[index(extended)] = Slot(element: element, arrival: arrival)
        _count += 1
        return result
    }

    /// Takes the next output ready at `now`: a pending flush or restart marker, the in-order
    /// head packet, or a hole whose wait expired; nil when nothing is ready. Does not allocate.
    @inlinable public mutating func next(now: MonotonicTime) -> ReorderOutput<Element>? {
        if pendingIndex < pending.count {
            let output = pending[pendingIndex]
            pendingIndex += 1
            if pendingIndex == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingIndex = 0
            }
            return output
        }
        guard _count > 0, let expected = nextExpected else { return nil }
        let head = index(expected)
        if let element = ring[head].element {
            ring[head].element = nil
            _count -= 1
            markPassed(expected, delivered: true)
            nextExpected = expected + 1
            return .packet(sequenceNumber: sequenceNumber(expected), element: element)
        }
        // Head missing: give up on it when the oldest held packet waited long enough or we are full.
        var oldestArrival = MonotonicTime(nanoseconds: .max)
        var lowest = Int64.max
        var key = highestInserted
        while key > expected {
            let slot = ring[index(key)]
            if slot.element != nil {
                lowest = key
                if slot.arrival < oldestArrival { oldestArrival = slot.arrival }
            }
            key -= 1
        }
        guard lowest != .max, now - oldestArrival >= maxWait || _count >= capacity else { return nil }
        let missing = Int(lowest - expected)
        skip(from: expected, to: lowest)
        return .hole(first: sequenceNumber(expected), count: missing)
    }

    /// Takes everything ready at `now`: in-order packets, and holes whose wait expired.
    @inlinable public mutating func drain(now: MonotonicTime) -> [ReorderOutput<Element>] {
        var out: [ReorderOutput<Element>] = []
        while let output = next(now: now) { out.append(output) }
        return out
    }

    /// Delivers everything held, reporting holes between, regardless of time (e.g. at the end).
    @inlinable public mutating func flush() -> [ReorderOutput<Element>] {
        flushAll()
        var out: [ReorderOutput<Element>] = []
        while pendingIndex < pending.count {
            out.append(pending[pendingIndex])
            pendingIndex += 1
        }
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
        return out
    }

    /// Forgets all state (e.g. after an SSRC change).
    @inlinable public mutating func reset() {
        for i in ring.indices { ring[i].element = nil }
        _count = 0
        pending.removeAll()
        pendingIndex = 0
        nextExpected = nil
        unwrapper = SequenceUnwrapper()
        highestInserted = .min
        clearDelivered()
    }

    // MARK: Ring

    @inlinable func index(_ extended: Int64) -> Int { Int(truncatingIfNeeded: extended) & mask }

    /// Makes `ring` hold `extended` (≥ head): grows it, or flushes when it is too far ahead.
    @inlinable mutating func makeRoom(for extended: Int64) {
        guard let expected = nextExpected else { return }
        let span = extended - expected + 1
        if span <= Int64(ring.count) { return }
        if span <= Int64(maxRingSize) {
            var size = max(16, ring.count)
            while Int64(size) < span { size <<= 1 }
            grow(to: min(size, maxRingSize))
            return
        }
        // Too far ahead to wait behind: deliver what is held, report the run up to it as one hole.
        if ring.count < maxRingSize { grow(to: maxRingSize) }
        flushAll()
        let head = nextExpected ?? extended
        if extended > head {
            pending.append(.hole(first: sequenceNumber(head), count: Int(extended - head)))
            skip(from: head, to: extended)
        }
    }

    @inlinable mutating func grow(to size: Int) {
        var newRing = [Slot](repeating: Slot(element: nil, arrival: .zero), count: size)
        if _count > 0, let expected = nextExpected {
            var key = expected
            while key <= highestInserted {
                let slot = ring[index(key)]
                if slot.element != nil { newRing[Int(truncatingIfNeeded: key) & (size - 1)] = slot }
                key += 1
            }
        }
        ring = newRing
        mask = size - 1
    }

    /// Moves the head from `from` to `to`, marking the numbers between as missing.
    @inlinable mutating func skip(from: Int64, to: Int64) {
        _statistics.holes += from < to ? 1 : 0
        _statistics.missingPackets += Int(to - from)
        if to - from >= 1024 {
            clearDelivered()
        } else {
            var key = from
            while key < to { markPassed(key, delivered: false); key += 1 }
        }
        nextExpected = to
    }

    /// Moves every held packet to `pending`, reporting holes between.
    @inlinable mutating func flushAll() {
        guard let start = nextExpected else { return }
        var expected = start
        if _count > 0 {
            var key = start
            while key <= highestInserted, _count > 0 {
                let i = index(key)
                if let element = ring[i].element {
                    if key > expected {
                        pending.append(.hole(first: sequenceNumber(expected), count: Int(key - expected)))
                        skip(from: expected, to: key)
                    }
                    ring[i].element = nil
                    _count -= 1
                    pending.append(.packet(sequenceNumber: sequenceNumber(key), element: element))
                    markPassed(key, delivered: true)
                    expected = key + 1
                }
                key += 1
            }
        }
        nextExpected = expected
    }

    // MARK: Delivered window

    @inlinable mutating func markPassed(_ extended: Int64, delivered wasDelivered: Bool) {
        let bit = Int(truncatingIfNeeded: extended) & 1023
        if wasDelivered {
            _statistics.delivered += 1
            delivered[bit >> 6] |= 1 << UInt64(bit & 63)
        } else {
            delivered[bit >> 6] &= ~(1 << UInt64(bit & 63))
        }
    }

    @inlinable func isDelivered(_ extended: Int64) -> Bool {
        let bit = Int(truncatingIfNeeded: extended) & 1023
        return delivered[bit >> 6] & (1 << UInt64(bit & 63)) != 0
    }

    @inlinable mutating func clearDelivered() {
        for i in delivered.indices { delivered[i] = 0 }
    }

    @inlinable func sequenceNumber(_ extended: Int64) -> SequenceNumber {
        SequenceNumber(UInt16(truncatingIfNeeded: extended))
    }
}
