import DTLS
import Foundation
import ICE
import NIOPosix
import SDP
import Synchronization
import Testing
import Wire
@testable import PeerConnection

#if canImport(Glibc)
import Glibc
#endif

/// Five network namespaces made for one test and deleted after it:
///
///     host A 10.0.1.2 ── 10.0.1.1 NAT A 192.0.2.2 ── 192.0.2.1 public 198.51.100.1 ── 198.51.100.2 NAT B 10.0.2.1 ── 10.0.2.2 host B
///
/// The public namespace routes between the NATs and runs coturn (STUN and TURN) on 192.0.2.1; like the
/// Internet, it silently loses packets for private addresses (a default route to a gateway that never
/// takes them): with no route at all, coturn's relay sockets get ENETUNREACH for the peers' host
/// candidates, and coturn then drops the whole allocation. Each NAT
/// masquerades what leaves its public side and drops unsolicited inbound packets (a home router's
/// firewall: address-and-port-dependent filtering). With `randomPorts`, MASQUERADE uses
/// `--random-fully`: every new flow gets a random port (endpoint-dependent mapping, a "symmetric"
/// NAT), so server-reflexive candidates cannot be reached and only TURN gets through.
final class NATTopology {
    let prefix: String
    static let names = ["a", "na", "pub", "nb", "b"]
    static let hostA = IPAddress("10.0.1.2")!
    static let hostB = IPAddress("10.0.2.2")!
    static let natA = IPAddress("192.0.2.2")!
    static let natB = IPAddress("198.51.100.2")!
    static let server = IPAddress("192.0.2.1")!

    var namespaceA: String { "\(prefix)-a" }
    var namespaceB: String { "\(prefix)-b" }
    var namespacePublic: String { "\(prefix)-pub" }

    /// Why these tests cannot run here, or nil when they can (root, `ip`, `iptables`, coturn).
    static var unavailableReason: String? {
        if getuid() != 0 { return "needs root for network namespaces" }
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") { return "needs iproute2's ip (apt-get install -y iproute2)" }
        if iptables == nil { return "needs iptables (apt-get install -y iptables)" }
        if TURNServerProcess.binary == nil { return "needs coturn (apt-get install -y coturn)" }
        return nil
    }

    static var iptables: String? {
        ["/usr/sbin/iptables", "/sbin/iptables"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(randomPorts: Bool) throws {
        prefix = "peerd\(getpid() % 100_000)\(UInt16.random(in: 0...999))"
        let masquerade = randomPorts ? "MASQUERADE --random-fully" : "MASQUERADE"
        let iptables = Self.iptables ?? "iptables"
        let P = prefix
        let script = """
        set -e
        for n in \(Self.names.joined(separator: " ")); do ip netns add \(P)-$n; ip -n \(P)-$n link set lo up; done
        ip -n \(P)-a link add eth0 type veth peer name lan netns \(P)-na
        ip -n \(P)-na link add wan type veth peer name wa netns \(P)-pub
        ip -n \(P)-nb link add wan type veth peer name wb netns \(P)-pub
        ip -n \(P)-b link add eth0 type veth peer name lan netns \(P)-nb
        ip -n \(P)-a addr add 10.0.1.2/24 dev eth0; ip -n \(P)-a link set eth0 up; ip -n \(P)-a route add default via 10.0.1.1
        ip -n \(P)-na addr add 10.0.1.1/24 dev lan; ip -n \(P)-na link set lan up
        ip -n \(P)-na addr add 192.0.2.2/24 dev wan; ip -n \(P)-na link set wan up; ip -n \(P)-na route add default via 192.0.2.1
        ip -n \(P)-pub addr add 192.0.2.1/24 dev wa; ip -n \(P)-pub link set wa up
        ip -n \(P)-pub addr add 198.51.100.1/24 dev wb; ip -n \(P)-pub link set wb up
        ip -n \(P)-pub neigh add 192.0.2.254 lladdr 02:00:00:00:00:fe dev wa nud permanent
        ip -n \(P)-pub route add default via 192.0.2.254 dev wa
        ip -n \(P)-nb addr add 198.51.100.2/24 dev wan; ip -n \(P)-nb link set wan up; ip -n \(P)-nb route add default via 198.51.100.1
        ip -n \(P)-nb addr add 10.0.2.1/24 dev lan; ip -n \(P)-nb link set lan up
        ip -n \(P)-b addr add 10.0.2.2/24 dev eth0; ip -n \(P)-b link set eth0 up; ip -n \(P)-b route add default via 10.0.2.1
        for n in na pub nb; do ip netns exec \(P)-$n sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'; done
        for n in na nb; do
          ip netns exec \(P)-$n \(iptables) -t nat -A POSTROUTING -o wan -j \(masquerade)
          ip netns exec \(P)-$n \(iptables) -A INPUT -i wan -m conntrack --ctstate NEW -j DROP
        done
        """
        let (status, output) = Self.shell(script)
        guard status == 0 else {
            remove()
            throw TestSetupFailure("network namespace setup failed (\(status)): \(output)")
        }
    }

    func remove() {
        _ = Self.shell(Self.names.map { "ip netns del \(prefix)-\($0) 2>/dev/null" }.joined(separator: "; ") + "; true")
    }

    deinit { remove() }

    @discardableResult
    static func shell(_ script: String) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A UDP socket bound to `ip` (ephemeral port) inside `namespace`. It is made on a thread of its
    /// own that enters the namespace and ends, so no other thread of the test process changes namespace;
    /// the socket stays in the namespace it was made in.
    static func boundSocket(namespace: String, ip: IPAddress) throws -> CInt {
        let result = Mutex<Result<CInt, TestSetupFailure>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            result.withLock { $0 = makeSocket(namespace: namespace, ip: ip) }
        }
        thread.start()
        done.wait()
        return try result.withLock { $0! }.get()
    }

    private static func makeSocket(namespace: String, ip: IPAddress) -> Result<CInt, TestSetupFailure> {
        // setns(2) is not in Swift's Glibc module: look it up in libc.
        typealias SetNS = @convention(c) (CInt, CInt) -> CInt
        guard let symbol = dlsym(nil, "setns") else { return .failure(TestSetupFailure("setns not found")) }
        let setns = unsafeBitCast(symbol, to: SetNS.self)
        let namespaceFD = open("/var/run/netns/\(namespace)", O_RDONLY)
        guard namespaceFD >= 0 else { return .failure(TestSetupFailure("open netns \(namespace): errno \(errno)")) }
        defer { close(namespaceFD) }
        let cloneNewNet: CInt = 0x4000_0000
        guard setns(namespaceFD, cloneNewNet) == 0 else { return .failure(TestSetupFailure("setns \(namespace): errno \(errno)")) }
        let fd = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return .failure(TestSetupFailure("socket: errno \(errno)")) }
        guard case .v4(let value) = ip else { close(fd); return .failure(TestSetupFailure("IPv4 only")) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = value.bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(fd); return .failure(TestSetupFailure("bind \(ip) in \(namespace): errno \(errno)")) }
        return .success(fd)
    }
}

/// Two peers in network namespaces behind NATs, driven in-process on sockets bound inside them.
@Suite(.serialized, .enabled(if: NATTopology.unavailableReason == nil,
                             "SKIPPED: \(NATTopology.unavailableReason ?? "") (network namespace NAT tests)"))
struct NATNamespaceTests {
    struct Outcome {
        var pairA: ICECandidatePair
        var pairB: ICECandidatePair
        var candidatesA: [Candidate]
        var candidatesB: [Candidate]
        var aToB: Int
        var bToA: Int
        var connectedAfter: Duration
    }

    /// Runs a full connection (offer/answer, ICE, DTLS, SRTP both ways) between host A and host B.
    func connect(randomPorts: Bool, useTURN: Bool, relayOnlyA: Bool = false, timeout: Duration = .seconds(20)) async throws -> Outcome {
        let topology = try NATTopology(randomPorts: randomPorts)
        defer { topology.remove() }
        let turn = try TURNServerProcess(listening: NATTopology.server, port: 3478, namespace: topology.namespacePublic, loopbackPeers: false, extraArguments: ["--verbose"])
        defer { turn.stop() }
        try turn.waitUntilReady()

        func configuration(ssrc: UInt32) throws -> PeerConnectionConfiguration {
            var configuration = PeerConnectionConfiguration(certificate: try DTLSCertificate.generate(),
                                                            stunServers: [turn.address], ssrc: ssrc)
            if useTURN { configuration.turnServers = [TURNServerConfiguration(address: turn.address, username: "u", credential: "p")] }
            configuration.ice.checkingTimeout = .seconds(15)
            return configuration
        }
        let socketA = try NATTopology.boundSocket(namespace: topology.namespaceA, ip: NATTopology.hostA)
        let socketB = try NATTopology.boundSocket(namespace: topology.namespaceB, ip: NATTopology.hostB)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let logA = EventLog(), logB = EventLog()
        var configurationA = try configuration(ssrc: 0xA)
        if relayOnlyA { configurationA.iceTransportPolicy = .relay }
        let a = try await PeerConnectionDriver.start(configuration: configurationA, boundSockets: [socketA], eventLoop: loop) { logA.record($0) }
        let b = try await PeerConnectionDriver.start(configuration: try configuration(ssrc: 0xB), boundSockets: [socketB], eventLoop: loop) { logB.record($0) }
        let pair = DriverPair(a: a, b: b, logA: logA, logB: logB)
        let started = MonotonicTime.now()
        try await pair.negotiate()
        let connected = await DriverPair.wait(timeout) { pair.connected() }
        let diagnostics = {
            "A: \(logA.events.withLock { $0 })\nB: \(logB.events.withLock { $0 })\ncoturn: \(turn.log.suffix(3000))"
        }
        guard connected else {
            let countersA = try await a.withCore { "\($0.counters) \($0.iceStats.map { "\($0)" } ?? "") \($0.relayDescriptions)" }
            let countersB = try await b.withCore { "\($0.counters) \($0.iceStats.map { "\($0)" } ?? "") \($0.relayDescriptions)" }
            await pair.close()
            try? turn.log.write(toFile: "/tmp/peerd-netns-coturn.log", atomically: true, encoding: .utf8)
            throw TestSetupFailure("no connection (coturn log in /tmp/peerd-netns-coturn.log): \(diagnostics())\ncounters A: \(countersA)\ncounters B: \(countersB)")
        }
        let connectedAfter = MonotonicTime.now() - started
        let received = try await pair.exchangeAudio()
        let pairA = try #require(try await a.withCore { $0.selectedPair })
        let pairB = try #require(try await b.withCore { $0.selectedPair })
        let outcome = Outcome(pairA: pairA, pairB: pairB,
                              candidatesA: try await a.withCore { $0.localCandidates },
                              candidatesB: try await b.withCore { $0.localCandidates },
                              aToB: received.aToB, bToA: received.bToA, connectedAfter: connectedAfter)
        print("netns NAT (\(randomPorts ? "random ports" : "port-preserving"), TURN \(useTURN)): connected after \(connectedAfter); A \(pairA); B \(pairB)")
        await pair.close()
        return outcome
    }

    @Test func hostsBehindPortPreservingNATsConnectThroughServerReflexiveCandidates() async throws {
        let outcome = try await connect(randomPorts: false, useTURN: false)
        // Each side learned its NAT's public address from coturn's STUN service.
        #expect(outcome.candidatesA.contains { $0.type == .srflx && $0.transportAddress?.ip == NATTopology.natA })
        #expect(outcome.candidatesB.contains { $0.type == .srflx && $0.transportAddress?.ip == NATTopology.natB })
        #expect(!outcome.candidatesA.contains { $0.type == .relay } && !outcome.candidatesB.contains { $0.type == .relay })
        // The pair runs between the public sides of the NATs: host sockets, NAT-mapped remote addresses.
        #expect(outcome.pairA.remoteAddress.ip == NATTopology.natB)
        #expect(outcome.pairB.remoteAddress.ip == NATTopology.natA)
        #expect([.srflx, .prflx].contains(outcome.pairA.local.type) && [.srflx, .prflx].contains(outcome.pairA.remote.type))
        #expect(!outcome.pairA.viaRelay && !outcome.pairB.viaRelay)
        #expect(outcome.aToB == 50 && outcome.bToA == 50)
    }

    @Test func hostsBehindRandomPortNATsConnectThroughTURN() async throws {
        let outcome = try await connect(randomPorts: true, useTURN: true)
        #expect(outcome.candidatesA.contains { $0.type == .relay && $0.transportAddress?.ip == NATTopology.server })
        #expect(outcome.candidatesB.contains { $0.type == .relay && $0.transportAddress?.ip == NATTopology.server })
        // Some side sends from or to a relayed address: the path crosses coturn.
        let relayed = outcome.pairA.local.type == .relay || outcome.pairA.remoteAddress.ip == NATTopology.server
        #expect(relayed, "A \(outcome.pairA)")
        #expect(outcome.pairA.viaRelay || outcome.pairB.viaRelay)
        #expect(outcome.aToB == 50 && outcome.bToA == 50)
    }

    @Test func relayOnlyHostBehindNATConnectsThroughItsAllocation() async throws {
        // A uses relayed candidates only (iceTransportPolicy .relay): every datagram of A crosses coturn.
        let outcome = try await connect(randomPorts: false, useTURN: true, relayOnlyA: true)
        #expect(outcome.candidatesA.allSatisfy { $0.type == .relay } && !outcome.candidatesA.isEmpty, "\(outcome.candidatesA)")
        #expect(outcome.pairA.local.type == .relay && outcome.pairA.viaRelay)
        #expect(outcome.pairB.remoteAddress.ip == NATTopology.server)
        #expect(outcome.aToB == 50 && outcome.bToA == 50)
    }

    @Test func hostsBehindRandomPortNATsWithoutTURNDoNotConnect() async throws {
        // The control experiment: the same NATs defeat server-reflexive candidates.
        await #expect(throws: TestSetupFailure.self) {
            _ = try await connect(randomPorts: true, useTURN: false, timeout: .seconds(8))
        }
    }
}
