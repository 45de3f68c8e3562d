import Wire

/// Why bytes are not a valid RTCP (compound) packet.
public enum RTCPParseError: Error, Equatable, Sendable {
    /// No bytes at all.
    case empty
    /// Fewer than 4 header bytes remain at `offset`.
    case truncatedHeader(offset: Int, available: Int)
    /// The version field is not 2.
    case badVersion(UInt8, offset: Int)
    /// The length field claims more bytes than remain in the buffer.
    case lengthOverrun(offset: Int, declared: Int, available: Int)
    /// The padding count is 0, not a multiple of 4, or larger than the packet body.
    case invalidPadding(offset: Int, paddingLength: Int, bodyLength: Int)
    /// The P bit is set on a packet that is not the last of the compound.
    case paddingNotLast(index: Int)
    /// A body is shorter than its fixed fields and counts require.
    case bodyTooShort(packetType: UInt8, needed: Int, available: Int)
    /// Bytes left over after the last element the counts describe.
    case trailingBytes(packetType: UInt8, count: Int)
    /// An SDES item or chunk terminator runs past the body.
    case sdesOverrun(chunk: Int)
    /// The BYE reason length runs past the body.
    case byeReasonOverrun(length: Int, available: Int)
    /// An XR block's length runs past the body.
    case xrBlockOverrun(blockType: UInt8, length: Int, available: Int)
    /// An RRTR block is not 2 words or a DLRR block is not a multiple of 3 words.
    case xrBlockLengthMismatch(blockType: UInt8, words: Int)
    /// With RFC 3550 compound rules, the first packet must be SR or RR.
    case firstPacketNotReport(packetType: UInt8)
    /// A single-packet parse found more than one packet.
    case notSinglePacket(count: Int)
}

/// Why an RTCP value cannot be serialized.
public enum RTCPSerializeError: Error, Equatable, Sendable {
    /// More entries than the 5-bit count field allows (31).
    case tooManyEntries(field: String, count: Int)
    /// A byte string longer than its 8-bit length field allows (255), or an APP name not 4 bytes.
    case invalidLength(field: String, length: Int)
    /// A raw field whose length is not a multiple of 4.
    case unaligned(field: String, length: Int)
    /// A value outside its field (SDES item type 0, APP subtype > 31, ...).
    case invalidValue(field: String)
    /// The packet exceeds 65536 words.
    case packetTooLong(length: Int)
    /// Padding must be a non-zero multiple of 4.
    case invalidPadding(Int)
}

/// RTCP packet type codes.
public enum RTCPPacketType {
    public static let senderReport: UInt8 = 200
    public static let receiverReport: UInt8 = 201
    public static let sourceDescription: UInt8 = 202
    public static let goodbye: UInt8 = 203
    public static let applicationDefined: UInt8 = 204
    public static let transportFeedback: UInt8 = 205
    public static let payloadSpecificFeedback: UInt8 = 206
    public static let extendedReport: UInt8 = 207
}

/// A reception report block (RFC 3550 §6.4.1).
public struct RTCPReportBlock: Sendable, Hashable {
    public var ssrc: SSRC
    public var fractionLost: UInt8
    /// 24-bit signed; serialization clamps to -8388608...8388607.
    public var cumulativeLost: Int32
    public var extendedHighestSequence: UInt32
    public var jitter: UInt32
    /// Middle 32 bits of the last SR's NTP time, 0 if none.
    public var lastSR: UInt32
    /// Delay since that SR in units of 1/65536 s.
    public var delaySinceLastSR: UInt32

    public init(
        ssrc: SSRC, fractionLost: UInt8 = 0, cumulativeLost: Int32 = 0, extendedHighestSequence: UInt32 = 0,
        jitter: UInt32 = 0, lastSR: UInt32 = 0, delaySinceLastSR: UInt32 = 0
    ) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequence = extendedHighestSequence
        self.jitter = jitter
        self.lastSR = lastSR
        self.delaySinceLastSR = delaySinceLastSR
    }
}

/// Short name used in the task brief.
public typealias ReportBlock = RTCPReportBlock

/// Sender report (PT 200).
public struct RTCPSenderReport: Sendable, Hashable {
    public var ssrc: SSRC
    public var ntpTime: NTPTime
    public var rtpTimestamp: RTPTimestamp
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reportBlocks: [RTCPReportBlock]
    /// Profile-specific extension bytes (multiple of 4).
    public var profileExtension: [UInt8]

    public init(
        ssrc: SSRC, ntpTime: NTPTime, rtpTimestamp: RTPTimestamp, packetCount: UInt32, octetCount: UInt32,
        reportBlocks: [RTCPReportBlock] = [], profileExtension: [UInt8] = []
    ) {
        self.ssrc = ssrc
        self.ntpTime = ntpTime
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
        self.reportBlocks = reportBlocks
        self.profileExtension = profileExtension
    }
}

/// Receiver report (PT 201).
public struct RTCPReceiverReport: Sendable, Hashable {
    public var ssrc: SSRC
    public var reportBlocks: [RTCPReportBlock]
    /// Profile-specific extension bytes (multiple of 4).
    public var profileExtension: [UInt8]

    public init(ssrc: SSRC, reportBlocks: [RTCPReportBlock] = [], profileExtension: [UInt8] = []) {
        self.ssrc = ssrc
        self.reportBlocks = reportBlocks
        self.profileExtension = profileExtension
    }
}

/// SDES item type (RFC 3550 §6.5); an open set so unknown types survive a round trip.
public struct RTCPSDESItemType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let cname = Self(rawValue: 1)
    public static let name = Self(rawValue: 2)
    public static let email = Self(rawValue: 3)
    public static let phone = Self(rawValue: 4)
    public static let location = Self(rawValue: 5)
    public static let tool = Self(rawValue: 6)
    public static let note = Self(rawValue: 7)
    public static let priv = Self(rawValue: 8)
}

/// One SDES item: type and value bytes (0...255).
public struct RTCPSDESItem: Sendable, Hashable {
    public var type: RTCPSDESItemType
    public var value: [UInt8]

    public init(type: RTCPSDESItemType, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    public init(type: RTCPSDESItemType, text: String) { self.init(type: type, value: Array(text.utf8)) }

    /// The value as UTF-8 text, nil if invalid.
    public var text: String? { String(validating: value, as: UTF8.self) }
}

/// One SDES chunk: a source and its items.
public struct RTCPSDESChunk: Sendable, Hashable {
    public var ssrc: SSRC
    public var items: [RTCPSDESItem]

    public init(ssrc: SSRC, items: [RTCPSDESItem]) {
        self.ssrc = ssrc
        self.items = items
    }

    /// The first CNAME item as text.
    public var cname: String? { items.first { $0.type == .cname }?.text }
}

/// Source description (PT 202).
public struct RTCPSourceDescription: Sendable, Hashable {
    public var chunks: [RTCPSDESChunk]
    public init(chunks: [RTCPSDESChunk]) { self.chunks = chunks }
}

/// Goodbye (PT 203).
public struct RTCPGoodbye: Sendable, Hashable {
    public var ssrcs: [SSRC]
    /// Reason bytes (0...255), nil when absent.
    public var reason: [UInt8]?

    public init(ssrcs: [SSRC], reason: [UInt8]? = nil) {
        self.ssrcs = ssrcs
        self.reason = reason
    }

    public init(ssrcs: [SSRC], reason: String) { self.init(ssrcs: ssrcs, reason: Array(reason.utf8)) }

    public var reasonText: String? { reason.flatMap { String(validating: $0, as: UTF8.self) } }
}

/// Application-defined packet (PT 204).
public struct RTCPApplicationDefined: Sendable, Hashable {
    /// 0...31.
    public var subtype: UInt8
    public var ssrc: SSRC
    /// Exactly 4 bytes (ASCII by convention).
    public var name: [UInt8]
    /// Multiple of 4 bytes.
    public var data: [UInt8]

    public init(subtype: UInt8, ssrc: SSRC, name: [UInt8], data: [UInt8]) {
        self.subtype = subtype
        self.ssrc = ssrc
        self.name = name
        self.data = data
    }

    public init(subtype: UInt8, ssrc: SSRC, name: String, data: [UInt8]) {
        self.init(subtype: subtype, ssrc: ssrc, name: Array(name.utf8), data: data)
    }

    public var nameText: String? { String(validating: name, as: UTF8.self) }
}

/// A feedback message kept raw: format, sender and media SSRC, and the FCI bytes (RFC 4585 §6.1).
public struct RTCPFeedbackMessage: Sendable, Hashable {
    /// 0...31.
    public var format: UInt8
    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC
    /// Multiple of 4 bytes.
    public var fci: [UInt8]

    public init(format: UInt8, senderSSRC: SSRC, mediaSSRC: SSRC, fci: [UInt8]) {
        self.format = format
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.fci = fci
    }
}

/// One generic NACK entry: a lost packet id and a bitmask of the 16 following losses.
public struct RTCPNACKEntry: Sendable, Hashable {
    public var packetID: SequenceNumber
    /// Bit i set: `packetID + i + 1` is lost too.
    public var bitmask: UInt16

    public init(packetID: SequenceNumber, bitmask: UInt16) {
        self.packetID = packetID
        self.bitmask = bitmask
    }

    /// The sequence numbers this entry reports, in order.
    public var sequenceNumbers: [SequenceNumber] {
        var result = [packetID]
        for bit in 0..<16 where bitmask & (1 << bit) != 0 { result.append(packetID.advanced(by: bit + 1)) }
        return result
    }
}

/// Generic NACK (RTPFB FMT 1, RFC 4585 §6.2.1).
public struct RTCPGenericNACK: Sendable, Hashable {
    public static let format: UInt8 = 1
    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC
    public var entries: [RTCPNACKEntry]

    public init(senderSSRC: SSRC, mediaSSRC: SSRC, entries: [RTCPNACKEntry]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.entries = entries
    }

    /// Packs lost sequence numbers into the fewest entries, ordered across the wrap: the list
    /// starts after the widest gap between consecutive lost numbers (modulo 2^16).
    public init(senderSSRC: SSRC, mediaSSRC: SSRC, lost: some Sequence<SequenceNumber>) {
        let sorted = Set(lost).map(\.rawValue).sorted()
        var start = 0
        if sorted.count > 1 {
            var widest = Int(sorted[0]) + 65536 - Int(sorted[sorted.count - 1])
            for i in 1..<sorted.count where Int(sorted[i]) - Int(sorted[i - 1]) > widest {
                widest = Int(sorted[i]) - Int(sorted[i - 1])
                start = i
            }
        }
        var entries = [RTCPNACKEntry]()
        for k in 0..<sorted.count {
            let seq = SequenceNumber(sorted[(start + k) % sorted.count])
            if let last = entries.last, case let d = last.packetID.distance(to: seq), (1...16).contains(d) {
                entries[entries.count - 1].bitmask |= 1 << (d - 1)
            } else {
                entries.append(RTCPNACKEntry(packetID: seq, bitmask: 0))
            }
        }
        self.init(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, entries: entries)
    }

    /// All reported sequence numbers in packet order, without duplicates.
    public var lostSequenceNumbers: [SequenceNumber] {
        var seen = Set<SequenceNumber>()
        return entries.flatMap(\.sequenceNumbers).filter { seen.insert($0).inserted }
    }

    /// All reported sequence numbers as a set.
    public var lostSet: Set<SequenceNumber> { Set(entries.flatMap(\.sequenceNumbers)) }
}

/// Transport-wide congestion control feedback (RTPFB FMT 15,
/// draft-holmer-rmcat-transport-wide-cc-extensions-01). Chunks and deltas are kept raw.
public struct RTCPTransportWideCC: Sendable, Hashable {
    public static let format: UInt8 = 15
    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC
    public var baseSequenceNumber: UInt16
    public var packetStatusCount: UInt16
    /// 24-bit signed, in multiples of 64 ms.
    public var referenceTime: Int32
    public var feedbackPacketCount: UInt8
    /// Packet status chunks, receive deltas and zero padding (multiple of 4 bytes).
    public var chunksAndDeltas: [UInt8]

    public init(
        senderSSRC: SSRC, mediaSSRC: SSRC, baseSequenceNumber: UInt16, packetStatusCount: UInt16,
        referenceTime: Int32, feedbackPacketCount: UInt8, chunksAndDeltas: [UInt8]
    ) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.baseSequenceNumber = baseSequenceNumber
        self.packetStatusCount = packetStatusCount
        self.referenceTime = referenceTime
        self.feedbackPacketCount = feedbackPacketCount
        self.chunksAndDeltas = chunksAndDeltas
    }
}

/// Transport-layer feedback (PT 205).
public enum RTCPTransportFeedback: Sendable, Hashable {
    case genericNACK(RTCPGenericNACK)
    case transportWideCC(RTCPTransportWideCC)
    case other(RTCPFeedbackMessage)
}

/// Payload-specific feedback (PT 206).
public enum RTCPPayloadSpecificFeedback: Sendable, Hashable {
    /// Picture loss indication (FMT 1, no FCI).
    case pictureLossIndication(senderSSRC: SSRC, mediaSSRC: SSRC)
    case other(RTCPFeedbackMessage)

    public static let pictureLossIndicationFormat: UInt8 = 1
}

/// A DLRR sub-block (RFC 3611 §4.5).
public struct RTCPDLRRSubBlock: Sendable, Hashable {
    public var ssrc: SSRC
    /// Compact NTP of the last RRTR received from `ssrc`.
    public var lastRR: UInt32
    /// Delay since that RRTR in units of 1/65536 s.
    public var delaySinceLastRR: UInt32

    public init(ssrc: SSRC, lastRR: UInt32, delaySinceLastRR: UInt32) {
        self.ssrc = ssrc
        self.lastRR = lastRR
        self.delaySinceLastRR = delaySinceLastRR
    }
}

/// An extended report block (RFC 3611).
public enum RTCPXRBlock: Sendable, Hashable {
    /// Receiver reference time (BT 4).
    case receiverReferenceTime(NTPTime)
    /// DLRR (BT 5).
    case dlrr([RTCPDLRRSubBlock])
    /// Any other block type, kept raw (contents a multiple of 4 bytes).
    case other(blockType: UInt8, typeSpecific: UInt8, contents: [UInt8])

    public static let receiverReferenceTimeType: UInt8 = 4
    public static let dlrrType: UInt8 = 5
}

/// Extended report (PT 207, RFC 3611).
public struct RTCPExtendedReport: Sendable, Hashable {
    public var ssrc: SSRC
    public var blocks: [RTCPXRBlock]

    public init(ssrc: SSRC, blocks: [RTCPXRBlock]) {
        self.ssrc = ssrc
        self.blocks = blocks
    }
}

/// A packet of a type this codec does not interpret, kept raw.
public struct RTCPUnknownPacket: Sendable, Hashable {
    public var packetType: UInt8
    /// The 5-bit count / format field.
    public var count: UInt8
    /// Body after the 4-byte header, without padding (multiple of 4).
    public var body: [UInt8]

    public init(packetType: UInt8, count: UInt8, body: [UInt8]) {
        self.packetType = packetType
        self.count = count
        self.body = body
    }
}

/// One RTCP packet.
public enum RTCPPacket: Sendable, Hashable {
    case senderReport(RTCPSenderReport)
    case receiverReport(RTCPReceiverReport)
    case sourceDescription(RTCPSourceDescription)
    case goodbye(RTCPGoodbye)
    case applicationDefined(RTCPApplicationDefined)
    case transportFeedback(RTCPTransportFeedback)
    case payloadSpecificFeedback(RTCPPayloadSpecificFeedback)
    case extendedReport(RTCPExtendedReport)
    case unknown(RTCPUnknownPacket)

    /// Parses bytes that hold exactly one RTCP packet (padding allowed).
    public init(parsing bytes: [UInt8]) throws(RTCPParseError) {
        let compound = try RTCPCompoundPacket(parsing: bytes)
        guard compound.packets.count == 1, let only = compound.packets.first else {
            throw .notSinglePacket(count: compound.packets.count)
        }
        self = only
    }

    /// The packet type code written in the header.
    public var packetType: UInt8 {
        switch self {
        case .senderReport: RTCPPacketType.senderReport
        case .receiverReport: RTCPPacketType.receiverReport
        case .sourceDescription: RTCPPacketType.sourceDescription
        case .goodbye: RTCPPacketType.goodbye
        case .applicationDefined: RTCPPacketType.applicationDefined
        case .transportFeedback: RTCPPacketType.transportFeedback
        case .payloadSpecificFeedback: RTCPPacketType.payloadSpecificFeedback
        case .extendedReport: RTCPPacketType.extendedReport
        case .unknown(let packet): packet.packetType
        }
    }
}

/// A compound RTCP packet (RFC 3550 §6.1), or a reduced-size one (RFC 5506).
public struct RTCPCompoundPacket: Sendable, Hashable {
    public var packets: [RTCPPacket]
    /// Padding after the last packet (P bit on it), a multiple of 4; 0 for none.
    public var paddingLength: UInt8

    public init(packets: [RTCPPacket], paddingLength: UInt8 = 0) {
        self.packets = packets
        self.paddingLength = paddingLength
    }

    /// Parses packets by their length fields until the buffer ends. Every header must have version
    /// 2 and a length inside the buffer; only the last packet may be padded. With
    /// `requireCompoundRules` the first packet must be SR or RR (RFC 3550); without it any
    /// packets are accepted, as reduced-size RTCP allows (RFC 5506).
    public init(parsing bytes: [UInt8], requireCompoundRules: Bool = false) throws(RTCPParseError) {
        try self.init(parsing: bytes[...], requireCompoundRules: requireCompoundRules)
    }

    public init(parsing bytes: ArraySlice<UInt8>, requireCompoundRules: Bool = false) throws(RTCPParseError) {
        guard !bytes.isEmpty else { throw .empty }
        var packets = [RTCPPacket]()
        var padding: UInt8 = 0
        var offset = 0
        let s = bytes.startIndex
        while offset < bytes.count {
            let available = bytes.count - offset
            guard available >= 4 else { throw .truncatedHeader(offset: offset, available: available) }
            let b0 = bytes[s + offset]
            guard b0 >> 6 == 2 else { throw .badVersion(b0 >> 6, offset: offset) }
            let packetType = bytes[s + offset + 1]
            let length = (Int(bytes.rtpU16(s + offset + 2)) + 1) * 4
            guard length <= available else {
                throw .lengthOverrun(offset: offset, declared: length, available: available)
            }
            var bodyEnd = s + offset + length
            if b0 & 0x20 != 0 {
                guard offset + length == bytes.count else { throw .paddingNotLast(index: packets.count) }
                let count = Int(bytes[bodyEnd - 1])
                guard count > 0, count % 4 == 0, count <= length - 4 else {
                    throw .invalidPadding(offset: offset, paddingLength: count, bodyLength: length - 4)
                }
                padding = UInt8(count)
                bodyEnd -= count
            }
            if requireCompoundRules && packets.isEmpty
                && packetType != RTCPPacketType.senderReport && packetType != RTCPPacketType.receiverReport
            {
                throw .firstPacketNotReport(packetType: packetType)
            }
            let body = RTCPBodyReader(bytes: bytes[(s + offset + 4)..<bodyEnd], packetType: packetType)
            packets.append(try body.parse(count: b0 & 0x1F))
            offset += length
        }
        self.packets = packets
        self.paddingLength = padding
    }

    /// Appends all packets; the last one carries the padding.
    public func serialize(into out: inout [UInt8]) throws(RTCPSerializeError) {
        for (index, packet) in packets.enumerated() {
            try packet.serialize(into: &out, paddingLength: index == packets.count - 1 ? paddingLength : 0)
        }
    }

    public func serialized() throws(RTCPSerializeError) -> [UInt8] {
        var out = [UInt8]()
        try serialize(into: &out)
        return out
    }
}

/// Parses one packet body (after the header, without padding).
struct RTCPBodyReader {
    let bytes: ArraySlice<UInt8>
    let packetType: UInt8

    var start: Int { bytes.startIndex }
    var count: Int { bytes.count }

    func need(_ n: Int) throws(RTCPParseError) {
        guard n <= count else { throw .bodyTooShort(packetType: packetType, needed: n, available: count) }
    }

    func u32(_ at: Int) -> UInt32 { bytes.rtpU32(start + at) }
    func ssrc(_ at: Int) -> SSRC { SSRC(bytes.rtpU32(start + at)) }
    func array(_ from: Int, _ to: Int) -> [UInt8] { Array(bytes[(start + from)..<(start + to)]) }

    func parse(count field: UInt8) throws(RTCPParseError) -> RTCPPacket {
        switch packetType {
        case RTCPPacketType.senderReport:
            try need(24 + 24 * Int(field))
            let blocks = reportBlocks(at: 24, count: Int(field))
            return .senderReport(RTCPSenderReport(
                ssrc: ssrc(0), ntpTime: NTPTime(rawValue: UInt64(u32(4)) << 32 | UInt64(u32(8))),
                rtpTimestamp: RTPTimestamp(u32(12)), packetCount: u32(16), octetCount: u32(20),
                reportBlocks: blocks, profileExtension: array(24 + 24 * Int(field), count)))
        case RTCPPacketType.receiverReport:
            try need(4 + 24 * Int(field))
            return .receiverReport(RTCPReceiverReport(
                ssrc: ssrc(0), reportBlocks: reportBlocks(at: 4, count: Int(field)),
                profileExtension: array(4 + 24 * Int(field), count)))
        case RTCPPacketType.sourceDescription:
            return .sourceDescription(try sourceDescription(chunks: Int(field)))
        case RTCPPacketType.goodbye:
            return .goodbye(try goodbye(sources: Int(field)))
        case RTCPPacketType.applicationDefined:
            try need(8)
            return .applicationDefined(RTCPApplicationDefined(
                subtype: field, ssrc: ssrc(0), name: array(4, 8), data: array(8, count)))
        case RTCPPacketType.transportFeedback:
            return .transportFeedback(try transportFeedback(format: field))
        case RTCPPacketType.payloadSpecificFeedback:
            let message = try feedbackMessage(format: field)
            if field == RTCPPayloadSpecificFeedback.pictureLossIndicationFormat && message.fci.isEmpty {
                return .payloadSpecificFeedback(.pictureLossIndication(
                    senderSSRC: message.senderSSRC, mediaSSRC: message.mediaSSRC))
            }
            return .payloadSpecificFeedback(.other(message))
        case RTCPPacketType.extendedReport:
            return .extendedReport(try extendedReport())
        default:
            return .unknown(RTCPUnknownPacket(packetType: packetType, count: field, body: array(0, count)))
        }
    }

    func reportBlocks(at offset: Int, count n: Int) -> [RTCPReportBlock] {
        (0..<n).map { i in
            let o = offset + 24 * i
            let lossWord = u32(o + 4)
            return RTCPReportBlock(
                ssrc: ssrc(o), fractionLost: UInt8(truncatingIfNeeded: lossWord >> 24),
                cumulativeLost: Int32(bitPattern: lossWord << 8) >> 8, extendedHighestSequence: u32(o + 8),
                jitter: u32(o + 12), lastSR: u32(o + 16), delaySinceLastSR: u32(o + 20))
        }
    }

    func sourceDescription(chunks n: Int) throws(RTCPParseError) -> RTCPSourceDescription {
        var chunks = [RTCPSDESChunk]()
        var o = 0
        for index in 0..<n {
            guard o + 4 <= count else { throw .sdesOverrun(chunk: index) }
            let source = ssrc(o)
            o += 4
            var items = [RTCPSDESItem]()
            while true {
                guard o < count else { throw .sdesOverrun(chunk: index) }
                let type = bytes[start + o]
                if type == 0 {
                    o = (o + 4) & ~3
                    guard o <= count else { throw .sdesOverrun(chunk: index) }
                    break
                }
                guard o + 2 <= count else { throw .sdesOverrun(chunk: index) }
                let length = Int(bytes[start + o + 1])
                guard o + 2 + length <= count else { throw .sdesOverrun(chunk: index) }
                items.append(RTCPSDESItem(type: RTCPSDESItemType(rawValue: type), value: array(o + 2, o + 2 + length)))
                o += 2 + length
            }
            chunks.append(RTCPSDESChunk(ssrc: source, items: items))
        }
        guard o == count else { throw .trailingBytes(packetType: packetType, count: count - o) }
        return RTCPSourceDescription(chunks: chunks)
    }

    func goodbye(sources n: Int) throws(RTCPParseError) -> RTCPGoodbye {
        try need(4 * n)
        let ssrcs = (0..<n).map { ssrc(4 * $0) }
        var o = 4 * n
        var reason: [UInt8]?
        if o < count {
            let length = Int(bytes[start + o])
            guard o + 1 + length <= count else { throw .byeReasonOverrun(length: length, available: count - o - 1) }
            reason = array(o + 1, o + 1 + length)
            o = (o + 1 + length + 3) & ~3
            guard o == count else { throw .trailingBytes(packetType: packetType, count: count - o) }
        }
        return RTCPGoodbye(ssrcs: ssrcs, reason: reason)
    }

    func feedbackMessage(format: UInt8) throws(RTCPParseError) -> RTCPFeedbackMessage {
        try need(8)
        return RTCPFeedbackMessage(format: format, senderSSRC: ssrc(0), mediaSSRC: ssrc(4), fci: array(8, count))
    }

    func transportFeedback(format: UInt8) throws(RTCPParseError) -> RTCPTransportFeedback {
        switch format {
        case RTCPGenericNACK.format:
            try need(8)
            guard (count - 8) % 4 == 0 else { throw .trailingBytes(packetType: packetType, count: (count - 8) % 4) }
            let entries = stride(from: 8, to: count, by: 4).map { o in
                RTCPNACKEntry(packetID: SequenceNumber(bytes.rtpU16(start + o)), bitmask: bytes.rtpU16(start + o + 2))
            }
            return .genericNACK(RTCPGenericNACK(senderSSRC: ssrc(0), mediaSSRC: ssrc(4), entries: entries))
        case RTCPTransportWideCC.format:
            try need(16)
            let word = u32(12)
            return .transportWideCC(RTCPTransportWideCC(
                senderSSRC: ssrc(0), mediaSSRC: ssrc(4), baseSequenceNumber: bytes.rtpU16(start + 8),
                packetStatusCount: bytes.rtpU16(start + 10), referenceTime: Int32(bitPattern: word) >> 8,
                feedbackPacketCount: UInt8(truncatingIfNeeded: word), chunksAndDeltas: array(16, count)))
        default:
            return .other(try feedbackMessage(format: format))
        }
    }

    func extendedReport() throws(RTCPParseError) -> RTCPExtendedReport {
        try need(4)
        var blocks = [RTCPXRBlock]()
        var o = 4
        while o < count {
            guard o + 4 <= count else { throw .trailingBytes(packetType: packetType, count: count - o) }
            let blockType = bytes[start + o]
            let typeSpecific = bytes[start + o + 1]
            let words = Int(bytes.rtpU16(start + o + 2))
            let end = o + 4 + words * 4
            guard end <= count else {
                throw .xrBlockOverrun(blockType: blockType, length: words * 4, available: count - o - 4)
            }
            switch blockType {
            case RTCPXRBlock.receiverReferenceTimeType:
                guard words == 2 else { throw .xrBlockLengthMismatch(blockType: blockType, words: words) }
                blocks.append(.receiverReferenceTime(NTPTime(rawValue: UInt64(u32(o + 4)) << 32 | UInt64(u32(o + 8)))))
            case RTCPXRBlock.dlrrType:
                guard words % 3 == 0 else { throw .xrBlockLengthMismatch(blockType: blockType, words: words) }
                blocks.append(.dlrr(stride(from: o + 4, to: end, by: 12).map { p in
                    RTCPDLRRSubBlock(ssrc: ssrc(p), lastRR: u32(p + 4), delaySinceLastRR: u32(p + 8))
                }))
            default:
                blocks.append(.other(blockType: blockType, typeSpecific: typeSpecific, contents: array(o + 4, end)))
            }
            o = end
        }
        return RTCPExtendedReport(ssrc: ssrc(0), blocks: blocks)
    }
}
