import DTLS
import Wire

/// Issue 4 figures: certificate generation and an in-process DTLS 1.2 handshake (ECDSA P-256).
enum DTLSBenchmarks {
    /// Shuttles datagrams between two started endpoints until neither is handshaking; returns
    /// whether both connected, and the datagram count.
    static func shuttle(_ client: DTLSEndpoint, _ server: DTLSEndpoint) -> (connected: Bool, datagrams: Int) {
        var datagrams = 0
        var spins = 0
        while client.state == .handshaking || server.state == .handshaking {
            var moved = false
            while let datagram = client.pollTransmit() { moved = true; datagrams += 1; server.handleDatagram(datagram, now: .now()) }
            while let datagram = server.pollTransmit() { moved = true; datagrams += 1; client.handleDatagram(datagram, now: .now()) }
            if !moved { spins += 1; if spins > 1000 { break } }
        }
        var connected = 0
        for endpoint in [client, server] {
            while let event = endpoint.pollEvent() { if case .connected = event { connected += 1 } }
        }
        return (connected == 2, datagrams)
    }

    static func run(_ bench: inout Bench) {
        let names = ["dtls/certificate: generate (ECDSA P-256, self-signed)", "dtls/handshake: endpoints + handshake",
                     "dtls/handshake: handshake only", "dtls/endpoint: create"]
        guard bench.enabled(any: names) else { return }
        bench.sampleWhole(names[0], runs: 200) { blackHole(try! DTLSCertificate.generate()) }
        let clientCertificate = try! DTLSCertificate.generate()
        let serverCertificate = try! DTLSCertificate.generate()
        func endpoints() -> (DTLSEndpoint, DTLSEndpoint) {
            (try! DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint]),
             try! DTLSEndpoint(role: .server, certificate: serverCertificate, remoteFingerprints: [clientCertificate.fingerprint]))
        }
        var datagrams = 0
        bench.sampleWhole(names[1], runs: 100) {
            let (client, server) = endpoints()
            let now = MonotonicTime.now()
            server.start(now: now)
            client.start(now: now)
            let result = shuttle(client, server)
            precondition(result.connected, "DTLS handshake did not complete")
            datagrams = result.datagrams
        }
        bench.sample(names[2], runs: 100, note: "\(datagrams) datagrams") {
            let (client, server) = endpoints()
            let start = MonotonicTime.now()
            server.start(now: start)
            client.start(now: start)
            precondition(shuttle(client, server).connected, "DTLS handshake did not complete")
            return elapsedNanoseconds(since: start)
        }
        bench.sampleWhole(names[3], runs: 200, note: "SSL_CTX + SSL per endpoint") {
            blackHole(try! DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint]))
        }
    }
}
