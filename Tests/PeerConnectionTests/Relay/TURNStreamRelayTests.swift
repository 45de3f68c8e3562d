import DTLS
import Foundation
import ICE
import NIOPosix
import Testing
import Wire
@testable import PeerConnection

/// A self-signed certificate for 127.0.0.1 (IP subjectAltName), made with openssl for one test.
struct LoopbackCertificate {
    let certificate: String
    let key: String

    init(in directory: URL) throws {
        certificate = directory.appendingPathComponent("cert.pem").path
        key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw TestSetupFailure("openssl not found (apt-get install -y openssl)")
        }
        openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                             "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=127.0.0.1",
                             "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw TestSetupFailure("openssl req failed (\(openssl.terminationStatus))") }
    }
}

/// Relay-only connections whose TURN server (a real coturn on loopback) is reached over TCP and over TLS
/// (RFC 8656 section 3.1): STUN and padded ChannelData framed on the stream, peer data relayed over UDP.
@Suite(.serialized) struct TURNStreamRelayTests {
    enum Kind { case tcp, tls }

    @Test func relayOnlyConnectionThroughTURNOverTCP() async throws {
        try await relayOnly(.tcp)
    }

    @Test func relayOnlyConnectionThroughTURNOverTLS() async throws {
        try await relayOnly(.tls)
    }

    func relayOnly(_ kind: Kind) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerd-turns-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = kind == .tls ? try LoopbackCertificate(in: directory) : nil
        let tlsPort = UInt16.random(in: 30_000...39_999)
        // coturn listens on TCP on its listening port unless --no-tcp; with a certificate, TLS on tlsPort.
        let turn = try TURNServerProcess(tls: certificate.map { ($0.certificate, $0.key, tlsPort) }, extraArguments: ["--verbose"])
        defer { turn.stop() }
        try turn.waitUntilReady()

        let urlText = kind == .tcp ? "turn:127.0.0.1:\(turn.address.port)?transport=tcp" : "turns:127.0.0.1:\(tlsPort)"
        let servers = TURNServerConfiguration.servers(from: [try ICEServer(urls: [urlText], username: "u", credential: "p")])
        try #require(servers.count == 1)
        #expect(servers[0].isStream && servers[0].tls == (kind == .tls))

        var configurationA = try relayTestConfiguration(ssrc: 0xA)
        configurationA.turnServers = servers
        configurationA.iceTransportPolicy = .relay
        if let certificate { configurationA.turnTLSTrust = .certificates(pemFile: certificate.certificate) }
        let configurationB = try relayTestConfiguration(ssrc: 0xB)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        let a = try await PeerConnectionDriver.start(configuration: configurationA, interfaces: .loopbackOnly, eventLoop: loop) { logA.record($0) }
        let b = try await PeerConnectionDriver.start(configuration: configurationB, interfaces: .loopbackOnly, eventLoop: loop) { logB.record($0) }
        let pair = DriverPair(a: a, b: b, logA: logA, logB: logB)

        try await pair.negotiate()
        let candidatesA = try await a.withCore { $0.localCandidates }
        let failures = try await a.withCore { $0.turnFailures.map { "\($0)" } }
        #expect(candidatesA.count == 1, "\(candidatesA) \(failures)")
        let relay = try #require(candidatesA.first { $0.type == .relay }, "no relay candidate: \(failures)\n\(turn.log.suffix(2000))")
        #expect(relay.transportAddress?.port != turn.address.port)

        let connected = await DriverPair.wait { pair.connected() }
        try #require(connected, "A: \(logA.events.withLock { $0 })\nB: \(logB.events.withLock { $0 })\n\(turn.log.suffix(3000))")
        let pairA = try #require(try await a.withCore { $0.selectedPair })
        let pairB = try #require(try await b.withCore { $0.selectedPair })
        #expect(pairA.local.type == .relay && pairA.viaRelay)
        #expect(pairB.remoteAddress == relay.transportAddress)

        let received = try await pair.exchangeAudio()
        #expect(received.aToB == 50)
        #expect(received.bToA == 50)

        let countersA = try await a.withCore { $0.counters }
        #expect(countersA.turnAllocations == 1)
        #expect(countersA.turnAllocationFailures == 0)
        #expect(countersA.relayedDatagramsSent >= 50)
        #expect(countersA.relayedDatagramsReceived >= 50)
        #expect(countersA.relayedChannelDataReceived > 0)
        // coturn saw the client on a stream, not over UDP.
        await pair.close()
        // coturn's session was on the stream listener (its closing line names the transport and port), and
        // the close deallocated it (Refresh with lifetime 0 on the stream).
        let port = kind == .tcp ? turn.address.port : tlsPort
        let closedLine = { (log: String) -> String? in
            log.split(separator: "\n").first { $0.contains("closed (2nd stage)") && $0.contains("local 127.0.0.1:\(port),") }.map(String.init)
        }
        let deadline = MonotonicTime.now() + .seconds(3)
        while closedLine(turn.log) == nil, MonotonicTime.now() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let line = closedLine(turn.log) ?? "no closing line: \(turn.log.suffix(3000))"
        #expect(line.contains(kind == .tcp ? "TCP" : "TLS/TCP"), "\(line)")
        let log = turn.log
        #expect(log.contains("refreshed, realm=<test>, username=<u>, lifetime=0"), "\(log.suffix(3000))")
        if kind == .tls { #expect(log.contains("method=TLSv1."), "\(log.suffix(3000))") }
    }

    @Test func untrustedTURNServerCertificateGivesNoRelayCandidate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerd-turns-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = try LoopbackCertificate(in: directory)
        let tlsPort = UInt16.random(in: 30_000...39_999)
        let turn = try TURNServerProcess(tls: (certificate.certificate, certificate.key, tlsPort))
        defer { turn.stop() }
        try turn.waitUntilReady()

        var configuration = try relayTestConfiguration(ssrc: 0xA)
        configuration.turnServers = [TURNServerConfiguration(address: TransportAddress(ip: IPAddress("127.0.0.1")!, port: tlsPort),
                                                             username: "u", credential: "p", tls: true)]
        configuration.iceTransportPolicy = .relay
        // The self-signed certificate is not among the system's roots.
        configuration.turnTLSTrust = .system
        let log = EventLog()
        let driver = try await PeerConnectionDriver.start(configuration: configuration, interfaces: .loopbackOnly,
                                                          eventLoop: MultiThreadedEventLoopGroup.singleton.next()) { log.record($0) }
        _ = try await driver.withCore { try $0.createOffer(now: .now()) }
        let failed = await DriverPair.wait(.seconds(5)) { (try? await driver.withCore { $0.counters.turnAllocationFailures }) == 1 }
        let failures = try await driver.withCore { $0.turnFailures.map { "\($0.error)" } }
        #expect(failed, "\(failures)")
        #expect(failures == ["streamClosed"])
        #expect(try await driver.withCore { $0.counters.turnAllocations } == 0)
        #expect(try await driver.withCore { $0.localCandidates }.isEmpty)
        await driver.close()
    }
}
