import DTLS
import Foundation
import ICE
import PeerConnection
import RTP
import Wire

/// What peerd keeps per remote participant: the connection, the streams, the recorder and the
/// talk detector. Confined to the bot's event loop.
final class RemotePeer {
    enum Phase: String { case waitingForOffer, offering, answering, connected, closed }

    let id: String
    /// `<safe-id>`, or `<safe-id>-2`, `-3`… when an earlier session of the same participant (a leave and
    /// rejoin, a room server restart) already has a file: a rejoin never truncates a finalized recording.
    private(set) var fileName: String
    var phase: Phase = .waitingForOffer
    /// Speaking detection from the levels of this participant's packets (inline state: declared
    /// early, so it lies in the first lines of the object, which the prefetch hints cover).
    @exclusivity(unchecked) var talk = TalkDetector()
    var driver: PeerConnectionDriver?
    /// Signals that arrived while the driver was being created.
    var pendingSignals: [PendingSignal] = []
    var offerDeadline: MonotonicTime
    var offerAttempts = 0
    /// When an offer or answer went out: if not connected by then, the negotiation is started over.
    var connectDeadline: MonotonicTime?
    var restarts = 0
    var sendStream: RTPSendStream?
    /// While nothing is sent to this participant (no send stream): its receiver reports.
    var receiverReports: RTCPReceiverReportSchedule?
    // Unchecked exclusivity on the receive stream (and the talk detector above): every packet updates
    // them through a mutating call, which otherwise costs a runtime check each. Both are value types
    // that call nothing back, and only the bot's loop touches a peer, so no two accesses overlap.
    @exclusivity(unchecked) var receiveStream = RTPReceiveStream()
    /// The Ogg recorder, lent unretained to `record` (`HeldReference`): it is replaced only by
    /// `openRecorder` and `finishRecording`, never while `record` runs (the recorder calls nothing back).
    var oggRecorder = HeldReference<OggOpusRecorder>()
    var wavRecorder: WAVRecorder?
    /// Whether a packet was recorded, and whether one brought an audio level, since the last
    /// housekeeping tick: while packets flow, recording and talk detection already happen per packet
    /// (the writer pages by itself once a second), so the tick has nothing to add for this peer.
    var recordedSinceHousekeeping = false
    var levelSinceHousekeeping = false
    var speaking = false
    var firstAudioAt: MonotonicTime?
    var packetsReceived = 0
    var payloadBytesReceived = 0
    var lastLevel: UInt8 = 127
    var recordingError: String?
    var recorderOpened = false
    /// When the last RTP packet arrived (the monotonic time the receive path already has), for getStats'
    /// lastPacketReceivedTimestamp: converted to the wallclock when statistics are read, not per packet.
    var lastPacketAt: MonotonicTime?
    /// `<uuid>.local` candidates resolved, and dropped because nobody answered for them.
    var mdnsResolved = 0
    var mdnsDropped = 0
    /// ICE restart after consent was lost or ICE failed: when the next attempt is due, when the
    /// current one is given up (no new pair by then), and how many were made.
    var iceRestartDue: MonotonicTime?
    var iceRestartDeadline: MonotonicTime?
    var iceRestartAttempts = 0
    /// Offers received in the current 10 s window (flood protection).
    var offerWindowStart = MonotonicTime.now()
    var offersInWindow = 0
    /// The newest offer that came over the flood limit: answered when the window ends.
    var deferredOffer: String?

    enum PendingSignal {
        case offer(String)
        case answer(String)
        case candidate(String)
        case endOfCandidates
    }

    /// Which of the bot's peer objects this is: a participant who rejoins, or a connection started
    /// over, gets a new `RemotePeer` with the same `id`; the events of the old one's driver, still
    /// arriving while it closes, carry the old serial and are dropped, not applied to the new one.
    let serial: Int

    init(id: String, offerDeadline: MonotonicTime, serial: Int = 0) {
        self.id = id
        self.serial = serial
        self.fileName = SafeFileName.from(participantID: id)
        self.offerDeadline = offerDeadline
    }

    var core: PeerConnectionCore? { driver?.core }

    /// Housekeeping visits (10 a second) while connected.
    var housekeepingVisits = 0

    /// Whether the `visit`-th housekeeping visit (from 1) refreshes the prefetch hints: visits 1, 11,
    /// …, 91, then 101, 201, ….
    static func refreshesPrefetchHints(atVisit visit: Int) -> Bool {
        visit % (visit <= 100 ? 10 : 100) == 1
    }

    /// On a shared port (`--port`), tells the port what this participant's next packet touches (see
    /// `PrefetchHints`): the connection's objects, this peer (its talk detector inline), its recorder.
    /// Once a second for the first ten seconds connected, while the SRTP stream and the recorder's
    /// buffers are set up and grow to their size, then every ten seconds (a recorder keeps its
    /// buffers from page to page; a stale hint costs only a wasted prefetch).
    func refreshPrefetchHints() {
        housekeepingVisits += 1
        guard Self.refreshesPrefetchHints(atVisit: housekeepingVisits), let driver else { return }
        driver.refreshPrefetchHints { [self] hints in
            hints.add(self, bytes: 512)
            oggRecorder.object?.addPrefetchHints(&hints)
        }
    }

    /// Opens the recording file on the first packet (so a participant who never sends writes nothing).
    func openRecorder(directory: String?, format: RecordFormat, stereo: Bool) {
        // Once: a file finalized at leave/stop is never reopened (that would truncate it).
        guard let directory, !recorderOpened, phase != .closed else { return }
        recorderOpened = true
        let suffix = format == .ogg ? ".ogg" : ".wav"
        let base = fileName
        var session = 1
        while FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(fileName + suffix)) {
            session += 1
            fileName = "\(base)-\(session)"
        }
        let path = (directory as NSString).appendingPathComponent(fileName + suffix)
        do {
            switch format {
            case .ogg:
                // Created off the event loop: creating a file can stall for milliseconds.
                let output = OggFileOutput(creatingInBackground: path)
                oggRecorder.object = try OggOpusRecorder(output: output, channels: stereo ? 2 : 1, serialNumber: UInt32.random(in: 1...UInt32.max))
            case .wav:
                wavRecorder = try WAVRecorder(path: path, channels: stereo ? 2 : 1, createInBackground: true)
            }
        } catch {
            recordingError = "\(error)"
        }
    }

    func record(_ packet: RTPPacket, now: MonotonicTime) {
        do {
            try oggRecorder.withObject { recorder in
                // The wallclock only dates the file's start: read the clock until it has.
                let wallclock = recorder.startWallclock == nil ? NTPTime(unixSeconds: Date().timeIntervalSince1970) : nil
                try recorder.receive(packet, arrival: now, wallclock: wallclock)
            }
            if let wavRecorder {
                try wavRecorder.receive(ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                                        payload: Array(packet.payload), arrival: now)
            }
        } catch {
            recordingError = "\(error)"
        }
    }

    func tickRecorder(now: MonotonicTime) {
        do {
            try oggRecorder.object?.tick(now: now)
            try wavRecorder?.tick(now: now)
        } catch {
            recordingError = "\(error)"
        }
    }

    /// Finalizes the file; returns what went wrong, if anything.
    @discardableResult
    func finishRecording() -> String? {
        var failure: String?
        do { try oggRecorder.object?.finish() } catch { failure = "\(error)" }
        do { try wavRecorder?.finish() } catch { failure = "\(error)" }
        oggRecorder.object = nil
        wavRecorder = nil
        return failure
    }
}

enum RecordFormat: String, Sendable {
    case ogg, wav
}
