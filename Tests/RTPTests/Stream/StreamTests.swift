import Foundation
import RTP
import Testing
import Wire

private func ms(_ value: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: value * 1_000_000) }

@Suite("RTPSendStream")
struct RTPSendStreamTests {
    static let config = RTPSendStreamConfiguration(ssrc: 0xAABB_CCDD, payloadType: 111, cname: "peerd@test", mid: "0",
                                                   audioLevelExtensionID: 1, midExtensionID: 4)

    @Test("random initial sequence number and timestamp from the injected generator")
    func randomInitialState() {
        var a = MediaSplitMix64(seed: 1), b = MediaSplitMix64(seed: 1), c = MediaSplitMix64(seed: 2)
        let s1 = RTPSendStream(configuration: Self.config, start: .zero, using: &a)
        let s2 = RTPSendStream(configuration: Self.config, start: .zero, using: &b)
        let s3 = RTPSendStream(configuration: Self.config, start: .zero, using: &c)
        #expect(s1.initialSequenceNumber == s2.initialSequenceNumber && s1.initialTimestamp == s2.initialTimestamp)
        #expect(s1.initialSequenceNumber != s3.initialSequenceNumber || s1.initialTimestamp != s3.initialTimestamp)
    }

    @Test("packets: marker at talkspurt starts, timestamps per frame, audio level and mid extensions")
    func packetization() throws {
        var rng = MediaSplitMix64(seed: 5)
        var stream = RTPSendStream(configuration: Self.config, start: ms(1000), using: &rng)
        var tone = ToneGenerator(frequency: 300, amplitude: 0.5)
        let pcm = tone.next(frames: 960)
        let frame: [UInt8] = [0x78] + [UInt8](repeating: 0x55, count: 40)
        let b0 = stream.packetize(opusFrame: frame, pcm: pcm)
        let b1 = stream.packetize(opusFrame: frame, pcm: pcm)
        let dtx = stream.packetize(opusFrame: [0x78, 0x00], pcm: nil)
        #expect(dtx == nil) // DTX frame skipped
        stream.skipFrame()
        let b2 = stream.packetize(opusFrame: frame, level: 30)
        let p0 = try RTPPacket(parsing: try #require(b0))
        let p1 = try RTPPacket(parsing: try #require(b1))
        let p2 = try RTPPacket(parsing: try #require(b2))
        #expect(p0.marker && !p1.marker && p2.marker)
        #expect(p0.sequenceNumber == stream.initialSequenceNumber)
        #expect(p1.sequenceNumber == p0.sequenceNumber + 1 && p2.sequenceNumber == p0.sequenceNumber + 2)
        #expect(p0.timestamp == stream.initialTimestamp)
        #expect(p1.timestamp == p0.timestamp + 960 && p2.timestamp == p0.timestamp + 4 * 960)
        #expect(p0.ssrc == 0xAABB_CCDD && p0.payloadType == 111 && Array(p0.payload) == frame)
        let level = try AudioLevelExtension.parse(from: try #require(p0.headerExtensionElement(id: 1)))
        #expect(level.level == 9 && level.voiceActivity) // 0.5 full-scale sine ≈ -9 dBov
        #expect(try AudioLevelExtension.parse(from: try #require(p2.headerExtensionElement(id: 1))).level == 30)
        #expect(try SDESMidExtension.parse(from: try #require(p0.headerExtensionElement(id: 4))).mid == "0")
        #expect(stream.packetCount == 3 && stream.octetCount == 3 * 41)
    }

    @Test("pacing schedule does not drift: frame k is due at start + k·20 ms")
    func pacing() {
        var rng = MediaSplitMix64(seed: 1)
        var stream = RTPSendStream(configuration: Self.config, start: ms(123), using: &rng)
        #expect(stream.dueTime(ofFrame: 180_000) == ms(123 + 3_600_000))
        for _ in 0..<1000 { _ = stream.packetize(opusFrame: [0x78, 1, 2, 3], level: 40) }
        #expect(stream.nextFrameDue == ms(123 + 20_000))
        #expect(stream.rtpTimestamp(at: ms(123 + 20_000)) == stream.timestamp(ofFrame: 1000))
    }

    @Test("RTCP: SR intervals randomised around 5 s (first sooner), NTP/RTP mapping, counts, SDES, BYE")
    func senderReports() throws {
        var rng = MediaSplitMix64(seed: 9)
        var stream = RTPSendStream(configuration: Self.config, start: .zero, using: &rng)
        let wall0 = 3_900_000_000.0
        var reports: [(MonotonicTime, RTCPCompoundPacket)] = []
        var k: Int64 = 0
        var now = MonotonicTime.zero
        while now < ms(120_000) {
            if now >= stream.nextFrameDue { _ = stream.packetize(opusFrame: [0x78, 1, 2, 3, 4], level: 20); k += 1 }
            if let bytes = stream.pollRTCP(now: now, wallclock: NTPTime(secondsSince1900: wall0 + Double(now.nanoseconds) / 1e9)) {
                reports.append((now, try RTCPCompoundPacket(parsing: bytes, requireCompoundRules: true)))
            }
            now += .milliseconds(10)
        }
        let first = try #require(reports.first).0
        #expect(first >= ms(1250) && first <= ms(3760))
        var intervals: [Double] = []
        for i in 1..<reports.count {
            let gap = Double((reports[i].0 - reports[i - 1].0).nanosecondsClamped) / 1e9
            #expect(gap >= 2.5 && gap <= 7.51)
            intervals.append(gap)
        }
        #expect(Set(intervals.map { ($0 * 10).rounded() }).count > 3, "intervals are randomised")
        for (time, compound) in reports {
            guard case .senderReport(let sr) = compound.packets[0] else { Issue.record("no SR first"); continue }
            let seconds = sr.ntpTime.secondsSince1900 - wall0
            #expect(abs(seconds - Double(time.nanoseconds) / 1e9) < 1e-6)
            #expect(sr.rtpTimestamp == stream.rtpTimestamp(at: time))
            #expect(stream.initialTimestamp.distance(to: sr.rtpTimestamp) == Int64(time.nanoseconds / 1_000_000) * 48)
            guard case .sourceDescription(let sdes) = compound.packets[1] else { Issue.record("no SDES"); continue }
            #expect(sdes.chunks.first?.cname == "peerd@test")
            #expect(sr.packetCount > 0 && sr.octetCount == sr.packetCount * 5)
        }
        let bye = try RTCPCompoundPacket(parsing: stream.close(now: now, wallclock: NTPTime(secondsSince1900: wall0 + 120), reason: "bye"))
        #expect(bye.packets.count == 3)
        guard case .goodbye(let goodbye) = bye.packets[2] else { Issue.record("no BYE"); return }
        #expect(goodbye.ssrcs == [0xAABB_CCDD] && goodbye.reasonText == "bye")
        let afterClose = stream.packetize(opusFrame: [0x78, 1, 2], level: 1)
        #expect(afterClose == nil)
    }

    @Test("reduced-size RTCP sends SR alone between compound reports")
    func reducedSize() throws {
        var config = Self.config
        config.reducedSizeRTCP = true
        var rng = MediaSplitMix64(seed: 3)
        var stream = RTPSendStream(configuration: config, start: .zero, using: &rng)
        var counts: [Int] = []
        var now = MonotonicTime.zero
        while counts.count < 5 {
            if let bytes = stream.pollRTCP(now: now, wallclock: NTPTime(secondsSince1900: 3.9e9)) {
                counts.append(try RTCPCompoundPacket(parsing: bytes).packets.count)
            }
            now += .milliseconds(100)
        }
        #expect(counts == [2, 1, 1, 1, 2])
    }

    @Test("receiver reports give the round-trip time from LSR/DLSR")
    func roundTrip() throws {
        var rng = MediaSplitMix64(seed: 4)
        var stream = RTPSendStream(configuration: Self.config, start: .zero, using: &rng)
        let srTime = NTPTime(secondsSince1900: 3_900_000_010.0)
        let block = RTCPReportBlock(ssrc: 0xAABB_CCDD, fractionLost: 12, cumulativeLost: 3, extendedHighestSequence: 100,
                                    jitter: 40, lastSR: srTime.compact, delaySinceLastSR: NTPTime.compact(fromSeconds: 0.1))
        let rr = try RTCPCompoundPacket(packets: [.receiverReport(RTCPReceiverReport(ssrc: 77, reportBlocks: [block]))]).serialized()
        let used = stream.receiveRTCP(bytes: rr, arrival: ms(5000), wallclock: NTPTime(secondsSince1900: 3_900_000_010.25))
        #expect(used)
        let rtt = try #require(stream.feedback?.roundTripTime)
        #expect(abs(rtt - 0.15) < 0.001)
        #expect(stream.feedback?.reportBlock.fractionLost == 12)
        let garbage = stream.receiveRTCP(bytes: [1, 2, 3], arrival: ms(5000), wallclock: srTime)
        #expect(!garbage)
    }
}

@Suite("RTPReceiveStream")
struct RTPReceiveStreamTests {
    static func header(_ seq: UInt16, ts: UInt32 = 0, ssrc: SSRC = 1, pt: PayloadType = 111) -> RTPFixedHeader {
        let packet = RTPPacket(payloadType: pt, sequenceNumber: SequenceNumber(seq), timestamp: RTPTimestamp(ts), ssrc: ssrc, payload: [1, 2, 3])
        return try! RTPFixedHeader(parsing: packet.serialized())
    }

    @Test("accepted payload types on both halves of the 7-bit range; none listed accepts all")
    func payloadTypeFilter() {
        let types: [PayloadType] = [0, 8, 63, 64, 96, 111, 127]
        var stream = RTPReceiveStream(payloadTypes: [8, 63, 111])
        for (index, type) in types.enumerated() {
            let verdict = stream.receive(Self.header(UInt16(index), pt: type), payloadLength: 3, arrival: .zero)
            let accepted = verdict != .unknownPayloadType(type)
            #expect(accepted == [8, 63, 111].contains(type), "payload type \(type): \(verdict)")
        }
        #expect(stream.statistics.unknownPayloadType == 4)
        var open = RTPReceiveStream()
        for (index, type) in types.enumerated() {
            #expect(open.receive(Self.header(UInt16(index), pt: type), payloadLength: 3, arrival: .zero) != .unknownPayloadType(type))
        }
    }

    @Test("probation, wrap-around, loss, duplicates, reordering and fraction lost")
    func sequenceValidation() throws {
        var stream = RTPReceiveStream(payloadTypes: [111])
        #expect(stream.receive(Self.header(65530), payloadLength: 3, arrival: ms(0)) == .probation)
        #expect(stream.receive(Self.header(65531), payloadLength: 3, arrival: ms(20)) == .accepted(extendedSequence: 65531))
        var seq: UInt16 = 65531
        for i in 0..<20 {
            seq &+= 1
            if i == 10 || i == 11 { continue } // two lost
            _ = stream.receive(Self.header(seq, ts: UInt32(i) * 960), payloadLength: 3, arrival: ms(Int64(i) * 20))
        }
        #expect(stream.extendedHighestSequence == 65536 + Int64(seq))
        #expect(stream.expected == 21 && stream.cumulativeLost == 2)
        #expect(stream.receive(Self.header(seq), payloadLength: 3, arrival: ms(500)) == .duplicate)
        #expect(stream.receive(Self.header(seq &- 8), payloadLength: 3, arrival: ms(500)) == .reordered(extendedSequence: 65536 + Int64(seq) - 8))
        #expect(stream.cumulativeLost == 1)
        #expect(stream.receive(Self.header(seq &- 8), payloadLength: 3, arrival: ms(500)) == .duplicate)
        #expect(stream.receive(Self.header(seq, pt: 0), payloadLength: 3, arrival: ms(500)) == .unknownPayloadType(0))
        let maybeBlock = stream.makeReportBlock(now: ms(600))
        let block = try #require(maybeBlock)
        #expect(block.cumulativeLost == 1 && block.fractionLost == UInt8(256 / 21))
        #expect(block.extendedHighestSequence == UInt32(65536 + Int(seq)))
        #expect(stream.statistics.duplicates == 2 && stream.statistics.unknownPayloadType == 1 && stream.statistics.reordered == 1)
        // Next interval: nothing new → fraction 0.
        let next = stream.makeReportBlock(now: ms(700))
        #expect(next?.fractionLost == 0)
    }

    @Test("a big jump needs two sequential packets to restart; an SSRC change restarts at once")
    func restarts() {
        var stream = RTPReceiveStream()
        _ = stream.receive(Self.header(100), payloadLength: 1, arrival: ms(0))
        _ = stream.receive(Self.header(101), payloadLength: 1, arrival: ms(20))
        #expect(stream.receive(Self.header(20000), payloadLength: 1, arrival: ms(40)) == .badSequence)
        #expect(stream.receive(Self.header(20001), payloadLength: 1, arrival: ms(60)) == .restarted(extendedSequence: 20001))
        #expect(stream.receive(Self.header(20002), payloadLength: 1, arrival: ms(80)) == .accepted(extendedSequence: 20002))
        #expect(stream.receive(Self.header(7, ssrc: 2), payloadLength: 1, arrival: ms(100)) == .restarted(extendedSequence: 7))
        #expect(stream.ssrc == 2 && stream.statistics.ssrcChanges == 1 && stream.statistics.restarts == 1)
    }

    @Test("A.8 jitter: zero for steady arrival, about the variation for ±10 ms")
    func jitter() {
        var steady = RTPReceiveStream()
        var varying = RTPReceiveStream()
        for i in 0..<500 {
            let ts = UInt32(i * 960)
            _ = steady.receive(Self.header(UInt16(i), ts: ts), payloadLength: 1, arrival: ms(Int64(i) * 20 + 50))
            _ = varying.receive(Self.header(UInt16(i), ts: ts), payloadLength: 1, arrival: ms(Int64(i) * 20 + (i % 2 == 0 ? 40 : 60)))
        }
        #expect(steady.jitter < 0.01)
        #expect(abs(varying.jitterMilliseconds - 20) < 1, "\(varying.jitterMilliseconds) ms")
    }

    @Test("sender reports map RTP time to the sender's wallclock; LSR/DLSR in report blocks")
    func senderReports() throws {
        var stream = RTPReceiveStream()
        _ = stream.receive(Self.header(1, ssrc: 9), payloadLength: 1, arrival: ms(0))
        _ = stream.receive(Self.header(2, ssrc: 9), payloadLength: 1, arrival: ms(20))
        let ntp = NTPTime(secondsSince1900: 3_900_000_000.5)
        let sr = RTCPSenderReport(ssrc: 9, ntpTime: ntp, rtpTimestamp: 48_000, packetCount: 2, octetCount: 2)
        let other = stream.receiveSenderReport(RTCPSenderReport(ssrc: 8, ntpTime: ntp, rtpTimestamp: 0, packetCount: 0, octetCount: 0), arrival: ms(30))
        let own = stream.receiveSenderReport(sr, arrival: ms(1000))
        #expect(!other && own)
        let wall = try #require(stream.senderWallclock(for: 96_000))
        #expect(abs(wall.secondsSince1900 - 3_900_000_001.5) < 1e-6)
        let maybeBlock = stream.makeReportBlock(now: ms(1500))
        let block = try #require(maybeBlock)
        #expect(block.lastSR == ntp.compact)
        #expect(abs(NTPTime.seconds(fromCompact: block.delaySinceLastSR) - 0.5) < 0.001)
    }

    @Test("seeded mutation loop: arbitrary datagrams never crash the receive path")
    func mutationLoop() {
        var rng = MediaSplitMix64(seed: 77)
        var stream = RTPReceiveStream(payloadTypes: [111])
        var reorder = ReorderBuffer<Int>()
        let valid = RTPPacket(payloadType: 111, sequenceNumber: 10, timestamp: 1000, ssrc: 5,
                              headerExtension: try! RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 1, data: [0xFF])]),
                              payload: [0xF8, 0xFF, 0xFE]).serialized()
        var parsed = 0
        for i in 0..<5000 {
            let bytes = rng.mutate(valid)
            guard let packet = try? RTPPacket(parsing: bytes) else { continue }
            parsed += 1
            _ = stream.receive(packet, arrival: ms(Int64(i)))
            if let level = packet.headerExtensionElement(id: 1) { _ = try? AudioLevelExtension.parse(from: level) }
            reorder.insert(i, sequenceNumber: packet.sequenceNumber, arrival: ms(Int64(i)))
            _ = reorder.drain(now: ms(Int64(i)))
            #expect((try? RTPPacket(parsing: packet.serialized())) == packet)
        }
        #expect(parsed > 1000)
        #expect(reorder.count <= 128)
    }
}

@Suite("ReorderBuffer")
struct ReorderBufferTests {
    @Test("restores order across wrap-around, drops duplicates, reports holes after the wait, drops late packets")
    func reorder() {
        var buffer = ReorderBuffer<UInt16>(maxWait: .milliseconds(50))
        let order: [UInt16] = [65534, 0, 65535, 1, 1, 3, 4]
        var delivered: [UInt16] = []
        var holes: [(SequenceNumber, Int)] = []
        var results: [ReorderInsertResult] = []
        for (i, seq) in order.enumerated() {
            results.append(buffer.insert(seq, sequenceNumber: SequenceNumber(seq), arrival: ms(Int64(i) * 10)))
            for output in buffer.drain(now: ms(Int64(i) * 10)) {
                switch output {
                case .packet(_, let e): delivered.append(e)
                case .hole(let first, let count): holes.append((first, count))
                case .discontinuity: break
                }
            }
        }
        #expect(results[4] == .duplicate)
        #expect(delivered == [65534, 65535, 0, 1])
        #expect(holes.isEmpty)
        for output in buffer.drain(now: ms(200)) {
            switch output {
            case .packet(_, let e): delivered.append(e)
            case .hole(let first, let count): holes.append((first, count))
            case .discontinuity: break
            }
        }
        #expect(delivered == [65534, 65535, 0, 1, 3, 4])
        #expect(holes.count == 1 && holes[0].0 == 2 && holes[0].1 == 1)
        #expect(buffer.insert(2, sequenceNumber: 2, arrival: ms(210)) == .tooLate)
        #expect(buffer.insert(3, sequenceNumber: 3, arrival: ms(210)) == .duplicate)
        #expect(buffer.statistics.tooLate == 1 && buffer.statistics.duplicates == 2 && buffer.statistics.missingPackets == 1)
        #expect(buffer.insert(9, sequenceNumber: 30000, arrival: ms(220)) == .restarted)
        let after = buffer.drain(now: ms(220))
        guard case .discontinuity = after.first else { Issue.record("no discontinuity"); return }
        #expect(after.count == 2)
    }

    @Test("a full buffer gives up on the head even before the wait")
    func capacity() {
        var buffer = ReorderBuffer<Int>(maxWait: .seconds(10), capacity: 8)
        _ = buffer.insert(0, sequenceNumber: 0, arrival: ms(0))
        for i in 2..<12 { _ = buffer.insert(i, sequenceNumber: SequenceNumber(UInt16(i)), arrival: ms(0)) }
        let out = buffer.drain(now: ms(1))
        let packets = out.compactMap { if case .packet(_, let e) = $0 { e } else { nil } }
        #expect(packets == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    }
}

@Suite("TalkDetector")
struct TalkDetectorTests {
    @Test("the stepped window matches a naive power average over 10 minutes of random levels and gaps")
    func steppedWindowMatchesNaive() {
        var detector = TalkDetector()
        var rng = MediaSplitMix64(seed: 77)
        var history: [(time: Int64, level: Int)] = []
        var t: Int64 = 0
        for step in 0..<30_000 {
            t += 20
            if rng.next() % 50 == 0 { t += Int64(rng.next() % 3_000) }  // a gap: DTX or a stall
            let level = Int(rng.next() % 128)
            _ = detector.add(level: UInt8(level), at: ms(t))
            history.append((t, level))
            guard step % 97 == 0 else { continue }
            // Independent computation: power of every level in the window's 20 steps of 100 ms up to
            // the one t is in, time-weighted, over 2 s.
            var power = 0.0
            for entry in history where entry.time / 100 > t / 100 - 20 && entry.level < 127 {
                power += pow(10, -Double(entry.level) / 10) * 0.020
            }
            let expected = power > 0 ? min(127, -10 * log10(power / 2)) : 127
            // Per-step sums in Float leave rounding far below what matters (thresholds are whole dB).
            #expect(abs(detector.averageLevel - expected) < 1e-3, "at \(t) ms")
        }
    }

    @Test("a level leaves the window with its 100 ms step; a late one counts in its own step while that is in the window")
    func stepsAndLateLevels() {
        var detector = TalkDetector()
        _ = detector.add(level: 0, at: ms(50))  // step 0: 0 to 100 ms
        let loud = detector.averageLevel
        #expect(abs(loud - -10 * log10(0.020 / 2)) < 1e-3)  // full power for 20 ms of 2 s: 20 dB
        _ = detector.evaluate(now: ms(1_999))  // step 19: step 0 is still in the window
        #expect(abs(detector.averageLevel - loud) < 1e-3)
        _ = detector.evaluate(now: ms(2_000))  // step 20: step 0 has left
        #expect(detector.averageLevel == 127)
        // A packet stamped 1.5 s back arrives now: it belongs to step 5, still in the window.
        _ = detector.add(level: 0, at: ms(500), duration: .milliseconds(20))
        #expect(abs(detector.averageLevel - loud) < 1e-3)
        // One stamped 2.5 s back (step 0, gone) adds nothing.
        var late = TalkDetector()
        _ = late.evaluate(now: ms(3_000))
        _ = late.add(level: 0, at: ms(500))
        #expect(late.averageLevel == 127)
        // A long gap empties the whole window at once.
        _ = detector.evaluate(now: ms(60_000))
        #expect(detector.averageLevel == 127)
        // The state is inline: a detector per participant costs no heap block.
        #expect(MemoryLayout<TalkDetector>.size <= 160)
    }

    @Test("transitions compare window energies and give the events the average level in dB gives, for any thresholds")
    func energyThresholdsMatchLevels() {
        var rng = MediaSplitMix64(seed: 2026)
        for trial in 0..<40 {
            let start = Double(rng.next() % 131)
            let stop = start + Double(rng.next() % 20)
            let configuration = TalkDetectorConfiguration(startLevel: start, stopLevel: stop)
            var detector = TalkDetector(configuration: configuration)
            var speaking = false
            var t: Int64 = 0
            for _ in 0..<2_000 {
                t += 20
                if rng.next() % 40 == 0 { t += Int64(rng.next() % 2_500) }
                let level = UInt8(rng.next() % 2 == 0 ? rng.next() % 128 : 127)
                let event = detector.add(level: level, at: ms(t))
                // The definition, in dB: start at or below the start level, stop above the stop level.
                let average = detector.averageLevel
                var expected: TalkEvent?
                if !speaking, average <= start { expected = .started(at: ms(t)); speaking = true }
                else if speaking, average > stop { expected = .stopped(at: ms(t)); speaking = false }
                #expect(event == expected, "trial \(trial) (start \(start), stop \(stop)) at \(t) ms: average \(average)")
            }
        }
    }

    @Test("levels: loud packets start talking, silence stops it, with hysteresis")
    func levels() {
        var detector = TalkDetector()
        var events: [TalkEvent] = []
        for i in 0..<500 {
            let level: UInt8 = (100..<300).contains(i) ? 15 : 127
            if let e = detector.add(level: level, at: ms(Int64(i) * 20)) { events.append(e) }
        }
        #expect(events.count == 2)
        if case .started(let t) = events.first { #expect(t > ms(2000) && t < ms(2600)) } else { Issue.record("no start") }
        if case .stopped(let t) = events.last { #expect(t > ms(7500) && t < ms(8100)) } else { Issue.record("no stop") }
    }

    @Test("silence gives no events; a packet gap counts as silence")
    func silence() {
        var detector = TalkDetector()
        for i in 0..<500 { #expect(detector.add(level: 127, at: ms(Int64(i) * 20)) == nil) }
        var talking = TalkDetector()
        var started = false
        for i in 0..<150 { if case .started = talking.add(level: 10, at: ms(Int64(i) * 20)) { started = true } }
        #expect(started)
        #expect(talking.evaluate(now: ms(150 * 20 + 3000)) == .stopped(at: ms(150 * 20 + 3000)))
    }

    @Test("spoken audio from espeak-ng: events where the speech is, from PCM levels")
    func spokenAudio() throws {
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let raw = dir.path("speech.wav"), resampled = dir.path("speech48.wav")
        guard let speak = try MediaTools.run("espeak-ng", ["-w", raw, "Hello, this is a test of the talk detector. It should notice that somebody is speaking now."]) else { return }
        #expect(speak.status == 0)
        guard let convert = try MediaTools.run("ffmpeg", ["-y", "-v", "error", "-i", raw, "-ar", "48000", "-ac", "1", "-sample_fmt", "s16", resampled]) else { return }
        #expect(convert.status == 0, "ffmpeg: \(convert.output)")
        let speech = try WAVReader.read(path: resampled).samples
        let lead = 48_000 * 5
        let samples = [Int16](repeating: 0, count: lead) + speech + [Int16](repeating: 0, count: 48_000 * 6)
        let speechEnd = Double(lead + speech.count) / 48_000
        var detector = TalkDetector()
        var events: [TalkEvent] = []
        var index = 0
        while index + 960 <= samples.count {
            if let e = detector.add(pcm: Array(samples[index..<(index + 960)]), at: MonotonicTime(nanoseconds: Int64(index) * 1_000_000_000 / 48_000)) {
                events.append(e)
            }
            index += 960
        }
        #expect(events.count >= 2, "\(events)")
        if case .started(let t) = events.first {
            #expect(Double(t.nanoseconds) / 1e9 > 5 && Double(t.nanoseconds) / 1e9 < 7.5, "start \(t)")
        } else { Issue.record("no start: \(events)") }
        if case .stopped(let t) = events.last {
            #expect(Double(t.nanoseconds) / 1e9 > speechEnd - 0.5 && Double(t.nanoseconds) / 1e9 < speechEnd + 3, "stop \(t) vs \(speechEnd)")
        } else { Issue.record("no stop: \(events)") }
    }
}

@Suite("RTCPReceiverReportSchedule")
struct RTCPReceiverReportScheduleTests {
    /// A receive-only participant reports what it received: RR + SDES CNAME at the RFC 3550 interval,
    /// with the report block of the stream it receives (none before the stream passed probation).
    @Test("receiver reports carry the received stream's block, at the randomised RFC 3550 interval")
    func receiverReports() throws {
        var rng = MediaSplitMix64(seed: 9)
        var schedule = RTCPReceiverReportSchedule(ssrc: 0x1234_5678, cname: "peerd@rr", reducedSize: false, start: .zero, using: &rng)
        var stream = RTPReceiveStream()
        var reports: [(MonotonicTime, RTCPCompoundPacket)] = []
        var now = MonotonicTime.zero
        var sequence: UInt16 = 500
        while now < ms(60_000) {
            // From 10 s on, a sender's stream arrives (one packet in ten lost).
            if now >= ms(10_000) {
                if sequence % 10 != 0 {
                    _ = stream.receive(RTPReceiveStreamTests.header(sequence, ts: UInt32(sequence) * 960, ssrc: 0xAABB_CCDD),
                                       payloadLength: 3, arrival: now)
                }
                sequence &+= 1
            }
            if let bytes = schedule.poll(now: now, receiving: &stream) {
                reports.append((now, try RTCPCompoundPacket(parsing: bytes, requireCompoundRules: true)))
            }
            now += .milliseconds(20)
        }
        let first = try #require(reports.first).0
        #expect(first >= ms(1250) && first <= ms(3760))
        for index in 1..<reports.count {
            let gap = Double((reports[index].0 - reports[index - 1].0).nanosecondsClamped) / 1e9
            #expect(gap >= 2.5 && gap <= 7.52)
        }
        var blocksSeen = 0
        for (time, compound) in reports {
            guard case .receiverReport(let rr) = compound.packets.first else { Issue.record("no RR first"); continue }
            #expect(rr.ssrc == 0x1234_5678)
            guard case .sourceDescription(let sdes) = compound.packets.last else { Issue.record("no SDES"); continue }
            #expect(sdes.chunks.first?.items.first?.text == "peerd@rr")
            if time < ms(10_000) {
                #expect(rr.reportBlocks.isEmpty, "a block before anything was received")
            } else if let block = rr.reportBlocks.first, time > ms(12_000) {
                blocksSeen += 1
                #expect(block.ssrc == 0xAABB_CCDD)
                #expect(block.fractionLost > 0 && block.cumulativeLost > 0, "the lost tenth is reported")
            }
        }
        #expect(blocksSeen >= 5)

        // Reduced size (RFC 5506): SDES only with every fourth report.
        var reduced = RTCPReceiverReportSchedule(ssrc: 7, cname: "c", reducedSize: true, start: .zero, using: &rng)
        var counts: [Int] = []
        now = .zero
        while counts.count < 5 {
            if let bytes = reduced.poll(now: now, reportBlocks: []) { counts.append(try RTCPCompoundPacket(parsing: bytes).packets.count) }
            now += .milliseconds(100)
        }
        #expect(counts == [2, 1, 1, 1, 2])
    }
}
