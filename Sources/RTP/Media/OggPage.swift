// Ogg pages (RFC 3533): codec, packet-to-page packer and a streaming packet reader.
import Wire

/// Why bytes are not a valid Ogg page.
public enum OggPageError: Error, Equatable, Sendable {
    /// Fewer than `needed` bytes are available (`available`) for the header, segment table or body.
    case truncated(needed: Int, available: Int)
    /// The page does not start with "OggS".
    case badCapturePattern
    /// The stream structure version is not 0.
    case badVersion(UInt8)
    /// The stored CRC differs from the CRC of the page.
    case crcMismatch(stored: UInt32, computed: UInt32)
    /// The segment table announces more body bytes than the buffer holds.
    case segmentTableOverrun(bodyLength: Int, available: Int)
    /// More than 255 lacing values, or a body that does not match them (serialize only).
    case invalidSegmentTable
    /// A packet reassembled across pages grew beyond the reader's limit.
    case packetTooLarge(limit: Int)
}

/// Header type flags of an Ogg page. Unknown bits are kept.
public struct OggHeaderType: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The first segment continues a packet from the previous page.
    public static let continued = OggHeaderType(rawValue: 0x01)
    /// Beginning of stream: the first page of a logical bitstream.
    public static let beginOfStream = OggHeaderType(rawValue: 0x02)
    /// End of stream: the last page of a logical bitstream.
    public static let endOfStream = OggHeaderType(rawValue: 0x04)
}

/// One Ogg page: a header with a lacing table and the body bytes it describes.
public struct OggPage: Sendable, Equatable {
    public static let capturePattern: [UInt8] = [0x4F, 0x67, 0x67, 0x53] // "OggS"
    /// Length of the fixed header before the segment table.
    public static let headerLength = 27
    /// Largest possible page: header, 255 lacing values, 255 × 255 body bytes.
    public static let maxPageLength = 27 + 255 + 255 * 255

    public var headerType: OggHeaderType
    /// Codec-defined position of the last packet completed on this page; -1 if none completes.
    public var granulePosition: Int64
    public var serialNumber: UInt32
    public var sequenceNumber: UInt32
    /// Lacing values: a value below 255 ends a packet.
    public var segmentTable: [UInt8]
    public var body: [UInt8]

    public init(headerType: OggHeaderType = [], granulePosition: Int64, serialNumber: UInt32,
                sequenceNumber: UInt32, segmentTable: [UInt8], body: [UInt8]) {
        self.headerType = headerType
        self.granulePosition = granulePosition
        self.serialNumber = serialNumber
        self.sequenceNumber = sequenceNumber
        self.segmentTable = segmentTable
        self.body = body
    }

    /// Pieces of packets on this page, in order; `complete` is false for the last piece if
    /// the packet continues on the next page.
    public var segments: [(bytes: ArraySlice<UInt8>, complete: Bool)] {
        var result: [(bytes: ArraySlice<UInt8>, complete: Bool)] = []
        var start = 0
        var length = 0
        for lacing in segmentTable {
            length += Int(lacing)
            if lacing < 255 {
                let end = min(start + length, body.count)
                result.append((body[min(start, end)..<end], true))
                start += length
                length = 0
            }
        }
        if segmentTable.last == 255 {
            let end = min(start + length, body.count)
            result.append((body[min(start, end)..<end], false))
        }
        return result
    }

    /// Number of packets that end on this page.
    public var completedPacketCount: Int { segmentTable.reduce(0) { $0 + ($1 < 255 ? 1 : 0) } }

    /// The page bytes with a freshly computed CRC.
    public func serialized() throws(OggPageError) -> [UInt8] {
        guard segmentTable.count <= 255,
              segmentTable.reduce(0, { $0 + Int($1) }) == body.count else { throw .invalidSegmentTable }
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + segmentTable.count + body.count)
        body.withUnsafeBytes { body in
            Self.writeHeader(into: &out, headerType: headerType, granulePosition: granulePosition, serialNumber: serialNumber,
                             sequenceNumber: sequenceNumber, segmentTable: segmentTable, body: body)
            out.append(contentsOf: body)
        }
        return out
    }

    /// Appends the header and lacing table of the page with these fields to `out`, its CRC computed
    /// over them and `body` (the page's bytes are `out`'s new bytes followed by `body`). The caller
    /// guarantees at most 255 lacing values that add up to `body.count`.
    static func writeHeader(into out: inout [UInt8], headerType: OggHeaderType, granulePosition: Int64, serialNumber: UInt32,
                            sequenceNumber: UInt32, segmentTable: [UInt8], body: UnsafeRawBufferPointer) {
        let start = out.count
        out += capturePattern
        out.append(0)
        out.append(headerType.rawValue)
        out.appendLittleEndian(UInt64(bitPattern: granulePosition))
        out.appendLittleEndian(serialNumber)
        out.appendLittleEndian(sequenceNumber)
        out.appendLittleEndian(UInt32(0))
        out.append(UInt8(segmentTable.count))
        out += segmentTable
        let crc = OggCRC.update(out.withUnsafeBytes { OggCRC.update(0, UnsafeRawBufferPointer(rebasing: $0[start...])) }, body)
        out[start + 22] = UInt8(truncatingIfNeeded: crc)
        out[start + 23] = UInt8(truncatingIfNeeded: crc >> 8)
        out[start + 24] = UInt8(truncatingIfNeeded: crc >> 16)
        out[start + 25] = UInt8(truncatingIfNeeded: crc >> 24)
    }

    /// Parses one page from the start of `bytes`; returns it and the number of bytes it used.
    public static func parse(_ bytes: UnsafeRawBufferPointer, verifyCRC: Bool = true)
        throws(OggPageError) -> (page: OggPage, length: Int)
    {
        guard bytes.count >= 4 else { throw .truncated(needed: headerLength, available: bytes.count) }
        guard bytes[0] == 0x4F, bytes[1] == 0x67, bytes[2] == 0x67, bytes[3] == 0x53 else { throw .badCapturePattern }
        guard bytes.count >= headerLength else { throw .truncated(needed: headerLength, available: bytes.count) }
        guard bytes[4] == 0 else { throw .badVersion(bytes[4]) }
        let headerType = OggHeaderType(rawValue: bytes[5])
        let granule = Int64(bitPattern: readLE64(bytes, 6))
        let serial = readLE32(bytes, 14)
        let sequence = readLE32(bytes, 18)
        let storedCRC = readLE32(bytes, 22)
        let segmentCount = Int(bytes[26])
        let tableEnd = headerLength + segmentCount
        guard bytes.count >= tableEnd else { throw .truncated(needed: tableEnd, available: bytes.count) }
        let table = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[headerLength..<tableEnd]))
        let bodyLength = table.reduce(0) { $0 + Int($1) }
        guard bytes.count - tableEnd >= bodyLength else {
            throw .segmentTableOverrun(bodyLength: bodyLength, available: bytes.count - tableEnd)
        }
        let pageLength = tableEnd + bodyLength
        if verifyCRC {
            var crc = OggCRC.update(0, UnsafeRawBufferPointer(rebasing: bytes[0..<22]))
            crc = withUnsafeBytes(of: UInt32(0)) { [crc] zero in OggCRC.update(crc, zero) }
            crc = OggCRC.update(crc, UnsafeRawBufferPointer(rebasing: bytes[26..<pageLength]))
            guard crc == storedCRC else { throw .crcMismatch(stored: storedCRC, computed: crc) }
        }
        let body = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[tableEnd..<pageLength]))
        let page = OggPage(headerType: headerType, granulePosition: granule, serialNumber: serial,
                           sequenceNumber: sequence, segmentTable: table, body: body)
        return (page, pageLength)
    }

    /// Parses one page from the start of `bytes`.
    public static func parse(_ bytes: [UInt8], verifyCRC: Bool = true) throws(OggPageError) -> (page: OggPage, length: Int) {
        let result = bytes.withUnsafeBytes { raw -> Result<(page: OggPage, length: Int), OggPageError> in
            do throws(OggPageError) { return .success(try parse(raw, verifyCRC: verifyCRC)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private static func readLE32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    private static func readLE64(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(readLE32(b, i)) | UInt64(readLE32(b, i + 4)) << 32
    }
}
