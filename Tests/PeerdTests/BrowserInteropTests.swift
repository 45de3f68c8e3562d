import Foundation
import Logging
import Signaling
import Testing
@testable import peerd

/// peerd against real browsers beyond one or two Chromium pages: Firefox ESR, a three-Chromium mesh
/// with glare, and one room session that goes through leave/rejoin, mute/unmute, speaking, a room
/// server restart and a tab that dies. Every test checks both directions: what each page hears from
/// peerd (dominant frequency) and what peerd recorded from each page (dominant frequency, duration).
@Suite(.serialized) struct BrowserInteropTests {
    /// Everything peerd recorded, by participant id (a participant may have several files).
    static func recordings(_ summaries: [PeerSummary]) -> [String: [RecordedTrack]] {
        var result: [String: [RecordedTrack]] = [:]
        var seen = Set<String>()
        for summary in summaries {
            guard let path = summary.recording, seen.insert(path).inserted else { continue }
            result[summary.id, default: []].append(RecordedTrack(
                participantID: summary.id, path: path, analysis: RecordingAnalysis.analyze(path: path),
                finalized: Interop.oggIsFinalized(path: path)))
        }
        return result
    }

    /// Pages hear peerd (and, in a mesh, each other) and peerd receives every page.
    static func audioFlows(room: InteropRoom, bot: RoomBot, pages: [BrowserPage], mesh: Bool = false) async -> Bool {
        let reports = await room.reports()
        let summaries = await bot.summaries()
        for page in pages {
            guard let report = reports[page.name], Interop.near(report.heardHz(Interop.peerdID), Interop.peerdTone) else { return false }
            guard summaries.contains(where: { $0.id == report.id && $0.phase == "connected" && $0.packetsReceived > 150 }) else { return false }
            if mesh {
                for other in pages where other.name != page.name {
                    guard let otherID = reports[other.name]?.id, Interop.near(report.heardHz(otherID), other.toneHz) else { return false }
                }
            }
        }
        return true
    }

    /// Packets peerd received from each present participant now, then whether each gained `packets` within a second.
    static func peerdIsReceiving(bot: RoomBot, ids: [String], packets: Int = 25) async -> Bool {
        let before = Dictionary(await bot.summaries().filter { $0.phase == "connected" }.map { ($0.id, $0.packetsReceived) }, uniquingKeysWith: max)
        try? await Task.sleep(for: .seconds(1))
        let after = Dictionary(await bot.summaries().filter { $0.phase == "connected" }.map { ($0.id, $0.packetsReceived) }, uniquingKeysWith: max)
        return ids.allSatisfy { id in (after[id] ?? 0) - (before[id] ?? 0) >= packets }
    }

    /// Whether every page's getStats shows peerd's reception reports about the page's audio
    /// (remote-inbound-rtp with a round-trip time: a report block whose LSR/DLSR answer the page's SR).
    static func pagesSeePeerdsReports(room: InteropRoom, pages: [BrowserPage]) async -> Bool {
        let reports = await room.reports()
        return pages.allSatisfy { page in
            guard let inbound = reports[page.name]?.peers?[Interop.peerdID]?.remoteInbound else { return false }
            return (inbound.roundTripTimeMeasurements ?? 0) >= 1 && (inbound.roundTripTime ?? 0) > 0
        }
    }

    /// Checks both directions for `pages` at the end of a session and prints the table.
    static func checkBothDirections(case name: String, pages: [BrowserPage], reports: [String: PageStatus],
                                    summaries: [PeerSummary], mesh: Bool = false) {
        let recorded = recordings(summaries)
        HeardTable.print(case: name, pages: pages, reports: reports, recordings: recorded, pagesChecked: mesh)
        for page in pages {
            guard let report = reports[page.name] else {
                Issue.record("\(page.label) never reported to the room server")
                continue
            }
            let heard = report.heardHz(Interop.peerdID)
            #expect(Interop.near(heard, Interop.peerdTone), "\(page.label) hears peerd's 440 Hz tone (heard \(heard.map { "\(Int($0)) Hz" } ?? "nothing"))")
            let tracks = recorded[report.id] ?? []
            let best = tracks.first { Interop.near($0.analysis?.dominantHz, page.toneHz) }
            #expect(best != nil, "peerd recorded \(page.label) (recordings: \(tracks.map { "\($0.path): \($0.analysis?.dominantHz ?? 0) Hz" }))")
            #expect((best?.analysis?.audibleSeconds ?? 0) >= 1.5, "at least 1.5 s of \(page.label) recorded")
            let allFinalized = tracks.allSatisfy { $0.finalized }
            #expect(allFinalized, "peerd finalized every recording of \(page.label)")
            if mesh {
                for other in pages where other.name != page.name {
                    guard let otherID = reports[other.name]?.id else { continue }
                    let hz = report.heardHz(otherID)
                    #expect(Interop.near(hz, other.toneHz), "\(page.label) hears \(other.label) (heard \(hz.map { "\(Int($0)) Hz" } ?? "nothing"))")
                }
            }
        }
    }

    // MARK: Firefox

    /// Firefox ESR (trickle, real host candidates) joins first and offers to peerd when peerd joins.
    @Test func firefoxAndPeerd() async throws {
        _ = try BrowserPage.require(.firefox)
        let started = ContinuousClock.now
        let directory = Interop.temporaryDirectory("peerd-firefox-interop")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let room = try await InteropRoom()
        let firefox = try BrowserPage.firefox(name: "firefox", toneHz: 660, url: room.pageURL(name: "firefox"))
        var failed = false
        defer { firefox.stop(printLogTail: failed) }
        _ = await Interop.waitUntil("Firefox joined the room", timeout: .seconds(30)) { await room.reports()["firefox"]?.joined == true }
        let capture = LogCapture()
        let (bot, botTask) = try Interop.startBot(port: room.port, directory: directory, logger: capture.logger)
        let flowing = await Interop.waitUntil("audio both ways with Firefox", timeout: .seconds(40)) {
            await Self.audioFlows(room: room, bot: bot, pages: [firefox])
        }
        #expect(flowing, "audio flows both ways between Firefox and peerd")
        if flowing { try await Task.sleep(for: .seconds(3)) }
        // peerd sends; its sender reports carry the report block about Firefox's audio.
        let reportsSeen = await Interop.waitUntil("Firefox shows peerd's report blocks with a round-trip time", timeout: .seconds(15)) {
            await Self.pagesSeePeerdsReports(room: room, pages: [firefox])
        }
        let firefoxInbound = await room.reports()["firefox"]?.peers?[Interop.peerdID]?.remoteInbound
        print("[interop] Firefox's remote-inbound-rtp for peerd: \(String(describing: firefoxInbound))")
        #expect(reportsSeen, "Firefox's remote-inbound-rtp shows peerd's report blocks: \(String(describing: firefoxInbound))")
        let reports = await room.reports()
        #expect(reports["firefox"]?.seenSpeaking?[Interop.peerdID] == true, "Firefox showed peerd speaking")
        await bot.stop()
        botTask.cancel()
        let summaries = await bot.summaries()
        #expect(summaries.filter { $0.id == reports["firefox"]?.id }.count == 1, "peerd kept exactly one connection with Firefox")
        Self.checkBothDirections(case: "Firefox ESR + peerd (peerd joins last, trickle)", pages: [firefox], reports: reports, summaries: summaries)
        failed = !flowing
        await room.shutdown()
        print("[interop] firefoxAndPeerd took \(Interop.seconds(ContinuousClock.now - started)) s")
    }

    // MARK: A listen-only peerd

    /// peerd as a pure recorder (sends no audio) with one Chromium page: the page's getStats shows
    /// peerd's RTCP receiver reports about the page's audio (remote-inbound-rtp with a round-trip
    /// time from LSR/DLSR, no loss on loopback), the page hears nothing, and peerd records the page.
    @Test func listenOnlyPeerdReportsReceptionToChromium() async throws {
        _ = try BrowserPage.require(.chromium)
        let started = ContinuousClock.now
        let directory = Interop.temporaryDirectory("peerd-listen-only-interop")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let room = try await InteropRoom()
        let page = try BrowserPage.chromium(name: "chr-listened", toneHz: 660, url: room.pageURL(name: "chr-listened"))
        var failed = false
        defer { page.stop(printLogTail: failed) }
        _ = await Interop.waitUntil("Chromium joined the room", timeout: .seconds(30)) { await room.reports()[page.name]?.joined == true }
        let (bot, botTask) = try Interop.startBot(port: room.port, audio: .silence, directory: directory)
        let reported = await Interop.waitUntil("Chromium shows peerd's receiver reports with a round-trip time", timeout: .seconds(40)) {
            guard let id = await room.reports()[page.name]?.id,
                  await bot.summaries().contains(where: { $0.id == id && $0.packetsReceived > 150 }) else { return false }
            return await Self.pagesSeePeerdsReports(room: room, pages: [page])
        }
        #expect(reported, "Chromium's remote-inbound-rtp shows peerd's receiver reports (with LSR/DLSR) while peerd records it")
        let reports = await room.reports()
        let status = reports[page.name]
        let inbound = status?.peers?[Interop.peerdID]?.remoteInbound
        print("[interop] listen-only peerd, Chromium's remote-inbound-rtp: \(String(describing: inbound))")
        #expect(inbound?.roundTripTime.map { $0 > 0 && $0 < 0.5 } == true,
                "a loopback round-trip time from peerd's reports (got \(String(describing: inbound?.roundTripTime)) s)")
        #expect(inbound?.packetsLost == 0, "no loss reported on loopback (got \(String(describing: inbound?.packetsLost)))")
        #expect(status?.heardHz(Interop.peerdID) == nil, "the page hears nothing from a peerd that sends nothing")
        await bot.stop()
        botTask.cancel()
        let tracks = Self.recordings(await bot.summaries())[status?.id ?? ""] ?? []
        let best = tracks.first { Interop.near($0.analysis?.dominantHz, page.toneHz) }
        print("[interop] listen-only peerd recorded \(page.label): \(tracks.map { "\($0.path): \($0.analysis?.dominantHz.map { "\(Int($0)) Hz" } ?? "nothing") for \(String(format: "%.1f", $0.analysis?.audibleSeconds ?? 0)) s" })")
        #expect(best != nil, "peerd recorded the page's 660 Hz tone")
        #expect((best?.analysis?.audibleSeconds ?? 0) >= 1.5, "at least 1.5 s of the page recorded")
        #expect(tracks.allSatisfy { $0.finalized }, "the recording is finalized")
        failed = !reported
        await room.shutdown()
        print("[interop] listenOnlyPeerdReportsReceptionToChromium took \(Interop.seconds(ContinuousClock.now - started)) s")
    }

    // MARK: Three Chromium pages

    /// peerd and three Chromium pages in a full mesh: every page offers to everyone it sees, peerd
    /// offers at once too (offer delay 0), so offers cross (glare) between pages and with peerd. Two
    /// pages trickle, the third sends full SDP.
    @Test func threeChromiumsMeshWithGlare() async throws {
        _ = try BrowserPage.require(.chromium)
        let started = ContinuousClock.now
        let directory = Interop.temporaryDirectory("peerd-mesh-interop")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let room = try await InteropRoom()
        let capture = LogCapture()
        let (bot, botTask) = try Interop.startBot(port: room.port, directory: directory, offerDelay: .zero, logger: capture.logger)
        _ = await Interop.waitUntil("peerd joined", timeout: .seconds(10)) { await room.server.health().users >= 1 }
        var pages: [BrowserPage] = []
        for (index, tone) in [660.0, 880.0, 1100.0].enumerated() {
            let name = "chr\(index + 1)"
            // chr3 sends full SDP (no trickle), the others trickle.
            pages.append(try BrowserPage.chromium(name: name, toneHz: tone, url: room.pageURL(name: name, trickle: index != 2)))
        }
        var failed = false
        defer { for page in pages { page.stop(printLogTail: failed) } }
        let flowing = await Interop.waitUntil("audio both ways in the 4-way mesh", timeout: .seconds(60)) {
            await Self.audioFlows(room: room, bot: bot, pages: pages, mesh: true)
        }
        #expect(flowing, "every page hears peerd and every other page; peerd receives every page")
        if flowing { try await Task.sleep(for: .seconds(3)) }
        let reportsSeen = await Interop.waitUntil("every page shows peerd's report blocks with a round-trip time", timeout: .seconds(15)) {
            await Self.pagesSeePeerdsReports(room: room, pages: pages)
        }
        #expect(reportsSeen, "each page's remote-inbound-rtp shows peerd's report blocks")
        let reports = await room.reports()
        let peerdGlares = capture.count(containing: "glare with")
        let pageGlares = reports.values.reduce(0) { $0 + ($1.glares ?? 0) }
        print("[interop] glare: peerd rolled back \(peerdGlares) offer(s); pages saw \(pageGlares) crossing offer(s)")
        #expect(peerdGlares + pageGlares >= 1, "offers crossed at least once (glare was exercised)")
        let live = await bot.summaries()
        for page in pages {
            guard let id = reports[page.name]?.id else { continue }
            #expect(live.filter { $0.id == id && $0.phase == "connected" }.count == 1, "peerd has exactly one working connection with \(page.name)")
            #expect(reports[page.name]?.seenSpeaking?[Interop.peerdID] == true, "\(page.name) showed peerd speaking")
        }
        await bot.stop()
        botTask.cancel()
        Self.checkBothDirections(case: "three Chromium pages + peerd (mesh, glare; chr3 full SDP)", pages: pages, reports: reports,
                                 summaries: await bot.summaries(), mesh: true)
        failed = !flowing
        await room.shutdown()
        print("[interop] threeChromiumsMeshWithGlare took \(Interop.seconds(ContinuousClock.now - started)) s")
    }

    // MARK: One room session through everything that happens to a call

    /// Two Chromium pages and peerd in one session: speaking shown; peerd muted then unmuted; a page
    /// leaves and rejoins; the room server restarts; a tab dies without leaving.
    @Test func roomLifecycleWithChromium() async throws {
        _ = try BrowserPage.require(.chromium)
        let started = ContinuousClock.now
        let directory = Interop.temporaryDirectory("peerd-lifecycle-interop")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let room = try await InteropRoom()
        let capture = LogCapture()
        let (bot, botTask) = try Interop.startBot(port: room.port, directory: directory, logger: capture.logger)
        _ = await Interop.waitUntil("peerd joined", timeout: .seconds(10)) { await room.server.health().users >= 1 }
        let chr1 = try BrowserPage.chromium(name: "chr1", toneHz: 660, url: room.pageURL(name: "chr1", control: true))
        let chr2 = try BrowserPage.chromium(name: "chr2", toneHz: 880, url: room.pageURL(name: "chr2", control: true))
        let pages = [chr1, chr2]
        var failed = false
        defer { for page in pages { page.stop(printLogTail: failed) } }
        func fail(_ ok: Bool) -> Bool { if !ok { failed = true }; return ok }

        // 1. Steady audio both ways; peerd's говорит reached both pages.
        let flowing = await Interop.waitUntil("audio both ways with two pages", timeout: .seconds(45)) {
            await Self.audioFlows(room: room, bot: bot, pages: pages)
        }
        #expect(fail(flowing), "audio flows both ways with both pages")
        let reports = await room.reports()
        guard let id1 = reports["chr1"]?.id, let id2 = reports["chr2"]?.id else {
            Issue.record("the pages did not report their ids")
            failed = true
            await bot.stop(); botTask.cancel(); await room.shutdown()
            return
        }
        // peerd announced говорит when its tone started, before the pages joined: they see it in the participant list.
        for page in pages {
            #expect(reports[page.name]?.seenSpeaking?[Interop.peerdID] == true, "\(page.name) showed peerd speaking")
        }

        // 2. peerd muted: both pages see микрофон-переключен (off), peerd goes quiet and stops speaking; then unmuted.
        await bot.setMuted(true)
        let mutedSeen = await Interop.waitUntil("pages saw peerd muted and hear silence", timeout: .seconds(15)) {
            let reports = await room.reports()
            return pages.allSatisfy { page in
                guard let report = reports[page.name] else { return false }
                return report.microphoneAnnounced?[Interop.peerdID]?.last == false && report.microphones?[Interop.peerdID] == false
                    && report.heardHz(Interop.peerdID) == nil && report.speakingAnnounced?[Interop.peerdID]?.last == false
            }
        }
        #expect(fail(mutedSeen), "both pages saw peerd's microphone off (микрофон-переключен), its говорит=false, and hear silence")
        await bot.setMuted(false)
        let unmutedSeen = await Interop.waitUntil("pages saw peerd unmuted and hear it again", timeout: .seconds(15)) {
            let reports = await room.reports()
            return pages.allSatisfy { page in
                guard let report = reports[page.name] else { return false }
                return report.microphoneAnnounced?[Interop.peerdID]?.last == true && report.microphones?[Interop.peerdID] == true
                    && Interop.near(report.heardHz(Interop.peerdID), Interop.peerdTone)
                    && report.speakingAnnounced?[Interop.peerdID]?.last == true
            }
        }
        #expect(fail(unmutedSeen), "both pages saw peerd's microphone on again, its говорит=true, and hear 440 Hz again")

        // 3. chr1 leaves: peerd closes that connection and finalizes the file; chr1 rejoins (same id):
        //    peerd connects again and records the new session to a new file, keeping the first.
        await room.command("chr1", "leave")
        let closed = await Interop.waitUntil("peerd closed chr1's connection after it left", timeout: .seconds(15)) {
            let summaries = await bot.summaries()
            return !summaries.contains { $0.id == id1 && $0.phase != "closed" } && summaries.contains { $0.id == id1 && $0.phase == "closed" }
        }
        #expect(fail(closed), "peerd closed the connection of a participant who left")
        let firstSession = await bot.summaries().first { $0.id == id1 && $0.phase == "closed" }?.recording
        if let firstSession {
            #expect(Interop.oggIsFinalized(path: firstSession), "chr1's file is finalized when it leaves")
            #expect(Interop.near(RecordingAnalysis.analyze(path: firstSession)?.dominantHz, 660), "chr1's first recording holds its 660 Hz tone")
        } else {
            Issue.record("peerd has no recording of chr1 before it left")
        }
        await room.command("chr1", "join")
        let rejoined = await Interop.waitUntil("chr1 rejoined and audio flows both ways again", timeout: .seconds(30)) {
            await Self.audioFlows(room: room, bot: bot, pages: pages)
        }
        #expect(fail(rejoined), "after leaving and rejoining, chr1 and peerd hear each other again")
        let afterRejoin = await bot.summaries()
        #expect(afterRejoin.filter { $0.id == id1 && $0.phase == "connected" }.count == 1, "one working connection with chr1 after it rejoined")
        let secondSession = afterRejoin.first { $0.id == id1 && $0.phase == "connected" }?.recording
        #expect(secondSession != nil && secondSession != firstSession, "the rejoined session is recorded to a new file (\(secondSession ?? "none")), the first (\(firstSession ?? "none")) is kept")

        // 4. chr2 starts over on a fresh RTCPeerConnection (new ICE credentials and certificate) without
        //    leaving: peerd answers it and ends with one working connection with chr2.
        let chr2FileBefore = await bot.summaries().first { $0.id == id2 && $0.phase == "connected" }?.recording
        await room.command("chr2", "reoffer", to: Interop.peerdID)
        let reoffered = await Interop.waitUntil("chr2's fresh connection carries audio both ways", timeout: .seconds(30)) {
            let reports = await room.reports()
            guard reports["chr2"]?.connected(to: Interop.peerdID) == true, await Self.audioFlows(room: room, bot: bot, pages: pages) else { return false }
            return await Self.peerdIsReceiving(bot: bot, ids: [id1, id2])
        }
        #expect(fail(reoffered), "after chr2 offered again on a fresh connection, peerd and chr2 hear each other again")
        let chr2AfterReoffer = await bot.summaries().filter { $0.id == id2 && $0.phase == "connected" }
        #expect(chr2AfterReoffer.count == 1, "one working connection with chr2 after its fresh offer")
        // peerd answers the new offer on the participant's existing connection (new ICE credentials and DTLS):
        // the recording goes on in the same file.
        #expect(chr2FileBefore != nil && chr2AfterReoffer.first?.recording == chr2FileBefore, "chr2's recording continues in \(chr2FileBefore ?? "none")")

        // 5. The room server restarts mid-call: everyone reconnects and rejoins, connections come back, audio flows again.
        let packetsBefore = Dictionary(await bot.summaries().map { ($0.id, $0.packetsReceived) }, uniquingKeysWith: max)
        try await room.restartServer(downFor: .seconds(3))
        print("[interop] room server was down for 3 s (reconnects refused), restarted on port \(room.port)")
        let restored = await Interop.waitUntil("connections restored after the room server restart", timeout: .seconds(60)) {
            guard await Self.audioFlows(room: room, bot: bot, pages: pages) else { return false }
            let reports = await room.reports()
            // The pages' reports are fresh (the new server started empty) and they hear peerd again.
            guard pages.allSatisfy({ reports[$0.name]?.joined == true }) else { return false }
            return await Self.peerdIsReceiving(bot: bot, ids: [id1, id2])
        }
        #expect(fail(restored), "after the room server restarted, peerd and both pages hear each other again")
        let afterRestart = await bot.summaries()
        for id in [id1, id2] {
            #expect(afterRestart.filter { $0.id == id && $0.phase == "connected" }.count == 1, "one working connection with \(id) after the restart")
        }
        print("[interop] packets from the pages before the restart: \(packetsBefore.filter { [id1, id2].contains($0.key) })")

        // 6. Bad input from a participant in the call: chr2 sends broken SDP, an offer without DTLS-SRTP, one
        //    with no codec in common, a flood of broken offers and garbage candidates. peerd refuses each
        //    with a log line and keeps both connections. (Done late in the session: peerd then drops chr2's
        //    offers for the rest of its 10 s flood window, even a legitimate one.)
        let logBefore = capture.all().count
        await room.command("chr2", "garbage", to: Interop.peerdID)
        let refusals = { capture.all().dropFirst(logBefore).filter { $0.contains("refused the offer of \(id2)") } }
        let floodCut = { capture.all().dropFirst(logBefore).contains { $0.contains("\(id2) sends too many offers") } }
        // 23 offers: each is refused with a reason, or, past the flood limit, dropped (one line says so).
        let refused = await Interop.waitUntil("peerd refused chr2's hostile offers", timeout: .seconds(15)) {
            refusals().count >= 23 || (refusals().count >= 3 && floodCut())
        }
        #expect(fail(refused), "peerd refused each hostile offer or cut the flood (\(refusals().count) refused, flood cut: \(floodCut()))")
        for reason in ["malformedLine", "missingFingerprint", "noCommonCodec"] {
            #expect(refusals().contains { $0.contains(reason) }, "the refusal says why: \(reason)")
        }
        let unharmed = await Interop.waitUntil("audio still flows both ways after the hostile offers", timeout: .seconds(10)) {
            guard await Self.audioFlows(room: room, bot: bot, pages: pages) else { return false }
            return await Self.peerdIsReceiving(bot: bot, ids: [id1, id2])
        }
        #expect(fail(unharmed), "hostile offers from chr2 disturb neither chr2's nor chr1's connection")
        #expect(await bot.summaries().filter { $0.id == id2 && $0.phase == "connected" }.count == 1, "still one working connection with chr2")

        // 7. chr2's tab dies (browser killed, no leave): the room server sees the socket close, peerd closes
        //    and finalizes chr2's file; chr1 keeps its connection.
        chr2.kill()
        let dropped = await Interop.waitUntil("peerd closed the dead tab's connection", timeout: .seconds(30)) {
            !(await bot.summaries()).contains { $0.id == id2 && $0.phase != "closed" }
        }
        #expect(fail(dropped), "peerd closed the connection of a participant whose tab died")
        let chr2Files = await bot.summaries().filter { $0.id == id2 }.compactMap(\.recording)
        let chr2Finalized = !chr2Files.isEmpty && chr2Files.allSatisfy { Interop.oggIsFinalized(path: $0) }
        #expect(chr2Finalized, "chr2's files are finalized after its tab died: \(chr2Files)")
        let chr1Still = await Self.peerdIsReceiving(bot: bot, ids: [id1])
        #expect(fail(chr1Still), "chr1's connection is unaffected by chr2's death")

        // 8. peerd stops; the table and both directions for each page.
        let finalReports = await room.reports()
        await bot.stop()
        botTask.cancel()
        let summaries = await bot.summaries()
        Self.checkBothDirections(case: "two Chromium pages + peerd through mute, leave/rejoin, server restart, dead tab",
                                 pages: pages, reports: finalReports, summaries: summaries)
        // A participant who leaves and rejoins gets a new file (<id>-2.ogg); the first is kept. After the room
        // server restart it depends on who rejoins first: if peerd does, the room looks empty, it closes
        // (and finalizes) every connection and records the pages' new connections to new files; if the
        // pages do, peerd answers their fresh offers on the existing connections and the files continue.
        let recorded = Self.recordings(summaries)
        let chr1Tracks = recorded[id1] ?? [], chr2Tracks = recorded[id2] ?? []
        let chr1Kept = chr1Tracks.count >= 2 && chr1Tracks.allSatisfy { Interop.near($0.analysis?.dominantHz, 660) && $0.finalized }
        #expect(chr1Kept, "chr1's sessions before and after rejoining are kept, finalized, each with its 660 Hz tone: \(chr1Tracks.map(\.path))")
        let chr2Kept = !chr2Tracks.isEmpty && chr2Tracks.allSatisfy { Interop.near($0.analysis?.dominantHz, 880) && $0.finalized }
        #expect(chr2Kept, "chr2's recordings are kept, finalized, with its 880 Hz tone: \(chr2Tracks.map(\.path))")
        let restartPath = chr1Tracks.count >= 3 ? "peerd rejoined first: new connections, new files" : "pages rejoined first: same connections, files continued"
        print("[interop] after the room server restart: \(restartPath)")
        let events = (try? String(contentsOfFile: directory + "/events.jsonl", encoding: .utf8)) ?? ""
        if failed { print("[interop] events.jsonl:\n" + events) }
        for event in ["\"event\":\"join\"", "\"event\":\"leave\"", "\"event\":\"mute\"", "\"event\":\"unmute\"", "\"event\":\"signaling-reconnected\""] {
            #expect(events.contains(event), "events.jsonl has \(event)")
        }
        await room.shutdown()
        print("[interop] roomLifecycleWithChromium took \(Interop.seconds(ContinuousClock.now - started)) s")
    }
}
