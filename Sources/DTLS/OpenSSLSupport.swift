import COpenSSL
import CShims

/// Drains OpenSSL's thread-local error queue into one readable string ("" if empty).
func drainOpenSSLErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        messages.append(text)
    }
    return messages.joined(separator: "; ")
}

/// The OpenSSL message digest for a fingerprint algorithm.
func messageDigest(_ algorithm: FingerprintAlgorithm) -> OpaquePointer? {
    switch algorithm {
    case .sha1: EVP_sha1()
    case .sha224: EVP_sha224()
    case .sha256: EVP_sha256()
    case .sha384: EVP_sha384()
    case .sha512: EVP_sha512()
    }
}

/// Fingerprint of a certificate (digest of its DER encoding).
func fingerprint(of certificate: OpaquePointer, algorithm: FingerprintAlgorithm) -> CertificateFingerprint? {
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    guard X509_digest(certificate, messageDigest(algorithm), &digest, &length) == 1 else { return nil }
    return CertificateFingerprint(algorithm: algorithm, bytes: Array(digest.prefix(Int(length))))
}
