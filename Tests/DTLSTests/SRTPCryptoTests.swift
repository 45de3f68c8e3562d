import CShims
import CSRTP
import Testing
import Wire
@testable import DTLS

/// peerd's libsrtp cipher and HMAC types on OpenSSL (`srtp_openssl.c`) against libsrtp's own NSS
/// types, which libsrtp2 still exports: both run in this process, on the same random inputs, and
/// must give the same bytes. The SRTP-level tests (`SRTPTests`: RFC 7714 and RFC 3711 vectors,
/// libsrtp's srtp_driver packet, the independent reference) run on the OpenSSL types, since
/// `SRTPSession` installs them.
@Suite struct SRTPCryptoTests {
    static let gcmIDs: [Int32] = [SRTP_AES_GCM_128, SRTP_AES_GCM_256]
    static let icmIDs: [Int32] = [SRTP_AES_ICM_128, SRTP_AES_ICM_192, SRTP_AES_ICM_256]

    struct Failed: Error, Equatable { let status: srtp_err_status_t }

    static func check(_ status: srtp_err_status_t) throws {
        guard status == srtp_err_status_ok else { throw Failed(status: status) }
    }

    var random = SystemRandomNumberGenerator()
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }

    /// Runs `body` with a cipher of `type`, keyed and with its IV set.
    static func withCipher<T>(_ type: UnsafePointer<srtp_cipher_type_t>, keyWithSalt: [UInt8], tagLength: Int32, iv: [UInt8],
                              direction: srtp_cipher_direction_t, _ body: (UnsafeMutablePointer<srtp_cipher_t>) throws -> T) throws -> T {
        var cipher: UnsafeMutablePointer<srtp_cipher_t>? = nil
        try check(srtp_cipher_type_alloc(type, &cipher, Int32(keyWithSalt.count), tagLength))
        let allocated = try #require(cipher)
        defer { _ = srtp_cipher_dealloc(allocated) }
        try check(srtp_cipher_init(allocated, keyWithSalt))
        var ivCopy = iv
        try check(srtp_cipher_set_iv(allocated, &ivCopy, Int32(direction.rawValue)))
        return try body(allocated)
    }

    static func gcmSeal(_ type: UnsafePointer<srtp_cipher_type_t>, key: [UInt8], tagLength: Int32, iv: [UInt8], aad: [UInt8],
                        plaintext: [UInt8]) throws -> [UInt8] {
        try withCipher(type, keyWithSalt: key, tagLength: tagLength, iv: iv, direction: srtp_direction_encrypt) { cipher in
            try check(srtp_cipher_set_aad(cipher, aad, UInt32(aad.count)))
            // NSS writes the tag after the data, so the buffer has room for it.
            var buffer = plaintext + [UInt8](repeating: 0, count: 16)
            var length = UInt32(plaintext.count)
            try check(srtp_cipher_encrypt(cipher, &buffer, &length))
            var tag = [UInt8](repeating: 0, count: 16)
            var tagCount: UInt32 = 16
            try check(srtp_cipher_get_tag(cipher, &tag, &tagCount))
            return Array(buffer.prefix(Int(length))) + tag.prefix(Int(tagCount))
        }
    }

    static func gcmOpen(_ type: UnsafePointer<srtp_cipher_type_t>, key: [UInt8], tagLength: Int32, iv: [UInt8], aad: [UInt8],
                        sealed: [UInt8]) throws -> [UInt8] {
        try withCipher(type, keyWithSalt: key, tagLength: tagLength, iv: iv, direction: srtp_direction_decrypt) { cipher in
            try check(srtp_cipher_set_aad(cipher, aad, UInt32(aad.count)))
            var buffer = sealed
            var length = UInt32(sealed.count)
            try check(srtp_cipher_decrypt(cipher, &buffer, &length))
            return Array(buffer.prefix(Int(length)))
        }
    }

    /// `data` through counter mode, in two encrypt calls split at `split` (the key stream continues).
    static func icmApply(_ type: UnsafePointer<srtp_cipher_type_t>, keyWithSalt: [UInt8], iv: [UInt8], data: [UInt8], split: Int) throws -> [UInt8] {
        try withCipher(type, keyWithSalt: keyWithSalt, tagLength: 0, iv: iv, direction: srtp_direction_encrypt) { cipher in
            var buffer = data
            try buffer.withUnsafeMutableBufferPointer { pointer in
                var first = UInt32(split)
                try check(srtp_cipher_encrypt(cipher, pointer.baseAddress!, &first))
                var second = UInt32(data.count - split)
                try check(srtp_cipher_encrypt(cipher, pointer.baseAddress! + split, &second))
            }
            return buffer
        }
    }

    /// HMAC-SHA1 of `parts` (start, update with all but the last, compute with the last), twice
    /// from one start-reset state; both tags must agree.
    static func hmac(_ type: UnsafePointer<srtp_auth_type_t>, key: [UInt8], parts: [[UInt8]], tagLength: Int32) throws -> [UInt8] {
        var auth: UnsafeMutablePointer<srtp_auth_t>? = nil
        try check(type.pointee.alloc(&auth, Int32(key.count), tagLength))
        let allocated = try #require(auth)
        defer { _ = allocated.pointee.type.pointee.dealloc(allocated) }
        let functions = allocated.pointee.type.pointee
        try check(functions.`init`(allocated.pointee.state, key, Int32(key.count)))
        var tags: [[UInt8]] = []
        for _ in 0..<2 {
            try check(functions.start(allocated.pointee.state))
            for part in parts.dropLast() {
                try check(functions.update(allocated.pointee.state, part, Int32(part.count)))
            }
            var tag = [UInt8](repeating: 0, count: Int(tagLength))
            let last = parts.last ?? []
            try check(functions.compute(allocated.pointee.state, last, Int32(last.count), tagLength, &tag))
            tags.append(tag)
        }
        #expect(tags[0] == tags[1], "start() did not reset the HMAC state")
        return tags[0]
    }

    @Test("every libsrtp cipher and HMAC family peerd uses runs on OpenSSL")
    func familiesOnOpenSSL() throws {
        #expect(SRTPCrypto.onOpenSSL == Set(SRTPCrypto.Family.allCases), "\(SRTPCrypto.summary)")
        for id in Self.gcmIDs + Self.icmIDs {
            let kernel = try #require(peerd_srtp_kernel_cipher_type(id))
            let builtin = try #require(peerd_srtp_builtin_cipher_type(id))
            #expect(kernel != builtin)
            #expect(String(cString: kernel.pointee.description).hasSuffix("on OpenSSL (peerd)"))
        }
        let hmac = try #require(peerd_srtp_kernel_auth_type(SRTP_HMAC_SHA1))
        #expect(hmac != peerd_srtp_builtin_hmac_sha1())
        #expect(SRTPCrypto.kernelDescriptions["HMAC-SHA1"] == "HMAC-SHA1 on OpenSSL (peerd)")
        #expect(SRTPCrypto.summary == "libsrtp with AES-GCM, AES-ICM, HMAC-SHA1 on OpenSSL")
    }

    @Test("the installed AES-GCM types call OpenSSL's provider directly; the EVP types do not")
    func gcmCallsTheProviderDirectly() throws {
        _ = SRTPCrypto.onOpenSSL
        #expect(peerd_srtp_gcm_calls_provider() == 1, "the provider's AES-GCM functions were not found: GCM runs on EVP")
        for id in Self.gcmIDs {
            let key = [UInt8](repeating: 4, count: id == SRTP_AES_GCM_128 ? 28 : 44)
            for (type, direct) in [(try #require(peerd_srtp_kernel_cipher_type(id)), true), (try #require(peerd_srtp_gcm_evp_type(id)), false)] {
                let calls = try Self.withCipher(type, keyWithSalt: key, tagLength: 16, iv: [UInt8](repeating: 1, count: 12),
                                                direction: srtp_direction_decrypt) { peerd_srtp_gcm_cipher_calls_provider($0) }
                #expect(calls == (direct ? 1 : 0), "\(String(cString: type.pointee.description))")
            }
        }
    }

    @Test("a session knows its inbound SRTP cipher's blocks (prefetch hints): cipher and OpenSSL context, plus the HMAC for AES-CM")
    func inboundCipherBlocksAreTheSRTPCipherAndHMAC() throws {
        try #require(SRTPCrypto.onOpenSSL.isSuperset(of: [.aesGCM, .hmacSHA1]),
                     "the OpenSSL types are not installed (PEERD_SRTP_CRYPTO=nss?): nothing of ours is allocated")
        let cases: [(SRTPProfile, keyLength: Int, saltLength: Int, cipher: Int32, blocks: Int)] = [
            (.aeadAes128Gcm, 16, 12, SRTP_AES_GCM_128, 2), (.aeadAes256Gcm, 32, 12, SRTP_AES_GCM_256, 2),
            (.aes128CmSha1_80, 16, 14, SRTP_AES_ICM_128, 3),
        ]
        for (profile, keyLength, saltLength, cipherID, blocks) in cases {
            let key = [UInt8](repeating: 7, count: keyLength), salt = [UInt8](repeating: 9, count: saltLength)
            let session = try SRTPSession(profile: profile, keys: SRTPKeyingMaterial(localKey: key, localSalt: salt, remoteKey: key, remoteSalt: salt))
            #expect(session.inboundCipherBlocks.count == blocks, "\(profile)")
            // The first block is an srtp_cipher_t of the kernel's (our) type for the profile's cipher.
            let first = try #require(session.inboundCipherBlocks.first)
            #expect(first.load(as: UnsafeRawPointer?.self) == UnsafeRawPointer(peerd_srtp_kernel_cipher_type(cipherID)), "\(profile)")
            if blocks == 3 {
                let hmac = session.inboundCipherBlocks[2]
                #expect(hmac.load(as: UnsafeRawPointer?.self) == UnsafeRawPointer(peerd_srtp_kernel_auth_type(SRTP_HMAC_SHA1)), "\(profile)")
            }
            // OpenSSL's GCM context, for GCM: its mode first, and last the key schedule's round count.
            if blocks == 2 {
                try #require(session.inboundCipherState.count == Int(PEERD_SRTP_CIPHER_STATE_BLOCKS), "\(profile)")
                let (fields, rest) = (session.inboundCipherState[0], session.inboundCipherState[1])
                #expect(fields.address.load(as: UInt32.self) == UInt32(EVP_CIPH_GCM_MODE), "\(profile)")
                #expect(fields.address.load(fromByteOffset: 8, as: Int.self) == keyLength, "\(profile): the key length")
                // (AES-NI's key setup stores one less than the rounds.)
                let rounds: Int32 = keyLength == 32 ? 14 : 10
                let stored = rest.address.load(fromByteOffset: rest.bytes - 4, as: Int32.self)
                #expect(stored == rounds || stored == rounds - 1, "\(profile)")
                #expect(fields.address.distance(to: rest.address) == 192 && (500...1000).contains(rest.bytes), "\(profile)")
                // The cipher calls its provider directly: its second block is that GCM context itself.
                #expect(peerd_srtp_gcm_cipher_calls_provider(first) == 1, "\(profile)")
                #expect(session.inboundCipherBlocks[1] == fields.address, "\(profile)")
            } else {
                #expect(session.inboundCipherState.isEmpty, "\(profile): not a GCM cipher")
            }
            var hints = PrefetchHints()
            session.addPrefetchHints(&hints)
            #expect(hints.count == 2 + blocks + session.inboundCipherState.count)
            // A capture is closed after a session is made: allocations outside one are not recorded.
            var leftover = [UnsafeRawPointer?](repeating: nil, count: Int(PEERD_SRTP_CAPTURE_MAX))
            #expect(leftover.withUnsafeMutableBufferPointer { peerd_srtp_capture_end($0.baseAddress) } == 0)
        }
    }

    @Test("once a packet created it, a session knows libsrtp's stream blocks (prefetch hints), and they are what unprotect uses")
    func inboundStreamBlocksAreLibsrtpsStream() throws {
        try #require(SRTPCrypto.onOpenSSL.isSuperset(of: [.aesGCM, .hmacSHA1]),
                     "the OpenSSL types are not installed (PEERD_SRTP_CRYPTO=nss?): the walk checks the stream's cipher against ours")
        for (profile, keyLength, saltLength, authID) in [(SRTPProfile.aeadAes128Gcm, 16, 12, SRTP_NULL_AUTH),
                                                        (.aes128CmSha1_80, 16, 14, SRTP_HMAC_SHA1)] {
            let key = [UInt8](repeating: 3, count: keyLength), salt = [UInt8](repeating: 5, count: saltLength)
            let keys = SRTPKeyingMaterial(localKey: key, localSalt: salt, remoteKey: key, remoteSalt: salt)
            let session = try SRTPSession(profile: profile, keys: keys)
            #expect(session.inboundStreamBlocks.isEmpty, "\(profile): no stream before the first packet")
            let ssrc: UInt32 = 0xCAFE_F00D
            func roundTrip(_ sequence: UInt16) throws {
                var packet = rtpPacket(sequence: sequence, ssrc: ssrc, payload: [UInt8](repeating: 0x11, count: 80))
                try session.protectRTP(&packet)
                try session.unprotectRTP(&packet)
            }
            try roundTrip(100)
            let blocks = session.inboundStreamBlocks
            try #require(blocks.count == Int(PEERD_SRTP_STREAM_BLOCKS), "\(profile)")
            #expect(blocks.map(\.bytes) == [16, 128, 88, 128, 24, 32], "\(profile)")
            // The stream (SSRC first, in network order) and its session keys (the SRTP cipher first: ours).
            #expect(blocks[1].address.loadUnaligned(as: UInt32.self) == ssrc.bigEndian, "\(profile)")
            #expect(blocks[2].address.load(as: UnsafeRawPointer?.self) == session.inboundCipherBlocks.first, "\(profile)")
            // The auth is the kernel's type for the profile (null auth for AEAD, HMAC-SHA1 otherwise).
            let auth = blocks[5].address.load(as: UnsafeRawPointer?.self)
            #expect(auth == UnsafeRawPointer(peerd_srtp_kernel_auth_type(authID)), "\(profile)")
            // The key limit counts down once per unprotected packet; the replay bitmask moves.
            let limitBefore = blocks[4].address.load(as: UInt64.self)
            let bitmaskBefore = Array(UnsafeRawBufferPointer(start: blocks[3].address, count: blocks[3].bytes))
            try roundTrip(101)
            #expect(blocks[4].address.load(as: UInt64.self) == limitBefore - 1, "\(profile)")
            #expect(Array(UnsafeRawBufferPointer(start: blocks[3].address, count: blocks[3].bytes)) != bitmaskBefore, "\(profile)")
            // The blocks are the same on the next look, and they are in the session's hints.
            #expect(session.inboundStreamBlocks.map(\.address) == blocks.map(\.address))
            var hints = PrefetchHints()
            session.addPrefetchHints(&hints)
            #expect(hints.count == 2 + session.inboundCipherBlocks.count + session.inboundCipherState.count + blocks.count, "\(profile)")
        }
    }

    @Test("AES-GCM on OpenSSL (the provider called directly, and through EVP) and libsrtp's NSS GCM seal the same bytes and open each other's",
          arguments: gcmIDs, [false, true])
    mutating func gcmMatchesNSS(id: Int32, throughEVP: Bool) throws {
        _ = SRTPCrypto.onOpenSSL
        let openSSL = try #require(throughEVP ? peerd_srtp_gcm_evp_type(id) : peerd_srtp_kernel_cipher_type(id))
        let nss = try #require(peerd_srtp_builtin_cipher_type(id))
        let keyLength = id == SRTP_AES_GCM_128 ? 16 : 32
        for round in 0..<150 {
            let tagLength: Int32 = round % 3 == 2 ? 8 : 16
            // The cipher is keyed with key || 12-byte salt (it reads only the key).
            let key = bytes(keyLength + 12)
            let iv = bytes(12)
            let aad = bytes(12 + 4 * Int.random(in: 0...15, using: &random))
            let plaintext = bytes(round < 3 ? round : Int.random(in: 0...1400, using: &random))
            let sealed = try Self.gcmSeal(openSSL, key: key, tagLength: tagLength, iv: iv, aad: aad, plaintext: plaintext)
            let sealedByNSS = try Self.gcmSeal(nss, key: key, tagLength: tagLength, iv: iv, aad: aad, plaintext: plaintext)
            #expect(sealed == sealedByNSS, "round \(round): \(plaintext.count) bytes, tag \(tagLength)")
            #expect(sealed.count == plaintext.count + Int(tagLength))
            #expect(try Self.gcmOpen(openSSL, key: key, tagLength: tagLength, iv: iv, aad: aad, sealed: sealedByNSS) == plaintext)
            #expect(try Self.gcmOpen(nss, key: key, tagLength: tagLength, iv: iv, aad: aad, sealed: sealed) == plaintext)
            // One flipped bit anywhere (ciphertext, tag or AAD) fails authentication.
            var tampered = sealed
            var tamperedAAD = aad
            if round % 2 == 0 {
                tampered[Int.random(in: 0..<tampered.count, using: &random)] ^= 1 << UInt8.random(in: 0...7, using: &random)
            } else {
                tamperedAAD[Int.random(in: 0..<aad.count, using: &random)] ^= 0x80
            }
            #expect(throws: Failed(status: srtp_err_status_auth_fail)) {
                try Self.gcmOpen(openSSL, key: key, tagLength: tagLength, iv: iv, aad: tamperedAAD, sealed: tampered)
            }
        }
        // Shorter than a tag: refused, nothing read before the buffer.
        #expect(throws: Failed(status: srtp_err_status_auth_fail)) {
            try Self.gcmOpen(openSSL, key: [UInt8](repeating: 1, count: keyLength + 12), tagLength: 16, iv: [UInt8](repeating: 2, count: 12),
                             aad: [1, 2, 3, 4], sealed: [UInt8](repeating: 0, count: 15))
        }
    }

    @Test("AES-ICM on OpenSSL gives libsrtp's NSS key stream, continued across calls", arguments: icmIDs)
    mutating func icmMatchesNSS(id: Int32) throws {
        _ = SRTPCrypto.onOpenSSL
        let openSSL = try #require(peerd_srtp_kernel_cipher_type(id))
        let nss = try #require(peerd_srtp_builtin_cipher_type(id))
        let keyLength = id == SRTP_AES_ICM_128 ? 16 : id == SRTP_AES_ICM_192 ? 24 : 32
        for round in 0..<150 {
            let keyWithSalt = bytes(keyLength + 14)
            // As srtp.c builds them: the low 16 bits (the block counter) are zero.
            let iv = bytes(14) + [0, 0]
            let data = bytes(round < 3 ? round : Int.random(in: 1...1500, using: &random))
            let split = Int.random(in: 0...data.count, using: &random)
            let output = try Self.icmApply(openSSL, keyWithSalt: keyWithSalt, iv: iv, data: data, split: split)
            #expect(output == (try Self.icmApply(nss, keyWithSalt: keyWithSalt, iv: iv, data: data, split: data.count)),
                    "round \(round): \(data.count) bytes split at \(split)")
            // Counter mode is its own inverse.
            #expect(try Self.icmApply(openSSL, keyWithSalt: keyWithSalt, iv: iv, data: output, split: 0) == data)
        }
    }

    @Test("HMAC-SHA1 on OpenSSL gives libsrtp's NSS tags (80- and 32-bit tags, updates in parts)")
    mutating func hmacMatchesNSS() throws {
        _ = SRTPCrypto.onOpenSSL
        let openSSL = try #require(peerd_srtp_kernel_auth_type(SRTP_HMAC_SHA1))
        let nss = peerd_srtp_builtin_hmac_sha1()!
        for round in 0..<150 {
            let key = bytes(20)
            let parts = (0..<Int.random(in: 1...3, using: &random)).map { _ in bytes(Int.random(in: 0...600, using: &random)) }
            let tagLength: Int32 = [10, 4, 20][round % 3]
            #expect(try Self.hmac(openSSL, key: key, parts: parts, tagLength: tagLength)
                    == Self.hmac(nss, key: key, parts: parts, tagLength: tagLength), "round \(round)")
        }
    }

    @Test("SRTP sessions of every profile round-trip, with every failure counted, on the OpenSSL types", arguments: SRTPProfile.allCases)
    func sessionsRoundTrip(profile: SRTPProfile) throws {
        let (a, b) = try SRTPSession.makeLoopbackPair(profile: profile)
        for length in [0, 1, 15, 16, 17, 160, 1180] {
            let original: [UInt8] = [0x80, 111, 0, UInt8(length & 0xFF), 0, 0, 3, 192, 0xCA, 0xFE, 0, 1] + (0..<length).map { UInt8($0 & 0xFF) }
            var packet = original
            try a.protectRTP(&packet)
            #expect(packet.count == original.count + profile.rtpOverhead)
            if length >= 16 { #expect(Array(packet[12..<28]) != Array(original[12..<28])) }
            var rtcp: [UInt8] = [0x80, 200, 0, 6, 0xCA, 0xFE, 0, 1] + [UInt8](repeating: 7, count: 20)
            let rtcpOriginal = rtcp
            try a.protectRTCP(&rtcp)
            try b.unprotectRTP(&packet)
            try b.unprotectRTCP(&rtcp)
            #expect(packet == original)
            #expect(rtcp == rtcpOriginal)
        }
        var forged: [UInt8] = [0x80, 111, 0, 99, 0, 0, 3, 192, 0xCA, 0xFE, 0, 1] + [UInt8](repeating: 1, count: 40)
        #expect(throws: SRTPError.authFailed) { try b.unprotectRTP(&forged) }
        #expect(b.statistics.authFailures == 1)
    }
}
