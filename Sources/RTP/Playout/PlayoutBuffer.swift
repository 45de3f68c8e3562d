// Adaptive playout buffer for live Opus audio out (sans-IO, NetEq-style).
import Wire

/// Settings of a `PlayoutBuffer`.
public struct PlayoutConfiguration: Sendable, Equatable {
    /// Samples per channel returned by each `pull(now:)` (480 = 10 ms, 960 = 20 ms).
    public var tickSamples: Int
    /// 1 (mono) or 2 (interleaved stereo).
    public var channels: Int
    /// Target-delay estimation (histogram, clamps, start target).
    public var delay: ArrivalDelayEstimator.Configuration
    /// Buffered audio above this is flushed down to the target (no unbounded growth).
    public var maxBuffered: Duration
    /// Crossfade length at splice points, in samples per channel.
    public var crossfadeSamples: Int
    /// Samples per channel inserted by one expansion step (a multiple of 120).
    public var expansionSamples: Int
    /// RMS (Int16 scale) below which a frame counts as low-energy (a cheap place to splice).
    public var lowEnergyRMS: Double
    /// Splice decisions wait this many frames for a low-energy frame before splicing anyway.
    public var maxSpliceDeferral: Int
    /// A timestamp step this far from both the sequence-number and arrival-time expectations
    /// is a timestamp jump (the stream is rebased instead of treated as loss or DTX).
    public var jumpThreshold: Duration

    public init(tickSamples: Int = 960, channels: Int = 1,
                delay: ArrivalDelayEstimator.Configuration = .init(),
                maxBuffered: Duration = .seconds(2), crossfadeSamples: Int = 120,
                expansionSamples: Int = 480, lowEnergyRMS: Double = 330, maxSpliceDeferral: Int = 25,
                jumpThreshold: Duration = .seconds(1)) {
        self.tickSamples = max(120, tickSamples / 120 * 120)
        self.channels = channels == 2 ? 2 : 1
        self.delay = delay
        self.delay.leadTime = .nanoseconds(ArrivalDelayEstimator.nanoseconds(samples: Int64(self.tickSamples)))
        self.maxBuffered = maxBuffered
        self.crossfadeSamples = max(1, crossfadeSamples)
        self.expansionSamples = max(120, expansionSamples / 120 * 120)
        self.lowEnergyRMS = lowEnergyRMS
        self.maxSpliceDeferral = maxSpliceDeferral
        self.jumpThreshold = jumpThreshold
    }
}

/// Counters and levels of a `PlayoutBuffer`, in the spirit of WebRTC's `getStats` (inbound-rtp).
public struct PlayoutStatistics: Sendable, Equatable {
    /// How far the playhead lags the fastest-arrival timeline (the delay the buffer adds).
    public var currentDelayMs: Double = 0
    /// The delay the buffer steers toward.
    public var targetDelayMs: Double = 0
    /// Audio held in the buffer (decoded and not yet played, plus packets ahead).
    public var bufferedMs: Double = 0
    /// Samples per channel produced by packet-loss concealment for missing packets.
    public var concealedSamples: Int64 = 0
    /// Runs of consecutive concealment.
    public var concealmentEvents: Int64 = 0
    /// Samples per channel recovered from in-band FEC of the following packet.
    public var fecRecoveredSamples: Int64 = 0
    /// Samples per channel inserted to grow the buffer (expansion).
    public var insertedSamplesForDeceleration: Int64 = 0
    /// Samples per channel removed to shrink the buffer (acceleration, shortened silence).
    public var removedSamplesForAcceleration: Int64 = 0
    /// Samples per channel of silence: before playout starts, DTX gaps, silent underruns.
    public var silentSamples: Int64 = 0
    /// Packets that arrived after their play time.
    public var latePackets: Int64 = 0
    /// Packets dropped: duplicates, unparsable payloads, flushed on overflow or reset.
    public var discardedPackets: Int64 = 0
    /// Packets received twice (also counted in `discardedPackets`).
    public var duplicatePackets: Int64 = 0
    /// Times the buffer overflowed and was flushed down to the target.
    public var bufferFlushes: Int64 = 0
    /// SSRC changes (full resets).
    public var ssrcChanges: Int64 = 0
    /// Timestamp jumps (stream rebased).
    public var timestampJumps: Int64 = 0
    /// Samples per channel of accepted packets.
    public var totalSamplesReceived: Int64 = 0
    /// Samples per channel returned by `pull(now:)`.
    public var totalSamplesPlayed: Int64 = 0
    /// Sum over decoded samples of (play time − arrival time), in seconds × samples.
    public var jitterBufferDelaySeconds: Double = 0
    /// Samples counted in `jitterBufferDelaySeconds`.
    public var jitterBufferEmittedCount: Int64 = 0

    /// Mean arrival-to-playout time of decoded audio, in milliseconds.
    public var averageJitterBufferDelayMs: Double {
        jitterBufferEmittedCount == 0 ? 0 : jitterBufferDelaySeconds / Double(jitterBufferEmittedCount) * 1000
    }
}

/// What `PlayoutBuffer.insert` did with a packet.
public enum PlayoutInsertResult: Sendable, Equatable {
    case buffered
    /// Already received (same sequence number or timestamp).
    case duplicate
    /// Its play time has passed.
    case late
    /// The payload is not a valid Opus packet.
    case invalid
}

/// An adaptive jitter buffer that turns Opus RTP packets into a steady 48 kHz PCM stream.
///
/// Sans-IO: `insert` packets as they arrive and `pull` one tick of audio per output period,
/// passing the time in. The target delay follows the arrival-delay distribution
/// (`ArrivalDelayEstimator`); the buffer steers toward it by dropping frames (acceleration)
/// or inserting concealment (expansion), preferring low-energy frames, with crossfades at
/// splices. Missing packets are concealed (Opus PLC) or recovered from the next packet's FEC;
/// DTX gaps (timestamp gap with consecutive sequence numbers) play as silence.
///
/// Owns an `OpusDecoder`, so it is not `Sendable`: use it from one task or event loop.
public final class PlayoutBuffer {
    private struct Entry {
        var sequence: Int64
        var timestamp: Int64
        var duration: Int
        var payload: [UInt8]
        var arrival: MonotonicTime
        var hasFEC: Bool
        var isDTX: Bool
    }

    private struct Received {
        var sequence: Int64 = .min
        var timestamp: Int64 = 0
        var duration: Int = 0
    }

    public let configuration: PlayoutConfiguration
    private let decoder: OpusDecoder
    private var estimator: ArrivalDelayEstimator
    private var statistics = PlayoutStatistics()

    private var ssrc: SSRC?
    private var sequenceUnwrapper = SequenceUnwrapper()
    private var timestampUnwrapper = TimestampUnwrapper()
    private var timestampOffset: Int64 = 0
    private var last: (sequence: Int64, timestamp: Int64, duration: Int, arrival: MonotonicTime)?
    private var recent = [Received](repeating: Received(), count: 1024)

    private var packets: [Entry] = []
    private var started = false
    /// Timestamp of the next sample to produce (after everything in `pending`).
    private var decodeTimestamp: Int64 = 0
    /// Produced, not yet played interleaved samples.
    private var pending: [Int16] = []
    private var lastDecodedSequence: Int64?
    private var lastDuration = 960
    private var lastLowEnergy = true
    private var lastWasDTX = false
    private var concealing = false
    /// True while the output is silence (DTX gap, silent underrun): the playhead may move back.
    private var inSilence = false
    /// Timestamp just after the last decoded or concealed audio.
    private var audioEnd: Int64 = .min
    private var needsSplice = false
    private var accelerationDeferrals = 0
    private var expansionDeferrals = 0

    public init(configuration: PlayoutConfiguration = PlayoutConfiguration()) throws(OpusCodecError) {
        self.configuration = configuration
        decoder = try OpusDecoder(channels: configuration.channels)
        estimator = ArrivalDelayEstimator(configuration: configuration.delay)
        statistics.targetDelayMs = Double(estimator.targetNanoseconds) / 1e6
    }

    /// Counters and current levels.
    public var stats: PlayoutStatistics {
        var result = statistics
        result.targetDelayMs = Double(estimator.targetNanoseconds) / 1e6
        result.bufferedMs = Double(bufferedSamples) / 48
        return result
    }

    // MARK: Insert

    /// Adds a received RTP packet carrying Opus.
    @discardableResult
    public func insert(packet: RTPPacket, arrival: MonotonicTime) -> PlayoutInsertResult {
        insert(ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
               payload: Array(packet.payload), arrival: arrival)
    }

    /// Adds a received Opus payload with its RTP header fields.
    @discardableResult
    public func insert(ssrc: SSRC, sequenceNumber: SequenceNumber, timestamp: RTPTimestamp, payload: [UInt8],
                       arrival: MonotonicTime) -> PlayoutInsertResult {
        guard let info = try? OpusPacketInfo.parse(payload), info.totalSamples > 0 else {
            statistics.discardedPackets += 1
            return .invalid
        }
        if self.ssrc != ssrc {
            if self.ssrc != nil { resetForNewSource() }
            self.ssrc = ssrc
        }
        let sequence = sequenceUnwrapper.unwrap(sequenceNumber)
        var extended = timestampUnwrapper.unwrap(timestamp) &+ timestampOffset
        let duration = info.totalSamples

        let slot = Int(truncatingIfNeeded: sequence & 1023)
        if recent[slot].sequence == sequence {
            statistics.duplicatePackets += 1
            statistics.discardedPackets += 1
            return .duplicate
        }

        if let last {
            let threshold = configuration.jumpThreshold.nanosecondsClamped / 1_000_000 * 48
            let step = extended - last.timestamp
            let bySequence = (sequence - last.sequence) * Int64(last.duration)
            let byArrival = (arrival - last.arrival).nanosecondsClamped * 48 / 1_000_000
            if abs(step - bySequence) > threshold && abs(step - byArrival) > threshold {
                // An older packet from before a jump cannot be placed: drop it.
                guard sequence > last.sequence else {
                    statistics.discardedPackets += 1
                    return .invalid
                }
                let shift = last.timestamp + bySequence - extended
                timestampOffset &+= shift
                extended &+= shift
                statistics.timestampJumps += 1
            }
        }

        if packets.contains(where: { $0.timestamp == extended }) {
            statistics.duplicatePackets += 1
            statistics.discardedPackets += 1
            return .duplicate
        }
        let previous = recent[Int(truncatingIfNeeded: (sequence - 1) & 1023)]
        let resumesAfterDTX = previous.sequence == sequence - 1 && extended > previous.timestamp + Int64(previous.duration)
        recent[slot] = Received(sequence: sequence, timestamp: extended, duration: duration)
        if last.map({ sequence > $0.sequence }) ?? true {
            last = (sequence, extended, duration, arrival)
        }
        if !resumesAfterDTX { estimator.update(timestamp: extended, arrival: arrival) }

        if started && extended < decodeTimestamp {
            // During silence nothing of this packet has been heard yet: play it from the start.
            guard inSilence, extended >= audioEnd else {
                statistics.latePackets += 1
                return .late
            }
            decodeTimestamp = extended
        }
        let entry = Entry(sequence: sequence, timestamp: extended, duration: duration, payload: payload,
                          arrival: arrival, hasFEC: Self.hasFEC(payload, info: info), isDTX: payload.count <= 2)
        var low = 0
        var high = packets.count
        while low < high {
            let mid = (low + high) / 2
            if packets[mid].timestamp < extended { low = mid + 1 } else { high = mid }
        }
        packets.insert(entry, at: low)
        statistics.totalSamplesReceived += Int64(duration)
        limitBuffer()
        return .buffered
    }

    /// Whether `payload` carries SILK LBRR (in-band FEC) data for the previous frame.
    static func hasFEC(_ payload: [UInt8], info: OpusPacketInfo) -> Bool {
        guard info.toc.mode != .celt, let first = info.frameLengths.first, first > 0 else { return false }
        let offset = payload.count - info.paddingLength - info.frameLengths.reduce(0, +)
        guard offset >= 1, offset < payload.count else { return false }
        let silkFrames = info.samplesPerFrame > 960 ? info.samplesPerFrame / 960 : 1
        let byte = payload[offset]
        var lbrr = (byte >> UInt8(7 - silkFrames)) & 1 == 1
        if info.toc.isStereo { lbrr = lbrr || (byte >> UInt8(6 - 2 * silkFrames)) & 1 == 1 }
        return lbrr
    }

    private var playheadTimestamp: Int64 {
        started ? decodeTimestamp - Int64(pending.count / configuration.channels) : (packets.first?.timestamp ?? 0)
    }

    private var bufferedSamples: Int {
        let end = packets.map { $0.timestamp + Int64($0.duration) }.max() ?? (started ? decodeTimestamp : 0)
        return Int(max(0, end - playheadTimestamp))
    }

    private func limitBuffer() {
        let cap = configuration.maxBuffered.nanosecondsClamped / 1_000_000 * 48
        guard Int64(bufferedSamples) > cap, let end = packets.map({ $0.timestamp + Int64($0.duration) }).max()
        else { return }
        let keep = estimator.targetNanoseconds / 1_000_000 * 48 + Int64(lastDuration)
        while packets.count > 1, end - packets[0].timestamp > keep {
            packets.removeFirst()
            statistics.discardedPackets += 1
        }
        statistics.bufferFlushes += 1
        if started, let first = packets.first {
            decodeTimestamp = first.timestamp
            needsSplice = true
        }
    }

    private func resetForNewSource() {
        if started, !lastLowEnergy, let tail = try? decoder.decodeLoss(samples: configuration.crossfadeSamples) {
            pending += Self.fadedOut(tail, channels: configuration.channels)
        }
        try? decoder.reset()
        statistics.discardedPackets += Int64(packets.count)
        statistics.ssrcChanges += 1
        packets.removeAll()
        sequenceUnwrapper = SequenceUnwrapper()
        timestampUnwrapper = TimestampUnwrapper()
        timestampOffset = 0
        last = nil
        recent = [Received](repeating: Received(), count: 1024)
        estimator.resetWindow()
        started = false
        lastDecodedSequence = nil
        lastLowEnergy = true
        lastWasDTX = false
        concealing = false
        inSilence = false
        audioEnd = .min
        needsSplice = false
    }

    // MARK: Pull

    /// The next `tickSamples` (× channels) of audio to play at `now`.
    public func pull(now: MonotonicTime) -> [Int16] {
        let channels = configuration.channels
        let wanted = configuration.tickSamples * channels
        if !started, let first = packets.first, let delay = delay(now: now, playhead: first.timestamp),
           delay >= estimator.targetNanoseconds {
            started = true
            decodeTimestamp = first.timestamp
        }
        if started {
            var guardCount = 0
            while pending.count < wanted && guardCount < 64 {
                produce(now: now)
                guardCount += 1
            }
        }
        if pending.count < wanted {
            statistics.silentSamples += Int64((wanted - pending.count) / channels)
            pending += [Int16](repeating: 0, count: wanted - pending.count)
        }
        let output = Array(pending[..<wanted])
        pending.removeFirst(wanted)
        statistics.totalSamplesPlayed += Int64(configuration.tickSamples)
        if started, let delay = delay(now: now, playhead: playheadTimestamp - Int64(configuration.tickSamples)) {
            statistics.currentDelayMs = Double(delay) / 1e6
        }
        return output
    }

    /// How far the sample at `playhead`, played at `now`, lags the fastest packet's timeline.
    private func delay(now: MonotonicTime, playhead: Int64) -> Int64? {
        guard let base = estimator.baseTransit else { return nil }
        return now.nanoseconds - ArrivalDelayEstimator.nanoseconds(samples: playhead) - base
    }

    /// Appends one frame's worth of audio at `decodeTimestamp` to `pending`.
    private func produce(now: MonotonicTime) {
        let channels = configuration.channels
        let pendingFrames = Int64(pending.count / channels)
        // The delay of the next produced sample, which plays after what is pending.
        let delay = self.delay(now: now, playhead: decodeTimestamp - pendingFrames) ?? estimator.targetNanoseconds
        let target = estimator.targetNanoseconds

        while let first = packets.first, first.timestamp < decodeTimestamp {
            packets.removeFirst()
            statistics.latePackets += 1
        }

        guard let next = packets.first else {
            // Underrun: nothing to play. Silence after silence or DTX, concealment otherwise.
            if lastLowEnergy || lastWasDTX {
                appendSilence(lastDuration, advance: true)
            } else {
                conceal(samples: lastDuration)
            }
            return
        }

        if next.timestamp > decodeTimestamp {
            var gap = Int(min(next.timestamp - decodeTimestamp, Int64(OpusDecoder.maxFrameSamples)))
            if let previous = lastDecodedSequence, next.sequence == previous + 1 || lastWasDTX {
                // DTX: silence, shortened or stretched toward the target for free.
                let excess = Int((delay - target) / 1_000_000 * 48)
                if excess > 0 {
                    let cut = min(gap, excess)
                    decodeTimestamp += Int64(cut)
                    statistics.removedSamplesForAcceleration += Int64(cut)
                    if cut == gap { return }
                    gap -= cut
                }
                if delay < target {
                    appendSilence(configuration.expansionSamples, advance: false)
                    statistics.insertedSamplesForDeceleration += Int64(configuration.expansionSamples)
                } else {
                    appendSilence(min(gap, configuration.tickSamples), advance: true)
                }
                return
            }
            if next.hasFEC && gap == next.duration {
                recoverWithFEC(from: next)
                return
            }
            let lossBeforeFEC = next.hasFEC && gap > next.duration ? gap - next.duration : gap
            let chunk = min(lossBeforeFEC, lastDuration) / 120 * 120
            if chunk == 0 {
                decodeTimestamp = next.timestamp
                needsSplice = true
                return
            }
            conceal(samples: chunk)
            return
        }

        // The next packet is due.
        let frameNanoseconds = ArrivalDelayEstimator.nanoseconds(samples: Int64(next.duration))
        if delay > target + frameNanoseconds, packets.count >= 2,
           packets[1].timestamp == next.timestamp + Int64(next.duration), !needsSplice {
            if accelerate(next: next, following: packets[1], now: now, force: delay > target + 3 * frameNanoseconds) { return }
        } else {
            accelerationDeferrals = 0
        }
        let expansionNanoseconds = ArrivalDelayEstimator.nanoseconds(samples: Int64(configuration.expansionSamples))
        if delay + expansionNanoseconds <= target + frameNanoseconds / 2 && delay < target {
            if lastLowEnergy || delay + 3 * expansionNanoseconds < target
                || expansionDeferrals >= configuration.maxSpliceDeferral {
                expansionDeferrals = 0
                if let pcm = try? decoder.decodeLoss(samples: configuration.expansionSamples) {
                    pending += pcm
                    statistics.insertedSamplesForDeceleration += Int64(configuration.expansionSamples)
                    return
                }
            } else {
                expansionDeferrals += 1
            }
        } else {
            expansionDeferrals = 0
        }
        packets.removeFirst()
        play(next, now: now)
    }

    /// Decodes `entry` into `pending` (crossfading after a discontinuity).
    private func play(_ entry: Entry, now: MonotonicTime) {
        var continuation: [Int16] = []
        if needsSplice {
            continuation = (try? decoder.decodeLoss(samples: configuration.crossfadeSamples)) ?? []
        }
        guard var pcm = try? decoder.decode(entry.payload), !pcm.isEmpty else {
            conceal(samples: entry.duration / 120 * 120 == 0 ? 120 : entry.duration / 120 * 120)
            lastDecodedSequence = entry.sequence
            return
        }
        if needsSplice {
            Self.crossfade(into: &pcm, from: continuation, channels: configuration.channels,
                           length: configuration.crossfadeSamples)
            needsSplice = false
        }
        recordDelay(entry, now: now)
        finishFrame(pcm, sequence: entry.sequence, isDTX: entry.isDTX)
        decodeTimestamp = entry.timestamp + Int64(pcm.count / configuration.channels)
        audioEnd = decodeTimestamp
    }

    private func recordDelay(_ entry: Entry, now: MonotonicTime) {
        let playTime = now.nanoseconds + ArrivalDelayEstimator.nanoseconds(samples: Int64(pending.count / configuration.channels))
        let seconds = Double(playTime - entry.arrival.nanoseconds) / 1e9
        statistics.jitterBufferDelaySeconds += seconds * Double(entry.duration)
        statistics.jitterBufferEmittedCount += Int64(entry.duration)
    }

    private func finishFrame(_ pcm: [Int16], sequence: Int64?, isDTX: Bool) {
        pending += pcm
        lastLowEnergy = AudioAnalysis.rms(samples: pcm) * 32768 < configuration.lowEnergyRMS
        lastWasDTX = isDTX
        if let sequence { lastDecodedSequence = sequence }
        lastDuration = max(120, min(OpusDecoder.maxFrameSamples, pcm.count / configuration.channels / 120 * 120))
        concealing = false
        inSilence = false
    }

    /// Drops `next` (acceleration), crossfading its start into `following`. False when deferred.
    private func accelerate(next: Entry, following: Entry, now: MonotonicTime, force: Bool) -> Bool {
        guard let dropped = try? decoder.decode(next.payload) else { return false }
        let low = AudioAnalysis.rms(samples: dropped) * 32768 < configuration.lowEnergyRMS
        guard low || force || accelerationDeferrals >= configuration.maxSpliceDeferral else {
            accelerationDeferrals += 1
            // Already decoded: play it normally.
            packets.removeFirst()
            recordDelay(next, now: now)
            finishFrame(dropped, sequence: next.sequence, isDTX: next.isDTX)
            decodeTimestamp = next.timestamp + Int64(dropped.count / configuration.channels)
            audioEnd = decodeTimestamp
            return true
        }
        accelerationDeferrals = 0
        packets.removeFirst(2)
        guard var pcm = try? decoder.decode(following.payload) else {
            finishFrame(dropped, sequence: next.sequence, isDTX: next.isDTX)
            decodeTimestamp = next.timestamp + Int64(dropped.count / configuration.channels)
            audioEnd = decodeTimestamp
            return true
        }
        recordDelay(following, now: now)
        Self.crossfade(into: &pcm, from: dropped, channels: configuration.channels, length: configuration.crossfadeSamples)
        statistics.removedSamplesForAcceleration += Int64(dropped.count / configuration.channels)
        finishFrame(pcm, sequence: following.sequence, isDTX: following.isDTX)
        decodeTimestamp = following.timestamp + Int64(pcm.count / configuration.channels)
        audioEnd = decodeTimestamp
        return true
    }

    private func recoverWithFEC(from next: Entry) {
        guard let pcm = try? decoder.decodeFEC(nextPacket: next.payload, samples: next.duration) else {
            conceal(samples: next.duration / 120 * 120)
            return
        }
        statistics.fecRecoveredSamples += Int64(next.duration)
        finishFrame(pcm, sequence: nil, isDTX: false)
        decodeTimestamp += Int64(next.duration)
        audioEnd = decodeTimestamp
    }

    private func conceal(samples: Int) {
        let count = max(120, min(OpusDecoder.maxFrameSamples, samples / 120 * 120))
        let pcm = (try? decoder.decodeLoss(samples: count))
            ?? [Int16](repeating: 0, count: count * configuration.channels)
        if !concealing { statistics.concealmentEvents += 1 }
        statistics.concealedSamples += Int64(count)
        pending += pcm
        decodeTimestamp += Int64(count)
        concealing = true
        inSilence = false
        lastWasDTX = false
        audioEnd = decodeTimestamp
    }

    private func appendSilence(_ samples: Int, advance: Bool) {
        let count = max(120, samples)
        if !lastLowEnergy, let tail = try? decoder.decodeLoss(samples: configuration.crossfadeSamples) {
            // Fade the last sound out instead of cutting it.
            pending += Self.fadedOut(tail, channels: configuration.channels)
            pending += [Int16](repeating: 0, count: max(0, count - configuration.crossfadeSamples) * configuration.channels)
        } else {
            pending += [Int16](repeating: 0, count: count * configuration.channels)
        }
        statistics.silentSamples += Int64(count)
        if advance { decodeTimestamp += Int64(count) }
        lastLowEnergy = true
        concealing = false
        inSilence = true
    }

    static func fadedOut(_ pcm: [Int16], channels: Int) -> [Int16] {
        let frames = pcm.count / channels
        var out = pcm
        for index in out.indices {
            let gain = 1 - Double(index / channels + 1) / Double(frames)
            out[index] = Int16(clamping: Int((Double(out[index]) * gain).rounded()))
        }
        return out
    }

    /// Fades `head` out over the start of `pcm` while fading `pcm` in.
    static func crossfade(into pcm: inout [Int16], from head: [Int16], channels: Int, length: Int) {
        let frames = min(head.count, pcm.count, length * channels) / channels
        guard frames > 0 else { return }
        for frame in 0..<frames {
            let gain = Double(frame + 1) / Double(frames + 1)
            for channel in 0..<channels {
                let index = frame * channels + channel
                let mixed = Double(pcm[index]) * gain + Double(head[index]) * (1 - gain)
                pcm[index] = Int16(clamping: Int(mixed.rounded()))
            }
        }
    }
}
