/// The output side of a sans-IO core: items appended as the core works, drained in order by its
/// owner's `poll…()` calls. A head index instead of `removeFirst` keeps each poll O(1); the storage
/// is reused once the queue has been drained.
public struct OutputQueue<Element> {
    @usableFromInline var items: [Element] = []
    @usableFromInline var head = 0
    /// `items.count`, kept beside `head`: `isEmpty` then reads only the queue itself, not the
    /// storage's header (a cache line of its own, cold when a shell checks many cores in turn).
    @usableFromInline var tail = 0

    public init() {}

    @inlinable public mutating func append(_ item: Element) {
        items.append(item)
        tail += 1
    }

    /// The oldest item not yet polled, or nil when drained.
    @inlinable public mutating func poll() -> Element? {
        guard head < tail else { return nil }
        let next = items[head]
        head += 1
        if head == tail {
            items.removeAll(keepingCapacity: true)
            head = 0
            tail = 0
        }
        return next
    }

    @inlinable public var isEmpty: Bool { head == tail }
}

extension OutputQueue: Sendable where Element: Sendable {}
