// Sending side of one audio RTP stream: Opus packetization (RFC 7587), pacing, RTCP sender reports.
import Wire

/// SplitMix64, a small seeded generator used for RTCP interval randomisation inside the cores.
struct RTPSplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// RFC 3550 §6.3 report interval: the minimum 5 s (halved for the first report), randomised to 0.5–1.5×.
enum RTCPInterval {
    static let minimumSeconds = 5.0

    static func next(first: Bool, using rng: inout RTPSplitMix64) -> Duration {
        let base = first ? minimumSeconds / 2 : minimumSeconds
        let factor = Double.random(in: 0.5...1.5, using: &rng)
        return .nanoseconds(Int64(base * factor * 1e9))
    }
}

/// The RFC 6464 level of a PCM frame: -dBov rounded, clamped to 0...127.
public func audioLevel(pcm: [Int16]) -> UInt8 {
    let dBov = AudioAnalysis.dBov(samples: pcm)
    return UInt8(min(127, max(0, (-dBov).rounded())))
}

/// Settings of an `RTPSendStream`.
public struct RTPSendStreamConfiguration: Sendable, Equatable {
    public var ssrc: SSRC
    public var payloadType: PayloadType
    /// The SDES CNAME sent in RTCP.
    public var cname: String
    /// The MID sent in the `sdes:mid` header extension, when `midExtensionID` is set.
    public var mid: String?
    /// Negotiated extmap id of `ssrc-audio-level`; nil to leave it out.
    public var audioLevelExtensionID: UInt8?
    /// Negotiated extmap id of `sdes:mid`; nil to leave it out.
    public var midExtensionID: UInt8?
    /// 48 kHz samples per frame (960 = 20 ms).
    public var frameSamples: Int
    /// RFC 5506: send SR alone (no SDES) between the compound reports.
    public var reducedSizeRTCP: Bool
    /// Send 1–2 byte Opus DTX packets (true) or skip them (false, the marker then flags the next talkspurt).
    public var sendDTXPackets: Bool
    /// Level (-dBov) at or above which a frame is flagged as voice in the audio-level extension.
    public var voiceActivityLevel: UInt8

    public init(ssrc: SSRC, payloadType: PayloadType = 111, cname: String, mid: String? = nil,
                audioLevelExtensionID: UInt8? = nil, midExtensionID: UInt8? = nil, frameSamples: Int = 960,
                reducedSizeRTCP: Bool = false, sendDTXPackets: Bool = false, voiceActivityLevel: UInt8 = 50) {
        self.ssrc = ssrc
        self.payloadType = payloadType
        self.cname = cname
        self.mid = mid
        self.audioLevelExtensionID = audioLevelExtensionID
        self.midExtensionID = midExtensionID
        self.frameSamples = max(120, frameSamples)
        self.reducedSizeRTCP = reducedSizeRTCP
        self.sendDTXPackets = sendDTXPackets
        self.voiceActivityLevel = voiceActivityLevel
    }
}

/// What the receivers last said about this stream.
public struct RTPSendStreamFeedback: Sendable, Equatable {
    /// The newest report block about this SSRC.
    public var reportBlock: RTCPReportBlock
    /// When it arrived.
    public var arrival: MonotonicTime
    /// Round-trip time from LSR/DLSR in seconds, when the block referenced one of our SRs.
    public var roundTripTime: Double?
}

/// The sending half of one audio RTP stream. Sans-IO: the caller passes the time, sends the
/// bytes it gets back, and hands in RTCP it receives.
///
/// Frame k is due at `start + k·frameDuration` (no drift from late calls) and carries RTP
/// timestamp `initialTimestamp + k·frameSamples`, so the RTP clock is tied to the monotonic clock.
public struct RTPSendStream: Sendable {
    public let configuration: RTPSendStreamConfiguration
    public let initialSequenceNumber: SequenceNumber
    public let initialTimestamp: RTPTimestamp
    /// Time of frame 0.
    public let start: MonotonicTime
    /// Frames consumed so far (sent or skipped).
    public private(set) var frameIndex: Int64 = 0
    /// The sequence number of the next packet.
    public private(set) var nextSequenceNumber: SequenceNumber
    /// RTP packets and payload octets sent (for SR).
    public private(set) var packetCount: UInt32 = 0
    public private(set) var octetCount: UInt32 = 0
    /// When the next RTCP report is due.
    public private(set) var nextReportTime: MonotonicTime
    /// RTCP reports sent so far (excluding the final BYE).
    public private(set) var reportsSent = 0
    public private(set) var feedback: RTPSendStreamFeedback?
    public private(set) var isClosed = false

    private var needsMarker = true
    private var rng: RTPSplitMix64

    public init(configuration: RTPSendStreamConfiguration, start: MonotonicTime,
                using generator: inout some RandomNumberGenerator) {
        self.configuration = configuration
        self.start = start
        initialSequenceNumber = SequenceNumber(UInt16.random(in: 0...UInt16.max, using: &generator))
        initialTimestamp = RTPTimestamp(UInt32.random(in: 0...UInt32.max, using: &generator))
        nextSequenceNumber = initialSequenceNumber
        rng = RTPSplitMix64(seed: UInt64.random(in: 0...UInt64.max, using: &generator))
        nextReportTime = start + RTCPInterval.next(first: true, using: &rng)
    }

    /// Duration of one frame.
    public var frameDuration: Duration { .nanoseconds(Int64(configuration.frameSamples) * 1_000_000_000 / 48_000) }

    /// When frame `index` is due.
    public func dueTime(ofFrame index: Int64) -> MonotonicTime {
        MonotonicTime(nanoseconds: start.nanoseconds &+ index &* Int64(configuration.frameSamples) &* 1_000_000_000 / 48_000)
    }

    /// When the next frame is due.
    public var nextFrameDue: MonotonicTime { dueTime(ofFrame: frameIndex) }

    /// The RTP timestamp of frame `index`.
    public func timestamp(ofFrame index: Int64) -> RTPTimestamp {
        initialTimestamp.advanced(by: index &* Int64(configuration.frameSamples))
    }

    /// The RTP timestamp that corresponds to monotonic time `time` (the media clock runs with the pacing).
    public func rtpTimestamp(at time: MonotonicTime) -> RTPTimestamp {
        let ns = time.nanoseconds &- start.nanoseconds
        let ticks = Int64((Double(ns) * 48_000 / 1e9).rounded())
        return initialTimestamp.advanced(by: ticks)
    }

    /// Packetizes the next Opus frame and returns the serialized RTP packet, or nil when the frame
    /// is not sent (a DTX packet with `sendDTXPackets` off, or after `close`). `pcm` (the frame's
    /// input audio) gives the audio level; pass nil to send level 127 (silence).
    /// The first packet after skipped frames (a talkspurt start) carries the marker bit.
    public mutating func packetize(opusFrame: [UInt8], pcm: [Int16]?) -> [UInt8]? {
        let level = pcm.map(audioLevel(pcm:)) ?? 127
        return packetize(opusFrame: opusFrame, level: level)
    }

    /// As `packetize(opusFrame:pcm:)` with a precomputed RFC 6464 level (0...127, -dBov).
    public mutating func packetize(opusFrame: [UInt8], level: UInt8) -> [UInt8]? {
        guard !isClosed else { return nil }
        let index = frameIndex
        frameIndex += 1
        let isDTX = opusFrame.count <= 2
        if opusFrame.isEmpty || (isDTX && !configuration.sendDTXPackets) {
            needsMarker = true
            return nil
        }
        var elements: [RTPHeaderExtensionElement] = []
        let clamped = min(level, 127)
        if let id = configuration.audioLevelExtensionID {
            let voice = clamped <= configuration.voiceActivityLevel && !isDTX
            elements.append(RTPHeaderExtensionElement(id: id, value: AudioLevelExtension(voiceActivity: voice, level: clamped)))
        }
        if let id = configuration.midExtensionID, let mid = configuration.mid, !mid.isEmpty {
            elements.append(RTPHeaderExtensionElement(id: id, value: SDESMidExtension(mid: mid)))
        }
        let ext = elements.isEmpty ? nil : try? RTPHeaderExtension(elements: elements)
        let packet = RTPPacket(marker: needsMarker, payloadType: configuration.payloadType,
                               sequenceNumber: nextSequenceNumber, timestamp: timestamp(ofFrame: index),
                               ssrc: configuration.ssrc, headerExtension: ext, payload: opusFrame[...])
        needsMarker = false
        nextSequenceNumber = nextSequenceNumber.advanced(by: 1)
        packetCount &+= 1
        octetCount &+= UInt32(truncatingIfNeeded: opusFrame.count)
        return packet.serialized()
    }

    /// Skips the next frame without sending (silence suppression); the next packet gets the marker.
    public mutating func skipFrame() {
        frameIndex += 1
        needsMarker = true
    }

    /// The sender report for `now` (wallclock `wallclock` at the same instant).
    public func senderReport(now: MonotonicTime, wallclock: NTPTime, reportBlocks: [RTCPReportBlock] = []) -> RTCPSenderReport {
        RTCPSenderReport(ssrc: configuration.ssrc, ntpTime: wallclock, rtpTimestamp: rtpTimestamp(at: now),
                         packetCount: packetCount, octetCount: octetCount, reportBlocks: Array(reportBlocks.prefix(31)))
    }

    private var sdes: RTCPPacket {
        .sourceDescription(RTCPSourceDescription(chunks: [
            RTCPSDESChunk(ssrc: configuration.ssrc, items: [RTCPSDESItem(type: .cname, text: configuration.cname)]),
        ]))
    }

    /// When a report is due at `now`, the RTCP to send (SR + SDES CNAME, or SR alone in
    /// reduced-size mode except every fourth report), and schedules the next one; else nil.
    public mutating func pollRTCP(now: MonotonicTime, wallclock: NTPTime, reportBlocks: [RTCPReportBlock] = []) -> [UInt8]? {
        guard !isClosed, now >= nextReportTime else { return nil }
        var packets: [RTCPPacket] = [.senderReport(senderReport(now: now, wallclock: wallclock, reportBlocks: reportBlocks))]
        if !configuration.reducedSizeRTCP || reportsSent % 4 == 0 { packets.append(sdes) }
        reportsSent += 1
        nextReportTime = now + RTCPInterval.next(first: false, using: &rng)
        return try? RTCPCompoundPacket(packets: packets).serialized()
    }

    /// Closes the stream: the final compound SR + SDES + BYE. Later packetize calls return nil.
    public mutating func close(now: MonotonicTime, wallclock: NTPTime, reason: String? = nil) -> [UInt8] {
        isClosed = true
        let bye = RTCPGoodbye(ssrcs: [configuration.ssrc], reason: reason.map { Array($0.utf8.prefix(255)) })
        let compound = RTCPCompoundPacket(packets: [
            .senderReport(senderReport(now: now, wallclock: wallclock)), sdes, .goodbye(bye),
        ])
        return (try? compound.serialized()) ?? []
    }

    /// Reads received RTCP (RR or SR report blocks about this SSRC) and updates `feedback`,
    /// computing the round-trip time from LSR/DLSR against `wallclock` (the arrival time).
    /// Returns true when a block about this stream was found.
    @discardableResult
    public mutating func receiveRTCP(_ packets: [RTCPPacket], arrival: MonotonicTime, wallclock: NTPTime) -> Bool {
        var found = false
        for packet in packets {
            let blocks: [RTCPReportBlock]
            switch packet {
            case .receiverReport(let rr): blocks = rr.reportBlocks
            case .senderReport(let sr): blocks = sr.reportBlocks
            default: continue
            }
            for block in blocks where block.ssrc == configuration.ssrc {
                let rtt = NTPTime.roundTripTime(arrival: wallclock, lastSR: block.lastSR,
                                                delaySinceLastSR: block.delaySinceLastSR)
                feedback = RTPSendStreamFeedback(reportBlock: block, arrival: arrival, roundTripTime: rtt)
                found = true
            }
        }
        return found
    }

    /// Parses and reads a received RTCP datagram; malformed datagrams are ignored (returns false).
    @discardableResult
    public mutating func receiveRTCP(bytes: [UInt8], arrival: MonotonicTime, wallclock: NTPTime) -> Bool {
        guard let compound = try? RTCPCompoundPacket(parsing: bytes) else { return false }
        return receiveRTCP(compound.packets, arrival: arrival, wallclock: wallclock)
    }
}
