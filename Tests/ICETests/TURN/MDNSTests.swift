import Foundation
import Testing
import Wire
@testable import ICE

enum MDNSSamples {
    /// A response with two answers for abc.local, the second name compressed to a pointer at offset 12.
    static let response = hexBytes("""
        0000 8400 0000 0002 0000 0000
        03 616263 05 6c6f63616c 00  0001 8001 00000078 0004 c0000205
        c00c                        001c 8001 00000078 0010 fe800000000000000000000000000001
        """)

    static func header(questions: UInt16 = 0, answers: UInt16 = 0, flags: UInt16 = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(UInt16(0))
        out.appendBigEndian(flags)
        out.appendBigEndian(questions)
        out.appendBigEndian(answers)
        out.appendBigEndian(UInt16(0))
        out.appendBigEndian(UInt16(0))
        return out
    }
}

@Suite struct MDNSCodecTests {
    @Test func decodesCompressedResponse() throws {
        let message = try MDNSMessage(parsing: MDNSSamples.response)
        #expect(message.isResponse)
        #expect(message.flags == 0x8400)
        #expect(message.questions.isEmpty)
        #expect(message.answers.count == 2)
        let name = try MDNSName("abc.local")
        #expect(message.answers[0] == MDNSRecord(name: name, type: 1, cacheFlush: true, ttl: 120, data: .a(IPAddress("192.0.2.5")!)))
        #expect(message.answers[1] == MDNSRecord(name: name, type: 28, cacheFlush: true, ttl: 120, data: .aaaa(IPAddress("fe80::1")!)))
        #expect(message.answers[1].address == IPAddress("fe80::1")!)
        // Our serializer compresses the same way, byte for byte.
        #expect(message.serialized() == MDNSSamples.response)
    }

    @Test func roundTripsWithAndWithoutCompression() throws {
        let host = try MDNSName("f3a1c9d2-0b5e-4c1a-9e7f-0123456789ab.local")
        let other = try MDNSName("Printer._ipp._tcp.local.")
        let message = MDNSMessage(id: 0x1234, flags: 0x8400,
            questions: [MDNSQuestion(name: host, type: 1, unicastResponse: true), MDNSQuestion(name: host, type: 28)],
            answers: [MDNSRecord(name: host, address: IPAddress("10.1.2.3")!, ttl: 120, cacheFlush: true),
                      MDNSRecord(name: host, address: IPAddress("2001:db8::7")!, ttl: 120)],
            authorities: [MDNSRecord(name: other, type: 16, ttl: 4500, data: .other([4, 0x74, 0x65, 0x73, 0x74]))],
            additionals: [MDNSRecord(name: other, type: 33, recordClass: 1, ttl: 0, data: .other([]))])
        let compressed = message.serialized()
        let plain = message.serialized(compress: false)
        #expect(compressed.count < plain.count)
        #expect(try MDNSMessage(parsing: compressed) == message)
        #expect(try MDNSMessage(parsing: plain) == message)
        #expect(other.labels == ["Printer", "_ipp", "_tcp", "local"])
        #expect(other.matches(try MDNSName("printer._IPP._tcp.LOCAL")))
        #expect(!other.matches(host))
    }

    @Test func namesRejectBadText() {
        #expect(throws: MDNSError.emptyLabel) { try MDNSName("a..local") }
        #expect(throws: MDNSError.labelTooLong(64)) { try MDNSName(String(repeating: "x", count: 64) + ".local") }
        #expect(throws: MDNSError.nameTooLong) { try MDNSName(Array(repeating: String(repeating: "y", count: 60), count: 5).joined(separator: ".")) }
        #expect((try? MDNSName("."))?.labels == [])
    }

    @Test func pointerLoopsAreRejected() {
        // A name that is a pointer to itself.
        let selfLoop = MDNSSamples.header(questions: 1) + [0xC0, 0x0C, 0, 1, 0, 1]
        #expect(throws: MDNSError.pointerNotBackward(at: 12, target: 12)) { try MDNSMessage(parsing: selfLoop) }
        // A label followed by a pointer back to the label: x.x.x... forever without the rule.
        let labelLoop = MDNSSamples.header(questions: 1) + [0x01, 0x78, 0xC0, 0x0C, 0, 1, 0, 1]
        #expect(throws: MDNSError.pointerNotBackward(at: 14, target: 12)) { try MDNSMessage(parsing: labelLoop) }
        // Two names pointing at each other: the second points back to the first, which points forward.
        let mutual = MDNSSamples.header(questions: 2) + [0x01, 0x61, 0xC0, 0x14, 0, 1, 0, 1] + [0xC0, 0x0C, 0, 1, 0, 1]
        #expect(throws: MDNSError.pointerNotBackward(at: 14, target: 20)) { try MDNSMessage(parsing: mutual) }
        // A chain of backward pointers is fine.
        let chain = MDNSSamples.header(questions: 3) + [0x05] + Array("local".utf8) + [0, 0, 1, 0, 1]
            + [0x01, 0x62, 0xC0, 0x0C, 0, 1, 0, 1] + [0x01, 0x63, 0xC0, 0x17, 0, 1, 0, 1]
        let parsed = try? MDNSMessage(parsing: chain)
        #expect(parsed?.questions.map(\.name.description) == ["local", "b.local", "c.b.local"])
    }

    @Test func badInputsGiveTypedErrors() {
        let header = MDNSSamples.header(questions: 1)
        #expect(throws: MDNSError.truncated(needed: 12, available: 5)) { try MDNSMessage(parsing: [0, 0, 0, 0, 0]) }
        #expect(throws: MDNSError.tooLarge(9001)) { try MDNSMessage(parsing: [UInt8](repeating: 0, count: 9001)) }
        #expect(throws: MDNSError.countsExceedMessage(questions: 0xFFFF, records: 0, available: 6)) {
            try MDNSMessage(parsing: MDNSSamples.header(questions: 0xFFFF) + [0, 0, 1, 0, 1, 0])
        }
        #expect(throws: MDNSError.countsExceedMessage(questions: 0, records: 3, available: 11)) {
            try MDNSMessage(parsing: MDNSSamples.header(answers: 3) + [UInt8](repeating: 0, count: 11))
        }
        #expect(throws: MDNSError.badLabelType(0x40)) { try MDNSMessage(parsing: header + [0x40, 0, 0, 1, 0, 1]) }
        #expect(throws: MDNSError.badLabelType(0x81)) { try MDNSMessage(parsing: header + [0x81, 0, 0, 1, 0, 1]) }
        #expect(throws: MDNSError.labelNotUTF8(at: 12)) { try MDNSMessage(parsing: header + [0x01, 0xFF, 0, 0, 1, 0, 1]) }
        #expect(throws: MDNSError.truncated(needed: 21, available: 18)) { try MDNSMessage(parsing: header + [0x08, 0x61, 0x62, 0, 1, 0]) }
        var long: [UInt8] = header
        for _ in 0..<5 { long += [63] + [UInt8](repeating: 0x61, count: 63) }
        long += [0, 0, 1, 0, 1]
        #expect(throws: MDNSError.nameTooLong) { try MDNSMessage(parsing: long) }
        #expect(throws: MDNSError.trailingBytes(2)) { try MDNSMessage(parsing: header + [0, 0, 1, 0, 1, 0xAA, 0xBB]) }

        let answerHeader = MDNSSamples.header(answers: 1)
        #expect(throws: MDNSError.rdataLengthMismatch(type: 1, expected: 4, actual: 5)) {
            try MDNSMessage(parsing: answerHeader + [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5])
        }
        #expect(throws: MDNSError.rdataLengthMismatch(type: 28, expected: 16, actual: 4)) {
            try MDNSMessage(parsing: answerHeader + [0, 0, 28, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4])
        }
        #expect(throws: MDNSError.recordOverrun(at: 23, length: 0xFF, available: 4)) {
            try MDNSMessage(parsing: answerHeader + [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0xFF, 1, 2, 3, 4])
        }
    }

    @Test func everyTruncationThrows() {
        let samples = [MDNSSamples.response, MDNSMessage(questions: [MDNSQuestion(name: try! MDNSName("x.local"), type: 1)]).serialized()]
        for sample in samples {
            for length in 0..<sample.count {
                #expect(throws: MDNSError.self) { try MDNSMessage(parsing: Array(sample.prefix(length))) }
            }
        }
    }

    @Test func mutationLoop() throws {
        var resolver = MDNSResolver()
        try resolver.resolve(name: "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab.local", now: .zero)
        let polledQuery = resolver.pollTransmit()
        let query = try #require(polledQuery)
        var responder = MDNSResponder()
        try responder.publish(name: "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab.local", addresses: [IPAddress("192.168.1.20")!, IPAddress("fd00::20")!])
        let answer = try #require(responder.respond(to: query, from: TransportAddress("192.168.1.9:5353")!)).payload
        var rng = SplitMix64(seed: 0x6D64_6E73)
        var parsedCount = 0, total = 0
        for seed in [MDNSSamples.response, query, answer] {
            for _ in 0..<2000 {
                let mutated = mutate(seed, using: &rng)
                total += 1
                guard let message = try? MDNSMessage(parsing: mutated) else { continue }
                parsedCount += 1
                let again = try MDNSMessage(parsing: message.serialized())
                #expect(again == message)
                #expect(try MDNSMessage(parsing: message.serialized(compress: false)) == message)
                // The resolver and responder take anything without trapping.
                _ = responder.respond(to: mutated, from: TransportAddress("10.0.0.1:5353")!)
                resolver.handleDatagram(mutated, now: .zero)
            }
        }
        #expect(total == 6000)
        #expect(parsedCount > 100, "mutations should sometimes stay valid (\(parsedCount))")
    }
}

@Suite struct MDNSResolverTests {
    let name = "F3A1C9D2-0B5E-4C1A-9E7F-0123456789AB.local"
    let addresses = [IPAddress("192.168.1.20")!, IPAddress("fd00::20")!]

    @Test func resolvesThroughInProcessResponder() throws {
        var resolver = MDNSResolver()
        var responder = MDNSResponder()
        try responder.publish(name: name.lowercased(), addresses: addresses)
        try resolver.resolve(name: name, now: .zero)
        let polledQuery = resolver.pollTransmit()
        let queryBytes = try #require(polledQuery)
        let query = try MDNSMessage(parsing: queryBytes)
        #expect(!query.isResponse)
        #expect(query.questions.map(\.type) == [MDNSRecordType.a, MDNSRecordType.aaaa])
        #expect(query.questions.allSatisfy { $0.unicastResponse && $0.recordClass == 1 && $0.name.description == name })

        let source = TransportAddress("192.168.1.9:49152")!
        let response = try #require(responder.respond(to: queryBytes, from: source))
        #expect(response.destination == source)  // one-shot query from an ephemeral port: unicast reply
        let parsed = try MDNSMessage(parsing: response.payload)
        #expect(parsed.id == query.id)
        #expect(parsed.questions.count == 2)
        #expect(parsed.answers.allSatisfy { $0.ttl == 10 && !$0.cacheFlush })

        resolver.handleDatagram(response.payload, now: .zero + .milliseconds(3))
        #expect(resolver.pollEvent() == .resolved(name: name, addresses: addresses))
        #expect(resolver.pendingNames.isEmpty)
        #expect(resolver.nextTimeout == nil)
        #expect(resolver.pollEvent() == nil)
    }

    @Test func retransmitsThenTimesOut() throws {
        var resolver = MDNSResolver()
        try resolver.resolve(name: name, now: .zero)
        var sent: [(Double, Bool)] = []
        var events: [MDNSEvent] = []
        var now = MonotonicTime.zero
        while true {
            while let datagram = resolver.pollTransmit() {
                let query = try MDNSMessage(parsing: datagram)
                sent.append(((now - MonotonicTime.zero).seconds, query.questions[0].unicastResponse))
            }
            while let event = resolver.pollEvent() { events.append(event) }
            guard let next = resolver.nextTimeout else { break }
            now = next
            resolver.handleTimeout(now: now)
        }
        #expect(sent.map(\.0) == [0, 1, 2])
        #expect(sent.map(\.1) == [true, false, false])
        #expect(events == [.timedOut(name: name)])
        #expect((now - MonotonicTime.zero).seconds == 3)
    }

    @Test func ignoresOtherNamesGoodbyesQueriesAndGarbage() throws {
        var resolver = MDNSResolver()
        try resolver.resolve(name: name, now: .zero)
        let host = try MDNSName(name)
        let otherName = MDNSMessage(flags: 0x8400, answers: [MDNSRecord(name: try MDNSName("other.local"), address: addresses[0], ttl: 120)])
        let goodbye = MDNSMessage(flags: 0x8400, answers: [MDNSRecord(name: host, address: addresses[0], ttl: 0)])
        let notAResponse = MDNSMessage(flags: 0, answers: [MDNSRecord(name: host, address: addresses[0], ttl: 120)])
        for message in [otherName, goodbye, notAResponse] { resolver.handleDatagram(message.serialized(), now: .zero) }
        resolver.handleDatagram([1, 2, 3], now: .zero)
        #expect(resolver.malformedDatagrams == 1)
        #expect(resolver.pollEvent() == nil)
        // An answer in the additional section counts.
        let additional = MDNSMessage(flags: 0x8400, additionals: [MDNSRecord(name: host, address: addresses[1], ttl: 120)])
        resolver.handleDatagram(additional.serialized(), now: .zero)
        #expect(resolver.pollEvent() == .resolved(name: name, addresses: [addresses[1]]))
        #expect(throws: MDNSError.emptyLabel) { try resolver.resolve(name: "", now: .zero) }
    }

    @Test func responderRules() throws {
        var responder = MDNSResponder()
        try responder.publish(name: name, addresses: addresses)
        let host = try MDNSName(name.uppercased())
        // A multicast query from port 5353 without QU: reply to the group, cache-flush set, full TTL, no questions.
        let multicastQuery = MDNSMessage(id: 7, questions: [MDNSQuestion(name: host, type: MDNSRecordType.a)]).serialized()
        let multicast = try #require(responder.respond(to: multicastQuery, from: TransportAddress("192.168.1.9:5353")!))
        #expect(multicast.destination == MDNSGroup.ipv4)
        let parsed = try MDNSMessage(parsing: multicast.payload)
        #expect(parsed.id == 0 && parsed.questions.isEmpty && parsed.flags == 0x8400)
        #expect(parsed.answers == [MDNSRecord(name: try MDNSName(name), address: addresses[0], ttl: 120, cacheFlush: true)])
        // QU from 5353 over IPv6: unicast.
        let quQuery = MDNSMessage(questions: [MDNSQuestion(name: host, type: MDNSRecordType.aaaa, unicastResponse: true)]).serialized()
        let source6 = TransportAddress("[fe80::9]:5353")!
        let unicast = try #require(responder.respond(to: quQuery, from: source6))
        #expect(unicast.destination == source6)
        #expect(try MDNSMessage(parsing: unicast.payload).answers.map(\.address) == [addresses[1]])
        // Non-QU over IPv6 goes to ff02::fb.
        let plain6 = MDNSMessage(questions: [MDNSQuestion(name: host, type: MDNSRecordType.any)]).serialized()
        let group6 = try #require(responder.respond(to: plain6, from: source6))
        #expect(group6.destination == MDNSGroup.ipv6)
        #expect(try MDNSMessage(parsing: group6.payload).answers.count == 2)
        // Unknown names, responses and garbage get nothing.
        let unknown = MDNSMessage(questions: [MDNSQuestion(name: try MDNSName("nobody.local"), type: 1)]).serialized()
        #expect(responder.respond(to: unknown, from: source6) == nil)
        #expect(responder.respond(to: MDNSSamples.response, from: source6) == nil)
        #expect(responder.respond(to: [0xFF], from: source6) == nil)
        responder.unpublish(name: name)
        #expect(responder.respond(to: multicastQuery, from: TransportAddress("192.168.1.9:5353")!) == nil)
    }
}

@Suite(.serialized) struct MDNSLoopbackTests {
    /// Real multicast on loopback: a responder socket joined to 224.0.0.251 on 127.0.0.1 port 5353,
    /// a resolver socket on an ephemeral port sending the query to the group through 127.0.0.1.
    @Test func resolvesOverLoopbackMulticast() throws {
        let loopback = IPAddress("127.0.0.1")!
        let responderSocket = try UDPTestSocket(ip: "0.0.0.0", port: MDNSGroup.port, reuse: true)
        try responderSocket.joinMulticast(group: MDNSGroup.ipv4.ip, interface: loopback)
        let resolverSocket = try UDPTestSocket()
        try resolverSocket.setMulticastInterface(loopback)

        let name = "\(UUID().uuidString.lowercased()).local"
        var responder = MDNSResponder()
        try responder.publish(name: name, addresses: [IPAddress("127.0.0.1")!])
        var resolver = MDNSResolver()
        let start = MonotonicTime.now()
        try resolver.resolve(name: name, now: start)

        var result: MDNSEvent?
        var answered = 0
        while result == nil, MonotonicTime.now() - start < .seconds(5) {
            while let query = resolver.pollTransmit() { resolverSocket.send(query, to: MDNSGroup.ipv4) }
            if let (bytes, from) = responderSocket.receive(timeout: .milliseconds(20)),
               let response = responder.respond(to: bytes, from: from) {
                responderSocket.send(response.payload, to: response.destination)
                answered += 1
            }
            if let (bytes, _) = resolverSocket.receive(timeout: .milliseconds(20)) { resolver.handleDatagram(bytes, now: .now()) }
            resolver.handleTimeout(now: .now())
            result = resolver.pollEvent()
        }
        print("mDNS over loopback multicast resolved in \(MonotonicTime.now() - start)")
        #expect(answered >= 1)
        #expect(result == .resolved(name: name, addresses: [IPAddress("127.0.0.1")!]))
    }
}
