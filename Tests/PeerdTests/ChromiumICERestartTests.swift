import Foundation
import ICE
import Logging
import NIOPosix
import Signaling
import Testing
@testable import peerd

/// peerd restarts ICE toward a real headless Chromium page (as it does when consent is lost): the
/// page answers the restart offer on the same RTCPeerConnection, a new pair is selected, DTLS and
/// SRTP stay, and audio keeps flowing both ways.
@Suite(.serialized) struct ChromiumICERestartTests {
    func events(_ directory: String) -> [[String: String]] {
        guard let text = try? String(contentsOfFile: directory + "/events.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
    }

    func waitFor(seconds: Double, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test(arguments: [true, false])
    func chromiumAnswersPeerdsICERestart(trickle: Bool) async throws {
        guard let chromium = Chromium.find() else {
            Issue.record("Chromium is not installed: run scripts/setup.sh --with-test-tools (apt-get install chromium)")
            return
        }
        let directory = NSTemporaryDirectory() + "peerd-chromium-restart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = RoomServer(configuration: .init(host: "127.0.0.1", port: 0))
        let serverTask = Task { try await server.run() }
        let port = try #require(await server.waitUntilListening())
        var options = RoomBotOptions(url: "ws://127.0.0.1:\(port)/ws", room: "general", name: "peerd", id: "peerd-test")
        options.recordDirectory = directory
        options.audio = .tone(440)
        options.trickle = trickle
        options.offerDelay = .seconds(8)
        options.interfaces = InterfaceFilter(includeLoopback: true, onlyAddresses: [IPAddress("127.0.0.1")!])
        options.statsInterval = .zero
        let bot = try RoomBot(options: options, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test.peerd"))
        let botTask = Task { await bot.run() }
        let url = "http://127.0.0.1:\(port)/?autojoin=1&processing=0&name=chr1&room=general&trickle=\(trickle ? 1 : 0)"
        let page = try Chromium.start(binary: chromium, url: url, toneHz: 660)
        defer { _ = page.stop() }

        try await waitFor(seconds: 30) {
            (await bot.statistics().first?.inboundRtp?.packetsReceived ?? 0) > 150 && (page.heardFrequencies()["peerd-test"] ?? 0) > 0
        }
        let before = try #require(await bot.statistics().first)
        #expect(before.dtlsConnected && (before.inboundRtp?.packetsReceived ?? 0) > 150, "connected to Chromium before the restart")
        let localBefore = before.candidatePair?.local.address

        #expect(await bot.restartICE(participant: before.participant))
        try await waitFor(seconds: 15) { events(directory).contains { $0["event"] == "ice-restarted" } }
        #expect(events(directory).contains { $0["event"] == "ice-restart" && $0["participant"] == before.participant })
        #expect(events(directory).contains { $0["event"] == "ice-restarted" && $0["participant"] == before.participant },
                "Chromium answered the restart offer and a new pair was selected")

        let receivedAtRestart = await bot.statistics().first?.inboundRtp?.packetsReceived ?? 0
        try await Task.sleep(for: .seconds(3))
        let after = try #require(await bot.statistics().first)
        print("ICE restart with Chromium (trickle \(trickle)): lost \(after.inboundRtp?.packetsLost ?? -1), dropped from unknown sources \(after.droppedUnknownSource - before.droppedUnknownSource), SRTP failures \(after.srtpFailures), jitter \(after.inboundRtp?.jitter ?? -1) s")
        // One restart offer, answered. (Once, in a CI run with the whole suite, the page did not answer
        // the first offer and peerd's retry after its restart timeout completed it: 2. The page counts
        // the offers it ignored as glares, which tells that case apart from one peerd got wrong.)
        #expect(after.iceRestarts == 1, "restart offers: \(after.iceRestarts); page glares: \(page.lastStatus()?["glares"] ?? 0); the page's log:\n\(page.pageLog())")
        // Chromium (controlling) may send from a validated pair other than the one peerd selected;
        // peerd keeps accepting media from every address the old generation validated until the new
        // one selects a pair. Before that, 7-26 packets (0.1-0.5 s) were dropped over each restart.
        let dropped = after.droppedUnknownSource - before.droppedUnknownSource
        #expect(after.srtpFailures == 0 && dropped <= 3, "no media dropped over the restart (dropped \(dropped))")
        #expect(after.dtlsConnected && after.connectionState == "connected")
        #expect(after.candidatePair?.local.address == localBefore)
        #expect((after.inboundRtp?.packetsReceived ?? 0) > receivedAtRestart + 100, "peerd still hears Chromium after the restart")
        #expect((after.inboundRtp?.packetsLost ?? 99) <= 3, "lost \(after.inboundRtp?.packetsLost ?? -1) packets over the restart")
        #expect(page.peerStates()["peerd-test"] == "connected", "the page's connection stayed up")
        #expect(abs((page.heardFrequencies()["peerd-test"] ?? 0) - 440) <= 25, "Chromium still hears peerd's 440 Hz")
        #expect(events(directory).filter { $0["event"] == "connected" }.count == 1, "no new DTLS handshake")
        #expect(!events(directory).contains { $0["event"] == "renegotiating" || $0["event"] == "connection-failed" })

        await bot.stop()
        botTask.cancel()
        await server.shutdown()
        serverTask.cancel()
    }
}
