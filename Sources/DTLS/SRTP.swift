import CShims
import CSRTP
import Wire

/// A DTLS-SRTP protection profile (RFC 5764, RFC 7714); the raw value is its IANA id.
public enum SRTPProfile: UInt16, Sendable, Equatable, Hashable, CaseIterable {
    case aes128CmSha1_80 = 0x0001
    case aes128CmSha1_32 = 0x0002
    case aeadAes128Gcm = 0x0007
    case aeadAes256Gcm = 0x0008

    /// Profiles offered by default, most preferred first.
    public static let defaultPreference: [SRTPProfile] = [.aeadAes256Gcm, .aeadAes128Gcm, .aes128CmSha1_80, .aes128CmSha1_32]

    /// The name OpenSSL's `use_srtp` configuration uses.
    public var openSSLName: String {
        switch self {
        case .aes128CmSha1_80: "SRTP_AES128_CM_SHA1_80"
        case .aes128CmSha1_32: "SRTP_AES128_CM_SHA1_32"
        case .aeadAes128Gcm: "SRTP_AEAD_AES_128_GCM"
        case .aeadAes256Gcm: "SRTP_AEAD_AES_256_GCM"
        }
    }

    /// Master key length in bytes.
    public var keyLength: Int {
        self == .aeadAes256Gcm ? 32 : 16
    }

    /// Master salt length in bytes.
    public var saltLength: Int {
        switch self {
        case .aes128CmSha1_80, .aes128CmSha1_32: 14
        case .aeadAes128Gcm, .aeadAes256Gcm: 12
        }
    }

    /// Bytes of keying material to export: two keys and two salts.
    public var keyingMaterialLength: Int { 2 * (keyLength + saltLength) }

    /// Bytes SRTP adds to an RTP packet (the authentication tag).
    public var rtpOverhead: Int {
        switch self {
        case .aes128CmSha1_80: 10
        case .aes128CmSha1_32: 4
        case .aeadAes128Gcm, .aeadAes256Gcm: 16
        }
    }

    /// Bytes SRTCP adds to an RTCP packet (E flag and index, then the tag; SRTCP always uses an
    /// 80-bit HMAC tag with the AES-CM profiles).
    public var rtcpOverhead: Int {
        switch self {
        case .aes128CmSha1_80, .aes128CmSha1_32: 4 + 10
        case .aeadAes128Gcm, .aeadAes256Gcm: 4 + 16
        }
    }
}

/// SRTP master keys and salts for one DTLS-SRTP association, already sorted by direction.
public struct SRTPKeyingMaterial: Sendable, Equatable {
    /// Key and salt this side protects with.
    public var localKey: [UInt8]
    public var localSalt: [UInt8]
    /// Key and salt the peer protects with (this side unprotects with them).
    public var remoteKey: [UInt8]
    public var remoteSalt: [UInt8]

    public init(localKey: [UInt8], localSalt: [UInt8], remoteKey: [UInt8], remoteSalt: [UInt8]) {
        self.localKey = localKey
        self.localSalt = localSalt
        self.remoteKey = remoteKey
        self.remoteSalt = remoteSalt
    }

    /// Splits RFC 5764 exported keying material (client key | server key | client salt |
    /// server salt); nil if the length does not match the profile.
    public init?(exported: [UInt8], profile: SRTPProfile, isClient: Bool) {
        let k = profile.keyLength
        let s = profile.saltLength
        guard exported.count == profile.keyingMaterialLength else { return nil }
        let clientKey = Array(exported[0..<k])
        let serverKey = Array(exported[k..<2 * k])
        let clientSalt = Array(exported[2 * k..<2 * k + s])
        let serverSalt = Array(exported[2 * k + s..<2 * k + 2 * s])
        if isClient {
            self.init(localKey: clientKey, localSalt: clientSalt, remoteKey: serverKey, remoteSalt: serverSalt)
        } else {
            self.init(localKey: serverKey, localSalt: serverSalt, remoteKey: clientKey, remoteSalt: clientSalt)
        }
    }

    /// The same material seen from the peer's side.
    public var mirrored: SRTPKeyingMaterial {
        SRTPKeyingMaterial(localKey: remoteKey, localSalt: remoteSalt, remoteKey: localKey, remoteSalt: localSalt)
    }
}

/// A libsrtp failure, or a packet it refused.
public enum SRTPError: Error, Equatable, Sendable {
    /// The authentication tag did not verify (tampered, wrong key, or not SRTP).
    case authFailed
    /// Replay: this index was already received.
    case replayFail
    /// Replay: the index is older than the replay window.
    case replayOld
    /// libsrtp rejected a parameter, or the packet is too short or malformed.
    case badParam
    /// Keys or salts have the wrong length for the profile.
    case keyLength(expected: Int, actual: Int)
    /// The packet is too long for libsrtp (more than 65535 bytes).
    case packetTooLong(Int)
    /// The cipher failed.
    case cipherFailed
    /// The key reached its usage limit.
    case keyExpired
    /// `srtp_init` failed (libsrtp status code).
    case initFailed(UInt32)
    /// Any other libsrtp status code.
    case other(UInt32)

    init(status: srtp_err_status_t) {
        switch status {
        case srtp_err_status_auth_fail: self = .authFailed
        case srtp_err_status_replay_fail: self = .replayFail
        case srtp_err_status_replay_old: self = .replayOld
        case srtp_err_status_bad_param: self = .badParam
        case srtp_err_status_cipher_fail: self = .cipherFailed
        case srtp_err_status_key_expired: self = .keyExpired
        default: self = .other(status.rawValue)
        }
    }
}

/// Packet and failure counters of one `SRTPSession`.
public struct SRTPStatistics: Sendable, Equatable {
    public var protectedRTP = 0
    public var protectedRTCP = 0
    public var unprotectedRTP = 0
    public var unprotectedRTCP = 0
    /// Inbound packets whose authentication failed.
    public var authFailures = 0
    /// Inbound packets dropped as replays (duplicate or too old).
    public var replays = 0
    /// Other inbound or outbound failures.
    public var otherFailures = 0
    public init() {}
}

/// libsrtp is initialised exactly once, on first use; Swift runs a global's initialiser once
/// and thread-safely.
let srtpLibraryStatus: srtp_err_status_t = {
    let onNSS = SRTPCrypto.requestedNSS
    // Before libsrtp loads NSS with its small tables (see NSSTables), when NSS is to stay.
    if onNSS { _ = NSSTables.initialized }
    let status = srtp_init()
    guard status == srtp_err_status_ok else { return status }
    if !onNSS {
        // libsrtp's GCM, ICM and HMAC-SHA1 on OpenSSL instead of NSS (srtp_openssl.c). A refusal
        // (a failed known-answer test) leaves that family on NSS; `SRTPCrypto` reports it.
        SRTPCrypto.installStatus = peerd_srtp_install_openssl()
    }
    if SRTPCrypto.familiesOnOpenSSL != SRTPCrypto.Family.allCases.count {
        // Some cipher runs on NSS, which loads its soft token with the first cipher context and
        // unloads it with the last (about 1.8 ms each time). One context kept for the life of the
        // process keeps NSS loaded, so each new session costs ~70 µs instead.
        if !onNSS { _ = NSSTables.initialized }
        _ = try? SRTPSession.makeResidentContext()
    }
    return status
}()

/// SRTP and SRTCP protection for one DTLS-SRTP association on libsrtp2 (its ciphers and HMAC on
/// OpenSSL, see `SRTPCrypto`): an outbound context (local key, any SSRC) and an inbound context
/// (remote key, any SSRC).
///
/// `@unchecked Sendable`: libsrtp contexts have no internal locking, so a session must be
/// confined to one actor or event loop at a time; it is Sendable only so that its owner can be
/// handed over once (for example created on one task and moved into the media actor).
public final class SRTPSession: @unchecked Sendable {
    /// The protection profile in use.
    public let profile: SRTPProfile
    /// Counters, updated by every protect and unprotect call.
    /// Unchecked exclusivity: counted per packet, and only ever incremented in place, so no two
    /// accesses can overlap (a runtime check per packet is what it would cost otherwise).
    @exclusivity(unchecked) public private(set) var statistics = SRTPStatistics()

    private let outbound: OpaquePointer
    private let inbound: OpaquePointer
    /// What unprotecting a packet touches in our cipher types (see `peerd_srtp_capture_begin`):
    /// the inbound SRTP cipher's block and EVP context, and its HMAC's block for AES-CM profiles.
    let inboundCipherBlocks: [UnsafeRawPointer]
    /// OpenSSL's GCM context of the inbound SRTP cipher (see `peerd_srtp_cipher_state_blocks`): empty
    /// for AES-CM profiles, or when the linked OpenSSL's layout is not the one the walk knows.
    let inboundCipherState: [(address: UnsafeRawPointer, bytes: Int)]
    /// The replay window's length in bits as libsrtp keeps it (rounded up to whole 32-bit words).
    private let replayWindowBits: UInt32

    /// Spare capacity that makes every protect call allocation-free (largest SRTCP trailer).
    public static let maxTrailerLength = 4 + 16

    /// Makes a session from DTLS-SRTP keys; `replayWindow` is in packets (64...32768).
    public init(profile: SRTPProfile, keys: SRTPKeyingMaterial, replayWindow: Int = 1024) throws(SRTPError) {
        guard srtpLibraryStatus == srtp_err_status_ok else { throw .initFailed(srtpLibraryStatus.rawValue) }
        for (material, expected) in [(keys.localKey, profile.keyLength), (keys.remoteKey, profile.keyLength),
                                     (keys.localSalt, profile.saltLength), (keys.remoteSalt, profile.saltLength)]
        where material.count != expected {
            throw .keyLength(expected: expected, actual: material.count)
        }
        guard (64...32768).contains(replayWindow) else { throw .badParam }
        self.profile = profile
        replayWindowBits = UInt32((replayWindow + 31) / 32 * 32)
        let out = try Self.makeContext(profile: profile, key: keys.localKey + keys.localSalt,
                                       direction: ssrc_any_outbound, replayWindow: replayWindow)
        do {
            let (context, blocks) = try Self.makeContextCapturingBlocks(profile: profile, key: keys.remoteKey + keys.remoteSalt,
                                                                        direction: ssrc_any_inbound, replayWindow: replayWindow)
            inbound = context
            // Allocation order: the SRTP cipher (block, EVP context), its HMAC for AES-CM, then SRTCP's
            // and the key derivation's (freed by now): keep the SRTP ones only.
            inboundCipherBlocks = Array(blocks.prefix(profile == .aeadAes128Gcm || profile == .aeadAes256Gcm ? 2 : 3))
            inboundCipherState = Self.cipherState(of: inboundCipherBlocks.first)
        } catch {
            srtp_dealloc(out)
            throw error
        }
        outbound = out
    }

    deinit {
        srtp_dealloc(outbound)
        srtp_dealloc(inbound)
    }

    /// A context that is never freed (see `srtpLibraryStatus`).
    static func makeResidentContext() throws(SRTPError) -> OpaquePointer {
        try makeContext(profile: .aeadAes128Gcm, key: [UInt8](repeating: 0x5A, count: 28), direction: ssrc_any_inbound, replayWindow: 64)
    }

    private static func cipherState(of cipher: UnsafeRawPointer?) -> [(address: UnsafeRawPointer, bytes: Int)] {
        guard let cipher else { return [] }
        return blocks(capacity: PEERD_SRTP_CIPHER_STATE_BLOCKS) { peerd_srtp_cipher_state_blocks(cipher, $0, $1) }
    }

    /// The address ranges one of the shim's block finders (`peerd_srtp_*_blocks`) writes, at most `capacity`.
    private static func blocks(capacity: Int32,
                               _ find: (UnsafeMutablePointer<UnsafeRawPointer?>?, UnsafeMutablePointer<Int32>?) -> Int32)
        -> [(address: UnsafeRawPointer, bytes: Int)] {
        var addresses = [UnsafeRawPointer?](repeating: nil, count: Int(capacity))
        var sizes = [Int32](repeating: 0, count: Int(capacity))
        let count = Int(addresses.withUnsafeMutableBufferPointer { found in
            sizes.withUnsafeMutableBufferPointer { find(found.baseAddress, $0.baseAddress) }
        })
        return (0..<min(count, Int(capacity))).compactMap { index in addresses[index].map { ($0, Int(sizes[index])) } }
    }

    /// `makeContext`, with the blocks our cipher types allocated meanwhile (see `peerd_srtp_capture_begin`).
    private static func makeContextCapturingBlocks(profile: SRTPProfile, key: [UInt8], direction: srtp_ssrc_type_t,
                                                   replayWindow: Int) throws(SRTPError) -> (context: OpaquePointer, blocks: [UnsafeRawPointer]) {
        peerd_srtp_capture_begin()
        let created = Result { () throws(SRTPError) in
            try makeContext(profile: profile, key: key, direction: direction, replayWindow: replayWindow)
        }
        var blocks = [UnsafeRawPointer?](repeating: nil, count: Int(PEERD_SRTP_CAPTURE_MAX))
        let captured = Int(blocks.withUnsafeMutableBufferPointer { peerd_srtp_capture_end($0.baseAddress) })
        return (try created.get(), blocks[..<captured].compactMap { $0 })
    }

    private static func makeContext(profile: SRTPProfile, key: [UInt8], direction: srtp_ssrc_type_t,
                                    replayWindow: Int) throws(SRTPError) -> OpaquePointer {
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CmSha1_80:
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aes128CmSha1_32:
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aeadAes128Gcm:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        case .aeadAes256Gcm:
            srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtcp)
        }
        policy.ssrc.type = direction
        policy.ssrc.value = 0
        policy.window_size = UInt(replayWindow)
        policy.allow_repeat_tx = 0
        policy.next = nil
        var keyCopy = key
        var context: OpaquePointer? = nil
        let status = keyCopy.withUnsafeMutableBufferPointer { buffer -> srtp_err_status_t in
            policy.key = buffer.baseAddress
            return srtp_create(&context, &policy)
        }
        for index in keyCopy.indices { keyCopy[index] = 0 }
        guard status == srtp_err_status_ok, let context else { throw SRTPError(status: status) }
        return context
    }

    /// Encrypts and authenticates an RTP packet in place; the array grows by `profile.rtpOverhead`.
    /// No allocation when `packet` has `rtpOverhead` bytes of spare capacity.
    public func protectRTP(_ packet: inout [UInt8]) throws(SRTPError) {
        try apply(&packet, grow: profile.rtpOverhead) { context, base, length in srtp_protect(context, base, length) }
        statistics.protectedRTP += 1
    }

    /// Encrypts and authenticates an RTCP packet in place; the array grows by `profile.rtcpOverhead`.
    public func protectRTCP(_ packet: inout [UInt8]) throws(SRTPError) {
        try apply(&packet, grow: profile.rtcpOverhead) { context, base, length in srtp_protect_rtcp(context, base, length) }
        statistics.protectedRTCP += 1
    }

    /// Adds what unprotecting the next packet touches: this session, libsrtp's context, our cipher
    /// blocks, OpenSSL's GCM context, and once a packet created it, libsrtp's stream (`inboundStreamBlocks`).
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        hints.add(self, bytes: 128)
        hints.add(address: UnsafeRawPointer(inbound), bytes: 64)
        for block in inboundCipherBlocks { hints.add(address: block, bytes: 192) }
        for (address, bytes) in inboundCipherState { hints.add(address: address, bytes: bytes) }
        for (address, bytes) in inboundStreamBlocks { hints.add(address: address, bytes: bytes) }
    }

    /// libsrtp's own blocks that unprotecting the next packet touches (see `peerd_srtp_stream_blocks`):
    /// the stream list's link, the stream, its session keys, replay bitmask, key limit and auth, with
    /// their sizes in bytes. Empty before the first packet (libsrtp creates the stream from its template
    /// then), or when the linked libsrtp is not the 2.5 whose layout the walk knows.
    public var inboundStreamBlocks: [(address: UnsafeRawPointer, bytes: Int)] {
        guard let cipher = inboundCipherBlocks.first else { return [] }
        return Self.blocks(capacity: PEERD_SRTP_STREAM_BLOCKS) {
            peerd_srtp_stream_blocks(UnsafeRawPointer(inbound), cipher, replayWindowBits, $0, $1)
        }
    }

    /// Verifies and decrypts an SRTP packet in place (from any SSRC); the array shrinks to the RTP packet.
    public func unprotectRTP(_ packet: inout [UInt8]) throws(SRTPError) {
        try apply(&packet, grow: 0) { context, base, length in srtp_unprotect(context, base, length) }
        statistics.unprotectedRTP += 1
    }

    /// Verifies and decrypts an SRTCP packet in place; the array shrinks to the RTCP packet.
    public func unprotectRTCP(_ packet: inout [UInt8]) throws(SRTPError) {
        try apply(&packet, grow: 0) { context, base, length in srtp_unprotect_rtcp(context, base, length) }
        statistics.unprotectedRTCP += 1
    }

    /// Runs one libsrtp operation in place. `grow` > 0 means protect: the array is first
    /// extended by that many bytes (the trailer libsrtp writes without MKI: tag, plus the
    /// SRTCP index), then trimmed to the length libsrtp reports.
    @inline(__always)
    private func apply(_ packet: inout [UInt8], grow: Int,
                       _ operation: (OpaquePointer, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> srtp_err_status_t) throws(SRTPError) {
        let originalCount = packet.count
        let outbound = grow > 0
        guard originalCount <= 65535 else {
            statistics.otherFailures += 1
            throw .packetTooLong(originalCount)
        }
        guard originalCount >= 4 else {
            statistics.otherFailures += 1
            throw .badParam
        }
        if outbound {
            packet.append(contentsOf: repeatElement(0, count: grow))
        }
        var length = Int32(originalCount)
        let context = outbound ? self.outbound : self.inbound
        let status = packet.withUnsafeMutableBytes { raw in operation(context, raw.baseAddress!, &length) }
        guard status == srtp_err_status_ok else {
            if outbound { packet.removeLast(packet.count - originalCount) }
            let error = SRTPError(status: status)
            switch error {
            case .authFailed where !outbound: statistics.authFailures += 1
            case .replayFail where !outbound, .replayOld where !outbound: statistics.replays += 1
            default: statistics.otherFailures += 1
            }
            throw error
        }
        let newCount = Int(length)
        precondition(newCount >= 0 && newCount <= packet.count, "libsrtp returned an impossible length")
        packet.removeLast(packet.count - newCount)
    }

    /// Two sessions with fresh random keys that talk to each other (`a` protects what `b`
    /// unprotects and the reverse); for tests and benchmarks.
    public static func makeLoopbackPair(profile: SRTPProfile) throws(SRTPError) -> (a: SRTPSession, b: SRTPSession) {
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let keys = SRTPKeyingMaterial(localKey: random(profile.keyLength), localSalt: random(profile.saltLength),
                                      remoteKey: random(profile.keyLength), remoteSalt: random(profile.saltLength))
        return (try SRTPSession(profile: profile, keys: keys), try SRTPSession(profile: profile, keys: keys.mirrored))
    }
}
