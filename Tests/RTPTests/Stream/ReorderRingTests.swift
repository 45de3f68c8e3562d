import RTP
import Testing
import Wire

private func ms(_ value: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: value * 1_000_000) }

/// Outputs of a reorder buffer flattened to what they cover: packets and holes, in order.
private struct Collected {
    var packets: [Int] = []
    /// Every sequence number passed (packets and holes), in output order.
    var covered: [UInt16] = []
    var holes: [(first: UInt16, count: Int)] = []
    var discontinuities = 0

    mutating func take(_ outputs: [ReorderOutput<Int>]) {
        for output in outputs {
            switch output {
            case .packet(let seq, let element):
                packets.append(element)
                covered.append(seq.rawValue)
            case .hole(let first, let count):
                holes.append((first.rawValue, count))
                for k in 0..<count { covered.append(first.rawValue &+ UInt16(truncatingIfNeeded: k)) }
            case .discontinuity:
                discontinuities += 1
            }
        }
    }
}

@Suite("ReorderBuffer ring")
struct ReorderRingTests {
    @Test("many wrap-arounds with reordering and duplicates: every packet once, in order, no holes")
    func wrapAroundShuffled() {
        var buffer = ReorderBuffer<Int>(maxWait: .milliseconds(80))
        var rng = MediaSplitMix64(seed: 5)
        let total = 200_000  // three wraps of the 16-bit sequence number
        let first: UInt16 = 65_000
        // Arrival = send time + uniform jitter up to 60 ms (packets 20 ms apart): reordering up to 3 deep.
        var arrivals: [(at: Int64, index: Int)] = (0..<total).map { i in (i == 0 ? 0 : Int64(i) * 20 + Int64(rng.next() % 60), i) }
        for k in stride(from: 0, to: total, by: 97) { arrivals.append((arrivals[k].at + 5, k)) }  // duplicates
        arrivals.sort { $0.at < $1.at || ($0.at == $1.at && $0.index < $1.index) }
        var collected = Collected()
        for (at, i) in arrivals {
            buffer.insert(i, sequenceNumber: SequenceNumber(first &+ UInt16(truncatingIfNeeded: i)), arrival: ms(at))
            collected.take(buffer.drain(now: ms(at)))
        }
        collected.take(buffer.flush())
        #expect(collected.packets.count == total)
        let firstWrong = zip(collected.packets, 0..<total).first { $0.0 != $0.1 }
        #expect(firstWrong == nil, "first out of order: \(String(describing: firstWrong))")
        #expect(collected.holes.isEmpty)
        #expect(buffer.statistics.duplicates == (total + 96) / 97)
        #expect(buffer.statistics.reordered > 1000)
        #expect(buffer.statistics.delivered == total)
        #expect(buffer.count == 0)
    }

    @Test("seeded random traces: outputs cover consecutive numbers, no packet delivered twice, counters add up")
    func randomTraces() {
        for seed in UInt64(1)...20 {
            var rng = MediaSplitMix64(seed: seed)
            var buffer = ReorderBuffer<Int>(maxWait: .milliseconds(Int64(20 + rng.next() % 100)), capacity: [8, 32, 128][Int(seed % 3)])
            var collected = Collected()
            var results: [ReorderInsertResult: Int] = [:]
            let start = UInt16(truncatingIfNeeded: rng.next())
            var events: [(at: Int64, seq: Int)] = []
            var seq = 0
            for i in 0..<5000 {
                let roll = rng.next() % 100
                if roll < 5 { seq += 1 }                                   // lost
                if roll == 99 { seq += 50 + Int(rng.next() % 300) }        // big jump (may exceed the ring)
                events.append((Int64(i) * 20 + Int64(rng.next() % 120), seq))
                if roll < 3 { events.append((Int64(i) * 20 + Int64(rng.next() % 400), seq)) }  // duplicate, maybe very late
                seq += 1
            }
            events.sort { $0.at < $1.at }
            for (n, event) in events.enumerated() {
                let r = buffer.insert(n, sequenceNumber: SequenceNumber(start &+ UInt16(truncatingIfNeeded: event.seq)), arrival: ms(event.at))
                results[r, default: 0] += 1
                collected.take(buffer.drain(now: ms(event.at)))
            }
            collected.take(buffer.flush())
            #expect(collected.discontinuities == 0)
            // Consecutive coverage from the first number delivered.
            let covered = collected.covered
            #expect(!covered.isEmpty)
            var contiguous = true
            for k in covered.indices.dropFirst() where covered[k] != covered[k - 1] &+ 1 { contiguous = false }
            #expect(contiguous, "seed \(seed)")
            // Each event index delivered at most once, and each sequence number at most once.
            #expect(Set(collected.packets).count == collected.packets.count)
            let s = buffer.statistics
            #expect(s.delivered == collected.packets.count)
            #expect(s.inserted == events.count)
            #expect(s.inserted == s.delivered + s.duplicates + s.tooLate, "seed \(seed)")
            #expect(s.missingPackets == covered.count - collected.packets.count)
            #expect(results[.duplicate, default: 0] == s.duplicates && results[.tooLate, default: 0] == s.tooLate)
            #expect(buffer.count == 0)
        }
    }

    @Test("a jump beyond the ring but within maxJump: held packets out, one hole, then the new head")
    func bigForwardJump() {
        var buffer = ReorderBuffer<Int>(maxWait: .seconds(10), capacity: 128)
        var collected = Collected()
        for seq in [10, 11, 13] { buffer.insert(seq, sequenceNumber: SequenceNumber(UInt16(seq)), arrival: ms(0)) }
        collected.take(buffer.drain(now: ms(1)))
        #expect(collected.packets == [10, 11])  // 12 missing: 13 waits
        #expect(buffer.insert(510, sequenceNumber: 510, arrival: ms(2)) == .buffered)
        collected.take(buffer.drain(now: ms(2)))
        #expect(collected.packets == [10, 11, 13, 510])
        #expect(collected.holes.count == 2)
        #expect(collected.holes[0] == (12, 1) && collected.holes[1] == (14, 496))
        #expect(collected.covered == Array(10...510).map { UInt16($0) })
        #expect(buffer.statistics.missingPackets == 497 && buffer.statistics.holes == 2)
        #expect(buffer.insert(200, sequenceNumber: 200, arrival: ms(3)) == .tooLate)
        #expect(buffer.insert(13, sequenceNumber: 13, arrival: ms(3)) == .duplicate)
        #expect(buffer.insert(510, sequenceNumber: 510, arrival: ms(3)) == .duplicate)
        // Within the ring: the buffer grows and waits for the missing ones.
        buffer.insert(600, sequenceNumber: 600, arrival: ms(4))
        #expect(buffer.drain(now: ms(5)).isEmpty)
        buffer.insert(511, sequenceNumber: 511, arrival: ms(6))
        collected.take(buffer.drain(now: ms(6)))
        #expect(collected.packets.last == 511)
        #expect(buffer.count == 1)
        collected.take(buffer.drain(now: ms(10_005)))
        #expect(collected.packets.last == 600 && collected.holes.last! == (512, 88))
    }

    @Test("jumps beyond maxJump restart the buffer across the wrap; backward too")
    func restarts() {
        var buffer = ReorderBuffer<Int>(maxWait: .milliseconds(50), maxJump: 3000)
        var collected = Collected()
        for (n, seq) in [65_530, 65_531, 65_533].enumerated() {
            buffer.insert(n, sequenceNumber: SequenceNumber(UInt16(seq)), arrival: ms(0))
        }
        #expect(buffer.insert(9, sequenceNumber: 4000, arrival: ms(1)) == .restarted)  // 4003 ahead across the wrap
        collected.take(buffer.drain(now: ms(1)))
        #expect(collected.packets == [0, 1, 2, 9] && collected.discontinuities == 1)
        #expect(collected.holes.count == 1 && collected.holes[0] == (65_532, 1))
        #expect(buffer.insert(10, sequenceNumber: 4001, arrival: ms(2)) == .buffered)
        #expect(buffer.insert(11, sequenceNumber: 500, arrival: ms(3)) == .restarted)  // 3501 back
        buffer.insert(12, sequenceNumber: 501, arrival: ms(4))
        collected.take(buffer.drain(now: ms(4)))
        #expect(collected.packets == [0, 1, 2, 9, 10, 11, 12] && collected.discontinuities == 2)
        #expect(buffer.statistics.restarts == 2)
        // Within maxJump backward but before the head: too late, not a restart.
        #expect(buffer.insert(13, sequenceNumber: 100, arrival: ms(5)) == .tooLate)
    }

    @Test("next(now:) hands out the same outputs as drain, one at a time; reset forgets everything")
    func nextAndReset() {
        var a = ReorderBuffer<Int>(maxWait: .milliseconds(30))
        var b = ReorderBuffer<Int>(maxWait: .milliseconds(30))
        var fromDrain = Collected(), fromNext = Collected()
        for (i, seq) in [1, 2, 4, 3, 7, 6, 9, 8, 12].enumerated() {
            a.insert(seq, sequenceNumber: SequenceNumber(UInt16(seq)), arrival: ms(Int64(i) * 20))
            b.insert(seq, sequenceNumber: SequenceNumber(UInt16(seq)), arrival: ms(Int64(i) * 20))
            fromDrain.take(a.drain(now: ms(Int64(i) * 20)))
            while let output = b.next(now: ms(Int64(i) * 20)) { fromNext.take([output]) }
        }
        #expect(fromDrain.covered == fromNext.covered && fromDrain.packets == fromNext.packets)
        #expect(fromDrain.packets == [1, 2, 3, 4, 6, 7, 8, 9])
        #expect(fromDrain.holes.count == 1 && fromDrain.holes[0] == (5, 1))
        a.reset()
        #expect(a.count == 0)
        #expect(a.insert(40_000, sequenceNumber: 40_000, arrival: ms(1000)) == .buffered)
        #expect(a.drain(now: ms(1000)).count == 1)
    }
}
