import Testing
@testable import DTLS

/// `NSSTables`: NSS can be initialised by peerd with its large tables (used when libsrtp keeps its
/// NSS types: `PEERD_SRTP_CRYPTO=nss`, or a refused OpenSSL type), and libsrtp keeps working when
/// many sessions come and go.
@Suite struct NSSTablesTests {
    @Test func nssCanBeInitialisedWithLargeTablesOnThisPlatform() throws {
        _ = try SRTPSession.makeLoopbackPair(profile: .aeadAes128Gcm)
        // Debian's libsrtp2 links NSS; a libsrtp2 built on OpenSSL would have no NSS to find.
        #expect(NSSTables.initialized, "NSS_InitContext without OPTIMIZESPACE did not succeed (is libsrtp2 built on NSS here?)")
    }

    @Test func manySessionsRoundTripWhileOthersAreFreed() throws {
        var pairs = try (0..<400).map { _ in try SRTPSession.makeLoopbackPair(profile: .aeadAes256Gcm) }
        // Freeing half of them closes their NSS contexts; the rest and new ones must keep working.
        pairs.removeSubrange(0..<200)
        pairs += try (0..<50).map { _ in try SRTPSession.makeLoopbackPair(profile: .aes128CmSha1_80) }
        for (index, pair) in pairs.enumerated() {
            let original: [UInt8] = [0x80, 111, 0, UInt8(index & 0xFF), 0, 0, 3, 192, 0, 0, 0, UInt8(index & 0x7F) | 1]
                + (0..<40).map { UInt8(($0 + index) & 0xFF) }
            var packet = original
            try pair.a.protectRTP(&packet)
            #expect(packet.count > original.count)
            #expect(Array(packet[12..<52]) != Array(original[12...]))
            try pair.b.unprotectRTP(&packet)
            #expect(packet == original)
        }
    }
}
