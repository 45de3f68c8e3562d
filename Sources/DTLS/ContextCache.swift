import COpenSSL
import CShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain mutex for the context cache (not on any per-packet path).
///
/// `@unchecked Sendable`: the pthread mutex it owns is what makes concurrent use safe.
final class PThreadLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Configured OpenSSL contexts (`SSL_CTX`), one per certificate and SRTP profile list, shared by
/// every `DTLSEndpoint` made with them. Under OpenSSL 3 making and configuring a context costs
/// about 0.3 ms (provider fetches, cipher list, key check); an `SSL` made from a shared context
/// costs a fraction of that. Everything that differs between endpoints (the expected remote
/// fingerprints, MTU, timer, role) lives on the `SSL`, so sharing is safe: the fingerprint check
/// finds its `PeerVerification` through the `SSL`'s app data, not through the context.
///
/// A context is never changed after it is published here; OpenSSL allows `SSL_new` on one
/// context from several threads at once. The cache keeps at most `capacity` contexts (least
/// recently used evicted); an evicted context lives on as long as an `SSL` made from it.
///
/// `@unchecked Sendable`: all mutable state is behind `lock`.
final class DTLSContextCache: @unchecked Sendable {
    static let shared = DTLSContextCache()

    struct Key: Hashable {
        /// SHA-256 of the certificate's DER encoding; the private key is bound to it (checked).
        var certificate: [UInt8]
        var profiles: [SRTPProfile]
    }

    let capacity: Int
    private let lock = PThreadLock()
    /// Each value holds one reference to its `SSL_CTX`.
    private var contexts: [Key: OpaquePointer] = [:]
    /// Keys from least to most recently used.
    private var order: [Key] = []
    private(set) var created = 0

    init(capacity: Int = 16) { self.capacity = capacity }

    deinit {
        for context in contexts.values { SSL_CTX_free(context) }
    }

    /// A context for this certificate and profile list, with one reference owned by the caller
    /// (release it with `SSL_CTX_free`).
    func context(certificate: DTLSCertificate, profiles: [SRTPProfile]) throws(DTLSError) -> OpaquePointer {
        let key = Key(certificate: certificate.fingerprint.bytes, profiles: profiles)
        if let cached = lookUp(key) { return cached }
        let fresh = try Self.makeContext(certificate: certificate, profiles: profiles)
        return lock.withLock {
            if let existing = contexts[key] {
                // Another thread made one meanwhile; use that and drop ours.
                SSL_CTX_free(fresh)
                touch(key)
                SSL_CTX_up_ref(existing)
                return existing
            }
            contexts[key] = fresh
            order.append(key)
            created += 1
            while order.count > capacity {
                let evicted = order.removeFirst()
                if let context = contexts.removeValue(forKey: evicted) { SSL_CTX_free(context) }
            }
            SSL_CTX_up_ref(fresh)
            return fresh
        }
    }

    /// Number of contexts held.
    var count: Int { lock.withLock { contexts.count } }

    /// Drops every cached context (endpoints keep theirs alive).
    func removeAll() {
        lock.withLock {
            for context in contexts.values { SSL_CTX_free(context) }
            contexts.removeAll()
            order.removeAll()
        }
    }

    private func lookUp(_ key: Key) -> OpaquePointer? {
        lock.withLock {
            guard let context = contexts[key] else { return nil }
            touch(key)
            SSL_CTX_up_ref(context)
            return context
        }
    }

    /// Marks `key` most recently used (caller holds the lock).
    private func touch(_ key: Key) {
        if order.last != key, let index = order.firstIndex(of: key) {
            order.remove(at: index)
            order.append(key)
        }
    }

    /// Makes and configures a context: DTLS 1.2 only, our certificate and key, the cipher and
    /// group lists, use_srtp with `profiles`, peer certificate required and checked by
    /// `verifyCallback` (against the fingerprints of the `SSL`'s own `PeerVerification`), no
    /// session cache or tickets (every association does a full handshake).
    static func makeContext(certificate: DTLSCertificate, profiles: [SRTPProfile]) throws(DTLSError) -> OpaquePointer {
        ERR_clear_error()
        guard let context = SSL_CTX_new(DTLS_method()) else { throw .setupFailed(drainOpenSSLErrors()) }
        var ok = peerd_SSL_CTX_set_min_proto_version(context, peerd_DTLS1_2_VERSION()) == 1
        ok = ok && peerd_SSL_CTX_set_max_proto_version(context, peerd_DTLS1_2_VERSION()) == 1
        ok = ok && SSL_CTX_use_certificate(context, certificate.x509) == 1
        ok = ok && SSL_CTX_use_PrivateKey(context, certificate.privateKey) == 1
        ok = ok && SSL_CTX_check_private_key(context) == 1
        ok = ok && SSL_CTX_set_cipher_list(context, DTLSEndpoint.cipherList) == 1
        ok = ok && peerd_SSL_CTX_set1_groups_list(context, "X25519:P-256:P-384") == 1
        // Returns 0 on success, unlike most of OpenSSL.
        ok = ok && SSL_CTX_set_tlsext_use_srtp(context, profiles.map(\.openSSLName).joined(separator: ":")) == 0
        guard ok else {
            let message = drainOpenSSLErrors()
            SSL_CTX_free(context)
            throw .setupFailed(message)
        }
        _ = peerd_SSL_CTX_set_options(context, peerd_SSL_OP_NO_QUERY_MTU() | peerd_SSL_OP_NO_TICKET() | peerd_SSL_OP_NO_RENEGOTIATION())
        _ = peerd_SSL_CTX_set_session_cache_mode(context, peerd_SSL_SESS_CACHE_OFF())
        peerd_SSL_CTX_set_read_ahead(context, 1)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        SSL_CTX_set_cert_verify_callback(context, verifyCallback, nil)
        return context
    }
}

/// OpenSSL's certificate verification, replaced: the peer's certificate is accepted exactly when
/// it matches one of the SDP fingerprints held by the `PeerVerification` in the `SSL`'s app data.
let verifyCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { storeContext, _ in
    guard let storeContext, let certificate = X509_STORE_CTX_get0_cert(storeContext),
          let ssl = X509_STORE_CTX_get_ex_data(storeContext, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let argument = peerd_SSL_get_app_data(OpaquePointer(ssl)) else { return 0 }
    let verification = Unmanaged<PeerVerification>.fromOpaque(argument).takeUnretainedValue()
    if verification.check(certificate) {
        X509_STORE_CTX_set_error(storeContext, X509_V_OK)
        return 1
    }
    X509_STORE_CTX_set_error(storeContext, X509_V_ERR_CERT_REJECTED)
    return 0
}
