import Foundation
import Testing
@testable import DTLS

@Suite("Certificates, fingerprints, demultiplexing")
struct CertificateTests {
    @Test("generated certificate: self-signed P-256, CN=peerd, ~30 days, sha-256 fingerprint")
    func generate() throws {
        let certificate = try DTLSCertificate.generate()
        #expect(certificate.fingerprint.algorithm == .sha256)
        #expect(certificate.fingerprint.bytes.count == 32)
        #expect(certificate.secondsUntilExpiry > 29 * 86400 && certificate.secondsUntilExpiry <= 30 * 86400)
        let other = try DTLSCertificate.generate()
        #expect(other.fingerprint != certificate.fingerprint)
        let text = try openSSLText(certificate.certificatePEM)
        #expect(text.contains("CN = peerd") || text.contains("CN=peerd"))
        #expect(text.contains("prime256v1") || text.contains("P-256"))
        #expect(text.contains("ecdsa-with-SHA256"))
        #expect(text.contains("Version: 3"))
    }

    @Test("PEM round trip and file save/load keep the identity")
    func pemRoundTrip() throws {
        let certificate = try DTLSCertificate.generate()
        let copy = try DTLSCertificate(pem: certificate.pem)
        #expect(copy.fingerprint == certificate.fingerprint)
        let path = NSTemporaryDirectory() + "peerd-dtls-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try certificate.save(to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try DTLSCertificate.load(from: path).fingerprint == certificate.fingerprint)
        #expect(try DTLSCertificate.loadOrCreate(path: path).fingerprint == certificate.fingerprint)
        let fresh = NSTemporaryDirectory() + "peerd-dtls-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: fresh) }
        let created = try DTLSCertificate.loadOrCreate(path: fresh)
        #expect(try DTLSCertificate.load(from: fresh).fingerprint == created.fingerprint)
        // openssl agrees on the fingerprint.
        let printed = try openSSL(["x509", "-noout", "-fingerprint", "-sha256", "-in", path])
        #expect(printed.uppercased().contains(certificate.fingerprint.hexString))
    }

    @Test("bad PEM is refused with a typed error")
    func badPEM() throws {
        #expect(throws: DTLSCertificateError.self) { try DTLSCertificate(pem: "") }
        #expect(throws: DTLSCertificateError.self) { try DTLSCertificate(pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") }
        let a = try DTLSCertificate.generate()
        let b = try DTLSCertificate.generate()
        #expect(throws: DTLSCertificateError.keyMismatch) {
            try DTLSCertificate(pem: a.certificatePEM + b.pem.components(separatedBy: "-----END CERTIFICATE-----\n")[1])
        }
        #expect(throws: DTLSCertificateError.fileIO(path: "/nonexistent/x.pem", errno: ENOENT)) {
            try DTLSCertificate.load(from: "/nonexistent/x.pem")
        }
    }

    @Test("fingerprint SDP values parse and format")
    func fingerprintParse() throws {
        let value = "sha-256 " + (0..<32).map { String(format: "%02X", $0 * 7 % 256) }.joined(separator: ":")
        let parsed = try CertificateFingerprint(sdpValue: value)
        #expect(parsed.algorithm == .sha256)
        #expect(parsed.sdpValue == value)
        #expect(try CertificateFingerprint(sdpValue: "SHA-1 " + [String](repeating: "ab", count: 20).joined(separator: ":")).algorithm == .sha1)
        #expect(throws: FingerprintParseError.missingValue) { try CertificateFingerprint(sdpValue: "sha-256") }
        #expect(throws: FingerprintParseError.unknownAlgorithm("md5")) { try CertificateFingerprint(sdpValue: "md5 AB:CD") }
        #expect(throws: FingerprintParseError.lengthMismatch(expected: 32, actual: 2)) { try CertificateFingerprint(sdpValue: "sha-256 AB:CD") }
        #expect(throws: FingerprintParseError.badHexByte("G1")) {
            try CertificateFingerprint(sdpValue: "sha-1 G1" + String(repeating: ":00", count: 19))
        }
        for algorithm in FingerprintAlgorithm.allCases {
            let print = CertificateFingerprint(algorithm: algorithm, bytes: [UInt8](repeating: 0x5a, count: algorithm.digestLength))
            #expect(try CertificateFingerprint(sdpValue: print.sdpValue) == print)
        }
        // Truncation at every length and a seeded mutation loop: never a crash, and anything
        // that parses formats back to a value that re-parses equal.
        for cut in 0..<value.count {
            #expect(throws: FingerprintParseError.self) { try CertificateFingerprint(sdpValue: String(value.prefix(cut))) }
        }
        var rng = SplitMix64(state: 7)
        let alphabet = Array("0123456789ABCDEFabcdef: -shaSHA\t")
        for _ in 0..<3000 {
            var characters = Array(value)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let index = Int.random(in: 0..<characters.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: characters[index] = alphabet.randomElement(using: &rng)!
                case 1: characters.insert(alphabet.randomElement(using: &rng)!, at: index)
                default: if characters.count > 1 { characters.remove(at: index) }
                }
            }
            if let parsed = try? CertificateFingerprint(sdpValue: String(characters)) {
                #expect(try CertificateFingerprint(sdpValue: parsed.sdpValue) == parsed)
            }
        }
    }
}

func openSSL(_ arguments: [String], input: String? = nil) throws -> String {
    guard let path = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("openssl command-line tool not found (apt-get install openssl)")
        return ""
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    let inputPipe = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = inputPipe
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inputPipe.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

func openSSLText(_ certificatePEM: String) throws -> String {
    try openSSL(["x509", "-noout", "-text"], input: certificatePEM)
}
