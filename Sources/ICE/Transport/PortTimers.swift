import Wire

/// The timers a `SharedUDPPort` runs for the connections on its loop (see `Attachment.setTimer`):
/// a binary min-heap of deadlines. An entry names its attachment and the generation of that
/// attachment's timer it was pushed for: an entry whose generation is no longer the attachment's
/// (an earlier deadline superseded it) is dropped when it surfaces, so re-arming costs one push and
/// no search.
struct PortTimerHeap {
    struct Entry {
        let deadline: MonotonicTime
        let generation: UInt32
        let attachment: SharedUDPPort.Attachment
    }

    private(set) var entries: [Entry] = []

    var first: Entry? { entries.first }
    var isEmpty: Bool { entries.isEmpty }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func popFirst() -> Entry? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let first = entries.removeLast()
        siftDown(from: 0)
        return first
    }

    /// Drops every entry for which `shouldRemove` holds (a detached attachment's), keeping the heap order.
    mutating func removeAll(where shouldRemove: (Entry) -> Bool) {
        entries.removeAll(where: shouldRemove)
        for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(from: index) }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < entries.count, entries[left].deadline < entries[smallest].deadline { smallest = left }
            if right < entries.count, entries[right].deadline < entries[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
