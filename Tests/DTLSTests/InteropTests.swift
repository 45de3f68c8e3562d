import Foundation
import Testing
@testable import DTLS
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A blocking IPv4 UDP socket on 127.0.0.1 for interop tests.
final class LoopbackUDPSocket {
    let fd: Int32

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = Self.address(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit { close(fd) }

    static func address(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    var port: UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    func send(_ bytes: [UInt8], to port: UInt16) {
        var address = Self.address(port: port)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, target, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    /// One datagram and its source port, or nil after `timeoutMilliseconds`.
    func receive(timeoutMilliseconds: Int32) -> (bytes: [UInt8], port: UInt16)? {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, timeoutMilliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { source in
                buffer.withUnsafeMutableBytes { recvfrom(fd, $0.baseAddress, $0.count, 0, source, &length) }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer.prefix(count)), UInt16(bigEndian: address.sin_port))
    }
}

/// Runs `openssl` with output to a file, so the test can poll what it printed.
final class OpenSSLProcess {
    let process = Process()
    let outputPath = NSTemporaryDirectory() + "peerd-openssl-\(UUID().uuidString).log"
    let input = Pipe()

    init(_ arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw InteropError.missingTool("openssl command-line tool not found at /usr/bin/openssl (apt-get install openssl)")
        }
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The hex keying material printed by `-keymatexport`, if printed yet.
    var keyingMaterial: [UInt8]? {
        guard let range = output.range(of: "Keying material: ") else { return nil }
        let rest = output[range.upperBound...].prefix { $0.isHexDigit }
        return rest.isEmpty ? nil : hex(String(rest))
    }

    /// Kills the tool with SIGKILL: under the test runner the child may inherit an ignored SIGTERM.
    func stop() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

enum InteropError: Error { case missingTool(String) }

/// Reassembles RFC 5764 exported material (client key | server key | client salt | server salt).
func exportedMaterial(_ keys: SRTPKeyingMaterial, role: DTLSRole) -> [UInt8] {
    role == .client
        ? keys.localKey + keys.remoteKey + keys.localSalt + keys.remoteSalt
        : keys.remoteKey + keys.localKey + keys.remoteSalt + keys.localSalt
}

@Suite("Interop with openssl s_server / s_client", .serialized)
struct InteropTests {
    private func writeIdentity() throws -> (DTLSCertificate, String) {
        let certificate = try DTLSCertificate.generate()
        let path = NSTemporaryDirectory() + "peerd-interop-\(UUID().uuidString).pem"
        try certificate.save(to: path)
        return (certificate, path)
    }

    /// Drives `endpoint` over `socket` until it connects and `tool` prints its keying material.
    private func drive(_ endpoint: DTLSEndpoint, socket: LoopbackUDPSocket, peerPort initialPort: UInt16?,
                       tool: OpenSSLProcess) -> (DTLSEvent?, [UInt8]?) {
        var peerPort = initialPort
        var connected: DTLSEvent?
        let start = MonotonicTime.now()
        endpoint.start(now: start)
        while MonotonicTime.now() - start < .seconds(10) {
            if let port = peerPort { while let datagram = endpoint.pollTransmit() { socket.send(datagram, to: port) } }
            while let event = endpoint.pollEvent() {
                if case .connected = event { connected = event }
                if case .failed = event { return (event, nil) }
            }
            if connected != nil, let material = tool.keyingMaterial { return (connected, material) }
            if let received = socket.receive(timeoutMilliseconds: 10) {
                peerPort = received.port
                endpoint.handleDatagram(received.bytes, now: .now())
            }
            let now = MonotonicTime.now()
            if let deadline = endpoint.nextTimeout, deadline <= now { endpoint.handleTimeout(now: now) }
        }
        return (connected, tool.keyingMaterial)
    }

    @Test("our client against openssl s_server: same SRTP profile and keying material",
          arguments: [SRTPProfile.aeadAes128Gcm, .aes128CmSha1_80])
    func clientAgainstSServer(profile: SRTPProfile) throws {
        let (serverIdentity, serverPath) = try writeIdentity()
        defer { try? FileManager.default.removeItem(atPath: serverPath) }
        let port = try LoopbackUDPSocket().port  // a free port; the socket closes right away
        let socket = try LoopbackUDPSocket()
        let tool = try OpenSSLProcess(["s_server", "-dtls1_2", "-4", "-accept", "127.0.0.1:\(port)",
                                       "-cert", serverPath, "-key", serverPath, "-verify", "1",
                                       "-use_srtp", profile.openSSLName,
                                       "-keymatexport", "EXTRACTOR-dtls_srtp",
                                       "-keymatexportlen", "\(profile.keyingMaterialLength)"])
        defer { tool.stop() }
        let waitStart = MonotonicTime.now()
        while !tool.output.contains("ACCEPT") && MonotonicTime.now() - waitStart < .seconds(5) { usleep(10_000) }
        #expect(tool.output.contains("ACCEPT"), "s_server did not start: \(tool.output)")

        let clientIdentity = try DTLSCertificate.generate()
        let endpoint = try DTLSEndpoint(role: .client, certificate: clientIdentity,
                                        remoteFingerprints: [serverIdentity.fingerprint])
        let (event, material) = drive(endpoint, socket: socket, peerPort: port, tool: tool)
        guard case .connected(let negotiated, let keys, let print) = event else {
            Issue.record("not connected: \(String(describing: event)); s_server said: \(tool.output)")
            return
        }
        #expect(negotiated == profile)
        #expect(print == serverIdentity.fingerprint)
        let theirs = try #require(material, "s_server printed no keying material: \(tool.output)")
        #expect(hexString(theirs) == hexString(exportedMaterial(keys, role: .client)))
    }

    @Test("openssl s_client against our server: same SRTP profile and keying material")
    func serverAgainstSClient() throws {
        let profile = SRTPProfile.aeadAes128Gcm
        let (clientIdentity, clientPath) = try writeIdentity()
        defer { try? FileManager.default.removeItem(atPath: clientPath) }
        let socket = try LoopbackUDPSocket()
        let serverIdentity = try DTLSCertificate.generate()
        let endpoint = try DTLSEndpoint(role: .server, certificate: serverIdentity,
                                        remoteFingerprints: [clientIdentity.fingerprint])
        let tool = try OpenSSLProcess(["s_client", "-dtls1_2", "-4", "-connect", "127.0.0.1:\(socket.port)",
                                       "-cert", clientPath, "-key", clientPath,
                                       "-use_srtp", profile.openSSLName,
                                       "-keymatexport", "EXTRACTOR-dtls_srtp",
                                       "-keymatexportlen", "\(profile.keyingMaterialLength)"])
        defer { tool.stop() }
        let (event, material) = drive(endpoint, socket: socket, peerPort: nil, tool: tool)
        guard case .connected(let negotiated, let keys, let print) = event else {
            Issue.record("not connected: \(String(describing: event)); s_client said: \(tool.output)")
            return
        }
        #expect(negotiated == profile)
        #expect(print == clientIdentity.fingerprint)
        let theirs = try #require(material, "s_client printed no keying material: \(tool.output)")
        #expect(hexString(theirs) == hexString(exportedMaterial(keys, role: .server)))
        #expect(tool.output.contains("SRTP Extension negotiated, profile=\(profile.openSSLName)"))
    }
}
