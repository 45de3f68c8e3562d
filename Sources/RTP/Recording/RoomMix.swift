// The mixed room track: every participant's decoded audio on the room's aligned timeline, summed.
import Wire

/// The file format of a `RoomMixRecorder`.
public enum RoomMixFormat: Sendable, Equatable {
    /// 48 kHz 16-bit mono WAV.
    case wav
    /// Ogg Opus, mono, encoded by libopus at `bitrate` bits per second.
    case oggOpus(bitrate: Int)
}

/// Why a `RoomMixRecorder` failed.
public enum RoomMixError: Error, Equatable, Sendable {
    case wav(WAVError)
    case ogg(OggOpusError)
    case output(OggOutputError)
    case codec(OpusCodecError)
    /// `finish()` was called already.
    case finished
}

/// Counters of a `RoomMixRecorder`.
public struct RoomMixStatistics: Sendable, Equatable {
    /// Participants seen (a participant removed and seen again counts twice).
    public var participants = 0
    /// Packets decoded into the mix.
    public var packetsMixed = 0
    /// Packets that were not valid Opus: skipped.
    public var invalidPackets = 0
    /// Packets the participant's timeline dropped (late, or to track the sender's clock).
    public var droppedPackets = 0
    /// Decoded samples that arrived after the mix was written past their position (not mixed).
    public var lateSamples: Int64 = 0
    /// 20 ms frames of packet-loss concealment mixed in for lost packets.
    public var concealedFrames = 0
    /// Mixed samples outside the 16-bit range, clipped.
    public var clippedSamples: Int64 = 0
    /// Samples written to the file.
    public var samplesWritten: Int64 = 0
}

/// Records the room as one mono track: each participant's packets are placed on the room's
/// aligned timeline (a `RecordingTimeline` per participant with the room's `origin`, so drift,
/// DTX and loss are handled as in the per-participant files), decoded with loss concealment,
/// summed, clipped to 16 bits and written as WAV or Ogg Opus. Position 0 of the file is
/// `origin`, like every aligned per-participant file, so the tracks line up with the mix.
///
/// Feed packets in sequence order per participant (after a reorder buffer), and call
/// `tick(now:)` regularly (every 20–100 ms): the mix is written up to `now − holdback`, so
/// packets arriving up to `holdback` late are still mixed. Call `removeParticipant` when a
/// participant leaves and `finish()` at the end.
///
/// Not `Sendable`: owns Opus codecs and a file; use from one task or event loop.
public final class RoomMixRecorder {
    public let origin: MonotonicTime
    public let holdback: Duration
    public let format: RoomMixFormat
    public private(set) var statistics = RoomMixStatistics()
    /// Duration of the mix written so far, in seconds.
    public var durationSeconds: Double { Double(written) / 48_000 }

    private final class Track {
        var timeline: RecordingTimeline
        let decoder: OpusDecoder
        init(timeline: RecordingTimeline, decoder: OpusDecoder) {
            self.timeline = timeline
            self.decoder = decoder
        }
    }

    private enum Sink {
        case wav(WAVWriter)
        case ogg(OggOpusWriter, OpusEncoder, any OggOutput)
    }

    private static let frame = 960
    private let timelineConfiguration: RecordingTimelineConfiguration
    private var tracks: [String: Track] = [:]
    private let sink: Sink
    /// Samples written to the file (the mix position of `mix[mixStart]`).
    private var written: Int64 = 0
    /// Accumulated sums from `written` on.
    private var mix: [Int32] = []
    private var mixStart = 0
    private var frameBuffer = [Int16](repeating: 0, count: 960)
    private var isFinished = false
    /// How far ahead of the written position a packet may be placed (a bound on memory).
    private let maxAhead: Int64 = 48_000 * 60

    /// Creates the mix file. `origin` is the room's recording start (the same instant given to
    /// every participant's `RecordingTimelineConfiguration.origin` in aligned mode).
    /// For `.wav`, `path` is the file; for `.oggOpus`, an `OggFileOutput` is opened on it.
    public convenience init(path: String, format: RoomMixFormat, origin: MonotonicTime,
                            holdback: Duration = .seconds(1), serialNumber: UInt32 = 0x6D69_7821) throws(RoomMixError) {
        switch format {
        case .wav:
            let writer: WAVWriter
            do throws(WAVError) { writer = try WAVWriter(path: path, sampleRate: 48_000, channels: 1) } catch { throw .wav(error) }
            self.init(sink: .wav(writer), format: format, origin: origin, holdback: holdback)
        case .oggOpus:
            let output: OggFileOutput
            do throws(OggOutputError) { output = try OggFileOutput(path: path) } catch { throw .output(error) }
            try self.init(oggOutput: output, bitrate: { if case .oggOpus(let b) = format { b } else { 32_000 } }(),
                          origin: origin, holdback: holdback, serialNumber: serialNumber)
        }
    }

    /// Writes the mix as Ogg Opus to `oggOutput` (a file, or memory in tests).
    public convenience init(oggOutput: any OggOutput, bitrate: Int = 32_000, origin: MonotonicTime,
                            holdback: Duration = .seconds(1), serialNumber: UInt32 = 0x6D69_7821) throws(RoomMixError) {
        let encoder: OpusEncoder
        let writer: OggOpusWriter
        do throws(OpusCodecError) {
            encoder = try OpusEncoder(channels: 1, application: .audio)
            try encoder.setBitrate(bitrate)
        } catch { throw .codec(error) }
        let lookahead: Int
        do throws(OpusCodecError) { lookahead = try encoder.lookahead() } catch { throw .codec(error) }
        do throws(OggOpusError) {
            writer = try OggOpusWriter(output: oggOutput, head: OpusHead(channelCount: 1, preSkip: UInt16(clamping: lookahead)),
                                       tags: OpusTags(vendor: "peerd room mix"), serialNumber: serialNumber, flushInterval: 48_000)
        } catch { throw .ogg(error) }
        self.init(sink: .ogg(writer, encoder, oggOutput), format: .oggOpus(bitrate: bitrate), origin: origin, holdback: holdback)
    }

    private init(sink: Sink, format: RoomMixFormat, origin: MonotonicTime, holdback: Duration) {
        self.sink = sink
        self.format = format
        self.origin = origin
        self.holdback = max(.zero, holdback)
        timelineConfiguration = RecordingTimelineConfiguration(origin: origin)
    }

    /// Participants currently mixed.
    public var participantIDs: [String] { tracks.keys.sorted() }

    /// Mixes a received Opus packet of participant `id` (any stable key: the room's participant
    /// id). Invalid Opus is counted and skipped.
    public func receive(participant id: String, ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp,
                        payload: [UInt8], arrival: MonotonicTime) throws(RoomMixError) {
        guard !isFinished else { throw .finished }
        guard let samples = try? OpusPacketInfo.validatedSampleCount(payload), samples > 0 else {
            statistics.invalidPackets += 1
            return
        }
        let track: Track
        if let existing = tracks[id] {
            track = existing
        } else {
            // Mono decoder: stereo packets are down-mixed by libopus.
            let decoder: OpusDecoder
            do throws(OpusCodecError) { decoder = try OpusDecoder(channels: 1) } catch { throw .codec(error) }
            track = Track(timeline: RecordingTimeline(configuration: timelineConfiguration), decoder: decoder)
            tracks[id] = track
            statistics.participants += 1
        }
        var position = track.timeline.position
        let placement = track.timeline.place(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                             samples: samples, arrival: arrival)
        guard placement.write else {
            statistics.droppedPackets += 1
            return
        }
        if placement.newSegment { try? track.decoder.reset() }
        var conceal = placement.concealSamples
        var fill = placement.fillSamples
        while fill >= Self.frame {
            if conceal >= Self.frame, let pcm = try? track.decoder.decodeLoss(samples: Self.frame) {
                add(pcm, at: position)
                statistics.concealedFrames += 1
                conceal -= Self.frame
            }
            position += Int64(Self.frame)
            fill -= Self.frame
        }
        if let pcm = try? track.decoder.decode(payload) {
            add(pcm, at: position)
            statistics.packetsMixed += 1
        } else if let pcm = try? track.decoder.decodeLoss(samples: samples) {
            add(pcm, at: position)
            statistics.concealedFrames += 1
        }
    }

    /// Mixes a parsed RTP packet of participant `id`.
    public func receive(participant id: String, _ packet: RTPPacket, arrival: MonotonicTime) throws(RoomMixError) {
        try receive(participant: id, ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                    payload: Array(packet.payload), arrival: arrival)
    }

    /// Forgets a participant who left (a later packet of the same id starts a new track).
    public func removeParticipant(_ id: String) {
        tracks[id] = nil
    }

    /// Writes the mix up to `now − holdback` (whole 20 ms frames; silence where nobody spoke).
    public func tick(now: MonotonicTime) throws(RoomMixError) {
        guard !isFinished else { throw .finished }
        for track in tracks.values { _ = track.timeline.fillIdle(now: now) }
        let open = now - holdback
        guard open > origin else { return }
        let target = Int64((Double((open - origin).nanosecondsClamped) / 1e9 * 48_000).rounded(.down))
        try write(upTo: target / Int64(Self.frame) * Int64(Self.frame))
    }

    /// Writes everything mixed so far (up to the furthest participant's end) and closes the file.
    public func finish() throws(RoomMixError) {
        guard !isFinished else { return }
        var end = written + Int64(mix.count - mixStart)
        for track in tracks.values { end = max(end, track.timeline.position) }
        let frame = Int64(Self.frame)
        try write(upTo: (end + frame - 1) / frame * frame)
        isFinished = true
        switch sink {
        case .wav(let writer):
            do throws(WAVError) { try writer.finalize() } catch { throw .wav(error) }
        case .ogg(let writer, let encoder, let output):
            // One more frame pushes the encoder's lookahead out; the end trim drops it again.
            if written > 0 {
                let last: [UInt8]
                do throws(OpusCodecError) { last = try encoder.encode([Int16](repeating: 0, count: Self.frame)) } catch { throw .codec(error) }
                do throws(OggOpusError) {
                    try writer.write(packet: last, samples: Self.frame)
                    try writer.finish(playableSamples: written)
                } catch { throw .ogg(error) }
            } else {
                do throws(OggOpusError) { try writer.finish() } catch { throw .ogg(error) }
            }
            if let file = output as? OggFileOutput {
                do throws(OggOutputError) { try file.close() } catch { throw .output(error) }
            }
        }
    }

    // MARK: Mixing

    private func add(_ pcm: [Int16], at position: Int64) {
        var skip = 0
        var offset = position - written
        if offset < 0 {
            skip = Int(min(Int64(pcm.count), -offset))
            statistics.lateSamples += Int64(skip)
            offset = 0
        }
        guard skip < pcm.count else { return }
        guard offset <= maxAhead else {
            statistics.lateSamples += Int64(pcm.count)
            return
        }
        let start = mixStart + Int(offset)
        let end = start + pcm.count - skip
        if mix.count < end { mix.append(contentsOf: repeatElement(0, count: end - mix.count)) }
        mix.withUnsafeMutableBufferPointer { m in
            pcm.withUnsafeBufferPointer { p in
                var j = start
                for i in skip..<p.count {
                    m[j] &+= Int32(p[i])
                    j += 1
                }
            }
        }
    }

    private func write(upTo target: Int64) throws(RoomMixError) {
        while written + Int64(Self.frame) <= target {
            var clipped: Int64 = 0
            let available = max(0, min(Self.frame, mix.count - mixStart))
            mix.withUnsafeBufferPointer { m in
                frameBuffer.withUnsafeMutableBufferPointer { f in
                    for i in 0..<Self.frame {
                        let value = i < available ? m[mixStart + i] : 0
                        if value > Int32(Int16.max) {
                            f[i] = .max; clipped += 1
                        } else if value < Int32(Int16.min) {
                            f[i] = .min; clipped += 1
                        } else {
                            f[i] = Int16(value)
                        }
                    }
                }
            }
            statistics.clippedSamples += clipped
            mixStart += available
            if mixStart >= 48_000 * 4 || mixStart == mix.count {
                mix.removeFirst(mixStart)
                mixStart = 0
            }
            try emit(frameBuffer)
            written += Int64(Self.frame)
            statistics.samplesWritten = written
        }
    }

    private func emit(_ frame: [Int16]) throws(RoomMixError) {
        switch sink {
        case .wav(let writer):
            do throws(WAVError) { try writer.write(frame) } catch { throw .wav(error) }
        case .ogg(let writer, let encoder, _):
            let packet: [UInt8]
            do throws(OpusCodecError) { packet = try encoder.encode(frame) } catch { throw .codec(error) }
            do throws(OggOpusError) { try writer.write(packet: packet, samples: Self.frame) } catch { throw .ogg(error) }
        }
    }
}
