import ICE

/// One entry point per parser. Each must return normally for any input: a parser that traps or
/// reads out of bounds is what the fuzzer finds (AddressSanitizer is on in fuzz builds).
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "stun": stun,
        "channeldata": channelData,
        "candidate": candidate,
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
}
