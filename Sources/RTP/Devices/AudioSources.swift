// Audio sources that yield one 20 ms frame at a time: tones, WAV files, Ogg Opus files.

/// One 20 ms unit of outgoing audio.
public enum AudioFrame: Sendable, Equatable {
    /// 48 kHz PCM (960 samples per channel) to be encoded.
    case pcm([Int16])
    /// An already encoded Opus packet to send as it is.
    case opus([UInt8])
}

/// Something that produces outgoing audio 20 ms at a time; nil at the end.
public protocol AudioSource {
    mutating func nextFrame() -> AudioFrame?
}

/// An endless (or `frames`-long) sine tone.
public struct ToneSource: AudioSource, Sendable {
    private var generator: ToneGenerator
    private var remaining: Int?

    public init(frequency: Double, amplitude: Double = 0.3, frames: Int? = nil) {
        generator = ToneGenerator(frequency: frequency, amplitude: amplitude)
        remaining = frames
    }

    public mutating func nextFrame() -> AudioFrame? {
        if let r = remaining {
            guard r > 0 else { return nil }
            remaining = r - 1
        }
        return .pcm(generator.next(frames: 960))
    }
}

/// Why a file source could not be opened.
public enum AudioSourceError: Error, Equatable, Sendable {
    case wav(WAVError)
    case ogg(OggOpusError)
    /// Only 48 kHz mono or stereo WAV is accepted.
    case unsupportedFormat(sampleRate: Int, channels: Int)
    case unreadable(path: String)
}

/// PCM frames from a 48 kHz WAV file (stereo is mixed down to mono); the last frame is
/// zero-padded. Plays once or loops.
public struct WAVFileSource: AudioSource, Sendable {
    public let samples: [Int16]
    public let loop: Bool
    private var offset = 0

    public init(path: String, loop: Bool = false) throws(AudioSourceError) {
        let file: WAVFile
        do throws(WAVError) { file = try WAVReader.read(path: path) } catch { throw .wav(error) }
        try self.init(file: file, loop: loop)
    }

    public init(file: WAVFile, loop: Bool = false) throws(AudioSourceError) {
        guard file.sampleRate == 48_000, file.channels == 1 || file.channels == 2 else {
            throw .unsupportedFormat(sampleRate: file.sampleRate, channels: file.channels)
        }
        if file.channels == 2 {
            samples = stride(from: 0, to: file.samples.count - 1, by: 2).map {
                Int16((Int(file.samples[$0]) + Int(file.samples[$0 + 1])) / 2)
            }
        } else {
            samples = file.samples
        }
        self.loop = loop
    }

    public mutating func nextFrame() -> AudioFrame? {
        guard !samples.isEmpty else { return nil }
        if offset >= samples.count {
            guard loop else { return nil }
            offset = 0
        }
        var frame = Array(samples[offset..<min(offset + 960, samples.count)])
        offset += 960
        if frame.count < 960 { frame += [Int16](repeating: 0, count: 960 - frame.count) }
        return .pcm(frame)
    }
}

/// Opus packets from an Ogg Opus file, sent as they are (no re-encoding). Plays once or loops.
public struct OggOpusFileSource: AudioSource, Sendable {
    public let packets: [[UInt8]]
    public let loop: Bool
    private var index = 0

    public init(bytes: [UInt8], loop: Bool = false) throws(AudioSourceError) {
        do throws(OggOpusError) {
            packets = try OggOpusReader.read(bytes).packets.filter { $0.samples > 0 }.map(\.bytes)
        } catch { throw .ogg(error) }
        self.loop = loop
    }

    public mutating func nextFrame() -> AudioFrame? {
        guard !packets.isEmpty else { return nil }
        if index >= packets.count {
            guard loop else { return nil }
            index = 0
        }
        defer { index += 1 }
        return .opus(packets[index])
    }
}
