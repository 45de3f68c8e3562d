import Foundation
import DTLS
import ICE
import PeerConnection
import RTP
import SDP
import Wire

/// Issue 7 figures: two `PeerConnectionCore`s back to back in one process (as the tests' Pair):
/// wall time from `createOffer` to both `isConnected`, and to the first RTP packet delivered.
/// No network delay: the virtual clock jumps to the next timeout whenever nothing is in flight,
/// so wall time is CPU time. Certificates are made once (their cost is in the dtls group).
enum PeerConnectionBenchmarks {
    final class Pair {
        let a: PeerConnectionCore
        let b: PeerConnectionCore
        let addressA = TransportAddress("10.0.0.1:40000")!
        let addressB = TransportAddress("10.0.0.2:50000")!
        var now = MonotonicTime(nanoseconds: 1_000_000_000)
        var rtpAtB = 0
        var dtlsDatagrams = 0
        var stunDatagrams = 0

        func count(_ bytes: [UInt8]) {
            switch PacketClass.classify(firstByte: bytes[0]) {
            case .dtls: dtlsDatagrams += 1
            case .stun: stunDatagrams += 1
            default: break
            }
        }

        init(certificateA: DTLSCertificate, certificateB: DTLSCertificate, seed: UInt64, nominationDelay: Duration?) {
            var iceA = ICEAgentConfiguration()
            iceA.seed = seed
            var iceB = ICEAgentConfiguration()
            iceB.seed = seed + 1
            if let nominationDelay { iceA.nominationDelay = nominationDelay; iceB.nominationDelay = nominationDelay }
            a = PeerConnectionCore(configuration: PeerConnectionConfiguration(certificate: certificateA, ice: iceA, ssrc: 1111))
            b = PeerConnectionCore(configuration: PeerConnectionConfiguration(certificate: certificateB, ice: iceB, ssrc: 2222))
            a.addHostCandidates([addressA])
            b.addHostCandidates([addressB])
            a.endOfLocalCandidates()
            b.endOfLocalCandidates()
        }

        func negotiate() {
            let offer = try! a.createOffer(now: now)
            let answer = try! b.acceptOffer(try! SessionDescription(parsing: offer.serialized()), now: now)
            try! a.setRemoteAnswer(try! SessionDescription(parsing: answer.serialized()), now: now)
            for candidate in a.localCandidates { b.addRemoteCandidate(candidate) }
            for candidate in b.localCandidates { a.addRemoteCandidate(candidate) }
        }

        func run(until done: () -> Bool) {
            var steps = 0
            while !done() {
                steps += 1
                precondition(steps < 1_000_000, "peers did not get there")
                var moved = false
                while let out = a.pollTransmit() {
                    moved = true
                    count(out.bytes)
                    if out.to == addressB, case .rtp = b.handleDatagram(out.bytes, from: out.from, to: addressB, now: now) { rtpAtB += 1 }
                }
                while let out = b.pollTransmit() {
                    moved = true
                    count(out.bytes)
                    if out.to == addressA, let media = a.handleDatagram(out.bytes, from: out.from, to: addressA, now: now) { blackHole(media) }
                }
                while let event = a.pollEvent() { blackHole(event) }
                while let event = b.pollEvent() { if case .rtp = event { rtpAtB += 1 } }
                if done() { return }
                if !moved {
                    let next = [a.nextTimeout, b.nextTimeout].compactMap { $0 }.min() ?? now + .milliseconds(1)
                    now = max(now + .microseconds(1), next)
                    a.handleTimeout(now: now)
                    b.handleTimeout(now: now)
                }
            }
        }
    }

    static func run(_ bench: inout Bench) {
        // "cold": no SRTP session alive between runs, so Debian's NSS-backed libsrtp2 loads and
        // unloads NSS's soft token on every connect (see the srtp group); "warm": another SRTP
        // session stays alive, as in a process that already carries a call.
        let variants: [(label: String, warm: Bool)] = [("NSS cold", false), ("NSS warm", true)]
        let allNames = variants.flatMap { ["pc/two cores (\($0.label)): createOffer -> both connected",
                                           "pc/two cores (\($0.label)): createOffer -> first RTP at B"] }
        guard bench.enabled(any: allNames) else { return }
        let certificateA = try! DTLSCertificate.generate()
        let certificateB = try! DTLSCertificate.generate()
        let rtp = RTPWireBenchmarks.typicalPacket(sequence: 1, timestamp: 960).serialized()
        for variant in variants {
            let connectedName = "pc/two cores (\(variant.label)): createOffer -> both connected"
            let firstRTPName = "pc/two cores (\(variant.label)): createOffer -> first RTP at B"
            guard bench.enabled(any: [connectedName, firstRTPName]) else { continue }
            var negotiated: [Double] = []
            var selected: [Double] = []
            var connected: [Double] = []
            var firstRTP: [Double] = []
            var virtualConnected: Duration = .zero
            var datagramCounts = ""
            var seed: UInt64 = 1
            let keeper = variant.warm ? try! SRTPSession.makeLoopbackPair(profile: .aeadAes256Gcm).a : nil
            defer { blackHole(keeper) }
            for run in 0..<42 {
                seed += 2
                let pair = Pair(certificateA: certificateA, certificateB: certificateB, seed: seed, nominationDelay: nil)
                let virtualStart = pair.now
                let start = MonotonicTime.now()
                pair.negotiate()
                let negotiatedAt = elapsedNanoseconds(since: start)
                pair.run { pair.a.selectedPair != nil && pair.b.selectedPair != nil }
                let selectedAt = elapsedNanoseconds(since: start)
                pair.run { pair.a.isConnected && pair.b.isConnected }
                let connectedAt = elapsedNanoseconds(since: start)
                virtualConnected = pair.now - virtualStart
                datagramCounts = "\(pair.stunDatagrams) STUN + \(pair.dtlsDatagrams) DTLS datagrams"
                pair.a.sendRTP(rtp)
                pair.run { pair.rtpAtB > 0 }
                let firstRTPAt = elapsedNanoseconds(since: start)
                if run >= 2 {
                    negotiated.append(Double(negotiatedAt))
                    selected.append(Double(selectedAt))
                    connected.append(Double(connectedAt))
                    firstRTP.append(Double(firstRTPAt))
                }
            }
            connected.sort()
            firstRTP.sort()
            let b = bench
            func spread(_ values: [Double]) -> String { "[min \(b.humanTime(values.first!)), max \(b.humanTime(values.last!)), n=\(values.count)]" }
            if bench.enabled(connectedName) {
                bench.record(connectedName, bench.median(connected), note: spread(connected) + " virtual \(bench.humanTime(Double(virtualConnected.nanosecondsClamped)))")
            }
            if bench.enabled(firstRTPName) { bench.record(firstRTPName, bench.median(firstRTP), note: spread(firstRTP)) }
            bench.report("  stages (medians): offer/answer/candidates done", bench.humanTime(bench.median(negotiated)))
            bench.report("  stages (medians): both ICE selected pair", bench.humanTime(bench.median(selected)), note: "last run: " + datagramCounts)
        }
    }
}

/// Issue 7: the core's receive path over many live connections, without sockets. N connected pairs
/// (as `pc/`); every B core is fed, round robin, datagrams its A protected beforehand, and its RTP
/// events polled, as the driver does. Compares the warm one-connection cost with N cold ones: what
/// the per-connection state costs when every packet belongs to another connection.
enum ManyConnectionsBenchmark {
    static func run(_ bench: inout Bench) {
        let counts = [10, 100, 1000, 3000]
        let names = counts.map { "pc/receive over \($0) connections: handleDatagram, RTP returned" }
        guard bench.enabled(any: names) else { return }
        let certificateA = try! DTLSCertificate.generate()
        let certificateB = try! DTLSCertificate.generate()
        let packetsPerConnection = Int(ProcessInfo.processInfo.environment["PEERD_BENCH_PACKETS"] ?? "") ?? 40
        for (count, name) in zip(counts, names) where bench.enabled(name) {
            var pairs: [PeerConnectionBenchmarks.Pair] = []
            var datagrams: [[[UInt8]]] = []
            for index in 0..<count {
                let pair = PeerConnectionBenchmarks.Pair(certificateA: certificateA, certificateB: certificateB,
                                                         seed: UInt64(index) * 2 + 1, nominationDelay: nil)
                pair.negotiate()
                pair.run { pair.a.isConnected && pair.b.isConnected }
                var own: [[UInt8]] = []
                for k in 0..<packetsPerConnection {
                    let rtp = RTPWireBenchmarks.typicalPacket(sequence: UInt16(100 + k), timestamp: UInt32(100 + k) * 960).serialized()
                    pair.a.sendRTP(rtp)
                    while let out = pair.a.pollTransmit() {
                        if PacketClass.classify(firstByte: out.bytes[0]) == .rtpOrRTCP { own.append(out.bytes) }
                    }
                }
                while pair.b.pollEvent() != nil {}
                pairs.append(pair)
                datagrams.append(own)
            }
            // Round 0 (not timed) makes libsrtp's per-SSRC stream and the first-packet state of each.
            // Every later round (one packet per connection) is timed alone; the median round counts.
            let rounds = max(2, min(packetsPerConnection, 2_000_000 / count))
            var delivered = 0
            var perRound: [Double] = []
            var total: Int64 = 0
            for round in 0..<rounds {
                let start = MediaBenchmarks.threadCPUNanoseconds()
                let before = delivered
                for index in pairs.indices {
                    let pair = pairs[index]
                    pair.now = pair.now + .milliseconds(20)
                    // Handed over as the socket layer does: the only reference to a fresh array.
                    let datagram = datagrams[index][round]
                    datagrams[index][round] = []
                    if case .rtp = pair.b.handleDatagram(datagram, from: pair.addressA, to: pair.addressB, now: pair.now) { delivered += 1 }
                }
                let elapsed = MediaBenchmarks.threadCPUNanoseconds() - start
                precondition(delivered - before == count, "lost packets in round \(round): \(delivered - before) of \(count)")
                if round > 0 {
                    perRound.append(Double(elapsed) / Double(count))
                    total += elapsed
                }
            }
            if ProcessInfo.processInfo.environment["PEERD_BENCH_PACKETS"] != nil {
                print("  timed loop ended at monotonic \(MonotonicTime.now().nanoseconds), took \(total) ns CPU")  // for perf -k mono
            }
            bench.record(name, bench.median(perRound), note: "median of \(rounds - 1) rounds of one packet per connection; thread CPU time")
        }
    }
}
