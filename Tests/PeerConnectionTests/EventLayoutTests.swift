import Testing
import ICE
import RTP
@testable import PeerConnection

@Suite struct EventLayoutTests {
    /// Each received packet's event is copied a few times on its way to the owner: no rare case may
    /// make it larger than the RTP packet it carries (and a tag).
    @Test func anEventIsNoLargerThanTheRTPPacketItCarries() {
        #expect(MemoryLayout<PeerConnectionEvent>.size <= MemoryLayout<RTPPacket>.size + 1,
                "event \(MemoryLayout<PeerConnectionEvent>.size) bytes, RTP packet \(MemoryLayout<RTPPacket>.size)")
    }
}
