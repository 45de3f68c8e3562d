import Testing
@testable import RTP

@Suite("RFC 8285 header extensions and typed values")
struct RTPHeaderExtensionTests {
    @Test func oneByteParseSkipsPaddingAndKeepsOrder() throws {
        let ext = RTPHeaderExtension(profile: 0xBEDE, data: [0x10, 0x85, 0x00, 0x00, 0x22, 0x40, 0x00, 0x00, 0x31, 0x01, 0x02, 0x00])
        let elements = try ext.elements()
        #expect(elements == [
            RTPHeaderExtensionElement(id: 1, data: [0x85]),
            RTPHeaderExtensionElement(id: 2, data: [0x40, 0x00, 0x00]),
            RTPHeaderExtensionElement(id: 3, data: [0x01, 0x02]),
        ])
        #expect(try ext.element(id: 2).map(Array.init) == [0x40, 0x00, 0x00])
        #expect(try ext.element(id: 9) == nil)
    }

    @Test func oneByteIDFifteenStopsParsing() throws {
        let ext = RTPHeaderExtension(profile: 0xBEDE, data: [0x10, 0x85, 0xF0, 0x31, 0x01, 0x02, 0x00, 0x00])
        #expect(try ext.elements() == [RTPHeaderExtensionElement(id: 1, data: [0x85])])
        #expect(try ext.element(id: 3) == nil)
    }

    @Test func elementLengthPastTheEnd() {
        let oneByte = RTPHeaderExtension(profile: 0xBEDE, data: [0x1F, 0x00, 0x00, 0x00])
        #expect(throws: RTPHeaderExtensionError.elementOverrun(id: 1, length: 16, available: 3)) { try oneByte.elements() }
        let twoByte = RTPHeaderExtension(profile: 0x1000, data: [0x05, 0x04, 0xAA, 0xBB])
        #expect(throws: RTPHeaderExtensionError.elementOverrun(id: 5, length: 4, available: 2)) { try twoByte.elements() }
        let twoByteNoLength = RTPHeaderExtension(profile: 0x1000, data: [0x00, 0x00, 0x00, 0x07])
        #expect(throws: RTPHeaderExtensionError.elementOverrun(id: 7, length: 1, available: 0)) { try twoByteNoLength.elements() }
        let other = RTPHeaderExtension(profile: 0x1234, data: [0, 0, 0, 0])
        #expect(throws: RTPHeaderExtensionError.unsupportedProfile(0x1234)) { try other.elements() }
        #expect(RTPPacket(payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0, headerExtension: oneByte, payload: []).headerExtensionElement(id: 1) == nil)
    }

    @Test func builderPicksOneByteForm() throws {
        let ext = try RTPHeaderExtension(elements: [
            RTPHeaderExtensionElement(id: 14, data: Array(repeating: 0xAB, count: 16)),
            RTPHeaderExtensionElement(id: 1, data: [0x7F]),
        ])
        #expect(ext.profile == 0xBEDE)
        #expect(Array(ext.data) == [0xEF] + Array(repeating: 0xAB, count: 16) + [0x10, 0x7F, 0x00])
    }

    @Test func builderFallsBackToTwoByteForm() throws {
        // id 15 cannot use the one-byte form.
        let highID = try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 15, data: [1])])
        #expect(highID.profile == 0x1000)
        #expect(Array(highID.data) == [0x0F, 0x01, 0x01, 0x00])
        // 17 bytes cannot use the one-byte form.
        let long = try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 2, data: Array(repeating: 7, count: 17))], appBits: 0x3)
        #expect(long.profile == 0x1003)
        #expect(Array(long.data) == [0x02, 17] + Array(repeating: 7, count: 17) + [0])
        // Empty data cannot use the one-byte form.
        let empty = try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 4, data: [])])
        #expect(Array(empty.data) == [0x04, 0x00, 0x00, 0x00])
        #expect(try empty.elements() == [RTPHeaderExtensionElement(id: 4, data: [])])
    }

    @Test func builderRejectsInvalidElements() {
        #expect(throws: RTPHeaderExtensionError.invalidID(0)) {
            try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 0, data: [1])])
        }
        #expect(throws: RTPHeaderExtensionError.elementTooLong(id: 9, length: 256)) {
            try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 9, data: Array(repeating: 0, count: 256))])
        }
        let many = (0..<1100).map { _ in RTPHeaderExtensionElement(id: 200, data: Array(repeating: 1, count: 255)) }
        #expect(throws: RTPHeaderExtensionError.extensionTooLong(length: 1100 * 257)) { try RTPHeaderExtension(elements: many) }
    }

    @Test func audioLevel() throws {
        let loud = try AudioLevelExtension.parse(from: [0x85])
        #expect(loud == AudioLevelExtension(voiceActivity: true, level: 5))
        #expect(loud.serialize() == [0x85])
        let silent = try AudioLevelExtension.parse(from: [0x7F])
        #expect(!silent.voiceActivity && silent.level == 127)
        #expect(AudioLevelExtension(voiceActivity: false, level: 200).serialize() == [0x7F])
        #expect(throws: RTPHeaderExtensionError.lengthMismatch(expected: 1, actual: 0)) { try AudioLevelExtension.parse(from: []) }
        #expect(throws: RTPHeaderExtensionError.lengthMismatch(expected: 1, actual: 2)) { try AudioLevelExtension.parse(from: [1, 2]) }
        #expect(AudioLevelExtension.uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level")
    }

    @Test func absSendTime() throws {
        let sixteen = try AbsSendTimeExtension.parse(from: [0x40, 0x00, 0x00])
        #expect(sixteen.rawValue == 0x40_0000)
        #expect(sixteen.seconds == 16.0)
        #expect(AbsSendTimeExtension(seconds: 16.5).serialize() == [0x42, 0x00, 0x00])
        #expect(AbsSendTimeExtension(seconds: 80.25).serialize() == [0x41, 0x00, 0x00])
        #expect(AbsSendTimeExtension(seconds: -1).rawValue == 63 << 18)
        #expect(AbsSendTimeExtension(seconds: .infinity).rawValue == 0)
        // 56 s (0x12345678 mod 64) and half a second.
        let fromNTP = AbsSendTimeExtension(ntp: NTPTime(seconds: 0x1234_5678, fraction: 0x8000_0000))
        #expect(fromNTP.rawValue == 0xE2_0000)
        #expect(fromNTP.seconds == 56.5)
        #expect(AbsSendTimeExtension(rawValue: 0xFF12_3456).serialize() == [0x12, 0x34, 0x56])
        #expect(throws: RTPHeaderExtensionError.lengthMismatch(expected: 3, actual: 4)) { try AbsSendTimeExtension.parse(from: [1, 2, 3, 4]) }
        #expect(AbsSendTimeExtension.uri == "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
    }

    @Test func transportSequenceNumber() throws {
        #expect(try TransportSequenceNumberExtension.parse(from: [0x01, 0x02]).sequenceNumber == 0x0102)
        #expect(TransportSequenceNumberExtension(sequenceNumber: 0xFFFE).serialize() == [0xFF, 0xFE])
        #expect(throws: RTPHeaderExtensionError.lengthMismatch(expected: 2, actual: 1)) { try TransportSequenceNumberExtension.parse(from: [1]) }
        #expect(TransportSequenceNumberExtension.uri == "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01")
    }

    @Test func sdesMid() throws {
        #expect(try SDESMidExtension.parse(from: [0x30]).mid == "0")
        #expect(try SDESMidExtension.parse(from: [0x61, 0x75, 0x00, 0x00]).mid == "au")
        #expect(SDESMidExtension(mid: "audio").serialize() == Array("audio".utf8))
        #expect(throws: RTPHeaderExtensionError.invalidValue) { try SDESMidExtension.parse(from: []) }
        #expect(throws: RTPHeaderExtensionError.invalidValue) { try SDESMidExtension.parse(from: [0x00, 0x61]) }
        #expect(throws: RTPHeaderExtensionError.invalidUTF8) { try SDESMidExtension.parse(from: [0xFF]) }
        #expect(SDESMidExtension.uri == "urn:ietf:params:rtp-hdrext:sdes:mid")
        // A 17-byte MID forces the two-byte form.
        let longMid = SDESMidExtension(mid: String(repeating: "m", count: 17))
        let ext = try RTPHeaderExtension(elements: [RTPHeaderExtensionElement(id: 4, value: longMid)])
        #expect(ext.isTwoByte)
        #expect(try SDESMidExtension.parse(from: try #require(try ext.element(id: 4))) == longMid)
    }

    @Test func chromiumStyleExtensionsThroughAPacket() throws {
        let ext = try RTPHeaderExtension(elements: [
            RTPHeaderExtensionElement(id: 1, value: AudioLevelExtension(voiceActivity: true, level: 30)),
            RTPHeaderExtensionElement(id: 2, value: AbsSendTimeExtension(rawValue: 0x12_3456)),
            RTPHeaderExtensionElement(id: 3, value: TransportSequenceNumberExtension(sequenceNumber: 777)),
            RTPHeaderExtensionElement(id: 4, value: SDESMidExtension(mid: "0")),
        ])
        // 2 + 4 + 3 + 2 = 11 bytes, padded to 12.
        #expect(Array(ext.data) == [0x10, 0x9E, 0x22, 0x12, 0x34, 0x56, 0x31, 0x03, 0x09, 0x40, 0x30, 0x00])
        let payload: [UInt8] = [0xFC]
        let bytes = RTPPacket(payloadType: 111, sequenceNumber: 1, timestamp: 960, ssrc: 42, headerExtension: ext, payload: payload[...]).serialized()
        let packet = try RTPPacket(parsing: bytes)
        #expect(try AudioLevelExtension.parse(from: try #require(packet.headerExtensionElement(id: 1))).level == 30)
        #expect(try AbsSendTimeExtension.parse(from: try #require(packet.headerExtensionElement(id: 2))).rawValue == 0x12_3456)
        #expect(try TransportSequenceNumberExtension.parse(from: try #require(packet.headerExtensionElement(id: 3))).sequenceNumber == 777)
        #expect(try SDESMidExtension.parse(from: try #require(packet.headerExtensionElement(id: 4))).mid == "0")
    }
}
