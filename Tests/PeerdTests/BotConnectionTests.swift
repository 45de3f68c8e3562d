import Foundation
import ICE
import Logging
import MetricsTestKit
import NIOPosix
import RTP
import SDP
import Signaling
import Testing
import Wire
@testable import peerd

/// The room bot against `SwiftParticipant` (a browser-like peer from peerd's own modules) over a
/// real room server on loopback: mDNS candidates, ICE restart answered, getStats-shaped statistics
/// and metrics from a real connection.
@Suite(.serialized) struct BotConnectionTests {
    struct Room {
        let server: RoomServer
        let serverTask: Task<Void, any Error>
        let port: Int
        let bot: RoomBot
        let botTask: Task<Void, Never>
        let directory: String
        var url: String { "ws://127.0.0.1:\(port)/ws" }

        func close() async {
            await bot.stop()
            botTask.cancel()
            await server.shutdown()
            serverTask.cancel()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    static func startRoom(trickle: Bool = true, metrics: TestMetrics? = nil, mdnsTimeout: Duration = .seconds(2),
                          configure: (inout RoomBotOptions) -> Void = { _ in }) async throws -> Room {
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let serverTask = Task { try await server.run() }
        let port = try #require(await server.waitUntilListening())
        let directory = NSTemporaryDirectory() + "peerd-bot-\(UUID().uuidString)"
        var options = RoomBotOptions(url: "ws://127.0.0.1:\(port)/ws", room: "general", name: "peerd", id: "peerd-test")
        options.recordDirectory = directory
        options.audio = .tone(440)
        options.trickle = trickle
        options.offerDelay = .seconds(30)
        options.interfaces = .loopbackOnly
        options.mdnsTimeout = mdnsTimeout
        options.statsInterval = .milliseconds(500)
        options.metricsFactory = metrics
        configure(&options)
        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test.peerd"))
        let botTask = Task { await bot.run() }
        return Room(server: server, serverTask: serverTask, port: port, bot: bot, botTask: botTask, directory: directory)
    }

    static func waitFor(seconds: Double, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func events(_ directory: String) -> [[String: String]] {
        guard let text = try? String(contentsOfFile: directory + "/events.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
    }

    /// Chromium announces host candidates as `<uuid>.local`: peerd resolves them with one-shot mDNS
    /// queries, trickled or inside the SDP; a name nobody answers for drops that candidate only.
    @Test(arguments: [true, false])
    func mdnsCandidatesAreResolvedAndUnresolvableOnesDropped(trickle: Bool) async throws {
        let responder = try LoopbackMDNSResponder()
        defer { responder.stop() }
        let room = try await Self.startRoom(trickle: trickle)
        var participantOptions = SwiftParticipant.Options()
        participantOptions.trickle = trickle
        participantOptions.responder = responder
        participantOptions.unresolvableCandidate = true
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "mdns-user", options: participantOptions)

        try await Self.waitFor(seconds: 15) {
            let stats = await room.bot.statistics()
            return (stats.first?.inboundRtp?.packetsReceived ?? 0) > 50 && (stats.first?.mdnsCandidatesDropped ?? 0) > 0
        }
        let stats = try #require(await room.bot.statistics().first)
        #expect(stats.participant == "mdns-user")
        #expect(stats.mdnsCandidatesResolved >= 1, "the published name was resolved")
        #expect(stats.mdnsCandidatesDropped == 1, "the unresolvable name was dropped")
        #expect(stats.dtlsConnected)
        #expect((stats.inboundRtp?.packetsReceived ?? 0) > 50, "peerd receives the participant's audio")
        #expect(responder.answered >= 1)
        // The selected remote candidate is the resolved address (not the name, not the bogus port).
        let pair = try #require(stats.candidatePair)
        #expect(pair.remote.address == "127.0.0.1" && pair.remote.port != 9)
        #expect(await participant.onLoop { $0.packetsReceived } > 20, "the participant hears peerd")

        await participant.leave()
        await room.close()
    }

    /// While a participant's packets flow, the bot leaves its recorder and talk detector out of the
    /// 100 ms housekeeping (each packet does that work); once the packets stop, housekeeping takes
    /// over again: speaking stops, and silence keeps the recording in pace with the wallclock.
    @Test func speakingStopsAndSilenceFillsTheRecordingWhenPacketsStop() async throws {
        let room = try await Self.startRoom()
        var options = SwiftParticipant.Options()
        options.level = 10
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "talker", options: options)
        func saw(_ event: String) -> Bool { Self.events(room.directory).contains { $0["event"] == event && $0["participant"] == "talker" } }
        try await Self.waitFor(seconds: 15) { saw("speaking-start") }
        #expect(saw("speaking-start"), "loud packets start speaking")
        try await Self.waitFor(seconds: 10) { (await room.bot.summaries().first { $0.id == "talker" }?.packetsReceived ?? 0) > 75 }
        await participant.onLoop { $0.paused = true }
        let pausedAt = ContinuousClock.now
        try await Self.waitFor(seconds: 10) { saw("speaking-stop") }
        #expect(saw("speaking-stop"), "no packets: the window empties and speaking stops")
        let received = await room.bot.summaries().first { $0.id == "talker" }?.packetsReceived ?? 0
        try await Task.sleep(until: pausedAt + .seconds(3))
        #expect(await room.bot.summaries().first { $0.id == "talker" }?.packetsReceived == received, "the participant sends nothing")
        await participant.leave()
        try await Self.waitFor(seconds: 10) { await room.bot.summaries().first { $0.id == "talker" }?.phase == "closed" }
        let path = try #require(await room.bot.summaries().first { $0.id == "talker" }?.recording)
        let file = try OggOpusReader.read([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        let seconds = Double((file.packets.last?.granulePosition ?? 0) - Int64(file.head.preSkip)) / 48_000
        let audioSeconds = Double(received) * 0.02
        // The file holds the packets and the 3 s pause after them as silence, but for the last 0.5 s
        // (the recorder holds that back for late packets) and up to one 100 ms housekeeping tick.
        #expect(audioSeconds >= 1.5)
        #expect(seconds >= audioSeconds + 3 - 0.7, "\(seconds) s recorded for \(audioSeconds) s of packets and a 3 s pause")
        await room.close()
    }

    /// A driver whose peer object was replaced (the participant rejoined, or the negotiation started
    /// over) can still deliver events while it closes. They must not reach the new peer: a stale
    /// `.failed(.consentLost)` would restart ICE on the working connection, a stale `.rtp` would
    /// land in the new recording. The same event from the current driver does act (the control).
    @Test func eventsOfAReplacedPeersDriverAreDropped() async throws {
        let room = try await Self.startRoom()
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "stale")
        try await Self.waitFor(seconds: 15) { (await room.bot.summaries().first { $0.id == "stale" }?.packetsReceived ?? 0) > 20 }
        let bot = room.bot
        func failures() -> Int { Self.events(room.directory).filter { $0["event"] == "connection-failed" && $0["participant"] == "stale" }.count }
        // A replaced peer object, as a rejoin or a restarted negotiation leaves it (closed, another in its
        // place), gets an event from its driver's handler: dropped and counted.
        let dropped = try await bot.loop.submit {
            let current = bot.currentPeer(of: "stale")
            let replaced = RemotePeer(id: "stale", offerDeadline: .now(), serial: (current?.serial ?? 1) - 1)
            replaced.phase = .closed
            let before = bot.staleDriverEvents
            bot.handlePeerEvent(replaced, .failed(.consentLost))
            return bot.staleDriverEvents - before
        }.get()
        #expect(dropped == 1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(failures() == 0, "events of other peer objects' drivers are dropped")
        let handled = try await bot.loop.submit {
            guard let current = bot.currentPeer(of: "stale") else { return false }
            bot.handlePeerEvent(current, .failed(.consentLost))
            return true
        }.get()
        #expect(handled, "the participant has a current peer object")
        try await Self.waitFor(seconds: 5) { failures() == 1 }
        #expect(failures() == 1, "the current driver's event is handled")
        await participant.leave()
        await room.close()
    }

    /// The participant restarts ICE on a working connection: peerd answers with new credentials,
    /// keeps DTLS and SRTP, a new pair is selected and audio keeps flowing.
    /// A bot with nothing to send still tells each participant what it receives from it, as a
    /// browser does: RTCP receiver reports at the RFC 3550 interval (the block about the participant's
    /// stream, and LSR/DLSR, from which the participant computes its round-trip time), and RR + BYE
    /// when it leaves.
    @Test func aBotThatSendsNothingSendsReceiverReportsAndAGoodbye() async throws {
        let room = try await Self.startRoom { $0.audio = .silence }
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "speaker")
        try await participant.waitFor(seconds: 25) {
            await participant.onLoop { $0.receiverReportBlocks >= 2 && $0.roundTripTime != nil }
        }
        let (blocks, rtt, received) = await participant.onLoop { ($0.receiverReportBlocks, $0.roundTripTime, $0.packetsReceived) }
        #expect(blocks >= 2, "no receiver reports about the participant's stream")
        let roundTrip = try #require(rtt, "no round-trip time from the bot's LSR/DLSR")
        #expect(roundTrip >= 0 && roundTrip < 0.5)
        #expect(received == 0, "a bot with nothing to send sent RTP")
        await room.bot.stop()
        try await participant.waitFor(seconds: 5) { await participant.onLoop { $0.goodbyes > 0 } }
        #expect(await participant.onLoop { $0.goodbyes } == 1)
        await participant.stop()
        await room.close()
    }

    @Test func answersAnICERestart() async throws {
        let room = try await Self.startRoom()
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "restarter")
        try await Self.waitFor(seconds: 15) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > 25 }
        let before = try #require(await room.bot.statistics().first)
        #expect(before.dtlsConnected)
        let firstAnswer = try #require(await participant.onLoop { $0.answers.first })
        let pairsBefore = await participant.onLoop { $0.selectedPairs }

        try await participant.restartICE()
        try await Self.waitFor(seconds: 10) {
            await participant.onLoop { $0.answers.count >= 2 && $0.selectedPairs > pairsBefore }
        }
        let answers = await participant.onLoop { $0.answers }
        #expect(answers.count == 2)
        let newUfrag = answers.last.flatMap { $0.iceUfrag(for: $0.media[0]) }
        #expect(newUfrag != nil && newUfrag != firstAnswer.iceUfrag(for: firstAnswer.media[0]), "peerd answered with new ICE credentials")
        #expect(await participant.onLoop { $0.selectedPairs } > pairsBefore, "a new pair was selected")

        let receivedAtRestart = try #require(await room.bot.statistics().first?.inboundRtp?.packetsReceived)
        try await Self.waitFor(seconds: 5) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > receivedAtRestart + 50 }
        let after = try #require(await room.bot.statistics().first)
        #expect(after.iceRestarts == 1)
        #expect(after.dtlsConnected && after.connectionState == "connected", "the connection was kept, not renegotiated from scratch")
        #expect((after.inboundRtp?.packetsReceived ?? 0) > receivedAtRestart + 50, "audio keeps flowing after the restart")
        #expect(Self.events(room.directory).contains { $0["event"] == "ice-restart-answered" && $0["participant"] == "restarter" })
        #expect(!Self.events(room.directory).contains { $0["event"] == "renegotiating" })

        await participant.leave()
        await room.close()
    }

    /// The path between peerd and the participant is cut for longer than peerd's consent timeout,
    /// then restored: peerd detects the loss, restarts ICE over signaling (again while the path is
    /// still down), and once it is back a new pair is selected and audio flows again, on the same
    /// connection (no new DTLS handshake, the recording goes on).
    @Test func restartsICEWhenConsentIsLostAndAudioComesBack() async throws {
        let proxy = try CuttableUDPProxy()
        defer { proxy.stop() }
        let room = try await Self.startRoom { options in
            // Timers scaled down from 5 s / 30 s so that the test takes seconds.
            options.ice.consentInterval = .milliseconds(300)
            options.ice.consentTimeout = .seconds(2)
            options.ice.disconnectedTimeout = .seconds(1)
            options.iceRestartTimeout = .milliseconds(1500)
        }
        var participantOptions = SwiftParticipant.Options()
        participantOptions.proxy = proxy
        participantOptions.ice.consentTimeout = .seconds(120)
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "roamer", options: participantOptions)
        try await Self.waitFor(seconds: 15) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > 50 }
        let before = try #require(await room.bot.statistics().first)
        #expect(before.dtlsConnected && before.iceRestarts == 0)
        #expect(before.candidatePair?.remote.port == Int(proxy.botFacing.port), "media goes through the relay")

        proxy.cut = true
        try await Task.sleep(for: .seconds(4))
        let during = try #require(await room.bot.statistics().first)
        #expect(Self.events(room.directory).contains { $0["event"] == "connection-failed" && $0["error"] == "consentLost" })
        #expect(during.iceRestarts >= 1, "peerd restarted ICE while the path was down")
        #expect(proxy.droppedDatagrams > 0)

        proxy.cut = false
        let receivedAtRestore = during.inboundRtp?.packetsReceived ?? 0
        try await Self.waitFor(seconds: 10) {
            let received = await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0
            return Self.events(room.directory).contains { $0["event"] == "ice-restarted" } && received > receivedAtRestore + 50
        }
        let after = try #require(await room.bot.statistics().first)
        #expect(Self.events(room.directory).contains { $0["event"] == "ice-restart" && $0["participant"] == "roamer" })
        #expect(Self.events(room.directory).contains { $0["event"] == "ice-restarted" && $0["participant"] == "roamer" })
        #expect((after.inboundRtp?.packetsReceived ?? 0) > receivedAtRestore + 50, "audio flows again after the restart")
        #expect(after.dtlsConnected && after.connectionState == "connected")
        #expect(!Self.events(room.directory).contains { $0["event"] == "renegotiating" }, "the connection was kept")
        #expect(Self.events(room.directory).filter { $0["event"] == "connected" }.count == 1, "one DTLS handshake")
        let heard = await participant.onLoop { $0.packetsReceived }
        try await Task.sleep(for: .milliseconds(500))
        #expect(await participant.onLoop { $0.packetsReceived } > heard + 10, "the participant hears peerd again")

        await participant.leave()
        await room.close()
    }

    /// `--turn` with `--ice-transport-policy relay`: peerd's only candidate is a relayed one from
    /// coturn on loopback (long-term credentials, as browsers take them), and audio flows through it.
    @Test func relaysThroughTURNWhenThePolicyIsRelay() async throws {
        guard let coturn = try await LocalCoturn.start(relayPorts: 50000...50999, label: "bot-turn") else { return }
        defer { coturn.stop() }
        let port = coturn.port

        // The same parsing as `peerd join --turn turn:127.0.0.1:PORT --turn-username alice --turn-credential s3cret`.
        let server = try ICEServer(urls: ["turn:127.0.0.1:\(port)?transport=udp"], username: "alice", credential: "s3cret")
        let turnServers = TURNServerConfiguration.servers(from: [server], resolve: resolveIPv4)
        #expect(turnServers.count == 1)
        let room = try await Self.startRoom { options in
            options.turnServers = turnServers
            options.iceTransportPolicy = .relay
        }
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "behind-turn")
        try await Self.waitFor(seconds: 20) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > 50 }
        let stats = try #require(await room.bot.statistics().first)
        #expect(stats.candidatePair?.local.candidateType == "relay", "peerd's side of the pair is the TURN relay (\(String(describing: stats.candidatePair)))")
        #expect(stats.candidatePair?.local.port ?? 0 >= 50000, "a relayed address from coturn's range")
        #expect((stats.inboundRtp?.packetsReceived ?? 0) > 50, "peerd hears the participant through the relay")
        #expect(await participant.onLoop { $0.packetsReceived } > 20, "the participant hears peerd through the relay")
        await participant.leave()
        await room.close()
    }

    /// A participant floods peerd with broken offers, then sends a real one (an ICE restart): the flood
    /// is cut off, the newest offer is answered when the window ends, and audio keeps flowing.
    @Test func aRealOfferAfterAFloodIsAnsweredWhenTheWindowEnds() async throws {
        let room = try await Self.startRoom { $0.offerWindow = .seconds(2) }
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "flooder")
        try await Self.waitFor(seconds: 15) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > 25 }
        try await Task.sleep(for: .seconds(2))
        // Under the room server's own rate limit (burst 50), over peerd's (20 offers per window).
        for _ in 0..<30 { try await participant.client.sendSignal(to: "peerd-test", data: .offer(sdp: "v=0\r\ngarbage\r\n")) }
        try await participant.restartICE()
        try await Self.waitFor(seconds: 4) { await room.bot.ignoredSignalCount >= 11 }
        #expect(await room.bot.ignoredSignalCount == 30 + 1 - RoomBot.maximumOffersPerWindow, "the offers over the limit were held back")
        try await Self.waitFor(seconds: 8) { await participant.onLoop { $0.answers.count >= 2 } }
        #expect(await participant.onLoop { $0.answers.count } == 2, "the real offer was answered once the window ended")
        let received = await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0
        try await Self.waitFor(seconds: 5) { (await room.bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > received + 50 }
        let after = try #require(await room.bot.statistics().first)
        #expect(after.iceRestarts == 1 && after.dtlsConnected, "the held-back offer was the ICE restart, answered on the same connection")
        #expect((after.inboundRtp?.packetsReceived ?? 0) > received + 50, "audio keeps flowing")
        await participant.leave()
        await room.close()
    }

    /// Statistics in getStats' shape from a real two-peer connection, in DIR/stats.json and as metrics.
    @Test func statisticsJSONAndMetricsFromARealConnection() async throws {
        let metrics = TestMetrics()
        let room = try await Self.startRoom(metrics: metrics)
        let participant = try await SwiftParticipant.join(url: room.url, room: "general", id: "stats-user")
        // Wait for RTT too: it needs an SR from peerd and a report block back about it.
        try await Self.waitFor(seconds: 20) {
            let stats = await room.bot.statistics().first
            return (stats?.inboundRtp?.packetsReceived ?? 0) > 100 && stats?.remoteInboundRtp?.roundTripTime != nil
        }
        // Let the writer run once more, then read the file as a consumer would.
        try await Task.sleep(for: .milliseconds(700))
        let data = try Data(contentsOf: URL(fileURLWithPath: room.directory + "/stats.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["peerd"] as? String == "peerd-test" && object["room"] as? String == "general")
        let connections = try #require(object["connections"] as? [[String: Any]])
        #expect(connections.count == 1)
        let connection = try #require(connections.first)
        #expect(connection["participant"] as? String == "stats-user")
        #expect(connection["iceConnectionState"] as? String == "connected" || connection["iceConnectionState"] as? String == "completed")
        #expect(connection["dtlsConnected"] as? Bool == true)
        let pair = try #require(connection["candidatePair"] as? [String: Any])
        let local = try #require(pair["local"] as? [String: Any]), remote = try #require(pair["remote"] as? [String: Any])
        #expect(local["address"] as? String == "127.0.0.1" && remote["address"] as? String == "127.0.0.1")
        #expect(local["candidateType"] as? String == "host")
        #expect((pair["bytesReceived"] as? Int ?? 0) > 0 && (pair["bytesSent"] as? Int ?? 0) > 0)
        let inbound = try #require(connection["inboundRtp"] as? [String: Any])
        let outbound = try #require(connection["outboundRtp"] as? [String: Any])
        let remoteInbound = try #require(connection["remoteInboundRtp"] as? [String: Any])

        // Values against what the participant counted itself.
        let sent = await participant.onLoop { $0.packetsSent }
        let received = try #require(inbound["packetsReceived"] as? Int)
        // The file is up to ~1.2 s older than the participant's own counters (50 packets a second).
        #expect(received > 100 && abs(received - sent) <= 75, "peerd received \(received) of \(sent)")
        #expect(inbound["codec"] as? String == "opus")
        #expect((inbound["packetsLost"] as? Int) == 0, "no loss on loopback")
        let jitter = try #require(inbound["jitter"] as? Double)
        #expect(jitter >= 0 && jitter < 0.05)
        #expect(inbound["audioLevelDBov"] as? Int == 30)
        let level = try #require(inbound["audioLevel"] as? Double)
        #expect(abs(level - pow(10, -30.0 / 20)) < 1e-6)
        #expect((inbound["bytesReceived"] as? Int ?? 0) > received * 10)
        #expect(inbound["concealedFrames"] as? Int != nil, "the recorder reports concealment")
        let participantReceived = await participant.onLoop { $0.packetsReceived }
        let peerdSent = try #require(outbound["packetsSent"] as? Int)
        #expect(peerdSent > 100 && abs(participantReceived - peerdSent) <= 75, "the participant received \(participantReceived) of \(peerdSent)")
        let rtt = try #require(remoteInbound["roundTripTime"] as? Double)
        #expect(rtt >= 0 && rtt < 0.1, "loopback RTT \(rtt) s")
        #expect((remoteInbound["packetsLost"] as? Int) == 0)
        #expect(connection["timestamp"] as? Double ?? 0 > 1.7e12)

        // The same figures as swift-metrics gauges.
        let dimensions = [("participant", "stats-user")]
        let gauge = try metrics.expectGauge("peerd_rtp_packets_received", dimensions)
        #expect((gauge.lastValue ?? 0) > 100)
        #expect(try metrics.expectGauge("peerd_connected", dimensions).lastValue == 1)
        #expect(try metrics.expectGauge("peerd_rtp_packets_sent", dimensions).lastValue ?? 0 > 100)
        #expect(try metrics.expectGauge("peerd_round_trip_time_seconds", dimensions).lastValue != nil)

        await participant.leave()
        // Leaving removes the participant from the current statistics; the file keeps its final figures.
        try await Self.waitFor(seconds: 5) { await room.bot.statistics().isEmpty }
        #expect(await room.bot.statistics().isEmpty)
        try await Task.sleep(for: .milliseconds(700))
        let later = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: room.directory + "/stats.json"))) as? [String: Any])
        #expect((later["connections"] as? [Any])?.isEmpty == true)
        let closed = try #require((later["closedConnections"] as? [[String: Any]])?.first)
        #expect(closed["participant"] as? String == "stats-user" && closed["connectionState"] as? String == "closed")
        #expect(((closed["inboundRtp"] as? [String: Any])?["packetsReceived"] as? Int ?? 0) >= received)
        await room.close()
    }
}

@Suite struct MDNSLookupTests {
    @Test func resolvesAPublishedNameAndTimesOutOnAnUnknownOne() async throws {
        let responder = try LoopbackMDNSResponder()
        defer { responder.stop() }
        let name = "\(UUID().uuidString.lowercased()).local"
        try responder.publish(name)
        // Answered before the timeout: a lookup that times out returns nil. (Timing the answer
        // itself, or an 800 ms timeout, failed now and then when the whole suite ran in parallel
        // on 2 cores: the responder's thread did not get to answer in time.)
        let lookup = MDNSLookup(addresses: [.v4(0x7F00_0001)], timeout: .seconds(5),
                                loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test.mdns"))
        let resolved = await lookup.resolve(name)
        #expect(resolved == .v4(0x7F00_0001))
        // Case-insensitive, answered from the cache.
        #expect(await lookup.resolve(name.uppercased()) == .v4(0x7F00_0001))
        await lookup.close()

        // A name nobody answers for: nil once the timeout is up.
        let short = MDNSLookup(addresses: [.v4(0x7F00_0001)], timeout: .milliseconds(800),
                               loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test.mdns"))
        let unknownStart = ContinuousClock.now
        let unknown = await short.resolve("\(UUID().uuidString.lowercased()).local")
        #expect(unknown == nil)
        let waited = ContinuousClock.now - unknownStart
        #expect(waited >= .milliseconds(700) && waited < .seconds(3), "gave up after \(waited)")
        #expect(await short.resolve("not a name..local") == nil)
        await short.close()
    }
}

/// `--mix`: the mixed room track holds every participant's tone while they send.
@Suite(.serialized) struct RoomMixBotTests {
    /// Magnitude of one frequency in a block of samples (one DFT bin, Goertzel).
    static func magnitude(_ samples: ArraySlice<Int16>, frequency: Double) -> Double {
        let coefficient = 2 * cos(2 * Double.pi * frequency / 48_000)
        var s1 = 0.0, s2 = 0.0
        for sample in samples {
            let s0 = Double(sample) + coefficient * s1 - s2
            s2 = s1
            s1 = s0
        }
        return sqrt(max(0, s1 * s1 + s2 * s2 - coefficient * s1 * s2)) / Double(samples.count)
    }

    /// The 20 ms ticks visit only the peers the bot sends to (the rest wait for the 100 ms
    /// housekeeping): each connected participant must still get every frame, 50 a second.
    @Test func everyParticipantGetsEveryFrame() async throws {
        let room = try await BotConnectionTests.startRoom()
        let first = try await SwiftParticipant.join(url: room.url, room: "general", id: "frames-a", options: .init(tone: 660))
        let second = try await SwiftParticipant.join(url: room.url, room: "general", id: "frames-b", options: .init(tone: 1_000))
        try await BotConnectionTests.waitFor(seconds: 15) {
            let heard = (await first.onLoop { $0.packetsReceived }, await second.onLoop { $0.packetsReceived })
            return heard.0 > 10 && heard.1 > 10
        }
        let start = ContinuousClock.now
        let before = (await first.onLoop { $0.packetsReceived }, await second.onLoop { $0.packetsReceived })
        try await Task.sleep(for: .seconds(3))
        let after = (await first.onLoop { $0.packetsReceived }, await second.onLoop { $0.packetsReceived })
        let expected = (ContinuousClock.now - start) / .milliseconds(20)
        // Frames only on the housekeeping ticks would be a fifth of them.
        #expect(Double(after.0 - before.0) >= expected * 0.9, "frames-a got \(after.0 - before.0) of \(expected)")
        #expect(Double(after.1 - before.1) >= expected * 0.9, "frames-b got \(after.1 - before.1) of \(expected)")
        await first.leave()
        await second.leave()
        await room.close()
    }

    @Test func mixedRoomTrackHoldsEveryParticipant() async throws {
        let room = try await BotConnectionTests.startRoom { options in
            options.mixRoom = true
            options.format = .wav
        }
        let first = try await SwiftParticipant.join(url: room.url, room: "general", id: "mix-a", options: .init(tone: 660))
        let second = try await SwiftParticipant.join(url: room.url, room: "general", id: "mix-b", options: .init(tone: 1_000))
        try await BotConnectionTests.waitFor(seconds: 20) {
            await room.bot.summaries().filter { $0.packetsReceived > 150 }.count == 2
        }
        #expect(await room.bot.summaries().filter { $0.packetsReceived > 150 }.count == 2, "both participants reached peerd")
        await first.leave()
        await second.leave()
        let directory = room.directory
        await room.bot.stop()
        let wav = try WAVReader.read(path: directory + "/room-mix.wav")
        #expect(wav.sampleRate == 48_000 && wav.channels == 1)
        // Somewhere in the file both tones sound together, each far above an absent frequency.
        var bothHeard = 0
        let block = 4_800
        var start = 0
        while start + block <= wav.samples.count {
            let slice = wav.samples[start..<(start + block)]
            let a = Self.magnitude(slice, frequency: 660), b = Self.magnitude(slice, frequency: 1_000)
            let absent = Self.magnitude(slice, frequency: 830)
            if a > 500, b > 500, absent < min(a, b) / 20 { bothHeard += 1 }
            start += block
        }
        #expect(bothHeard >= 20, "100 ms blocks with both tones: \(bothHeard) of \(wav.samples.count / block)")
        await room.close()
    }
}

@Suite struct EventsLogTests {
    /// A line after close (a late event during shutdown) or to a removed directory is dropped, not fatal.
    @Test func appendAfterCloseOrRemovalIsDroppedNotFatal() throws {
        let directory = NSTemporaryDirectory() + "peerd-events-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = EventsLog(directory: directory)
        log.append("join", participant: "a")
        log.close()
        log.append("leave", participant: "a")
        let lines = try String(contentsOfFile: directory + "/events.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("\"join\""))
    }
}
