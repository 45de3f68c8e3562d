import ICE
import Wire

/// Issue 3 figures: one authenticated Binding request through `ICEAgent`, memory per agent, and
/// checks-to-selected-pair for two agents back to back.
enum ICEBenchmarks {
    static func host(_ address: TransportAddress, foundation: String = "1", preference: UInt16 = 65535) -> Candidate {
        Candidate(foundation: foundation, priority: Candidate.priority(type: .host, localPreference: preference),
                  address: .ip(address.ip), port: address.port, type: .host)
    }

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

    static func run(_ bench: inout Bench) {
        bindingRequest(&bench)
        memoryPerAgent(&bench)
        checksToSelectedPair(&bench)
    }

    /// A controlled agent answering a browser's connectivity checks: parse, integrity and
    /// fingerprint check, role check, triggered-check bookkeeping, success response with
    /// XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT, drained through `pollTransmit`.
    static func bindingRequest(_ bench: inout Bench) {
        let name = "ice/agent: handle one authenticated Binding request + response"
        guard bench.enabled(name) else { return }
        var rng = SplitMix64(state: 1)
        let localCredentials = ICECredentials.random(using: &rng)
        let remoteCredentials = ICECredentials.random(using: &rng)
        let local = TransportAddress("192.0.2.1:5000")!
        let remote = TransportAddress("198.51.100.7:7000")!
        var configuration = ICEAgentConfiguration()
        configuration.seed = 9
        var agent = ICEAgent(role: .controlled, localCredentials: localCredentials, configuration: configuration)
        agent.addLocalCandidate(host(local), base: local)
        agent.setRemoteCredentials(ufrag: remoteCredentials.ufrag, pwd: remoteCredentials.pwd)
        agent.addRemoteCandidate(host(remote, foundation: "r"))
        let key = Array(localCredentials.pwd.utf8)
        let requests: [[UInt8]] = (0..<4096).map { _ in
            STUNMessage(type: .bindingRequest, transactionID: .random(using: &rng), attributes: [
                .username(localCredentials.ufrag + ":" + remoteCredentials.ufrag),
                .priority(Candidate.priority(type: .prflx, localPreference: 65535)),
                .iceControlling(tieBreaker: 1),
            ]).encoded(integrity: .sha1(key: key), fingerprint: true)
        }
        var now = MonotonicTime(nanoseconds: 1_000_000_000)
        var index = 0
        var responses = 0
        bench.measure(name, iterations: 50_000, note: "\(requests[0].count)-byte request") {
            now = now + .microseconds(1)
            _ = agent.handleDatagram(requests[index & 4095], from: remote, to: local, now: now)
            index &+= 1
            while let transmit = agent.pollTransmit() { responses &+= transmit.bytes.count }
            while let event = agent.pollEvent() { blackHole(event) }
        }
        precondition(agent.stats.successResponsesSent >= 50_000, "requests were not answered")
        blackHole(responses)
    }

    /// 1000 agents, each with two host candidates, remote credentials and two remote host
    /// candidates (four pairs formed), before checks start.
    static func memoryPerAgent(_ bench: inout Bench) {
        let name = "ice/agent: memory per agent (2 local + 2 remote host candidates)"
        guard bench.enabled(name) else { return }
        let count = 1000
        var rng = SplitMix64(state: 5)
        let credentials = (0..<count).map { _ in (ICECredentials.random(using: &rng), ICECredentials.random(using: &rng)) }
        var agents: [ICEAgent] = []
        agents.reserveCapacity(count)
        let heapBefore = heapBytesInUse()
        let rssBefore = currentResidentKiB() ?? 0
        for i in 0..<count {
            var configuration = ICEAgentConfiguration()
            configuration.seed = UInt64(i)
            var agent = ICEAgent(role: .controlling, localCredentials: credentials[i].0, configuration: configuration)
            let port = UInt16(10_000 + i)
            agent.addLocalCandidate(host(TransportAddress("192.0.2.1:\(port)")!), base: TransportAddress("192.0.2.1:\(port)")!)
            agent.addLocalCandidate(host(TransportAddress("10.1.2.3:\(port)")!, foundation: "2", preference: 65000),
                                    base: TransportAddress("10.1.2.3:\(port)")!)
            agent.endOfLocalCandidates()
            agent.setRemoteCredentials(ufrag: credentials[i].1.ufrag, pwd: credentials[i].1.pwd)
            agent.addRemoteCandidate(host(TransportAddress("198.51.100.7:\(port)")!, foundation: "r1"))
            agent.addRemoteCandidate(host(TransportAddress("203.0.113.9:\(port)")!, foundation: "r2", preference: 65000))
            while let event = agent.pollEvent() { blackHole(event) }
            agents.append(agent)
        }
        let heapDelta = heapBytesInUse() - heapBefore
        let rssDelta = (currentResidentKiB() ?? 0) - rssBefore
        blackHole(credentials)  // alive until after the snapshot
        // The array of agents was reserved before the snapshot: add each agent's inline size.
        let inline = MemoryLayout<ICEAgent>.stride
        bench.report(name, "\(heapDelta / count + inline) B",
                     note: "= heap (mallinfo2) delta / \(count): \(heapDelta / count) B + inline struct \(inline) B; RSS delta / \(count) = \(rssDelta * 1024 / count) B (page-granular, noisy)")
        blackHole(agents)
    }

    /// Two agents back to back in process, no network delay: the clock jumps to the next
    /// timeout whenever nothing is in flight, so wall time is CPU time; the virtual time the
    /// protocol needs (Ta pacing, nomination delay) is reported too.
    static func checksToSelectedPair(_ bench: inout Bench) {
        let names = ["ice/two agents: start of checks -> both selected pair (wall)"]
        guard bench.enabled(any: names) else { return }
        for name in names {
            var virtual: Duration = .zero
            var seed: UInt64 = 100
            bench.sample(name, runs: 200, note: "") {
                seed += 2
                var configurationA = ICEAgentConfiguration()
                configurationA.seed = seed
                var configurationB = ICEAgentConfiguration()
                configurationB.seed = seed + 1
                var rng = SplitMix64(state: seed)
                let credentialsA = ICECredentials.random(using: &rng)
                let credentialsB = ICECredentials.random(using: &rng)
                let addressA = TransportAddress("192.0.2.1:5000")!
                let addressB = TransportAddress("198.51.100.1:6000")!
                var a = ICEAgent(role: .controlling, localCredentials: credentialsA, configuration: configurationA)
                var b = ICEAgent(role: .controlled, localCredentials: credentialsB, configuration: configurationB)
                a.addLocalCandidate(host(addressA), base: addressA)
                b.addLocalCandidate(host(addressB), base: addressB)
                a.endOfLocalCandidates()
                b.endOfLocalCandidates()
                a.setRemoteCredentials(ufrag: credentialsB.ufrag, pwd: credentialsB.pwd)
                b.setRemoteCredentials(ufrag: credentialsA.ufrag, pwd: credentialsA.pwd)
                a.addRemoteCandidate(host(addressB))
                b.addRemoteCandidate(host(addressA))
                a.endOfRemoteCandidates()
                b.endOfRemoteCandidates()
                let startVirtual = MonotonicTime(nanoseconds: 1_000_000_000)
                var now = startVirtual
                let start = MonotonicTime.now()
                a.handleTimeout(now: now)
                b.handleTimeout(now: now)
                var steps = 0
                while a.selectedPair == nil || b.selectedPair == nil {
                    steps += 1
                    precondition(steps < 100_000, "agents did not select a pair")
                    var moved = false
                    while let t = a.pollTransmit() {
                        moved = true
                        if t.destination == addressB { _ = b.handleDatagram(t.bytes, from: t.source, to: addressB, now: now) }
                    }
                    while let t = b.pollTransmit() {
                        moved = true
                        if t.destination == addressA { _ = a.handleDatagram(t.bytes, from: t.source, to: addressA, now: now) }
                    }
                    while let event = a.pollEvent() { blackHole(event) }
                    while let event = b.pollEvent() { blackHole(event) }
                    if !moved {
                        let next = [a.nextTimeout, b.nextTimeout].compactMap { $0 }.min() ?? now + .milliseconds(1)
                        now = max(now + .microseconds(1), next)
                        a.handleTimeout(now: now)
                        b.handleTimeout(now: now)
                    }
                }
                let wall = elapsedNanoseconds(since: start)
                virtual = now - startVirtual
                return wall
            }
            if bench.enabled(name) {
                bench.report("  (virtual protocol time of the last run)", bench.humanTime(Double(virtual.nanosecondsClamped)), note: "Ta pacing of the checks, not CPU")
            }
        }
    }
}
