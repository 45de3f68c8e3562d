// ALSA playback through the adaptive playout stage: one PlayoutBuffer tick per ALSA period.
import Wire

/// Plays received Opus audio on an ALSA device through a `PlayoutBuffer`: packets go in as they
/// arrive; each `tick(now:)` pulls exactly one period (the buffer's `tickSamples`: 10 or 20 ms)
/// of concealed, delay-adapted PCM and writes it to the device. The write blocks while the
/// device's buffer is full, so a loop calling `tick(now: .now())` is paced by the sound card's
/// clock, one tick per period.
///
/// Mono only (the ALSA PCM is opened 48 kHz S16 mono). Not `Sendable`: owns a decoder and a
/// device handle; run it on one thread (blocking I/O).
public final class ALSAPlayoutSink {
    public let buffer: PlayoutBuffer
    public let playback: ALSAPlayback
    /// Periods written so far.
    public private(set) var ticks = 0

    /// Opens `device` and plays what `buffer` produces. Throws `badFrameSize` for a stereo buffer.
    public init(buffer: PlayoutBuffer, device: String = "default", latencyMicroseconds: UInt32 = 60_000) throws(ALSAError) {
        guard buffer.configuration.channels == 1 else {
            throw .badFrameSize(buffer.configuration.tickSamples * buffer.configuration.channels)
        }
        self.buffer = buffer
        playback = try ALSAPlayback(device: device, latencyMicroseconds: latencyMicroseconds)
    }

    /// A sink with a new mono playout buffer of `tickSamples` per period.
    public convenience init(device: String = "default", tickSamples: Int = 960,
                            latencyMicroseconds: UInt32 = 60_000) throws(ALSAPlayoutSinkError) {
        let buffer: PlayoutBuffer
        do throws(OpusCodecError) {
            buffer = try PlayoutBuffer(configuration: PlayoutConfiguration(tickSamples: tickSamples, channels: 1))
        } catch { throw .codec(error) }
        do throws(ALSAError) { try self.init(buffer: buffer, device: device, latencyMicroseconds: latencyMicroseconds) } catch {
            throw .alsa(error)
        }
    }

    /// Adds a received RTP packet carrying Opus.
    @discardableResult
    public func insert(packet: RTPPacket, arrival: MonotonicTime) -> PlayoutInsertResult {
        buffer.insert(packet: packet, arrival: arrival)
    }

    /// One output period: pulls it from the playout buffer at `now` and writes it to the device
    /// (blocking until the device takes it). Returns the samples played.
    @discardableResult
    public func tick(now: MonotonicTime) throws(ALSAError) -> [Int16] {
        let pcm = buffer.pull(now: now)
        try playback.pcm.write(pcm)
        ticks += 1
        return pcm
    }

    /// Drains what is queued on the device and closes it.
    public func close() { playback.close() }
}

/// Why an `ALSAPlayoutSink` could not be made.
public enum ALSAPlayoutSinkError: Error, Equatable, Sendable {
    case alsa(ALSAError)
    case codec(OpusCodecError)
}
