import Wire
@testable import ICE

/// A deterministic simulated UDP network with a virtual clock, NATs, loss, delay and STUN servers.
///
/// Addresses belong to the public realm or to the private realm behind one NAT. A datagram between
/// realms goes out through the sender's NAT (endpoint-independent mapping) and in through the
/// receiver's NAT, whose filtering is endpoint-independent or address-and-port-dependent.
final class SimNetwork {
    enum Filtering { case endpointIndependent, addressAndPortDependent }

    struct NAT {
        var externalIP: IPAddress
        var filtering: Filtering
        var mappings: [TransportAddress: UInt16] = [:]
        var reverse: [UInt16: TransportAddress] = [:]
        var contacted: [UInt16: Set<TransportAddress>] = [:]
        var nextPort: UInt16 = 40_000
    }

    struct Packet {
        var source: TransportAddress
        var destination: TransportAddress
        var bytes: [UInt8]
        var deliverAt: MonotonicTime
        var sequence: Int
    }

    struct LogEntry {
        var time: MonotonicTime
        var source: TransportAddress
        var destination: TransportAddress
        var bytes: [UInt8]
    }

    var now = MonotonicTime.zero
    var rng: SplitMix64
    var lossRate = 0.0
    var delay: Duration = .milliseconds(10)
    /// Extra uniformly random delay up to this much.
    var jitter: Duration = .zero
    /// Drops every datagram while true (after the loss draw, so the random sequence is unchanged).
    var blockAll = false
    var nats: [NAT] = []
    /// Which realm an IP is in: nil for public, else an index into `nats`.
    var realmOf: [IPAddress: Int?] = [:]
    var stunServers: Set<TransportAddress> = []
    var peers: [SimPeer] = []
    var inFlight: [Packet] = []
    var sequence = 0
    /// Every datagram handed to the network, before loss and filtering.
    var log: [LogEntry] = []
    var delivered = 0
    var dropped = 0

    init(seed: UInt64 = 1) { rng = SplitMix64(seed: seed) }

    @discardableResult
    func addNAT(externalIP: String, filtering: Filtering) -> Int {
        nats.append(NAT(externalIP: IPAddress(externalIP)!, filtering: filtering))
        return nats.count - 1
    }

    func addSTUNServer(_ address: String) -> TransportAddress {
        let address = TransportAddress(address)!
        stunServers.insert(address)
        realmOf[address.ip] = .some(nil)
        return address
    }

    func addPeer(_ peer: SimPeer, behind nat: Int? = nil) {
        peers.append(peer)
        for base in peer.bases { realmOf[base.ip] = .some(nat) }
    }

    private func realm(_ ip: IPAddress) -> Int?? { realmOf[ip] }

    func send(_ bytes: [UInt8], from source: TransportAddress, to destination: TransportAddress) {
        log.append(LogEntry(time: now, source: source, destination: destination, bytes: bytes))
        let lost = lossRate > 0 && Double(rng.next() >> 11) / Double(1 << 53) < lossRate
        guard !lost, !blockAll, let sourceRealm = realm(source.ip) else {
            dropped += 1
            return
        }
        var publicSource = source
        if let destinationRealm = realm(destination.ip), destinationRealm == sourceRealm {
            enqueue(bytes, from: source, to: destination)
            return
        }
        if let natIndex = sourceRealm {
            var nat = nats[natIndex]
            let port: UInt16
            if let existing = nat.mappings[source] {
                port = existing
            } else {
                port = nat.nextPort
                nat.nextPort += 1
                nat.mappings[source] = port
                nat.reverse[port] = source
            }
            nat.contacted[port, default: []].insert(destination)
            nats[natIndex] = nat
            publicSource = TransportAddress(ip: nat.externalIP, port: port)
        }
        if let natIndex = nats.firstIndex(where: { $0.externalIP == destination.ip }) {
            let nat = nats[natIndex]
            guard let inside = nat.reverse[destination.port] else {
                dropped += 1
                return
            }
            if nat.filtering == .addressAndPortDependent, !(nat.contacted[destination.port]?.contains(publicSource) ?? false) {
                dropped += 1
                return
            }
            enqueue(bytes, from: publicSource, to: inside)
        } else if case .some(.none) = realm(destination.ip) {
            enqueue(bytes, from: publicSource, to: destination)
        } else {
            dropped += 1
        }
    }

    private func enqueue(_ bytes: [UInt8], from source: TransportAddress, to destination: TransportAddress) {
        var latency = delay
        if jitter > .zero { latency += .nanoseconds(Int64(rng.next() % UInt64(jitter.nanosecondsClamped))) }
        sequence += 1
        inFlight.append(Packet(source: source, destination: destination, bytes: bytes, deliverAt: now + latency, sequence: sequence))
    }

    private func deliver(_ packet: Packet) {
        delivered += 1
        if stunServers.contains(packet.destination) {
            guard let request = try? STUNMessage(decoding: packet.bytes), request.type == .bindingRequest else { return }
            let response = STUNMessage(type: .bindingSuccess, transactionID: request.transactionID,
                                       attributes: [.xorMappedAddress(packet.source)])
            send(response.encoded(fingerprint: true), from: packet.destination, to: packet.source)
            return
        }
        guard let peer = peers.first(where: { $0.bases.contains(packet.destination) }) else { return }
        if !peer.agent.handleDatagram(packet.bytes, from: packet.source, to: packet.destination, now: now) {
            peer.data.append((packet.source, packet.bytes, peer.agent.isKnownRemote(packet.source)))
        }
    }

    /// Moves transmits and events out of every agent (events also drive trickle signalling).
    func flush() {
        var moved = true
        while moved {
            moved = false
            for peer in peers {
                while let transmit = peer.agent.pollTransmit() {
                    moved = true
                    send(transmit.bytes, from: transmit.source, to: transmit.destination)
                }
                while let event = peer.agent.pollEvent() {
                    moved = true
                    peer.record(event, at: now)
                }
            }
        }
    }

    /// Runs the virtual clock until `end` or until `stop` holds.
    func run(until end: MonotonicTime, stop: () -> Bool = { false }) {
        var steps = 0
        while steps < 2_000_000 {
            steps += 1
            flush()
            if stop() { return }
            var next = inFlight.map(\.deliverAt).min()
            for peer in peers {
                if let timeout = peer.agent.nextTimeout, next == nil || timeout < next! { next = timeout }
            }
            guard let due = next, due <= end else {
                now = end
                return
            }
            if due > now { now = due }
            let ready = inFlight.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.sequence) < ($1.deliverAt, $1.sequence) }
            inFlight.removeAll { $0.deliverAt <= now }
            for packet in ready { deliver(packet) }
            for peer in peers {
                if let timeout = peer.agent.nextTimeout, timeout <= now { peer.agent.handleTimeout(now: now) }
            }
        }
    }

    func run(for duration: Duration, stop: () -> Bool = { false }) { run(until: now + duration, stop: stop) }

    /// Sends a non-STUN datagram on `peer`'s selected pair (as the shell would send media).
    func sendData(_ bytes: [UInt8], from peer: SimPeer) -> Bool {
        guard let pair = peer.agent.selectedPair else { return false }
        send(bytes, from: pair.localBase, to: pair.remoteAddress)
        return true
    }
}

/// One endpoint: an agent, its socket addresses, what it heard, and its signalling partner.
final class SimPeer {
    let name: String
    var agent: ICEAgent
    var bases: [TransportAddress]
    var events: [(time: MonotonicTime, event: ICEEvent)] = []
    var data: [(source: TransportAddress, bytes: [UInt8], known: Bool)] = []
    /// Where trickled candidates and end-of-candidates go (nil: not signalled).
    weak var partner: SimPeer?
    var trickle = true

    init(name: String, role: ICERole, credentials: ICECredentials, seed: UInt64, tieBreaker: UInt64? = nil,
         configure: (inout ICEAgentConfiguration) -> Void = { _ in }) {
        self.name = name
        var configuration = ICEAgentConfiguration()
        configuration.seed = seed
        configuration.tieBreaker = tieBreaker
        configure(&configuration)
        agent = ICEAgent(role: role, localCredentials: credentials, configuration: configuration)
        bases = []
    }

    func addHost(_ address: String, foundation: String = "1", localPreference: UInt16 = 65000) -> Candidate {
        let base = TransportAddress(address)!
        bases.append(base)
        let candidate = Candidate(foundation: foundation, priority: Candidate.priority(type: .host, localPreference: localPreference),
                                  address: .ip(base.ip), port: base.port, type: .host)
        agent.addLocalCandidate(candidate, base: base)
        return candidate
    }

    func record(_ event: ICEEvent, at time: MonotonicTime) {
        events.append((time, event))
        guard trickle, let partner else { return }
        switch event {
        case .localCandidate(let candidate): partner.agent.addRemoteCandidate(candidate)
        case .gatheringComplete: partner.agent.endOfRemoteCandidates()
        default: break
        }
    }

    var states: [ICEConnectionState] {
        events.compactMap { if case .stateChanged(let state) = $0.event { state } else { nil } }
    }

    func firstTime(of predicate: (ICEEvent) -> Bool) -> MonotonicTime? { events.first { predicate($0.event) }?.time }

    var connectedAt: MonotonicTime? {
        firstTime { if case .selectedPairChanged = $0 { true } else { false } }
    }

    var isConnected: Bool { agent.state == .connected || agent.state == .completed }
}

extension SimNetwork {
    /// Two peers, A and B, with the given hosts, signalled to each other (credentials and host candidates).
    static func pair(seed: UInt64 = 7, roleA: ICERole = .controlling, roleB: ICERole = .controlled,
                     hostA: String = "192.0.2.1:5000", hostB: String = "198.51.100.1:6000",
                     natA: Filtering? = nil, natB: Filtering? = nil, stun: Bool = false,
                     tieBreakerA: UInt64? = nil, tieBreakerB: UInt64? = nil,
                     configure: (inout ICEAgentConfiguration) -> Void = { _ in }) -> (SimNetwork, SimPeer, SimPeer) {
        let network = SimNetwork(seed: seed)
        var rng = SplitMix64(seed: seed)
        let a = SimPeer(name: "A", role: roleA, credentials: .random(using: &rng), seed: seed &+ 1, tieBreaker: tieBreakerA, configure: configure)
        let b = SimPeer(name: "B", role: roleB, credentials: .random(using: &rng), seed: seed &+ 2, tieBreaker: tieBreakerB, configure: configure)
        a.partner = b
        b.partner = a
        let candidateA = a.addHost(hostA, foundation: "a1")
        let candidateB = b.addHost(hostB, foundation: "b1")
        let natIndexA = natA.map { network.addNAT(externalIP: "203.0.113.10", filtering: $0) }
        let natIndexB = natB.map { network.addNAT(externalIP: "203.0.113.20", filtering: $0) }
        network.addPeer(a, behind: natIndexA)
        network.addPeer(b, behind: natIndexB)
        if stun {
            let server = network.addSTUNServer("192.0.2.254:3478")
            a.agent.addSTUNServer(server)
            b.agent.addSTUNServer(server)
        }
        a.agent.setRemoteCredentials(ufrag: b.agent.localCredentials.ufrag, pwd: b.agent.localCredentials.pwd)
        b.agent.setRemoteCredentials(ufrag: a.agent.localCredentials.ufrag, pwd: a.agent.localCredentials.pwd)
        a.agent.addRemoteCandidate(candidateB)
        b.agent.addRemoteCandidate(candidateA)
        a.agent.endOfLocalCandidates()
        b.agent.endOfLocalCandidates()
        return (network, a, b)
    }

    func bothConnected(_ a: SimPeer, _ b: SimPeer) -> Bool {
        a.agent.selectedPair != nil && b.agent.selectedPair != nil && a.isConnected && b.isConnected
    }
}
