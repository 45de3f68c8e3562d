// Test-signal generation and analysis for 16-bit PCM: sine tones, dominant frequency, level.
#if canImport(Glibc)
import Glibc
#endif

/// A phase-continuous sine generator producing interleaved Int16 frames.
public struct ToneGenerator: Sendable {
    public var frequency: Double
    /// Peak amplitude as a fraction of full scale (0–1).
    public var amplitude: Double
    public let sampleRate: Int
    public let channels: Int
    private var phase: Double = 0

    public init(frequency: Double, amplitude: Double = 0.5, sampleRate: Int = 48_000, channels: Int = 1) {
        self.frequency = frequency
        self.amplitude = amplitude
        self.sampleRate = sampleRate
        self.channels = max(1, channels)
    }

    /// The next `frames` frames (each channel carries the same sample).
    public mutating func next(frames: Int) -> [Int16] {
        var out: [Int16] = []
        out.reserveCapacity(frames * channels)
        let step = 2 * Double.pi * frequency / Double(sampleRate)
        let scale = 32767 * min(max(amplitude, 0), 1)
        for _ in 0..<max(0, frames) {
            let sample = Int16((sin(phase) * scale).rounded())
            for _ in 0..<channels { out.append(sample) }
            phase += step
            if phase >= 2 * Double.pi { phase -= 2 * Double.pi }
        }
        return out
    }
}

/// Measurements on 16-bit PCM.
public enum AudioAnalysis {
    /// The frequency of the strongest spectral peak in Hz: Hann-windowed FFT over up to 2^18
    /// samples, then parabolic interpolation on the log magnitudes around the peak bin.
    /// Returns nil for fewer than 64 samples or pure silence.
    public static func dominantFrequency(samples: [Int16], sampleRate: Int) -> Double? {
        guard samples.count >= 64 else { return nil }
        let count = min(samples.count, 1 << 18)
        var size = 1
        while size < count { size <<= 1 }
        size = max(size * 2, 1 << 16)
        size = min(size, 1 << 19)
        var real = [Double](repeating: 0, count: size)
        var imag = [Double](repeating: 0, count: size)
        let offset = (samples.count - count) / 2
        for i in 0..<count {
            let window = 0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(count - 1))
            real[i] = Double(samples[offset + i]) * window
        }
        fft(&real, &imag)
        var best = 1
        var bestPower = 0.0
        var power = [Double](repeating: 0, count: size / 2)
        for k in 0..<(size / 2) {
            power[k] = real[k] * real[k] + imag[k] * imag[k]
            if k >= 1 && power[k] > bestPower {
                bestPower = power[k]
                best = k
            }
        }
        guard bestPower > 0 else { return nil }
        var shift = 0.0
        if best >= 1 && best + 1 < size / 2 {
            let a = log(power[best - 1] + 1e-30), b = log(power[best] + 1e-30), c = log(power[best + 1] + 1e-30)
            let denominator = a - 2 * b + c
            if denominator != 0 { shift = 0.5 * (a - c) / denominator }
        }
        return (Double(best) + shift) * Double(sampleRate) / Double(size)
    }

    /// Root-mean-square level as a fraction of full scale (1.0 = full-scale square wave).
    public static func rms(samples: [Int16]) -> Double {
        guard !samples.isEmpty else { return 0 }
        var sum = 0.0
        for sample in samples {
            let value = Double(sample) / 32768
            sum += value * value
        }
        return (sum / Double(samples.count)).squareRoot()
    }

    /// Level in dBov (0 = full-scale square wave; a full-scale sine is about -3), floored at -127.
    public static func dBov(samples: [Int16]) -> Double {
        let level = rms(samples: samples)
        guard level > 0 else { return -127 }
        return max(-127, 20 * log10(level))
    }

    /// In-place iterative radix-2 FFT; the count must be a power of two.
    static func fft(_ real: inout [Double], _ imag: inout [Double]) {
        let n = real.count
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 {
                j ^= bit
                bit >>= 1
            }
            j |= bit
            if i < j {
                real.swapAt(i, j)
                imag.swapAt(i, j)
            }
        }
        var length = 2
        while length <= n {
            let angle = -2 * Double.pi / Double(length)
            let half = length / 2
            var twiddleReal = [Double](repeating: 0, count: half)
            var twiddleImag = [Double](repeating: 0, count: half)
            for k in 0..<half {
                twiddleReal[k] = cos(angle * Double(k))
                twiddleImag[k] = sin(angle * Double(k))
            }
            real.withUnsafeMutableBufferPointer { re in
                imag.withUnsafeMutableBufferPointer { im in
                    var start = 0
                    while start < n {
                        for k in 0..<half {
                            let a = start + k, b = a + half
                            let tr = re[b] * twiddleReal[k] - im[b] * twiddleImag[k]
                            let ti = re[b] * twiddleImag[k] + im[b] * twiddleReal[k]
                            re[b] = re[a] - tr
                            im[b] = im[a] - ti
                            re[a] += tr
                            im[a] += ti
                        }
                        start += length
                    }
                }
            }
            length <<= 1
        }
    }
}
