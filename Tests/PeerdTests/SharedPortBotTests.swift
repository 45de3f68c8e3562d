import Foundation
import ICE
import NIOPosix
import Testing
@testable import peerd

/// `peerd join --port N`: every connection of the room bot on one shared UDP port; `--port-range A-B`.
@Suite struct SharedPortBotTests {
    @Test("a warning when the kernel granted the shared port less receive buffer than asked, none when it granted all")
    func receiveBufferWarning() {
        let asked = 16 << 20
        // Debian's default net.core.rmem_max (212,992 bytes), and this machine's 4 MiB: SO_RCVBUF reads back twice that.
        #expect(JoinCommand.receiveBufferWarning(reported: 2 * 212_992, asked: asked)?.hasPrefix(
            "the shared port's receive buffer is 208 KiB of the 16384 KiB asked") == true)
        #expect(JoinCommand.receiveBufferWarning(reported: 8 << 20, asked: asked)?.contains("4096 KiB of the 16384 KiB") == true)
        // Forced (CAP_NET_ADMIN): all of it.
        #expect(JoinCommand.receiveBufferWarning(reported: 32 << 20, asked: asked) == nil)
    }

    @Test func portOptionsAreParsedAndValidated() throws {
        let base = ["ws://127.0.0.1:8080/ws", "--room", "general"]
        #expect(try JoinCommand.parse(base + ["--port", "3478"]).port == 3478)
        #expect(try JoinCommand.parse(base + ["--port-range", "40000-40099"]).portRange == "40000-40099")
        #expect(JoinCommand.parsePortRange("40000-40099") == 40000...40099)
        #expect(JoinCommand.parsePortRange("5000-5000") == 5000...5000)
        for bad in ["40099-40000", "0-10", "1-70000", "40000", "a-b", "-5", "5-"] {
            #expect(JoinCommand.parsePortRange(bad) == nil, "\(bad)")
            #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--port-range", bad]) }
        }
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--port", "0"]) }
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--port", "3478", "--port-range", "40000-40099"]) }
        // STUN responses on the shared port are routed by transaction ID: --port combines with --stun.
        let withSTUN = try JoinCommand.parse(base + ["--port", "3478", "--stun", "stun:127.0.0.1:3478", "--stun", "stun:127.0.0.2:3479"])
        #expect(withSTUN.port == 3478 && withSTUN.stun == ["stun:127.0.0.1:3478", "stun:127.0.0.2:3479"])
        // With --turn, each connection on the shared port allocates from its own ephemeral socket.
        let withTURN = try JoinCommand.parse(base + ["--port", "3478", "--stun", "stun:127.0.0.1:3478",
                                                     "--turn", "turn:127.0.0.1", "--turn-username", "u", "--turn-credential", "p"])
        #expect(withTURN.port == 3478 && withTURN.turn == ["turn:127.0.0.1"])
        #expect(throws: (any Error).self) { _ = try JoinCommand.parse(base + ["--port", "3478", "--turn", "turn:127.0.0.1"]) }
        _ = try JoinCommand.parse(base + ["--port-range", "40000-40099", "--stun", "stun:127.0.0.1:3478"])
        let help = JoinCommand.helpMessage(columns: 200)
        #expect(help.contains("--port ") && help.contains("--port-range"))
        #expect(help.contains("told apart by transaction") && help.contains("own ephemeral socket"))
    }

    @Test func theBotBindsItsConnectionsInThePortRange() async throws {
        // A free port to start the range at (the kernel's pick, released again).
        let probe = try await UDPSocketSet.bind(addresses: [IPAddress("127.0.0.1")!], eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
                                                onReceive: { _ in })
        let low = probe.localAddresses[0].port
        await probe.close()
        let range = low...UInt16(min(Int(low) + 20, 65_535))
        let room = try await BotConnectionTests.startRoom { options in options.portRange = range }
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "ranged")
        try await BotConnectionTests.waitFor(seconds: 20) {
            await participant.onLoop { $0.driver?.core.selectedPair != nil && $0.packetsReceived > 20 }
        }
        let botPort = await participant.onLoop { $0.driver?.core.selectedPair?.remoteAddress.port }
        #expect(botPort.map { range.contains($0) } == true, "peerd's end of the pair: \(String(describing: botPort)), range \(range)")
        await participant.leave()
        await room.close()
    }

    @Test func twoParticipantsReachTheBotThroughOneSharedPort() async throws {
        // With the settings `peerd join --port` uses (paced reads included).
        let sharedPort = try await SharedUDPPort.bind(addresses: [IPAddress("127.0.0.1")!], port: 0,
                                                      configuration: SharedUDPPort.serverConfiguration,
                                                      eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        let room = try await BotConnectionTests.startRoom { options in options.sharedPort = sharedPort }
        let first = try await SwiftParticipant.join(url: room.url, room: "general", id: "shared-a", options: .init(tone: 660))
        let second = try await SwiftParticipant.join(url: room.url, room: "general", id: "shared-b", options: .init(tone: 1_000))
        let participants = [first, second]
        func allFlowing() async -> Bool {
            guard await room.bot.summaries().filter({ $0.packetsReceived > 50 }).count == 2 else { return false }
            for participant in participants where await participant.onLoop({ $0.packetsReceived }) <= 50 { return false }
            return true
        }
        try await BotConnectionTests.waitFor(seconds: 20) { await allFlowing() }
        let received = [await first.onLoop { $0.packetsReceived }, await second.onLoop { $0.packetsReceived }]
        let summaries = await room.bot.summaries(), statistics = try await sharedPort.statistics()
        #expect(await allFlowing(), "audio both ways with both participants: \(summaries), participants got \(received), port \(statistics)")
        #expect(try await sharedPort.statistics().attachments == 2)
        await first.leave()
        await second.leave()
        await room.bot.stop()
        #expect(try await sharedPort.statistics().attachments == 0)
        await room.close()
        await sharedPort.close()
    }

    /// `peerd join --port N --stun ... --turn ... --ice-transport-policy relay`: two participants,
    /// both bot connections on one shared port, each with its own allocation from one coturn (which
    /// is the STUN server too), audio both ways through the relays.
    @Test func twoParticipantsThroughOneSharedPortAndOneTURNServer() async throws {
        guard let coturn = try await LocalCoturn.start(relayPorts: 51000...51999, label: "shared-turn") else { return }
        defer { coturn.stop() }
        let turnPort = coturn.port
        // What JoinCommand accepts (and parses the same way) for these options.
        let command = try JoinCommand.parse(["ws://127.0.0.1:8080/ws", "--room", "general", "--port", "3478",
                                             "--stun", "stun:127.0.0.1:\(turnPort)", "--turn", "turn:127.0.0.1:\(turnPort)?transport=udp",
                                             "--turn-username", "alice", "--turn-credential", "s3cret", "--ice-transport-policy", "relay"])
        let server = try ICEServer(urls: command.turn, username: command.turnUsername, credential: command.turnCredential)
        let turnServers = TURNServerConfiguration.servers(from: [server], resolve: resolveIPv4)
        #expect(turnServers.count == 1)

        let sharedPort = try await SharedUDPPort.bind(addresses: [IPAddress("127.0.0.1")!], port: 0,
                                                      eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        let room = try await BotConnectionTests.startRoom { options in
            options.sharedPort = sharedPort
            options.stunServers = [TransportAddress(ip: IPAddress("127.0.0.1")!, port: turnPort)]
            options.turnServers = turnServers
            options.iceTransportPolicy = .relay
        }
        let first = try await SwiftParticipant.join(url: room.url, room: "general", id: "relayed-a", options: .init(tone: 660))
        let second = try await SwiftParticipant.join(url: room.url, room: "general", id: "relayed-b", options: .init(tone: 1_000))
        let participants = [first, second]
        func allFlowing() async -> Bool {
            guard await room.bot.statistics().filter({ ($0.inboundRtp?.packetsReceived ?? 0) > 50 }).count == 2 else { return false }
            for participant in participants where await participant.onLoop({ $0.packetsReceived }) <= 20 { return false }
            return true
        }
        try await BotConnectionTests.waitFor(seconds: 20) { await allFlowing() }
        let statistics = await room.bot.statistics(), portStatistics = try await sharedPort.statistics()
        #expect(await allFlowing(), "audio both ways through the relays: \(statistics), port \(portStatistics)")
        #expect(statistics.count == 2)
        let relayedPorts = statistics.compactMap { $0.candidatePair?.local.candidateType == "relay" ? $0.candidatePair?.local.port : nil }
        #expect(relayedPorts.count == 2 && Set(relayedPorts).count == 2, "one allocation per connection: \(statistics.map(\.candidatePair))")
        #expect(relayedPorts.allSatisfy { (51_000...51_999).contains($0) }, "relayed addresses from coturn's range")
        #expect(try await sharedPort.statistics().attachments == 2)
        await first.leave()
        await second.leave()
        await room.bot.stop()
        await room.close()
        await sharedPort.close()
    }
}
