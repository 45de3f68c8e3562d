import ICE
import RTP
import SDP

/// One entry point per parser. Each must return normally for any input: a parser that traps or
/// reads out of bounds is what the fuzzer finds (AddressSanitizer is on in fuzz builds).
/// Whatever parses must serialize and parse back to the same value.
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "stun": stun,
        "channeldata": channelData,
        "candidate": candidate,
        "rtp": rtp,
        "rtcp": rtcp,
        "sdp": sdp,
        "ogg": ogg,
        "wav": wav,
    ]

    static func stun(_ bytes: [UInt8]) {
        guard var message = try? STUNMessage(decoding: bytes) else { return }
        _ = message.verifyIntegrity(of: bytes, key: [1, 2, 3])
        message.attributes.removeAll { if case .fingerprint = $0 { true } else { false } }
        let again = try? STUNMessage(decoding: message.encoded())
        precondition(again == message, "STUN re-encode changed the message")
    }

    static func channelData(_ bytes: [UInt8]) {
        guard let frame = try? TURNChannelData(parsing: bytes) else { return }
        precondition((try? TURNChannelData(parsing: frame.serialized())) == frame)
    }

    static func candidate(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self), let candidate = try? Candidate(parsing: text) else { return }
        precondition((try? Candidate(parsing: candidate.description)) == candidate, "candidate re-parse changed it")
    }

    static func rtp(_ bytes: [UInt8]) {
        guard let packet = try? RTPPacket(parsing: bytes) else { return }
        _ = try? packet.headerExtension?.elements()
        let again = try? RTPPacket(parsing: packet.serialized())
        precondition(again == packet, "RTP re-serialize changed the packet")
    }

    static func rtcp(_ bytes: [UInt8]) {
        guard let compound = try? RTCPCompoundPacket(parsing: bytes) else { return }
        guard let wire = try? compound.serialized() else { return }
        precondition((try? RTCPCompoundPacket(parsing: wire)) == compound, "RTCP re-serialize changed the packet")
    }

    static func sdp(_ bytes: [UInt8]) {
        guard let description = try? SessionDescription(parsing: bytes) else { return }
        let again = try? SessionDescription(parsing: description.serialized())
        precondition(again == description, "SDP re-serialize changed the description")
    }

    static func ogg(_ bytes: [UInt8]) {
        if let (page, _) = try? OggPage.parse(bytes, verifyCRC: false), let wire = try? page.serialized() {
            precondition((try? OggPage.parse(wire).page) == page, "Ogg page re-serialize changed it")
        }
        // The streaming readers take arbitrary bytes too.
        var reader = OggPageReader()
        reader.append(bytes)
        for _ in 0..<10_000 {
            do { guard try reader.nextPacket() != nil else { break } } catch { continue }
        }
    }

    static func wav(_ bytes: [UInt8]) {
        guard let file = try? WAVFile.parse(bytes) else { return }
        precondition((try? WAVFile.parse(file.serialized())) == file, "WAV re-serialize changed it")
    }
}
