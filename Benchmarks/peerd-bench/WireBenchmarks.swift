import ICE

enum WireBenchmarks {
    static func run(_ bench: inout Bench) {
        // A typical ICE connectivity check as browsers send it: USERNAME, ICE-CONTROLLING,
        // PRIORITY, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT (100 bytes or so).
        let key = Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)
        let request = STUNMessage(type: .bindingRequest, transactionID: .random(), attributes: [
            .username("evtj:h6vY"), .iceControlling(tieBreaker: 0x1234_5678_9ABC_DEF0), .priority(1_845_494_271), .useCandidate,
        ])
        let wire = request.encoded(integrity: .sha1(key: key), fingerprint: true)
        bench.measure("wire/STUN binding request: parse (+fingerprint check)", note: "\(wire.count) bytes") {
            blackHole(try? STUNMessage(decoding: wire))
        }
        let parsed = try! STUNMessage(decoding: wire)
        bench.measure("wire/STUN binding request: verify MESSAGE-INTEGRITY") {
            blackHole(parsed.verifyIntegrity(of: wire, key: key))
        }
        bench.measure("wire/STUN binding request: serialize (+integrity, fingerprint)") {
            blackHole(request.encoded(integrity: .sha1(key: key), fingerprint: true))
        }
        bench.measure("wire/STUN binding request: serialize (no integrity)") {
            blackHole(request.encoded(fingerprint: true))
        }
        let candidateText = "candidate:396241138 1 udp 2122260223 127.0.0.1 58142 typ host generation 0 ufrag pNf/ network-id 1 network-cost 50"
        bench.measure("wire/ICE candidate: parse", iterations: 50_000) {
            blackHole(try? Candidate(parsing: candidateText))
        }
    }
}
