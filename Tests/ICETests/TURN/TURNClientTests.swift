import Testing
import Wire
@testable import ICE

/// A small in-test TURN server: long-term credentials, nonces, and knobs for failure cases.
struct FakeTURNServer {
    var realm = "test"
    var nonce = "nonce-1"
    var username = "u"
    var password = "p"
    var relayed = TransportAddress("198.51.100.7:50000")!
    var mapped = TransportAddress("203.0.113.9:40000")!
    var lifetime: UInt32 = 600
    /// Methods whose next authenticated request is answered 438 with a fresh nonce.
    var staleNonceFor: Set<STUNMethod> = []
    /// Error answers by method (with integrity, as a real server sends them).
    var errorFor: [STUNMethod: Int] = [:]
    /// Flip a byte of the MESSAGE-INTEGRITY of the next success response.
    var corruptNextIntegrity = false
    var silent = false

    var requests: [STUNMessage] = []
    var indications: [STUNMessage] = []
    var channelData: [TURNChannelData] = []
    var channels: [UInt16: TransportAddress] = [:]
    var permissions: Set<IPAddress> = []
    var allocated = false

    var key: [UInt8] { STUNCredentials.longTermKey(username: username, realm: realm, password: password) }

    mutating func handle(_ bytes: [UInt8]) -> [UInt8]? {
        if let first = bytes.first, first >= 0x40 && first < 0x50 {
            channelData.append(try! TURNChannelData(parsing: bytes))
            return nil
        }
        let message = try! STUNMessage(decoding: bytes)
        if message.type.messageClass == .indication {
            indications.append(message)
            return nil
        }
        requests.append(message)
        if silent { return nil }
        let method = message.type.method
        func error(_ code: Int, _ reason: String, extra: [STUNAttribute] = [], integrity: Bool) -> [UInt8] {
            STUNMessage(type: STUNMessageType(method: method, messageClass: .errorResponse), transactionID: message.transactionID,
                        attributes: [.errorCode(code: code, reason: reason)] + extra)
                .encoded(integrity: integrity ? .sha1(key: key) : nil, fingerprint: true)
        }
        guard message.username != nil else {
            return error(401, "Unauthorized", extra: [.realm(realm), .nonce(nonce)], integrity: false)
        }
        guard message.username == username, message.realm == realm, message.verifyIntegrity(of: bytes, key: key) else {
            return error(401, "Unauthorized", extra: [.realm(realm), .nonce(nonce)], integrity: false)
        }
        if message.nonce != nonce || staleNonceFor.contains(method) {
            staleNonceFor.remove(method)
            nonce += "x"
            return error(438, "Stale Nonce", extra: [.realm(realm), .nonce(nonce)], integrity: false)
        }
        if let code = errorFor[method] { return error(code, "Nope", integrity: true) }
        var attributes: [STUNAttribute] = []
        switch method {
        case .allocate:
            #expect(message.attributes.contains(.requestedTransport(protocolNumber: 17)))
            allocated = true
            attributes = [.xorRelayedAddress(relayed), .xorMappedAddress(mapped), .lifetime(seconds: lifetime)]
        case .refresh:
            let requested = message.lifetime ?? 600
            if requested == 0 { allocated = false }
            attributes = [.lifetime(seconds: requested == 0 ? 0 : lifetime)]
        case .createPermission:
            for case .xorPeerAddress(let peer) in message.attributes { permissions.insert(peer.ip) }
        case .channelBind:
            let number = message.first { if case .channelNumber(let n) = $0 { n } else { nil } }!
            channels[number] = message.xorPeerAddress!
            permissions.insert(message.xorPeerAddress!.ip)
        default:
            return error(400, "Bad Request", integrity: true)
        }
        let response = STUNMessage(type: STUNMessageType(method: method, messageClass: .successResponse), transactionID: message.transactionID, attributes: attributes)
        if corruptNextIntegrity {
            corruptNextIntegrity = false
            var forged = response.encoded(integrity: .sha1(key: key))
            forged[forged.count - 1] ^= 0x01
            return forged
        }
        return response.encoded(integrity: .sha1(key: key), fingerprint: true)
    }

    /// A Data indication from `peer`.
    func dataIndication(from peer: TransportAddress, _ payload: [UInt8]) -> [UInt8] {
        STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication), transactionID: .random(),
                    attributes: [.xorPeerAddress(peer), .data(payload)]).encoded(fingerprint: true)
    }
}

/// Runs the client against the fake server until neither has anything more to say; returns the events.
@discardableResult
func exchange(_ client: inout TURNClient, _ server: inout FakeTURNServer, now: MonotonicTime) -> [TURNEvent] {
    var events: [TURNEvent] = []
    var rounds = 0
    while let datagram = client.pollTransmit() {
        rounds += 1
        precondition(rounds < 100, "runaway exchange")
        if let answer = server.handle(datagram) { client.handleDatagram(answer, now: now) }
    }
    while let event = client.pollEvent() { events.append(event) }
    return events
}

struct NothingToSend: Error {}

/// The client's next datagram, or a thrown error when it has none.
func transmitted(_ client: inout TURNClient) throws -> [UInt8] {
    guard let datagram = client.pollTransmit() else { throw NothingToSend() }
    return datagram
}

/// The fake server's answer, or a thrown error when it stays silent.
func answer(_ server: inout FakeTURNServer, _ datagram: [UInt8]) throws -> [UInt8] {
    guard let response = server.handle(datagram) else { throw NothingToSend() }
    return response
}

func makeClient(_ configure: (inout TURNConfiguration) -> Void = { _ in }) -> TURNClient {
    var configuration = TURNConfiguration()
    configuration.randomSeed = 42
    configure(&configuration)
    return TURNClient(server: TransportAddress("192.0.2.1:3478")!, username: "u", password: "p", configuration: configuration)
}

func allocated(at now: MonotonicTime = .zero) -> (TURNClient, FakeTURNServer) {
    var client = makeClient()
    var server = FakeTURNServer()
    client.start(now: now)
    let events = exchange(&client, &server, now: now)
    precondition(events.count == 1 && client.state == .allocated, "allocation failed: \(events)")
    server.requests.removeAll()
    return (client, server)
}

@Suite struct TURNClientTests {
    let peer = TransportAddress("203.0.113.50:6000")!

    @Test func allocateAfter401() throws {
        var client = makeClient()
        var server = FakeTURNServer()
        client.start(now: .zero)
        let firstBytes = try transmitted(&client)
        let first = try STUNMessage(decoding: firstBytes)
        #expect(first.type == STUNMessageType(method: .allocate, messageClass: .request))
        #expect(first.username == nil && first.integrityOffset == nil)
        #expect(first.lifetime == 600)
        #expect(first.attributes.contains(.requestedTransport(protocolNumber: 17)))
        #expect(first.attributes.contains(.software("peerd")))
        #expect(first.hasFingerprint)

        let challenge = try answer(&server, firstBytes)
        client.handleDatagram(challenge, now: .zero + .milliseconds(10))
        #expect(client.realm == "test" && client.nonce == "nonce-1")
        let secondBytes = try transmitted(&client)
        let second = try STUNMessage(decoding: secondBytes)
        #expect(second.transactionID != first.transactionID)
        #expect(second.username == "u" && second.realm == "test" && second.nonce == "nonce-1")
        #expect(second.verifyIntegrity(of: secondBytes, key: STUNCredentials.longTermKey(username: "u", realm: "test", password: "p")))

        let success = try answer(&server, secondBytes)
        client.handleDatagram(success, now: .zero + .milliseconds(20))
        #expect(client.pollEvent() == .allocated(relayed: server.relayed, mapped: server.mapped, lifetime: .seconds(600)))
        #expect(client.state == .allocated)
        #expect(client.relayedAddress == server.relayed)
        #expect(client.mappedAddress == server.mapped)
        #expect(client.expiresAt == .zero + .milliseconds(20) + .seconds(600))
        #expect(client.pollTransmit() == nil)
    }

    @Test func staleNonceRetries() throws {
        var client = makeClient()
        var server = FakeTURNServer()
        server.staleNonceFor = [.allocate]
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.allocated(relayed: server.relayed, mapped: server.mapped, lifetime: .seconds(600))])
        #expect(server.requests.count == 3)
        #expect(server.requests[1].nonce == "nonce-1")
        #expect(server.requests[2].nonce == "nonce-1x")
        #expect(client.nonce == "nonce-1x")
    }

    @Test func staleNonceForeverFails() {
        var client = makeClient()
        var server = FakeTURNServer()
        client.start(now: .zero)
        // A server that always says 438 with a new nonce.
        var answered = 0
        while let datagram = client.pollTransmit(), answered < 20 {
            server.staleNonceFor = [.allocate]
            if let answer = server.handle(datagram) { client.handleDatagram(answer, now: .zero) }
            answered += 1
        }
        #expect(client.state == .failed(.staleNonceLoop))
        #expect(answered == 5)  // unauthenticated, authenticated, 3 retries
    }

    @Test func wrongPasswordIsUnauthorized() {
        var client = TURNClient(server: TransportAddress("192.0.2.1:3478")!, username: "u", password: "wrong")
        var server = FakeTURNServer()
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.failed(.unauthorized(reason: "Unauthorized"))])
        #expect(client.state == .failed(.unauthorized(reason: "Unauthorized")))
        #expect(client.pollTransmit() == nil)
        #expect(client.nextTimeout == nil)
    }

    @Test func allocateErrorFails() {
        var client = makeClient()
        var server = FakeTURNServer()
        server.errorFor[.allocate] = 486
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.failed(.errorResponse(method: .allocate, code: 486, reason: "Nope"))])
    }

    @Test func missingRelayedAddressFails() throws {
        var client = makeClient()
        client.start(now: .zero)
        var server = FakeTURNServer()
        client.handleDatagram(try answer(&server, try transmitted(&client)), now: .zero)
        let second = try STUNMessage(decoding: try transmitted(&client))
        let response = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .successResponse), transactionID: second.transactionID,
                                   attributes: [.lifetime(seconds: 600)]).encoded(integrity: .sha1(key: server.key))
        client.handleDatagram(response, now: .zero)
        #expect(client.pollEvent() == .failed(.malformedResponse(method: .allocate, reason: "no XOR-RELAYED-ADDRESS")))
    }

    @Test func silentServerTimesOut() throws {
        var client = makeClient()
        client.start(now: .zero)
        var sendTimes: [Double] = []
        var now = MonotonicTime.zero
        if client.pollTransmit() != nil { sendTimes.append(0) }
        while let next = client.nextTimeout, sendTimes.count < 20 {
            now = next
            client.handleTimeout(now: now)
            while client.pollTransmit() != nil { sendTimes.append((now - MonotonicTime.zero).seconds) }
            if case .failed = client.state { break }
        }
        #expect(sendTimes == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        #expect((now - MonotonicTime.zero).seconds == 39.5)
        #expect(client.pollEvent() == .failed(.timeout(.allocate)))
        #expect(client.state == .failed(.timeout(.allocate)))
        #expect(client.nextTimeout == nil)
    }

    @Test func badIntegrityResponseIsDroppedThenRetransmissionSucceeds() throws {
        var client = makeClient()
        var server = FakeTURNServer()
        client.start(now: .zero)
        client.handleDatagram(try answer(&server, try transmitted(&client)), now: .zero)
        let authenticated = try transmitted(&client)
        server.corruptNextIntegrity = true
        let forged = try answer(&server, authenticated)
        #expect((try? STUNMessage(decoding: forged)) != nil, "forged response must still parse (only the MAC is wrong)")
        client.handleDatagram(forged, now: .zero + .milliseconds(5))
        #expect(client.droppedResponses == 1)
        #expect(client.state == .allocating)
        #expect(client.pollEvent() == nil)
        // The retransmission (same bytes) gets a proper answer.
        client.handleTimeout(now: .zero + .milliseconds(500))
        let retransmitted = try transmitted(&client)
        #expect(retransmitted == authenticated)
        client.handleDatagram(try answer(&server, retransmitted), now: .zero + .milliseconds(510))
        #expect(client.state == .allocated)
    }

    @Test func successWithoutIntegrityIsDropped() throws {
        var (client, _) = allocated()
        client.createPermission(for: peer.ip, now: .zero)
        let request = try STUNMessage(decoding: try transmitted(&client))
        let unsigned = STUNMessage(type: STUNMessageType(method: .createPermission, messageClass: .successResponse), transactionID: request.transactionID)
        client.handleDatagram(unsigned.encoded(), now: .zero)
        #expect(client.droppedResponses == 1)
        #expect(!client.hasPermission(for: peer.ip))
        // An error response without integrity (other than 401/438) is dropped too.
        let unsignedError = STUNMessage(type: STUNMessageType(method: .createPermission, messageClass: .errorResponse), transactionID: request.transactionID,
                                        attributes: [.errorCode(code: 403, reason: "Forbidden")])
        client.handleDatagram(unsignedError.encoded(), now: .zero)
        #expect(client.droppedResponses == 2)
        #expect(client.pollEvent() == nil)
    }

    @Test func refreshBeforeExpiry() throws {
        var (client, server) = allocated()
        #expect(client.nextTimeout == .zero + .seconds(540))
        client.handleTimeout(now: .zero + .seconds(539))
        #expect(client.pollTransmit() == nil)
        server.staleNonceFor = [.refresh]
        client.handleTimeout(now: .zero + .seconds(540))
        let events = exchange(&client, &server, now: .zero + .seconds(540))
        #expect(events == [.refreshed(lifetime: .seconds(600))])
        #expect(server.requests.map(\.type.method) == [.refresh, .refresh])
        #expect(server.requests.allSatisfy { $0.lifetime == 600 })
        #expect(client.expiresAt == .zero + .seconds(1140))
        #expect(client.nextTimeout == .zero + .seconds(1080))
    }

    @Test func shortLifetimeRefreshesAtHalf() {
        var client = makeClient()
        var server = FakeTURNServer()
        server.lifetime = 100
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.allocated(relayed: server.relayed, mapped: server.mapped, lifetime: .seconds(100))])
        #expect(client.nextTimeout == .zero + .seconds(50))
    }

    @Test func refreshFailureFailsAllocation() {
        var (client, server) = allocated()
        server.errorFor[.refresh] = 437
        client.handleTimeout(now: .zero + .seconds(540))
        let events = exchange(&client, &server, now: .zero + .seconds(540))
        #expect(events == [.failed(.errorResponse(method: .refresh, code: 437, reason: "Nope"))])
    }

    @Test func permissionCreatedAndRefreshedWhileUsed() throws {
        var (client, server) = allocated()
        client.createPermission(for: peer.ip, now: .zero)
        #expect(exchange(&client, &server, now: .zero) == [.permissionCreated(peer.ip)])
        #expect(server.requests.first?.xorPeerAddress == TransportAddress(ip: peer.ip, port: 0))
        #expect(client.hasPermission(for: peer.ip))
        #expect(server.permissions == [peer.ip])
        // Asking again while installed sends nothing.
        client.createPermission(for: peer.ip, now: .zero + .seconds(1))
        #expect(client.pollTransmit() == nil)

        _ = client.wrap(payload: [1], to: peer)
        #expect(client.nextTimeout == .zero + .seconds(240))
        client.handleTimeout(now: .zero + .seconds(240))
        server.requests.removeAll()
        #expect(exchange(&client, &server, now: .zero + .seconds(240)) == [])
        #expect(server.requests.map(\.type.method) == [.createPermission])
        #expect(client.hasPermission(for: peer.ip))

        // Not used during the next interval: it is let go, not refreshed.
        client.handleTimeout(now: .zero + .seconds(480))
        #expect(client.pollTransmit() == nil)
        #expect(!client.hasPermission(for: peer.ip))
    }

    @Test func permissionQueuedBeforeAllocation() {
        var client = makeClient()
        var server = FakeTURNServer()
        client.createPermission(for: peer.ip, now: .zero)
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.allocated(relayed: server.relayed, mapped: server.mapped, lifetime: .seconds(600)), .permissionCreated(peer.ip)])
    }

    @Test func permissionErrorReported() {
        var (client, server) = allocated()
        server.errorFor[.createPermission] = 403
        client.createPermission(for: peer.ip, now: .zero)
        #expect(exchange(&client, &server, now: .zero) == [.permissionFailed(peer.ip, .errorResponse(method: .createPermission, code: 403, reason: "Nope"))])
        #expect(client.state == .allocated)
    }

    @Test func sendIndicationThenChannelData() throws {
        var (client, server) = allocated()
        client.createPermission(for: peer.ip, now: .zero)
        exchange(&client, &server, now: .zero)

        let indicationBytes = client.wrap(payload: [1, 2, 3], to: peer)
        let indication = try STUNMessage(decoding: indicationBytes)
        #expect(indication.type == STUNMessageType(method: .send, messageClass: .indication))
        #expect(indication.xorPeerAddress == peer)
        #expect(indication.data == [1, 2, 3])
        #expect(indication.integrityOffset == nil)

        let number = try client.bindChannel(peer: peer, now: .zero)
        #expect(number == 0x4000)
        #expect(try client.bindChannel(peer: peer, now: .zero) == 0x4000)
        // Not yet confirmed: still a Send indication.
        #expect(client.wrap(payload: [9], to: peer).first! < 4)
        #expect(exchange(&client, &server, now: .zero) == [.channelBound(channel: 0x4000, peer: peer)])
        #expect(server.channels == [0x4000: peer])
        #expect(client.channel(for: peer) == 0x4000)

        let channelBytes = client.wrap(payload: [4, 5, 6, 7, 8], to: peer)
        #expect(channelBytes == [0x40, 0x00, 0x00, 0x05, 4, 5, 6, 7, 8])
        let other = TransportAddress("203.0.113.51:7000")!
        #expect(try client.bindChannel(peer: other, now: .zero) == 0x4001)
        exchange(&client, &server, now: .zero)
        #expect(client.wrap(payload: [1], to: other).prefix(2) == [0x40, 0x01])
    }

    @Test func unwrapDataIndicationAndChannelData() throws {
        var (client, server) = allocated()
        let indicationResult = client.handleDatagram(server.dataIndication(from: peer, [7, 7, 7]), now: .zero)
        let fromIndication = try #require(indicationResult)
        #expect(fromIndication.peer == peer && fromIndication.payload == [7, 7, 7])

        // ChannelData on a channel we never bound is ignored.
        #expect(client.unwrap([0x40, 0x00, 0x00, 0x01, 0xAA], now: .zero) == nil)
        #expect(client.ignoredDatagrams == 1)

        try client.bindChannel(peer: peer, now: .zero)
        exchange(&client, &server, now: .zero)
        let channelResult = client.unwrap([0x40, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x00], now: .zero)
        let fromChannel = try #require(channelResult)
        #expect(fromChannel.peer == peer && fromChannel.payload == [0xAA, 0xBB])
        // A lying ChannelData length is ignored.
        #expect(client.unwrap([0x40, 0x00, 0x00, 0x09, 0xAA], now: .zero) == nil)
        // Garbage and stray responses are ignored.
        #expect(client.unwrap([0x80, 1, 2], now: .zero) == nil)
        let stray = STUNMessage(type: STUNMessageType(method: .refresh, messageClass: .successResponse), transactionID: .random()).encoded(integrity: .sha1(key: server.key))
        #expect(client.unwrap(stray, now: .zero) == nil)
        #expect(client.ignoredDatagrams == 4)
        #expect(client.pollEvent() == nil)
    }

    @Test func channelRefreshedWhileUsed() throws {
        var (client, server) = allocated()
        try client.bindChannel(peer: peer, now: .zero)
        exchange(&client, &server, now: .zero)
        server.requests.removeAll()
        // Keep the channel and the permission in use.
        for minute in 1...9 {
            let now = MonotonicTime.zero + .seconds(60 * minute)
            _ = client.wrap(payload: [0], to: peer)
            client.handleTimeout(now: now)
            exchange(&client, &server, now: now)
        }
        let methods = server.requests.map(\.type.method)
        #expect(methods.filter { $0 == .channelBind }.count == 1)   // at 540 s
        #expect(methods.filter { $0 == .createPermission }.count == 2)  // at 240 s and 480 s
        #expect(methods.filter { $0 == .refresh }.count == 1)  // allocation at 540 s
        #expect(client.channel(for: peer) == 0x4000)
    }

    @Test func channelQueuedBeforeAllocation() throws {
        var client = makeClient()
        var server = FakeTURNServer()
        #expect(try client.bindChannel(peer: peer, now: .zero) == 0x4000)
        client.start(now: .zero)
        let events = exchange(&client, &server, now: .zero)
        #expect(events == [.allocated(relayed: server.relayed, mapped: server.mapped, lifetime: .seconds(600)), .channelBound(channel: 0x4000, peer: peer)])
        #expect(client.hasPermission(for: peer.ip))
    }

    @Test func channelBindErrorReported() throws {
        var (client, server) = allocated()
        server.errorFor[.channelBind] = 400
        try client.bindChannel(peer: peer, now: .zero)
        #expect(exchange(&client, &server, now: .zero) == [.channelBindFailed(peer: peer, .errorResponse(method: .channelBind, code: 400, reason: "Nope"))])
        #expect(client.channel(for: peer) == nil)
        #expect(client.wrap(payload: [1], to: peer).first! < 4)
    }

    @Test func closeDeallocates() throws {
        var (client, server) = allocated()
        client.close(now: .zero + .seconds(5))
        let requestBytes = try transmitted(&client)
        let request = try STUNMessage(decoding: requestBytes)
        #expect(request.type.method == .refresh && request.lifetime == 0)
        #expect(client.state == .closing)
        client.handleDatagram(try answer(&server, requestBytes), now: .zero + .seconds(5))
        #expect(client.pollEvent() == .closed)
        #expect(client.state == .closed)
        #expect(!server.allocated)
        #expect(client.nextTimeout == nil)
        #expect(throws: TURNError.notActive) { try client.bindChannel(peer: peer, now: .zero + .seconds(6)) }
        client.createPermission(for: peer.ip, now: .zero + .seconds(6))
        #expect(client.pollTransmit() == nil)
    }

    @Test func closeTimesOutToClosed() {
        var (client, server) = allocated()
        server.silent = true
        client.close(now: .zero)
        var now = MonotonicTime.zero
        while let next = client.nextTimeout {
            now = next
            client.handleTimeout(now: now)
            while let datagram = client.pollTransmit() { _ = server.handle(datagram) }
        }
        #expect(client.pollEvent() == .closed)
        #expect(server.requests.count == 7)
    }

    @Test func mutatedServerDatagramsNeverTrap() throws {
        var (client, server) = allocated()
        try client.bindChannel(peer: peer, now: .zero)
        exchange(&client, &server, now: .zero)
        client.createPermission(for: TransportAddress("203.0.113.99:1")!.ip, now: .zero)
        let pending = try transmitted(&client)
        let seeds = [try answer(&server, pending), server.dataIndication(from: peer, Array(0..<40)), [0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]]
        var rng = SplitMix64(seed: 0x7475726E)
        var delivered = 0
        for seed in seeds {
            for _ in 0..<2000 {
                let mutated = mutate(seed, using: &rng)
                if let (_, payload) = client.handleDatagram(mutated, now: .zero) {
                    #expect(payload.count <= mutated.count)
                    delivered += 1
                }
            }
        }
        #expect(delivered > 0)
        // Whatever arrived, the allocation itself is intact (a forged response cannot fail it: integrity is checked).
        #expect(client.state == .allocated)
    }

    @Test func expiresWhenRefreshesGoUnanswered() {
        var (client, server) = allocated()
        server.silent = true
        var events: [TURNEvent] = []
        while let next = client.nextTimeout {
            client.handleTimeout(now: next)
            while let datagram = client.pollTransmit() { _ = server.handle(datagram) }
            while let event = client.pollEvent() { events.append(event) }
        }
        // The refresh at 540 s times out at 579.5 s, before the 600 s expiry.
        #expect(events == [.failed(.timeout(.refresh))])
    }
}
