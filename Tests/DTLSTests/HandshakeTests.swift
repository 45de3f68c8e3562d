import Testing
@testable import DTLS
import Wire
#if canImport(Glibc)
import Glibc
#endif

@Suite("DTLS handshake")
struct HandshakeTests {
    /// Connects a pair and checks mirrored keys and SRTP/SRTCP both ways.
    private func connectAndCheckSRTP(_ peers: Peers, expecting profile: SRTPProfile) throws -> ExchangeResult {
        let result = exchange(client: peers.client, server: peers.server)
        let client = try #require(ExchangeResult.connected(result.clientEvents), "client events: \(result.clientEvents)")
        let server = try #require(ExchangeResult.connected(result.serverEvents), "server events: \(result.serverEvents)")
        #expect(client.0 == profile)
        #expect(server.0 == profile)
        #expect(client.1 == server.1.mirrored)
        #expect(client.1.localKey.count == profile.keyLength)
        #expect(client.1.localSalt.count == profile.saltLength)
        #expect(client.1.localKey != client.1.remoteKey)
        #expect(client.2 == peers.serverCertificate.fingerprint)
        #expect(server.2 == peers.clientCertificate.fingerprint)

        let clientSRTP = try SRTPSession(profile: client.0, keys: client.1)
        let serverSRTP = try SRTPSession(profile: server.0, keys: server.1)
        let payload = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for sequence in UInt16(1)...5 {
            let plain = rtpPacket(sequence: sequence, payload: payload)
            var packet = plain
            try clientSRTP.protectRTP(&packet)
            #expect(packet.count == plain.count + profile.rtpOverhead)
            #expect(Array(packet[12...]) != payload)
            try serverSRTP.unprotectRTP(&packet)
            #expect(packet == plain)

            var back = plain
            try serverSRTP.protectRTP(&back)
            try clientSRTP.unprotectRTP(&back)
            #expect(back == plain)
        }
        // RTCP sender report, both ways.
        var report: [UInt8] = [0x80, 200, 0x00, 0x06, 0x12, 0x34, 0x56, 0x78] + [UInt8](repeating: 0x42, count: 20)
        let plainReport = report
        try clientSRTP.protectRTCP(&report)
        #expect(report.count == plainReport.count + profile.rtcpOverhead)
        try serverSRTP.unprotectRTCP(&report)
        #expect(report == plainReport)
        return result
    }

    @Test("every SRTP profile negotiates with mirrored keys", arguments: SRTPProfile.allCases)
    func everyProfile(profile: SRTPProfile) throws {
        let peers = try makePeers(clientProfiles: [profile], serverProfiles: SRTPProfile.defaultPreference)
        _ = try connectAndCheckSRTP(peers, expecting: profile)
        #expect(peers.client.negotiatedProfile == profile)
    }

    @Test("defaults: DTLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256, extended master secret, AES-256-GCM SRTP")
    func defaults() throws {
        let peers = try makePeers()
        let result = try connectAndCheckSRTP(peers, expecting: .aeadAes256Gcm)
        for endpoint in [peers.client, peers.server] {
            #expect(endpoint.state == .connected)
            #expect(endpoint.protocolVersion == "DTLSv1.2")
            #expect(endpoint.cipherSuite == "ECDHE-ECDSA-AES128-GCM-SHA256")
            #expect(endpoint.usesExtendedMasterSecret)
            #expect(endpoint.statistics.malformedDatagrams == 0)
        }
        #expect(result.clientToServer.allSatisfy { $0.count <= 1200 })
        #expect(result.serverToClient.allSatisfy { $0.count <= 1200 })
        #expect(peers.client.nextTimeout == nil || peers.client.state == .connected)
    }

    @Test("the server's profile order wins")
    func serverOrderWins() throws {
        let peers = try makePeers(clientProfiles: SRTPProfile.defaultPreference,
                                  serverProfiles: [.aes128CmSha1_80, .aeadAes128Gcm])
        _ = try connectAndCheckSRTP(peers, expecting: .aes128CmSha1_80)
    }

    @Test("no common SRTP profile fails")
    func noCommonProfile() throws {
        let peers = try makePeers(clientProfiles: [.aeadAes128Gcm], serverProfiles: [.aes128CmSha1_80])
        let result = exchange(client: peers.client, server: peers.server)
        #expect(ExchangeResult.connected(result.clientEvents) == nil)
        #expect(ExchangeResult.failure(result.clientEvents) == .noSRTPProfile)
    }

    @Test("a small MTU fragments the handshake and every datagram fits")
    func smallMTU() throws {
        let peers = try makePeers(mtu: 300)
        let result = try connectAndCheckSRTP(peers, expecting: .aeadAes256Gcm)
        let all = result.clientToServer + result.serverToClient
        #expect(all.allSatisfy { $0.count <= 300 })
        // The server's Certificate message (type 11) does not fit one 300-byte datagram: it
        // must arrive as several fragments (records).
        let certificateFragments = result.serverToClient.flatMap(records).filter { describe($0).handshake == 11 }
        #expect(certificateFragments.count >= 2, "certificate fragments: \(certificateFragments.map(\.count))")
    }

    @Test("losing the first flight completes through retransmission")
    func dropFirstFlight() throws {
        let peers = try makePeers()
        let result = exchange(client: peers.client, server: peers.server) { direction, index, _ in
            direction == .clientToServer && index == 0 ? .drop : .deliver
        }
        #expect(ExchangeResult.connected(result.clientEvents) != nil)
        #expect(ExchangeResult.connected(result.serverEvents) != nil)
        #expect(peers.client.statistics.retransmissions >= 1)
        #expect(result.clientToServer[0] == result.clientToServer[1] || result.clientToServer[1][0] == 22)
    }

    @Test("losing the server's flight and the final flight completes")
    func dropServerFlights() throws {
        let peers = try makePeers()
        var droppedServerFinal = false
        let result = exchange(client: peers.client, server: peers.server) { direction, index, datagram in
            if direction == .serverToClient && index == 1 { return .drop }   // part of flight 4
            if direction == .serverToClient && datagram[0] == 20 && !droppedServerFinal {  // server ChangeCipherSpec
                droppedServerFinal = true
                return .drop
            }
            return .deliver
        }
        #expect(ExchangeResult.connected(result.clientEvents) != nil)
        #expect(ExchangeResult.connected(result.serverEvents) != nil)
        #expect(droppedServerFinal)
        // The server's last flight (it starts with ChangeCipherSpec) was lost and still arrived:
        // it went out at least twice. (Counted on the wire: under load OpenSSL may retransmit from
        // inside a read whose timer already ran out, which `statistics.retransmissions`, counting
        // `handleTimeout` retransmissions, does not see.)
        #expect(result.serverToClient.filter { $0[0] == 20 }.count >= 2)
    }

    @Test("reordered handshake datagrams still complete")
    func reorder() throws {
        let peers = try makePeers()
        let result = exchange(client: peers.client, server: peers.server) { direction, index, _ in
            switch (direction, index) {
            case (.serverToClient, 0), (.serverToClient, 2), (.clientToServer, 1): .swapWithNext
            default: .deliver
            }
        }
        let client = try #require(ExchangeResult.connected(result.clientEvents))
        let server = try #require(ExchangeResult.connected(result.serverEvents))
        #expect(client.1 == server.1.mirrored)
    }

    @Test("server rejects a client certificate that does not match the fingerprint")
    func serverFingerprintMismatch() throws {
        let wrong = CertificateFingerprint(algorithm: .sha256, bytes: [UInt8](repeating: 0xAB, count: 32))
        let peers = try makePeers(serverExpects: [wrong])
        let result = exchange(client: peers.client, server: peers.server)
        #expect(ExchangeResult.failure(result.serverEvents)
                == .fingerprintMismatch(expected: [wrong], actual: peers.clientCertificate.fingerprint))
        #expect(ExchangeResult.connected(result.serverEvents) == nil)
        guard case .handshakeFailed(let message) = ExchangeResult.failure(result.clientEvents) else {
            Issue.record("client should fail with the server's alert, got \(result.clientEvents)")
            return
        }
        #expect(message.contains("alert"))
    }

    @Test("client rejects a server certificate that does not match the fingerprint")
    func clientFingerprintMismatch() throws {
        let other = try DTLSCertificate.generate()
        let peers = try makePeers(clientExpects: [other.fingerprint])
        let result = exchange(client: peers.client, server: peers.server)
        #expect(ExchangeResult.failure(result.clientEvents)
                == .fingerprintMismatch(expected: [other.fingerprint], actual: peers.serverCertificate.fingerprint))
        #expect(ExchangeResult.connected(result.clientEvents) == nil)
        #expect(ExchangeResult.connected(result.serverEvents) == nil)
    }

    @Test("a sha-1 or sha-512 fingerprint from SDP is honoured")
    func otherAlgorithms() throws {
        let clientCertificate = try DTLSCertificate.generate()
        let serverCertificate = try DTLSCertificate.generate()
        let client = try DTLSEndpoint(role: .client, certificate: clientCertificate,
                                      remoteFingerprints: [try #require(serverCertificate.fingerprint(.sha512))])
        let server = try DTLSEndpoint(role: .server, certificate: serverCertificate,
                                      remoteFingerprints: [CertificateFingerprint(algorithm: .sha256, bytes: [UInt8](repeating: 0, count: 32)),
                                                           try #require(clientCertificate.fingerprint(.sha1))])
        let result = exchange(client: client, server: server)
        #expect(ExchangeResult.connected(result.clientEvents)?.2 == serverCertificate.fingerprint(.sha512))
        #expect(ExchangeResult.connected(result.serverEvents)?.2 == clientCertificate.fingerprint(.sha1))
    }

    @Test("both sides active fails with a role conflict")
    func bothClients() throws {
        let peers = try makePeers(clientRole: .client, serverRole: .client)
        let result = exchange(client: peers.client, server: peers.server, limit: .seconds(2))
        guard case .roleConflict(let message) = ExchangeResult.failure(result.clientEvents) else {
            Issue.record("expected roleConflict, got \(result.clientEvents)")
            return
        }
        #expect(message.contains("both sides are active"))
        #expect(ExchangeResult.failure(result.serverEvents) != nil)
    }

    @Test("both sides passive times out")
    func bothServers() throws {
        let peers = try makePeers(clientRole: .server, serverRole: .server)
        let start = MonotonicTime.now()
        peers.client.start(now: start)
        peers.server.start(now: start)
        #expect(peers.client.pollTransmit() == nil)
        #expect(peers.server.pollTransmit() == nil)
        let deadline = try #require(peers.client.nextTimeout)
        #expect(deadline == start + .seconds(15))
        peers.client.handleTimeout(now: start + .seconds(14))
        #expect(peers.client.pollEvent() == nil)
        peers.client.handleTimeout(now: start + .seconds(15))
        #expect(peers.client.pollEvent() == .failed(.handshakeTimeout))
        #expect(peers.client.state == .failed)
        #expect(peers.client.nextTimeout == nil)
    }

    @Test("a client without a peer retransmits with backoff, then times out")
    func clientAlone() throws {
        let certificate = try DTLSCertificate.generate()
        let client = try DTLSEndpoint(role: .client, certificate: certificate,
                                      remoteFingerprints: [certificate.fingerprint],
                                      initialRetransmitTimeout: .milliseconds(20),
                                      handshakeTimeout: .milliseconds(400))
        let start = MonotonicTime.now()
        client.start(now: start)
        let hello = try #require(client.pollTransmit())
        #expect(hello[0] == 22)
        var sent = [start]
        while client.state == .handshaking {
            let now = MonotonicTime.now()
            if let next = client.nextTimeout, next <= now {
                client.handleTimeout(now: now)
                if let again = client.pollTransmit() {
                    #expect(again.count == hello.count)
                    sent.append(now)
                }
            }
            #expect(now - start < .seconds(3))
            if now - start > .seconds(3) { break }
            usleep(2000)
        }
        #expect(client.pollEvent() == .failed(.handshakeTimeout))
        #expect(client.statistics.retransmissions >= 3)
        // Backoff: intervals grow.
        let gaps = zip(sent.dropFirst(), sent).map { $0 - $1 }
        #expect(gaps.count >= 3)
        if gaps.count >= 3 { #expect(gaps[2] > gaps[0]) }
    }

    @Test("garbage, truncated, replayed and stale-epoch datagrams do not break a live session")
    func junkAfterHandshake() throws {
        let peers = try makePeers()
        let result = exchange(client: peers.client, server: peers.server)
        let keys = try #require(ExchangeResult.connected(result.clientEvents))
        let serverKeys = try #require(ExchangeResult.connected(result.serverEvents))
        let clientHello = result.clientToServer[0]
        let clientRecords = result.clientToServer.flatMap(records)
        let staleFlight = try #require(clientRecords.first { describe($0).handshake == 16 }, "ClientKeyExchange record")
        let finished = try #require(clientRecords.last { describe($0).epoch == 1 }, "client Finished record")
        let now = MonotonicTime.now()

        var rng = SplitMix64(state: 42)
        for _ in 0..<200 {
            let junk = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            peers.server.handleDatagram(junk, now: now)
        }
        for cut in 1..<clientHello.count { peers.server.handleDatagram(Array(clientHello.prefix(cut)), now: now) }
        peers.server.handleDatagram(clientHello, now: now)
        peers.server.handleDatagram(staleFlight, now: now)
        peers.server.handleDatagram(finished, now: now)
        var tampered = finished
        tampered[tampered.count - 1] ^= 0x55
        peers.server.handleDatagram(tampered, now: now)
        peers.client.handleDatagram(clientHello, now: now)
        #expect(peers.server.state == .connected)
        #expect(peers.client.state == .connected)
        #expect(peers.server.statistics.staleEpochDatagrams >= 2)
        #expect(peers.server.statistics.malformedDatagrams >= clientHello.count - 1)
        // Whatever OpenSSL answered to the replayed Finished reaches the client harmlessly.
        while let datagram = peers.server.pollTransmit() { peers.client.handleDatagram(datagram, now: now) }
        while let event = peers.server.pollEvent() { Issue.record("unexpected server event \(event)") }
        while let event = peers.client.pollEvent() { Issue.record("unexpected client event \(event)") }

        // Application data still flows both ways.
        try peers.client.write(Array("ping".utf8), now: now)
        while let datagram = peers.client.pollTransmit() { peers.server.handleDatagram(datagram, now: now) }
        #expect(peers.server.pollEvent() == .applicationData(Array("ping".utf8)))
        try peers.server.write(Array("pong".utf8), now: now)
        while let datagram = peers.server.pollTransmit() { peers.client.handleDatagram(datagram, now: now) }
        #expect(peers.client.pollEvent() == .applicationData(Array("pong".utf8)))

        // SRTP with the negotiated keys still works.
        let a = try SRTPSession(profile: keys.0, keys: keys.1)
        let b = try SRTPSession(profile: serverKeys.0, keys: serverKeys.1)
        var packet = rtpPacket(sequence: 7, payload: [1, 2, 3])
        try a.protectRTP(&packet)
        try b.unprotectRTP(&packet)
        #expect(packet == rtpPacket(sequence: 7, payload: [1, 2, 3]))
    }

    @Test("a fresh ClientHello from a new client endpoint is dropped and counted by a live session")
    func freshClientHelloAfterHandshake() throws {
        let peers = try makePeers()
        let result = exchange(client: peers.client, server: peers.server)
        let keys = try #require(ExchangeResult.connected(result.clientEvents))
        let serverKeys = try #require(ExchangeResult.connected(result.serverEvents))
        let serverStale = peers.server.statistics.staleEpochDatagrams
        let clientStale = peers.client.statistics.staleEpochDatagrams
        let serverSent = peers.server.statistics.datagramsSent

        // A new client (new certificate, small MTU so its ClientHello may span datagrams) starts
        // a handshake towards the live server, and its first flight also reaches the live client.
        let intruderCertificate = try DTLSCertificate.generate()
        let intruder = try DTLSEndpoint(role: .client, certificate: intruderCertificate,
                                        remoteFingerprints: [peers.serverCertificate.fingerprint],
                                        mtu: 256, initialRetransmitTimeout: .milliseconds(5))
        let now = MonotonicTime.now()
        intruder.start(now: now)
        var hellos: [[UInt8]] = []
        while let datagram = intruder.pollTransmit() { hellos.append(datagram) }
        try #require(!hellos.isEmpty)
        #expect(hellos.flatMap(records).contains { describe($0).handshake == 1 }, "the intruder's flight is a ClientHello")
        // Its retransmission too.
        usleep(20_000)
        intruder.handleTimeout(now: .now())
        while let datagram = intruder.pollTransmit() { hellos.append(datagram) }
        for datagram in hellos {
            peers.server.handleDatagram(datagram, now: now)
            peers.client.handleDatagram(datagram, now: now)
        }
        #expect(peers.server.state == .connected)
        #expect(peers.client.state == .connected)
        #expect(peers.server.statistics.staleEpochDatagrams == serverStale + hellos.count)
        #expect(peers.client.statistics.staleEpochDatagrams == clientStale + hellos.count)
        // Nothing answers the intruder (no HelloVerifyRequest, no ServerHello, no alert) and no
        // event is raised.
        #expect(peers.server.pollTransmit() == nil)
        #expect(peers.client.pollTransmit() == nil)
        #expect(peers.server.statistics.datagramsSent == serverSent)
        #expect(peers.server.pollEvent() == nil)
        #expect(peers.client.pollEvent() == nil)
        #expect(intruder.state == .handshaking)

        // The session keeps working: application data both ways, then SRTP with its keys.
        try peers.client.write(Array("still here".utf8), now: now)
        while let datagram = peers.client.pollTransmit() { peers.server.handleDatagram(datagram, now: now) }
        #expect(peers.server.pollEvent() == .applicationData(Array("still here".utf8)))
        try peers.server.write(Array("me too".utf8), now: now)
        while let datagram = peers.server.pollTransmit() { peers.client.handleDatagram(datagram, now: now) }
        #expect(peers.client.pollEvent() == .applicationData(Array("me too".utf8)))
        let a = try SRTPSession(profile: keys.0, keys: keys.1)
        let b = try SRTPSession(profile: serverKeys.0, keys: serverKeys.1)
        var packet = rtpPacket(sequence: 11, payload: [4, 5, 6])
        try a.protectRTP(&packet)
        try b.unprotectRTP(&packet)
        #expect(packet == rtpPacket(sequence: 11, payload: [4, 5, 6]))
    }

    @Test("close sends close_notify and the peer reports closed")
    func closeNotify() throws {
        let peers = try makePeers()
        _ = exchange(client: peers.client, server: peers.server)
        let now = MonotonicTime.now()
        peers.client.close(now: now)
        #expect(peers.client.pollEvent() == .closed)
        let alert = try #require(peers.client.pollTransmit())
        #expect(alert[0] == 21)
        peers.server.handleDatagram(alert, now: now)
        #expect(peers.server.pollEvent() == .closed)
        #expect(peers.server.state == .closed)
        #expect(throws: DTLSError.notConnected) { try peers.client.write([1], now: now) }
    }

    @Test("a record carries at most one datagram of application data: larger writes are refused, the association stays up")
    func applicationDataCap() throws {
        let peers = try makePeers()
        _ = exchange(client: peers.client, server: peers.server)
        let now = MonotonicTime.now()
        let maximum = DTLSEndpoint.maximumApplicationDataSize(mtu: peers.client.mtu)
        #expect(maximum == peers.client.mtu - 100)
        let largest = (0..<maximum).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try peers.client.write(largest, now: now)
        var datagrams: [[UInt8]] = []
        while let datagram = peers.client.pollTransmit() { datagrams.append(datagram) }
        #expect(datagrams.count == 1)
        #expect(datagrams.allSatisfy { $0.count <= peers.client.mtu })
        for datagram in datagrams { peers.server.handleDatagram(datagram, now: now) }
        #expect(peers.server.pollEvent() == .applicationData(largest))
        #expect(throws: DTLSError.applicationDataTooLarge(size: maximum + 1, maximum: maximum)) {
            try peers.client.write(largest + [0], now: now)
        }
        #expect(peers.client.pollTransmit() == nil)
        #expect(peers.client.state == .connected)
        try peers.client.write([9], now: now)
        while let datagram = peers.client.pollTransmit() { peers.server.handleDatagram(datagram, now: now) }
        #expect(peers.server.pollEvent() == .applicationData([9]))
    }

    @Test("a=setup role mapping")
    func setupRoles() throws {
        #expect(try DTLSRole.forAnswerer(offerSetup: .actpass) == (.client, .active))
        #expect(try DTLSRole.forAnswerer(offerSetup: .active) == (.server, .passive))
        #expect(try DTLSRole.forAnswerer(offerSetup: .passive) == (.client, .active))
        #expect(throws: DTLSSetupError.offerHoldsConnection) { try DTLSRole.forAnswerer(offerSetup: .holdconn) }
        #expect(try DTLSRole.forOfferer(answerSetup: .active) == .server)
        #expect(try DTLSRole.forOfferer(answerSetup: .passive) == .client)
        #expect(throws: DTLSSetupError.invalidAnswer(.actpass)) { try DTLSRole.forOfferer(answerSetup: .actpass) }
        #expect(DTLSRole.offerSetup == .actpass)
    }

    @Test("bad configuration is refused")
    func badConfiguration() throws {
        let certificate = try DTLSCertificate.generate()
        #expect(throws: DTLSError.self) {
            try DTLSEndpoint(role: .client, certificate: certificate, remoteFingerprints: [], mtu: 100)
        }
        #expect(throws: DTLSError.self) {
            try DTLSEndpoint(role: .client, certificate: certificate, remoteFingerprints: [], srtpProfiles: [])
        }
    }
}
