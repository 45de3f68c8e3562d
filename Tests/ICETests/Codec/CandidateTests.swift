import Foundation
import Testing
@testable import ICE

@Suite struct CandidateTests {
    @Test func chromiumTrickleCandidate() throws {
        let url = fixturesDirectory().appendingPathComponent("sdp/chromium156-trickle-candidate-message.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let payload = (json["данные"] as! [String: Any])["candidate"] as! [String: Any]
        let text = payload["candidate"] as! String
        let candidate = try Candidate(parsing: text)
        #expect(candidate.foundation == "396241138")
        #expect(candidate.component == 1)
        #expect(candidate.transport == .udp)
        #expect(candidate.priority == 2_122_260_223)
        #expect(candidate.address == .ip(IPAddress("127.0.0.1")!))
        #expect(candidate.port == 58142)
        #expect(candidate.type == .host)
        #expect(candidate.generation == 0)
        #expect(candidate.usernameFragment == "pNf/")
        #expect(candidate.networkID == 1)
        #expect(candidate.networkCost == 50)
        #expect(candidate.description == text)
    }

    @Test func everyFixtureCandidateRoundTrips() throws {
        let directory = fixturesDirectory().appendingPathComponent("sdp")
        var count = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".sdp") {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("a=candidate:") {
                let value = String(line.dropFirst(2))
                let candidate = try Candidate(parsing: value)
                #expect(candidate.description == value, "\(file)")
                #expect(try Candidate(parsing: "a=" + value + "\r\n") == candidate)
                count += 1
            }
        }
        #expect(count >= 20)
    }

    @Test func relatedAddressesTcpTypeAndMulticastDNS() throws {
        let srflx = try Candidate(parsing: "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 192.168.1.5 rport 46154 generation 0")
        #expect(srflx.type == .srflx)
        #expect(srflx.relatedAddress == .ip(IPAddress("192.168.1.5")!))
        #expect(srflx.relatedPort == 46154)
        let tcp = try Candidate(parsing: "candidate:1 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active generation 0")
        #expect(tcp.transport == .tcp)
        #expect(tcp.tcpType == "active")
        let mdns = try Candidate(parsing: "candidate:1 1 udp 2113937151 3f1c2b4e-5a6d-4e7f-8a9b-0c1d2e3f4a5b.local 53000 typ host")
        #expect(mdns.address.isMulticastDNSName)
        #expect(mdns.transportAddress == nil)
        let v6 = try Candidate(parsing: "candidate:2 1 UDP 2122252543 2001:db8::5 5000 typ host")
        #expect(v6.transportAddress == TransportAddress("[2001:db8::5]:5000"))
        #expect(v6.description == "candidate:2 1 UDP 2122252543 2001:db8::5 5000 typ host")
        let relay = try Candidate(parsing: "candidate:3 1 udp 16777215 198.51.100.1 3478 typ relay raddr 203.0.113.7 rport 5000 unknown-ext value")
        #expect(relay.extensionValue("unknown-ext") == "value")
        #expect(relay.description.hasSuffix("unknown-ext value"))
    }

    @Test func priorityFormula() {
        #expect(Candidate.priority(type: .host, localPreference: 65535, component: 1) == 2_130_706_431)
        #expect(Candidate.priority(type: .relay, localPreference: 0, component: 2) == 254)
        #expect(Candidate.priority(type: .srflx, localPreference: 65535) > Candidate.priority(type: .relay, localPreference: 65535))
    }

    @Test func badCandidatesThrowTypedErrors() {
        let cases: [(String, CandidateParseError)] = [
            ("candidate:1 1 udp 1 1.2.3.4 5", .missingField("typ")),
            ("candidate:1 1 udp", .missingField("address/port")),
            ("candidate:1 0 udp 1 1.2.3.4 5 typ host", .badComponent("0")),
            ("candidate:1 1 udp x 1.2.3.4 5 typ host", .badPriority("x")),
            ("candidate:1 1 udp 1 1.2.3.4 70000 typ host", .badPort("70000")),
            ("candidate:1 1 udp 1 1.2.3.4 5 type host", .missingType),
            ("candidate:1 1 udp 1 1.2.3.4 5 typ peer", .badType("peer")),
            ("candidate:1 1 udp 1 1.2.3.4 5 typ host generation", .danglingExtension("generation")),
            ("candidate:1 1 udp 1 1.2.3.4 5 typ srflx raddr 1.2.3.4 rport x", .badRelatedAddress("x")),
            ("candidate:a_b 1 udp 1 1.2.3.4 5 typ host", .badFoundation("a_b")),
            ("candidate:1 1 udp 1 1.2.3.4\u{0} 5 typ host", .invalidCharacter),
            (String(repeating: "x", count: 2000), .tooLong(2000)),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text.prefix(60))") { try Candidate(parsing: text) }
        }
    }

    @Test func theLengthLimitCountsTheCandidateNotItsPrefixSoEveryParsedCandidateReparses() throws {
        // The fuzzer's input (Fixtures/fuzz/candidate): 1,018 bytes without a prefix, which parsed
        // while its 1,026-byte description (prefix added, spaces collapsed) was refused as too long.
        let url = fixturesDirectory().appendingPathComponent("fuzz/candidate/crash-prefix-pushes-past-limit.txt")
        let text = try #require(String(validating: Array(try Data(contentsOf: url)), as: UTF8.self))
        let parsed = try Candidate(parsing: text)
        #expect(parsed.description.utf8.count > Candidate.maximumLength)
        #expect(try Candidate(parsing: parsed.description) == parsed)

        // Exactly at the limit, with and without the prefixes; one byte more is refused.
        let head = "1 1 udp 1 1.2.3.4 5 typ host x "
        let atLimit = head + String(repeating: "y", count: Candidate.maximumLength - head.utf8.count)
        for form in [atLimit, "candidate:" + atLimit, "a=candidate:" + atLimit + "\r\n"] {
            let candidate = try Candidate(parsing: form)
            #expect(candidate.extensionValue("x")?.utf8.count == Candidate.maximumLength - head.utf8.count)
            #expect(try Candidate(parsing: candidate.description) == candidate)
        }
        #expect(throws: CandidateParseError.tooLong(Candidate.maximumLength + 1)) { try Candidate(parsing: "candidate:" + atLimit + "y") }
    }

    @Test func seededMutationNeverCrashes() throws {
        var rng = SplitMix64(seed: 8839)
        let seeds = [
            "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 192.168.1.5 rport 46154 generation 0",
            "candidate:396241138 1 udp 2122260223 127.0.0.1 58142 typ host generation 0 ufrag pNf/ network-id 1 network-cost 50",
        ].map { Array($0.utf8) }
        for iteration in 0..<10_000 {
            let bytes = mutate(seeds[iteration % seeds.count], using: &rng)
            guard let text = String(validating: bytes, as: UTF8.self), let candidate = try? Candidate(parsing: text) else { continue }
            #expect(try Candidate(parsing: candidate.description) == candidate)
        }
    }
}
