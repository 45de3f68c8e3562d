import Testing
import Wire
@testable import ICE

@Suite struct TURNServerConfigurationTests {
    @Test func turnURLsWithCredentialsBecomeServers() throws {
        let servers = [
            try ICEServer(urls: ["stun:192.0.2.1:3478"]),
            try ICEServer(urls: ["turn:192.0.2.1:3478?transport=udp", "turn:192.0.2.1", "turn:[2001:db8::1]:3479",
                                 "turn:turn.example.org", "turn:192.0.2.1?transport=tcp", "turns:192.0.2.1"],
                          username: "u", credential: "p"),
        ]
        let resolved = TURNServerConfiguration.servers(from: servers) { name in name == "turn.example.org" ? IPAddress("198.51.100.9") : nil }
        #expect(resolved == [
            TURNServerConfiguration(address: TransportAddress("192.0.2.1:3478")!, username: "u", credential: "p"),
            TURNServerConfiguration(address: TransportAddress(ip: IPAddress("2001:db8::1")!, port: 3479), username: "u", credential: "p"),
            TURNServerConfiguration(address: TransportAddress("198.51.100.9:3478")!, username: "u", credential: "p"),
            TURNServerConfiguration(address: TransportAddress("192.0.2.1:3478")!, username: "u", credential: "p", transport: .tcp),
            TURNServerConfiguration(address: TransportAddress("192.0.2.1:5349")!, username: "u", credential: "p", tls: true),
        ])
        #expect(resolved[3].isStream && !resolved[3].tls && resolved[4].isStream && resolved[4].tls && !resolved[0].isStream)
        // Without a resolver, names are skipped rather than guessed.
        #expect(TURNServerConfiguration.servers(from: servers).count == 4)
    }
}
