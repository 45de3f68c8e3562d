import Testing
@testable import ICE

@Suite struct ICEServerURLTests {
    @Test func stunDefaults() throws {
        let url = try ICEServerURL(parsing: "stun:stun.l.google.com:19302")
        #expect(url.scheme == .stun)
        #expect(url.host == .name("stun.l.google.com"))
        #expect(url.port == 19302)
        #expect(url.transport == .udp)
        #expect(!url.isTURN && !url.isSecure)

        let plain = try ICEServerURL(parsing: "STUN:Example.COM")
        #expect(plain.scheme == .stun)
        #expect(plain.host == .name("example.com"))
        #expect(plain.port == 3478)
        #expect(plain.description == "stun:example.com")

        let secure = try ICEServerURL(parsing: "stuns:example.com")
        #expect(secure.port == 5349)
        #expect(secure.isSecure)
    }

    @Test func turnVariants() throws {
        let udp = try ICEServerURL(parsing: "turn:turn.example.org")
        #expect(udp.scheme == .turn && udp.port == 3478 && udp.transport == .udp && !udp.transportExplicit)

        let tcp = try ICEServerURL(parsing: "turn:turn.example.org:3479?transport=tcp")
        #expect(tcp.port == 3479 && tcp.transport == .tcp && tcp.transportExplicit)
        #expect(tcp.description == "turn:turn.example.org:3479?transport=tcp")

        let explicitUDP = try ICEServerURL(parsing: "turn:10.0.0.1?transport=UDP")
        #expect(explicitUDP.host == .ip(IPAddress("10.0.0.1")!))
        #expect(explicitUDP.transport == .udp)

        let turns = try ICEServerURL(parsing: "turns:turn.example.org")
        #expect(turns.port == 5349 && turns.transport == .tcp && turns.isSecure && turns.isTURN)
        let turnsTCP = try ICEServerURL(parsing: "turns:turn.example.org:443?transport=tcp")
        #expect(turnsTCP.port == 443)
    }

    @Test func ipv6Literals() throws {
        let url = try ICEServerURL(parsing: "turn:[2001:db8::1]:3479?transport=udp")
        #expect(url.host == .ip(IPAddress("2001:db8::1")!))
        #expect(url.port == 3479)
        #expect(url.description == "turn:[2001:db8::1]:3479?transport=udp")
        let noPort = try ICEServerURL(parsing: "stun:[::1]")
        #expect(noPort.host == .ip(IPAddress("::1")!))
        #expect(noPort.port == 3478)
    }

    @Test func roundTripThroughDescription() throws {
        for text in ["stun:a.example", "stuns:a.example:5350", "turn:1.2.3.4:80?transport=tcp", "turns:[fe80::1]", "turn:host_name.example:65535"] {
            let url = try ICEServerURL(parsing: text)
            #expect(try ICEServerURL(parsing: url.description) == url, "\(text)")
        }
    }

    @Test(arguments: [
        ("", ICEServerURLError.empty),
        ("example.com", .missingScheme),
        (":example.com", .missingScheme),
        ("http:example.com", .unknownScheme("http")),
        ("stun://example.com", .unexpectedAuthority),
        ("stun:", .missingHost),
        ("stun::3478", .missingHost),
        ("stun:exa mple.com", .invalidHost("exa mple.com")),
        ("stun:a..b", .invalidHost("a..b")),
        ("stun:user@example.com", .invalidHost("user@example.com")),
        ("stun:[2001:db8::1", .unterminatedIPv6Literal),
        ("stun:[1.2.3.4]", .invalidHost("[1.2.3.4]")),
        ("stun:[zz::1]", .invalidHost("[zz::1]")),
        ("stun:[::1]x", .invalidHost("[::1]x")),
        ("stun:2001:db8::1", .invalidPort("db8::1")),
        ("stun:example.com:", .invalidPort("")),
        ("stun:example.com:0", .invalidPort("0")),
        ("stun:example.com:65536", .invalidPort("65536")),
        ("stun:example.com:+1", .invalidPort("+1")),
        ("stun:example.com:12a", .invalidPort("12a")),
        ("stun:example.com?transport=udp", .queryNotAllowed(.stun)),
        ("stuns:example.com?transport=tcp", .queryNotAllowed(.stuns)),
        ("turn:example.com?proto=udp", .unknownQueryParameter("proto=udp")),
        ("turn:example.com?transport", .unknownQueryParameter("transport")),
        ("turn:example.com?transport=sctp", .invalidTransport("sctp")),
        ("turns:example.com?transport=udp", .transportNotAllowed(scheme: .turns, transport: .udp)),
        ("turn:example.com#x", .fragmentNotAllowed),
    ])
    func invalid(_ text: String, _ expected: ICEServerURLError) {
        #expect(throws: expected) { try ICEServerURL(parsing: text) }
    }

    @Test func iceServerNeedsCredentialsForTURN() throws {
        let stunOnly = try ICEServer(urls: ["stun:a.example", "stun:b.example:1234"])
        #expect(stunOnly.urls.count == 2 && stunOnly.username == nil)
        #expect(throws: ICEServerURLError.missingCredentials) { try ICEServer(urls: ["stun:a.example", "turn:a.example"], username: "u") }
        #expect(throws: ICEServerURLError.noURLs) { try ICEServer(urls: [String]()) }
        #expect(throws: ICEServerURLError.unknownScheme("turnx")) { try ICEServer(urls: ["turnx:a"], username: "u", credential: "p") }
        let turn = try ICEServer(urls: ["turn:a.example?transport=udp", "turns:a.example"], username: "u", credential: "p")
        #expect(turn.urls.map(\.scheme) == [.turn, .turns])
        #expect(turn.username == "u" && turn.credential == "p")
    }
}
