import COpenSSL
import CShims

/// HMAC and digests for STUN integrity, on the system OpenSSL's SHA primitives.
public enum HMAC {
    public static func sha1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        sha1(key: key) { update in update(message[...]) }
    }

    public static func sha256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        sha256(key: key) { update in update(message[...]) }
    }

    /// HMAC-SHA1 over the pieces `feed` passes to its argument, in order (no concatenation copy).
    public static func sha1(key: [UInt8], _ feed: ((ArraySlice<UInt8>) -> Void) -> Void) -> [UInt8] {
        var state = peerd_hmac_sha1_state()
        key.withUnsafeBufferPointer { peerd_hmac_sha1_init(&state, $0.baseAddress, $0.count) }
        feed { piece in piece.withUnsafeBufferPointer { peerd_hmac_sha1_update(&state, $0.baseAddress, $0.count) } }
        var out = [UInt8](repeating: 0, count: 20)
        out.withUnsafeMutableBufferPointer { peerd_hmac_sha1_final(&state, $0.baseAddress) }
        return out
    }

    /// HMAC-SHA256 over the pieces `feed` passes to its argument, in order.
    public static func sha256(key: [UInt8], _ feed: ((ArraySlice<UInt8>) -> Void) -> Void) -> [UInt8] {
        var state = peerd_hmac_sha256_state()
        key.withUnsafeBufferPointer { peerd_hmac_sha256_init(&state, $0.baseAddress, $0.count) }
        feed { piece in piece.withUnsafeBufferPointer { peerd_hmac_sha256_update(&state, $0.baseAddress, $0.count) } }
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { peerd_hmac_sha256_final(&state, $0.baseAddress) }
        return out
    }

    /// MD5, for the RFC 8489 long-term credential key.
    public static func md5(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var outLength: UInt32 = 0
        let ok = EVP_Digest(message, message.count, &out, &outLength, EVP_md5(), nil)
        precondition(ok == 1 && outLength == 16, "OpenSSL MD5 failed")
        return out
    }
}

/// STUN credentials (RFC 8489 section 9).
public enum STUNCredentials {
    /// The short-term key: the password's bytes (ICE passwords are ASCII, so SASLprep is the identity).
    public static func shortTermKey(password: String) -> [UInt8] { Array(password.utf8) }

    /// The long-term key: MD5(username ":" realm ":" password).
    public static func longTermKey(username: String, realm: String, password: String) -> [UInt8] {
        HMAC.md5(Array("\(username):\(realm):\(password)".utf8))
    }
}
