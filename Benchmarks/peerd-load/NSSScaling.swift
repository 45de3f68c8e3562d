import DTLS
import Foundation
import RTP
import Wire

/// `peerd-load srtp-scaling [--sessions 1,1000,4000]`: SRTP protect +
/// unprotect of a 100-byte RTP packet, round robin over K live session pairs (as a receiver with
/// K connections), to show how Debian's NSS-backed libsrtp2 scales with the number of sessions.
/// CPU time of this thread. By default libsrtp's ciphers run on OpenSSL (DTLS `SRTPCrypto`);
/// `PEERD_SRTP_CRYPTO=nss` keeps libsrtp's NSS types, and `PEERD_NSS_OPTIMIZE_SPACE=1` with it gives
/// the figures with NSS's small tables (as before DTLS's `NSSTables`).
enum SRTPScaling {
    static func run(arguments: [String]) throws {
        var counts = [1, 500, 1000, 2000, 4000]
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "--sessions": index += 1; counts = arguments[index].split(separator: ",").compactMap { Int($0) }
            default: break
            }
            index += 1
        }
        let small = ProcessInfo.processInfo.environment["PEERD_NSS_OPTIMIZE_SPACE"] == "1"
        let payload = [UInt8](repeating: 0x5A, count: 80)
        var pairs: [(a: SRTPSession, b: SRTPSession)] = []
        var sequence: [UInt16] = []
        let say = { (line: String) in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
        let crypto = SRTPCrypto.onOpenSSL.contains(.aesGCM) ? SRTPCrypto.summary
            : SRTPCrypto.summary + (small ? ", PEERD_NSS_OPTIMIZE_SPACE=1: NSS with libsrtp's 32-bucket tables" : ", NSS initialised by peerd with 1024-bucket tables")
        say("SRTP AEAD_AES_128_GCM protect + unprotect, 100-byte RTP packet, round robin over K session pairs (\(crypto))")
        for count in counts.sorted() {
            while pairs.count < count {
                pairs.append(try SRTPSession.makeLoopbackPair(profile: .aeadAes128Gcm))
                sequence.append(1)
            }
            let rounds = max(20_000, 200_000 / count * count)
            var packets = 0
            let start = threadCPUNanoseconds()
            for round in 0..<rounds {
                let i = round % count
                var bytes = RTPPacket(payloadType: 111, sequenceNumber: SequenceNumber(sequence[i]), timestamp: RTPTimestamp(UInt32(sequence[i]) &* 960),
                                      ssrc: SSRC(rawValue: UInt32(i + 1)), payload: payload[...]).serialized()
                sequence[i] &+= 1
                try pairs[i].a.protectRTP(&bytes)
                try pairs[i].b.unprotectRTP(&bytes)
                packets += 1
            }
            let perPacket = Double(threadCPUNanoseconds() - start) / Double(packets) / 1000
            say("  K = \(count) session pairs: \(formatted(perPacket, 2)) µs per protect + unprotect")
        }
    }
}
