import Testing
@testable import DTLS
import Wire

/// Chromium 156's DTLS ClientHello, captured on loopback (a headless Chromium answering a peerd
/// offer with a=setup:active, so Chromium is the DTLS client). It offers DTLS 1.3 and 1.2
/// (supported_versions fefc, fefd) with an X25519MLKEM768 key share, which makes it 1,413 bytes,
/// sent as two fragments (1,200 and 263 bytes). Our OpenSSL 3.0 server has no DTLS 1.3 and must
/// answer with a DTLS 1.2 ServerHello that Chromium accepts (it falls back); the live half of
/// this is the Chromium interop tests.
enum ChromiumClientHello {
    static let datagrams: [[UInt8]] = [
        hex("""
        16feff000000000000000004a3010005850000000000000497fefd908a87a3df36e819bf915fa052873af60647d9272fe5eab7b4c00b6efbf1732300
        00001c130113021303c02bc02fcca9cca8c009c013c00ac014009c002f00350100053fff01000100002d00020101000e000900060001000800070000
        170000003304ea04e811ec04c088b8a133f2692d7542dc85a4e886bded304730e89334850f0aa170bcd4b8ce173f4a506ccf5c8dd33a4d360160c077
        bc182cbafb958a1e90c885899fd98605d78865a7a152f3dabe3a4324a2b049cf315abf2859f462cbcb0c7f97028f6caa9d631bc6299a3d7ca7a5ad57
        bc5ef10b2154a63ce4ae52811d1b9018c7413d5df1c5fc15110a926d74302f19e7a995d5c47ff2aeefd988365aa2d8c27eab88890ff9c9a7142b2710
        4780d3158022ac072bc0691b52bdbc2219e8252e29ceb77a2f1f5276a7ebb29e9194412a1f61b31e1236a27990b4c5fa209f089806930868bca0c428
        4b6e36bf4d75928c9351e9356abfb6c1ea664091faca570044c135b79ea460ec42bc53811b54348ae43784bf2c2cd35347863a11d5015ac2201aedfb
        76916b855f8140c00562bdb26749c53388734ea7b0b129b200cb56b984d5a6b23696f3298498775259b60df3b1c9bad9552d766dae772665e87460f4
        6d6f804419ec7712a32976e1270520a39cc2b24fdca66fa08863ab60510a845db30717eabcb6590ea46c277b246a227350a579b998963923ccc3ad23
        423ad570ab543be94392074a0a80e9022b0947b7e4b79b1a1f5d1951d0c6c4738ca6989b980c93acac6300c248335f5c58ef3c234044c53eebb855f8
        5fb9a97c0002ca5b459a166aa47ce54fe25bcd13db432456b76a10cb6cc29294241e040891fca3b8e6d606ba5050c83a4597744683d41965030b4627
        a85af62e03482c6319b288c9043095c5a4698c640469c1fa4c8c74337ef4780cb58fe04125ac879421d46c2a896ebeb37434a9b44eca03f2a46da4f3
        bc27b2005f3b63a48aac1db58318aa9bcdd88d4ed39f01085b16e463fbc5211448c245b1a14f3a0d3604b9ab7b6a5b937ea7eb7820663548c8ba4061
        053d34271dc45373cc00bf632ebf6047a197225f08883606765c1c30ce918c22076d1a348a6290be58c1b376236fea929070d551f638890c2284e1ca
        37728a491cfa423a5a7d8417a7aa2804063b306b6440985a28b7758b9f91c2d7a317c233ca5be14cd70387969a21ee308a26754e8e7708dbac46806b
        5c46e4080cf88963562793c84d5bb4913095959a10bf6ebb135a3c68132c5b257516f1295caac01fdc97cf5ce0039d395ae13219e2dc3b5a900ee869
        bf7d45a69183ab9b0769fecabf24ea7684b34290105a43e0842df3baf2d235fd801efab562cdea004e1224e477574c4b88d2e620919343063668e9d3
        7c272406eb726e33877ef9752555b16815db8861aa48948aab76150d36ca48a1143e119794b9e9521a5b8550521ce9051f68249c35c83677f4b65e07
        1ad6f00eeb647e474a748331c90dd627cf553f1cd74761995b86855b676958ef74b649cc7bc4013c0070adfff274e1da700170be89885e31873cf868
        3707a90b292c60ab3b89e835c275a3ce9516a0e4578777043752855a14326a7d3966e9757b87f7c50c70c4a8b0727ab365af24992beb46a3b94f7ae4
        """),
        hex("""
        16feff000000000000000100fa0100058500000004970000ee22952a1e4ada754c11b5c8509f080c7292e0c2f066418104b127d8ac18830ceacc1b48
        510ec12050d0196124b737c6b226440646256a1f9ea76b83d6129f7434df031c01a287be67aefbd9ba8f711834395928753c001c3477b9d3e37a5c44
        8ed6236ad760ca86337de5e113cac7309e504f0b4977a7ca939cf122a67612eb4850fb322484e06c30fa4899adb241066d4be6ced831001d002013b8
        dceabdf52a78851432b1f1f050b800a450ac51716065860e6e44085e9166000b00020100000a000a000811ec001d00170018002b000504fefcfefd00
        0d00140012040308040401050308050501080606010201
        """),
    ]
}

/// A handshake message from a flight: type and body (fragments of one message reassembled).
private func handshakeMessages(_ datagrams: [[UInt8]]) -> [(type: UInt8, body: [UInt8])] {
    var messages: [(type: UInt8, body: [UInt8])] = []
    var partial: [UInt16: (type: UInt8, length: Int, body: [UInt8])] = [:]
    for record in datagrams.flatMap(records) where record[0] == 22 {
        let fragment = Array(record[13...])
        let type = fragment[0]
        let length = Int(fragment[1]) << 16 | Int(fragment[2]) << 8 | Int(fragment[3])
        let sequence = UInt16(fragment[4]) << 8 | UInt16(fragment[5])
        let offset = Int(fragment[6]) << 16 | Int(fragment[7]) << 8 | Int(fragment[8])
        var entry = partial[sequence] ?? (type, length, [UInt8](repeating: 0, count: length))
        let data = fragment[12...]
        entry.body.replaceSubrange(offset..<offset + data.count, with: data)
        partial[sequence] = entry
        if offset + data.count == length { messages.append((type, entry.body)) }
    }
    return messages
}

/// Extensions of a ClientHello or ServerHello body (type -> data).
private func helloExtensions(_ body: [UInt8], client: Bool) -> [UInt16: [UInt8]] {
    var position = 2 + 32
    position += 1 + Int(body[position])                       // session id
    if client {
        position += 1 + Int(body[position])                   // cookie
        position += 2 + (Int(body[position]) << 8 | Int(body[position + 1]))  // cipher suites
        position += 1 + Int(body[position])                   // compression methods
    } else {
        position += 2 + 1                                     // cipher suite, compression
    }
    var extensions: [UInt16: [UInt8]] = [:]
    let end = position + 2 + (Int(body[position]) << 8 | Int(body[position + 1]))
    position += 2
    while position + 4 <= end {
        let type = UInt16(body[position]) << 8 | UInt16(body[position + 1])
        let length = Int(body[position + 2]) << 8 | Int(body[position + 3])
        extensions[type] = Array(body[position + 4..<position + 4 + length])
        position += 4 + length
    }
    return extensions
}

@Suite("Chromium's DTLS 1.3 ClientHello")
struct ChromiumClientHelloTests {
    @Test("our server answers Chromium 156's DTLS 1.3-capable ClientHello with DTLS 1.2")
    func fallsBackToDTLS12() throws {
        // The fixture is what the test claims: a ClientHello offering DTLS 1.3 first, then 1.2.
        let hello = try #require(handshakeMessages(ChromiumClientHello.datagrams).first)
        #expect(hello.type == 1)
        #expect(hello.body.count == 1413)
        let offered = helloExtensions(hello.body, client: true)
        #expect(offered[0x002b] == [4, 0xfe, 0xfc, 0xfe, 0xfd], "supported_versions: DTLS 1.3, DTLS 1.2")
        #expect(offered[0x000e] == [0x00, 0x06, 0x00, 0x01, 0x00, 0x08, 0x00, 0x07, 0x00], "use_srtp")

        let certificate = try DTLSCertificate.generate()
        let unknownPeer = CertificateFingerprint(algorithm: .sha256, bytes: [UInt8](repeating: 0xc4, count: 32))
        let server = try DTLSEndpoint(role: .server, certificate: certificate, remoteFingerprints: [unknownPeer])
        let now = MonotonicTime.now()
        server.start(now: now)
        for datagram in ChromiumClientHello.datagrams { server.handleDatagram(datagram, now: now) }
        #expect(server.state == .handshaking)
        #expect(server.pollEvent() == nil)
        #expect(server.statistics.malformedDatagrams == 0)
        var flight: [[UInt8]] = []
        while let datagram = server.pollTransmit() { flight.append(datagram) }
        #expect(flight.allSatisfy { $0.count <= 1200 })
        for record in flight.flatMap(records) { #expect(record[1] == 0xfe && record[2] == 0xfd, "DTLS 1.2 records") }

        let messages = handshakeMessages(flight)
        // ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone.
        #expect(messages.map(\.type) == [2, 11, 12, 13, 14])
        let serverHello = try #require(messages.first { $0.type == 2 })
        #expect(Array(serverHello.body[0..<2]) == [0xfe, 0xfd], "server_version DTLS 1.2")
        let sessionIDLength = Int(serverHello.body[34])
        let suite = Array(serverHello.body[35 + sessionIDLength..<37 + sessionIDLength])
        #expect(suite == [0xc0, 0x2b], "ECDHE-ECDSA-AES128-GCM-SHA256")
        let chosen = helloExtensions(serverHello.body, client: false)
        #expect(chosen[0x002b] == nil, "no supported_versions: plain DTLS 1.2")
        #expect(chosen[0x000e] == [0x00, 0x02, 0x00, 0x08, 0x00], "use_srtp: SRTP_AEAD_AES_256_GCM")
        #expect(chosen[0x0017] == [], "extended master secret")
        // ECDHE on X25519: OpenSSL 3.0 skips the X25519MLKEM768 group it does not know.
        let keyExchange = try #require(messages.first { $0.type == 12 })
        #expect(Array(keyExchange.body[0..<3]) == [0x03, 0x00, 0x1d], "named curve x25519")
    }
}
