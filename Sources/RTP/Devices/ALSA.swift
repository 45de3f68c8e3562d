// ALSA capture and playback at 48 kHz S16 mono (blocking reads/writes of 20 ms frames).
import CALSA
import CShims

/// Why an ALSA device call failed.
public enum ALSAError: Error, Equatable, Sendable {
    /// The PCM device could not be opened (missing device, busy, no permission).
    case openFailed(device: String, code: Int32, message: String)
    /// `snd_pcm_set_params` refused 48 kHz S16 mono.
    case configureFailed(device: String, code: Int32, message: String)
    /// A read or write failed and could not be recovered.
    case ioFailed(device: String, code: Int32, message: String)
    /// The frame is not 960 samples.
    case badFrameSize(Int)
    case closed
}

private let alsaQuiet: Void = peerd_alsa_silence_errors()

private func alsaMessage(_ code: Int32) -> String { String(cString: snd_strerror(code)) }

/// An open ALSA PCM at 48 kHz S16 mono, owning its handle (closed in `deinit`).
/// Not `Sendable`: use from one thread or task at a time (blocking I/O belongs on a dedicated thread).
public final class ALSAPCM {
    public let device: String
    private var handle: OpaquePointer?

    init(device: String, stream: snd_pcm_stream_t, latencyMicroseconds: UInt32) throws(ALSAError) {
        _ = alsaQuiet
        self.device = device
        var pcm: OpaquePointer?
        let rc = snd_pcm_open(&pcm, device, stream, 0)
        guard rc >= 0, let pcm else { throw .openFailed(device: device, code: rc, message: alsaMessage(rc)) }
        let set = snd_pcm_set_params(pcm, SND_PCM_FORMAT_S16_LE, SND_PCM_ACCESS_RW_INTERLEAVED, 1, 48_000, 1, latencyMicroseconds)
        guard set >= 0 else {
            snd_pcm_close(pcm)
            throw .configureFailed(device: device, code: set, message: alsaMessage(set))
        }
        handle = pcm
    }

    deinit { if let handle { snd_pcm_close(handle) } }

    /// Closes the device (drains playback first).
    public func close() {
        guard let handle else { return }
        snd_pcm_drain(handle)
        snd_pcm_close(handle)
        self.handle = nil
    }

    func write(_ frame: [Int16]) throws(ALSAError) {
        guard let handle else { throw .closed }
        var offset = 0
        while offset < frame.count {
            let n = frame.withUnsafeBufferPointer { buffer in
                snd_pcm_writei(handle, buffer.baseAddress! + offset, snd_pcm_uframes_t(frame.count - offset))
            }
            if n < 0 {
                let recovered = snd_pcm_recover(handle, Int32(n), 1)
                guard recovered >= 0 else { throw .ioFailed(device: device, code: Int32(n), message: alsaMessage(Int32(n))) }
                continue
            }
            offset += Int(n)
        }
    }

    func read(frames: Int) throws(ALSAError) -> [Int16] {
        guard let handle else { throw .closed }
        var out = [Int16](repeating: 0, count: frames)
        var offset = 0
        while offset < frames {
            let n = out.withUnsafeMutableBufferPointer { buffer in
                snd_pcm_readi(handle, buffer.baseAddress! + offset, snd_pcm_uframes_t(frames - offset))
            }
            if n < 0 {
                let recovered = snd_pcm_recover(handle, Int32(n), 1)
                guard recovered >= 0 else { throw .ioFailed(device: device, code: Int32(n), message: alsaMessage(Int32(n))) }
                continue
            }
            if n == 0 { break }
            offset += Int(n)
        }
        return out
    }
}

/// Plays 20 ms frames of 48 kHz mono PCM on an ALSA device opened by name ("default", "hw:0", a PCM from the config).
public final class ALSAPlayback {
    public let pcm: ALSAPCM
    public init(device: String = "default", latencyMicroseconds: UInt32 = 60_000) throws(ALSAError) {
        pcm = try ALSAPCM(device: device, stream: SND_PCM_STREAM_PLAYBACK, latencyMicroseconds: latencyMicroseconds)
    }

    /// Writes one frame (960 samples), blocking until the device takes it.
    public func play(_ frame: [Int16]) throws(ALSAError) {
        guard frame.count == 960 else { throw .badFrameSize(frame.count) }
        try pcm.write(frame)
    }

    public func close() { pcm.close() }
}

/// Captures 20 ms frames of 48 kHz mono PCM from an ALSA device; usable as an `AudioSource`.
public final class ALSACapture: AudioSource {
    public let pcm: ALSAPCM
    /// The error that ended `nextFrame()`, if any.
    public private(set) var lastError: ALSAError?

    public init(device: String = "default", latencyMicroseconds: UInt32 = 60_000) throws(ALSAError) {
        pcm = try ALSAPCM(device: device, stream: SND_PCM_STREAM_CAPTURE, latencyMicroseconds: latencyMicroseconds)
    }

    /// Reads one frame (blocking).
    public func read() throws(ALSAError) -> [Int16] { try pcm.read(frames: 960) }

    public func nextFrame() -> AudioFrame? {
        do throws(ALSAError) { return .pcm(try read()) } catch {
            lastError = error
            return nil
        }
    }

    public func close() { pcm.close() }
}
