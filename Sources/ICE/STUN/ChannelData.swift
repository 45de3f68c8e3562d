import Wire

/// A TURN ChannelData message (RFC 8656 section 12.4): channel number, length, application data.
public struct TURNChannelData: Equatable, Sendable {
    public enum ParseError: Error, Equatable, Sendable {
        case truncated(needed: Int, available: Int)
        case channelOutOfRange(UInt16)
        case lengthExceedsDatagram(length: Int, available: Int)
    }

    /// Channel numbers 0x4000...0x4FFF are valid (0x5000...0x7FFF are reserved).
    public static let validChannels: ClosedRange<UInt16> = 0x4000...0x4FFF

    public var channelNumber: UInt16
    public var data: ArraySlice<UInt8>

    public init(channelNumber: UInt16, data: ArraySlice<UInt8>) {
        self.channelNumber = channelNumber
        self.data = data
    }

    /// Parses without copying: `data` is a slice of `bytes`. Over UDP, trailing padding is allowed and ignored.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        guard bytes.count >= 4 else { throw .truncated(needed: 4, available: bytes.count) }
        let channel = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard Self.validChannels.contains(channel) else { throw .channelOutOfRange(channel) }
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        guard 4 + length <= bytes.count else { throw .lengthExceedsDatagram(length: length, available: bytes.count - 4) }
        self.channelNumber = channel
        self.data = bytes[4..<4 + length]
    }

    /// Serializes; `padded` rounds up to a multiple of 4 as TCP/TLS transports require.
    public func serialized(padded: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + data.count + 3)
        out.appendBigEndian(channelNumber)
        out.appendBigEndian(UInt16(truncatingIfNeeded: data.count))
        out.append(contentsOf: data)
        if padded { while out.count & 3 != 0 { out.append(0) } }
        return out
    }
}
