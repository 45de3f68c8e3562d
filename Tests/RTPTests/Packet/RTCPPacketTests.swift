import Testing
@testable import RTP

/// Hand-built RTCP vectors shared by the RTCP and mutation tests.
enum RTCPPacketVectors {
    static let senderReport: [UInt8] = [
        0x81, 0xC8, 0x00, 0x0C,
        0x11, 0x22, 0x33, 0x44,
        0xE1, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
        0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x64,
        0x00, 0x00, 0x3E, 0x80,
        0x55, 0x66, 0x77, 0x88,
        0x40, 0xFF, 0xFF, 0xFE,
        0x00, 0x01, 0xFF, 0xFF,
        0x00, 0x00, 0x00, 0x20,
        0x45, 0x67, 0x89, 0x01,
        0x00, 0x01, 0x00, 0x00,
    ]
    static let receiverReport: [UInt8] = [
        0x81, 0xC9, 0x00, 0x07, 0x11, 0x22, 0x33, 0x44,
        0x55, 0x66, 0x77, 0x88, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x12, 0x34,
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    static let emptyReceiverReport: [UInt8] = [0x80, 0xC9, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44]
    static let sourceDescription: [UInt8] = [
        0x81, 0xCA, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44, 0x01, 0x04, 0x61, 0x62, 0x63, 0x64, 0x00, 0x00,
    ]
    static let goodbye: [UInt8] = [0x81, 0xCB, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0x03, 0x62, 0x79, 0x65]
    static let application: [UInt8] = [
        0x83, 0xCC, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44, 0x4E, 0x41, 0x4D, 0x45, 0x01, 0x02, 0x03, 0x04,
    ]
    static let nack: [UInt8] = [
        0x81, 0xCD, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x00, 0x64, 0x00, 0x05,
    ]
    static let transportCC: [UInt8] = [
        0x8F, 0xCD, 0x00, 0x06, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x00, 0x01, 0x00, 0x03, 0xFF, 0xFF, 0xFE, 0x07, 0x20, 0x03, 0x04, 0x04, 0x04, 0x00, 0x00, 0x00,
    ]
    static let pli: [UInt8] = [0x81, 0xCE, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
    static let remb: [UInt8] = [
        0x8F, 0xCE, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x52, 0x45, 0x4D, 0x42, 0x01, 0x0A, 0x00, 0x00,
    ]
    static let extendedReport: [UInt8] = [
        0x80, 0xCF, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44,
        0x04, 0x00, 0x00, 0x02, 0xE1, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
        0x05, 0x00, 0x00, 0x03, 0x55, 0x66, 0x77, 0x88, 0x23, 0x45, 0x67, 0x89, 0x00, 0x00, 0x80, 0x00,
    ]
    static let unknown: [UInt8] = [0x82, 0xD2, 0x00, 0x01, 0xDE, 0xAD, 0xBE, 0xEF]
    /// Empty RR followed by a BYE with 4 bytes of padding.
    static let paddedCompound: [UInt8] = emptyReceiverReport + [
        0xA1, 0xCB, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x04,
    ]

    static let singles = [
        senderReport, receiverReport, emptyReceiverReport, sourceDescription, goodbye, application, nack,
        transportCC, pli, remb, extendedReport, unknown,
    ]
    static let compounds = [
        senderReport + sourceDescription + goodbye,
        receiverReport + nack + transportCC + pli + remb + extendedReport + application + unknown,
        paddedCompound,
    ]
}

@Suite("RTCP codec")
struct RTCPPacketTests {
    let expectedSR = RTCPSenderReport(
        ssrc: 0x1122_3344, ntpTime: NTPTime(seconds: 0xE123_4567, fraction: 0x89AB_CDEF), rtpTimestamp: 0x0001_0000,
        packetCount: 100, octetCount: 16000,
        reportBlocks: [RTCPReportBlock(
            ssrc: 0x5566_7788, fractionLost: 0x40, cumulativeLost: -2, extendedHighestSequence: 0x0001_FFFF,
            jitter: 0x20, lastSR: 0x4567_8901, delaySinceLastSR: 0x0001_0000)])

    @Test func senderReportSDESGoodbyeCompound() throws {
        let bytes = RTCPPacketVectors.senderReport + RTCPPacketVectors.sourceDescription + RTCPPacketVectors.goodbye
        let compound = try RTCPCompoundPacket(parsing: bytes, requireCompoundRules: true)
        #expect(compound.paddingLength == 0)
        #expect(compound.packets.count == 3)
        #expect(compound.packets[0] == .senderReport(expectedSR))
        guard case .sourceDescription(let sdes) = compound.packets[1] else { Issue.record("not SDES"); return }
        #expect(sdes.chunks.count == 1)
        #expect(sdes.chunks[0].ssrc == 0x1122_3344)
        #expect(sdes.chunks[0].items == [RTCPSDESItem(type: .cname, text: "abcd")])
        #expect(sdes.chunks[0].cname == "abcd")
        guard case .goodbye(let bye) = compound.packets[2] else { Issue.record("not BYE"); return }
        #expect(bye.ssrcs == [0x1122_3344])
        #expect(bye.reasonText == "bye")
        let built = RTCPCompoundPacket(packets: [
            .senderReport(expectedSR),
            .sourceDescription(RTCPSourceDescription(chunks: [RTCPSDESChunk(ssrc: 0x1122_3344, items: [RTCPSDESItem(type: .cname, text: "abcd")])])),
            .goodbye(RTCPGoodbye(ssrcs: [0x1122_3344], reason: "bye")),
        ])
        #expect(try built.serialized() == bytes)
    }

    @Test func feedbackAndExtendedReportCompound() throws {
        let bytes = RTCPPacketVectors.compounds[1]
        let compound = try RTCPCompoundPacket(parsing: bytes, requireCompoundRules: true)
        let rr = RTCPReceiverReport(ssrc: 0x1122_3344, reportBlocks: [RTCPReportBlock(
            ssrc: 0x5566_7788, fractionLost: 0, cumulativeLost: 5, extendedHighestSequence: 0x1234, jitter: 16)])
        let nack = RTCPGenericNACK(senderSSRC: 0x1122_3344, mediaSSRC: 0x5566_7788, entries: [RTCPNACKEntry(packetID: 100, bitmask: 5)])
        let twcc = RTCPTransportWideCC(
            senderSSRC: 0x1122_3344, mediaSSRC: 0x5566_7788, baseSequenceNumber: 1, packetStatusCount: 3,
            referenceTime: -2, feedbackPacketCount: 7, chunksAndDeltas: [0x20, 0x03, 0x04, 0x04, 0x04, 0x00, 0x00, 0x00])
        let remb = RTCPFeedbackMessage(format: 15, senderSSRC: 1, mediaSSRC: 0, fci: [0x52, 0x45, 0x4D, 0x42, 0x01, 0x0A, 0x00, 0x00])
        let xr = RTCPExtendedReport(ssrc: 0x1122_3344, blocks: [
            .receiverReferenceTime(NTPTime(seconds: 0xE123_4567, fraction: 0x89AB_CDEF)),
            .dlrr([RTCPDLRRSubBlock(ssrc: 0x5566_7788, lastRR: 0x2345_6789, delaySinceLastRR: 0x8000)]),
        ])
        let app = RTCPApplicationDefined(subtype: 3, ssrc: 0x1122_3344, name: "NAME", data: [1, 2, 3, 4])
        let unknown = RTCPUnknownPacket(packetType: 210, count: 2, body: [0xDE, 0xAD, 0xBE, 0xEF])
        let expected: [RTCPPacket] = [
            .receiverReport(rr), .transportFeedback(.genericNACK(nack)), .transportFeedback(.transportWideCC(twcc)),
            .payloadSpecificFeedback(.pictureLossIndication(senderSSRC: 0x1122_3344, mediaSSRC: 0x5566_7788)),
            .payloadSpecificFeedback(.other(remb)), .extendedReport(xr), .applicationDefined(app), .unknown(unknown),
        ]
        #expect(compound.packets == expected)
        #expect(compound.packets.map(\.packetType) == [201, 205, 205, 206, 206, 207, 204, 210])
        #expect(try RTCPCompoundPacket(packets: expected).serialized() == bytes)
        #expect(nack.lostSequenceNumbers == [100, 101, 103])
        #expect(app.nameText == "NAME")
    }

    @Test func eachSinglePacketRoundTrips() throws {
        for bytes in RTCPPacketVectors.singles {
            let packet = try RTCPPacket(parsing: bytes)
            #expect(try packet.serialized() == bytes)
        }
        #expect(throws: RTCPParseError.notSinglePacket(count: 2)) {
            try RTCPPacket(parsing: RTCPPacketVectors.pli + RTCPPacketVectors.pli)
        }
    }

    @Test func paddingOnTheLastPacket() throws {
        let compound = try RTCPCompoundPacket(parsing: RTCPPacketVectors.paddedCompound)
        #expect(compound.paddingLength == 4)
        #expect(compound.packets == [
            .receiverReport(RTCPReceiverReport(ssrc: 0x1122_3344)),
            .goodbye(RTCPGoodbye(ssrcs: [0x1122_3344])),
        ])
        #expect(try compound.serialized() == RTCPPacketVectors.paddedCompound)
    }

    @Test func compoundRulesVersusReducedSize() throws {
        #expect(throws: RTCPParseError.firstPacketNotReport(packetType: 206)) {
            try RTCPCompoundPacket(parsing: RTCPPacketVectors.pli, requireCompoundRules: true)
        }
        let reduced = try RTCPCompoundPacket(parsing: RTCPPacketVectors.pli)
        #expect(reduced.packets == [.payloadSpecificFeedback(.pictureLossIndication(senderSSRC: 0x1122_3344, mediaSSRC: 0x5566_7788))])
        #expect(throws: RTCPParseError.firstPacketNotReport(packetType: 202)) {
            try RTCPCompoundPacket(parsing: RTCPPacketVectors.sourceDescription + RTCPPacketVectors.receiverReport, requireCompoundRules: true)
        }
    }

    @Test func nackSetConversions() {
        let simple = RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: [SequenceNumber(103), 100, 101])
        #expect(simple.entries == [RTCPNACKEntry(packetID: 100, bitmask: 0x0005)])
        let wrap = RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: [SequenceNumber(0), 5, 20, 65534, 65535])
        #expect(wrap.entries == [RTCPNACKEntry(packetID: 65534, bitmask: 0b100_0011), RTCPNACKEntry(packetID: 20, bitmask: 0)])
        #expect(wrap.lostSequenceNumbers == [65534, 65535, 0, 5, 20])
        #expect(wrap.lostSet == [0, 5, 20, 65534, 65535])
        let full = RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: (0..<17).map { SequenceNumber(UInt16(1000 + $0)) })
        #expect(full.entries == [RTCPNACKEntry(packetID: 1000, bitmask: 0xFFFF)])
        #expect(RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: [SequenceNumber]()).entries.isEmpty)
        // Overlapping entries are reported once.
        let overlapping = RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, entries: [
            RTCPNACKEntry(packetID: 10, bitmask: 1), RTCPNACKEntry(packetID: 11, bitmask: 1),
        ])
        #expect(overlapping.lostSequenceNumbers == [10, 11, 12])
    }

    @Test func nackSetConversionProperty() throws {
        var rng = RTPPacketTestRandom(seed: 0x5EED)
        for _ in 0..<300 {
            let base = UInt16(truncatingIfNeeded: rng.next())
            let lost = Set((0..<Int(rng.next() % 60)).map { _ in SequenceNumber(base &+ UInt16(rng.next() % 400)) })
            let nack = RTCPGenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: lost)
            #expect(nack.lostSet == lost)
            #expect(nack.entries.count <= lost.count)
            let reparsed = try RTCPPacket(parsing: try RTCPPacket.transportFeedback(.genericNACK(nack)).serialized())
            #expect(reparsed == RTCPPacket.transportFeedback(.genericNACK(nack)))
        }
    }

    @Test func reportBlockCumulativeLostIsClampedTo24Bits() throws {
        let rr = RTCPReceiverReport(ssrc: 1, reportBlocks: [
            RTCPReportBlock(ssrc: 2, cumulativeLost: 10_000_000), RTCPReportBlock(ssrc: 3, cumulativeLost: -10_000_000),
        ])
        let bytes = try RTCPPacket.receiverReport(rr).serialized()
        #expect(Array(bytes[12..<16]) == [0x00, 0x7F, 0xFF, 0xFF])
        #expect(Array(bytes[36..<40]) == [0x00, 0x80, 0x00, 0x00])
        guard case .receiverReport(let parsed) = try RTCPPacket(parsing: bytes) else { Issue.record("not RR"); return }
        #expect(parsed.reportBlocks.map(\.cumulativeLost) == [8_388_607, -8_388_608])
    }

    @Test func serializerRejectsUnrepresentableValues() {
        let blocks = (0..<32).map { RTCPReportBlock(ssrc: SSRC(UInt32($0))) }
        #expect(throws: RTCPSerializeError.tooManyEntries(field: "report blocks", count: 32)) {
            try RTCPPacket.receiverReport(RTCPReceiverReport(ssrc: 1, reportBlocks: blocks)).serialized()
        }
        #expect(throws: RTCPSerializeError.invalidLength(field: "APP name", length: 3)) {
            try RTCPPacket.applicationDefined(RTCPApplicationDefined(subtype: 0, ssrc: 1, name: "ABC", data: [])).serialized()
        }
        #expect(throws: RTCPSerializeError.invalidLength(field: "BYE reason", length: 256)) {
            try RTCPPacket.goodbye(RTCPGoodbye(ssrcs: [], reason: Array(repeating: 0x41, count: 256))).serialized()
        }
        #expect(throws: RTCPSerializeError.unaligned(field: "FCI", length: 3)) {
            try RTCPPacket.payloadSpecificFeedback(.other(RTCPFeedbackMessage(format: 2, senderSSRC: 1, mediaSSRC: 2, fci: [1, 2, 3]))).serialized()
        }
        #expect(throws: RTCPSerializeError.invalidValue(field: "SDES item type")) {
            try RTCPPacket.sourceDescription(RTCPSourceDescription(chunks: [RTCPSDESChunk(ssrc: 1, items: [RTCPSDESItem(type: RTCPSDESItemType(rawValue: 0), value: [])])])).serialized()
        }
        #expect(throws: RTCPSerializeError.invalidPadding(3)) {
            try RTCPPacket.receiverReport(RTCPReceiverReport(ssrc: 1)).serialized(paddingLength: 3)
        }
        var out: [UInt8] = [9]
        #expect(throws: RTCPSerializeError.invalidValue(field: "TWCC reference time")) {
            try RTCPPacket.transportFeedback(.transportWideCC(RTCPTransportWideCC(
                senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, packetStatusCount: 0, referenceTime: 0x80_0000,
                feedbackPacketCount: 0, chunksAndDeltas: []))).serialize(into: &out)
        }
        #expect(out == [9])
    }

    @Test func sdesChunkPaddingAndMultipleChunks() throws {
        // Items ending on a word boundary still need a full word of terminating nulls.
        let sdes = RTCPSourceDescription(chunks: [
            RTCPSDESChunk(ssrc: 1, items: [RTCPSDESItem(type: .cname, text: "ab")]),
            RTCPSDESChunk(ssrc: 2, items: []),
            RTCPSDESChunk(ssrc: 3, items: [RTCPSDESItem(type: .name, text: "x"), RTCPSDESItem(type: .tool, value: [])]),
        ])
        let bytes = try RTCPPacket.sourceDescription(sdes).serialized()
        #expect(bytes == [
            0x83, 0xCA, 0x00, 0x08,
            0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x61, 0x62, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x03, 0x02, 0x01, 0x78, 0x06, 0x00, 0x00, 0x00, 0x00,
        ])
        #expect(try RTCPPacket(parsing: bytes) == .sourceDescription(sdes))
    }

    // MARK: Bad input

    @Test func everyTruncationOfASinglePacketFails() {
        for bytes in RTCPPacketVectors.singles {
            for n in 0..<bytes.count {
                let prefix = Array(bytes.prefix(n))
                if n == 0 {
                    #expect(throws: RTCPParseError.empty) { try RTCPCompoundPacket(parsing: prefix) }
                } else if n < 4 {
                    #expect(throws: RTCPParseError.truncatedHeader(offset: 0, available: n)) { try RTCPCompoundPacket(parsing: prefix) }
                } else {
                    #expect(throws: RTCPParseError.lengthOverrun(offset: 0, declared: bytes.count, available: n)) {
                        try RTCPCompoundPacket(parsing: prefix)
                    }
                }
            }
        }
    }

    @Test func truncatedCompoundFailsExceptAtPacketBoundaries() throws {
        let parts = [RTCPPacketVectors.senderReport, RTCPPacketVectors.sourceDescription, RTCPPacketVectors.goodbye]
        let bytes = parts.flatMap { $0 }
        let boundaries = [parts[0].count, parts[0].count + parts[1].count]
        for n in 1..<bytes.count {
            let result = Result { () throws(RTCPParseError) in try RTCPCompoundPacket(parsing: Array(bytes.prefix(n))) }
            if let index = boundaries.firstIndex(of: n) {
                #expect(try result.get().packets.count == index + 1)
            } else {
                #expect(throws: RTCPParseError.self) { try result.get() }
            }
        }
    }

    @Test func badVersionAndLyingLengths() {
        var bytes = RTCPPacketVectors.senderReport
        bytes[0] = 0x41
        #expect(throws: RTCPParseError.badVersion(1, offset: 0)) { try RTCPCompoundPacket(parsing: bytes) }
        var second = RTCPPacketVectors.emptyReceiverReport + RTCPPacketVectors.pli
        second[8] = 0xC1
        #expect(throws: RTCPParseError.badVersion(3, offset: 8)) { try RTCPCompoundPacket(parsing: second) }
        bytes = RTCPPacketVectors.senderReport
        bytes[3] = 0x0D
        #expect(throws: RTCPParseError.lengthOverrun(offset: 0, declared: 56, available: 52)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes[3] = 0x0B
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 200, needed: 48, available: 44)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes = RTCPPacketVectors.senderReport
        bytes[0] = 0x82  // claims two report blocks
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 200, needed: 72, available: 48)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes = RTCPPacketVectors.emptyReceiverReport
        bytes[0] = 0x81
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 201, needed: 28, available: 4)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes = RTCPPacketVectors.transportCC
        bytes[3] = 0x03
        #expect(throws: RTCPParseError.self) { try RTCPCompoundPacket(parsing: bytes) }
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 205, needed: 16, available: 12)) {
            try RTCPCompoundPacket(parsing: Array(bytes.prefix(16)))
        }
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 204, needed: 8, available: 4)) {
            try RTCPCompoundPacket(parsing: [0x80, 0xCC, 0x00, 0x01, 0, 0, 0, 1])
        }
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 206, needed: 8, available: 4)) {
            try RTCPCompoundPacket(parsing: [0x81, 0xCE, 0x00, 0x01, 0, 0, 0, 1])
        }
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 207, needed: 4, available: 0)) {
            try RTCPCompoundPacket(parsing: [0x80, 0xCF, 0x00, 0x00])
        }
    }

    @Test func badPadding() {
        var bytes = RTCPPacketVectors.paddedCompound
        bytes[bytes.count - 1] = 12
        #expect(throws: RTCPParseError.invalidPadding(offset: 8, paddingLength: 12, bodyLength: 8)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes[bytes.count - 1] = 3
        #expect(throws: RTCPParseError.invalidPadding(offset: 8, paddingLength: 3, bodyLength: 8)) { try RTCPCompoundPacket(parsing: bytes) }
        bytes[bytes.count - 1] = 0
        #expect(throws: RTCPParseError.invalidPadding(offset: 8, paddingLength: 0, bodyLength: 8)) { try RTCPCompoundPacket(parsing: bytes) }
        var early = RTCPPacketVectors.paddedCompound
        early[0] |= 0x20
        #expect(throws: RTCPParseError.paddingNotLast(index: 0)) { try RTCPCompoundPacket(parsing: early) }
    }

    @Test func sdesByeAndXRLyingInnerLengths() throws {
        var sdes = RTCPPacketVectors.sourceDescription
        sdes[9] = 0x10
        #expect(throws: RTCPParseError.sdesOverrun(chunk: 0)) { try RTCPCompoundPacket(parsing: sdes) }
        sdes = RTCPPacketVectors.sourceDescription
        sdes[0] = 0x82  // two chunks announced, one present
        #expect(throws: RTCPParseError.sdesOverrun(chunk: 1)) { try RTCPCompoundPacket(parsing: sdes) }
        sdes = RTCPPacketVectors.sourceDescription
        sdes[0] = 0x80  // no chunks announced, one present
        #expect(throws: RTCPParseError.trailingBytes(packetType: 202, count: 12)) { try RTCPCompoundPacket(parsing: sdes) }
        sdes = RTCPPacketVectors.sourceDescription
        sdes[14] = 0x05
        sdes[15] = 0x00  // an item type without its length byte
        #expect(throws: RTCPParseError.sdesOverrun(chunk: 0)) { try RTCPCompoundPacket(parsing: sdes) }

        var bye = RTCPPacketVectors.goodbye
        bye[8] = 10
        #expect(throws: RTCPParseError.byeReasonOverrun(length: 10, available: 3)) { try RTCPCompoundPacket(parsing: bye) }
        bye[8] = 0  // a zero-length reason plus 3 padding bytes fills the body exactly
        #expect(try RTCPCompoundPacket(parsing: bye).packets == [.goodbye(RTCPGoodbye(ssrcs: [0x1122_3344], reason: []))])
        bye = RTCPPacketVectors.goodbye + [0, 0, 0, 0]
        bye[3] = 3
        #expect(throws: RTCPParseError.trailingBytes(packetType: 203, count: 4)) { try RTCPCompoundPacket(parsing: bye) }
        bye = RTCPPacketVectors.goodbye
        bye[0] = 0x83
        #expect(throws: RTCPParseError.bodyTooShort(packetType: 203, needed: 12, available: 8)) { try RTCPCompoundPacket(parsing: bye) }

        var xr = RTCPPacketVectors.extendedReport
        xr[23] = 0x04
        #expect(throws: RTCPParseError.xrBlockOverrun(blockType: 5, length: 16, available: 12)) { try RTCPCompoundPacket(parsing: xr) }
        xr = RTCPPacketVectors.extendedReport
        xr[11] = 0x01
        #expect(throws: RTCPParseError.xrBlockLengthMismatch(blockType: 4, words: 1)) { try RTCPCompoundPacket(parsing: xr) }
        xr = RTCPPacketVectors.extendedReport
        xr[23] = 0x02
        #expect(throws: RTCPParseError.xrBlockLengthMismatch(blockType: 5, words: 2)) { try RTCPCompoundPacket(parsing: xr) }
    }
}
