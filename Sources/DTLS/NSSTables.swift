#if canImport(Glibc)
import Glibc
#endif

/// Debian's libsrtp2 runs on NSS and opens every cipher context with `NSS_INIT_OPTIMIZESPACE`,
/// so whichever context loads NSS's soft token first gives it 32-bucket session and object hash
/// tables. Every SRTP key is a session object there, looked up by handle (a linked-list walk in
/// libsoftokn3) on each PK11_Encrypt/PK11_Decrypt, so with thousands of connections the walk
/// dominates: `peerd-load srtp-scaling` measured protect + unprotect at 2.4 µs with one session
/// pair and 43 µs with 1,000 pairs (218 µs with 4,000). Initialising NSS once, before libsrtp and
/// for the life of the process, without that flag gives the soft token its 1,024-bucket tables
/// (7.4 µs at 1,000 pairs, 20 µs at 4,000); libsrtp's later contexts only add references.
///
/// Used only while some libsrtp type runs on NSS: by default peerd replaces them with OpenSSL
/// ones (`SRTPCrypto`), and `PEERD_SRTP_CRYPTO=nss` keeps NSS (then this applies).
///
/// Found at run time (`dlopen` of the libnss3 that libsrtp2 already links), so no build
/// dependency is added; on a libsrtp2 built on OpenSSL this finds no NSS and does nothing.
/// `PEERD_NSS_OPTIMIZE_SPACE=1` skips it (to measure the difference).
enum NSSTables {
    /// Whether NSS was initialised here with the large tables.
    static let initialized: Bool = {
        if let value = getenv("PEERD_NSS_OPTIMIZE_SPACE"), String(cString: value) == "1" { return false }
        guard let handle = dlopen("libnss3.so", RTLD_NOW | RTLD_GLOBAL), let symbol = dlsym(handle, "NSS_InitContext") else {
            return false
        }
        typealias InitContext = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafePointer<CChar>,
                                                UnsafePointer<CChar>, UnsafeMutableRawPointer?, UInt32) -> OpaquePointer?
        let initContext = unsafeBitCast(symbol, to: InitContext.self)
        // NSS_INIT_READONLY | NSS_INIT_NOCERTDB | NSS_INIT_NOMODDB | NSS_INIT_FORCEOPEN (nss.h); no
        // NSS_INIT_OPTIMIZESPACE. The context is never shut down: NSS stays loaded for the process.
        return initContext("", "", "", "", nil, 0x1 | 0x2 | 0x4 | 0x8) != nil
    }()
}
