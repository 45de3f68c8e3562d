/// The single place where a datagram on the ICE-selected path is demultiplexed (shared by ICE, DTLS and RTP).
/// The kind of packet arriving on a WebRTC transport, told apart by its first byte (RFC 7983).
public enum PacketClass: Sendable, Equatable {
    /// STUN message (first byte 0–3).
    case stun
    /// DTLS record (first byte 20–63).
    case dtls
    /// TURN ChannelData message (first byte 64–79).
    case turnChannel
    /// RTP or RTCP packet, SRTP or SRTCP once protected (first byte 128–191).
    case rtpOrRTCP
    /// Anything else; such packets are dropped.
    case unknown

    /// Classifies a packet by its first byte, per RFC 7983 section 7.
    @inlinable
    public static func classify(firstByte: UInt8) -> PacketClass {
        switch firstByte {
        case 0...3: return .stun
        case 20...63: return .dtls
        case 64...79: return .turnChannel
        case 128...191: return .rtpOrRTCP
        default: return .unknown
        }
    }

    /// Classifies a whole packet; an empty packet is `.unknown`.
    @inlinable
    public static func classify(_ packet: some Collection<UInt8>) -> PacketClass {
        guard let first = packet.first else { return .unknown }
        return classify(firstByte: first)
    }
}
