/// Framing of STUN and ChannelData messages over a byte stream (TURN over TCP or TLS, RFC 8656 section 3.1
/// and section 12.5; RFC 6062 client-to-server connection).
///
/// Sans-IO: bytes read from the stream go in with `append`, whole messages come out of `nextMessage()`. A read may
/// hold part of a message or several of them. STUN messages are framed by the length in their header (always a
/// multiple of 4); ChannelData messages by their length field rounded up to a multiple of 4 (the padding is
/// mandatory over streams and is stripped here). Anything else is garbage: the framer fails for good, and the
/// connection must be closed since the stream cannot be resynchronised.
public struct TURNStreamFramer: Sendable {
    public enum FramingError: Error, Equatable, Sendable {
        /// The first two bits of a message were 0b10 or 0b11: neither STUN nor ChannelData.
        case unknownMessageType(firstByte: UInt8)
        /// A STUN header without the magic cookie.
        case badMagicCookie(UInt32)
        /// A STUN header whose length is not a multiple of 4.
        case misalignedSTUNLength(Int)
        /// A ChannelData header with a reserved channel number (0x5000...0x7FFF).
        case reservedChannel(UInt16)
        /// The framer failed earlier; the connection must be closed.
        case failed
    }

    /// One whole message taken off the stream.
    public enum Message: Equatable, Sendable {
        /// A STUN message, header included.
        case stun([UInt8])
        /// A ChannelData message: 4-byte header and data, padding removed (parsable by `TURNChannelData`).
        case channelData([UInt8])

        public var bytes: [UInt8] {
            switch self {
            case .stun(let bytes), .channelData(let bytes): bytes
            }
        }
    }

    private var buffer: [UInt8] = []
    private var start = 0
    public private(set) var failure: FramingError?

    public init() {}

    /// Bytes buffered that do not yet form a whole message.
    public var bufferedCount: Int { buffer.count - start }

    /// Appends bytes read from the stream (ignored once the framer failed).
    public mutating func append<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        guard failure == nil else { return }
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, nil if more bytes are needed. Throws on garbage, and on every call after that.
    public mutating func nextMessage() throws(FramingError) -> Message? {
        if failure != nil { throw .failed }
        let available = buffer.count - start
        guard available >= 4 else { return nil }
        let first = buffer[start]
        let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        switch first >> 6 {
        case 0b00:
            guard length & 3 == 0 else { return try fail(.misalignedSTUNLength(length)) }
            guard available >= 8 else { return nil }
            var cookie: UInt32 = 0
            for i in 4..<8 { cookie = cookie << 8 | UInt32(buffer[start + i]) }
            guard cookie == stunMagicCookie else { return try fail(.badMagicCookie(cookie)) }
            let total = 20 + length
            guard available >= total else { return nil }
            let message = Array(buffer[start..<start + total])
            consume(total)
            return .stun(message)
        case 0b01:
            let channel = UInt16(first) << 8 | UInt16(buffer[start + 1])
            guard TURNChannelData.validChannels.contains(channel) else { return try fail(.reservedChannel(channel)) }
            let padded = (4 + length + 3) & ~3
            guard available >= padded else { return nil }
            let message = Array(buffer[start..<start + 4 + length])
            consume(padded)
            return .channelData(message)
        default:
            return try fail(.unknownMessageType(firstByte: first))
        }
    }

    /// All whole messages now buffered.
    public mutating func drain() throws(FramingError) -> [Message] {
        var out: [Message] = []
        while let message = try nextMessage() { out.append(message) }
        return out
    }

    /// Prepares an outgoing STUN or ChannelData message for a stream: ChannelData is padded to a multiple of 4
    /// (STUN messages already are).
    public static func framed(_ message: [UInt8]) -> [UInt8] {
        guard let first = message.first, first >> 6 == 0b01, message.count & 3 != 0 else { return message }
        return message + [UInt8](repeating: 0, count: 4 - message.count & 3)
    }

    private mutating func consume(_ count: Int) {
        start += count
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
    }

    private mutating func fail(_ error: FramingError) throws(FramingError) -> Message? {
        failure = error
        buffer = []
        start = 0
        throw error
    }
}
