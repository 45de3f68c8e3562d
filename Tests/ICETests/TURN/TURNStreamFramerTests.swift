import Testing
@testable import ICE

@Suite struct TURNStreamFramerTests {
    let peer = TransportAddress(ip: IPAddress("192.0.2.7")!, port: 5000)

    /// A Data indication with an odd-sized payload (the encoder pads attributes).
    func stun(_ payload: [UInt8]) -> [UInt8] {
        STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication), transactionID: .random(),
                    attributes: [.xorPeerAddress(peer), .data(payload)]).encoded(fingerprint: true)
    }

    func channelData(_ channel: UInt16, _ payload: [UInt8]) -> [UInt8] {
        TURNChannelData(channelNumber: channel, data: payload[...]).serialized()
    }

    @Test func wholeMessagesOneByOne() throws {
        var framer = TURNStreamFramer()
        let message = stun([1, 2, 3])
        framer.append(message)
        #expect(try framer.nextMessage() == .stun(message))
        #expect(try framer.nextMessage() == nil)
        let data = channelData(0x4001, [9, 8, 7, 6])
        framer.append(TURNStreamFramer.framed(data))
        #expect(try framer.nextMessage() == .channelData(data))
        #expect(framer.bufferedCount == 0)
    }

    @Test func channelDataPaddingIsAddedAndStripped() throws {
        for size in 0...9 {
            let payload = (0..<size).map { UInt8($0 + 100) }
            let data = channelData(0x4ABC, payload)
            let framed = TURNStreamFramer.framed(data)
            #expect(framed.count % 4 == 0)
            #expect(framed.count == (4 + size + 3) / 4 * 4)
            #expect(Array(framed.prefix(data.count)) == data)
            #expect(framed.dropFirst(data.count).allSatisfy { $0 == 0 })
            var framer = TURNStreamFramer()
            framer.append(framed)
            let message = try #require(try framer.nextMessage())
            #expect(message == .channelData(data))
            #expect(try Array(TURNChannelData(parsing: message.bytes).data) == payload)
            #expect(framer.bufferedCount == 0)
        }
        // STUN is already aligned and left alone.
        let message = stun([1])
        #expect(TURNStreamFramer.framed(message) == message)
    }

    @Test func splitAtEveryByte() throws {
        let stream = TURNStreamFramer.framed(channelData(0x4000, [1, 2, 3, 4, 5])) + stun([7, 7]) +
            TURNStreamFramer.framed(channelData(0x4FFF, [42]))
        let expected: [TURNStreamFramer.Message] = [
            .channelData(channelData(0x4000, [1, 2, 3, 4, 5])),
            .stun(Array(stream[12..<stream.count - 8])),
            .channelData(channelData(0x4FFF, [42])),
        ]
        // Byte by byte.
        var framer = TURNStreamFramer()
        var got: [TURNStreamFramer.Message] = []
        for byte in stream {
            framer.append([byte])
            got += try framer.drain()
        }
        #expect(got == expected)
        // Every two-way split.
        for cut in 0...stream.count {
            var framer = TURNStreamFramer()
            framer.append(stream[..<cut])
            var got = try framer.drain()
            framer.append(stream[cut...])
            got += try framer.drain()
            #expect(got == expected, "cut at \(cut)")
            #expect(framer.bufferedCount == 0)
        }
    }

    @Test func coalescedMessagesInOneRead() throws {
        var stream: [UInt8] = []
        var expected: [TURNStreamFramer.Message] = []
        for i in 0..<50 {
            if i % 3 == 0 {
                let message = stun(Array(repeating: UInt8(i), count: i))
                stream += message
                expected.append(.stun(message))
            } else {
                let data = channelData(0x4000 + UInt16(i), Array(repeating: UInt8(i), count: i))
                stream += TURNStreamFramer.framed(data)
                expected.append(.channelData(data))
            }
        }
        var framer = TURNStreamFramer()
        framer.append(stream)
        #expect(try framer.drain() == expected)
        #expect(framer.bufferedCount == 0)
        // Partial trailing message stays buffered.
        framer.append(stream.prefix(10))
        #expect(try framer.drain() == [])
        #expect(framer.bufferedCount == 10)
    }

    @Test func garbageFailsForGood() throws {
        var framer = TURNStreamFramer()
        let good = stun([1])
        framer.append(good + [0xC0, 0, 0, 4, 1, 2, 3, 4] + good)
        #expect(try framer.nextMessage() == .stun(good))
        #expect(throws: TURNStreamFramer.FramingError.unknownMessageType(firstByte: 0xC0)) { try framer.nextMessage() }
        #expect(framer.failure == .unknownMessageType(firstByte: 0xC0))
        // Closed: the valid message after the garbage is not delivered, even after more bytes.
        framer.append(good)
        #expect(throws: TURNStreamFramer.FramingError.failed) { try framer.nextMessage() }
        #expect(framer.bufferedCount == 0)
    }

    @Test func badHeadersAreTyped() {
        var wrongCookie = stun([1])
        wrongCookie[4] ^= 0xFF
        var misaligned = stun([1])
        misaligned[3] |= 1
        let cases: [([UInt8], TURNStreamFramer.FramingError)] = [
            (wrongCookie, .badMagicCookie(0x2112_A442 ^ 0xFF00_0000)),
            (misaligned, .misalignedSTUNLength(Int(misaligned[2]) << 8 | Int(misaligned[3]))),
            ([0x50, 0x00, 0x00, 0x00], .reservedChannel(0x5000)),
            ([0x7F, 0xFF, 0x00, 0x04, 1, 2, 3, 4], .reservedChannel(0x7FFF)),
            ([0x80, 0x00, 0x00, 0x00], .unknownMessageType(firstByte: 0x80)),
            // A TLS ClientHello record where plain STUN was expected.
            ([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03], .misalignedSTUNLength(0x0102)),
        ]
        for (bytes, error) in cases {
            var framer = TURNStreamFramer()
            framer.append(bytes)
            #expect(throws: error) { try framer.nextMessage() }
        }
    }
}
