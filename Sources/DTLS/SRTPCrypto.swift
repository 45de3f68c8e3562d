import CShims
import CSRTP
#if canImport(Glibc)
import Glibc
#endif

/// Which library does libsrtp's cryptography.
///
/// Debian's libsrtp2 is built on NSS: its AES-GCM opens a PKCS#11 session and looks the key up in
/// a table that grows with the number of live sessions on every packet, and its AES-ICM makes a
/// PK11 context per packet. peerd replaces libsrtp's cipher and HMAC types with ones on system
/// OpenSSL (`srtp_openssl.c`, through libsrtp's `srtp_replace_cipher_type` and
/// `srtp_replace_auth_type`); libsrtp still does SRTP and SRTCP itself. libsrtp runs its
/// known-answer tests on each replacement and refuses one that fails them.
///
/// `PEERD_SRTP_CRYPTO=nss` in the environment keeps libsrtp's own NSS types (to compare).
public enum SRTPCrypto {
    /// The primitive families that can be replaced.
    public enum Family: String, Sendable, CaseIterable {
        /// AES-128/256-GCM (the AEAD profiles, RFC 7714).
        case aesGCM = "AES-GCM"
        /// AES counter mode (the AES_CM profiles, and libsrtp's key derivation for every profile).
        case aesICM = "AES-ICM"
        /// HMAC-SHA1 (the AES_CM profiles' authentication).
        case hmacSHA1 = "HMAC-SHA1"

        var bit: Int32 {
            switch self {
            case .aesGCM: PEERD_SRTP_OPENSSL_GCM
            case .aesICM: PEERD_SRTP_OPENSSL_ICM
            case .hmacSHA1: PEERD_SRTP_OPENSSL_HMAC
            }
        }
    }

    /// Whether the environment asks for libsrtp's NSS types (`PEERD_SRTP_CRYPTO=nss`).
    static var requestedNSS: Bool {
        guard let value = getenv("PEERD_SRTP_CRYPTO") else { return false }
        return String(cString: value).lowercased() == "nss"
    }

    /// libsrtp's status from the replacement (0 when every family was accepted); written once,
    /// inside the one-time libsrtp initialisation, before anything reads it.
    nonisolated(unsafe) static var installStatus: Int32 = 0

    static var familiesOnOpenSSL: Int {
        Family.allCases.filter { peerd_srtp_openssl_installed() & $0.bit != 0 }.count
    }

    /// The families whose libsrtp types run on OpenSSL (initialises libsrtp if it was not).
    public static var onOpenSSL: Set<Family> {
        _ = srtpLibraryStatus
        return Set(Family.allCases.filter { peerd_srtp_openssl_installed() & $0.bit != 0 })
    }

    /// The descriptions of the cipher and auth types libsrtp's crypto kernel uses now, by libsrtp
    /// type name ("AES-128 GCM" → "AES-128 GCM on OpenSSL (peerd)" or libsrtp's NSS description).
    public static var kernelDescriptions: [String: String] {
        _ = onOpenSSL
        var result: [String: String] = [:]
        for (name, id) in [("AES-128 GCM", SRTP_AES_GCM_128), ("AES-256 GCM", SRTP_AES_GCM_256),
                           ("AES-128 ICM", SRTP_AES_ICM_128), ("AES-256 ICM", SRTP_AES_ICM_256)] {
            if let description = peerd_srtp_cipher_description(id) { result[name] = String(cString: description) }
        }
        if let description = peerd_srtp_auth_description(SRTP_HMAC_SHA1) { result["HMAC-SHA1"] = String(cString: description) }
        return result
    }

    /// One line for logs and benchmark headers, e.g. "libsrtp with AES-GCM, AES-ICM, HMAC-SHA1 on OpenSSL".
    public static var summary: String {
        let installed = onOpenSSL
        let families = Family.allCases.filter { installed.contains($0) }
        if families.isEmpty { return "libsrtp on its own crypto (NSS)" + (installStatus != 0 ? ", OpenSSL types refused (status \(installStatus))" : "") }
        let rest = Family.allCases.filter { !families.contains($0) }
        return "libsrtp with " + families.map(\.rawValue).joined(separator: ", ") + " on OpenSSL"
            + (rest.isEmpty ? "" : "; " + rest.map(\.rawValue).joined(separator: ", ") + " on NSS")
    }
}
