import Testing
@testable import RTP

@Suite("Ogg pages")
struct OggTests {
    static func samplePage() -> OggPage {
        OggPage(headerType: [.beginOfStream], granulePosition: 123_456_789_012, serialNumber: 0xDEAD_BEEF,
                sequenceNumber: 7, segmentTable: [255, 10, 0, 3], body: [UInt8](repeating: 0xAB, count: 255 + 10) + [1, 2, 3])
    }

    /// RFC 3533 CRC computed bit by bit (polynomial 0x04C11DB7, no reflection, init 0).
    static func bitwiseCRC(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0
        for byte in bytes {
            crc ^= UInt32(byte) << 24
            for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
        }
        return crc
    }

    @Test("serialize then parse gives the same page")
    func roundTrip() throws {
        let page = Self.samplePage()
        let bytes = try page.serialized()
        #expect(bytes.count == 27 + 4 + 268)
        #expect(Array(bytes[0..<4]) == Array("OggS".utf8))
        let (parsed, length) = try OggPage.parse(bytes + [9, 9, 9])
        #expect(parsed == page)
        #expect(length == bytes.count)
        #expect(parsed.segments.map { Array($0.bytes) } == [[UInt8](repeating: 0xAB, count: 265), [], [1, 2, 3]])
        #expect(parsed.completedPacketCount == 3)
        // Negative granule (-1: no packet ends here) survives.
        var none = page
        none.granulePosition = -1
        none.segmentTable = [255]
        none.body = [UInt8](repeating: 1, count: 255)
        let parsedNone = try OggPage.parse(try none.serialized()).page
        #expect(parsedNone.granulePosition == -1)
        #expect(parsedNone.segments.count == 1 && parsedNone.segments[0].complete == false)
    }

    @Test("CRC matches the stored field and detects corruption")
    func crc() throws {
        let bytes = try Self.samplePage().serialized()
        var zeroed = bytes
        zeroed[22...25] = [0, 0, 0, 0]
        let crc = Self.bitwiseCRC(zeroed)
        #expect(UInt32(bytes[22]) | UInt32(bytes[23]) << 8 | UInt32(bytes[24]) << 16 | UInt32(bytes[25]) << 24 == crc)
        var corrupt = bytes
        corrupt[40] ^= 0x10
        #expect(throws: OggPageError.self) { try OggPage.parse(corrupt) }
        do {
            _ = try OggPage.parse(corrupt)
        } catch {
            guard case .crcMismatch(let stored, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(stored == crc)
        }
        #expect(try OggPage.parse(corrupt, verifyCRC: false).page.body[40 - 31] == 0xAB ^ 0x10)
    }

    @Test("corrupt and truncated pages give typed errors")
    func corrupt() throws {
        let bytes = try Self.samplePage().serialized()
        var bad = bytes
        bad[0] = 0x6F
        #expect(throws: OggPageError.badCapturePattern) { try OggPage.parse(bad) }
        bad = bytes
        bad[4] = 1
        #expect(throws: OggPageError.badVersion(1)) { try OggPage.parse(bad) }
        for length in 0..<bytes.count {
            do {
                _ = try OggPage.parse(Array(bytes.prefix(length)))
                Issue.record("a \(length)-byte prefix parsed")
            } catch {
                switch error {
                case .truncated, .segmentTableOverrun: break
                default: Issue.record("prefix \(length): unexpected \(error)")
                }
            }
        }
        #expect(throws: OggPageError.segmentTableOverrun(bodyLength: 268, available: 267)) {
            try OggPage.parse(Array(bytes.dropLast()))
        }
        var lying = Self.samplePage()
        lying.body.removeLast()
        #expect(throws: OggPageError.invalidSegmentTable) { try lying.serialized() }
        lying.segmentTable = [UInt8](repeating: 0, count: 256)
        #expect(throws: OggPageError.invalidSegmentTable) { try lying.serialized() }
    }

    static let packetSizes = [0, 1, 254, 255, 256, 510, 1000, 65_025, 70_000, 3, 255 * 255 - 1, 200_000, 17]

    @Test("packer and reader handle packets of any size, spanning pages")
    func spanning() throws {
        var packer = OggPagePacker(serialNumber: 42)
        let packets = Self.packetSizes.enumerated().map { index, size in
            (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
        }
        var pages: [OggPage] = []
        for (index, packet) in packets.enumerated() {
            packer.append(packet: packet, granulePosition: Int64(index * 1000))
            if index == 4 { pages += packer.flush() }
        }
        pages += packer.flush(endOfStream: true)
        #expect(pages.first?.headerType.contains(.beginOfStream) == true)
        #expect(pages.last?.headerType.contains(.endOfStream) == true)
        #expect(pages.filter { $0.headerType.contains(.endOfStream) }.count == 1)
        #expect(pages.enumerated().allSatisfy { $0.element.sequenceNumber == UInt32($0.offset) })
        #expect(pages.allSatisfy { $0.segmentTable.count <= 255 })
        #expect(pages.contains { $0.headerType.contains(.continued) })
        #expect(pages.contains { $0.granulePosition == -1 }, "a page where no packet ends has granule -1")
        var stream: [UInt8] = []
        for page in pages { stream += try page.serialized() }

        // Feed the stream in uneven pieces.
        var reader = OggPageReader()
        var read: [OggPacket] = []
        var rng = MediaSplitMix64(seed: 7)
        var offset = 0
        while offset < stream.count {
            let n = min(stream.count - offset, Int.random(in: 1...3000, using: &rng))
            reader.append(stream[offset..<(offset + n)])
            offset += n
            while let packet = try reader.nextPacket() { read.append(packet) }
        }
        #expect(read.map(\.bytes) == packets)
        #expect(read.last?.isEndOfStream == true)
        #expect(reader.bufferedByteCount == 0)
        // Every packet that is the last to end on its page carries its own granule.
        for packet in read {
            if let granule = packet.granulePosition {
                #expect(granule == Int64(packets.firstIndex(of: packet.bytes)! * 1000))
            }
        }
        #expect(read.compactMap(\.granulePosition).count >= pages.filter { $0.granulePosition >= 0 }.count)
    }

    @Test("a pending page written in two parts is the page flush() serializes; the buffers keep their capacity; a failed write drops that page only")
    func pendingPageInTwoParts() throws {
        struct WriteFailed: Error {}
        let packets = Self.packetSizes.enumerated().map { index, size in
            (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ index) }
        }
        // The same packets into two packers, flushed at the same points: one the page way, one in parts.
        var pagePacker = OggPagePacker(serialNumber: 9)
        var partPacker = OggPagePacker(serialNumber: 9)
        var expected: [UInt8] = []
        var written: [UInt8] = []
        var parts = 0
        for (index, packet) in packets.enumerated() {
            pagePacker.append(packet: packet, granulePosition: Int64(index * 960))
            partPacker.append(packet: packet, granulePosition: Int64(index * 960))
            for page in pagePacker.takeFullPages() { expected += try page.serialized() }
            for page in partPacker.takeFullPages() { written += try page.serialized() }
            guard index % 3 == 2 else { continue }
            for page in pagePacker.flush() { expected += try page.serialized() }
            partPacker.writePendingPage { header, body in
                #expect(header.count == OggPage.headerLength + Int(header[26]))
                written += header
                written += body
                parts += 1
            }
        }
        for page in pagePacker.flush() { expected += try page.serialized() }
        partPacker.writePendingPage { header, body in written += header; written += body; parts += 1 }
        #expect(parts >= 4)
        #expect(written == expected)
        // Every page's CRC, recomputed from its bytes, matches.
        var offset = 0
        var pages = 0
        while offset < written.count {
            let (_, length) = try written.withUnsafeBytes { try OggPage.parse(UnsafeRawBufferPointer(rebasing: $0[offset...]), verifyCRC: true) }
            offset += length
            pages += 1
        }
        #expect(pages > parts)
        #expect(partPacker.nextSequenceNumber == pagePacker.nextSequenceNumber)
        // Nothing pending: nothing written.
        partPacker.writePendingPage { _, _ in Issue.record("an empty page was written") }

        // The buffers are kept: the next page of the same size writes from the same memory.
        var steady = OggPagePacker(serialNumber: 3)
        var bodies: Set<UnsafeRawPointer?> = []
        for round in 0..<5 {
            for index in 0..<50 { steady.append(packet: [UInt8](repeating: UInt8(index), count: 100), granulePosition: Int64(round * 50 + index) * 960) }
            steady.writePendingPage { _, body in bodies.insert(body.baseAddress) }
        }
        #expect(bodies.count == 1, "the body buffer moved: \(bodies.count) addresses")

        // A write that fails loses its page; the next page follows it in sequence, without its data.
        var failing = OggPagePacker(serialNumber: 5)
        failing.append(packet: [1, 2, 3], granulePosition: 960)
        #expect(throws: WriteFailed.self) { try failing.writePendingPage { (_, _) throws(WriteFailed) in throw WriteFailed() } }
        failing.append(packet: [4, 5], granulePosition: 1920)
        var after: [UInt8] = []
        failing.writePendingPage { header, body in after += header; after += body }
        let (page, length) = try after.withUnsafeBytes { try OggPage.parse($0) }
        #expect(length == after.count)
        #expect(page.sequenceNumber == 1 && page.body == [4, 5] && page.granulePosition == 1920)
        #expect(!page.headerType.contains(.beginOfStream))
    }

    @Test("a held packet, committed with the next one, gives the bytes append gives: across full pages, written pages and EOS; a flush leaves a held packet for the next page")
    func heldPacketIsAppendLater() throws {
        let sizes = Self.packetSizes + [80, 80, 1, 254, 255, 256, 80]
        let packets = sizes.enumerated().map { index, size in (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) } }
        // One packer appends each packet when the next arrives (as a writer that holds its newest did
        // before); the other holds each at once and commits it when the next arrives. Pending pages are
        // written in between, while a packet is held.
        var appending = OggPagePacker(serialNumber: 4)
        var holding = OggPagePacker(serialNumber: 4)
        var expected: [UInt8] = []
        var written: [UInt8] = []
        for (index, packet) in packets.enumerated() {
            if index > 0 {
                appending.append(packet: packets[index - 1], granulePosition: Int64(index * 960))
                holding.commitHeld(granulePosition: Int64(index * 960))
            }
            packet.withUnsafeBytes { holding.hold(bytes: $0) }
            #expect(holding.isHolding)
            for page in appending.takeFullPages() { expected += try page.serialized() }
            for page in holding.takeFullPages() { written += try page.serialized() }
            guard index % 4 == 3 else { continue }
            appending.writePendingPage { header, body in expected += header; expected += body }
            holding.writePendingPage { header, body in written += header; written += body }
            #expect(written == expected, "after packet \(index)")
        }
        appending.append(packet: packets[packets.count - 1], granulePosition: Int64(packets.count * 960))
        holding.commitHeld(granulePosition: Int64(packets.count * 960))
        #expect(!holding.isHolding)
        for page in appending.flush(endOfStream: true) { expected += try page.serialized() }
        for page in holding.flush(endOfStream: true) { written += try page.serialized() }
        #expect(written == expected)
        var reader = OggPageReader()
        reader.append(written)
        var read: [[UInt8]] = []
        while let packet = try reader.nextPacket() { read.append(packet.bytes) }
        #expect(read == packets)

        // A held packet is on no page a flush makes; it goes on the next once committed. Committing with
        // nothing held does nothing.
        var flushing = OggPagePacker(serialNumber: 6)
        flushing.append(packet: [1, 2, 3], granulePosition: 960)
        [UInt8](repeating: 9, count: 300).withUnsafeBytes { flushing.hold(bytes: $0) }
        let pages = flushing.flush()
        #expect(pages.count == 1 && pages[0].body == [1, 2, 3] && pages[0].granulePosition == 960)
        flushing.commitHeld(granulePosition: 5000)
        flushing.commitHeld(granulePosition: 6000)
        let next = flushing.flush()
        #expect(next.count == 1 && next[0].body == [UInt8](repeating: 9, count: 300) && next[0].granulePosition == 5000)
    }

    @Test("reader resynchronizes after garbage and drops packets whose start was lost")
    func resync() throws {
        var packer = OggPagePacker(serialNumber: 1)
        packer.append(packet: [1, 2, 3], granulePosition: 1)
        let first = try packer.flush().map { try $0.serialized() }.joined()
        packer.append(packet: [UInt8](repeating: 5, count: 300 * 255), granulePosition: 2) // spans two pages
        let spanning = try packer.flush().map { try $0.serialized() }
        #expect(spanning.count == 2)
        packer.append(packet: [9], granulePosition: 3)
        let last = try packer.flush(endOfStream: true).map { try $0.serialized() }.joined()

        var reader = OggPageReader()
        reader.append(Array(first) + [0x4F, 0x67, 0x00, 1, 2, 3] + spanning[1] + Array(last))
        #expect(try reader.nextPacket()?.bytes == [1, 2, 3])
        #expect(throws: OggPageError.badCapturePattern) { try reader.nextPacket() }
        // The continuation page without its first half yields nothing; the next packet arrives.
        let next = try reader.nextPacket()
        #expect(next?.bytes == [9])
        #expect(next?.isEndOfStream == true)
        #expect(try reader.nextPacket() == nil)

        var limited = OggPageReader(maxPacketSize: 1000)
        limited.append(spanning.joined())
        #expect(throws: OggPageError.packetTooLarge(limit: 1000)) { while try limited.nextPacket() != nil {} }
    }

    @Test("seeded mutations of pages never crash; what parses round-trips")
    func mutation() throws {
        var packer = OggPagePacker(serialNumber: 99)
        for (index, size) in [5, 300, 0, 2000].enumerated() {
            packer.append(packet: [UInt8](repeating: UInt8(index), count: size), granulePosition: Int64(index))
        }
        let pages = packer.flush(endOfStream: true)
        let seeds = try pages.map { try $0.serialized() }
        let stream = Array(seeds.joined())
        var rng = MediaSplitMix64(seed: 0x0665)
        var parsed = 0
        for round in 0..<4000 {
            let input = rng.mutate(seeds[round % seeds.count])
            for verify in [true, false] {
                if let (page, length) = try? OggPage.parse(input, verifyCRC: verify) {
                    parsed += 1
                    #expect(length <= input.count)
                    let again = try OggPage.parse(try page.serialized())
                    #expect(again.page == page)
                }
            }
            if round % 8 == 0 {
                var reader = OggPageReader(maxPacketSize: 4096)
                reader.append(rng.mutate(stream))
                var steps = 0
                while steps < 100 {
                    steps += 1
                    do { if try reader.nextPacket() == nil { break } } catch {}
                }
                var opus = OggOpusReader()
                opus.append(rng.mutate(stream))
                _ = try? opus.nextPacket()
            }
        }
        #expect(parsed > 100)
    }
}
