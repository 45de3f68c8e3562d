import Testing
@testable import ICE

/// The shared port's source table against a `Dictionary` doing the same: inserts, updates,
/// removals (with the backward shift across wrapped probe runs), growth, IPv4 and IPv6.
@Suite struct AddressTableTests {
    static func address(_ index: Int) -> TransportAddress {
        // Few distinct hosts and ports: addresses repeat, so updates and removals find entries.
        let port = UInt16(40_000 + index % 97)
        if index % 5 == 0 {
            return TransportAddress(ip: .v6(0x2001_0DB8_0000_0000, UInt64(index % 13)), port: port)
        }
        return TransportAddress(ip: .v4(0x7F00_0001 &+ UInt32(index % 11)), port: port)
    }

    @Test(arguments: [1, 2, 3, 4])
    func agreesWithADictionary(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        var table = AddressTable<Int>()
        var model: [TransportAddress: Int] = [:]
        for step in 0..<20_000 {
            let address = Self.address(Int.random(in: 0..<3_000, using: &generator))
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                table[address] = step
                model[address] = step
            case 5..<8:
                table[address] = nil
                model[address] = nil
            default:
                break
            }
            #expect(table[address] == model[address], "step \(step): \(address)")
            #expect(table.count == model.count, "step \(step)")
            if table.count != model.count { return }
        }
        // Everything left is found, and nothing else.
        for (address, value) in model { #expect(table[address] == value) }
        #expect(table.entries.count == model.count)
        for entry in table.entries { #expect(model[entry.address] == entry.value) }
        var generator2 = SplitMix64(seed: seed &+ 100)
        for index in 0..<500 {
            let probe = TransportAddress(ip: .v4(0x0A00_0000 &+ UInt32(index)), port: UInt16.random(in: 1...65535, using: &generator2))
            #expect(table[probe] == model[probe])
        }
    }

    @Test func removingEverythingEmptiesTheTable() {
        var table = AddressTable<Int>()
        let addresses = (0..<1_000).map { TransportAddress(ip: .v4(0x7F00_0001), port: UInt16(10_000 + $0)) }
        for (index, address) in addresses.enumerated() { table[address] = index }
        #expect(table.count == 1_000)
        for (index, address) in addresses.enumerated() where index % 2 == 0 { table[address] = nil }
        for (index, address) in addresses.enumerated() { #expect(table[address] == (index % 2 == 0 ? nil : index)) }
        for address in addresses { table[address] = nil }
        #expect(table.count == 0)
        #expect(table.entries.isEmpty)
        #expect(addresses.allSatisfy { table[$0] == nil })
    }
}
