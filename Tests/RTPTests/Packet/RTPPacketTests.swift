import Testing
@testable import RTP

/// Hand-built RTP vectors shared by the packet and mutation tests.
enum RTPPacketVectors {
    /// V=2 P X CC=2, M, PT 111, seq 0x1234, ts 0xDEADBEEF, SSRC 0x11223344, two CSRCs,
    /// one-byte extension (id 1 audio level 0x85, id 3 TWCC seq 0x0102), 5-byte payload, 3 padding.
    static let full: [UInt8] = [
        0xB2, 0xEF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x11, 0x22, 0x33, 0x44,
        0xAA, 0xBB, 0xCC, 0xDD, 0x01, 0x02, 0x03, 0x04,
        0xBE, 0xDE, 0x00, 0x02, 0x10, 0x85, 0x31, 0x01, 0x02, 0x00, 0x00, 0x00,
        0xCA, 0xFE, 0xBA, 0xBE, 0x01,
        0x00, 0x00, 0x03,
    ]

    /// V=2 X, PT 0, seq 1, ts 2, SSRC 3, two-byte extension (appbits 5: id 1 empty, id 20 [AA]), payload DD.
    static let twoByte: [UInt8] = [
        0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03,
        0x10, 0x05, 0x00, 0x02, 0x01, 0x00, 0x14, 0x01, 0xAA, 0x00, 0x00, 0x00,
        0xDD,
    ]

    /// Header only, no payload.
    static let bare: [UInt8] = [0x80, 0x08, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]

    static let all = [full, twoByte, bare]
}

@Suite("RTP packet codec")
struct RTPPacketTests {
    @Test func parsesFullPacketFieldByField() throws {
        let packet = try RTPPacket(parsing: RTPPacketVectors.full)
        #expect(packet.marker)
        #expect(packet.payloadType == 111)
        #expect(packet.sequenceNumber == 0x1234)
        #expect(packet.timestamp == 0xDEAD_BEEF)
        #expect(packet.ssrc == 0x1122_3344)
        #expect(packet.csrcs == [0xAABB_CCDD, 0x0102_0304])
        #expect(packet.hasExtension)
        #expect(packet.hasPadding)
        #expect(packet.paddingLength == 3)
        #expect(packet.headerExtension?.profile == 0xBEDE)
        #expect(Array(packet.headerExtension?.data ?? []) == [0x10, 0x85, 0x31, 0x01, 0x02, 0x00, 0x00, 0x00])
        #expect(Array(packet.payload) == [0xCA, 0xFE, 0xBA, 0xBE, 0x01])
        #expect(packet.headerLength == 32)
        #expect(packet.serializedLength == 40)
    }

    @Test func serializesFullPacketToExactBytes() throws {
        let ext = try RTPHeaderExtension(elements: [
            RTPHeaderExtensionElement(id: 1, value: AudioLevelExtension(voiceActivity: true, level: 5)),
            RTPHeaderExtensionElement(id: 3, value: TransportSequenceNumberExtension(sequenceNumber: 0x0102)),
        ])
        let payload: [UInt8] = [0xCA, 0xFE, 0xBA, 0xBE, 0x01]
        let packet = RTPPacket(
            marker: true, payloadType: 111, sequenceNumber: 0x1234, timestamp: 0xDEAD_BEEF, ssrc: 0x1122_3344,
            csrcs: [0xAABB_CCDD, 0x0102_0304], headerExtension: ext, payload: payload[...], paddingLength: 3)
        #expect(packet.serialized() == RTPPacketVectors.full)
        #expect(try RTPPacket(parsing: RTPPacketVectors.full) == packet)
        var appended: [UInt8] = [0x55]
        packet.serialize(into: &appended)
        #expect(appended == [0x55] + RTPPacketVectors.full)
    }

    @Test func payloadIsAViewOfTheInput() throws {
        let bytes = RTPPacketVectors.full
        let packet = try RTPPacket(parsing: bytes)
        let inputBase = bytes.withUnsafeBufferPointer { $0.baseAddress! }
        let payloadBase = packet.payload.withUnsafeBufferPointer { $0.baseAddress! }
        #expect(payloadBase == inputBase + 32)
        let extBase = packet.headerExtension!.data.withUnsafeBufferPointer { $0.baseAddress! }
        #expect(extBase == inputBase + 24)
    }

    @Test func parsesSliceInput() throws {
        let framed: [UInt8] = [0xEE, 0xEE] + RTPPacketVectors.twoByte + [0xEE]
        let slice = framed[2..<(framed.count - 1)]
        let packet = try RTPPacket(parsing: slice)
        #expect(packet == (try RTPPacket(parsing: RTPPacketVectors.twoByte)))
        #expect(packet.payload.startIndex == 2 + 24)
        #expect(Array(packet.payload) == [0xDD])
    }

    @Test func twoByteExtensionBothWays() throws {
        let packet = try RTPPacket(parsing: RTPPacketVectors.twoByte)
        #expect(!packet.marker)
        #expect(packet.payloadType == 0)
        #expect(packet.sequenceNumber == 1)
        #expect(packet.timestamp == 2)
        #expect(packet.ssrc == 3)
        #expect(packet.csrcs.isEmpty)
        #expect(!packet.hasPadding)
        let ext = try #require(packet.headerExtension)
        #expect(ext.isTwoByte)
        #expect(!ext.isOneByte)
        #expect(ext.profile == 0x1005)
        let elements = try ext.elements()
        #expect(elements == [RTPHeaderExtensionElement(id: 1, data: []), RTPHeaderExtensionElement(id: 20, data: [0xAA])])
        let rebuilt = try RTPHeaderExtension(elements: elements, appBits: 5)
        #expect(rebuilt == ext)
        var copy = packet
        copy.headerExtension = rebuilt
        #expect(copy.serialized() == RTPPacketVectors.twoByte)
    }

    @Test func fixedHeaderOnlyParse() throws {
        let header = try RTPFixedHeader(parsing: RTPPacketVectors.full)
        #expect(header.hasPadding && header.hasExtension && header.marker)
        #expect(header.csrcCount == 2)
        #expect(header.payloadType == 111)
        #expect(header.sequenceNumber == 0x1234)
        #expect(header.timestamp == 0xDEAD_BEEF)
        #expect(header.ssrc == 0x1122_3344)
        // Only the fixed part is checked.
        #expect(try RTPFixedHeader(parsing: Array(RTPPacketVectors.full.prefix(12))).csrcCount == 2)
        #expect(throws: RTPParseError.truncated(length: 11)) { try RTPFixedHeader(parsing: Array(RTPPacketVectors.full.prefix(11))) }
    }

    @Test func bareHeaderHasEmptyPayload() throws {
        let packet = try RTPPacket(parsing: RTPPacketVectors.bare)
        #expect(packet.payload.isEmpty)
        #expect(packet.headerExtension == nil)
        #expect(packet.payloadType == 8)
        #expect(packet.sequenceNumber == 65535)
        #expect(packet.ssrc == 0xFFFF_FFFF)
        #expect(packet.serialized() == RTPPacketVectors.bare)
    }

    @Test func paddingOnlyPacket() throws {
        // P set, padding of 4 covers everything after the header: empty payload.
        let bytes: [UInt8] = [0xA0, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]
        let packet = try RTPPacket(parsing: bytes)
        #expect(packet.payload.isEmpty)
        #expect(packet.paddingLength == 4)
        #expect(packet.serialized() == bytes)
    }

    @Test func serializerClampsOutOfRangeFields() throws {
        let payload: [UInt8] = [1]
        var packet = RTPPacket(payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0, payload: payload[...])
        packet.csrcs = (0..<20).map { SSRC(UInt32($0)) }
        packet.headerExtension = RTPHeaderExtension(profile: 0xABCD, data: [1, 2, 3, 4, 5])
        let bytes = packet.serialized()
        #expect(bytes.count == 12 + 60 + 4 + 8 + 1)
        let reparsed = try RTPPacket(parsing: bytes)
        #expect(reparsed.csrcs == Array(packet.csrcs.prefix(15)))
        #expect(Array(reparsed.headerExtension!.data) == [1, 2, 3, 4, 5, 0, 0, 0])
    }

    // MARK: Bad input

    @Test func truncatedAtEveryLength() throws {
        let full = RTPPacketVectors.full
        for n in 0..<full.count {
            let prefix = Array(full.prefix(n))
            let result = Result { () throws(RTPParseError) in try RTPPacket(parsing: prefix) }
            switch n {
            case 0..<12: #expect(throws: RTPParseError.truncated(length: n)) { try result.get() }
            case 12..<20: #expect(throws: RTPParseError.csrcOverrun(csrcCount: 2, length: n)) { try result.get() }
            case 20..<24: #expect(throws: RTPParseError.extensionOverrun(needed: 24, length: n)) { try result.get() }
            case 24..<32: #expect(throws: RTPParseError.extensionOverrun(needed: 32, length: n)) { try result.get() }
            case 32: #expect(throws: RTPParseError.invalidPadding(paddingLength: 0, available: 0)) { try result.get() }
            default:
                // The last byte of the prefix is read as the padding count.
                let count = Int(prefix[n - 1])
                if count >= 1 && count <= n - 32 {
                    #expect(try result.get().payload.count == n - 32 - count)
                } else {
                    #expect(throws: RTPParseError.invalidPadding(paddingLength: count, available: n - 32)) { try result.get() }
                }
            }
        }
    }

    @Test func badVersion() {
        for version: UInt8 in [0, 1, 3] {
            var bytes = RTPPacketVectors.bare
            bytes[0] = version << 6
            #expect(throws: RTPParseError.badVersion(version)) { try RTPPacket(parsing: bytes) }
        }
    }

    @Test func csrcCountOverrun() {
        var bytes = RTPPacketVectors.bare + [0, 0, 0, 0]
        bytes[0] = 0x82
        #expect(throws: RTPParseError.csrcOverrun(csrcCount: 2, length: 16)) { try RTPPacket(parsing: bytes) }
        bytes[0] = 0x8F
        #expect(throws: RTPParseError.csrcOverrun(csrcCount: 15, length: 16)) { try RTPPacket(parsing: bytes) }
    }

    @Test func lyingExtensionLength() {
        var bytes = RTPPacketVectors.twoByte
        bytes[15] = 3  // says 3 words, only 2 words + 1 payload byte follow
        #expect(throws: RTPParseError.extensionOverrun(needed: 28, length: 25)) { try RTPPacket(parsing: bytes) }
        bytes[14] = 0xFF
        bytes[15] = 0xFF
        #expect(throws: RTPParseError.extensionOverrun(needed: 16 + 0xFFFF * 4, length: 25)) { try RTPPacket(parsing: bytes) }
        // X bit set but no room for the extension header.
        var bare = RTPPacketVectors.bare
        bare[0] |= 0x10
        #expect(throws: RTPParseError.extensionOverrun(needed: 16, length: 12)) { try RTPPacket(parsing: bare) }
    }

    @Test func badPadding() throws {
        var bytes = RTPPacketVectors.full
        bytes[bytes.count - 1] = 0
        #expect(throws: RTPParseError.invalidPadding(paddingLength: 0, available: 8)) { try RTPPacket(parsing: bytes) }
        bytes[bytes.count - 1] = 9
        #expect(throws: RTPParseError.invalidPadding(paddingLength: 9, available: 8)) { try RTPPacket(parsing: bytes) }
        bytes[bytes.count - 1] = 8  // all of payload and padding: valid, empty payload
        #expect(try RTPPacket(parsing: bytes).payload.isEmpty)
        var bare = RTPPacketVectors.bare
        bare[0] |= 0x20
        #expect(throws: RTPParseError.invalidPadding(paddingLength: 255, available: 0)) { try RTPPacket(parsing: bare) }
    }
}
