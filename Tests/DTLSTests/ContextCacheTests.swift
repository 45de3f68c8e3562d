import COpenSSL
import Dispatch
import Testing
@testable import DTLS
import Wire

@Suite("DTLS shared SSL_CTX")
struct ContextCacheTests {
    @Test("endpoints with the same certificate and profiles share one SSL_CTX; others get their own")
    func sharing() throws {
        let certificate = try DTLSCertificate.generate()
        let other = try DTLSCertificate.generate()
        let print = other.fingerprint
        let a = try DTLSEndpoint(role: .client, certificate: certificate, remoteFingerprints: [print])
        let b = try DTLSEndpoint(role: .server, certificate: certificate, remoteFingerprints: [print], mtu: 500)
        let c = try DTLSEndpoint(role: .client, certificate: certificate, remoteFingerprints: [print], srtpProfiles: [.aeadAes128Gcm])
        let d = try DTLSEndpoint(role: .client, certificate: other, remoteFingerprints: [certificate.fingerprint])
        // The same identity loaded again from PEM is the same certificate and key.
        let reloaded = try DTLSCertificate(pem: certificate.pem)
        let e = try DTLSEndpoint(role: .client, certificate: reloaded, remoteFingerprints: [print])
        #expect(a.context == b.context)
        #expect(a.context == e.context)
        #expect(a.context != c.context)
        #expect(a.context != d.context)
    }

    @Test("the fingerprint check is per endpoint on a shared SSL_CTX")
    func perEndpointFingerprints() throws {
        let clientCertificate = try DTLSCertificate.generate()
        let serverCertificate = try DTLSCertificate.generate()
        let stranger = try DTLSCertificate.generate()
        func endpoints(serverExpects: CertificateFingerprint) throws -> (DTLSEndpoint, DTLSEndpoint) {
            (try DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint],
                              initialRetransmitTimeout: .milliseconds(30)),
             try DTLSEndpoint(role: .server, certificate: serverCertificate, remoteFingerprints: [serverExpects],
                              initialRetransmitTimeout: .milliseconds(30)))
        }
        // Interleave: both server endpoints exist (same SSL_CTX) before either handshakes.
        let (goodClient, goodServer) = try endpoints(serverExpects: clientCertificate.fingerprint)
        let (badClient, badServer) = try endpoints(serverExpects: stranger.fingerprint)
        #expect(goodServer.context == badServer.context)
        let bad = exchange(client: badClient, server: badServer)
        let good = exchange(client: goodClient, server: goodServer)
        #expect(ExchangeResult.connected(good.clientEvents) != nil)
        #expect(ExchangeResult.connected(good.serverEvents)?.2 == clientCertificate.fingerprint)
        guard case .fingerprintMismatch(let expected, let actual)? = ExchangeResult.failure(bad.serverEvents) else {
            Issue.record("server events: \(bad.serverEvents)")
            return
        }
        #expect(expected == [stranger.fingerprint])
        #expect(actual == clientCertificate.fingerprint)
        #expect(goodServer.state == .connected)
    }

    @Test("endpoints made on many threads at once share contexts and all connect")
    func concurrentCreation() throws {
        let certificates = try (0..<4).map { _ in try DTLSCertificate.generate() }
        let pairs = 24
        let lock = PThreadLock()
        nonisolated(unsafe) var made: [Int: (DTLSEndpoint, DTLSEndpoint)] = [:]
        nonisolated(unsafe) var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: pairs) { index in
            let clientCertificate = certificates[index % 4]
            let serverCertificate = certificates[(index + 1) % 4]
            do {
                let client = try DTLSEndpoint(role: .client, certificate: clientCertificate,
                                              remoteFingerprints: [serverCertificate.fingerprint])
                let server = try DTLSEndpoint(role: .server, certificate: serverCertificate,
                                              remoteFingerprints: [clientCertificate.fingerprint])
                // Handshake right here, on this thread, while other threads use the same contexts.
                let result = exchange(client: client, server: server, limit: .seconds(20))
                if ExchangeResult.connected(result.clientEvents) == nil || ExchangeResult.connected(result.serverEvents) == nil {
                    lock.withLock { errors.append("pair \(index): \(result.clientEvents) / \(result.serverEvents)") }
                }
                lock.withLock { made[index] = (client, server) }
            } catch {
                lock.withLock { errors.append("pair \(index): \(error)") }
            }
        }
        #expect(errors.isEmpty, "\(errors)")
        #expect(made.count == pairs)
        let contexts = Set(made.values.flatMap { [UInt(bitPattern: Int(bitPattern: UnsafeRawPointer($0.0.context))),
                                                  UInt(bitPattern: Int(bitPattern: UnsafeRawPointer($0.1.context)))] })
        #expect(contexts.count == 4, "one SSL_CTX per certificate")
    }

    @Test("an evicted context stays usable by the endpoints holding it")
    func eviction() throws {
        let cache = DTLSContextCache(capacity: 1)
        let first = try DTLSCertificate.generate()
        let second = try DTLSCertificate.generate()
        let held = try cache.context(certificate: first, profiles: [.aeadAes128Gcm])
        defer { SSL_CTX_free(held) }
        let again = try cache.context(certificate: first, profiles: [.aeadAes128Gcm])
        #expect(again == held)
        SSL_CTX_free(again)
        let other = try cache.context(certificate: second, profiles: [.aeadAes128Gcm])
        SSL_CTX_free(other)
        #expect(cache.count == 1)
        #expect(cache.created == 2)
        // `held` was evicted from the cache but our reference keeps it alive and working.
        let ssl = try #require(SSL_new(held))
        SSL_free(ssl)
        let fresh = try cache.context(certificate: first, profiles: [.aeadAes128Gcm])
        defer { SSL_CTX_free(fresh) }
        #expect(cache.created == 3)
    }
}
