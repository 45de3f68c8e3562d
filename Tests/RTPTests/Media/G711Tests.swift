import Foundation
import Testing
@testable import RTP

@Suite("G.711")
struct G711Tests {
    // Decoded values of selected codes, as produced by ffmpeg's pcm_mulaw / pcm_alaw decoders.
    static let muLaw: [(UInt8, Int16)] = [(0x00, -32124), (0x01, -31100), (0x0F, -16764), (0x10, -15996), (0x70, -120),
                                          (0x7E, -8), (0x7F, 0), (0x80, 32124), (0xD5, 716), (0x55, -716),
                                          (0xAA, 5372), (0x2A, -5372), (0xFF, 0), (0xF0, 120)]
    static let aLaw: [(UInt8, Int16)] = [(0x00, -5504), (0x01, -5248), (0x0F, -6784), (0x10, -2752), (0x70, -688),
                                         (0x7E, -880), (0x7F, -848), (0x80, 5504), (0xD5, 8), (0x55, -8),
                                         (0xAA, 32256), (0x2A, -32256), (0xFF, 848), (0xF0, 688)]

    @Test("known decoded values")
    func knownDecode() {
        for (code, value) in Self.muLaw { #expect(G711.decodeMuLaw(code) == value, "µ-law \(code)") }
        for (code, value) in Self.aLaw { #expect(G711.decodeALaw(code) == value, "A-law \(code)") }
    }

    @Test("known encoded values")
    func knownEncode() {
        #expect(G711.encodeMuLaw(0) == 0xFF)
        #expect(G711.encodeMuLaw(Int16.max) == 0x80)
        #expect(G711.encodeMuLaw(Int16.min) == 0x00)
        #expect(G711.encodeMuLaw(-8) == 0x7E)
        #expect(G711.encodeALaw(0) == 0xD5)
        #expect(G711.encodeALaw(-1) == 0x55)
        #expect(G711.encodeALaw(Int16.max) == 0xAA)
        #expect(G711.encodeALaw(Int16.min) == 0x2A)
    }

    @Test("every code survives decode then encode")
    func codesRoundTrip() {
        for code in UInt8.min...UInt8.max {
            // 0x7F is µ-law's negative zero, which encodes back as positive zero 0xFF.
            #expect(G711.encodeMuLaw(G711.decodeMuLaw(code)) == (code == 0x7F ? 0xFF : code))
            #expect(G711.encodeALaw(G711.decodeALaw(code)) == code)
        }
    }

    @Test("quantization error stays within half a step for every 16-bit value")
    func errorBounds() {
        var worstMu = 0, worstA = 0
        for value in Int(Int16.min)...Int(Int16.max) {
            let x = Int16(value)
            let mu = abs(Int(G711.decodeMuLaw(G711.encodeMuLaw(x))) - value)
            let a = abs(Int(G711.decodeALaw(G711.encodeALaw(x))) - value)
            // Step sizes double per segment; half a step is about |x|/32 plus the first segment's.
            if abs(value) <= 32124 { #expect(mu <= abs(value) / 16 + 8, "µ-law \(value) → error \(mu)") }
            if abs(value) <= 32256 { #expect(a <= abs(value) / 16 + 16, "A-law \(value) → error \(a)") }
            worstMu = max(worstMu, mu)
            worstA = max(worstA, a)
        }
        #expect(worstMu <= 1024 && worstA <= 1024)
        // Both laws are monotonic.
        let muDecoded = (UInt8(0x80)...UInt8(0xFF)).map { G711.decodeMuLaw($0) }
        #expect(zip(muDecoded, muDecoded.dropFirst()).allSatisfy { $0 >= $1 })
    }

    @Test("array helpers and a tone keep their shape")
    func tone() {
        var tone = ToneGenerator(frequency: 1000, amplitude: 0.5, sampleRate: 8000)
        let pcm = tone.next(frames: 8000)
        for decoded in [G711.decodeMuLaw(G711.encodeMuLaw(pcm)), G711.decodeALaw(G711.encodeALaw(pcm))] {
            #expect(decoded.count == pcm.count)
            let frequency = AudioAnalysis.dominantFrequency(samples: decoded, sampleRate: 8000) ?? 0
            #expect(abs(frequency - 1000) < 1)
            let noise = AudioAnalysis.rms(samples: zip(decoded, pcm).map { Int16(clamping: Int($0) - Int($1)) })
            let snr = 20 * log10(AudioAnalysis.rms(samples: pcm) / noise)
            #expect(snr > 30, "SNR \(snr) dB")
        }
    }
}
