import COpenSSL
import CShims
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Why a DTLS association failed or an operation was refused.
public enum DTLSError: Error, Equatable, Sendable {
    /// OpenSSL could not set up the context (its error text).
    case setupFailed(String)
    /// The handshake failed; OpenSSL's error text (for example a received alert).
    case handshakeFailed(String)
    /// The peer's certificate matches none of the fingerprints from its SDP.
    case fingerprintMismatch(expected: [CertificateFingerprint], actual: CertificateFingerprint?)
    /// The handshake did not finish within the handshake timeout (or OpenSSL gave up retransmitting).
    case handshakeTimeout
    /// Both sides took the same role (both sent a ClientHello).
    case roleConflict(String)
    /// The peer did not agree to any offered SRTP protection profile.
    case noSRTPProfile
    /// Exporting the SRTP keying material failed (OpenSSL's error text).
    case keyExportFailed(String)
    /// The connection broke after the handshake (OpenSSL's error text).
    case connectionFailed(String)
    /// Application data can only be sent on a connected association.
    case notConnected
    /// A DTLS record carries at most `maximum` bytes of application data here (one datagram's
    /// worth: `DTLSEndpoint.maximumApplicationDataSize`); the association stays up.
    case applicationDataTooLarge(size: Int, maximum: Int)
}

/// Something the owner of a `DTLSEndpoint` must act on.
public enum DTLSEvent: Sendable, Equatable {
    /// The handshake finished, the peer's certificate matched its fingerprint, SRTP keys are ready.
    case connected(profile: SRTPProfile, keys: SRTPKeyingMaterial, remoteFingerprint: CertificateFingerprint)
    /// Decrypted application data from the peer.
    case applicationData([UInt8])
    /// The association was closed (by either side's close_notify).
    case closed
    /// The association failed; no further events follow.
    case failed(DTLSError)
}

/// Counters of one `DTLSEndpoint`.
public struct DTLSStatistics: Sendable, Equatable {
    public var datagramsReceived = 0
    public var datagramsSent = 0
    /// Datagrams dropped before OpenSSL saw them: not DTLS records, or truncated records.
    public var malformedDatagrams = 0
    /// Datagrams dropped after the handshake because all their records were from epoch 0
    /// (a replayed ClientHello or a stale handshake flight).
    public var staleEpochDatagrams = 0
    /// Handshake flights retransmitted by `handleTimeout`. (OpenSSL can also retransmit from
    /// inside a read that finds its timer already expired; those are not counted here.)
    public var retransmissions = 0
    public init() {}
}

/// Peer certificate check, run by OpenSSL's certificate verify callback.
final class PeerVerification {
    let expected: [CertificateFingerprint]
    var matched: CertificateFingerprint?
    var presented: CertificateFingerprint?
    var rejected = false

    init(expected: [CertificateFingerprint]) { self.expected = expected }

    func check(_ certificate: OpaquePointer) -> Bool {
        presented = DTLS.fingerprint(of: certificate, algorithm: expected.first?.algorithm ?? .sha256)
        for candidate in expected {
            if let actual = DTLS.fingerprint(of: certificate, algorithm: candidate.algorithm), actual == candidate {
                matched = actual
                return true
            }
        }
        rejected = true
        return false
    }
}

/// A sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 5763/5764) on OpenSSL: datagrams in,
/// datagrams, events and the next timer deadline out. It owns no socket, thread or clock.
///
/// Use: `start(now:)`, then feed every received DTLS datagram to `handleDatagram(_:now:)`,
/// call `handleTimeout(now:)` when `nextTimeout` passes, and after every call drain
/// `pollTransmit()` (send each datagram as one UDP payload) and `pollEvent()`.
///
/// Time: OpenSSL 3.0 runs its retransmission timer on the real clock (gettimeofday). The
/// endpoint maps it into the caller's time base: after each call, `nextTimeout` = that call's
/// `now` + OpenSSL's remaining time. In production `now` is `MonotonicTime.now()`, so both
/// agree. With simulated time, a retransmission happens only once the real time has passed
/// too (OpenSSL ignores an early `DTLSv1_handle_timeout`, with 15 ms slack), so tests use
/// a short `initialRetransmitTimeout` and short real waits. The handshake deadline
/// (`handshakeTimeout`) is measured purely in the caller's time.
///
/// `@unchecked Sendable`: the OpenSSL objects have no locking; an endpoint must be confined to
/// one actor or event loop at a time. It is Sendable only so that its owner can be moved there.
public final class DTLSEndpoint: @unchecked Sendable {
    /// Handshake state.
    public enum State: Sendable, Equatable {
        case idle, handshaking, connected, closed, failed
    }

    public let role: DTLSRole
    public let certificate: DTLSCertificate
    public let remoteFingerprints: [CertificateFingerprint]
    public let srtpProfiles: [SRTPProfile]
    public let mtu: Int
    public let handshakeTimeout: Duration

    public private(set) var state: State = .idle
    public private(set) var statistics = DTLSStatistics()
    /// The negotiated profile once connected.
    public private(set) var negotiatedProfile: SRTPProfile?
    /// The peer certificate's fingerprint (the one that matched) once connected.
    public private(set) var remoteFingerprint: CertificateFingerprint?
    /// When the caller should call `handleTimeout(now:)`; nil when no timer runs.
    public private(set) var nextTimeout: MonotonicTime?

    /// The (shared) SSL_CTX this endpoint holds a reference to.
    let context: OpaquePointer
    private let ssl: OpaquePointer
    private let bio: OpaquePointer
    private let verification: PeerVerification
    private var events: [DTLSEvent] = []
    private var handshakeDeadline: MonotonicTime?

    /// Cipher suites offered: ECDHE with ECDSA (our certificates) or RSA (some peers), AEAD first.
    public static let cipherList = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"

    /// Makes an endpoint. `remoteFingerprints` come from the peer's SDP; the peer's certificate
    /// must match one of them. `mtu` is the largest datagram sent (UDP payload, at least 256);
    /// handshake messages are fragmented to fit. Retransmissions start after
    /// `initialRetransmitTimeout` and double up to `maxRetransmitTimeout`.
    public init(role: DTLSRole,
                certificate: DTLSCertificate,
                remoteFingerprints: [CertificateFingerprint],
                srtpProfiles: [SRTPProfile] = SRTPProfile.defaultPreference,
                mtu: Int = 1200,
                initialRetransmitTimeout: Duration = .milliseconds(100),
                maxRetransmitTimeout: Duration = .seconds(3),
                handshakeTimeout: Duration = .seconds(15)) throws(DTLSError) {
        self.role = role
        self.certificate = certificate
        self.remoteFingerprints = remoteFingerprints
        self.srtpProfiles = srtpProfiles
        self.mtu = mtu
        self.handshakeTimeout = handshakeTimeout
        self.verification = PeerVerification(expected: remoteFingerprints)
        guard !srtpProfiles.isEmpty else { throw .setupFailed("no SRTP profile to offer") }
        guard (256...65507).contains(mtu) else { throw .setupFailed("MTU \(mtu) outside 256...65507") }

        // One configured SSL_CTX per certificate and profile list, shared (see DTLSContextCache).
        let context = try DTLSContextCache.shared.context(certificate: certificate, profiles: srtpProfiles)
        ERR_clear_error()
        guard let ssl = SSL_new(context) else {
            let message = drainOpenSSLErrors()
            SSL_CTX_free(context)
            throw .setupFailed("SSL_new: " + message)
        }
        guard let bio = peerd_dgram_bio_new() else {
            let message = drainOpenSSLErrors()
            SSL_free(ssl)
            SSL_CTX_free(context)
            throw .setupFailed("BIO: " + message)
        }
        // The verify callback finds this endpoint's expected fingerprints here; `verification`
        // outlives `ssl` (freed first in deinit).
        _ = peerd_SSL_set_app_data(ssl, Unmanaged.passUnretained(verification).toOpaque())
        SSL_set_bio(ssl, bio, bio)
        let initialMicros = UInt32(clamping: initialRetransmitTimeout.nanosecondsClamped / 1000)
        let maxMicros = UInt32(clamping: maxRetransmitTimeout.nanosecondsClamped / 1000)
        guard peerd_DTLS_set_link_mtu(ssl, mtu) == 1, peerd_SSL_set_mtu(ssl, mtu) > 0,
              peerd_dtls_set_timer_config(ssl, max(initialMicros, 1000), maxMicros) == 1 else {
            let message = drainOpenSSLErrors()
            SSL_free(ssl)
            SSL_CTX_free(context)
            throw .setupFailed("MTU or timer: " + message)
        }
        // A record never needs to be larger than a datagram (WebRTC's data is SRTP, and SCTP packets
        // fit the MTU): OpenSSL then allocates a write buffer of about one MTU instead of 17 KiB,
        // which is a fifth of a connected endpoint's memory.
        let fragment = Self.maximumApplicationDataSize(mtu: mtu)
        guard peerd_SSL_set_max_send_fragment(ssl, fragment) == 1 else {
            let message = drainOpenSSLErrors()
            SSL_free(ssl)
            SSL_CTX_free(context)
            throw .setupFailed("max send fragment: " + message)
        }
        if role == .client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
        self.context = context
        self.ssl = ssl
        self.bio = bio
    }

    /// The most application data one record (one datagram) carries: the MTU less the record
    /// header, explicit nonce or IV, MAC or tag and padding (100 bytes cover every DTLS 1.2 suite),
    /// and at least OpenSSL's minimum fragment of 512.
    public static func maximumApplicationDataSize(mtu: Int) -> Int {
        max(512, mtu - 100)
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    // MARK: Inputs

    /// Starts the handshake (a client sends its ClientHello).
    public func start(now: MonotonicTime) {
        guard state == .idle else { return }
        state = .handshaking
        handshakeDeadline = now + handshakeTimeout
        advance()
        updateTimer(now: now)
    }

    /// Feeds one received datagram (a UDP payload classified as DTLS).
    public func handleDatagram(_ bytes: [UInt8], now: MonotonicTime) {
        guard state == .handshaking || state == .connected else { return }
        statistics.datagramsReceived += 1
        switch inspect(bytes) {
        case .malformed:
            statistics.malformedDatagrams += 1
            return
        case .staleEpoch:
            statistics.staleEpochDatagrams += 1
            return
        case .clientHelloAtClient:
            fail(.roleConflict("received a ClientHello while acting as DTLS client: both sides are active"))
            return
        case .acceptable:
            break
        }
        let pushed = bytes.withUnsafeBufferPointer { peerd_dgram_bio_push_incoming(bio, $0.baseAddress, $0.count) }
        guard pushed == 1 else { return }
        advance()
        if state == .handshaking, let deadline = handshakeDeadline, now >= deadline {
            fail(.handshakeTimeout)
        }
        updateTimer(now: now)
    }

    /// Handles the timer: retransmits the last flight if it is due, or fails the handshake
    /// once `handshakeTimeout` has passed since `start`.
    public func handleTimeout(now: MonotonicTime) {
        guard state == .handshaking || state == .connected else { return }
        if state == .handshaking, let deadline = handshakeDeadline, now >= deadline {
            fail(.handshakeTimeout)
            updateTimer(now: now)
            return
        }
        ERR_clear_error()
        let result = peerd_DTLSv1_handle_timeout(ssl)
        if result > 0 {
            statistics.retransmissions += 1
        } else if result < 0 {
            fail(failureFromOpenSSL())
        }
        updateTimer(now: now)
    }

    /// Sends application data (after `.connected`).
    public func write(_ bytes: [UInt8], now: MonotonicTime) throws(DTLSError) {
        guard state == .connected else { throw .notConnected }
        let maximum = Self.maximumApplicationDataSize(mtu: mtu)
        guard bytes.count <= maximum else { throw .applicationDataTooLarge(size: bytes.count, maximum: maximum) }
        ERR_clear_error()
        let written = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        guard written > 0 || bytes.isEmpty else {
            let error = DTLSError.connectionFailed(drainOpenSSLErrors())
            fail(error)
            throw error
        }
        updateTimer(now: now)
    }

    /// Sends close_notify and closes the association (emits `.closed`).
    public func close(now: MonotonicTime) {
        guard state == .handshaking || state == .connected else { return }
        ERR_clear_error()
        SSL_shutdown(ssl)
        ERR_clear_error()
        state = .closed
        events.append(.closed)
        updateTimer(now: now)
    }

    // MARK: Outputs

    /// The next datagram to send, or nil.
    public func pollTransmit() -> [UInt8]? {
        let length = peerd_dgram_bio_next_outgoing_len(bio)
        guard length >= 0 else { return nil }
        statistics.datagramsSent += 1
        return [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            count = max(0, peerd_dgram_bio_pop_outgoing(bio, buffer.baseAddress, length))
        }
    }

    /// The next event, or nil.
    public func pollEvent() -> DTLSEvent? {
        events.isEmpty ? nil : events.removeFirst()
    }

    /// True when the extended master secret extension (RFC 7627) was negotiated.
    public var usesExtendedMasterSecret: Bool {
        state == .connected && peerd_SSL_get_extms_support(ssl) == 1
    }

    /// The negotiated cipher suite's OpenSSL name once the handshake finished.
    public var cipherSuite: String? {
        guard state == .connected, let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// The negotiated protocol version name ("DTLSv1.2").
    public var protocolVersion: String {
        String(cString: SSL_get_version(ssl))
    }

    // MARK: Internals

    private enum Inspection { case acceptable, malformed, staleEpoch, clientHelloAtClient }

    /// Checks a datagram's record framing (RFC 6347 section 4.1) before OpenSSL sees it.
    private func inspect(_ bytes: [UInt8]) -> Inspection {
        var offset = 0
        var allEpochZero = true
        guard !bytes.isEmpty else { return .malformed }
        while offset < bytes.count {
            guard bytes.count - offset >= 13 else { return .malformed }
            let contentType = bytes[offset]
            guard (20...25).contains(contentType), bytes[offset + 1] == 0xFE else { return .malformed }
            let epoch = UInt16(bytes[offset + 3]) << 8 | UInt16(bytes[offset + 4])
            let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
            guard length <= bytes.count - offset - 13 else { return .malformed }
            if role == .client, state == .handshaking, contentType == 22, epoch == 0, length > 0, bytes[offset + 13] == 1 {
                return .clientHelloAtClient
            }
            if epoch != 0 { allEpochZero = false }
            offset += 13 + length
        }
        return state == .connected && allEpochZero ? .staleEpoch : .acceptable
    }

    /// Drives OpenSSL after new input: the handshake, then reading application data.
    private func advance() {
        if state == .handshaking {
            ERR_clear_error()
            let result = SSL_do_handshake(ssl)
            if result == 1 {
                finishHandshake()
            } else {
                let code = SSL_get_error(ssl, result)
                if code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE {
                    fail(failureFromOpenSSL())
                    return
                }
            }
        }
        if state == .connected { readApplicationData() }
    }

    private func finishHandshake() {
        guard let matched = verification.matched else {
            fail(.fingerprintMismatch(expected: remoteFingerprints, actual: verification.presented))
            return
        }
        guard let selected = SSL_get_selected_srtp_profile(ssl),
              let profile = SRTPProfile(rawValue: UInt16(truncatingIfNeeded: selected.pointee.id)),
              srtpProfiles.contains(profile) else {
            fail(.noSRTPProfile)
            return
        }
        var material = [UInt8](repeating: 0, count: profile.keyingMaterialLength)
        let label = "EXTRACTOR-dtls_srtp"
        ERR_clear_error()
        let exported = SSL_export_keying_material(ssl, &material, material.count, label, label.utf8.count, nil, 0, 0)
        guard exported == 1, let keys = SRTPKeyingMaterial(exported: material, profile: profile, isClient: role == .client) else {
            fail(.keyExportFailed(drainOpenSSLErrors()))
            return
        }
        for index in material.indices { material[index] = 0 }
        negotiatedProfile = profile
        remoteFingerprint = matched
        state = .connected
        events.append(.connected(profile: profile, keys: keys, remoteFingerprint: matched))
    }

    private func readApplicationData() {
        while state == .connected {
            ERR_clear_error()
            // A record's plaintext is at most 16 KiB; the buffer lives on the stack only while
            // reading (a per-endpoint buffer cost 16 KiB for every connection).
            let (count, data) = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * 1024) { buffer -> (Int32, [UInt8]) in
                let count = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
                return (count, count > 0 ? Array(buffer[0..<Int(count)]) : [])
            }
            if count > 0 {
                events.append(.applicationData(data))
                continue
            }
            let code = SSL_get_error(ssl, count)
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                state = .closed
                events.append(.closed)
                return
            default:
                fail(.connectionFailed(drainOpenSSLErrors()))
                return
            }
        }
    }

    private func failureFromOpenSSL() -> DTLSError {
        let message = drainOpenSSLErrors()
        if verification.rejected {
            return .fingerprintMismatch(expected: remoteFingerprints, actual: verification.presented)
        }
        if message.contains("read timeout expired") { return .handshakeTimeout }
        if state == .connected { return .connectionFailed(message) }
        return .handshakeFailed(message.isEmpty ? "handshake failed without an OpenSSL error" : message)
    }

    private func fail(_ error: DTLSError) {
        guard state != .failed && state != .closed else { return }
        state = .failed
        events.append(.failed(error))
    }

    private func updateTimer(now: MonotonicTime) {
        guard state == .handshaking || state == .connected else {
            nextTimeout = nil
            return
        }
        var remaining = timeval()
        var deadline: MonotonicTime? = nil
        if peerd_DTLSv1_get_timeout(ssl, &remaining) == 1 {
            let nanos = Int64(remaining.tv_sec) * 1_000_000_000 + Int64(remaining.tv_usec) * 1000
            deadline = MonotonicTime(nanoseconds: now.nanoseconds &+ nanos)
        }
        if state == .handshaking, let handshakeDeadline {
            deadline = min(deadline ?? handshakeDeadline, handshakeDeadline)
        }
        nextTimeout = deadline
    }
}
