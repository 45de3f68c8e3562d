import Testing
@testable import RTP

/// SplitMix64: a small deterministic PRNG for reproducible mutation runs.
struct RTPPacketTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

    /// One random mutation: bit flip, byte set, truncation, insertion, deletion or length-field poke.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(3) {
            switch below(6) {
            case 0 where !bytes.isEmpty:
                bytes[below(bytes.count)] ^= UInt8(1) << UInt8(below(8))
            case 1 where !bytes.isEmpty:
                bytes[below(bytes.count)] = UInt8(truncatingIfNeeded: next())
            case 2:
                bytes.removeLast(below(bytes.count + 1))
            case 3:
                bytes.insert(UInt8(truncatingIfNeeded: next()), at: below(bytes.count + 1))
            case 4 where !bytes.isEmpty:
                bytes.remove(at: below(bytes.count))
            case 5 where bytes.count >= 4:
                // Poke the likely length and count fields with small values.
                let index = [0, 2, 3, 14, 15][below(5)]
                if index < bytes.count { bytes[index] = UInt8(truncatingIfNeeded: next() % 8) | (index == 0 ? 0x80 : 0) }
            default:
                break
            }
        }
        return bytes
    }
}

@Suite("Packet codec mutation runs")
struct PacketMutationTests {
    @Test func rtpMutationsNeverCrashAndRoundTrip() throws {
        var rng = RTPPacketTestRandom(seed: 0xC0FFEE)
        var parsed = 0
        var failures = 0
        for iteration in 0..<6000 {
            let base = RTPPacketVectors.all[iteration % RTPPacketVectors.all.count]
            let bytes = rng.mutate(base)
            _ = try? RTPFixedHeader(parsing: bytes)
            guard let packet = try? RTPPacket(parsing: bytes) else { continue }
            parsed += 1
            let again = try RTPPacket(parsing: packet.serialized())
            if again != packet { failures += 1 }
            // Elements (when well formed) survive a rebuild through the builder.
            if let ext = packet.headerExtension, let elements = try? ext.elements(),
                let rebuilt = try? RTPHeaderExtension(elements: elements)
            {
                if (try? rebuilt.elements()) != elements { failures += 1 }
                for element in elements {
                    _ = try? AudioLevelExtension.parse(from: element.data)
                    _ = try? AbsSendTimeExtension.parse(from: element.data)
                    _ = try? TransportSequenceNumberExtension.parse(from: element.data)
                    _ = try? SDESMidExtension.parse(from: element.data)
                }
            }
        }
        #expect(failures == 0)
        #expect(parsed > 1000, "too few mutants parsed to exercise the round trip")
    }

    @Test func rtpRandomBytesNeverCrash() {
        var rng = RTPPacketTestRandom(seed: 42)
        var parsed = 0
        for _ in 0..<4000 {
            var bytes = (0..<rng.below(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty { bytes[0] = 0x80 | (bytes[0] & 0x3F) }
            if let packet = try? RTPPacket(parsing: bytes) {
                parsed += 1
                #expect((try? RTPPacket(parsing: packet.serialized())) == packet)
            }
        }
        #expect(parsed > 0)
    }

    @Test func rtcpMutationsNeverCrashAndRoundTrip() throws {
        var rng = RTPPacketTestRandom(seed: 0xBADC0DE)
        let bases = RTCPPacketVectors.singles + RTCPPacketVectors.compounds
        var parsed = 0
        var failures = 0
        for iteration in 0..<8000 {
            let bytes = rng.mutate(bases[iteration % bases.count])
            _ = try? RTCPCompoundPacket(parsing: bytes, requireCompoundRules: true)
            guard let compound = try? RTCPCompoundPacket(parsing: bytes) else { continue }
            parsed += 1
            let serialized = try compound.serialized()
            if serialized.count != bytes.count { failures += 1 }
            if try RTCPCompoundPacket(parsing: serialized) != compound { failures += 1 }
        }
        #expect(failures == 0)
        #expect(parsed > 1000, "too few mutants parsed to exercise the round trip")
    }
}
