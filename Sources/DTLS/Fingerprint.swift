/// A hash function allowed in an SDP `a=fingerprint` attribute (RFC 8122).
public enum FingerprintAlgorithm: String, Sendable, Equatable, Hashable, CaseIterable {
    case sha1 = "sha-1"
    case sha224 = "sha-224"
    case sha256 = "sha-256"
    case sha384 = "sha-384"
    case sha512 = "sha-512"

    /// Digest length in bytes.
    public var digestLength: Int {
        switch self {
        case .sha1: 20
        case .sha224: 28
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }
}

/// Why an SDP fingerprint value could not be parsed.
public enum FingerprintParseError: Error, Equatable, Sendable {
    /// No space between the algorithm and the hex bytes.
    case missingValue
    /// The algorithm token is not one of sha-1, sha-224, sha-256, sha-384, sha-512.
    case unknownAlgorithm(String)
    /// A byte is not two hex digits.
    case badHexByte(String)
    /// The number of bytes does not match the algorithm's digest length.
    case lengthMismatch(expected: Int, actual: Int)
}

/// A certificate fingerprint: hash algorithm and digest of the DER certificate (RFC 8122).
public struct CertificateFingerprint: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var algorithm: FingerprintAlgorithm
    public var bytes: [UInt8]

    public init(algorithm: FingerprintAlgorithm, bytes: [UInt8]) {
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// Parses an SDP `a=fingerprint` value such as `sha-256 AB:CD:...` (algorithm case-insensitive).
    public init(sdpValue: String) throws(FingerprintParseError) {
        let trimmed = sdpValue.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard trimmed.count == 2 else { throw .missingValue }
        guard let algorithm = FingerprintAlgorithm(rawValue: trimmed[0].lowercased()) else {
            throw .unknownAlgorithm(trimmed[0])
        }
        let parts = trimmed[1].split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == algorithm.digestLength else {
            throw .lengthMismatch(expected: algorithm.digestLength, actual: parts.count)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(algorithm.digestLength)
        for part in parts {
            guard part.utf8.count == 2, let byte = UInt8(part, radix: 16) else { throw .badHexByte(String(part)) }
            bytes.append(byte)
        }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// The SDP `a=fingerprint` value: lowercase algorithm, uppercase colon-separated hex.
    public var sdpValue: String {
        algorithm.rawValue + " " + hexString
    }

    /// Uppercase colon-separated hex of the digest (`AB:CD:...`).
    public var hexString: String {
        let digits: [Character] = Array("0123456789ABCDEF")
        var out = ""
        out.reserveCapacity(bytes.count * 3)
        for (index, byte) in bytes.enumerated() {
            if index > 0 { out.append(":") }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }

    public var description: String { sdpValue }
}
