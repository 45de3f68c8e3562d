// Per-participant recorders: Ogg Opus pass-through (no re-encoding) and decoded WAV.
import Wire

/// Opus "silence" frames: a 20 ms CELT frame that decodes to silence (TOC config 31, code 0).
public enum OpusSilence {
    /// 20 ms of silence for `channels` (1 or 2).
    public static func frame20ms(channels: Int = 1) -> [UInt8] {
        [channels == 2 ? 0xFC : 0xF8, 0xFF, 0xFE]
    }
}

/// Counters of a recorder.
public struct RecorderStatistics: Sendable, Equatable {
    public var packetsWritten = 0
    public var silenceFrames = 0
    public var concealedFrames = 0
    /// Packets that were not valid Opus (bad TOC or framing): skipped.
    public var invalidPackets = 0
    /// Packets dropped by the timeline (late, or to track the sender's clock).
    public var droppedPackets = 0
}

/// Records one remote participant to Ogg Opus without re-encoding: received packets are passed
/// through, gaps (DTX, loss, stalls) become Opus silence frames of the right length, and the
/// `RecordingTimeline` keeps the file on the receiver's wallclock. Pages are flushed at least
/// once per second of audio and on `tick` once per second of wallclock.
///
/// Not `Sendable`: use from one task at a time.
public final class OggOpusRecorder {
    public let channels: Int
    // Unchecked exclusivity on the three below: every packet reads or updates them, and the runtime
    // check the optimizer would keep on each access costs a call per access. No two accesses can
    // overlap: they are set only here, by assignment, an increment or a call on the value
    // (`RecordingTimeline` is a value type that calls nothing back).
    @exclusivity(unchecked) public private(set) var timeline: RecordingTimeline
    @exclusivity(unchecked) public private(set) var statistics = RecorderStatistics()
    /// Wallclock at timeline position 0 as seen by the receiver (first packet or room start).
    @exclusivity(unchecked) public private(set) var startWallclock: NTPTime?
    /// Wallclock at position 0 on the sender's clock, refined from sender reports.
    public private(set) var senderStartWallclock: NTPTime?

    private let writer: OggOpusWriter
    private let silence: [UInt8]
    private var lastFlush: MonotonicTime?

    /// Writes the Ogg Opus headers to `output` at once. `preSkip` is that of the remote encoder
    /// (libopus: 312).
    public init(output: any OggOutput, channels: Int = 1, preSkip: UInt16 = 312, serialNumber: UInt32,
                timeline configuration: RecordingTimelineConfiguration = RecordingTimelineConfiguration(),
                tags: OpusTags = OpusTags(vendor: "peerd")) throws(OggOpusError) {
        self.channels = channels == 2 ? 2 : 1
        silence = OpusSilence.frame20ms(channels: self.channels)
        writer = try OggOpusWriter(output: output, head: OpusHead(channelCount: self.channels, preSkip: preSkip),
                                   tags: tags, serialNumber: serialNumber, flushInterval: 48_000)
        timeline = RecordingTimeline(configuration: configuration, initialPosition: -Int64(preSkip))
    }

    /// Adds what recording the next packet touches: this recorder and its writer.
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        hints.add(self, bytes: 384)
        writer.addPrefetchHints(&hints)
    }

    /// Decoded duration of the file so far in seconds (what a reader's last granule gives).
    public var durationSeconds: Double { Double(timeline.position) / 48_000 }

    /// Records a received packet. `wallclock` is the receiver's wallclock at `arrival` (it sets
    /// `startWallclock` on the first packet). Invalid Opus is counted and skipped.
    public func receive(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp, payload: [UInt8],
                        arrival: MonotonicTime, wallclock: NTPTime? = nil) throws(OggOpusError) {
        try receive(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp, payload: payload[...],
                    arrival: arrival, wallclock: wallclock)
    }

    /// Records a received packet whose payload is a slice (of its datagram: not copied until paged).
    public func receive(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp, payload: ArraySlice<UInt8>,
                        arrival: MonotonicTime, wallclock: NTPTime? = nil) throws(OggOpusError) {
        // Mono and stereo packets may share a stream: Opus decoders up- or down-mix to the file's channel count.
        guard let samples = try? OpusPacketInfo.validatedSampleCount(payload), samples > 0 else {
            statistics.invalidPackets += 1
            return
        }
        let placement = timeline.place(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                       samples: samples, arrival: arrival)
        if startWallclock == nil, let wallclock, let origin = timeline.origin {
            startWallclock = NTPTime(secondsSince1900: wallclock.secondsSince1900 - (arrival - origin).seconds)
        }
        if lastFlush == nil { lastFlush = arrival }
        guard placement.write else {
            statistics.droppedPackets += 1
            return
        }
        try writeFill(placement.fillSamples, concealed: placement.concealSamples)
        try writer.write(packet: payload, samples: samples)
        statistics.packetsWritten += 1
    }

    /// Records a parsed RTP packet.
    public func receive(_ packet: RTPPacket, arrival: MonotonicTime, wallclock: NTPTime? = nil) throws(OggOpusError) {
        try receive(ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                    payload: packet.payload, arrival: arrival, wallclock: wallclock)
    }

    /// Uses a sender report to refine `senderStartWallclock`.
    public func receiveSenderReport(_ report: RTCPSenderReport) {
        if let start = timeline.senderWallclockAtOrigin(senderReport: report) { senderStartWallclock = start }
    }

    /// Call periodically: fills silence while no packets arrive and flushes pages once a second.
    public func tick(now: MonotonicTime) throws(OggOpusError) {
        try writeFill(timeline.fillIdle(now: now), concealed: 0)
        if let last = lastFlush, now - last >= .seconds(1) {
            try writer.flush()
            lastFlush = now
        }
    }

    /// Writes the last page (EOS). The recorder cannot be used afterwards.
    public func finish() throws(OggOpusError) {
        try writer.finish()
    }

    private func writeFill(_ samples: Int, concealed: Int) throws(OggOpusError) {
        var remaining = samples
        var conceal = concealed
        while remaining >= 960 {
            try writer.write(packet: silence[...], samples: 960)
            remaining -= 960
            if conceal >= 960 { statistics.concealedFrames += 1; conceal -= 960 } else { statistics.silenceFrames += 1 }
        }
    }
}

/// Why a `WAVRecorder` failed.
public enum WAVRecorderError: Error, Equatable, Sendable {
    case wav(WAVError)
    case codec(OpusCodecError)
}

/// Records one remote participant to a 48 kHz 16-bit WAV file: packets are decoded, losses
/// concealed with Opus PLC, DTX gaps written as silence; the same timeline as `OggOpusRecorder`.
///
/// Not `Sendable`: use from one task at a time.
public final class WAVRecorder {
    public let channels: Int
    public private(set) var timeline: RecordingTimeline
    public private(set) var statistics = RecorderStatistics()

    private let writer: WAVWriter
    private let decoder: OpusDecoder
    private let zeros: [Int16]

    /// `createInBackground`: the file is created off the calling thread (`WAVWriter(creatingInBackground:...)`).
    public init(path: String, channels: Int = 1, createInBackground: Bool = false,
                timeline configuration: RecordingTimelineConfiguration = RecordingTimelineConfiguration()) throws(WAVRecorderError) {
        self.channels = channels == 2 ? 2 : 1
        do throws(OpusCodecError) { decoder = try OpusDecoder(channels: self.channels) } catch { throw .codec(error) }
        do throws(WAVError) {
            writer = createInBackground
                ? try WAVWriter(creatingInBackground: path, sampleRate: 48_000, channels: self.channels)
                : try WAVWriter(path: path, sampleRate: 48_000, channels: self.channels)
        } catch { throw .wav(error) }
        zeros = [Int16](repeating: 0, count: 960 * self.channels)
        timeline = RecordingTimeline(configuration: configuration)
    }

    /// Records a received packet (invalid Opus is counted and skipped).
    public func receive(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp, payload: [UInt8],
                        arrival: MonotonicTime) throws(WAVRecorderError) {
        guard let info = try? OpusPacketInfo.parse(payload), info.totalSamples > 0 else {
            statistics.invalidPackets += 1
            return
        }
        let placement = timeline.place(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                       samples: info.totalSamples, arrival: arrival)
        guard placement.write else {
            statistics.droppedPackets += 1
            return
        }
        if placement.newSegment { try? decoder.reset() }
        try writeFill(placement.fillSamples, concealed: placement.concealSamples)
        let pcm = (try? decoder.decode(payload)) ?? (try? decoder.decodeLoss(samples: info.totalSamples))
            ?? [Int16](repeating: 0, count: info.totalSamples * channels)
        try write(pcm)
        statistics.packetsWritten += 1
    }

    /// Fills silence while no packets arrive.
    public func tick(now: MonotonicTime) throws(WAVRecorderError) {
        try writeFill(timeline.fillIdle(now: now), concealed: 0)
    }

    /// Finalizes the WAV header.
    public func finish() throws(WAVRecorderError) {
        do throws(WAVError) { try writer.finalize() } catch { throw .wav(error) }
    }

    private func write(_ pcm: [Int16]) throws(WAVRecorderError) {
        do throws(WAVError) { try writer.write(pcm) } catch { throw .wav(error) }
    }

    private func writeFill(_ samples: Int, concealed: Int) throws(WAVRecorderError) {
        var remaining = samples
        var conceal = concealed
        while remaining >= 960 {
            if conceal >= 960, let pcm = try? decoder.decodeLoss(samples: 960) {
                try write(pcm)
                conceal -= 960
                statistics.concealedFrames += 1
            } else {
                try write(zeros)
                statistics.silenceFrames += 1
            }
            remaining -= 960
        }
    }
}
