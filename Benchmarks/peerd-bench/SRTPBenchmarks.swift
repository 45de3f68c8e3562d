import DTLS
import Wire

/// Issue 4 figures: SRTP protect/unprotect of a 12-byte header + 100-byte payload through the
/// Swift wrapper. `Benchmarks/c/srtp_bench.c` does exactly the same with libsrtp2 directly:
/// each round prepares `batch` packets with consecutive sequence numbers (untimed), then times
/// protecting them in place, then unprotecting them in place on the peer session.
enum SRTPBenchmarks {
    static let profiles: [(label: String, profile: SRTPProfile)] = [
        ("GCM-128", .aeadAes128Gcm), ("GCM-256", .aeadAes256Gcm), ("AES-CM-80", .aes128CmSha1_80),
    ]
    static let batch = 20_000
    static let rounds = 7
    static let payloadLength = 100

    static func run(_ bench: inout Bench) {
        for (label, profile) in profiles {
            let keys = SRTPKeyingMaterial(localKey: Array(repeating: 1, count: profile.keyLength), localSalt: Array(repeating: 2, count: profile.saltLength),
                                          remoteKey: Array(repeating: 3, count: profile.keyLength), remoteSalt: Array(repeating: 4, count: profile.saltLength))
            bench.sampleWhole("srtp/\(label): SRTPSession init + deinit (in + out context)", runs: 100) {
                blackHole(try! SRTPSession(profile: profile, keys: keys))
            }
            // Debian's libsrtp2 uses NSS and calls NSS_InitContext per cipher; NSS loads its
            // soft token on the first context and unloads it with the last, so the cost depends
            // on whether another SRTP session is alive.
            let keeper = try! SRTPSession(profile: profile, keys: keys)
            bench.sampleWhole("srtp/\(label): SRTPSession init + deinit, another session alive", runs: 100) {
                blackHole(try! SRTPSession(profile: profile, keys: keys))
            }
            blackHole(keeper)
        }
        for (label, profile) in profiles {
            let protectName = "srtp/\(label): protect RTP (12+100 bytes)"
            let unprotectName = "srtp/\(label): unprotect RTP (12+100 bytes)"
            guard bench.enabled(any: [protectName, unprotectName]) else { continue }
            let (sender, receiver) = try! SRTPSession.makeLoopbackPair(profile: profile)
            let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
            var sequence: UInt16 = 1
            var protectRounds: [Double] = []
            var unprotectRounds: [Double] = []
            for round in 0...rounds {
                var packets: [[UInt8]] = []
                packets.reserveCapacity(batch)
                for _ in 0..<batch {
                    var packet = [UInt8]()
                    packet.reserveCapacity(12 + payloadLength + SRTPSession.maxTrailerLength)
                    packet.append(0x80)
                    packet.append(111)
                    packet.appendBigEndian(sequence)
                    packet.appendBigEndian(UInt32(sequence) &* 960)
                    packet.appendBigEndian(UInt32(0x1234_5678))
                    packet.append(contentsOf: payload)
                    packets.append(packet)
                    sequence &+= 1
                }
                var start = MonotonicTime.now()
                for index in packets.indices { try! sender.protectRTP(&packets[index]) }
                let protectNanoseconds = elapsedNanoseconds(since: start)
                start = MonotonicTime.now()
                for index in packets.indices { try! receiver.unprotectRTP(&packets[index]) }
                let unprotectNanoseconds = elapsedNanoseconds(since: start)
                precondition(packets[0].count == 12 + payloadLength && Array(packets[0][12...]) == payload)
                if round > 0 {
                    protectRounds.append(Double(protectNanoseconds) / Double(batch))
                    unprotectRounds.append(Double(unprotectNanoseconds) / Double(batch))
                }
            }
            if bench.enabled(protectName) { bench.record(protectName, bench.median(protectRounds), note: "+\(profile.rtpOverhead) bytes tag") }
            if bench.enabled(unprotectName) { bench.record(unprotectName, bench.median(unprotectRounds)) }
        }
    }
}
