import Foundation
import ICE
import Wire

#if canImport(Glibc)
import Glibc
#endif

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
        loopbackTwoAgents(&bench)
        loopbackAgainstAioice(&bench)
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

// MARK: - Real loopback UDP

/// A non-blocking IPv4 UDP socket on 127.0.0.1 (ephemeral port).
struct LoopbackUDP {
    let fd: Int32
    let address: TransportAddress

    init() {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        precondition(fd >= 0, "socket")
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(bound == 0, "bind")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        address = TransportAddress(ip: .v4(0x7F00_0001), port: UInt16(bigEndian: socketAddress.sin_port))
    }

    func send(_ bytes: [UInt8], to destination: TransportAddress) {
        guard case .v4(let ip) = destination.ip else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = destination.port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    func receive() -> (bytes: [UInt8], source: TransportAddress)? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer[..<count]), TransportAddress(ip: .v4(UInt32(bigEndian: address.sin_addr.s_addr)), port: UInt16(bigEndian: address.sin_port)))
    }
}

/// Waits on `sockets` until one is readable or `deadline` (poll(2)).
func pollSockets(_ sockets: [LoopbackUDP], until deadline: MonotonicTime?) {
    var descriptors = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
    let milliseconds = deadline.map { Int32(clamping: max(0, ($0 - MonotonicTime.now()).nanosecondsClamped + 999_999) / 1_000_000) } ?? 20
    _ = poll(&descriptors, nfds_t(descriptors.count), min(milliseconds, 20))
}

extension ICEBenchmarks {
    /// Two agents in one thread, each on its own loopback UDP socket: real sockets and the real
    /// clock (Ta pacing, retransmission timers), from the first check to both agents' selected pair.
    static func loopbackTwoAgents(_ bench: inout Bench) {
        let name = "ice/loopback UDP: peerd <-> peerd, start of checks -> both selected pair"
        guard bench.enabled(name) else { return }
        var seed: UInt64 = 1000
        bench.sample(name, runs: 30, warmUp: 2) {
            seed += 2
            var rng = SplitMix64(state: seed)
            let socketA = LoopbackUDP(), socketB = LoopbackUDP()
            defer { close(socketA.fd); close(socketB.fd) }
            var a = ICEAgent(role: .controlling, localCredentials: .random(using: &rng))
            var b = ICEAgent(role: .controlled, localCredentials: .random(using: &rng))
            a.addLocalCandidate(host(socketA.address), base: socketA.address)
            b.addLocalCandidate(host(socketB.address), base: socketB.address)
            a.endOfLocalCandidates()
            b.endOfLocalCandidates()
            a.setRemoteCredentials(ufrag: b.localCredentials.ufrag, pwd: b.localCredentials.pwd)
            b.setRemoteCredentials(ufrag: a.localCredentials.ufrag, pwd: a.localCredentials.pwd)
            a.addRemoteCandidate(host(socketB.address))
            b.addRemoteCandidate(host(socketA.address))
            a.endOfRemoteCandidates()
            b.endOfRemoteCandidates()
            let start = MonotonicTime.now()
            a.handleTimeout(now: start)
            b.handleTimeout(now: start)
            while a.selectedPair == nil || b.selectedPair == nil {
                precondition(MonotonicTime.now() - start < .seconds(10), "no pair selected on loopback")
                while let t = a.pollTransmit() { socketA.send(t.bytes, to: t.destination) }
                while let t = b.pollTransmit() { socketB.send(t.bytes, to: t.destination) }
                while let event = a.pollEvent() { blackHole(event) }
                while let event = b.pollEvent() { blackHole(event) }
                if a.selectedPair != nil && b.selectedPair != nil { break }
                pollSockets([socketA, socketB], until: [a.nextTimeout, b.nextTimeout].compactMap { $0 }.min())
                while let (bytes, source) = socketA.receive() { _ = a.handleDatagram(bytes, from: source, to: socketA.address, now: .now()) }
                while let (bytes, source) = socketB.receive() { _ = b.handleDatagram(bytes, from: source, to: socketB.address, now: .now()) }
                let now = MonotonicTime.now()
                if let next = a.nextTimeout, next <= now { a.handleTimeout(now: now) }
                if let next = b.nextTimeout, next <= now { b.handleTimeout(now: now) }
            }
            return elapsedNanoseconds(since: start)
        }
    }

    /// aioice (Python, PyPI) as the other agent on loopback, our agent in each role. Timed on our
    /// side from the first check (remote description applied) to our selected pair.
    static func loopbackAgainstAioice(_ bench: inout Bench) {
        let names = ["ice/loopback UDP: peerd (controlling) <-> aioice, start of checks -> our selected pair",
                     "ice/loopback UDP: peerd (controlled) <-> aioice, start of checks -> our selected pair"]
        guard bench.enabled(any: names) else { return }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import aioice"]
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil, ({ check.waitUntilExit(); return check.terminationStatus == 0 })() else {
            bench.report(names[0], "skipped", note: "python3 with aioice is not installed (pip install aioice)")
            return
        }
        for (name, role) in zip(names, [ICERole.controlling, .controlled]) {
            var failures = 0
            bench.sample(name, runs: 15, warmUp: 1) {
                guard let nanoseconds = aioiceRun(role: role) else { failures += 1; return 0 }
                return nanoseconds
            }
            if failures > 0 { bench.report("  (\(role): runs without a selected pair)", "\(failures)") }
        }
    }

    /// The aioice peer of the interop test (`Fixtures/aioice/ice_peer.py`), found from this file's path.
    static var aioiceScript: String {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/", !FileManager.default.fileExists(atPath: url.appendingPathComponent("Fixtures").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("Fixtures/aioice/ice_peer.py").path
    }

    /// One connection to a fresh aioice process; nil when no pair was selected within 10 s.
    static func aioiceRun(role: ICERole) -> Int64? {
        let socket = LoopbackUDP()
        defer { close(socket.fd) }
        var agent = ICEAgent(role: role, localCredentials: .random())
        let candidate = host(socket.address)
        agent.addLocalCandidate(candidate, base: socket.address)
        agent.endOfLocalCandidates()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", aioiceScript, role == .controlling ? "controlled" : "controlling",
                             "--connect-timeout", "10", "--linger", "0.3"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        var line: [UInt8] = []
        while true {
            let chunk = output.fileHandleForReading.readData(ofLength: 1)
            guard let byte = chunk.first else { return nil }
            if byte == 0x0A { break }
            line.append(byte)
        }
        guard let description = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
              let ufrag = description["ufrag"] as? String, let pwd = description["pwd"] as? String,
              let candidates = description["candidates"] as? [String] else { return nil }
        let ours: [String: Any] = ["ufrag": agent.localCredentials.ufrag, "pwd": agent.localCredentials.pwd,
                                   "candidates": [String(candidate.description.dropFirst("candidate:".count))]]
        guard let json = try? JSONSerialization.data(withJSONObject: ours) else { return nil }
        input.fileHandleForWriting.write(json + Data("\n".utf8))
        // Our checks start now; aioice starts its own once it has read the line above.
        agent.setRemoteCredentials(ufrag: ufrag, pwd: pwd)
        for text in candidates { if let remote = try? Candidate(parsing: text) { agent.addRemoteCandidate(remote) } }
        agent.endOfRemoteCandidates()
        let start = MonotonicTime.now()
        agent.handleTimeout(now: start)
        while agent.selectedPair == nil {
            if MonotonicTime.now() - start > .seconds(10) { return nil }
            while let t = agent.pollTransmit() { socket.send(t.bytes, to: t.destination) }
            while let event = agent.pollEvent() { blackHole(event) }
            if agent.selectedPair != nil { break }
            pollSockets([socket], until: agent.nextTimeout)
            while let (bytes, source) = socket.receive() { _ = agent.handleDatagram(bytes, from: source, to: socket.address, now: .now()) }
            let now = MonotonicTime.now()
            if let next = agent.nextTimeout, next <= now { agent.handleTimeout(now: now) }
        }
        let elapsed = elapsedNanoseconds(since: start)
        // Answer aioice's remaining checks until it is done, so it exits cleanly.
        let end = MonotonicTime.now() + .milliseconds(500)
        while MonotonicTime.now() < end && process.isRunning {
            while let t = agent.pollTransmit() { socket.send(t.bytes, to: t.destination) }
            pollSockets([socket], until: MonotonicTime.now() + .milliseconds(20))
            while let (bytes, source) = socket.receive() { _ = agent.handleDatagram(bytes, from: source, to: socket.address, now: .now()) }
            let now = MonotonicTime.now()
            if let next = agent.nextTimeout, next <= now { agent.handleTimeout(now: now) }
        }
        return elapsed
    }
}
