import COpenSSL
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Why a DTLS certificate could not be made, loaded or saved.
public enum DTLSCertificateError: Error, Equatable, Sendable {
    /// Key or certificate generation failed (OpenSSL's error text).
    case generationFailed(String)
    /// The PEM text held no usable certificate or private key (OpenSSL's error text).
    case pemDecodeFailed(String)
    /// The private key does not belong to the certificate.
    case keyMismatch
    /// Reading or writing the file failed with this errno.
    case fileIO(path: String, errno: Int32)
}

/// A DTLS identity: a private key and its (normally self-signed) X.509 certificate.
///
/// `@unchecked Sendable`: the X509 and EVP_PKEY handles are never mutated after `init`; OpenSSL
/// allows concurrent read-only use of them and their reference counts are atomic.
public final class DTLSCertificate: @unchecked Sendable {
    let x509: OpaquePointer
    let privateKey: OpaquePointer

    /// SHA-256 fingerprint of the certificate, for the SDP `a=fingerprint` attribute.
    public let fingerprint: CertificateFingerprint

    private init(x509: OpaquePointer, privateKey: OpaquePointer) throws(DTLSCertificateError) {
        self.x509 = x509
        self.privateKey = privateKey
        guard let print = DTLS.fingerprint(of: x509, algorithm: .sha256) else {
            X509_free(x509)
            EVP_PKEY_free(privateKey)
            throw .generationFailed("X509_digest failed: " + drainOpenSSLErrors())
        }
        self.fingerprint = print
    }

    deinit {
        X509_free(x509)
        EVP_PKEY_free(privateKey)
    }

    /// Makes a new ECDSA P-256 key and a self-signed certificate (CN=peerd, random positive 16-byte
    /// serial, valid from one hour ago for `validityDays` days), signed with SHA-256.
    public static func generate(commonName: String = "peerd", validityDays: Int = 30) throws(DTLSCertificateError) -> DTLSCertificate {
        ERR_clear_error()
        guard let key = peerd_EVP_EC_gen_p256() else {
            throw .generationFailed("EVP_EC_gen: " + drainOpenSSLErrors())
        }
        guard let x509 = X509_new() else {
            EVP_PKEY_free(key)
            throw .generationFailed("X509_new: " + drainOpenSSLErrors())
        }
        var ok = peerd_X509_set_version3(x509) == 1
        var serial = [UInt8](repeating: 0, count: 16)
        ok = ok && RAND_bytes(&serial, Int32(serial.count)) == 1
        serial[0] &= 0x7f
        serial[0] |= 0x01 << 6
        if ok, let bignum = BN_bin2bn(serial, Int32(serial.count), nil) {
            ok = BN_to_ASN1_INTEGER(bignum, X509_get_serialNumber(x509)) != nil
            BN_free(bignum)
        } else {
            ok = false
        }
        ok = ok && X509_gmtime_adj(X509_getm_notBefore(x509), -3600) != nil
        ok = ok && X509_gmtime_adj(X509_getm_notAfter(x509), 86400 * validityDays) != nil
        if ok, let name = X509_get_subject_name(x509) {
            ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1
            ok = ok && X509_set_issuer_name(x509, name) == 1
        } else {
            ok = false
        }
        ok = ok && X509_set_pubkey(x509, key) == 1
        ok = ok && X509_sign(x509, key, EVP_sha256()) > 0
        guard ok else {
            let message = drainOpenSSLErrors()
            X509_free(x509)
            EVP_PKEY_free(key)
            throw .generationFailed("building the certificate failed: " + message)
        }
        return try DTLSCertificate(x509: x509, privateKey: key)
    }

    /// Loads a certificate and its private key from PEM text (both blocks, any order).
    public convenience init(pem: String) throws(DTLSCertificateError) {
        ERR_clear_error()
        var utf8 = Array(pem.utf8)
        let (certificate, key): (OpaquePointer?, OpaquePointer?) = utf8.withUnsafeMutableBytes { raw in
            let certBIO = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count))
            let keyBIO = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count))
            defer { BIO_free(certBIO); BIO_free(keyBIO) }
            return (PEM_read_bio_X509(certBIO, nil, nil, nil), PEM_read_bio_PrivateKey(keyBIO, nil, nil, nil))
        }
        guard let certificate, let key else {
            let message = drainOpenSSLErrors()
            if let certificate { X509_free(certificate) }
            if let key { EVP_PKEY_free(key) }
            throw .pemDecodeFailed(message.isEmpty ? "missing CERTIFICATE or PRIVATE KEY block" : message)
        }
        guard X509_check_private_key(certificate, key) == 1 else {
            ERR_clear_error()
            X509_free(certificate)
            EVP_PKEY_free(key)
            throw .keyMismatch
        }
        try self.init(x509: certificate, privateKey: key)
    }

    /// The certificate followed by its PKCS#8 private key, PEM-encoded.
    public var pem: String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        PEM_write_bio_X509(bio, x509)
        PEM_write_bio_PrivateKey(bio, privateKey, nil, nil, 0, nil, nil)
        var pointer: UnsafeMutablePointer<CChar>? = nil
        let length = peerd_BIO_get_mem_data(bio, &pointer)
        guard let pointer, length > 0 else { return "" }
        return UnsafeRawBufferPointer(start: pointer, count: length).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }

    /// The certificate alone, PEM-encoded.
    public var certificatePEM: String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        PEM_write_bio_X509(bio, x509)
        var pointer: UnsafeMutablePointer<CChar>? = nil
        let length = peerd_BIO_get_mem_data(bio, &pointer)
        guard let pointer, length > 0 else { return "" }
        return UnsafeRawBufferPointer(start: pointer, count: length).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }

    /// Fingerprint of this certificate with any algorithm.
    public func fingerprint(_ algorithm: FingerprintAlgorithm) -> CertificateFingerprint? {
        DTLS.fingerprint(of: x509, algorithm: algorithm)
    }

    /// Seconds until the certificate expires (negative once expired).
    public var secondsUntilExpiry: Int {
        var days: Int32 = 0
        var seconds: Int32 = 0
        guard ASN1_TIME_diff(&days, &seconds, nil, X509_get0_notAfter(x509)) == 1 else { return 0 }
        return Int(days) * 86400 + Int(seconds)
    }

    /// Loads a PEM file written by `save(to:)`.
    public static func load(from path: String) throws(DTLSCertificateError) -> DTLSCertificate {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .fileIO(path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw .fileIO(path: path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk.prefix(n))
            if bytes.count > 1 << 20 { throw .pemDecodeFailed("file larger than 1 MiB") }
        }
        return try DTLSCertificate(pem: String(decoding: bytes, as: UTF8.self))
    }

    /// Writes certificate and key as PEM to `path`, mode 0600.
    public func save(to path: String) throws(DTLSCertificateError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .fileIO(path: path, errno: errno) }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array(pem.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .fileIO(path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Loads the certificate at `path`, or makes and saves a new one if the file is missing
    /// or the certificate expires within a day.
    public static func loadOrCreate(path: String) throws(DTLSCertificateError) -> DTLSCertificate {
        do {
            let existing = try load(from: path)
            if existing.secondsUntilExpiry > 86400 { return existing }
        } catch {
            if case .fileIO(_, let code) = error, code != ENOENT { throw error }
        }
        let fresh = try generate()
        try fresh.save(to: path)
        return fresh
    }
}
