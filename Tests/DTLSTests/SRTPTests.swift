import COpenSSL
import CShims
import CSRTP
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import DTLS
import Wire

/// An independent SRTP reference built directly on OpenSSL's AES: the RFC 3711 section 4.3
/// key derivation and RFC 7714 section 8 AES-GCM packet encryption.
enum Reference {
    static func aesECB(key: [UInt8], block: [UInt8]) -> [UInt8] {
        let context = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(context) }
        let cipher = key.count == 32 ? EVP_aes_256_ecb() : EVP_aes_128_ecb()
        EVP_EncryptInit_ex(context, cipher, nil, key, nil)
        EVP_CIPHER_CTX_set_padding(context, 0)
        var out = [UInt8](repeating: 0, count: 32)
        var length: Int32 = 0
        EVP_EncryptUpdate(context, &out, &length, block, Int32(block.count))
        return Array(out.prefix(16))
    }

    /// RFC 3711 KDF with key_derivation_rate 0; a 12-byte (GCM) master salt is padded with zeros.
    static func derive(masterKey: [UInt8], masterSalt: [UInt8], label: UInt8, length: Int) -> [UInt8] {
        var x = masterSalt + [UInt8](repeating: 0, count: 14 - masterSalt.count)
        x[7] ^= label
        var out: [UInt8] = []
        var counter: UInt16 = 0
        while out.count < length {
            out += aesECB(key: masterKey, block: x + [UInt8(counter >> 8), UInt8(counter & 0xff)])
            counter += 1
        }
        return Array(out.prefix(length))
    }

    /// AES-GCM encryption (RFC 5116 AEAD_AES_*_GCM, 16-byte tag): ciphertext followed by the tag.
    static func gcmSeal(key: [UInt8], iv: [UInt8], aad: [UInt8], plaintext: [UInt8]) -> [UInt8] {
        precondition(iv.count == 12 && (key.count == 16 || key.count == 32))
        let context = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(context) }
        EVP_EncryptInit_ex(context, key.count == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nil, key, iv)
        var length: Int32 = 0
        EVP_EncryptUpdate(context, nil, &length, aad, Int32(aad.count))
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        EVP_EncryptUpdate(context, &ciphertext, &length, plaintext, Int32(plaintext.count))
        var finalLength: Int32 = 0
        ciphertext.withUnsafeMutableBufferPointer { buffer in
            _ = EVP_EncryptFinal_ex(context, buffer.baseAddress! + Int(length), &finalLength)
        }
        var tag = [UInt8](repeating: 0, count: 16)
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, &tag)
        return Array(ciphertext.prefix(plaintext.count)) + tag
    }

    /// AES-GCM decryption and tag check; nil when the tag does not verify.
    static func gcmOpen(key: [UInt8], iv: [UInt8], aad: [UInt8], sealed: [UInt8]) -> [UInt8]? {
        guard sealed.count >= 16 else { return nil }
        let context = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(context) }
        EVP_DecryptInit_ex(context, key.count == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nil, key, iv)
        var length: Int32 = 0
        EVP_DecryptUpdate(context, nil, &length, aad, Int32(aad.count))
        let ciphertext = Array(sealed.dropLast(16))
        var tag = Array(sealed.suffix(16))
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count + 16)
        EVP_DecryptUpdate(context, &plaintext, &length, ciphertext, Int32(ciphertext.count))
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, &tag)
        var finalLength: Int32 = 0
        let ok = plaintext.withUnsafeMutableBufferPointer { buffer in
            EVP_DecryptFinal_ex(context, buffer.baseAddress! + Int(length), &finalLength)
        }
        return ok == 1 ? Array(plaintext.prefix(ciphertext.count)) : nil
    }

    /// RFC 7714 section 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR session salt.
    static func srtpIV(salt: [UInt8], ssrc: [UInt8], roc: UInt32, sequence: [UInt8]) -> [UInt8] {
        let block: [UInt8] = [0, 0] + ssrc + [UInt8(roc >> 24), UInt8((roc >> 16) & 0xff), UInt8((roc >> 8) & 0xff), UInt8(roc & 0xff)] + sequence
        return zip(block, salt).map { $0 ^ $1 }
    }

    /// RFC 7714 section 9.1: IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR session salt.
    static func srtcpIV(salt: [UInt8], ssrc: [UInt8], index: UInt32) -> [UInt8] {
        let block: [UInt8] = [0, 0] + ssrc + [0, 0] + [UInt8(index >> 24), UInt8((index >> 16) & 0xff), UInt8((index >> 8) & 0xff), UInt8(index & 0xff)]
        return zip(block, salt).map { $0 ^ $1 }
    }

    /// SRTP AEAD_AES_*_GCM protection (RFC 7714 section 8) of an RTP packet with a plain
    /// 12-byte header (no CSRC, no extension) under session key and salt: header || ciphertext || tag.
    static func gcmProtectRTP(sessionKey: [UInt8], sessionSalt: [UInt8], packet: [UInt8], roc: UInt32 = 0) -> [UInt8] {
        precondition(packet[0] & 0x1f == 0, "reference handles plain 12-byte headers only")
        let header = Array(packet[0..<12])
        let iv = srtpIV(salt: sessionSalt, ssrc: Array(packet[8..<12]), roc: roc, sequence: Array(packet[2..<4]))
        return header + gcmSeal(key: sessionKey, iv: iv, aad: header, plaintext: Array(packet[12...]))
    }

    /// SRTCP AEAD_AES_*_GCM protection with encryption (RFC 7714 section 9): the first 8 bytes
    /// stay clear, AAD = those 8 bytes || E flag and index; output ends with the tag then E || index.
    static func gcmProtectRTCP(sessionKey: [UInt8], sessionSalt: [UInt8], packet: [UInt8], index: UInt32) -> [UInt8] {
        let header = Array(packet[0..<8])
        let trailer: [UInt8] = [UInt8(0x80 | (index >> 24)), UInt8((index >> 16) & 0xff), UInt8((index >> 8) & 0xff), UInt8(index & 0xff)]
        let iv = srtcpIV(salt: sessionSalt, ssrc: Array(packet[4..<8]), index: index)
        return header + gcmSeal(key: sessionKey, iv: iv, aad: header + trailer, plaintext: Array(packet[8...])) + trailer
    }

    /// Session key and salt derived from a GCM master key and salt (RFC 3711 section 4.3, RFC 7714
    /// section 11): labels 0 and 2 for SRTP, 3 and 5 for SRTCP.
    static func sessionKeys(masterKey: [UInt8], masterSalt: [UInt8], rtcp: Bool) -> (key: [UInt8], salt: [UInt8]) {
        (derive(masterKey: masterKey, masterSalt: masterSalt, label: rtcp ? 3 : 0, length: masterKey.count),
         derive(masterKey: masterKey, masterSalt: masterSalt, label: rtcp ? 5 : 2, length: 12))
    }

    /// SRTP AEAD_AES_*_GCM protection of an RTP packet with a 12-byte header, from master key and salt.
    static func gcmProtect(masterKey: [UInt8], masterSalt: [UInt8], packet: [UInt8], roc: UInt32 = 0) -> [UInt8] {
        let session = sessionKeys(masterKey: masterKey, masterSalt: masterSalt, rtcp: false)
        return gcmProtectRTP(sessionKey: session.key, sessionSalt: session.salt, packet: packet, roc: roc)
    }
}

/// RFC 7714 sections 16 and 17 test vectors. They are stated with session keys and salts (after
/// the key derivation), so they check the independent reference above directly; the wrapper,
/// which takes master keys, is then checked against the same reference fed RFC 3711 derived keys.
enum RFC7714 {
    static let key128 = hex("000102030405060708090a0b0c0d0e0f")
    static let key256 = hex("000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f")
    /// "Quid pro quo"
    static let salt = hex("517569642070726f2071756f")
    /// Section 16: a 12-byte header (sequence 0xf17b, SSRC 0x5501a0b2), ROC 0, and the payload
    /// "Gallia est omnis divisa in partes tres".
    static let rtp = hex("""
        8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
        69736120 696e2070 61727465 73207472 6573
        """)
    /// Section 16.1.1, AEAD_AES_128_GCM encrypted and tagged packet.
    static let srtp128 = hex("""
        8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
        0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439
        0cce
        """)
    /// Section 16.2.1, AEAD_AES_256_GCM encrypted and tagged packet.
    static let srtp256 = hex("""
        8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa b1801238
        9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff d6b0f9bb 7878d7a7
        6c13
        """)
    /// Section 17: the RTCP packet (SSRC "Mars") protected with SRTCP index 0x5d4.
    static let rtcp = hex("""
        81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
        deadbeef deadbeef deadbeef deadbeef deadbeef
        """)
    static let rtcpIndex: UInt32 = 0x5d4
    /// Section 17.1, AEAD_AES_128_GCM SRTCP encrypted and tagged packet.
    static let srtcp128 = hex("""
        81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
        c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
        45d9eade 800005d4
        """)
    /// Section 17.2, AEAD_AES_256_GCM SRTCP encrypted and tagged packet.
    static let srtcp256 = hex("""
        81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d bffe0a50
        a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c
        b26ac3be 800005d4
        """)
}

@Suite("SRTP")
struct SRTPTests {
    /// libsrtp srtp_driver's reference packet: SSRC 0xcafebabe, sequence 0x1234, 16 bytes of 0xab.
    static let referencePlaintext = hex("800f1234decafbadcafebabe") + [UInt8](repeating: 0xab, count: 16)
    static let referenceKey = hex("e1f97a0d3e018be0d64fa32c06de4139")
    static let referenceSalt = hex("0ec675ad498afeebb6960b3aabe6")

    private func session(_ profile: SRTPProfile, key: [UInt8], salt: [UInt8]) throws -> SRTPSession {
        try SRTPSession(profile: profile, keys: SRTPKeyingMaterial(localKey: key, localSalt: salt, remoteKey: key, remoteSalt: salt))
    }

    @Test("AES-CM-128-HMAC-SHA1-80 known packet (libsrtp srtp_driver validation)")
    func aesCmVector() throws {
        let expected = hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        var packet = Self.referencePlaintext
        try session(.aes128CmSha1_80, key: Self.referenceKey, salt: Self.referenceSalt).protectRTP(&packet)
        #expect(hexString(packet) == hexString(expected))
        let receiver = try session(.aes128CmSha1_80, key: Self.referenceKey, salt: Self.referenceSalt)
        try receiver.unprotectRTP(&packet)
        #expect(packet == Self.referencePlaintext)
    }

    @Test("reference KDF reproduces RFC 3711 appendix B.3")
    func kdfVector() {
        #expect(hexString(Reference.derive(masterKey: Self.referenceKey, masterSalt: Self.referenceSalt, label: 0, length: 16))
                == "c61e7a93744f39ee10734afe3ff7a087")
        #expect(hexString(Reference.derive(masterKey: Self.referenceKey, masterSalt: Self.referenceSalt, label: 2, length: 14))
                == "30cbbc08863d8c85d49db34a9ae1")
    }

    @Test("the reference reproduces the RFC 7714 section 16 and 17 packets from their session keys",
          arguments: [SRTPProfile.aeadAes128Gcm, .aeadAes256Gcm])
    func referenceReproducesRFC7714(profile: SRTPProfile) throws {
        let key = profile == .aeadAes128Gcm ? RFC7714.key128 : RFC7714.key256
        let srtp = profile == .aeadAes128Gcm ? RFC7714.srtp128 : RFC7714.srtp256
        let srtcp = profile == .aeadAes128Gcm ? RFC7714.srtcp128 : RFC7714.srtcp256
        // Section 8.1 / 9.1 IVs, as printed in sections 16 and 17.
        #expect(hexString(Reference.srtpIV(salt: RFC7714.salt, ssrc: hex("5501a0b2"), roc: 0, sequence: hex("f17b")))
                == "51753c6580c2726f20718414")
        #expect(hexString(Reference.srtcpIV(salt: RFC7714.salt, ssrc: hex("4d617273"), index: RFC7714.rtcpIndex))
                == "517524055203726f207170bb")
        // Encryption (16.x.1, 17.x).
        #expect(hexString(Reference.gcmProtectRTP(sessionKey: key, sessionSalt: RFC7714.salt, packet: RFC7714.rtp)) == hexString(srtp))
        #expect(hexString(Reference.gcmProtectRTCP(sessionKey: key, sessionSalt: RFC7714.salt, packet: RFC7714.rtcp, index: RFC7714.rtcpIndex))
                == hexString(srtcp))
        // Decryption (16.x.2) and a flipped bit refused.
        let iv = Reference.srtpIV(salt: RFC7714.salt, ssrc: hex("5501a0b2"), roc: 0, sequence: hex("f17b"))
        let header = Array(srtp[0..<12])
        let opened = try #require(Reference.gcmOpen(key: key, iv: iv, aad: header, sealed: Array(srtp[12...])))
        #expect(header + opened == RFC7714.rtp)
        var tampered = Array(srtp[12...])
        tampered[5] ^= 0x01
        #expect(Reference.gcmOpen(key: key, iv: iv, aad: header, sealed: tampered) == nil)
    }

    @Test("libsrtp's AES-GCM cipher types, NSS's and peerd's on OpenSSL (provider and EVP), keyed with the RFC 7714 session keys, reproduce sections 16.1 and 16.2",
          arguments: [SRTPProfile.aeadAes128Gcm, .aeadAes256Gcm])
    func libsrtpCipherReproducesRFC7714(profile: SRTPProfile) throws {
        // Initialise libsrtp the way the wrapper does (which installs the OpenSSL types).
        _ = try SRTPSession.makeLoopbackPair(profile: profile)
        let id = profile == .aeadAes128Gcm ? SRTP_AES_GCM_128 : SRTP_AES_GCM_256
        let key = profile == .aeadAes128Gcm ? RFC7714.key128 : RFC7714.key256
        // The cipher is keyed with key || salt; it reads only the key (the IV carries the salt).
        let keyWithSalt = key + RFC7714.salt
        let expected = profile == .aeadAes128Gcm ? RFC7714.srtp128 : RFC7714.srtp256
        let iv = Reference.srtpIV(salt: RFC7714.salt, ssrc: hex("5501a0b2"), roc: 0, sequence: hex("f17b"))
        let header = Array(RFC7714.rtp[0..<12])
        for type in [try #require(peerd_srtp_builtin_cipher_type(id)), try #require(peerd_srtp_kernel_cipher_type(id)),
                     try #require(peerd_srtp_gcm_evp_type(id))] {
            let name = String(cString: type.pointee.description)
            let sealed = try SRTPCryptoTests.gcmSeal(type, key: keyWithSalt, tagLength: 16, iv: iv, aad: header, plaintext: Array(RFC7714.rtp[12...]))
            #expect(hexString(header + sealed) == hexString(expected), "\(name)")
            let opened = try SRTPCryptoTests.gcmOpen(type, key: keyWithSalt, tagLength: 16, iv: iv, aad: header, sealed: Array(expected[12...]))
            #expect(header + opened == RFC7714.rtp, "\(name)")
            var tampered = Array(expected[12...])
            tampered[tampered.count - 1] ^= 0x80
            #expect(throws: SRTPCryptoTests.Failed(status: srtp_err_status_auth_fail), "\(name)") {
                try SRTPCryptoTests.gcmOpen(type, key: keyWithSalt, tagLength: 16, iv: iv, aad: header, sealed: tampered)
            }
        }
    }

    @Test("wrapper SRTCP matches the reference fed RFC 3711 derived session keys",
          arguments: [SRTPProfile.aeadAes128Gcm, .aeadAes256Gcm])
    func gcmRTCPAgainstReference(profile: SRTPProfile) throws {
        let key = (0..<profile.keyLength).map { UInt8(0x40 &+ $0) }
        let salt = hex("b0b1b2b3b4b5b6b7b8b9babb")
        let sender = try session(profile, key: key, salt: salt)
        let receiver = try session(profile, key: key, salt: salt)
        let rtcpKeys = Reference.sessionKeys(masterKey: key, masterSalt: salt, rtcp: true)
        let rtpKeys = Reference.sessionKeys(masterKey: key, masterSalt: salt, rtcp: false)
        #expect(rtcpKeys.key != rtpKeys.key && rtcpKeys.salt != rtpKeys.salt, "SRTCP has its own session keys")
        let other: [UInt8] = [0x81, 201, 0x00, 0x07] + hex("cafebabe") + [UInt8](repeating: 3, count: 24)
        // libsrtp numbers SRTCP packets from 1, per SSRC.
        for (plain, expectedIndex) in [(RFC7714.rtcp, UInt32(1)), (other, 1), (RFC7714.rtcp, 2), (RFC7714.rtcp, 3), (other, 2)] {
            var packet = plain
            try sender.protectRTCP(&packet)
            // The E flag is set (encrypted), then the 31-bit index.
            let trailer = Array(packet.suffix(4))
            let index = UInt32(trailer[0] & 0x7f) << 24 | UInt32(trailer[1]) << 16 | UInt32(trailer[2]) << 8 | UInt32(trailer[3])
            #expect(trailer[0] & 0x80 == 0x80)
            #expect(index == expectedIndex)
            let expected = Reference.gcmProtectRTCP(sessionKey: rtcpKeys.key, sessionSalt: rtcpKeys.salt, packet: plain, index: index)
            #expect(hexString(packet) == hexString(expected))
            try receiver.unprotectRTCP(&packet)
            #expect(packet == plain)
        }
    }

    @Test("wrapper follows the rollover counter across a sequence number wrap like the reference",
          arguments: [SRTPProfile.aeadAes128Gcm, .aeadAes256Gcm])
    func gcmRolloverAgainstReference(profile: SRTPProfile) throws {
        let key = (0..<profile.keyLength).map { UInt8(0xf0 ^ $0) }
        let salt = hex("0c0d0e0f1011121314151617")
        let sender = try session(profile, key: key, salt: salt)
        let receiver = try session(profile, key: key, salt: salt)
        var roc: UInt32 = 0
        for sequence: UInt16 in [0xfffd, 0xfffe, 0xffff, 0x0000, 0x0001, 0x0002] {
            if sequence == 0 { roc += 1 }
            let plain = rtpPacket(sequence: sequence, ssrc: 0xdecafbad, payload: [UInt8](repeating: UInt8(sequence & 0xff), count: 100))
            var packet = plain
            try sender.protectRTP(&packet)
            #expect(hexString(packet) == hexString(Reference.gcmProtect(masterKey: key, masterSalt: salt, packet: plain, roc: roc)),
                    "sequence \(sequence), ROC \(roc)")
            try receiver.unprotectRTP(&packet)
            #expect(packet == plain)
        }
        // A packet the reference sealed with the wrong ROC does not authenticate.
        var wrongROC = Reference.gcmProtect(masterKey: key, masterSalt: salt,
                                            packet: rtpPacket(sequence: 3, ssrc: 0xdecafbad, payload: [9]), roc: 0)
        #expect(throws: SRTPError.authFailed) { try receiver.unprotectRTP(&wrongROC) }
        var rightROC = Reference.gcmProtect(masterKey: key, masterSalt: salt,
                                            packet: rtpPacket(sequence: 3, ssrc: 0xdecafbad, payload: [9]), roc: 1)
        try receiver.unprotectRTP(&rightROC)
        #expect(rightROC == rtpPacket(sequence: 3, ssrc: 0xdecafbad, payload: [9]))
    }

    @Test("AEAD AES-GCM packets match the independent RFC 7714 reference byte for byte",
          arguments: [SRTPProfile.aeadAes128Gcm, .aeadAes256Gcm])
    func gcmAgainstReference(profile: SRTPProfile) throws {
        let key = (0..<profile.keyLength).map { UInt8($0) }
        let salt = hex("a0a1a2a3a4a5a6a7a8a9aaab")
        let sender = try session(profile, key: key, salt: salt)
        let receiver = try session(profile, key: key, salt: salt)
        for (sequence, payloadLength) in [(UInt16(0x1234), 16), (0x1235, 0), (0x1236, 100), (0x1240, 1000)] {
            let plain = hex("800f") + [UInt8(sequence >> 8), UInt8(sequence & 0xff)] + hex("decafbadcafebabe")
                + (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            var packet = plain
            try sender.protectRTP(&packet)
            let expected = Reference.gcmProtect(masterKey: key, masterSalt: salt, packet: plain)
            #expect(hexString(packet) == hexString(expected))
            try receiver.unprotectRTP(&packet)
            #expect(packet == plain)
        }
    }

    @Test("replayed packets are rejected and counted, late packets inside the window accepted",
          arguments: SRTPProfile.allCases)
    func replayWindow(profile: SRTPProfile) throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: profile)
        var protected: [[UInt8]] = []
        for sequence in UInt16(100)..<120 {
            var packet = rtpPacket(sequence: sequence, payload: [UInt8](repeating: UInt8(sequence & 0xff), count: 50))
            try a.protectRTP(&packet)
            protected.append(packet)
        }
        for (index, packet) in protected.enumerated() where index != 4 {
            var copy = packet
            try b.unprotectRTP(&copy)
            #expect(copy == rtpPacket(sequence: UInt16(100 + index), payload: [UInt8](repeating: UInt8(100 + index), count: 50)))
        }
        var late = protected[4]
        try b.unprotectRTP(&late)
        #expect(late.count == 12 + 50)
        var replay = protected[7]
        #expect(throws: SRTPError.replayFail) { try b.unprotectRTP(&replay) }
        #expect(replay == protected[7], "a rejected packet is left unchanged")
        #expect(b.statistics.replays == 1)
        #expect(b.statistics.unprotectedRTP == 20)
    }

    @Test("the inbound side accepts any SSRC, with a replay window per SSRC", arguments: SRTPProfile.allCases)
    func anySSRC(profile: SRTPProfile) throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: profile)
        var sent: [[UInt8]] = []
        for ssrc: UInt32 in [0x1111_1111, 0x2222_2222, 0xdead_beef] {
            for sequence in UInt16(1)...3 {
                let plain = rtpPacket(sequence: sequence, ssrc: ssrc, payload: [UInt8](repeating: UInt8(sequence), count: 20))
                var packet = plain
                try a.protectRTP(&packet)
                sent.append(packet)
                try b.unprotectRTP(&packet)
                #expect(packet == plain)
            }
        }
        // The same sequence numbers on different SSRCs are not replays; a repeat on one SSRC is.
        var again = sent[4]
        #expect(throws: SRTPError.replayFail) { try b.unprotectRTP(&again) }
        #expect(b.statistics.unprotectedRTP == 9)
        #expect(b.statistics.replays == 1)
    }

    @Test("packets older than the replay window are rejected as old")
    func replayOld() throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: .aeadAes128Gcm)
        var first = rtpPacket(sequence: 1, payload: [1])
        try a.protectRTP(&first)
        for sequence in UInt16(2)...1100 {
            var packet = rtpPacket(sequence: sequence, payload: [2])
            try a.protectRTP(&packet)
            if sequence == 1100 { try b.unprotectRTP(&packet) }
        }
        #expect(throws: SRTPError.replayOld) { try b.unprotectRTP(&first) }
        #expect(b.statistics.replays == 1)
    }

    @Test("tampered packets fail authentication", arguments: SRTPProfile.allCases)
    func tampered(profile: SRTPProfile) throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: profile)
        var packet = rtpPacket(sequence: 9, payload: [UInt8](repeating: 7, count: 40))
        try a.protectRTP(&packet)
        for position in [1, 5, 13, packet.count - 1] {
            var bad = packet
            bad[position] ^= 0x01
            #expect(throws: SRTPError.authFailed) { try b.unprotectRTP(&bad) }
        }
        #expect(b.statistics.authFailures == 4)
        var truncated = Array(packet.prefix(3))
        #expect(throws: SRTPError.badParam) { try b.unprotectRTP(&truncated) }
        var good = packet
        try b.unprotectRTP(&good)
        #expect(good == rtpPacket(sequence: 9, payload: [UInt8](repeating: 7, count: 40)))

        var report: [UInt8] = [0x81, 201, 0x00, 0x07] + [UInt8](repeating: 3, count: 28)
        try a.protectRTCP(&report)
        report[10] ^= 0x80
        #expect(throws: SRTPError.authFailed) { try b.unprotectRTCP(&report) }
    }

    @Test("keys of the wrong length are refused")
    func badKeys() {
        #expect(throws: SRTPError.keyLength(expected: 16, actual: 15)) {
            try SRTPSession(profile: .aeadAes128Gcm, keys: SRTPKeyingMaterial(localKey: [UInt8](repeating: 0, count: 15), localSalt: [UInt8](repeating: 0, count: 12), remoteKey: [UInt8](repeating: 0, count: 16), remoteSalt: [UInt8](repeating: 0, count: 12)))
        }
    }

    @Test("protect and unprotect reuse the array's storage")
    func inPlace() throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: .aeadAes128Gcm)
        var packet = [UInt8]()
        packet.reserveCapacity(12 + 100 + SRTPSession.maxTrailerLength)
        packet += rtpPacket(sequence: 1, payload: [UInt8](repeating: 1, count: 100))
        let storage = packet.withUnsafeBufferPointer { $0.baseAddress }
        for sequence in UInt16(1)...50 {
            packet.removeAll(keepingCapacity: true)
            packet += rtpPacket(sequence: sequence, payload: [UInt8](repeating: 1, count: 100))
            try a.protectRTP(&packet)
            try b.unprotectRTP(&packet)
            #expect(packet.withUnsafeBufferPointer { $0.baseAddress } == storage)
        }
    }

    @Test("keying material splits per RFC 5764 and mirrors between roles")
    func keyingSplit() throws {
        let exported = (0..<56).map { UInt8($0) }
        let client = try #require(SRTPKeyingMaterial(exported: exported, profile: .aeadAes128Gcm, isClient: true))
        let server = try #require(SRTPKeyingMaterial(exported: exported, profile: .aeadAes128Gcm, isClient: false))
        #expect(client.localKey == Array(0..<16))
        #expect(client.remoteKey == Array(16..<32))
        #expect(client.localSalt == Array(32..<44))
        #expect(client.remoteSalt == Array(44..<56))
        #expect(server == client.mirrored)
        #expect(SRTPKeyingMaterial(exported: exported, profile: .aes128CmSha1_80, isClient: true) == nil)
        #expect(SRTPProfile.aes128CmSha1_80.keyingMaterialLength == 60)
        #expect(SRTPProfile.aeadAes256Gcm.keyingMaterialLength == 88)
    }
}
