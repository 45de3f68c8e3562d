import Wire

extension RTCPPacket {
    /// Appends the packet with `paddingLength` bytes of padding (a multiple of 4, 0 for none).
    /// On error nothing is appended.
    public func serialize(into out: inout [UInt8], paddingLength: UInt8 = 0) throws(RTCPSerializeError) {
        guard paddingLength % 4 == 0 else { throw .invalidPadding(Int(paddingLength)) }
        let headerIndex = out.count
        out.append(contentsOf: [0, packetType, 0, 0])
        let count: UInt8
        do {
            count = try writeBody(into: &out)
        } catch {
            out.removeSubrange(headerIndex...)
            throw error
        }
        if paddingLength > 0 {
            out.append(contentsOf: repeatElement(0, count: Int(paddingLength) - 1))
            out.append(paddingLength)
        }
        let length = out.count - headerIndex
        guard length <= 65536 * 4 else {
            out.removeSubrange(headerIndex...)
            throw .packetTooLong(length: length)
        }
        out[headerIndex] = 0x80 | (paddingLength > 0 ? 0x20 : 0) | count
        out.storeBigEndian(UInt16(length / 4 - 1), at: headerIndex + 2)
    }

    /// The packet as a new array.
    public func serialized(paddingLength: UInt8 = 0) throws(RTCPSerializeError) -> [UInt8] {
        var out = [UInt8]()
        try serialize(into: &out, paddingLength: paddingLength)
        return out
    }

    /// Writes the body and returns the 5-bit count / format field.
    private func writeBody(into out: inout [UInt8]) throws(RTCPSerializeError) -> UInt8 {
        switch self {
        case .senderReport(let sr):
            out.appendBigEndian(sr.ssrc.rawValue)
            out.appendBigEndian(sr.ntpTime.rawValue)
            out.appendBigEndian(sr.rtpTimestamp.rawValue)
            out.appendBigEndian(sr.packetCount)
            out.appendBigEndian(sr.octetCount)
            return try Self.writeReports(sr.reportBlocks, extension: sr.profileExtension, into: &out)
        case .receiverReport(let rr):
            out.appendBigEndian(rr.ssrc.rawValue)
            return try Self.writeReports(rr.reportBlocks, extension: rr.profileExtension, into: &out)
        case .sourceDescription(let sdes):
            try Self.checkCount(sdes.chunks.count, "chunks")
            for chunk in sdes.chunks {
                out.appendBigEndian(chunk.ssrc.rawValue)
                var written = 0
                for item in chunk.items {
                    guard item.type.rawValue != 0 else { throw .invalidValue(field: "SDES item type") }
                    try Self.checkByteLength(item.value.count, "SDES item")
                    out.append(item.type.rawValue)
                    out.append(UInt8(item.value.count))
                    out.append(contentsOf: item.value)
                    written += 2 + item.value.count
                }
                out.append(contentsOf: repeatElement(0, count: 4 - written % 4))
            }
            return UInt8(sdes.chunks.count)
        case .goodbye(let bye):
            try Self.checkCount(bye.ssrcs.count, "BYE sources")
            for ssrc in bye.ssrcs { out.appendBigEndian(ssrc.rawValue) }
            if let reason = bye.reason {
                try Self.checkByteLength(reason.count, "BYE reason")
                out.append(UInt8(reason.count))
                out.append(contentsOf: reason)
                out.append(contentsOf: repeatElement(0, count: (4 - (1 + reason.count) % 4) % 4))
            }
            return UInt8(bye.ssrcs.count)
        case .applicationDefined(let app):
            guard app.subtype <= 31 else { throw .invalidValue(field: "APP subtype") }
            guard app.name.count == 4 else { throw .invalidLength(field: "APP name", length: app.name.count) }
            try Self.checkAligned(app.data.count, "APP data")
            out.appendBigEndian(app.ssrc.rawValue)
            out.append(contentsOf: app.name)
            out.append(contentsOf: app.data)
            return app.subtype
        case .transportFeedback(.genericNACK(let nack)):
            Self.writeFeedbackHeader(nack.senderSSRC, nack.mediaSSRC, into: &out)
            for entry in nack.entries {
                out.appendBigEndian(entry.packetID.rawValue)
                out.appendBigEndian(entry.bitmask)
            }
            return RTCPGenericNACK.format
        case .transportFeedback(.transportWideCC(let cc)):
            guard (-0x80_0000...0x7F_FFFF).contains(cc.referenceTime) else {
                throw .invalidValue(field: "TWCC reference time")
            }
            try Self.checkAligned(cc.chunksAndDeltas.count, "TWCC chunks and deltas")
            Self.writeFeedbackHeader(cc.senderSSRC, cc.mediaSSRC, into: &out)
            out.appendBigEndian(cc.baseSequenceNumber)
            out.appendBigEndian(cc.packetStatusCount)
            out.appendBigEndian(UInt32(bitPattern: cc.referenceTime << 8) | UInt32(cc.feedbackPacketCount))
            out.append(contentsOf: cc.chunksAndDeltas)
            return RTCPTransportWideCC.format
        case .transportFeedback(.other(let message)), .payloadSpecificFeedback(.other(let message)):
            guard message.format <= 31 else { throw .invalidValue(field: "feedback format") }
            try Self.checkAligned(message.fci.count, "FCI")
            Self.writeFeedbackHeader(message.senderSSRC, message.mediaSSRC, into: &out)
            out.append(contentsOf: message.fci)
            return message.format
        case .payloadSpecificFeedback(.pictureLossIndication(let sender, let media)):
            Self.writeFeedbackHeader(sender, media, into: &out)
            return RTCPPayloadSpecificFeedback.pictureLossIndicationFormat
        case .extendedReport(let xr):
            out.appendBigEndian(xr.ssrc.rawValue)
            for block in xr.blocks {
                switch block {
                case .receiverReferenceTime(let ntp):
                    out.append(contentsOf: [RTCPXRBlock.receiverReferenceTimeType, 0, 0, 2])
                    out.appendBigEndian(ntp.rawValue)
                case .dlrr(let subBlocks):
                    guard subBlocks.count * 3 <= 0xFFFF else {
                        throw .tooManyEntries(field: "DLRR sub-blocks", count: subBlocks.count)
                    }
                    out.append(contentsOf: [RTCPXRBlock.dlrrType, 0])
                    out.appendBigEndian(UInt16(subBlocks.count * 3))
                    for sub in subBlocks {
                        out.appendBigEndian(sub.ssrc.rawValue)
                        out.appendBigEndian(sub.lastRR)
                        out.appendBigEndian(sub.delaySinceLastRR)
                    }
                case .other(let blockType, let typeSpecific, let contents):
                    try Self.checkAligned(contents.count, "XR block")
                    guard contents.count / 4 <= 0xFFFF else {
                        throw .invalidLength(field: "XR block", length: contents.count)
                    }
                    out.append(contentsOf: [blockType, typeSpecific])
                    out.appendBigEndian(UInt16(contents.count / 4))
                    out.append(contentsOf: contents)
                }
            }
            return 0
        case .unknown(let packet):
            guard packet.count <= 31 else { throw .invalidValue(field: "count") }
            try Self.checkAligned(packet.body.count, "body")
            out.append(contentsOf: packet.body)
            return packet.count
        }
    }

    private static func writeReports(
        _ blocks: [RTCPReportBlock], extension ext: [UInt8], into out: inout [UInt8]
    ) throws(RTCPSerializeError) -> UInt8 {
        try checkCount(blocks.count, "report blocks")
        try checkAligned(ext.count, "profile extension")
        for block in blocks {
            out.appendBigEndian(block.ssrc.rawValue)
            let lost = min(max(block.cumulativeLost, -0x80_0000), 0x7F_FFFF)
            out.appendBigEndian(UInt32(block.fractionLost) << 24 | (UInt32(bitPattern: lost) & 0xFF_FFFF))
            out.appendBigEndian(block.extendedHighestSequence)
            out.appendBigEndian(block.jitter)
            out.appendBigEndian(block.lastSR)
            out.appendBigEndian(block.delaySinceLastSR)
        }
        out.append(contentsOf: ext)
        return UInt8(blocks.count)
    }

    private static func writeFeedbackHeader(_ sender: SSRC, _ media: SSRC, into out: inout [UInt8]) {
        out.appendBigEndian(sender.rawValue)
        out.appendBigEndian(media.rawValue)
    }

    private static func checkCount(_ count: Int, _ field: String) throws(RTCPSerializeError) {
        guard count <= 31 else { throw .tooManyEntries(field: field, count: count) }
    }

    private static func checkByteLength(_ length: Int, _ field: String) throws(RTCPSerializeError) {
        guard length <= 255 else { throw .invalidLength(field: field, length: length) }
    }

    private static func checkAligned(_ length: Int, _ field: String) throws(RTCPSerializeError) {
        guard length % 4 == 0 else { throw .unaligned(field: field, length: length) }
    }
}
