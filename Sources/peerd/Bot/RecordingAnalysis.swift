import Foundation
import RTP

/// What a recorded file contains, for the demo table and the interop tests.
struct RecordingAnalysis: Sendable {
    var path: String
    var durationSeconds: Double
    /// Dominant frequency of the audible part (nil for silence).
    var dominantHz: Double?
    /// Seconds of non-silent audio.
    var audibleSeconds: Double

    /// Decodes an Ogg Opus or WAV recording and measures it.
    static func analyze(path: String) -> RecordingAnalysis? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        var pcm: [Int16] = []
        if path.hasSuffix(".wav") {
            guard let file = try? WAVFile.parse(bytes) else { return nil }
            pcm = file.channels == 1 ? file.samples : stride(from: 0, to: file.samples.count, by: file.channels).map { file.samples[$0] }
        } else {
            guard let (head, _, packets) = try? OggOpusReader.read(bytes),
                  let decoder = try? OpusDecoder(channels: Int(head.channelCount) == 2 ? 2 : 1) else { return nil }
            for packet in packets {
                guard var frame = try? decoder.decode(packet.bytes) else { continue }
                if head.channelCount == 2 { frame = stride(from: 0, to: frame.count, by: 2).map { frame[$0] } }
                pcm += frame
            }
            pcm = Array(pcm.dropFirst(Int(head.preSkip)))
        }
        // Keep the audible 20 ms blocks: that is where a participant's tone is.
        var audible: [Int16] = []
        var index = 0
        while index + 960 <= pcm.count {
            let block = Array(pcm[index..<index + 960])
            if AudioAnalysis.rms(samples: block) > 0.01 { audible += block }
            index += 960
        }
        let frequency = audible.count >= 4800 ? AudioAnalysis.dominantFrequency(samples: Array(audible.suffix(48_000 * 4)), sampleRate: 48_000) : nil
        return RecordingAnalysis(path: path, durationSeconds: Double(pcm.count) / 48_000, dominantHz: frequency,
                                 audibleSeconds: Double(audible.count) / 48_000)
    }
}
