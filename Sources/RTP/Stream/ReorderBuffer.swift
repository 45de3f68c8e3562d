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
}

/// A reorder buffer keyed by RTP sequence number. Sans-IO: `insert` with the arrival time,
/// then `drain(now:)` to take what is ready. The head waits for a missing packet at most
/// `maxWait` after a later packet arrived, or until `capacity` packets are held.
public struct ReorderBuffer<Element: Sendable>: Sendable {
    public let maxWait: Duration
    public let capacity: Int
    /// A sequence jump larger than this (forward or back) restarts the buffer.
    public let maxJump: Int
    public private(set) var statistics = ReorderStatistics()

    private var unwrapper = SequenceUnwrapper()
    /// Extended sequence number expected next; nil before the first packet.
    private var nextExpected: Int64?
    private var slots: [Int64: (element: Element, arrival: MonotonicTime)] = [:]
    private var highestInserted: Int64 = .min
    /// Recently delivered extended numbers (for telling duplicates from late packets).
    private var deliveredWindow = Set<Int64>()
    private var pending: [ReorderOutput<Element>] = []

    public init(maxWait: Duration = .milliseconds(60), capacity: Int = 128, maxJump: Int = 3000) {
        self.maxWait = maxWait
        self.capacity = max(1, capacity)
        self.maxJump = max(1, maxJump)
    }

    /// Packets currently held.
    public var count: Int { slots.count }

    /// Adds a packet.
    @discardableResult
    public mutating func insert(_ element: Element, sequenceNumber: SequenceNumber, arrival: MonotonicTime) -> ReorderInsertResult {
        statistics.inserted += 1
        var extended = unwrapper.peek(sequenceNumber)
        var result = ReorderInsertResult.buffered
        if let expected = nextExpected {
            let reference = max(expected, highestInserted)
            if extended - reference > Int64(maxJump) || expected - extended > Int64(maxJump) {
                flushAll()
                pending.append(.discontinuity)
                statistics.restarts += 1
                unwrapper = SequenceUnwrapper()
                extended = unwrapper.peek(sequenceNumber)
                nextExpected = extended
                highestInserted = .min
                deliveredWindow.removeAll()
                result = .restarted
            } else if extended < expected {
                if deliveredWindow.contains(extended) {
                    statistics.duplicates += 1
                    return .duplicate
                }
                statistics.tooLate += 1
                return .tooLate
            } else if slots[extended] != nil {
                statistics.duplicates += 1
                return .duplicate
            }
        } else {
            nextExpected = extended
        }
        _ = unwrapper.unwrap(sequenceNumber)
        if extended < highestInserted { statistics.reordered += 1 }
        highestInserted = max(highestInserted, extended)
        slots[extended] = (element, arrival)
        return result
    }

    /// Takes everything ready at `now`: in-order packets, and holes whose wait expired.
    public mutating func drain(now: MonotonicTime) -> [ReorderOutput<Element>] {
        var out = pending
        pending.removeAll()
        guard var expected = nextExpected else { return out }
        while !slots.isEmpty {
            if let slot = slots.removeValue(forKey: expected) {
                out.append(.packet(sequenceNumber: sequenceNumber(expected), element: slot.element))
                markDelivered(expected)
                expected += 1
                continue
            }
            // Head missing: give up on it when the oldest held packet waited long enough or we are full.
            var oldestArrival = MonotonicTime(nanoseconds: .max)
            var lowest = Int64.max
            for (key, slot) in slots {
                if slot.arrival < oldestArrival { oldestArrival = slot.arrival }
                if key < lowest { lowest = key }
            }
            guard now - oldestArrival >= maxWait || slots.count >= capacity else { break }
            let missing = Int(lowest - expected)
            out.append(.hole(first: sequenceNumber(expected), count: missing))
            statistics.holes += 1
            statistics.missingPackets += missing
            expected = lowest
        }
        nextExpected = expected
        return out
    }

    /// Delivers everything held, reporting holes between, regardless of time (e.g. at the end).
    public mutating func flush() -> [ReorderOutput<Element>] {
        flushAll()
        let out = pending
        pending.removeAll()
        return out
    }

    /// Forgets all state (e.g. after an SSRC change).
    public mutating func reset() {
        slots.removeAll()
        pending.removeAll()
        nextExpected = nil
        unwrapper = SequenceUnwrapper()
        highestInserted = .min
        deliveredWindow.removeAll()
    }

    private mutating func flushAll() {
        guard var expected = nextExpected else { return }
        for key in slots.keys.sorted() {
            guard let slot = slots[key] else { continue }
            if key > expected {
                pending.append(.hole(first: sequenceNumber(expected), count: Int(key - expected)))
                statistics.holes += 1
                statistics.missingPackets += Int(key - expected)
            }
            pending.append(.packet(sequenceNumber: sequenceNumber(key), element: slot.element))
            markDelivered(key)
            expected = key + 1
        }
        slots.removeAll()
        nextExpected = expected
    }

    private mutating func markDelivered(_ extended: Int64) {
        statistics.delivered += 1
        deliveredWindow.insert(extended)
        if deliveredWindow.count > 1024 { deliveredWindow = deliveredWindow.filter { $0 > extended - 512 } }
    }

    private func sequenceNumber(_ extended: Int64) -> SequenceNumber {
        SequenceNumber(UInt16(truncatingIfNeeded: extended))
    }
}
