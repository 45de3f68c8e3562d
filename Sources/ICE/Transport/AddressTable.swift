/// A hash table from transport addresses to values, for the lookup a shared port makes for every
/// datagram it receives (who sent it → which connection).
///
/// Open addressing with linear probing: a slot holds its address and its value together, so a
/// lookup reads one cache line where a `Dictionary` reads its keys' array and then its values'
/// (with 1,000 connections both are cold for each packet), and the hash is a keyed multiply-xorshift
/// mix of the address's words instead of SipHash. The key is random per table, so which addresses
/// collide is not known in advance; the table stays at most half full. Removal shifts the following
/// entries back (no tombstones).
struct AddressTable<Value: Sendable>: Sendable {
    private struct Slot: Sendable {
        var address: TransportAddress
        var value: Value
    }

    private var slots: [Slot?]
    private var mask: Int
    private let key = UInt64.random(in: 1...UInt64.max)
    private(set) var count = 0

    init(minimumCapacity: Int = 16) {
        var capacity = 16
        while capacity < 2 * minimumCapacity { capacity *= 2 }
        slots = [Slot?](repeating: nil, count: capacity)
        mask = capacity - 1
    }

    subscript(address: TransportAddress) -> Value? {
        get {
            var index = home(address)
            while let slot = slots[index] {
                if slot.address == address { return slot.value }
                index = (index + 1) & mask
            }
            return nil
        }
        set {
            if let newValue { insert(newValue, for: address) } else { remove(address) }
        }
    }

    /// Every address with its value (in no particular order).
    var entries: [(address: TransportAddress, value: Value)] {
        slots.compactMap { $0.map { ($0.address, $0.value) } }
    }

    private func home(_ address: TransportAddress) -> Int {
        var word: UInt64
        switch address.ip {
        case .v4(let value):
            word = UInt64(value) << 16 | UInt64(address.port)
        case .v6(let high, let low):
            word = high ^ (low &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(address.port) << 47) ^ 0x8000_0000_0000_0000
        }
        // The finalizer of MurmurHash3 (fmix64) over the keyed word: every input bit reaches every output bit.
        word ^= key
        word ^= word >> 33
        word &*= 0xFF51_AFD7_ED55_8CCD
        word ^= word >> 33
        word &*= 0xC4CE_B9FE_1A85_EC53
        word ^= word >> 33
        return Int(truncatingIfNeeded: word) & mask
    }

    private mutating func insert(_ value: Value, for address: TransportAddress) {
        var index = home(address)
        while let slot = slots[index] {
            if slot.address == address {
                slots[index]!.value = value
                return
            }
            index = (index + 1) & mask
        }
        slots[index] = Slot(address: address, value: value)
        count += 1
        if 2 * count > slots.count { grow() }
    }

    private mutating func remove(_ address: TransportAddress) {
        var index = home(address)
        while let slot = slots[index] {
            if slot.address == address { break }
            index = (index + 1) & mask
        }
        guard slots[index] != nil else { return }
        slots[index] = nil
        count -= 1
        // Backward shift: an entry further along the probe run moves into the hole when its home
        // position does not lie (cyclically) between the hole and where it sits.
        var hole = index
        var next = (index + 1) & mask
        while let slot = slots[next] {
            let wanted = home(slot.address)
            let stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
            if !stays {
                slots[hole] = slot
                slots[next] = nil
                hole = next
            }
            next = (next + 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot?](repeating: nil, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for case let slot? in old { insert(slot.value, for: slot.address) }
    }
}
