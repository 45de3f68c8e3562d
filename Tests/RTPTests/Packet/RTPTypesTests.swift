import Testing
@testable import RTP

@Suite("RTP newtypes and arithmetic")
struct RTPTypesTests {
    @Test func payloadTypeIsSevenBits() {
        #expect(PayloadType(rawValue: 127)?.rawValue == 127)
        #expect(PayloadType(rawValue: 128) == nil)
        #expect(PayloadType(rawValue: 255) == nil)
        #expect(PayloadType(masking: 0xEF).rawValue == 111)
    }

    @Test func sequenceNumberOrderingAcrossWrap() {
        let a: SequenceNumber = 65535
        let b: SequenceNumber = 0
        #expect(a < b)
        #expect(!(b < a))
        #expect(a.distance(to: b) == 1)
        #expect(b.distance(to: a) == -1)
        #expect(b - a == 1)
        #expect(a.advanced(by: 3) == 2)
        #expect(SequenceNumber(2).advanced(by: -3) == 65535)
        #expect(SequenceNumber(100) < SequenceNumber(100 + 32767))
        // Exactly half the space apart: unordered either way (RFC 1982).
        #expect(!(SequenceNumber(100) < SequenceNumber(100 + 32768)))
        #expect(!(SequenceNumber(100 + 32768) < SequenceNumber(100)))
        #expect(SequenceNumber(100).distance(to: SequenceNumber(100 + 32768)) == -32768)
        #expect(!(SequenceNumber(7) < SequenceNumber(7)))
        #expect([SequenceNumber(1), 65534, 0, 65535].sorted() == [65534, 65535, 0, 1])
    }

    @Test func timestampOrderingAndDifferenceAcrossWrap() {
        let before: RTPTimestamp = 0xFFFF_FFF0
        let after: RTPTimestamp = 0x10
        #expect(before < after)
        #expect(!(after < before))
        #expect(after - before == 32)
        #expect(before - after == -32)
        #expect(before.advanced(by: 32) == after)
        #expect(after.advanced(by: -32) == before)
        #expect(RTPTimestamp(0).distance(to: RTPTimestamp(0x8000_0000)) == -2_147_483_648)
        #expect(RTPTimestamp(0).distance(to: RTPTimestamp(0x7FFF_FFFF)) == 2_147_483_647)
        #expect(RTPTimestamp(0) < RTPTimestamp(0x7FFF_FFFF))
        #expect(!(RTPTimestamp(0) < RTPTimestamp(0x8000_0000)))
    }

    @Test func sequenceUnwrapperHandlesReorderingAroundWrap() {
        var unwrapper = SequenceUnwrapper()
        let input: [SequenceNumber] = [65533, 65534, 0, 65535, 1, 2, 65532, 3]
        let output = input.map { unwrapper.unwrap($0) }
        #expect(output == [65533, 65534, 65536, 65535, 65537, 65538, 65532, 65539])
        #expect(unwrapper.highest == 65539)
        #expect(unwrapper.peek(65535) == 65535)
        #expect(unwrapper.highest == 65539)
    }

    @Test func sequenceUnwrapperRunsThroughSeveralWraps() {
        var unwrapper = SequenceUnwrapper()
        var seq = SequenceNumber(60000)
        var expected: Int64 = 60000
        var mismatches = 0
        for step in 0..<300_000 {
            // Swap every 7th pair to model reordering.
            if step % 7 == 0 {
                if unwrapper.unwrap(seq.advanced(by: 1)) != expected + 1 { mismatches += 1 }
                if unwrapper.unwrap(seq) != expected { mismatches += 1 }
                seq = seq.advanced(by: 2)
                expected += 2
            } else {
                if unwrapper.unwrap(seq) != expected { mismatches += 1 }
                seq = seq.advanced(by: 1)
                expected += 1
            }
        }
        #expect(mismatches == 0)
        #expect(expected > 4 * 65536)
        #expect(unwrapper.highest == expected - 1)
    }

    @Test func sequenceUnwrapperGoesNegativeForPacketsBeforeTheFirst() {
        var unwrapper = SequenceUnwrapper()
        #expect(unwrapper.unwrap(0) == 0)
        #expect(unwrapper.unwrap(65535) == -1)
        #expect(unwrapper.unwrap(1) == 1)
    }

    @Test func timestampUnwrapperAcrossWrapWithReordering() {
        var unwrapper = TimestampUnwrapper()
        let input: [RTPTimestamp] = [0xFFFF_FF00, 0x100, 0xFFFF_FFF0, 0x200]
        let output = input.map { unwrapper.unwrap($0) }
        #expect(output == [0xFFFF_FF00, 0x1_0000_0100, 0xFFFF_FFF0, 0x1_0000_0200])
        var big = TimestampUnwrapper()
        var ts = RTPTimestamp(0)
        var last: Int64 = 0
        for _ in 0..<20 {
            ts = ts.advanced(by: 0x7000_0000)
            last = big.unwrap(ts)
        }
        #expect(last == 20 * 0x7000_0000)
    }

    @Test func ntpConversions() {
        #expect(NTPTime(unixSeconds: 0) == NTPTime(seconds: 2_208_988_800, fraction: 0))
        let half = NTPTime(secondsSince1900: 1.5)
        #expect(half.seconds == 1)
        #expect(half.fraction == 0x8000_0000)
        #expect(half.secondsSince1900 == 1.5)
        let t = NTPTime(seconds: 0x1234_5678, fraction: 0x9ABC_DEF0)
        #expect(t.rawValue == 0x1234_5678_9ABC_DEF0)
        #expect(t.compact == 0x5678_9ABC)
        let unix = 1_700_000_000.25
        #expect(abs(NTPTime(unixSeconds: unix).unixSeconds - unix) < 1e-6)
        #expect(NTPTime(unixSeconds: unix).seconds == UInt32(1_700_000_000 + 2_208_988_800))
        #expect(NTPTime(unixSeconds: unix).fraction == 0x4000_0000)
        #expect(NTPTime(secondsSince1900: -5).rawValue == 0)
        #expect(NTPTime(secondsSince1900: .nan).rawValue == 0)
        #expect(NTPTime(secondsSince1900: 1e12).rawValue == UInt64.max)
        #expect(NTPTime.seconds(fromCompact: 0x0001_8000) == 1.5)
        #expect(NTPTime.compact(fromSeconds: 1.5) == 0x0001_8000)
        #expect(NTPTime.compact(fromSeconds: -1) == 0)
        #expect(NTPTime.compact(fromSeconds: 1e9) == UInt32.max)
    }

    @Test func roundTripTimeFromReportBlock() {
        let arrival = NTPTime(seconds: 5, fraction: 0)
        #expect(NTPTime.roundTripTime(arrival: arrival, lastSR: 0x0002_0000, delaySinceLastSR: 0x0001_0000) == 2.0)
        #expect(NTPTime.roundTripTime(arrival: arrival, lastSR: 0, delaySinceLastSR: 0) == nil)
        #expect(NTPTime.roundTripTime(arrival: arrival, lastSR: 0x0004_0000, delaySinceLastSR: 0x0002_0000) == nil)
    }

    @Test func demuxRTCPBySecondByte() {
        #expect(isRTCP(secondByte: 200))
        #expect(isRTCP(secondByte: 192))
        #expect(isRTCP(secondByte: 223))
        #expect(!isRTCP(secondByte: 191))
        #expect(!isRTCP(secondByte: 224))
        #expect(!isRTCP(secondByte: 0xEF))  // marker + PT 111
        #expect(!isRTCP(secondByte: 111))
    }
}
