import Wire

/// Why a TURN allocation, or one of its permissions or channels, failed.
public enum TURNError: Error, Equatable, Sendable {
    /// No response after all retransmissions.
    case timeout(STUNMethod)
    /// The server answered with an error code we do not recover from.
    case errorResponse(method: STUNMethod, code: Int, reason: String)
    /// 401 although the request carried credentials: wrong username or password.
    case unauthorized(reason: String)
    /// A 401 without REALM or NONCE.
    case missingRealmOrNonce
    /// A success response without a needed attribute (XOR-RELAYED-ADDRESS, LIFETIME).
    case malformedResponse(method: STUNMethod, reason: String)
    /// 438 Stale Nonce too many times in a row.
    case staleNonceLoop
    /// The allocation's lifetime ran out before a refresh succeeded.
    case allocationExpired
    /// No more channel numbers (0x4000...0x4FFF are all in use).
    case channelsExhausted
    /// The allocation is closing, closed or failed.
    case notActive
    /// The TCP or TLS connection to the server failed, closed, or carried garbage.
    case streamClosed
}

/// What a `TURNClient` reports, in order, through `pollEvent()`.
public enum TURNEvent: Equatable, Sendable {
    case allocated(relayed: TransportAddress, mapped: TransportAddress?, lifetime: Duration)
    case refreshed(lifetime: Duration)
    case permissionCreated(IPAddress)
    case permissionFailed(IPAddress, TURNError)
    case channelBound(channel: UInt16, peer: TransportAddress)
    case channelBindFailed(peer: TransportAddress, TURNError)
    /// The allocation is gone; nothing more will be sent.
    case failed(TURNError)
    /// `close(now:)` finished (the server confirmed the deallocation, or it timed out).
    case closed
}

/// Settings for a `TURNClient`.
public struct TURNConfiguration: Sendable, Equatable {
    /// LIFETIME asked for in Allocate and Refresh requests.
    public var requestedLifetime: Duration = .seconds(600)
    /// SOFTWARE attribute, or nil for none.
    public var software: String? = "peerd"
    /// Append FINGERPRINT to requests and indications (lets them share a socket with ICE checks).
    public var fingerprint = true
    /// RFC 8489 RTO, doubled on each retransmission.
    public var initialRTO: Duration = .milliseconds(500)
    /// Rc: transmissions of a request before giving up.
    public var maxTransmissions = 7
    /// Rm: after the last transmission, wait this many initial RTOs.
    public var lastWaitMultiplier = 16
    /// Refresh the allocation this long before it expires (or at half its lifetime if that is later).
    public var refreshMargin: Duration = .seconds(60)
    /// Permissions last 300 s; refresh them this often while used.
    public var permissionRefreshInterval: Duration = .seconds(240)
    /// Channel bindings last 600 s; refresh them this often while used.
    public var channelRefreshInterval: Duration = .seconds(540)
    /// 438 retries allowed for one request.
    public var maxStaleNonceRetries = 3
    /// Seed for transaction ids; nil takes one from the system generator.
    public var randomSeed: UInt64?

    public init() {}
}

/// A sans-IO TURN client (RFC 8656) for one UDP allocation on one server.
///
/// Every datagram it produces goes to `server`; every datagram from `server` goes to
/// `handleDatagram(_:now:)`. Time is an input. Responses to requests sent with credentials
/// must carry a valid MESSAGE-INTEGRITY (long-term key); others are dropped and counted.
public struct TURNClient: Sendable {
    public enum State: Equatable, Sendable {
        case idle, allocating, allocated, closing, closed
        case failed(TURNError)
    }

    public let server: TransportAddress
    public let username: String
    public let configuration: TURNConfiguration
    public private(set) var state: State = .idle
    public private(set) var relayedAddress: TransportAddress?
    public private(set) var mappedAddress: TransportAddress?
    public private(set) var realm: String?
    public private(set) var nonce: String?
    /// When the allocation expires, if allocated.
    public private(set) var expiresAt: MonotonicTime?
    /// Responses dropped for a missing or wrong MESSAGE-INTEGRITY.
    public private(set) var droppedResponses = 0
    /// Datagrams that were neither ours, Data indications nor ChannelData of a known channel.
    public private(set) var ignoredDatagrams = 0

    private let password: String
    private var key: [UInt8]?
    private var random: TURNRandom
    private var transactions: [STUNTransactionID: Transaction] = [:]
    private var outgoing = OutputQueue<[UInt8]>()
    private var events = OutputQueue<TURNEvent>()
    private var refreshAt: MonotonicTime?
    private var permissions: [IPAddress: Permission] = [:]
    private var channels: [UInt16: Channel] = [:]
    private var channelByPeer: [TransportAddress: UInt16] = [:]
    private var nextChannel: UInt16 = 0x4000

    private enum Kind: Sendable, Equatable {
        case allocate
        case refresh(lifetime: UInt32)
        case createPermission([IPAddress])
        case channelBind(channel: UInt16, peer: TransportAddress)

        var method: STUNMethod {
            switch self {
            case .allocate: .allocate
            case .refresh: .refresh
            case .createPermission: .createPermission
            case .channelBind: .channelBind
            }
        }
    }

    private struct Transaction: Sendable {
        var kind: Kind
        var bytes: [UInt8]
        var authenticated: Bool
        var transmissions: Int
        var nextEvent: MonotonicTime
        var staleNonceRetries: Int
    }

    private struct Permission: Sendable {
        var installed = false
        var inFlight = false
        var refreshAt: MonotonicTime?
        var used = false
    }

    private struct Channel: Sendable {
        var peer: TransportAddress
        var confirmed = false
        var inFlight = false
        var refreshAt: MonotonicTime?
        var used = false
    }

    public init(server: TransportAddress, username: String, password: String, configuration: TURNConfiguration = TURNConfiguration()) {
        self.server = server
        self.username = username
        self.password = password
        self.configuration = configuration
        var seed = configuration.randomSeed ?? 0
        if configuration.randomSeed == nil {
            var system = SystemRandomNumberGenerator()
            seed = system.next()
        }
        self.random = TURNRandom(state: seed)
    }

    // MARK: Public operations

    /// Sends the first Allocate request (without credentials; the server's 401 supplies realm and nonce).
    public mutating func start(now: MonotonicTime) {
        guard state == .idle else { return }
        state = .allocating
        send(.allocate, now: now)
    }

    /// Installs (or keeps) a permission for `peer` (RFC 8656 section 9). Before the allocation
    /// exists it is queued. It is refreshed every `permissionRefreshInterval` while used.
    public mutating func createPermission(for peer: IPAddress, now: MonotonicTime) {
        switch state {
        case .idle, .allocating:
            if permissions[peer] == nil { permissions[peer] = Permission(used: true) }
        case .allocated:
            if permissions[peer]?.inFlight == true { return }
            if permissions[peer]?.installed == true { permissions[peer]!.used = true; return }
            permissions[peer] = Permission(inFlight: true, used: true)
            send(.createPermission([peer]), now: now)
        case .closing, .closed, .failed:
            return
        }
    }

    /// Binds a channel to `peer` (RFC 8656 section 12) and returns its number; the same number if already bound.
    /// Before the allocation exists it is queued. ChannelData is used for this peer once the server confirms
    /// the binding; the binding is refreshed every `channelRefreshInterval` while used.
    @discardableResult
    public mutating func bindChannel(peer: TransportAddress, now: MonotonicTime) throws(TURNError) -> UInt16 {
        switch state {
        case .closing, .closed, .failed: throw .notActive
        case .idle, .allocating, .allocated: break
        }
        if let existing = channelByPeer[peer] { return existing }
        guard nextChannel <= TURNChannelData.validChannels.upperBound else { throw .channelsExhausted }
        let number = nextChannel
        nextChannel += 1
        channels[number] = Channel(peer: peer, used: true)
        channelByPeer[peer] = number
        if state == .allocated {
            channels[number]!.inFlight = true
            send(.channelBind(channel: number, peer: peer), now: now)
        }
        return number
    }

    /// The channel bound (and confirmed) for `peer`, if any.
    public func channel(for peer: TransportAddress) -> UInt16? {
        guard let number = channelByPeer[peer], channels[number]?.confirmed == true else { return nil }
        return number
    }

    /// Whether the server confirmed a permission for `peer`.
    public func hasPermission(for peer: IPAddress) -> Bool { permissions[peer]?.installed == true }

    /// Wraps application data for `peer` into ChannelData (when a channel is confirmed) or a Send indication.
    public mutating func wrap(payload: [UInt8], to peer: TransportAddress) -> [UInt8] {
        permissions[peer.ip]?.used = true
        if let number = channelByPeer[peer], channels[number]!.confirmed {
            channels[number]!.used = true
            return TURNChannelData(channelNumber: number, data: payload[...]).serialized()
        }
        let message = STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication),
                                  transactionID: .random(using: &random),
                                  attributes: [.xorPeerAddress(peer), .data(payload)])
        return message.encoded(fingerprint: configuration.fingerprint)
    }

    /// Processes a datagram from the server. Returns the peer and payload of a Data indication
    /// or ChannelData; consumes responses to our own requests (returning nil).
    @discardableResult
    public mutating func handleDatagram(_ datagram: [UInt8], now: MonotonicTime) -> (peer: TransportAddress, payload: [UInt8])? {
        unwrap(datagram, now: now)
    }

    /// Same as `handleDatagram(_:now:)`.
    public mutating func unwrap(_ datagram: [UInt8], now: MonotonicTime) -> (peer: TransportAddress, payload: [UInt8])? {
        guard let first = datagram.first else { ignoredDatagrams += 1; return nil }
        if first >= 0x40 && first <= 0x4F {
            guard let channelData = try? TURNChannelData(parsing: datagram),
                  let channel = channels[channelData.channelNumber] else { ignoredDatagrams += 1; return nil }
            channels[channelData.channelNumber]!.used = true
            permissions[channel.peer.ip]?.used = true
            return (channel.peer, Array(channelData.data))
        }
        guard first < 4, let message = try? STUNMessage(decoding: datagram) else { ignoredDatagrams += 1; return nil }
        switch message.type.messageClass {
        case .indication:
            guard message.type.method == .data, let peer = message.xorPeerAddress, let data = message.data else {
                ignoredDatagrams += 1
                return nil
            }
            permissions[peer.ip]?.used = true
            return (peer, data)
        case .successResponse, .errorResponse:
            handleResponse(message, raw: datagram, now: now)
            return nil
        case .request:
            ignoredDatagrams += 1
            return nil
        }
    }

    /// Refreshes the allocation now instead of at the scheduled time (no-op unless allocated or if a refresh is in flight).
    public mutating func refresh(now: MonotonicTime) {
        guard state == .allocated, !transactions.values.contains(where: { $0.kind.method == .refresh }) else { return }
        refreshAt = nil
        send(.refresh(lifetime: requestedLifetimeSeconds), now: now)
    }

    /// Deallocates: Refresh with LIFETIME 0. `.closed` follows when the server answers (or the request times out).
    public mutating func close(now: MonotonicTime) {
        switch state {
        case .allocated:
            transactions.removeAll()
            state = .closing
            send(.refresh(lifetime: 0), now: now)
        case .idle, .allocating:
            transactions.removeAll()
            state = .closed
            events.append(.closed)
        case .closing, .closed, .failed:
            return
        }
    }

    /// The next datagram for the server.
    public mutating func pollTransmit() -> [UInt8]? {
        outgoing.poll()
    }

    /// The next event.
    public mutating func pollEvent() -> TURNEvent? {
        events.poll()
    }

    /// When `handleTimeout(now:)` should next be called.
    public var nextTimeout: MonotonicTime? {
        var next: MonotonicTime?
        func consider(_ time: MonotonicTime?) {
            guard let time else { return }
            if next == nil || time < next! { next = time }
        }
        for transaction in transactions.values { consider(transaction.nextEvent) }
        if state == .allocated {
            consider(refreshAt)
            consider(expiresAt)
            for permission in permissions.values where !permission.inFlight { consider(permission.refreshAt) }
            for channel in channels.values where !channel.inFlight { consider(channel.refreshAt) }
        }
        return next
    }

    /// Retransmits, times out requests, and refreshes the allocation, permissions and channels when due.
    public mutating func handleTimeout(now: MonotonicTime) {
        let due = transactions.filter { $0.value.nextEvent <= now }.keys.sorted { ($0.high, $0.low) < ($1.high, $1.low) }
        for id in due {
            guard let transaction = transactions[id] else { continue }
            if transaction.transmissions >= configuration.maxTransmissions {
                transactions[id] = nil
                transactionFailed(transaction.kind, error: .timeout(transaction.kind.method), now: now)
            } else {
                var updated = transaction
                updated.transmissions += 1
                updated.nextEvent = now + waitAfter(transmission: updated.transmissions)
                transactions[id] = updated
                outgoing.append(transaction.bytes)
            }
        }
        guard state == .allocated else { return }
        if let expiresAt, now >= expiresAt {
            fail(.allocationExpired)
            return
        }
        if let refreshAt, now >= refreshAt {
            self.refreshAt = nil
            send(.refresh(lifetime: requestedLifetimeSeconds), now: now)
        }
        for (peer, permission) in permissions where !permission.inFlight {
            guard let due = permission.refreshAt, now >= due else { continue }
            if permission.used {
                permissions[peer]!.inFlight = true
                permissions[peer]!.used = false
                send(.createPermission([peer]), now: now)
            } else {
                permissions[peer] = nil
            }
        }
        for (number, channel) in channels where !channel.inFlight {
            guard let due = channel.refreshAt, now >= due else { continue }
            if channel.used {
                channels[number]!.inFlight = true
                channels[number]!.used = false
                send(.channelBind(channel: number, peer: channel.peer), now: now)
            } else {
                channels[number] = nil
                channelByPeer[channel.peer] = nil
            }
        }
    }

    // MARK: Internals

    private var requestedLifetimeSeconds: UInt32 {
        UInt32(clamping: configuration.requestedLifetime.components.seconds)
    }

    private func waitAfter(transmission count: Int) -> Duration {
        if count >= configuration.maxTransmissions { return configuration.initialRTO * configuration.lastWaitMultiplier }
        return configuration.initialRTO * (1 << min(count - 1, 30))
    }

    private mutating func send(_ kind: Kind, now: MonotonicTime, staleNonceRetries: Int = 0) {
        var attributes: [STUNAttribute] = []
        switch kind {
        case .allocate:
            attributes.append(.requestedTransport(protocolNumber: 17))
            attributes.append(.lifetime(seconds: requestedLifetimeSeconds))
        case .refresh(let lifetime):
            attributes.append(.lifetime(seconds: lifetime))
        case .createPermission(let peers):
            for peer in peers { attributes.append(.xorPeerAddress(TransportAddress(ip: peer, port: 0))) }
        case .channelBind(let channel, let peer):
            attributes.append(.channelNumber(channel))
            attributes.append(.xorPeerAddress(peer))
        }
        if let software = configuration.software { attributes.append(.software(software)) }
        var integrity: STUNIntegrity?
        if let key, let realm, let nonce {
            attributes.append(.username(username))
            attributes.append(.realm(realm))
            attributes.append(.nonce(nonce))
            integrity = .sha1(key: key)
        }
        let id = STUNTransactionID.random(using: &random)
        let message = STUNMessage(type: STUNMessageType(method: kind.method, messageClass: .request), transactionID: id, attributes: attributes)
        let bytes = message.encoded(integrity: integrity, fingerprint: configuration.fingerprint)
        transactions[id] = Transaction(kind: kind, bytes: bytes, authenticated: integrity != nil, transmissions: 1,
                                       nextEvent: now + waitAfter(transmission: 1), staleNonceRetries: staleNonceRetries)
        outgoing.append(bytes)
    }

    private mutating func handleResponse(_ message: STUNMessage, raw: [UInt8], now: MonotonicTime) {
        guard let transaction = transactions[message.transactionID] else { ignoredDatagrams += 1; return }
        guard message.type.method == transaction.kind.method else { ignoredDatagrams += 1; return }
        let errorCode = message.errorCode
        if transaction.authenticated {
            // RFC 8489 section 9.2.5: 401 and 438 carry no integrity; everything else must verify.
            let unauthenticatedError = message.type.messageClass == .errorResponse && (errorCode?.code == 401 || errorCode?.code == 438)
            if !unauthenticatedError {
                guard let key, message.verifyIntegrity(of: raw, key: key) else {
                    droppedResponses += 1
                    return
                }
            }
        }
        transactions[message.transactionID] = nil

        if message.type.messageClass == .successResponse {
            handleSuccess(message, kind: transaction.kind, now: now)
            return
        }
        let code = errorCode?.code ?? 0
        let reason = errorCode?.reason ?? ""
        switch code {
        case 401 where !transaction.authenticated:
            guard let realm = message.realm, let nonce = message.nonce else {
                transactionFailed(transaction.kind, error: .missingRealmOrNonce, now: now)
                return
            }
            self.realm = realm
            self.nonce = nonce
            self.key = STUNCredentials.longTermKey(username: username, realm: realm, password: password)
            send(transaction.kind, now: now)
        case 401:
            transactionFailed(transaction.kind, error: .unauthorized(reason: reason), now: now)
        case 438:
            guard let nonce = message.nonce else {
                transactionFailed(transaction.kind, error: .missingRealmOrNonce, now: now)
                return
            }
            guard transaction.staleNonceRetries < configuration.maxStaleNonceRetries else {
                transactionFailed(transaction.kind, error: .staleNonceLoop, now: now)
                return
            }
            self.nonce = nonce
            if let realm = message.realm, realm != self.realm {
                self.realm = realm
                self.key = STUNCredentials.longTermKey(username: username, realm: realm, password: password)
            }
            send(transaction.kind, now: now, staleNonceRetries: transaction.staleNonceRetries + 1)
        default:
            if case .refresh(0) = transaction.kind, code == 437 {
                // Allocation mismatch on deallocation: the allocation is already gone.
                finishClose()
                return
            }
            transactionFailed(transaction.kind, error: .errorResponse(method: transaction.kind.method, code: code, reason: reason), now: now)
        }
    }

    private mutating func handleSuccess(_ message: STUNMessage, kind: Kind, now: MonotonicTime) {
        if let nonce = message.nonce { self.nonce = nonce }
        switch kind {
        case .allocate:
            guard state == .allocating else { return }
            guard let relayed = message.xorRelayedAddress else {
                fail(.malformedResponse(method: .allocate, reason: "no XOR-RELAYED-ADDRESS"))
                return
            }
            guard let seconds = message.lifetime else {
                fail(.malformedResponse(method: .allocate, reason: "no LIFETIME"))
                return
            }
            relayedAddress = relayed
            mappedAddress = message.xorMappedAddress
            state = .allocated
            setLifetime(seconds: seconds, now: now)
            events.append(.allocated(relayed: relayed, mapped: message.xorMappedAddress, lifetime: .seconds(seconds)))
            for (peer, permission) in permissions where !permission.inFlight && !permission.installed {
                permissions[peer]!.inFlight = true
                send(.createPermission([peer]), now: now)
            }
            for (number, channel) in channels.sorted(by: { $0.key < $1.key }) where !channel.inFlight {
                channels[number]!.inFlight = true
                send(.channelBind(channel: number, peer: channel.peer), now: now)
            }
        case .refresh(0):
            finishClose()
        case .refresh:
            guard state == .allocated else { return }
            let seconds = message.lifetime ?? requestedLifetimeSeconds
            setLifetime(seconds: seconds, now: now)
            events.append(.refreshed(lifetime: .seconds(seconds)))
        case .createPermission(let peers):
            for peer in peers where permissions[peer] != nil {
                let wasInstalled = permissions[peer]!.installed
                permissions[peer]!.installed = true
                permissions[peer]!.inFlight = false
                permissions[peer]!.refreshAt = now + configuration.permissionRefreshInterval
                if !wasInstalled { events.append(.permissionCreated(peer)) }
            }
        case .channelBind(let number, let peer):
            guard channels[number] != nil else { return }
            let wasConfirmed = channels[number]!.confirmed
            channels[number]!.confirmed = true
            channels[number]!.inFlight = false
            channels[number]!.refreshAt = now + configuration.channelRefreshInterval
            // A channel binding also installs or refreshes the permission for the peer's address.
            if permissions[peer.ip] == nil { permissions[peer.ip] = Permission() }
            permissions[peer.ip]!.installed = true
            if permissions[peer.ip]!.refreshAt == nil { permissions[peer.ip]!.refreshAt = now + configuration.permissionRefreshInterval }
            if !wasConfirmed { events.append(.channelBound(channel: number, peer: peer)) }
        }
    }

    private mutating func setLifetime(seconds: UInt32, now: MonotonicTime) {
        let lifetime = Duration.seconds(seconds)
        expiresAt = now + lifetime
        let early = lifetime - configuration.refreshMargin
        let half = lifetime / 2
        refreshAt = now + (early > half ? early : half)
    }

    private mutating func transactionFailed(_ kind: Kind, error: TURNError, now: MonotonicTime) {
        switch kind {
        case .allocate:
            fail(error)
        case .refresh(0):
            finishClose()
        case .refresh:
            fail(error)
        case .createPermission(let peers):
            for peer in peers {
                permissions[peer] = nil
                events.append(.permissionFailed(peer, error))
            }
        case .channelBind(let number, let peer):
            channels[number] = nil
            channelByPeer[peer] = nil
            events.append(.channelBindFailed(peer: peer, error))
        }
    }

    private mutating func fail(_ error: TURNError) {
        switch state {
        case .closed, .failed: return
        default: break
        }
        state = .failed(error)
        transactions.removeAll()
        refreshAt = nil
        events.append(.failed(error))
    }

    private mutating func finishClose() {
        guard state == .closing else { return }
        state = .closed
        transactions.removeAll()
        refreshAt = nil
        expiresAt = nil
        events.append(.closed)
    }
}

/// SplitMix64 for transaction ids, so a seeded client is deterministic.
struct TURNRandom: RandomNumberGenerator, Sendable {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
