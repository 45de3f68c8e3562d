// Ogg Opus files (RFC 7845): a page writer with periodic flushes, and a packet reader.
import Wire
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a write to an `OggOutput` failed.
public enum OggOutputError: Error, Equatable, Sendable {
    /// A POSIX call failed with `errno`.
    case posix(operation: String, errno: Int32)
    /// The output was closed.
    case closed
}

/// Where an Ogg writer puts its pages.
public protocol OggOutput: AnyObject {
    /// Writes all of `bytes` (or throws).
    func write(_ bytes: [UInt8]) throws(OggOutputError)
    /// Writes all of `header`, then all of `body` (one page in two parts, or throws).
    func write(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) throws(OggOutputError)
}

extension OggOutput {
    /// Joins the parts and writes them as one array.
    public func write(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) throws(OggOutputError) {
        var bytes = [UInt8](header)
        bytes.append(contentsOf: body)
        try write(bytes)
    }
}

/// An `OggOutput` collecting bytes in memory.
public final class OggMemoryOutput: OggOutput {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ bytes: [UInt8]) throws(OggOutputError) { self.bytes += bytes }
}

/// An `OggOutput` writing straight to a POSIX file descriptor (no user-space buffering), so
/// every page written survives a kill of the process.
///
/// `init(creatingInBackground:)` creates the file on a background queue instead: creating a file
/// can block for milliseconds on a journaling file system (0.8 ms per file on this machine's ext4,
/// with stalls of hundreds of milliseconds when many are created together), which an event loop
/// carrying other participants' packets cannot afford. Pages written before the file exists are
/// held in memory and written as soon as it does; a failed creation is thrown by the next write.
///
/// Owns the descriptor and closes it in `deinit`. Not `Sendable`: use from one task at a time.
public final class OggFileOutput: OggOutput {
    private var fd: Int32
    private var pendingCreation: BackgroundFileCreation?
    private var held: [UInt8] = []
    private var creationError: OggOutputError?

    /// Creates or truncates the file at `path`.
    public init(path: String) throws(OggOutputError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .posix(operation: "open", errno: errno) }
        self.fd = fd
    }

    /// Creates or truncates the file at `path` on a background queue (see the type's notes).
    public init(creatingInBackground path: String) {
        fd = -1
        pendingCreation = BackgroundFileCreation(path: path)
    }

    deinit {
        // Pages still held for a file being created are written before the descriptor closes.
        if pendingCreation != nil { try? settleCreation(wait: true) }
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    public func write(_ bytes: [UInt8]) throws(OggOutputError) {
        try bytes.withUnsafeBytes { bytes in Result { () throws(OggOutputError) in try write(parts: [bytes]) } }.get()
    }

    /// One `writev` for both parts (a recorder's page a second: no joined copy).
    public func write(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) throws(OggOutputError) {
        try write(parts: [header, body])
    }

    /// Writes `parts` in order, or holds them while the file is still being created.
    private func write(parts: [UnsafeRawBufferPointer]) throws(OggOutputError) {
        if pendingCreation != nil {
            try settleCreation(wait: false)
            if pendingCreation != nil {
                for part in parts { held.append(contentsOf: part) }
                return
            }
        }
        if let creationError { throw creationError }
        guard fd >= 0 else { throw .closed }
        try writeAll(parts)
    }

    /// `writev` until every byte of `parts` is written.
    private func writeAll(_ parts: [UnsafeRawBufferPointer]) throws(OggOutputError) {
        var parts = parts
        var first = 0
        while first < parts.count {
            let written = withUnsafeTemporaryAllocation(of: iovec.self, capacity: parts.count) { vectors in
                for index in first..<parts.count {
                    vectors[index - first] = iovec(iov_base: UnsafeMutableRawPointer(mutating: parts[index].baseAddress),
                                                   iov_len: parts[index].count)
                }
                return writev(fd, vectors.baseAddress, Int32(parts.count - first))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw .posix(operation: "writev", errno: errno)
            }
            // A short write: go on after what was written (an empty part is passed over).
            var remaining = written
            while first < parts.count, remaining >= parts[first].count {
                remaining -= parts[first].count
                first += 1
            }
            if first < parts.count, remaining > 0 { parts[first] = UnsafeRawBufferPointer(rebasing: parts[first][remaining...]) }
        }
    }

    /// Takes the background creation's result once there is one (waiting for it if `wait`), and
    /// writes what was held meanwhile.
    private func settleCreation(wait: Bool) throws(OggOutputError) {
        guard let pending = pendingCreation, let result = wait ? pending.waitForResult() : pending.result() else { return }
        pendingCreation = nil
        switch result {
        case .success(let descriptor):
            fd = descriptor
            let bytes = held
            held = []
            if !bytes.isEmpty { try bytes.withUnsafeBytes { bytes in Result { () throws(OggOutputError) in try writeAll([bytes]) } }.get() }
        case .failure(let failure):
            held = []
            let error = OggOutputError.posix(operation: "open", errno: failure.errno)
            creationError = error
            throw error
        }
    }

    /// Forces written data to the storage device (`fsync`).
    public func sync() throws(OggOutputError) {
        try settleCreation(wait: true)
        if let creationError { throw creationError }
        guard fd >= 0 else { throw .closed }
        guard fsync(fd) == 0 else { throw .posix(operation: "fsync", errno: errno) }
    }

    public func close() throws(OggOutputError) {
        try settleCreation(wait: true)
        guard fd >= 0 else { return }
        let result = Glibc.close(fd)
        fd = -1
        guard result == 0 else { throw .posix(operation: "close", errno: errno) }
    }
}

/// One file being created on the file-creation thread. Thread-safety: the result is handed over
/// through a `Mutex`; the owner polls it (no lock once it has the descriptor), and waits for it at
/// close and in deinit, so a descriptor never outlives its owner.
final class BackgroundFileCreation: Sendable {
    /// open(2) failed with `errno`; each output turns it into its own typed error.
    struct Failure: Error, Sendable {
        var errno: Int32
    }

    private enum State: Sendable {
        case pending
        case done(Result<Int32, Failure>)
        case taken
    }

    private let state = Mutex<State>(.pending)

    init(path: String) {
        FileCreationThread.shared.submit { [self] in
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            let result: Result<Int32, Failure> = fd >= 0 ? .success(fd) : .failure(Failure(errno: errno))
            state.withLock { $0 = .done(result) }
        }
    }

    /// The result, once (nil while the file is being created).
    func result() -> Result<Int32, Failure>? {
        state.withLock { state in
            guard case .done(let result) = state else { return nil }
            state = .taken
            return result
        }
    }

    func waitForResult() -> Result<Int32, Failure>? {
        FileCreationThread.shared.wait { state.withLock { if case .pending = $0 { false } else { true } } }
        return result()
    }
}

/// The one thread that creates recording files, one after another, off the event loops and at a
/// lower CPU priority than they run at (nice +10 on Linux, where the nice value is per thread).
///
/// Creating a file costs 0.1–1 ms of CPU on ext4 (more in a directory where thousands of files were
/// just deleted: the inode allocator skips recently deleted inodes). When many participants start
/// at once, a creation thread at the loops' priority took ~40 % of a core from the event loop on a
/// 2-core machine (`peerd-load`, 3,000 streams starting within 3 s), and the shared port's socket
/// buffer overflowed. A creation that waits only delays when the held pages reach the disk.
///
/// Thread-safety (why `@unchecked Sendable` is safe): `jobs` and `started` are read and written
/// only with `mutex` locked; the pthread objects are made once and never freed (the one instance
/// lives as long as the process).
final class FileCreationThread: @unchecked Sendable {
    static let shared = FileCreationThread()

    /// The thread's nice value (higher is lower priority).
    static let niceValue: Int32 = 10
    static let threadName = "peerd-files"

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when a job is queued.
    private let queued = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Broadcast after each job ran.
    private let ran = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [@Sendable () -> Void] = []
    private var started = false

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(queued, nil)
        pthread_cond_init(ran, nil)
    }

    /// Runs `job` on the thread after the jobs queued before it (the thread starts with the first).
    func submit(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        if !started {
            started = true
            var thread = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            let created = pthread_create(&thread, nil, { context in
                Unmanaged<FileCreationThread>.fromOpaque(context!).takeRetainedValue().run()
            }, context)
            if created == 0 {
                pthread_detach(thread)
            } else {
                // No thread (resource limits): run the jobs here, as they come.
                Unmanaged<FileCreationThread>.fromOpaque(context).release()
                started = false
                let pending = jobs
                jobs = []
                pthread_mutex_unlock(mutex)
                for job in pending { job() }
                broadcastRan()
                return
            }
        }
        pthread_cond_signal(queued)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks until `finished` is true; it is checked again after every job the thread runs.
    func wait(until finished: () -> Bool) {
        pthread_mutex_lock(mutex)
        while !finished() { pthread_cond_wait(ran, mutex) }
        pthread_mutex_unlock(mutex)
    }

    private func broadcastRan() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(ran)
        pthread_mutex_unlock(mutex)
    }

    private func run() -> Never {
        #if os(Linux)
        // `who` 0: the calling thread (Linux keeps the nice value per thread).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Self.niceValue)
        // Its own name (a new thread inherits its creator's, an event loop's): profiles tell them apart.
        // (pthread_setname_np and prctl do not import into Swift; the comm file is the same thing.)
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if comm >= 0 {
            _ = Self.threadName.utf8CString.withUnsafeBytes { write(comm, $0.baseAddress, $0.count - 1) }
            _ = Glibc.close(comm)
        }
        #endif
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty { pthread_cond_wait(queued, mutex) }
            let batch = jobs
            jobs = []
            pthread_mutex_unlock(mutex)
            for job in batch {
                job()
                broadcastRan()
            }
        }
    }
}

/// Writes an Ogg Opus stream: OpusHead and OpusTags pages, then audio pages.
///
/// The granule position counts the 48 kHz samples of all packets so far, which includes the
/// pre-skip the decoder drops: pre-skip + playable samples (RFC 7845 §4).
///
/// The newest packet is always held back until the next one arrives or `finish()`, so the EOS
/// page always carries a packet (an empty EOS page is rejected by opusinfo). Everything older
/// is written as pages whenever `flushInterval` samples have accumulated since the last written
/// page, when a page fills up, and on `flush()`. A file cut after any written page is a playable
/// stream (without EOS) that lacks at most the held packet and what came after the last flush.
/// Not `Sendable`: use from one task at a time.
public final class OggOpusWriter {
    public let head: OpusHead
    /// Audio to accumulate before pages are written, in 48 kHz samples.
    public let flushInterval: Int
    // Unchecked exclusivity on the state every written packet touches (the runtime check the
    // optimizer keeps on accesses that span a release costs a call each). No two accesses can
    // overlap: only this class's own methods touch them, by assignment or a call on the value
    // (`OggPagePacker` and arrays call nothing back), and `output` is written only between them.
    /// Granule position after the newest packet.
    @exclusivity(unchecked) public private(set) var granulePosition: Int64 = 0
    public var serialNumber: UInt32 { packer.serialNumber }
    @exclusivity(unchecked) public private(set) var isFinished = false

    private let output: any OggOutput
    @exclusivity(unchecked) private var packer: OggPagePacker
    /// The held packet's granule position; its bytes wait in the packer (`OggPagePacker.hold`), copied
    /// there from the caller's buffer: a recorder's packet is a slice of its datagram, and holding
    /// that would keep every stream's previous datagram alive until the next one, to be read and
    /// freed cold 20 ms later. Copied straight into the page's buffer, it is copied once (storage of
    /// the writer's own, copied into the page on the next packet, cost a second copy and two more
    /// cold cache lines a packet).
    private var heldGranule: Int64?
    /// Granule position of the newest packet handed to the packer.
    private var submittedGranule: Int64 = 0
    private var lastFlushGranule: Int64 = 0

    /// Writes the two header pages immediately.
    public init(output: any OggOutput, head: OpusHead, tags: OpusTags = OpusTags(vendor: "peerd"),
                serialNumber: UInt32, flushInterval: Int = 48_000) throws(OggOpusError) {
        self.output = output
        self.head = head
        self.flushInterval = max(1, flushInterval)
        self.packer = OggPagePacker(serialNumber: serialNumber)
        packer.append(packet: head.serialized(), granulePosition: 0)
        try emit(packer.flush())
        packer.append(packet: tags.serialized(), granulePosition: 0)
        try emit(packer.flush())
    }

    /// Adds what writing the next packet touches: this writer and the packer's buffers.
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        hints.add(self, bytes: 192)
        packer.addPrefetchHints(&hints)
    }

    /// Appends a packet; its duration comes from its TOC.
    public func write(packet: [UInt8]) throws(OggOpusError) {
        let info: OpusPacketInfo
        do throws(OpusPacketError) { info = try OpusPacketInfo.parse(packet) } catch { throw .invalidPacket(error) }
        try write(packet: packet, samples: info.totalSamples)
    }

    /// Appends a packet lasting `samples` (48 kHz).
    public func write(packet: [UInt8], samples: Int) throws(OggOpusError) {
        try write(packet: packet[...], granulePosition: granulePosition + Int64(max(0, samples)))
    }

    /// Appends a packet (a slice, e.g. an RTP payload in its datagram: not copied until paged) lasting `samples`.
    public func write(packet: ArraySlice<UInt8>, samples: Int) throws(OggOpusError) {
        try write(packet: packet, granulePosition: granulePosition + Int64(max(0, samples)))
    }

    /// Appends a packet whose end is at granule position `granulePosition` (48 kHz samples of
    /// all packets from the start of the stream). Granule positions must not decrease.
    public func write(packet: [UInt8], granulePosition: Int64) throws(OggOpusError) {
        try write(packet: packet[...], granulePosition: granulePosition)
    }

    /// Appends a packet slice whose end is at granule position `granulePosition`.
    public func write(packet: ArraySlice<UInt8>, granulePosition: Int64) throws(OggOpusError) {
        guard !isFinished else { throw .finished }
        guard granulePosition >= self.granulePosition else {
            throw .granuleDecreased(previous: self.granulePosition, new: granulePosition)
        }
        if let heldGranule { try submit(granule: heldGranule) }
        // A page that is due goes out before the new packet joins the packer's body buffer, so the
        // buffer peaks at one page's packets: with the held packet too, a second of 80-byte packets
        // crossed an allocation size class (RSS 7 KiB more per stream, peerd-load).
        var flushError: OggOpusError?
        if submittedGranule - lastFlushGranule >= Int64(flushInterval) {
            do { try flush() } catch { flushError = error }
        }
        packet.withUnsafeBytes { packer.hold(bytes: $0) }
        heldGranule = granulePosition
        self.granulePosition = granulePosition
        if let flushError { throw flushError }
    }

    /// Writes every packet but the held newest one as pages now.
    public func flush() throws(OggOpusError) {
        guard !isFinished else { throw .finished }
        try emit(packer.takeFullPages())
        do throws(OggOutputError) {
            try packer.writePendingPage { (header, body) throws(OggOutputError) in try output.write(header: header, body: body) }
        } catch {
            throw .output(error)
        }
        lastFlushGranule = submittedGranule
    }

    /// Writes the held packet on the last page, with the EOS flag. Further writes throw `finished`.
    ///
    /// `playableSamples` trims the end (RFC 7845 §4.4): the final granule position becomes
    /// pre-skip + `playableSamples`, which must fall within the last packet.
    public func finish(playableSamples: Int64? = nil) throws(OggOpusError) {
        guard !isFinished else { return }
        var finalGranule: Int64? = nil
        if let playableSamples {
            let granule = Int64(head.preSkip) + playableSamples
            guard heldGranule != nil, granule <= granulePosition, granule >= submittedGranule else {
                throw .invalidEndTrim(granulePosition: granule)
            }
            finalGranule = granule
        }
        if let heldGranule { try submit(granule: finalGranule ?? heldGranule) }
        heldGranule = nil
        isFinished = true
        try emit(packer.flush(endOfStream: true))
    }

    /// Hands the held packet to the packer.
    private func submit(granule: Int64) throws(OggOpusError) {
        packer.commitHeld(granulePosition: granule)
        submittedGranule = granule
        let full = packer.takeFullPages()
        if !full.isEmpty {
            try emit(full)
            if let last = full.last, last.granulePosition >= 0 { lastFlushGranule = last.granulePosition }
        }
    }

    private func emit(_ pages: [OggPage]) throws(OggOpusError) {
        for page in pages {
            let bytes: [UInt8]
            do throws(OggPageError) { bytes = try page.serialized() } catch { throw .page(error) }
            do throws(OggOutputError) { try output.write(bytes) } catch { throw .output(error) }
        }
    }
}

/// An Opus packet read from an Ogg Opus stream.
public struct OggOpusPacket: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Granule position at the end of this packet (samples of all packets so far).
    public var granulePosition: Int64
    /// Duration from the packet's TOC, 48 kHz samples (0 if the packet is invalid).
    public var samples: Int
    /// Last packet of the stream (EOS page).
    public var isEndOfStream: Bool
}

/// Reads an Ogg Opus stream fed in pieces: headers first, then audio packets with granule
/// positions (counted back from the first page's granule position, then forward by each
/// packet's duration; an end-trimmed last page caps them). Only the first logical
/// stream is read; others are skipped.
public struct OggOpusReader: Sendable {
    public private(set) var head: OpusHead?
    public private(set) var tags: OpusTags?
    /// Samples to drop at the start of the decoded output.
    public var preSkip: Int? { head.map { Int($0.preSkip) } }

    private var pages: OggPageReader
    private var serial: UInt32?
    private var pending: [OggPacket] = []
    private var runningGranule: Int64?
    private var ready: [OggOpusPacket] = []
    private var readyIndex = 0

    public init(verifyCRC: Bool = true) {
        pages = OggPageReader(maxPacketSize: 1 << 24, verifyCRC: verifyCRC)
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) { pages.append(bytes) }

    /// The next audio packet, or nil if more bytes are needed.
    public mutating func nextPacket() throws(OggOpusError) -> OggOpusPacket? {
        while readyIndex >= ready.count {
            ready.removeAll(keepingCapacity: true)
            readyIndex = 0
            let next: OggPacket?
            do throws(OggPageError) { next = try pages.nextPacket() } catch { throw .page(error) }
            guard let packet = next else { return nil }
            if serial == nil {
                guard packet.isOnFirstPage else { throw .missingHeaders }
                serial = packet.serialNumber
            }
            guard packet.serialNumber == serial else { continue }
            if head == nil {
                head = try OpusHead.parse(packet.bytes)
                continue
            }
            if tags == nil {
                tags = try OpusTags.parse(packet.bytes)
                continue
            }
            pending.append(packet)
            if let granule = packet.granulePosition {
                let samples = pending.map { (try? OpusPacketInfo.parse($0.bytes).totalSamples) ?? 0 }
                let total = Int64(samples.reduce(0, +))
                var out: [OggOpusPacket] = []
                if let running = runningGranule,
                   running + total == granule || (packet.isEndOfStream && granule < running + total && granule >= running) {
                    // Continuous with the previous page; on the last page the end may be trimmed.
                    var end = running
                    for (item, count) in zip(pending, samples) {
                        end += Int64(count)
                        out.append(OggOpusPacket(bytes: item.bytes, granulePosition: min(end, granule), samples: count,
                                                 isEndOfStream: item.isEndOfStream))
                    }
                } else {
                    // First audio page, or a discontinuity: count back from the page's granule.
                    var end = granule
                    for (item, count) in zip(pending, samples).reversed() {
                        out.append(OggOpusPacket(bytes: item.bytes, granulePosition: end, samples: count,
                                                 isEndOfStream: item.isEndOfStream))
                        end -= Int64(count)
                    }
                    out.reverse()
                }
                runningGranule = granule
                ready = out
                pending = []
            }
        }
        defer { readyIndex += 1 }
        return ready[readyIndex]
    }

    /// Reads a whole stream: headers and every audio packet.
    public static func read(_ bytes: [UInt8]) throws(OggOpusError) -> (head: OpusHead, tags: OpusTags, packets: [OggOpusPacket]) {
        var reader = OggOpusReader()
        reader.append(bytes)
        var packets: [OggOpusPacket] = []
        while let packet = try reader.nextPacket() { packets.append(packet) }
        guard let head = reader.head, let tags = reader.tags else { throw .missingHeaders }
        return (head, tags, packets)
    }
}
