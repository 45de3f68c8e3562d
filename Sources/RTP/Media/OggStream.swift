// Packing packets into Ogg pages and reading them back from a byte stream (RFC 3533).
import Wire

/// A packet read from an Ogg stream.
public struct OggPacket: Sendable, Equatable {
    public var bytes: [UInt8]
    /// The page granule position, present only on the last packet completed on a page
    /// whose granule position is not -1.
    public var granulePosition: Int64?
    public var serialNumber: UInt32
    /// Sequence number of the page on which the packet ends.
    public var pageSequenceNumber: UInt32
    /// The packet ends on a beginning-of-stream page.
    public var isOnFirstPage: Bool
    /// The packet is the last one of an end-of-stream page.
    public var isEndOfStream: Bool

    public init(bytes: [UInt8], granulePosition: Int64?, serialNumber: UInt32, pageSequenceNumber: UInt32,
                isOnFirstPage: Bool, isEndOfStream: Bool) {
        self.bytes = bytes
        self.granulePosition = granulePosition
        self.serialNumber = serialNumber
        self.pageSequenceNumber = pageSequenceNumber
        self.isOnFirstPage = isOnFirstPage
        self.isEndOfStream = isEndOfStream
    }
}

/// Packs the packets of one logical bitstream into pages.
///
/// Packets of any length are laced into 255-byte segments; a page closes by itself when its
/// lacing table is full (255 segments, so a packet may span pages), or when `flush` is called.
/// The first page gets the BOS flag; `flush(endOfStream: true)` sets EOS on the last page.
///
/// One packet may be held (`hold`): its bytes wait at the end of the body buffer, on no page, until
/// `commitHeld` laces them with their granule position (a writer that keeps its newest packet back
/// copies it once, into the page's buffer, instead of into storage of its own and from there later).
public struct OggPagePacker: Sendable {
    public let serialNumber: UInt32
    /// Sequence number the next page will get.
    public private(set) var nextSequenceNumber: UInt32
    /// Whether no page has been produced yet.
    public private(set) var isAtStart = true
    /// Whether EOS was already written.
    public private(set) var isFinished = false

    private var table: [UInt8] = []
    /// The laced bytes (`lacedBytes`, the sum of `table`), then the held packet's, if one is held.
    private var body: [UInt8] = []
    private var lacedBytes = 0
    /// Whether the bytes after `lacedBytes` are a held packet (see `hold`).
    public private(set) var isHolding = false
    private var pageGranule: Int64 = -1
    private var lastGranule: Int64 = 0
    private var startsContinued = false
    private var ready: [OggPage] = []

    public init(serialNumber: UInt32, firstSequenceNumber: UInt32 = 0) {
        self.serialNumber = serialNumber
        self.nextSequenceNumber = firstSequenceNumber
    }

    /// Adds the headers of the lacing table and body buffers (every append checks and writes them).
    public func addPrefetchHints(_ hints: inout PrefetchHints) {
        hints.add(table, bytes: 64)
        hints.add(body, bytes: 32)
    }

    /// Whether packet data is waiting for a page.
    public var hasPendingData: Bool { !table.isEmpty }

    /// Adds a packet whose end has granule position `granulePosition`.
    public mutating func append(packet: [UInt8], granulePosition: Int64) {
        append(packet: packet[...], granulePosition: granulePosition)
    }

    /// Adds a packet (a slice, e.g. of a received datagram) whose end has granule position `granulePosition`.
    public mutating func append(packet: ArraySlice<UInt8>, granulePosition: Int64) {
        packet.withUnsafeBytes { append(bytes: $0, granulePosition: granulePosition) }
    }

    /// Adds a packet given as raw bytes (copied) whose end has granule position `granulePosition`.
    /// Not while a packet is held (commit it first: packets stay in order).
    public mutating func append(bytes packet: UnsafeRawBufferPointer, granulePosition: Int64) {
        precondition(!isHolding, "commit the held packet before appending another")
        // One memcpy: the generic `+=` of a slice goes element by element.
        body.append(contentsOf: packet)
        lace(count: packet.count, granulePosition: granulePosition)
    }

    /// Holds a packet (copied): its bytes go to the body buffer, but on no page until `commitHeld`
    /// laces them. At most one packet is held at a time.
    public mutating func hold(bytes packet: UnsafeRawBufferPointer) {
        precondition(!isHolding, "one packet is held at a time")
        body.append(contentsOf: packet)
        isHolding = true
    }

    /// Laces the held packet, whose end has granule position `granulePosition`, as `append` would
    /// have. Does nothing when no packet is held.
    public mutating func commitHeld(granulePosition: Int64) {
        guard isHolding else { return }
        isHolding = false
        lace(count: body.count - lacedBytes, granulePosition: granulePosition)
    }

    /// Laces the `count` bytes that follow the laced ones in `body`: one packet, whose end has
    /// granule position `granulePosition`. Pages close as their tables fill.
    private mutating func lace(count: Int, granulePosition: Int64) {
        var remaining = count
        while true {
            let length = min(255, remaining)
            table.append(UInt8(length))
            lacedBytes += length
            remaining -= length
            let last = length < 255
            if last {
                pageGranule = granulePosition
                lastGranule = granulePosition
            }
            if table.count == 255 { closePage(endOfStream: false, nextContinued: !last) }
            if last { break }
        }
    }

    /// Pages closed because their lacing table filled up, leaving pending data in place.
    public mutating func takeFullPages() -> [OggPage] {
        defer { ready = [] }
        return ready
    }

    /// All closed pages plus a page for the pending data. With `endOfStream`, the last page
    /// gets the EOS flag (an empty page carrying the last granule position if nothing is pending).
    /// `finalGranulePosition` replaces the granule position of the page made from pending data.
    public mutating func flush(endOfStream: Bool = false, finalGranulePosition: Int64? = nil) -> [OggPage] {
        if !table.isEmpty || (endOfStream && !isFinished) {
            if table.isEmpty { pageGranule = lastGranule }
            if let finalGranulePosition, !table.isEmpty {
                pageGranule = finalGranulePosition
                lastGranule = finalGranulePosition
            }
            closePage(endOfStream: endOfStream, nextContinued: false)
        }
        return takeFullPages()
    }

    /// Closes the pending data as a page, as `flush()` does, and hands that page's bytes to `write`
    /// in two parts, the header with its lacing table and the body, straight from the packer's
    /// buffers: no page value, no serialized copy, and the buffers keep their capacity for the next
    /// page (a recorder's page a second needs no growing buffers, and the buffers' prefetch hints
    /// stay true). Does nothing when no data is pending. Take closed full pages first
    /// (`takeFullPages`): this page comes after them.
    public mutating func writePendingPage<Failure: Error>(
        _ write: (_ header: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer) throws(Failure) -> Void
    ) throws(Failure) {
        guard !table.isEmpty else { return }
        precondition(ready.isEmpty, "take the full pages before writing the pending one")
        var header: [UInt8] = []
        header.reserveCapacity(OggPage.headerLength + table.count)
        let flags = nextPageFlags(endOfStream: false)
        let laced = lacedBytes
        let written: Result<Void, Failure> = body.withUnsafeBytes { body in
            let body = UnsafeRawBufferPointer(rebasing: body[..<laced])
            OggPage.writeHeader(into: &header, headerType: flags, granulePosition: pageGranule, serialNumber: serialNumber,
                                sequenceNumber: nextSequenceNumber, segmentTable: table, body: body)
            return header.withUnsafeBytes { header in
                do throws(Failure) { try write(header, body) } catch { return .failure(error) }
                return .success(())
            }
        }
        // The page is gone either way (as a flushed page whose write failed): the stream goes on.
        advance(endOfStream: false, nextContinued: false)
        table.removeAll(keepingCapacity: true)
        // A held packet moves to the front (in place: the buffer keeps its capacity and address).
        body.removeSubrange(0..<laced)
        lacedBytes = 0
        try written.get()
    }

    private func nextPageFlags(endOfStream: Bool) -> OggHeaderType {
        var flags: OggHeaderType = []
        if startsContinued { flags.insert(.continued) }
        if isAtStart { flags.insert(.beginOfStream) }
        if endOfStream { flags.insert(.endOfStream) }
        return flags
    }

    private mutating func advance(endOfStream: Bool, nextContinued: Bool) {
        nextSequenceNumber &+= 1
        isAtStart = false
        if endOfStream { isFinished = true }
        pageGranule = -1
        startsContinued = nextContinued
    }

    private mutating func closePage(endOfStream: Bool, nextContinued: Bool) {
        // A held packet's bytes (after the laced ones) stay for the next page.
        var rest: [UInt8] = []
        if body.count > lacedBytes {
            rest = Array(body[lacedBytes...])
            body.removeLast(body.count - lacedBytes)
        }
        ready.append(OggPage(headerType: nextPageFlags(endOfStream: endOfStream), granulePosition: pageGranule,
                             serialNumber: serialNumber, sequenceNumber: nextSequenceNumber, segmentTable: table, body: body))
        advance(endOfStream: endOfStream, nextContinued: nextContinued)
        // The page holds the buffers now: the next page starts new ones.
        table = []
        body = rest
        lacedBytes = 0
    }
}

/// Extracts pages and packets from an Ogg byte stream fed in pieces.
///
/// `nextPage`/`nextPacket` return nil when more bytes are needed. On a corrupt page they throw
/// once and skip to the next capture pattern, so the caller may keep reading. A packet whose
/// start or end is lost (sequence gap, missing continuation) is dropped.
public struct OggPageReader: Sendable {
    /// Reassembled packets larger than this throw `packetTooLarge`.
    public var maxPacketSize: Int
    public var verifyCRC: Bool

    private var buffer: [UInt8] = []
    private var start = 0
    private var partials: [UInt32: (bytes: [UInt8], nextSequence: UInt32)] = [:]
    private var queue: [OggPacket] = []
    private var queueIndex = 0

    public init(maxPacketSize: Int = 1 << 24, verifyCRC: Bool = true) {
        self.maxPacketSize = maxPacketSize
        self.verifyCRC = verifyCRC
    }

    /// Bytes received but not yet consumed as pages.
    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete page, or nil if more bytes are needed.
    public mutating func nextPage() throws(OggPageError) -> OggPage? {
        guard start < buffer.count else { return nil }
        let result: Result<(page: OggPage, length: Int), OggPageError> = buffer.withUnsafeBytes { raw in
            let view = UnsafeRawBufferPointer(rebasing: raw[start...])
            do throws(OggPageError) {
                return .success(try OggPage.parse(view, verifyCRC: verifyCRC))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let parsed):
            start += parsed.length
            return parsed.page
        case .failure(.truncated), .failure(.segmentTableOverrun):
            return nil
        case .failure(let error):
            skipToNextCapture()
            throw error
        }
    }

    /// The next complete packet, or nil if more bytes are needed.
    public mutating func nextPacket() throws(OggPageError) -> OggPacket? {
        while queueIndex >= queue.count {
            queue.removeAll(keepingCapacity: true)
            queueIndex = 0
            guard let page = try nextPage() else { return nil }
            try receive(page)
        }
        defer { queueIndex += 1 }
        return queue[queueIndex]
    }

    private mutating func receive(_ page: OggPage) throws(OggPageError) {
        let serial = page.serialNumber
        var partial: [UInt8]? = nil
        if let state = partials.removeValue(forKey: serial), state.nextSequence == page.sequenceNumber,
           page.headerType.contains(.continued) {
            partial = state.bytes
        }
        let orphan = page.headerType.contains(.continued) && partial == nil
        let segments = page.segments
        let completed = page.completedPacketCount
        var completedSoFar = 0
        var tooLarge = false
        for (index, segment) in segments.enumerated() {
            if index == 0 && orphan { continue }
            var bytes = index == 0 ? (partial ?? []) : []
            partial = nil
            if bytes.count + segment.bytes.count > maxPacketSize {
                tooLarge = true
                if segment.complete { completedSoFar += 1 }
                continue
            }
            bytes += segment.bytes
            if segment.complete {
                completedSoFar += 1
                let isLast = completedSoFar == completed
                queue.append(OggPacket(
                    bytes: bytes,
                    granulePosition: isLast && page.granulePosition != -1 ? page.granulePosition : nil,
                    serialNumber: serial, pageSequenceNumber: page.sequenceNumber,
                    isOnFirstPage: page.headerType.contains(.beginOfStream),
                    isEndOfStream: isLast && page.headerType.contains(.endOfStream)))
            } else {
                partial = bytes
            }
        }
        if let partial, !page.headerType.contains(.endOfStream) {
            partials[serial] = (partial, page.sequenceNumber &+ 1)
        }
        if tooLarge { throw .packetTooLarge(limit: maxPacketSize) }
    }

    private mutating func skipToNextCapture() {
        var index = start + 1
        while index + 4 <= buffer.count {
            if buffer[index] == 0x4F && buffer[index + 1] == 0x67 && buffer[index + 2] == 0x67 && buffer[index + 3] == 0x53 {
                start = index
                return
            }
            index += 1
        }
        start = max(start + 1, buffer.count - 3)
    }
}
