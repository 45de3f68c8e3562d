import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Signaling
import Wire

/// What the load generator does: how many clients, rooms, signals and for how long.
struct LoadPlan: Sendable {
    var clients = 1000
    var rooms = 50
    /// Signals per second sent by each client.
    var rate = 2.0
    /// Length of the signaling phase, in seconds.
    var duration = 20.0
    /// How far (in `пользователи-обновлены` broadcasts) any client may lag before the next one registers.
    var registerWindow = 64
    /// Upper bound on connect + register + join, in seconds.
    var setupTimeout = 90.0
    var connectConcurrency = 64
    var host = "127.0.0.1"
    var port = 0
    var path = "/ws"
    var seed: UInt64 = 6
}

/// Everything measured by one run.
struct LoadResult: Sendable {
    var plan: LoadPlan
    var connected = 0
    var connectFailures = 0
    var registered = 0
    var joined = 0
    var closedByServer = 0
    var aborted: String?
    /// Phase boundaries (seconds from start) with resource samples.
    var samples: [Sample] = []
    /// `пользователи-обновлены` frames and their bytes, received by all clients.
    var usersUpdatedFrames = 0
    var usersUpdatedBytes = 0
    var otherFrames = 0
    var otherBytes = 0
    var signalsSent = 0
    var signalsReceived = 0
    var signalBytesSent = 0
    /// Relay latencies, nanoseconds, sorted.
    var latencies: [Int64] = []
    var errors: [String: Int] = [:]
}

/// SplitMix64: deterministic choices of peers and send phases.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A frame sorted by what the load generator does with it.
enum InboundKind {
    case usersUpdated
    case signal
    case other
}

/// Drives all clients; lives on the single client event loop and is only touched there.
final class Coordinator {
    struct Client {
        var id: String
        var room: Int
        var channel: (any Channel)?
        var closed = false
        var registered = false
        var usersUpdates = 0
        var joined = false
        var nextSend: Int64 = 0
    }

    enum Phase { case connecting, registering, joining, signaling, draining, done }

    let plan: LoadPlan
    let loop: any EventLoop
    let sampler: @Sendable (String) -> Sample
    private var bound: NIOLoopBound<Coordinator>?
    private var clients: [Client]
    private var roomMembers: [[Int]]
    private var roomIDs: [String?]
    private var phase = Phase.connecting
    private var result: LoadResult
    private let promise: EventLoopPromise<LoadResult>
    private var rng: SplitMix64
    private let start = MonotonicTime.now()
    private var nextConnect = 0
    private var connectsInFlight = 0
    private var nextRegister = 0
    private var signalEnd: Int64 = 0
    private var period: Int64 = 0
    private var setupDeadline: Scheduled<Void>?

    static let usersUpdatedPrefix = Array(#"{"пользователи":"#.utf8)
    static let signalTag = Array(#""тип":"webrtc-signal""#.utf8)
    static let joinedTag = Array(#""тип":"присоединился-к-комнате""#.utf8)
    static let errorTag = Array(#""тип":"ошибка""#.utf8)
    static let usersTag = Array(#""тип":"пользователи-обновлены""#.utf8)
    static let stampKey = Array(#""usernameFragment":""#.utf8)

    init(plan: LoadPlan, loop: any EventLoop, sampler: @escaping @Sendable (String) -> Sample) {
        self.plan = plan
        self.loop = loop
        self.sampler = sampler
        self.promise = loop.makePromise()
        self.rng = SplitMix64(state: plan.seed)
        let perRoom = (plan.clients + plan.rooms - 1) / plan.rooms
        self.clients = (0..<plan.clients).map { i in
            Client(id: "load-\(i)", room: min(plan.rooms - 1, i / perRoom))
        }
        self.roomMembers = Array(repeating: [], count: plan.rooms)
        for (i, c) in clients.enumerated() { roomMembers[c.room].append(i) }
        self.roomIDs = Array(repeating: nil, count: plan.rooms)
        self.result = LoadResult(plan: plan)
        self.result.latencies.reserveCapacity(Int(Double(plan.clients) * plan.rate * (plan.duration + 1)))
    }

    private var now: Int64 { MonotonicTime.now().nanoseconds }
    private var elapsed: Double { Double(now - start.nanoseconds) / 1e9 }

    /// Runs every phase; the future completes with the measurements.
    func run() -> EventLoopFuture<LoadResult> {
        bound = NIOLoopBound(self, eventLoop: loop)
        mark("start")
        let deadline = TimeAmount.nanoseconds(Int64(plan.setupTimeout * 1e9))
        setupDeadline = loop.assumeIsolated().scheduleTask(in: deadline) { [self] in
            if phase == .connecting || phase == .registering || phase == .joining {
                abort("setup did not finish within \(plan.setupTimeout) s (phase \(phase))")
            }
        }
        for _ in 0..<min(plan.connectConcurrency, plan.clients) { connectNext() }
        return promise.futureResult
    }

    private func mark(_ name: String) {
        var s = sampler(name)
        s.seconds = elapsed
        result.samples.append(s)
    }

    private func abort(_ reason: String) {
        guard phase != .done else { return }
        result.aborted = reason
        print("ABORT: \(reason)")
        let lagging = clients.indices.filter { p in
            !clients[p].closed && (!clients[p].registered || clients[p].usersUpdates < plan.clients - p || !clients[p].joined)
        }
        for p in lagging.prefix(5) {
            print("  client \(p): registered \(clients[p].registered), users-updated \(clients[p].usersUpdates) of \(plan.clients - p), joined \(clients[p].joined)")
        }
        finish()
    }

    // MARK: connecting

    private func connectNext() {
        guard phase == .connecting, nextConnect < plan.clients else { return }
        let index = nextConnect
        nextConnect += 1
        connectsInFlight += 1
        guard let bound else { return }
        let host = plan.host, port = plan.port, path = plan.path
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 24, automaticErrorHandling: true) { channel, _ in
                    do {
                        try channel.pipeline.syncOperations.addHandler(LoadClientHandler(index: index, coordinator: bound))
                        bound.value.didConnect(index, channel: channel)
                        return channel.eventLoop.makeSucceededVoidFuture()
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                }
                let upgrade: NIOHTTPClientUpgradeConfiguration = (upgraders: [upgrader], completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(name: UpgradeRequestHandler.name, promise: nil)
                })
                do {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes, withClientUpgrade: upgrade)
                    try channel.pipeline.syncOperations.addHandler(
                        UpgradeRequestHandler(host: "\(host):\(port)", path: path), name: UpgradeRequestHandler.name)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port)
            .assumeIsolated()
            .whenComplete { [self] outcome in
                switch outcome {
                case .success(let channel):
                    channel.closeFuture.assumeIsolated().whenComplete { [self] _ in channelClosed(index) }
                case .failure:
                    connectFailed(index)
                }
            }
    }

    func didConnect(_ index: Int, channel: any Channel) {
        guard phase == .connecting, clients[index].channel == nil else { return }
        clients[index].channel = channel
        result.connected += 1
        connectsInFlight -= 1
        connectNext()
        checkConnected()
    }

    private func connectFailed(_ index: Int) {
        guard phase == .connecting else { return }
        result.connectFailures += 1
        clients[index].closed = true
        connectsInFlight -= 1
        connectNext()
        checkConnected()
    }

    private func channelClosed(_ index: Int) {
        if clients[index].channel == nil {
            if phase == .connecting, !clients[index].closed { connectFailed(index) }
            return
        }
        guard !clients[index].closed else { return }
        clients[index].closed = true
        if phase != .done {
            result.closedByServer += 1
            if result.closedByServer <= 5 { print("client \(index) closed by server in phase \(phase) at \(elapsed) s") }
            if phase == .registering || phase == .joining { checkSetupProgress() }
        }
    }

    private func checkConnected() {
        guard phase == .connecting, result.connected + result.connectFailures == plan.clients else { return }
        guard result.connected > 0 else { return abort("no client could connect") }
        print(String(format: "connected %d clients (%d failed) in %.2f s", result.connected, result.connectFailures, elapsed))
        mark("connected")
        phase = .registering
        registerTick()
    }

    // MARK: registering

    private func send(_ text: String, from index: Int) -> Bool {
        guard let channel = clients[index].channel, !clients[index].closed else { return false }
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: channel.allocator.buffer(string: text))
        channel.writeAndFlush(frame, promise: nil)
        return true
    }

    /// Registers clients in order, keeping every registered client within `registerWindow`
    /// broadcasts of the newest one, so no server outbound queue overflows.
    private func registerTick() {
        guard phase == .registering else { return }
        registerMore()
        checkSetupProgress()
        if phase == .registering {
            loop.assumeIsolated().scheduleTask(in: .milliseconds(2)) { [self] in registerTick() }
        }
    }

    /// Registration k is sent only once the server has handled k-1 (its client got a broadcast), so
    /// the server sees them in index order and client p gets exactly `clients - p` broadcasts.
    private func registerMore() {
        guard phase == .registering else { return }
        var floor = Int.max
        for p in 0..<nextRegister where !clients[p].closed {
            floor = min(floor, clients[p].usersUpdates + p)
        }
        let limit = floor == .max ? plan.clients : min(plan.clients, floor + plan.registerWindow)
        while nextRegister < limit {
            if nextRegister > 0 {
                let previous = clients[nextRegister - 1]
                if previous.registered && !previous.closed && previous.usersUpdates == 0 { return }
            }
            let p = nextRegister
            nextRegister += 1
            if clients[p].closed { continue }
            let user = Participant(id: clients[p].id, name: "Load \(p)", microphoneEnabled: true)
            guard let text = try? SignalingCodec.encode(ClientMessage.register(user)) else { continue }
            if send(text, from: p) { clients[p].registered = true }
        }
    }

    private func checkSetupProgress() {
        switch phase {
        case .registering:
            guard nextRegister == plan.clients else { return }
            for p in 0..<plan.clients where !clients[p].closed && clients[p].registered {
                if clients[p].usersUpdates < plan.clients - p { return }
            }
            result.registered = clients.filter { $0.registered && !$0.closed }.count
            print(String(format: "registered %d clients at %.2f s (%d users-updated frames, %.1f MB)",
                         result.registered, elapsed, result.usersUpdatedFrames, Double(result.usersUpdatedBytes) / 1e6))
            mark("registered")
            phase = .joining
            createRooms()
        case .joining:
            let alive = clients.filter { !$0.closed && $0.registered }
            guard alive.allSatisfy(\.joined) else { return }
            result.joined = alive.count
            print(String(format: "%d clients joined %d rooms at %.2f s", result.joined, plan.rooms, elapsed))
            setupDeadline?.cancel()
            startSignaling()
        default:
            break
        }
    }

    // MARK: joining

    private func createRooms() {
        for r in 0..<plan.rooms {
            guard let creator = roomMembers[r].first else { continue }
            let message = ClientMessage.createRoom(
                name: "Load room \(r)", creator: clients[creator].id, maxParticipants: roomMembers[r].count,
                isPrivate: false, password: nil)
            if let text = try? SignalingCodec.encode(message) { _ = send(text, from: creator) }
        }
    }

    private func joined(_ index: Int, roomID: String) {
        guard phase == .joining, !clients[index].joined else { return }
        clients[index].joined = true
        let r = clients[index].room
        if roomIDs[r] == nil, roomMembers[r].first == index {
            roomIDs[r] = roomID
            for member in roomMembers[r].dropFirst() {
                let message = ClientMessage.joinRoom(roomID: roomID, userID: clients[member].id, password: nil)
                if let text = try? SignalingCodec.encode(message) { _ = send(text, from: member) }
            }
        }
        checkSetupProgress()
    }

    // MARK: signaling

    private func startSignaling() {
        mark("joined")
        phase = .signaling
        period = Int64(1e9 / plan.rate)
        let t0 = now
        signalEnd = t0 + Int64(plan.duration * 1e9)
        for i in clients.indices { clients[i].nextSend = t0 + Int64(rng.below(Int(period))) }
        print(String(format: "signaling for %.0f s at %.1f/s per client", plan.duration, plan.rate))
        signalTick()
    }

    private func signalTick() {
        guard phase == .signaling else { return }
        let t = now
        if t >= signalEnd {
            mark("signaled")
            phase = .draining
            drainTick(until: t + 3_000_000_000)
            return
        }
        for i in clients.indices where clients[i].joined && !clients[i].closed && clients[i].nextSend <= t {
            clients[i].nextSend = max(clients[i].nextSend + period, t - period)
            let members = roomMembers[clients[i].room]
            guard members.count > 1, let roomID = roomIDs[clients[i].room] else { continue }
            var peer = members[rng.below(members.count - 1)]
            if peer == i { peer = members[members.count - 1] }
            let stamp = now
            let text = #"{"тип":"webrtc-signal","от":""# + clients[i].id + #"","к":""# + clients[peer].id
                + #"","комната":""# + roomID
                + #"","данные":{"type":"candidate","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 9 typ host generation 0 network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":""#
                + String(stamp) + #""}}}"#
            if send(text, from: i) {
                result.signalsSent += 1
                result.signalBytesSent += text.utf8.count
            }
        }
        loop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { [self] in signalTick() }
    }

    private func drainTick(until deadline: Int64) {
        guard phase == .draining else { return }
        if result.signalsReceived >= result.signalsSent || now >= deadline {
            finish()
            return
        }
        loop.assumeIsolated().scheduleTask(in: .milliseconds(20)) { [self] in drainTick(until: deadline) }
    }

    private func finish() {
        guard phase != .done else { return }
        phase = .done
        mark("end")
        setupDeadline?.cancel()
        for c in clients { c.channel?.close(promise: nil) }
        result.latencies.sort()
        bound = nil
        promise.succeed(result)
    }

    // MARK: inbound

    func receive(_ index: Int, kind: InboundKind, bytes: ByteBuffer) {
        switch kind {
        case .usersUpdated:
            result.usersUpdatedFrames += 1
            result.usersUpdatedBytes += bytes.readableBytes
            clients[index].usersUpdates += 1
            if phase == .registering, index == nextRegister - 1, clients[index].usersUpdates == 1 { registerMore() }
            if phase == .registering, clients[index].usersUpdates >= plan.clients - index { checkSetupProgress() }
        case .signal:
            let t = now
            result.signalsReceived += 1
            if let stamp = Self.stamp(in: bytes) { result.latencies.append(t - stamp) }
        case .other:
            result.otherFrames += 1
            result.otherBytes += bytes.readableBytes
            if Self.contains(bytes, Self.joinedTag) || Self.contains(bytes, Self.errorTag) {
                switch try? SignalingCodec.decodeServer(String(buffer: bytes)) {
                case .joinedRoom(let room, _):
                    joined(index, roomID: room.id)
                case .error(let message):
                    result.errors[message, default: 0] += 1
                    if result.errors[message] == 1 { print("client \(index) got error: \(message)") }
                default:
                    break
                }
            }
        }
    }

    static func classify(_ bytes: ByteBuffer) -> InboundKind {
        let view = bytes.readableBytesView
        if view.starts(with: usersUpdatedPrefix) { return .usersUpdated }
        if view.count < 64 * 1024 {
            if contains(bytes, signalTag) { return .signal }
            if contains(bytes, usersTag) { return .usersUpdated }
        }
        return .other
    }

    static func contains(_ bytes: ByteBuffer, _ needle: [UInt8]) -> Bool {
        find(bytes, needle) != nil
    }

    /// Offset just past `needle` in the readable bytes, if present.
    static func find(_ bytes: ByteBuffer, _ needle: [UInt8]) -> Int? {
        bytes.withUnsafeReadableBytes { raw -> Int? in
            let n = needle.count
            guard n > 0, raw.count >= n else { return nil }
            let first = needle[0]
            var i = 0
            while i <= raw.count - n {
                if raw[i] == first {
                    var j = 1
                    while j < n && raw[i + j] == needle[j] { j += 1 }
                    if j == n { return i + n }
                }
                i += 1
            }
            return nil
        }
    }

    /// The send time carried in `usernameFragment`.
    static func stamp(in bytes: ByteBuffer) -> Int64? {
        guard let offset = find(bytes, stampKey) else { return nil }
        return bytes.withUnsafeReadableBytes { raw -> Int64? in
            var value: Int64 = 0
            var i = offset
            var digits = 0
            while i < raw.count, raw[i] >= 0x30, raw[i] <= 0x39, digits < 19 {
                value = value * 10 + Int64(raw[i] - 0x30)
                i += 1
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }
}

/// Sends the HTTP upgrade request and closes the connection if the server refuses the upgrade.
final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    static let name = "load-upgrade-request"

    let host: String
    let path: String

    init(host: String, path: String) {
        self.host = host
        self.path = path
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only reached when the upgrade was refused.
        context.close(promise: nil)
    }
}

/// One client's WebSocket frames: answers pings, reassembles messages, hands them to the coordinator.
final class LoadClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let index: Int
    let coordinator: NIOLoopBound<Coordinator>
    private var partial: ByteBuffer?

    init(index: Int, coordinator: NIOLoopBound<Coordinator>) {
        self.index = index
        self.coordinator = coordinator
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            if frame.fin {
                let bytes = frame.unmaskedData
                coordinator.value.receive(index, kind: Coordinator.classify(bytes), bytes: bytes)
            } else {
                partial = frame.unmaskedData
            }
        case .continuation:
            guard var buffer = partial else { return }
            var more = frame.unmaskedData
            buffer.writeBuffer(&more)
            if frame.fin {
                partial = nil
                coordinator.value.receive(index, kind: Coordinator.classify(buffer), bytes: buffer)
            } else {
                partial = buffer
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
