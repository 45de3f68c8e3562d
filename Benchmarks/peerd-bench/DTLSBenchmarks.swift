import DTLS
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Issue 4 figures: certificate generation and an in-process DTLS 1.2 handshake (ECDSA P-256).
enum DTLSBenchmarks {
    /// Shuttles datagrams between two started endpoints until neither is handshaking; returns
    /// whether both connected, and the datagram count.
    static func shuttle(_ client: DTLSEndpoint, _ server: DTLSEndpoint) -> (connected: Bool, datagrams: Int) {
        var datagrams = 0
        var spins = 0
        while client.state == .handshaking || server.state == .handshaking {
            var moved = false
            while let datagram = client.pollTransmit() { moved = true; datagrams += 1; server.handleDatagram(datagram, now: .now()) }
            while let datagram = server.pollTransmit() { moved = true; datagrams += 1; client.handleDatagram(datagram, now: .now()) }
            if !moved { spins += 1; if spins > 1000 { break } }
        }
        var connected = 0
        for endpoint in [client, server] {
            while let event = endpoint.pollEvent() { if case .connected = event { connected += 1 } }
        }
        return (connected == 2, datagrams)
    }

    static let memoryName = "dtls/endpoint: heap per endpoint"

    /// Heap per idle endpoint (glibc heap delta / count), with one certificate for all (one
    /// shared SSL_CTX) and with a certificate each (an SSL_CTX each, as before the cache).
    static func memory(_ bench: Bench, remote: CertificateFingerprint) {
        let count = 500
        let shared = try! DTLSCertificate.generate()
        let own = (0..<count).map { _ in try! DTLSCertificate.generate() }
        for (label, certificates) in [("one certificate, shared SSL_CTX", [DTLSCertificate](repeating: shared, count: count)),
                                      ("a certificate and SSL_CTX each", own)] {
            let before = heapBytesInUse()
            let endpoints = certificates.map { try! DTLSEndpoint(role: .server, certificate: $0, remoteFingerprints: [remote]) }
            let after = heapBytesInUse()
            bench.report(memoryName + " (\(label))", "\((after - before) / count / 1024) KiB", note: "\(count) endpoints, idle")
            blackHole(endpoints)
        }
        // Connected: pairs that finished the handshake (what a live connection keeps).
        let peer = try! DTLSCertificate.generate()
        let pairs = count / 2
        let before = heapBytesInUse()
        var connected: [(DTLSEndpoint, DTLSEndpoint)] = []
        for _ in 0..<pairs {
            let client = try! DTLSEndpoint(role: .client, certificate: shared, remoteFingerprints: [peer.fingerprint])
            let server = try! DTLSEndpoint(role: .server, certificate: peer, remoteFingerprints: [shared.fingerprint])
            server.start(now: .now())
            client.start(now: .now())
            precondition(shuttle(client, server).connected, "DTLS handshake did not complete")
            connected.append((client, server))
        }
        let after = heapBytesInUse()
        bench.report(memoryName + " (connected, shared SSL_CTX)", "\((after - before) / (2 * pairs) / 1024) KiB",
                     note: "\(pairs) connected pairs")
        blackHole(connected)
    }

    static func run(_ bench: inout Bench) {
        let names = ["dtls/certificate: generate (ECDSA P-256, self-signed)", "dtls/handshake: endpoints + handshake",
                     "dtls/handshake: handshake only", "dtls/endpoint: create", "dtls/endpoint: create, first with its certificate",
                     LoopbackHandshake.bothName, LoopbackHandshake.serverName, memoryName]
        guard bench.enabled(any: names) else { return }
        bench.sampleWhole(names[0], runs: 200) { blackHole(try! DTLSCertificate.generate()) }
        let clientCertificate = try! DTLSCertificate.generate()
        let serverCertificate = try! DTLSCertificate.generate()
        func endpoints() -> (DTLSEndpoint, DTLSEndpoint) {
            (try! DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint]),
             try! DTLSEndpoint(role: .server, certificate: serverCertificate, remoteFingerprints: [clientCertificate.fingerprint]))
        }
        // One untimed handshake counts the datagrams (the notes are made before the runs).
        let datagrams: Int = {
            let (client, server) = endpoints()
            server.start(now: .now())
            client.start(now: .now())
            return shuttle(client, server).datagrams
        }()
        bench.sampleWhole(names[1], runs: 100) {
            let (client, server) = endpoints()
            let now = MonotonicTime.now()
            server.start(now: now)
            client.start(now: now)
            precondition(shuttle(client, server).connected, "DTLS handshake did not complete")
        }
        bench.sample(names[2], runs: 100, note: "\(datagrams) datagrams") {
            let (client, server) = endpoints()
            let start = MonotonicTime.now()
            server.start(now: start)
            client.start(now: start)
            let connected = shuttle(client, server).connected
            let elapsed = elapsedNanoseconds(since: start)
            precondition(connected, "DTLS handshake did not complete")
            return elapsed
        }
        bench.sampleWhole(names[3], runs: 200, note: "SSL per endpoint, SSL_CTX shared per certificate") {
            blackHole(try! DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint]))
        }
        // The first endpoint with a certificate makes and caches its SSL_CTX (certificate made
        // outside the timing).
        bench.sample(names[4], runs: 100, note: "SSL_CTX_new + configuration + SSL") {
            let certificate = try! DTLSCertificate.generate()
            let start = MonotonicTime.now()
            blackHole(try! DTLSEndpoint(role: .client, certificate: certificate, remoteFingerprints: [serverCertificate.fingerprint]))
            return elapsedNanoseconds(since: start)
        }
        LoopbackHandshake.run(&bench, clientCertificate: clientCertificate, serverCertificate: serverCertificate)
        if bench.enabled(memoryName) { memory(bench, remote: serverCertificate.fingerprint) }
    }
}

/// The DTLS handshake over real UDP sockets on 127.0.0.1: the server endpoint runs on its own
/// thread with its own socket, the client on the calling thread with another; each blocks in
/// poll(2) until a datagram arrives or its endpoint's timer is due, as a socket driver would.
/// Timing starts when the client starts (the server thread is already waiting) and ends when
/// each side reports `.connected`. Endpoints and sockets are made before the timing.
enum LoopbackHandshake {
    static let bothName = "dtls/handshake: loopback UDP, client start -> both connected"
    static let serverName = "dtls/handshake: loopback UDP, client start -> server connected"

    /// A UDP socket bound to 127.0.0.1 on an ephemeral port.
    static func boundSocket() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        precondition(fd >= 0, "socket failed")
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        precondition(bound == 0, "bind failed")
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    static func connectSocket(_ fd: Int32, to port: UInt16) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(result == 0, "connect failed")
    }

    /// Drives one endpoint over a connected socket until it is no longer handshaking (or
    /// `limit` passes); returns when it connected, or nil.
    static func drive(_ endpoint: DTLSEndpoint, fd: Int32, limit: Duration = .seconds(5)) -> MonotonicTime? {
        let deadline = MonotonicTime.now() + limit
        var buffer = [UInt8](repeating: 0, count: 2048)
        var connectedAt: MonotonicTime?
        func flush() {
            while let datagram = endpoint.pollTransmit() {
                _ = datagram.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            }
            while let event = endpoint.pollEvent() {
                if case .connected = event { connectedAt = MonotonicTime.now() }
            }
        }
        flush()
        while endpoint.state == .handshaking && MonotonicTime.now() < deadline {
            let now = MonotonicTime.now()
            var waitMilliseconds: Int32 = 50
            if let next = endpoint.nextTimeout {
                waitMilliseconds = next <= now ? 0 : Int32(clamping: (next - now).nanosecondsClamped / 1_000_000 + 1)
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, min(waitMilliseconds, 50)) > 0 {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count > 0 { endpoint.handleDatagram(Array(buffer[0..<count]), now: .now()) }
            }
            if let next = endpoint.nextTimeout, next <= MonotonicTime.now() { endpoint.handleTimeout(now: .now()) }
            flush()
        }
        return connectedAt
    }

    /// Runs `body` on a new POSIX thread; join the returned thread.
    final class ThreadBody { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    static func spawn(_ body: @escaping () -> Void) -> pthread_t {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let created = pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(created == 0, "pthread_create failed")
        return thread
    }

    /// Where the server thread leaves its result (read after join).
    final class Outcome: @unchecked Sendable { var serverConnectedAt: MonotonicTime? }

    static func run(_ bench: inout Bench, clientCertificate: DTLSCertificate, serverCertificate: DTLSCertificate) {
        guard bench.enabled(any: [bothName, serverName]) else { return }
        var serverTimes: [Double] = []
        let runs = 100
        var datagramsSent = 0
        bench.sample(bothName, runs: runs, note: "server on its own thread, plain sockets") {
            let client = try! DTLSEndpoint(role: .client, certificate: clientCertificate, remoteFingerprints: [serverCertificate.fingerprint])
            let server = try! DTLSEndpoint(role: .server, certificate: serverCertificate, remoteFingerprints: [clientCertificate.fingerprint])
            let (clientFD, clientPort) = boundSocket()
            let (serverFD, serverPort) = boundSocket()
            defer { close(clientFD); close(serverFD) }
            connectSocket(clientFD, to: serverPort)
            connectSocket(serverFD, to: clientPort)
            let outcome = Outcome()
            server.start(now: .now())
            let thread = spawn { outcome.serverConnectedAt = drive(server, fd: serverFD) }
            let start = MonotonicTime.now()
            client.start(now: start)
            let clientConnectedAt = drive(client, fd: clientFD)
            pthread_join(thread, nil)
            guard let clientConnectedAt, let serverConnectedAt = outcome.serverConnectedAt else {
                fatalError("loopback DTLS handshake did not complete: client \(client.state), server \(server.state)")
            }
            serverTimes.append(Double((serverConnectedAt - start).nanosecondsClamped))
            datagramsSent = client.statistics.datagramsSent + server.statistics.datagramsSent
            return (max(clientConnectedAt, serverConnectedAt) - start).nanosecondsClamped
        }
        if !serverTimes.isEmpty {
            // The sample closure also ran its warm-up runs; keep the measured ones.
            let measured = Array(serverTimes.suffix(runs))
            bench.record(serverName, bench.median(measured), note: "\(datagramsSent) datagrams")
        }
    }
}
