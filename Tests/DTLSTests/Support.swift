import COpenSSL
@testable import DTLS
import Wire
#if canImport(Glibc)
import Glibc
#endif

func hex(_ string: String) -> [UInt8] {
    let digits = string.filter { $0.isHexDigit }
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format2: $0) }.joined()
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}

/// Deterministic PRNG for mutation loops.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// An RTP packet: version 2, payload type 111, given sequence number, timestamp and SSRC.
func rtpPacket(sequence: UInt16, ssrc: UInt32 = 0x1234_5678, payload: [UInt8]) -> [UInt8] {
    var packet: [UInt8] = [0x80, 111]
    packet.appendBigEndian(sequence)
    packet.appendBigEndian(UInt32(sequence) &* 960)
    packet.appendBigEndian(ssrc)
    return packet + payload
}

enum Direction { case clientToServer, serverToClient }

/// What the simulated network does with one datagram.
enum Fate { case deliver, drop, swapWithNext }

/// Result of shuttling datagrams between two endpoints.
struct ExchangeResult {
    var clientEvents: [DTLSEvent] = []
    var serverEvents: [DTLSEvent] = []
    var clientToServer: [[UInt8]] = []
    var serverToClient: [[UInt8]] = []

    static func connected(_ events: [DTLSEvent]) -> (SRTPProfile, SRTPKeyingMaterial, CertificateFingerprint)? {
        for case .connected(let profile, let keys, let print) in events { return (profile, keys, print) }
        return nil
    }
    static func failure(_ events: [DTLSEvent]) -> DTLSError? {
        for case .failed(let error) in events { return error }
        return nil
    }
}

/// Shuttles datagrams between two endpoints through a lossy in-memory network in real time,
/// firing timers when due, until both sides are done (connected, failed or closed) or
/// `limit` real time passes. `fate` decides per datagram (direction, index in that direction).
func exchange(client: DTLSEndpoint, server: DTLSEndpoint, limit: Duration = .seconds(5),
              fate: (Direction, Int, [UInt8]) -> Fate = { _, _, _ in .deliver }) -> ExchangeResult {
    var result = ExchangeResult()
    var held: [Direction: [UInt8]] = [:]
    let start = MonotonicTime.now()
    if client.state == .idle { client.start(now: start) }
    if server.state == .idle { server.start(now: start) }
    func done(_ endpoint: DTLSEndpoint) -> Bool { endpoint.state != .handshaking }
    while MonotonicTime.now() - start < limit {
        var moved = false
        for (from, to, direction) in [(client, server, Direction.clientToServer), (server, client, Direction.serverToClient)] {
            while let datagram = from.pollTransmit() {
                moved = true
                let index = direction == .clientToServer ? result.clientToServer.count : result.serverToClient.count
                if direction == .clientToServer { result.clientToServer.append(datagram) } else { result.serverToClient.append(datagram) }
                switch fate(direction, index, datagram) {
                case .drop:
                    continue
                case .swapWithNext:
                    if let previous = held[direction] { to.handleDatagram(previous, now: .now()) }
                    held[direction] = datagram
                    continue
                case .deliver:
                    to.handleDatagram(datagram, now: .now())
                    if let previous = held.removeValue(forKey: direction) { to.handleDatagram(previous, now: .now()) }
                }
            }
        }
        while let event = client.pollEvent() { result.clientEvents.append(event) }
        while let event = server.pollEvent() { result.serverEvents.append(event) }
        if moved { continue }
        if done(client) && done(server) { break }
        let now = MonotonicTime.now()
        let deadlines = [client.nextTimeout, server.nextTimeout].compactMap { $0 }
        if let earliest = deadlines.min(), earliest > now {
            let wait = min(earliest - now, .milliseconds(20))
            usleep(UInt32(max(wait.nanosecondsClamped / 1000, 500)))
        } else if deadlines.isEmpty {
            usleep(1000)
        }
        let later = MonotonicTime.now()
        for endpoint in [client, server] {
            if let deadline = endpoint.nextTimeout, deadline <= later { endpoint.handleTimeout(now: later) }
        }
    }
    // Flush what is left (for example alerts) and the final events.
    for (from, to) in [(client, server), (server, client)] {
        while let datagram = from.pollTransmit() { to.handleDatagram(datagram, now: .now()) }
    }
    while let event = client.pollEvent() { result.clientEvents.append(event) }
    while let event = server.pollEvent() { result.serverEvents.append(event) }
    return result
}

struct Peers {
    let clientCertificate: DTLSCertificate
    let serverCertificate: DTLSCertificate
    let client: DTLSEndpoint
    let server: DTLSEndpoint
}

func makePeers(clientProfiles: [SRTPProfile] = SRTPProfile.defaultPreference,
               serverProfiles: [SRTPProfile] = SRTPProfile.defaultPreference,
               mtu: Int = 1200,
               clientExpects: [CertificateFingerprint]? = nil,
               serverExpects: [CertificateFingerprint]? = nil,
               clientRole: DTLSRole = .client, serverRole: DTLSRole = .server) throws -> Peers {
    let clientCertificate = try DTLSCertificate.generate()
    let serverCertificate = try DTLSCertificate.generate()
    let client = try DTLSEndpoint(role: clientRole, certificate: clientCertificate,
                                  remoteFingerprints: clientExpects ?? [serverCertificate.fingerprint],
                                  srtpProfiles: clientProfiles, mtu: mtu,
                                  initialRetransmitTimeout: .milliseconds(30))
    let server = try DTLSEndpoint(role: serverRole, certificate: serverCertificate,
                                  remoteFingerprints: serverExpects ?? [clientCertificate.fingerprint],
                                  srtpProfiles: serverProfiles, mtu: mtu,
                                  initialRetransmitTimeout: .milliseconds(30))
    return Peers(clientCertificate: clientCertificate, serverCertificate: serverCertificate, client: client, server: server)
}

/// Splits a DTLS datagram into its records (header included).
func records(_ datagram: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var offset = 0
    while offset + 13 <= datagram.count {
        let length = Int(datagram[offset + 11]) << 8 | Int(datagram[offset + 12])
        guard offset + 13 + length <= datagram.count else { break }
        out.append(Array(datagram[offset..<offset + 13 + length]))
        offset += 13 + length
    }
    return out
}

/// Content type, epoch and (for epoch-0 handshake records) handshake message type of a record.
func describe(_ record: [UInt8]) -> (type: UInt8, epoch: UInt16, handshake: UInt8?) {
    let epoch = UInt16(record[3]) << 8 | UInt16(record[4])
    return (record[0], epoch, record[0] == 22 && epoch == 0 && record.count > 13 ? record[13] : nil)
}
