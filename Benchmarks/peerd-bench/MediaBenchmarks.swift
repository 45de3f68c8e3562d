import DTLS
import RTP
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Issue 5 figures: the receive path of one audio stream, per packet, and memory per stream.
/// Packets are real Opus (libopus, 20 ms mono, 32 kbit/s ≈ 80 bytes) in the typical browser RTP
/// packet (audio level + mid extensions), protected with AEAD_AES_256_GCM (what Chromium
/// negotiates), arriving every 20 ms of virtual time in order.
enum MediaBenchmarks {
    static let batch = 5_000
    static let rounds = 7

    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID) in ns: unlike wall time, it does
    /// not count the time other processes on a loaded machine take from this thread.
    static func threadCPUNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Like `Bench.measure`, timed in thread CPU time: 7 rounds of `iterations` after a warm-up, median.
    static func measureCPU(_ bench: inout Bench, _ name: String, iterations: Int = 100_000, note: String = "", _ body: () -> Void) {
        guard bench.enabled(name) else { return }
        for _ in 0..<max(1, iterations / 10) { body() }
        var perRound: [Double] = []
        for _ in 0..<7 {
            let start = threadCPUNanoseconds()
            for _ in 0..<iterations { body() }
            perRound.append(Double(threadCPUNanoseconds() - start) / Double(iterations))
        }
        bench.record(name, bench.median(perRound), note: note.isEmpty ? "thread CPU time" : note + "; thread CPU time")
    }

    /// `count` Opus packets of a 440 Hz tone with some noise.
    static func opusPackets(count: Int) -> [[UInt8]] {
        let encoder = try! OpusEncoder(channels: 1, application: .voip)
        try! encoder.setBitrate(32_000)
        var phase = 0.0
        var noise: UInt32 = 12345
        return (0..<count).map { _ in
            var pcm = [Int16](repeating: 0, count: 960)
            for i in 0..<960 {
                noise = noise &* 1_103_515_245 &+ 12345
                let n = Double(Int32(bitPattern: noise) >> 16) / 32768.0
                pcm[i] = Int16(clamping: Int((sin(phase) * 0.4 + n * 0.05) * 32767))
                phase += 2 * Double.pi * 440 / 48_000
            }
            return try! encoder.encode(pcm)
        }
    }

    /// Everything one remote participant's receive path holds.
    final class ReceivePath {
        let srtp: SRTPSession
        var stream = RTPReceiveStream(payloadTypes: [111], clockRate: 48_000)
        var reorder = ReorderBuffer<RTPPacket>()
        let output = OggMemoryOutput()
        let recorder: OggOpusRecorder
        let decoder: OpusDecoder?
        var samplesDecoded = 0

        init(srtp: SRTPSession, decode: Bool, serial: UInt32) {
            self.srtp = srtp
            recorder = try! OggOpusRecorder(output: output, serialNumber: serial)
            decoder = decode ? try! OpusDecoder(channels: 1) : nil
        }

        /// One datagram: unprotect, parse, stream bookkeeping, reorder, record (and decode).
        @inline(__always)
        func receive(_ datagram: inout [UInt8], arrival: MonotonicTime) {
            do { try srtp.unprotectRTP(&datagram) } catch { preconditionFailure("SRTP: \(error)") }
            guard let packet = try? RTPPacket(parsing: datagram) else { preconditionFailure("RTP parse") }
            switch stream.receive(packet, arrival: arrival) {
            case .accepted, .reordered, .restarted, .probation: break
            default: return
            }
            reorder.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            while let output = reorder.next(now: arrival) {
                guard case .packet(_, let ready) = output else { continue }
                do { try recorder.receive(ready, arrival: arrival) } catch { preconditionFailure("recorder: \(error)") }
                if let decoder {
                    do { samplesDecoded += try decoder.decode(Array(ready.payload)).count } catch { preconditionFailure("opus: \(error)") }
                }
            }
        }
    }

    static func run(_ bench: inout Bench) {
        let names = ["media/receive: SRTP + RTP + stream + reorder + Ogg pass-through",
                     "media/receive: ... + Opus decode to PCM",
                     "media/receive: Opus decode alone",
                     "media/memory per receive stream"]
        guard bench.enabled(any: names + ["media/stage: ", "media/playout: ", oggFilesName]) else { return }
        let opus = opusPackets(count: 250)
        let averageOpus = opus.reduce(0) { $0 + $1.count } / opus.count

        for (index, name) in names.prefix(2).enumerated() where bench.enabled(name) {
            let (sender, receiver) = try! SRTPSession.makeLoopbackPair(profile: .aeadAes256Gcm)
            let path = ReceivePath(srtp: receiver, decode: index == 1, serial: 1)
            var sequence: UInt16 = 1
            var arrival = MonotonicTime(nanoseconds: 1_000_000_000)
            var perRound: [Double] = []
            var datagramLength = 0
            for round in 0...rounds {
                var datagrams: [[UInt8]] = []
                datagrams.reserveCapacity(batch)
                for _ in 0..<batch {
                    let packet = RTPWireBenchmarks.typicalPacket(sequence: sequence, timestamp: UInt32(sequence) &* 960,
                                                                 payload: opus[Int(sequence) % opus.count])
                    var bytes = [UInt8]()
                    bytes.reserveCapacity(packet.serializedLength + SRTPSession.maxTrailerLength)
                    packet.serialize(into: &bytes)
                    try! sender.protectRTP(&bytes)
                    datagrams.append(bytes)
                    sequence &+= 1
                }
                datagramLength = datagrams[0].count
                let start = threadCPUNanoseconds()
                for i in datagrams.indices {
                    arrival = arrival + .milliseconds(20)
                    path.receive(&datagrams[i], arrival: arrival)
                }
                let elapsed = threadCPUNanoseconds() - start
                if round > 0 { perRound.append(Double(elapsed) / Double(batch)) }
            }
            precondition(path.recorder.statistics.packetsWritten >= batch * rounds, "recorder dropped packets")
            let ns = bench.median(perRound)
            bench.record(name, ns, note: "\(datagramLength)-byte datagrams, Opus avg \(averageOpus) B; thread CPU time")
            bench.report("  streams per core at 50 packets/s", "\(Int(1e9 / (50 * ns)))", note: "1e9 / (50 × ns per packet)")
        }

        if bench.enabled(names[2]) {
            let decoder = try! OpusDecoder(channels: 1)
            var i = 0
            measureCPU(&bench, names[2], iterations: 2_000, note: "20 ms mono 48 kHz") {
                blackHole(try! decoder.decode(opus[i % opus.count]))
                i &+= 1
            }
        }

        stages(&bench, opus: opus)
        playout(&bench, opus: opus)
        if bench.enabled(names[3]) { memoryPerStream(&bench, opus: opus, name: names[3]) }
        if bench.enabled(oggFilesName) { oggFiles(&bench, opus: opus) }
    }

    static let oggFilesName = "media/ogg files: 1,000 streams written to files, per packet"

    /// The recording end of the pass-through path at scale: 1,000 `OggOpusWriter`s on
    /// `OggFileOutput`s in one directory of the temp file system, fed one packet each in turn
    /// (as 1,000 streams at 50 packets/s arrive), so each writer's once-a-second page write goes
    /// to the kernel as in `peerd-load`. Thread CPU time per packet, system time included (page
    /// cache writes are most of it), median of 9 simulated seconds after 2 of warm-up.
    static func oggFiles(_ bench: inout Bench, opus: [[UInt8]]) {
        let streams = 1_000
        let temporary = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        let template = temporary + "/peerd-bench-ogg-XXXXXX"
        var pathBytes = Array(template.utf8CString)
        guard let made = mkdtemp(&pathBytes) else { preconditionFailure("mkdtemp: \(errno)") }
        let directory = String(cString: made)
        defer {
            for i in 0..<streams { unlink(directory + "/\(i).ogg") }
            rmdir(directory)
        }
        let writers = (0..<streams).map { i in
            let output = try! OggFileOutput(path: directory + "/\(i).ogg")
            return try! OggOpusWriter(output: output, head: OpusHead(channelCount: 1, preSkip: 312, inputSampleRate: 48_000),
                                      serialNumber: UInt32(i + 1))
        }
        var perSecond: [Double] = []
        var granule: Int64 = 312
        var bytes = 0
        for second in 0..<11 {
            let start = threadCPUNanoseconds()
            for k in 0..<50 {
                granule += 960
                let packet = opus[(second * 50 + k) % opus.count]
                for writer in writers { try! writer.write(packet: packet, granulePosition: granule) }
                bytes += packet.count * streams
            }
            let elapsed = threadCPUNanoseconds() - start
            if second >= 2 { perSecond.append(Double(elapsed) / Double(50 * streams)) }
        }
        for writer in writers { try! writer.finish() }
        bench.record(oggFilesName, bench.median(perSecond),
                     note: "\(bytes / (11 * streams)) B/s per stream to \(directory); thread CPU time incl. system")
    }

    /// Where the pass-through time goes: each stage alone, on in-order packets 20 ms apart.
    static func stages(_ bench: inout Bench, opus: [[UInt8]]) {
        let packets = (0..<4096).map { i in
            RTPWireBenchmarks.typicalPacket(sequence: UInt16(i), timestamp: UInt32(i) * 960, payload: opus[i % opus.count])
        }
        var sequence = 0
        var arrival = MonotonicTime(nanoseconds: 1_000_000_000)
        func next() -> RTPPacket {
            var packet = packets[sequence & 4095]
            packet.sequenceNumber = SequenceNumber(UInt16(truncatingIfNeeded: sequence))
            packet.timestamp = RTPTimestamp(UInt32(truncatingIfNeeded: sequence &* 960))
            sequence &+= 1
            arrival = arrival + .milliseconds(20)
            return packet
        }
        var stream = RTPReceiveStream(payloadTypes: [111], clockRate: 48_000)
        measureCPU(&bench, "media/stage: RTPReceiveStream.receive", iterations: 100_000) {
            let packet = next()
            blackHole(stream.receive(packet, arrival: arrival))
        }
        var reorder = ReorderBuffer<RTPPacket>()
        measureCPU(&bench, "media/stage: ReorderBuffer insert + drain (in order)", iterations: 100_000) {
            let packet = next()
            reorder.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            blackHole(reorder.drain(now: arrival))
        }
        reorder = ReorderBuffer<RTPPacket>()
        measureCPU(&bench, "media/stage: ReorderBuffer insert + next (in order)", iterations: 100_000) {
            let packet = next()
            reorder.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            while let output = reorder.next(now: arrival) { blackHole(output) }
        }
        // 5% of adjacent pairs swapped (each swapped packet arrives one slot late), 1% lost.
        var rng: UInt64 = 99
        func random() -> UInt64 { rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return rng >> 33 }
        var order = Array(0..<4096)
        var k = 0
        while k < 4094 { if random() % 100 < 5 { order.swapAt(k, k + 1); k += 2 } else { k += 1 } }
        let lostSlots = Set((0..<4096).filter { _ in random() % 100 == 0 })
        var slot = 0
        var base = 0
        func nextShuffled() -> RTPPacket? {
            let index = slot & 4095
            let seq = base + order[index]
            slot &+= 1
            if index == 4095 { base += 4096 }
            arrival = arrival + .milliseconds(20)
            guard !lostSlots.contains(index) else { return nil }
            var packet = packets[seq & 4095]
            packet.sequenceNumber = SequenceNumber(UInt16(truncatingIfNeeded: seq))
            packet.timestamp = RTPTimestamp(UInt32(truncatingIfNeeded: seq &* 960))
            return packet
        }
        reorder = ReorderBuffer<RTPPacket>()
        measureCPU(&bench, "media/stage: ReorderBuffer insert + next (5% reordered, 1% lost)", iterations: 100_000) {
            guard let packet = nextShuffled() else { return }
            reorder.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            while let output = reorder.next(now: arrival) { blackHole(output) }
        }
        var baseline = DictionaryReorderBaseline<RTPPacket>()
        measureCPU(&bench, "media/stage: baseline Dictionary+Set reorder (in order)", iterations: 100_000,
                      note: "the ReorderBuffer before the ring, kept here for comparison") {
            let packet = next()
            baseline.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            blackHole(baseline.drain(now: arrival))
        }
        baseline = DictionaryReorderBaseline<RTPPacket>()
        slot = 0
        base = 0
        measureCPU(&bench, "media/stage: baseline Dictionary+Set reorder (5% reordered, 1% lost)", iterations: 100_000) {
            guard let packet = nextShuffled() else { return }
            baseline.insert(packet, sequenceNumber: packet.sequenceNumber, arrival: arrival)
            blackHole(baseline.drain(now: arrival))
        }
        let recorder = try! OggOpusRecorder(output: OggMemoryOutput(), serialNumber: 7)
        measureCPU(&bench, "media/stage: OggOpusRecorder.receive (to memory)", iterations: 100_000) {
            let packet = next()
            try! recorder.receive(packet, arrival: arrival)
        }
    }

    /// The live playout path per 20 ms tick: the packets that arrived inserted, then one `pull`
    /// (Opus decode, concealment, time stretching included), on a trace with up to 30 ms of
    /// uniform arrival jitter (so packets are reordered) and 2% loss, on a virtual clock.
    static func playout(_ bench: inout Bench, opus: [[UInt8]]) {
        let name = "media/playout: PlayoutBuffer insert + pull per 20 ms tick (30 ms jitter, 2% loss)"
        guard bench.enabled(name) else { return }
        var rng: UInt64 = 7
        func random() -> UInt64 { rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return rng >> 33 }
        let count = 3000
        var trace: [(arrival: Int64, seq: Int)] = []
        for k in 0..<count where random() % 100 >= 2 {
            trace.append((Int64(k) * 20_000_000 + Int64(random() % 30_000_000), k))
        }
        trace.sort { $0.arrival < $1.arrival }
        bench.sample(name, runs: 7, warmUp: 1, note: "\(count) ticks per run, thread CPU time") {
            let buffer = try! PlayoutBuffer()
            var next = 0
            let start = threadCPUNanoseconds()
            for tick in 0..<count {
                let now = Int64(tick) * 20_000_000 + 10_000_000
                while next < trace.count, trace[next].arrival <= now {
                    let seq = trace[next].seq
                    buffer.insert(ssrc: 0xCAFE, sequenceNumber: SequenceNumber(UInt16(truncatingIfNeeded: seq)),
                                  timestamp: RTPTimestamp(UInt32(truncatingIfNeeded: seq &* 960)), payload: opus[seq % opus.count],
                                  arrival: MonotonicTime(nanoseconds: trace[next].arrival))
                    next += 1
                }
                blackHole(buffer.pull(now: MonotonicTime(nanoseconds: now)))
            }
            return (threadCPUNanoseconds() - start) / Int64(count)
        }
    }

    /// 500 receive paths (SRTP session, receive stream, reorder buffer, Ogg pass-through
    /// recorder; then the same with an Opus decoder), each fed one second (50 packets).
    /// The recorded Ogg bytes, kept in memory here, are subtracted (a real recorder writes a file).
    static func memoryPerStream(_ bench: inout Bench, opus: [[UInt8]], name: String) {
        let count = 500
        for decode in [false, true] {
            let pairs = (0..<count).map { _ in try! SRTPSession.makeLoopbackPair(profile: .aeadAes256Gcm) }
            var datagrams: [[[UInt8]]] = pairs.map { pair in
                (1...50).map { seq in
                    var bytes = RTPWireBenchmarks.typicalPacket(sequence: UInt16(seq), timestamp: UInt32(seq) * 960, payload: opus[seq]).serialized()
                    try! pair.a.protectRTP(&bytes)
                    return bytes
                }
            }
            let heapBefore = heapBytesInUse()
            var paths: [ReceivePath] = []
            paths.reserveCapacity(count)
            var arrival = MonotonicTime(nanoseconds: 1_000_000_000)
            for i in 0..<count {
                let path = ReceivePath(srtp: pairs[i].b, decode: decode, serial: UInt32(i))
                for j in 0..<50 { path.receive(&datagrams[i][j], arrival: arrival + .milliseconds(20 * j)) }
                paths.append(path)
            }
            arrival = arrival + .seconds(1)
            let recorded = paths.reduce(0) { $0 + $1.output.bytes.capacity }
            let heapDelta = heapBytesInUse() - heapBefore - recorded
            blackHole(pairs)  // keeps the sending sessions alive until after the snapshot
            // SRTP sessions were made before the snapshot: measure them separately.
            let srtpBefore = heapBytesInUse()
            let extra = (0..<count).map { _ in try! SRTPSession.makeLoopbackPair(profile: .aeadAes256Gcm).b }
            let srtpPer = (heapBytesInUse() - srtpBefore) / count
            blackHole(extra)
            let perStream = heapDelta / count + srtpPer
            bench.report(name + (decode ? " (with Opus decoder)" : " (pass-through)"), "\(perStream) B",
                         note: "heap delta / \(count) after 1 s of packets, incl. one SRTPSession (in + out) \(srtpPer) B, excl. Ogg bytes")
            blackHole(paths)
            blackHole(datagrams)
        }
    }
}

/// The `ReorderBuffer` before it became a ring (a `Dictionary` of slots, a `Set` of delivered
/// numbers, an array per drain), kept only as the baseline of the reorder stage benchmark.
struct DictionaryReorderBaseline<Element: Sendable> {
    let maxWait: Duration = .milliseconds(60)
    let capacity = 128
    let maxJump = 3000
    private var unwrapper = SequenceUnwrapper()
    private var nextExpected: Int64?
    private var slots: [Int64: (element: Element, arrival: MonotonicTime)] = [:]
    private var highestInserted: Int64 = .min
    private var deliveredWindow = Set<Int64>()

    mutating func insert(_ element: Element, sequenceNumber: SequenceNumber, arrival: MonotonicTime) {
        let extended = unwrapper.peek(sequenceNumber)
        if let expected = nextExpected {
            if extended < expected || slots[extended] != nil { _ = deliveredWindow.contains(extended); return }
        } else {
            nextExpected = extended
        }
        _ = unwrapper.unwrap(sequenceNumber)
        highestInserted = max(highestInserted, extended)
        slots[extended] = (element, arrival)
    }

    mutating func drain(now: MonotonicTime) -> [ReorderOutput<Element>] {
        var out: [ReorderOutput<Element>] = []
        guard var expected = nextExpected else { return out }
        while !slots.isEmpty {
            if let slot = slots.removeValue(forKey: expected) {
                out.append(.packet(sequenceNumber: SequenceNumber(UInt16(truncatingIfNeeded: expected)), element: slot.element))
                deliveredWindow.insert(expected)
                if deliveredWindow.count > 1024 { deliveredWindow = deliveredWindow.filter { $0 > expected - 512 } }
                expected += 1
                continue
            }
            var oldestArrival = MonotonicTime(nanoseconds: .max)
            var lowest = Int64.max
            for (key, slot) in slots {
                if slot.arrival < oldestArrival { oldestArrival = slot.arrival }
                if key < lowest { lowest = key }
            }
            guard now - oldestArrival >= maxWait || slots.count >= capacity else { break }
            out.append(.hole(first: SequenceNumber(UInt16(truncatingIfNeeded: expected)), count: Int(lowest - expected)))
            expected = lowest
        }
        nextExpected = expected
        return out
    }
}
