import COpenSSL

/// HMAC and digests for STUN integrity, on the system OpenSSL.
public enum HMAC {
    public static func sha1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        compute(EVP_sha1(), key: key, message: message, length: 20)
    }

    public static func sha256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        compute(EVP_sha256(), key: key, message: message, length: 32)
    }

    private static func compute(_ digest: OpaquePointer?, key: [UInt8], message: [UInt8], length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var outLength: UInt32 = 0
        // OpenSSL wants a non-null key pointer even for an empty key.
        let keyStorage = key.isEmpty ? [UInt8(0)] : key
        let ok = keyStorage.withUnsafeBufferPointer { keyBuffer in
            message.withUnsafeBufferPointer { messageBuffer in
                COpenSSL.HMAC(digest, keyBuffer.baseAddress, Int32(key.count),
                              messageBuffer.baseAddress, messageBuffer.count, &out, &outLength)
            }
        }
        precondition(ok != nil && Int(outLength) == length, "OpenSSL HMAC failed")
        return Array(out.prefix(length))
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
