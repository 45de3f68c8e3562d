import RTP

/// Issue 2 figures: a typical browser audio RTP packet and an RTCP SR+SDES compound.
enum RTPWireBenchmarks {
    /// 12-byte header + one-byte-form extension (audio level id 1, mid id 3 = "0") + 80-byte payload.
    static func typicalPacket(sequence: UInt16 = 4711, timestamp: UInt32 = 960 * 4711, payload: [UInt8]? = nil) -> RTPPacket {
        let body: [UInt8] = payload ?? (0..<80).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 0x78) }
        let extensionElements = [
            RTPHeaderExtensionElement(id: 1, value: AudioLevelExtension(voiceActivity: true, level: 30)),
            RTPHeaderExtensionElement(id: 3, value: SDESMidExtension(mid: "0")),
        ]
        return RTPPacket(marker: false, payloadType: 111, sequenceNumber: SequenceNumber(sequence), timestamp: RTPTimestamp(timestamp),
                         ssrc: 0x1234_5678, headerExtension: try! RTPHeaderExtension(elements: extensionElements), payload: body[...])
    }

    static func run(_ bench: inout Bench) {
        let packet = typicalPacket()
        let wire = packet.serialized()
        bench.measure("wire/RTP packet: parse", iterations: 200_000, note: "\(wire.count) bytes (hdr 12 + ext 8 + 80 payload)") {
            blackHole(try? RTPPacket(parsing: wire))
        }
        bench.measure("wire/RTP packet: parse + read audio level and mid", iterations: 200_000) {
            guard let parsed = try? RTPPacket(parsing: wire),
                  let level = parsed.headerExtensionElement(id: 1), let mid = parsed.headerExtensionElement(id: 3) else { return }
            blackHole((level.first, mid.count))
        }
        bench.measure("wire/RTP packet: fixed header only (RTPFixedHeader)", iterations: 200_000) {
            blackHole(try? RTPFixedHeader(parsing: wire))
        }
        bench.measure("wire/RTP packet: serialize (new array)", iterations: 200_000) {
            blackHole(packet.serialized())
        }
        var reused = [UInt8]()
        reused.reserveCapacity(256)
        bench.measure("wire/RTP packet: serialize into reused buffer", iterations: 200_000) {
            reused.removeAll(keepingCapacity: true)
            packet.serialize(into: &reused)
            blackHole(reused.count)
        }

        // Chrome-style compound: SR with one report block, then SDES with a CNAME.
        let compound = RTCPCompoundPacket(packets: [
            .senderReport(RTCPSenderReport(ssrc: 0x1234_5678, ntpTime: NTPTime(seconds: 3_900_000_000, fraction: 0x8000_0000),
                                           rtpTimestamp: 123_456, packetCount: 500, octetCount: 40_000,
                                           reportBlocks: [RTCPReportBlock(ssrc: 0x9ABC_DEF0, fractionLost: 3, cumulativeLost: 12,
                                                                          extendedHighestSequence: 70_000, jitter: 120,
                                                                          lastSR: 0x1234_5678, delaySinceLastSR: 6553)])),
            .sourceDescription(RTCPSourceDescription(chunks: [RTCPSDESChunk(ssrc: 0x1234_5678,
                                                                            items: [RTCPSDESItem(type: .cname, text: "f2YbX0n8t2Kj3oq4")])])),
        ])
        let rtcp = try! compound.serialized()
        bench.measure("wire/RTCP SR(1 block)+SDES(CNAME) compound: parse", iterations: 100_000, note: "\(rtcp.count) bytes") {
            blackHole(try? RTCPCompoundPacket(parsing: rtcp, requireCompoundRules: true))
        }
        bench.measure("wire/RTCP SR(1 block)+SDES(CNAME) compound: serialize", iterations: 100_000) {
            blackHole(try? compound.serialized())
        }
    }
}
