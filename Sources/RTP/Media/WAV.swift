// RIFF/WAVE files with 16-bit PCM: parse, serialize, a streaming file writer and a file reader.
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Why bytes are not a 16-bit PCM WAV file, or why file I/O failed.
public enum WAVError: Error, Equatable, Sendable {
    /// The file ends before the RIFF header or a chunk header.
    case truncated
    /// The file does not start with "RIFF".
    case notRIFF
    /// The RIFF form type is not "WAVE".
    case notWAVE
    /// The RIFF size says more than the file holds.
    case riffSizeMismatch(declared: Int, available: Int)
    /// A chunk says it is longer than what remains of the RIFF body.
    case chunkOverrun(id: String, declared: Int, available: Int)
    /// The fmt chunk is shorter than 16 bytes (or 40 for WAVE_FORMAT_EXTENSIBLE).
    case badFormatChunk(size: Int)
    /// The format is not integer PCM (1, or extensible with the PCM subformat).
    case notPCM(formatTag: UInt16)
    case unsupportedBitsPerSample(Int)
    case invalidChannelCount(Int)
    case invalidSampleRate(Int)
    /// Block align or byte rate disagree with channels × 2 bytes × rate.
    case inconsistentFormat
    /// A data chunk before the fmt chunk, or no fmt chunk.
    case missingFormat
    case missingData
    /// The data size is not a whole number of sample frames.
    case dataNotFrameAligned(size: Int)
    /// Samples given to the writer are not a whole number of frames.
    case sampleCountNotFrameAligned(Int)
    /// The data chunk would exceed the 4 GiB RIFF limit.
    case tooLarge
    /// A POSIX call failed.
    case posix(operation: String, errno: Int32)
    /// The writer was finalized.
    case closed
}

/// A 16-bit PCM WAV file in memory.
public struct WAVFile: Sendable, Equatable {
    public var sampleRate: Int
    public var channels: Int
    /// Interleaved samples.
    public var samples: [Int16]

    public init(sampleRate: Int, channels: Int, samples: [Int16]) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.samples = samples
    }

    /// Number of sample frames (samples per channel).
    public var frameCount: Int { channels > 0 ? samples.count / channels : 0 }
    public var durationSeconds: Double { Double(frameCount) / Double(max(1, sampleRate)) }

    /// The 44-byte canonical header for `dataBytes` bytes of samples.
    public static func header(sampleRate: Int, channels: Int, dataBytes: Int) -> [UInt8] {
        var out: [UInt8] = Array("RIFF".utf8)
        out.appendLittleEndian(UInt32(truncatingIfNeeded: 36 + dataBytes))
        out += Array("WAVEfmt ".utf8)
        out.appendLittleEndian(UInt32(16))
        out.appendLittleEndian(UInt16(1))
        out.appendLittleEndian(UInt16(truncatingIfNeeded: channels))
        out.appendLittleEndian(UInt32(truncatingIfNeeded: sampleRate))
        out.appendLittleEndian(UInt32(truncatingIfNeeded: sampleRate * channels * 2))
        out.appendLittleEndian(UInt16(truncatingIfNeeded: channels * 2))
        out.appendLittleEndian(UInt16(16))
        out += Array("data".utf8)
        out.appendLittleEndian(UInt32(truncatingIfNeeded: dataBytes))
        return out
    }

    /// Canonical file bytes: RIFF header, fmt chunk, data chunk.
    public func serialized() -> [UInt8] {
        var out = Self.header(sampleRate: sampleRate, channels: channels, dataBytes: samples.count * 2)
        out.reserveCapacity(out.count + samples.count * 2)
        for sample in samples { out.appendLittleEndian(UInt16(bitPattern: sample)) }
        return out
    }

    /// Parses a RIFF/WAVE file, skipping chunks other than fmt and data.
    public static func parse(_ bytes: [UInt8]) throws(WAVError) -> WAVFile {
        guard bytes.count >= 12 else { throw .truncated }
        guard bytes[0..<4].elementsEqual("RIFF".utf8) else { throw .notRIFF }
        guard bytes[8..<12].elementsEqual("WAVE".utf8) else { throw .notWAVE }
        let riffSize = Int(le32(bytes, 4))
        guard riffSize >= 4, riffSize <= bytes.count - 8 else {
            throw .riffSizeMismatch(declared: riffSize, available: bytes.count - 8)
        }
        let end = 8 + riffSize
        var offset = 12
        var format: (channels: Int, rate: Int)?
        while true {
            guard end - offset >= 8 else { throw format == nil ? .missingFormat : .missingData }
            let id = String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self)
            let size = Int(le32(bytes, offset + 4))
            let bodyStart = offset + 8
            guard size <= end - bodyStart else { throw .chunkOverrun(id: id, declared: size, available: end - bodyStart) }
            switch id {
            case "fmt ":
                format = try parseFormat(bytes[bodyStart..<(bodyStart + size)])
            case "data":
                guard let format else { throw .missingFormat }
                let frameBytes = format.channels * 2
                guard size % frameBytes == 0 else { throw .dataNotFrameAligned(size: size) }
                var samples = [Int16](repeating: 0, count: size / 2)
                for i in 0..<samples.count {
                    let p = bodyStart + 2 * i
                    samples[i] = Int16(bitPattern: UInt16(bytes[p]) | UInt16(bytes[p + 1]) << 8)
                }
                return WAVFile(sampleRate: format.rate, channels: format.channels, samples: samples)
            default:
                break
            }
            offset = bodyStart + size + (size & 1)
        }
    }

    private static func parseFormat(_ chunk: ArraySlice<UInt8>) throws(WAVError) -> (channels: Int, rate: Int) {
        let b = Array(chunk)
        guard b.count >= 16 else { throw .badFormatChunk(size: b.count) }
        let tag = UInt16(b[0]) | UInt16(b[1]) << 8
        let channels = Int(b[2]) | Int(b[3]) << 8
        let rate = Int(le32(b, 4))
        let byteRate = Int(le32(b, 8))
        let blockAlign = Int(b[12]) | Int(b[13]) << 8
        let bits = Int(b[14]) | Int(b[15]) << 8
        if tag == 0xFFFE {
            guard b.count >= 40 else { throw .badFormatChunk(size: b.count) }
            let pcmGUIDTail: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00,
                                        0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
            guard b[24] == 1, b[25] == 0, Array(b[26..<40]) == pcmGUIDTail else { throw .notPCM(formatTag: tag) }
        } else if tag != 1 {
            throw .notPCM(formatTag: tag)
        }
        guard bits == 16 else { throw .unsupportedBitsPerSample(bits) }
        guard channels >= 1 else { throw .invalidChannelCount(channels) }
        guard rate >= 1 else { throw .invalidSampleRate(rate) }
        guard blockAlign == channels * 2, byteRate == rate * blockAlign else { throw .inconsistentFormat }
        return (channels, rate)
    }

    private static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
}

/// Reads WAV files from disk.
public enum WAVReader {
    /// Reads and parses the file at `path`.
    public static func read(path: String) throws(WAVError) -> WAVFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .posix(operation: "open", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .posix(operation: "read", errno: errno)
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return try WAVFile.parse(bytes)
    }
}

/// Writes a 16-bit PCM WAV file as audio arrives.
///
/// Samples are buffered and written every `flushInterval` frames, on `flush()` and on
/// `finalize()`; each time, the RIFF and data sizes in the header are rewritten, so a file
/// left by a killed process is valid up to the last flush. Owns its file descriptor (closed in
/// `finalize` or `deinit`). Not `Sendable`: use from one task at a time.
public final class WAVWriter {
    public let sampleRate: Int
    public let channels: Int
    /// Frames buffered before an automatic flush.
    public let flushInterval: Int
    /// Frames written so far (buffered included).
    public private(set) var frameCount = 0

    private var fd: Int32
    private var buffer: [UInt8] = []
    private var dataBytesOnDisk = 0
    /// Set while the file is being created in the background (`init(creatingInBackground:...)`).
    private var pendingCreation: BackgroundFileCreation?
    private var creationError: WAVError?

    public static let maxDataBytes = Int(UInt32.max) - 36

    /// Creates or truncates `path` and writes a header announcing no data yet.
    public init(path: String, sampleRate: Int, channels: Int, flushInterval: Int? = nil) throws(WAVError) {
        guard channels >= 1 && channels <= 255 else { throw .invalidChannelCount(channels) }
        guard sampleRate >= 1 && sampleRate <= 1_000_000 else { throw .invalidSampleRate(sampleRate) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .posix(operation: "open", errno: errno) }
        self.fd = fd
        self.sampleRate = sampleRate
        self.channels = channels
        self.flushInterval = max(1, flushInterval ?? sampleRate)
        try writeAll(WAVFile.header(sampleRate: sampleRate, channels: channels, dataBytes: 0), at: 0)
    }

    /// The same, but the file is created on a background queue (creating a file can block an event
    /// loop for milliseconds; see `OggFileOutput(creatingInBackground:)`). Samples are buffered until
    /// it exists (a flush before then writes nothing); a failed creation is thrown by the next
    /// flush or write; `finalize` waits for the creation.
    public init(creatingInBackground path: String, sampleRate: Int, channels: Int, flushInterval: Int? = nil) throws(WAVError) {
        guard channels >= 1 && channels <= 255 else { throw .invalidChannelCount(channels) }
        guard sampleRate >= 1 && sampleRate <= 1_000_000 else { throw .invalidSampleRate(sampleRate) }
        fd = -1
        self.sampleRate = sampleRate
        self.channels = channels
        self.flushInterval = max(1, flushInterval ?? sampleRate)
        pendingCreation = BackgroundFileCreation(path: path)
    }

    deinit {
        if fd >= 0 || pendingCreation != nil { try? finalize() }
    }

    /// Takes the background creation's result when there is one (waiting if `wait`) and writes the header.
    private func settleCreation(wait: Bool) throws(WAVError) {
        guard let pending = pendingCreation, let result = wait ? pending.waitForResult() : pending.result() else { return }
        pendingCreation = nil
        switch result {
        case .success(let descriptor):
            fd = descriptor
            try writeAll(WAVFile.header(sampleRate: sampleRate, channels: channels, dataBytes: 0), at: 0)
        case .failure(let failure):
            buffer = []
            let error = WAVError.posix(operation: "open", errno: failure.errno)
            creationError = error
            throw error
        }
    }

    /// Appends interleaved samples (a whole number of frames).
    public func write(_ samples: [Int16]) throws(WAVError) {
        if let creationError { throw creationError }
        guard fd >= 0 || pendingCreation != nil else { throw .closed }
        guard samples.count % channels == 0 else { throw .sampleCountNotFrameAligned(samples.count) }
        guard dataBytesOnDisk + buffer.count + samples.count * 2 <= Self.maxDataBytes else { throw .tooLarge }
        #if _endian(little)
        // The samples' memory is already the file's little-endian 16-bit PCM: one copy.
        samples.withUnsafeBytes { buffer.append(contentsOf: $0) }
        #else
        buffer.reserveCapacity(buffer.count + samples.count * 2)
        for sample in samples { buffer.appendLittleEndian(UInt16(bitPattern: sample)) }
        #endif
        frameCount += samples.count / channels
        if buffer.count >= flushInterval * channels * 2 { try flush() }
    }

    /// Writes buffered samples and updates the header sizes.
    public func flush() throws(WAVError) {
        if pendingCreation != nil {
            try settleCreation(wait: false)
            if pendingCreation != nil { return }  // not created yet: keep buffering
        }
        if let creationError { throw creationError }
        guard fd >= 0 else { throw .closed }
        if !buffer.isEmpty {
            try writeAll(buffer, at: 44 + dataBytesOnDisk)
            dataBytesOnDisk += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }
        var sizes: [UInt8] = []
        sizes.appendLittleEndian(UInt32(36 + dataBytesOnDisk))
        try writeAll(sizes, at: 4)
        sizes = []
        sizes.appendLittleEndian(UInt32(dataBytesOnDisk))
        try writeAll(sizes, at: 40)
    }

    /// Flushes and closes the file. Further writes throw `closed`.
    public func finalize() throws(WAVError) {
        if pendingCreation != nil { try settleCreation(wait: true) }
        guard fd >= 0 else { return }
        defer {
            close(fd)
            fd = -1
        }
        try flush()
    }

    private func writeAll(_ bytes: [UInt8], at position: Int) throws(WAVError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(position + done))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw .posix(operation: "pwrite", errno: errno)
            }
            done += written
        }
    }
}
