import COpenSSL
import Testing
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

    /// SRTP AEAD_AES_*_GCM protection of an RTP packet with a 12-byte header, ROC 0.
    static func gcmProtect(masterKey: [UInt8], masterSalt: [UInt8], packet: [UInt8]) -> [UInt8] {
        let key = derive(masterKey: masterKey, masterSalt: masterSalt, label: 0, length: masterKey.count)
        let salt = derive(masterKey: masterKey, masterSalt: masterSalt, label: 2, length: 12)
        var iv: [UInt8] = [0, 0] + Array(packet[8..<12]) + [0, 0, 0, 0] + Array(packet[2..<4])
        for index in 0..<12 { iv[index] ^= salt[index] }
        let header = Array(packet[0..<12])
        let payload = Array(packet[12...])
        let context = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(context) }
        EVP_EncryptInit_ex(context, key.count == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), nil, key, iv)
        var length: Int32 = 0
        EVP_EncryptUpdate(context, nil, &length, header, Int32(header.count))
        var ciphertext = [UInt8](repeating: 0, count: payload.count + 16)
        EVP_EncryptUpdate(context, &ciphertext, &length, payload, Int32(payload.count))
        var finalLength: Int32 = 0
        ciphertext.withUnsafeMutableBufferPointer { buffer in
            _ = EVP_EncryptFinal_ex(context, buffer.baseAddress! + Int(length), &finalLength)
        }
        var tag = [UInt8](repeating: 0, count: 16)
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, &tag)
        return header + Array(ciphertext.prefix(payload.count)) + tag
    }
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
