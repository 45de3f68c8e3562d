import Testing
@testable import Wire

@Suite struct WireTests {
    @Test func crc32MatchesTheCheckValue() {
        // The standard check value of CRC-32/ISO-HDLC over "123456789".
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let viaPointer = Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }
        #expect(viaPointer == 0xCBF4_3926)
    }

    @Test func prefetchHintsKeepLineAlignedRangesUpToTheirCapacity() {
        var hints = PrefetchHints()
        let base = UnsafeRawPointer(bitPattern: 0x1000)!
        hints.add(address: base + 10, bytes: 60)        // 0x100A..<0x1046: lines 0x1000 and 0x1040
        hints.add(address: base + 128, bytes: 1)        // one line
        hints.add(address: base + 256, bytes: 64 * 20)  // capped at maximumLines
        hints.add(address: base, bytes: 0)              // nothing
        var ranges: [(UInt, Int)] = []
        hints.forEach { address, lines in ranges.append((UInt(bitPattern: Int(bitPattern: address)), lines)) }
        #expect(ranges.map(\.0) == [0x1000, 0x1080, 0x1100])
        #expect(ranges.map(\.1) == [2, 1, PrefetchHints.maximumLines])
        for index in 0..<40 { hints.add(address: base + 64 * index, bytes: 64) }
        #expect(hints.count == PrefetchHints.capacity)
    }

    @Test func prefetchHintsOfAnArrayStartAtItsHeaderAndSkipTheEmptyStorage() {
        var hints = PrefetchHints()
        hints.add([UInt8]())
        #expect(hints.count == 0)
        var bytes = [UInt8](repeating: 0, count: 100)
        bytes.reserveCapacity(1000)
        hints.add(bytes, bytes: 256)
        #expect(hints.count == 1)
        let base = bytes.withUnsafeBytes { UInt(bitPattern: Int(bitPattern: $0.baseAddress!)) }
        hints.forEach { address, lines in
            let start = UInt(bitPattern: Int(bitPattern: address))
            #expect(start <= base - 32 && base - 32 < start + 64)  // the header's line comes first
            #expect(start + UInt(64 * lines) >= base + 100)         // and the elements are covered
        }
        var other = PrefetchHints()
        other.add(bytes, bytes: 256)
        #expect(other == hints)
    }

    @Test func oggCRCMatchesTheCheckValue() {
        // CRC-32/MPEG-2 without init/xorout is CRC-32/CKSUM's core; check value of "123456789"
        // for poly 0x04C11DB7, init 0, no reflection, no xorout is 0x89A1897F.
        #expect(OggCRC.checksum(Array("123456789".utf8)) == 0x89A1_897F)
    }

    @Test func oggCRCEightBytesAtATimeAgreesWithTheBytewiseDefinition() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0...20) + [255, 4096, 5003] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let seed = UInt32.random(in: 0...UInt32.max, using: &generator)
            let sliced = bytes.withUnsafeBytes { OggCRC.update(seed, $0) }
            #expect(sliced == OggCRC.updateBytewise(seed, bytes), "length \(length)")
        }
    }

    @Test func readerNeverReadsPastTheEnd() {
        let bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(reader.uint16() == 0x0102)
            #expect(reader.uint16() == nil)
            #expect(reader.uint32() == nil)
            #expect(reader.bytes(2) == nil)
            #expect(reader.bytes(-1) == nil)
            #expect(reader.uint8() == 3)
            #expect(reader.uint8() == nil)
            #expect(reader.isAtEnd)
        }
    }

    @Test func writerIsBigEndian() {
        var out: [UInt8] = []
        out.appendBigEndian(UInt16(0x0102))
        out.appendBigEndian(UInt32(0x0304_0506))
        out.appendBigEndian(UInt64(0x0708_090A_0B0C_0D0E))
        #expect(out == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
        out.storeBigEndian(UInt16(0xFFEE), at: 0)
        #expect(out[0] == 0xFF && out[1] == 0xEE)
    }
}

@Suite struct MonotonicTimeTests {
    @Test func arithmetic() {
        let start = MonotonicTime(nanoseconds: 1_000)
        let later = start + .milliseconds(5)
        #expect(later.nanoseconds == 5_001_000)
        #expect(later - start == .milliseconds(5))
        #expect(later > start)
        #expect((later - .milliseconds(5)) == start)
        #expect(Duration.milliseconds(1500).seconds == 1.5)
    }

    @Test func nowIsMonotonic() {
        let a = MonotonicTime.now()
        let b = MonotonicTime.now()
        #expect(b >= a)
    }
}

@Suite struct CRC32SlicingTests {
    /// Bit-at-a-time reference CRC-32.
    func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    @Test func slicingByEightMatchesTheBitwiseDefinition() {
        var state: UInt64 = 0x1234_5678
        for length in 0..<200 {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            #expect(CRC32.checksum(bytes) == reference(bytes), "length \(length)")
        }
    }
}

@Suite struct PacketClassTests {
    @Test("RFC 7983 first-byte demultiplexing")
    func demux() {
        for byte in 0...255 {
            let expected: PacketClass = switch byte {
            case 0...3: .stun
            case 20...63: .dtls
            case 64...79: .turnChannel
            case 128...191: .rtpOrRTCP
            default: .unknown
            }
            #expect(PacketClass.classify(firstByte: UInt8(byte)) == expected)
        }
        #expect(PacketClass.classify([UInt8]()) == .unknown)
        #expect(PacketClass.classify([0x16, 0xfe, 0xfd]) == .dtls)
    }
}

@Suite struct OutputQueueTests {
    @Test func pollsInOrderAndReusesStorageAfterDraining() {
        var queue = OutputQueue<Int>()
        #expect(queue.poll() == nil && queue.isEmpty)
        for i in 0..<5 { queue.append(i) }
        #expect(queue.poll() == 0 && queue.poll() == 1)
        queue.append(5)
        var drained: [Int] = []
        while let next = queue.poll() { drained.append(next) }
        #expect(drained == [2, 3, 4, 5] && queue.isEmpty)
        queue.append(9)
        #expect(!queue.isEmpty && queue.poll() == 9 && queue.poll() == nil)
    }
}

@Suite struct HeldReferenceTests {
    final class Box {
        var value: Int
        init(_ value: Int) { self.value = value }
    }

    @Test func lendsTheObjectItHoldsAndNothingWhenEmpty() {
        var held = HeldReference<Box>()
        var calls = 0
        #expect(held.isEmpty)
        #expect(held.withObject { _ in calls += 1 } == nil)
        #expect(calls == 0)

        let first = Box(1)
        held.object = first
        #expect(!held.isEmpty)
        #expect(held.withObject { ObjectIdentifier($0) } == ObjectIdentifier(first))
        #expect(held.withObject { $0.value } == 1)

        let second = Box(2)
        held.object = second
        #expect(held.withObject { ObjectIdentifier($0) } == ObjectIdentifier(second))
        held.object = nil
        #expect(held.isEmpty)
        #expect(held.withObject { $0.value } == nil)
        #expect(HeldReference(Box(3)).withObject { $0.value } == 3)
    }

    @Test func ownsItsObjectUntilReplaced() {
        weak var watched: Box?
        var held = HeldReference<Box>()
        do {
            let box = Box(7)
            watched = box
            held.object = box
        }
        // Only `held` keeps it alive now, and the lent reference is that same live object.
        #expect(watched != nil)
        held.withObject { $0.value += 1 }
        #expect(held.object?.value == 8)
        held.object = Box(9)
        #expect(watched == nil)
        #expect(held.withObject { $0.value } == 9)
    }

    @Test func rethrowsWhatItsBodyThrows() {
        struct Failure: Error {}
        let held = HeldReference(Box(1))
        #expect(throws: Failure.self) { try held.withObject { _ in throw Failure() } }
    }
}
