// ICE agent (RFC 8445) sans-IO core.
import Wire

/// A full ICE agent (RFC 8445, with RFC 8838 trickle and RFC 7675 consent freshness) as a sans-IO
/// state machine, one component, UDP only.
///
/// It owns no socket, clock, thread or lock. The shell feeds it datagrams (`handleDatagram`) and
/// time (`handleTimeout`), then drains `pollTransmit()` and `pollEvent()`, and sleeps until
/// `nextTimeout`. Host and relay candidates come from the shell (`addLocalCandidate`); the agent
/// gathers server-reflexive candidates itself from `addSTUNServer` addresses.
///
/// Shell loop:
/// ```
/// agent.handleTimeout(now: .now())              // and whenever nextTimeout passes
/// if !agent.handleDatagram(bytes, from: peer, to: base, now: .now()) {
///     if agent.isKnownRemote(peer) { /* DTLS / SRTP */ } else { /* drop */ }
/// }
/// while let t = agent.pollTransmit() { send t.bytes from t.source (via TURN if t.viaRelay) to t.destination }
/// while let e = agent.pollEvent() { ... }       // trickle .localCandidate, react to state and pair changes
/// ```
/// Behaviour: one check list over local host/relay bases x remote candidates of the same family,
/// RFC 8445 pair priorities, foundation freezing, Ta pacing with a triggered-check queue,
/// retransmissions, peer-reflexive candidates on both sides, symmetric response checks, 487 role
/// conflicts, regular nomination when controlling and acceptance of any USE-CANDIDATE (aggressive
/// or regular) when controlled. On the selected pair it runs RFC 7675 consent checks, which also
/// serve as the RFC 8445 keepalives (they are sent far more often than every 15 s).
public struct ICEAgent: Sendable {
    // MARK: Internal model

    struct LocalEntry: Sendable {
        var candidate: Candidate
        var address: TransportAddress
        var base: TransportAddress
        var isRelay: Bool
    }

    struct RemoteEntry: Sendable {
        var candidate: Candidate
        var address: TransportAddress
    }

    enum PairState: Sendable { case frozen, waiting, inProgress, succeeded, failed }

    struct Pair: Sendable {
        var local: Int
        var remote: Int
        var priority: UInt64 = 0
        var state: PairState = .frozen
        var foundation: String
        /// Local candidate of the valid pair this pair's check produced (mapped address).
        var validLocal: Int?
        /// Nominated (succeeded with USE-CANDIDATE in either direction).
        var nominated = false
        /// Controlled: the peer sent USE-CANDIDATE on this pair.
        var remoteNominated = false
        /// Controlling: the next check of this pair carries USE-CANDIDATE.
        var nominating = false
        var transaction: STUNTransactionID?
    }

    enum TransactionKind: Sendable {
        case check(pair: Int, useCandidate: Bool, role: ICERole, generation: Int)
        case consent
        case gather(base: TransportAddress, server: TransportAddress)
    }

    struct Transaction: Sendable {
        var kind: TransactionKind
        var bytes: [UInt8]
        var source: TransportAddress
        var destination: TransportAddress
        var viaRelay: Bool
        /// Key to verify the response's MESSAGE-INTEGRITY (nil for STUN servers).
        var key: [UInt8]?
        var sentAt: MonotonicTime
        var nextAt: MonotonicTime
        var rto: Duration
        var retransmissions = 0
    }

    struct Selected: Sendable {
        var pair: ICECandidatePair
        var localCredentials: ICECredentials
        var remoteCredentials: ICECredentials
        var priority: UInt64
    }

    struct Generator: RandomNumberGenerator, Sendable {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    // MARK: State

    public let configuration: ICEAgentConfiguration
    public private(set) var role: ICERole
    public let tieBreaker: UInt64
    public private(set) var localCredentials: ICECredentials
    /// Credentials before the last restart, still answered while the old selected pair carries media.
    private var previousLocalCredentials: ICECredentials?
    public private(set) var remoteCredentials: ICECredentials?
    public private(set) var state: ICEConnectionState = .new
    public private(set) var stats = ICEAgentStats()
    public private(set) var remoteCandidatesComplete = false

    private var generator: Generator
    private var locals: [LocalEntry] = []
    private var remotes: [RemoteEntry] = []
    private var pairs: [Pair] = []
    private var triggered: [Int] = []
    private var transactions: [STUNTransactionID: Transaction] = [:]
    private var stunServers: [TransportAddress] = []
    private var gatherQueue: [(base: TransportAddress, server: TransportAddress)] = []
    private var gatherRequested: Set<[TransportAddress]> = []
    private var srflxFoundations: [String: String] = [:]
    private var localCandidatesComplete = false
    private var gatheringCompleteSent = false
    private var generation = 0
    private var prflxCounter = 0

    private var selected: Selected?
    private var lastNow: MonotonicTime?
    private var nextPacing: MonotonicTime?
    private var checkingStartedAt: MonotonicTime?
    private var nominationDeadline: MonotonicTime?
    private var nextConsentAt: MonotonicTime?
    private var lastConsentResponse: MonotonicTime?
    private var oldestUnansweredConsent: MonotonicTime?
    private var disconnected = false
    private var failed = false
    private var closed = false

    private var transmits = OutputQueue<ICETransmit>()
    private var events = OutputQueue<ICEEvent>()

    public init(role: ICERole, localCredentials: ICECredentials, configuration: ICEAgentConfiguration = ICEAgentConfiguration()) {
        self.role = role
        self.localCredentials = localCredentials
        self.configuration = configuration
        var seedSource = SystemRandomNumberGenerator()
        var generator = Generator(state: configuration.seed ?? seedSource.next())
        let randomTieBreaker = generator.next()
        self.generator = generator
        tieBreaker = configuration.tieBreaker ?? randomTieBreaker
    }

    // MARK: Public queries

    /// The pair media flows on: set once a pair is nominated and valid, kept across an ICE restart
    /// until the new checks select another, cleared when consent is lost or the agent closes.
    public var selectedPair: ICECandidatePair? { selected?.pair }

    /// The selected pair's local base and remote address: what a media packet needs, read without
    /// copying the pair's candidates (their strings cost a retain and a release each, per packet).
    public var selectedPath: (localBase: TransportAddress, remote: TransportAddress)? {
        guard let localBase = selected?.pair.localBase, let remote = selected?.pair.remoteAddress else { return nil }
        return (localBase, remote)
    }

    /// The local candidates: the shell's host and relay candidates and the gathered server-reflexive ones.
    public var localCandidates: [Candidate] { locals.filter { $0.candidate.type != .prflx }.map(\.candidate) }

    /// The remote candidates, signalled and peer-reflexive.
    public var remoteCandidates: [Candidate] { remotes.map(\.candidate) }

    /// Remote addresses with a succeeded check in this generation: what the peer may send from
    /// (a controlling peer can switch its own sending to any of them, nominated or not).
    public var validatedRemoteAddresses: [TransportAddress] {
        pairs.filter { $0.state == .succeeded }.map { remotes[$0.remote].address }
    }

    /// `isKnownRemote`, read in place by an owner that keeps the agent in a class's stored property
    /// (see `nextTimeoutInPlace`): the call on such a property copies the whole agent first.
    public mutating func isKnownRemoteInPlace(_ address: TransportAddress) -> Bool { isKnownRemote(address) }

    /// Whether datagrams from `address` may be accepted (it is a remote candidate or the selected remote);
    /// a non-STUN datagram from anywhere else must be dropped by the caller.
    public func isKnownRemote(_ address: TransportAddress) -> Bool {
        selected?.pair.remoteAddress == address || remotes.contains { $0.address == address }
    }

    /// `nextTimeout`, for an owner that keeps the agent in a class's stored property: called as a
    /// mutating method (through `inout`), it reads the agent in place. Reading the getter on such a
    /// property copies the whole agent first (about 1 KiB, with a retain and a release of each of
    /// its arrays and strings), and an owner asks at every timer and after every non-media datagram.
    public mutating func nextTimeoutInPlace() -> MonotonicTime? { nextTimeout }

    /// When `handleTimeout` should next be called; nil when nothing is pending.
    public var nextTimeout: MonotonicTime? {
        guard !closed else { return nil }
        var earliest: MonotonicTime?
        func consider(_ time: MonotonicTime?) {
            guard let time else { return }
            if earliest == nil || time < earliest! { earliest = time }
        }
        if hasPacedWork { consider(nextPacing ?? lastNow ?? .zero) }
        for transaction in transactions.values { consider(transaction.nextAt) }
        consider(nominationDeadline)
        if selected != nil {
            consider(nextConsentAt)
            if let oldestUnansweredConsent, !disconnected { consider(oldestUnansweredConsent + configuration.disconnectedTimeout) }
            if let lastConsentResponse { consider(lastConsentResponse + configuration.consentTimeout) }
        } else if let checkingStartedAt, !failed {
            consider(checkingStartedAt + configuration.checkingTimeout)
        }
        return earliest
    }

    /// The next datagram to send, if any.
    public mutating func pollTransmit() -> ICETransmit? {
        transmits.poll()
    }

    /// The next event, if any.
    public mutating func pollEvent() -> ICEEvent? {
        events.poll()
    }

    // MARK: Local candidates

    /// Adds a host candidate (`base` is its socket address) or a relay candidate (`base` is the
    /// relayed address; transmits from it have `viaRelay` set). Other types are ignored.
    public mutating func addLocalCandidate(_ candidate: Candidate, base: TransportAddress) {
        guard !closed, candidate.type == .host || candidate.type == .relay, candidate.transport == .udp,
              let address = candidate.transportAddress,
              !locals.contains(where: { $0.address == address && $0.base == base }) else { return }
        locals.append(LocalEntry(candidate: candidate, address: address, base: base, isRelay: candidate.type == .relay))
        if candidate.type == .host {
            for server in stunServers { queueGather(base: base, server: server) }
        }
        let index = locals.count - 1
        for remote in remotes.indices { formPair(local: index, remote: remote) }
    }

    /// Adds a STUN server: the agent sends a Binding request to it from each host base of the same family.
    public mutating func addSTUNServer(_ address: TransportAddress) {
        guard !closed, !stunServers.contains(address) else { return }
        stunServers.append(address)
        for local in locals where local.candidate.type == .host { queueGather(base: local.base, server: address) }
    }

    /// No more local candidates will be added; `.gatheringComplete` follows once STUN requests end.
    public mutating func endOfLocalCandidates() {
        localCandidatesComplete = true
        checkGatheringComplete()
    }

    private mutating func queueGather(base: TransportAddress, server: TransportAddress) {
        guard base.ip.isIPv4 == server.ip.isIPv4, gatherRequested.insert([base, server]).inserted else { return }
        gatherQueue.append((base, server))
    }

    private mutating func checkGatheringComplete() {
        guard localCandidatesComplete, !gatheringCompleteSent, gatherQueue.isEmpty,
              !transactions.values.contains(where: { if case .gather = $0.kind { true } else { false } }) else { return }
        gatheringCompleteSent = true
        events.append(.gatheringComplete)
    }

    // MARK: Remote side

    /// Sets the peer's credentials (from its description). Different credentials than before mean
    /// the peer restarted ICE: remote candidates and checks start over.
    public mutating func setRemoteCredentials(ufrag: String, pwd: String) {
        let credentials = ICECredentials(ufrag: ufrag, pwd: pwd)
        guard !closed, credentials != remoteCredentials else { return }
        if remoteCredentials != nil { resetChecks() }
        remoteCredentials = credentials
        if !pairs.isEmpty, state == .new || state == .failed { markChecking() }
    }

    /// Adds a signalled remote candidate (any time, before or after credentials). Hostname (mDNS)
    /// and non-UDP candidates are dropped and counted: the shell resolves `.local` names first.
    public mutating func addRemoteCandidate(_ candidate: Candidate) {
        guard !closed else { return }
        guard candidate.transport == .udp, let address = candidate.transportAddress, candidate.component == 1,
              remotes.count < configuration.maximumRemoteCandidates else {
            stats.droppedRemoteCandidates += 1
            return
        }
        if let existing = remotes.firstIndex(where: { $0.address == address }) {
            // A signalled candidate replaces a peer-reflexive one learned earlier (RFC 8838 section 11):
            // its type, foundation and priority apply; the pair's check state stays.
            if remotes[existing].candidate.type == .prflx {
                remotes[existing].candidate = candidate
                for index in pairs.indices where pairs[index].remote == existing {
                    pairs[index].foundation = locals[pairs[index].local].candidate.foundation + ":" + candidate.foundation
                    pairs[index].priority = pairPriority(local: pairs[index].local, remote: existing)
                }
            }
            return
        }
        remotes.append(RemoteEntry(candidate: candidate, address: address))
        let index = remotes.count - 1
        for local in locals.indices { formPair(local: local, remote: index) }
        if remoteCredentials != nil, !pairs.isEmpty, state == .new { markChecking() }
    }

    /// The peer will signal no more candidates (RFC 8838): once every pair failed (and
    /// `endOfLocalCandidates()` was called), the agent fails without waiting for `checkingTimeout`.
    public mutating func endOfRemoteCandidates() {
        remoteCandidatesComplete = true
    }

    // MARK: Restart and close

    /// ICE restart (RFC 8445 section 9): new local credentials, remote credentials and candidates
    /// to be set again, checks start over. The selected pair stays in use (and keeps its consent
    /// checks with the old credentials) until the new checks select a pair.
    public mutating func restart(newLocalCredentials: ICECredentials) {
        guard !closed else { return }
        previousLocalCredentials = localCredentials
        localCredentials = newLocalCredentials
        resetChecks()
        remoteCredentials = nil
    }

    private mutating func resetChecks() {
        generation += 1
        remotes.removeAll()
        pairs.removeAll()
        triggered.removeAll()
        transactions = transactions.filter { if case .check = $0.value.kind { false } else { true } }
        locals.removeAll { $0.candidate.type == .prflx }
        remoteCandidatesComplete = false
        nominationDeadline = nil
        checkingStartedAt = nil
        failed = false
        updateState()
    }

    /// Stops the agent: no more transmits, timeouts or state changes after `.closed`.
    public mutating func close() {
        guard !closed else { return }
        closed = true
        transactions.removeAll()
        triggered.removeAll()
        gatherQueue.removeAll()
        selected = nil
        setState(.closed)
    }

    // MARK: Pairs

    /// RFC 8445 section 6.1.2.3: 2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0), with G the
    /// controlling agent's candidate priority and D the controlled agent's. Priorities are clamped
    /// to RFC 8445's 2^31 - 1, so a peer's out-of-range PRIORITY cannot overflow the formula.
    public static func pairPriority(controlling: UInt32, controlled: UInt32) -> UInt64 {
        let g = UInt64(min(controlling, 0x7FFF_FFFF)), d = UInt64(min(controlled, 0x7FFF_FFFF))
        return (1 << 32) * min(g, d) + 2 * max(g, d) + (g > d ? 1 : 0)
    }

    private func pairPriority(local: Int, remote: Int) -> UInt64 {
        let localPriority = locals[local].candidate.priority, remotePriority = remotes[remote].candidate.priority
        return role == .controlling
            ? Self.pairPriority(controlling: localPriority, controlled: remotePriority)
            : Self.pairPriority(controlling: remotePriority, controlled: localPriority)
    }

    @discardableResult
    private mutating func formPair(local: Int, remote: Int) -> Int? {
        let localEntry = locals[local], remoteEntry = remotes[remote]
        guard localEntry.candidate.type == .host || localEntry.candidate.type == .relay,
              localEntry.address.ip.isIPv4 == remoteEntry.address.ip.isIPv4,
              localEntry.candidate.component == remoteEntry.candidate.component else { return nil }
        // Pairs with the same base and remote address are redundant (RFC 8445 section 6.1.2.4).
        if let existing = pairs.firstIndex(where: { locals[$0.local].base == localEntry.base && $0.remote == remote }) {
            return existing
        }
        guard pairs.count < configuration.maximumPairs else { return nil }
        var pair = Pair(local: local, remote: remote, foundation: localEntry.candidate.foundation + ":" + remoteEntry.candidate.foundation)
        pair.priority = pairPriority(local: local, remote: remote)
        let foundationBusy = pairs.contains { $0.foundation == pair.foundation && ($0.state == .waiting || $0.state == .inProgress) }
        pair.state = foundationBusy ? .frozen : .waiting
        pairs.append(pair)
        return pairs.count - 1
    }

    private mutating func recomputePriorities() {
        for index in pairs.indices { pairs[index].priority = pairPriority(local: pairs[index].local, remote: pairs[index].remote) }
    }

    private var hasPacedWork: Bool {
        guard !closed else { return false }
        if !gatherQueue.isEmpty { return true }
        guard remoteCredentials != nil, !failed else { return false }
        return !triggered.isEmpty || pairs.contains { $0.state == .waiting || $0.state == .frozen }
    }

    private mutating func markChecking() {
        if checkingStartedAt == nil, let lastNow { checkingStartedAt = lastNow }
        updateState()
    }

    // MARK: Time

    /// Runs everything due at `now`: paced checks and gathering, retransmissions, nomination,
    /// consent freshness and failure timers.
    public mutating func handleTimeout(now: MonotonicTime) {
        guard !closed else { return }
        lastNow = now
        if checkingStartedAt == nil, remoteCredentials != nil, !pairs.isEmpty { checkingStartedAt = now }

        // Retransmissions and transaction timeouts.
        for id in transactions.keys.sorted(by: { transactions[$0]!.nextAt < transactions[$1]!.nextAt }) {
            guard var transaction = transactions[id], transaction.nextAt <= now else { continue }
            if transaction.retransmissions >= configuration.maximumRetransmissions {
                transactions[id] = nil
                stats.transactionTimeouts += 1
                transactionTimedOut(transaction)
                continue
            }
            transaction.retransmissions += 1
            transaction.rto = min(transaction.rto * 2, configuration.maximumRTO)
            transaction.nextAt = now + transaction.rto
            transactions[id] = transaction
            stats.retransmissions += 1
            send(transaction.bytes, from: transaction.source, to: transaction.destination, viaRelay: transaction.viaRelay)
        }

        // One paced request per Ta.
        if hasPacedWork, nextPacing.map({ $0 <= now }) ?? true {
            if sendPacedRequest(now: now) { nextPacing = now + configuration.ta } else { nextPacing = nil }
        }

        if let deadline = nominationDeadline, deadline <= now { nominateIfReady(now: now, force: true) }

        // Consent freshness on the selected pair.
        if let current = selected {
            if let lastConsentResponse, now - lastConsentResponse >= configuration.consentTimeout {
                selected = nil
                failed = true
                transactions = transactions.filter { if case .consent = $0.value.kind { false } else { true } }
                events.append(.consentLost)
                updateState()
                return
            }
            if let oldestUnansweredConsent, !disconnected, now - oldestUnansweredConsent >= configuration.disconnectedTimeout {
                disconnected = true
                updateState()
            }
            if let nextConsentAt, nextConsentAt <= now {
                sendConsent(current, now: now)
            }
        }

        if selected == nil, !failed, let checkingStartedAt {
            let allDone = !pairs.contains { $0.state != .failed && $0.state != .succeeded } && triggered.isEmpty
            let anyValid = pairs.contains { $0.state == .succeeded }
            let timedOut = now - checkingStartedAt >= configuration.checkingTimeout
            if !anyValid && (allDone && remoteCandidatesComplete && localCandidatesComplete || timedOut) {
                failed = true
                transactions = transactions.filter { if case .check = $0.value.kind { false } else { true } }
                updateState()
            }
        }
        updateState()
    }

    /// Sends one gathering request, triggered check or ordinary check. Returns whether it sent.
    private mutating func sendPacedRequest(now: MonotonicTime) -> Bool {
        if !gatherQueue.isEmpty {
            let (base, server) = gatherQueue.removeFirst()
            let id = STUNTransactionID.random(using: &generator)
            let bytes = STUNMessage(type: .bindingRequest, transactionID: id).encoded(fingerprint: true)
            startTransaction(id, kind: .gather(base: base, server: server), bytes: bytes, source: base, destination: server,
                             viaRelay: false, key: nil, now: now)
            return true
        }
        guard remoteCredentials != nil, !failed else { return false }
        while !triggered.isEmpty {
            let index = triggered.removeFirst()
            guard pairs.indices.contains(index) else { continue }
            let pairState = pairs[index].state
            guard pairs[index].nominating || pairState != .inProgress && pairState != .succeeded else { continue }
            sendCheck(pair: index, now: now)
            return true
        }
        let waiting = pairs.indices.filter { pairs[$0].state == .waiting }.max { pairs[$0].priority < pairs[$1].priority }
        if let index = waiting ?? pairs.indices.filter({ pairs[$0].state == .frozen }).max(by: { pairs[$0].priority < pairs[$1].priority }) {
            sendCheck(pair: index, now: now)
            return true
        }
        return false
    }

    private mutating func sendCheck(pair index: Int, now: MonotonicTime) {
        guard let remoteCredentials else { return }
        if let old = pairs[index].transaction { transactions[old] = nil }
        let local = locals[pairs[index].local], remote = remotes[pairs[index].remote]
        let useCandidate = role == .controlling && pairs[index].nominating
        let id = STUNTransactionID.random(using: &generator)
        let bytes = checkRequest(id: id, localCredentials: localCredentials, remoteCredentials: remoteCredentials,
                                 localPriority: local.candidate.priority, useCandidate: useCandidate)
        pairs[index].state = .inProgress
        pairs[index].transaction = id
        startTransaction(id, kind: .check(pair: index, useCandidate: useCandidate, role: role, generation: generation),
                         bytes: bytes, source: local.base, destination: remote.address, viaRelay: local.isRelay,
                         key: Array(remoteCredentials.pwd.utf8), now: now)
    }

    private func checkRequest(id: STUNTransactionID, localCredentials: ICECredentials, remoteCredentials: ICECredentials,
                              localPriority: UInt32, useCandidate: Bool) -> [UInt8] {
        var attributes: [STUNAttribute] = [
            .username(remoteCredentials.ufrag + ":" + localCredentials.ufrag),
            .priority(CandidateType.prflx.preference << 24 | localPriority & 0x00FF_FFFF),
            role == .controlling ? .iceControlling(tieBreaker: tieBreaker) : .iceControlled(tieBreaker: tieBreaker),
        ]
        if useCandidate { attributes.append(.useCandidate) }
        return STUNMessage(type: .bindingRequest, transactionID: id, attributes: attributes)
            .encoded(integrity: .sha1(key: Array(remoteCredentials.pwd.utf8)), fingerprint: true)
    }

    private mutating func sendConsent(_ current: Selected, now: MonotonicTime) {
        let id = STUNTransactionID.random(using: &generator)
        let bytes = checkRequest(id: id, localCredentials: current.localCredentials, remoteCredentials: current.remoteCredentials,
                                 localPriority: current.pair.local.priority, useCandidate: false)
        startTransaction(id, kind: .consent, bytes: bytes, source: current.pair.localBase, destination: current.pair.remoteAddress,
                         viaRelay: current.pair.viaRelay, key: Array(current.remoteCredentials.pwd.utf8), now: now)
        if oldestUnansweredConsent == nil { oldestUnansweredConsent = now }
        scheduleConsent(now: now)
    }

    private mutating func scheduleConsent(now: MonotonicTime) {
        let factor = 0.8 + 0.4 * Double(generator.next() >> 11) / Double(1 << 53)
        nextConsentAt = now + configuration.consentInterval * factor
    }

    private mutating func startTransaction(_ id: STUNTransactionID, kind: TransactionKind, bytes: [UInt8], source: TransportAddress,
                                           destination: TransportAddress, viaRelay: Bool, key: [UInt8]?, now: MonotonicTime) {
        transactions[id] = Transaction(kind: kind, bytes: bytes, source: source, destination: destination, viaRelay: viaRelay,
                                       key: key, sentAt: now, nextAt: now + configuration.initialRTO, rto: configuration.initialRTO)
        stats.requestsSent += 1
        send(bytes, from: source, to: destination, viaRelay: viaRelay)
    }

    private mutating func send(_ bytes: [UInt8], from source: TransportAddress, to destination: TransportAddress, viaRelay: Bool) {
        stats.bytesSent += bytes.count
        transmits.append(ICETransmit(bytes: bytes, source: source, destination: destination, viaRelay: viaRelay))
    }

    private mutating func transactionTimedOut(_ transaction: Transaction) {
        switch transaction.kind {
        case .check(let index, _, _, let checkGeneration):
            guard checkGeneration == generation, pairs.indices.contains(index) else { return }
            pairs[index].state = .failed
            pairs[index].nominating = false
            pairs[index].transaction = nil
            if role == .controlling, selected == nil || selectedIsStale { nominationDeadline = lastNow }
        case .consent:
            break
        case .gather:
            checkGatheringComplete()
        }
    }

    /// After a restart, the selected pair belongs to the old generation until a new one is selected.
    private var selectedIsStale: Bool {
        guard let selected else { return false }
        return selected.localCredentials != localCredentials || selected.remoteCredentials != remoteCredentials
    }

    // MARK: Nomination and selection

    /// Controlling: nominates the best valid pair once no better pair is still pending, or at the deadline.
    private mutating func nominateIfReady(now: MonotonicTime, force: Bool) {
        guard role == .controlling, selected == nil || selectedIsStale,
              !pairs.contains(where: { $0.nominating && $0.state != .failed }) else {
            nominationDeadline = nil
            return
        }
        let valid = pairs.indices.filter { pairs[$0].state == .succeeded }
        guard let best = valid.max(by: { pairs[$0].priority < pairs[$1].priority }) else { return }
        let betterPending = pairs.contains { ($0.state == .waiting || $0.state == .frozen || $0.state == .inProgress) && $0.priority > pairs[best].priority }
        guard force || !betterPending else { return }
        nominationDeadline = nil
        pairs[best].nominating = true
        triggered.removeAll { $0 == best }
        triggered.insert(best, at: 0)
    }

    private mutating func select(pair index: Int) {
        guard let remoteCredentials else { return }
        let pair = pairs[index]
        let local = locals[pair.validLocal ?? pair.local], base = locals[pair.local]
        let candidatePair = ICECandidatePair(local: local.candidate, remote: remotes[pair.remote].candidate,
                                             localBase: base.base, remoteAddress: remotes[pair.remote].address, viaRelay: base.isRelay)
        if let selected, !selectedIsStale, selected.pair == candidatePair { return }
        if let selected, !selectedIsStale, role == .controlled, selected.priority > pair.priority { return }
        let now = lastNow ?? .zero
        let wasStale = selectedIsStale
        selected = Selected(pair: candidatePair, localCredentials: localCredentials, remoteCredentials: remoteCredentials, priority: pair.priority)
        if wasStale {
            previousLocalCredentials = nil
            transactions = transactions.filter { if case .consent = $0.value.kind { false } else { true } }
        }
        lastConsentResponse = now
        oldestUnansweredConsent = nil
        disconnected = false
        scheduleConsent(now: now)
        events.append(.selectedPairChanged(candidatePair))
        updateState()
    }

    // MARK: State

    private mutating func updateState() {
        guard !closed else { return }
        let next: ICEConnectionState
        if failed {
            next = .failed
        } else if selected != nil {
            if disconnected {
                next = .disconnected
            } else {
                let checksDone = !pairs.contains { $0.state != .failed && $0.state != .succeeded } && triggered.isEmpty
                next = checksDone && remoteCandidatesComplete && !selectedIsStale ? .completed : .connected
            }
        } else if remoteCredentials != nil && !pairs.isEmpty || checkingStartedAt != nil {
            next = .checking
        } else {
            next = state == .new ? .new : .checking
        }
        // Browsers pass through connected on the way to completed.
        if next == .completed, state != .connected { setState(.connected) }
        setState(next)
    }

    private mutating func setState(_ next: ICEConnectionState) {
        guard next != state else { return }
        state = next
        events.append(.stateChanged(next))
    }

    private mutating func switchRole() {
        role = role.flipped
        stats.roleSwitches += 1
        recomputePriorities()
        if role == .controlled { for index in pairs.indices { pairs[index].nominating = false } }
        if role == .controlling, pairs.contains(where: { $0.state == .succeeded }) { nominationDeadline = lastNow }
        events.append(.roleChanged(role))
    }

    // MARK: Datagrams

    /// Offers a received datagram. Returns true when it was a STUN Binding message for ICE (consumed,
    /// whether accepted or dropped); false for anything else, which the caller passes on (DTLS, RTP)
    /// only if `isKnownRemote(source)`.
    public mutating func handleDatagram(_ bytes: [UInt8], from source: TransportAddress, to localBase: TransportAddress, now: MonotonicTime) -> Bool {
        guard !closed else { return false }
        let looksLikeSTUN = bytes.count >= 20 && bytes[0] < 4 && bytes[4] == 0x21 && bytes[5] == 0x12 && bytes[6] == 0xA4 && bytes[7] == 0x42
        guard looksLikeSTUN else { return false }
        lastNow = now
        let message: STUNMessage
        do {
            message = try STUNMessage(decoding: bytes)
        } catch {
            stats.bytesReceived += bytes.count
            stats.malformedDrops += 1
            return true
        }
        guard message.type.method == .binding else { return false }
        stats.bytesReceived += bytes.count
        switch message.type.messageClass {
        case .request:
            handleRequest(message, raw: bytes, from: source, to: localBase, now: now)
        case .successResponse, .errorResponse:
            handleResponse(message, raw: bytes, from: source, to: localBase, now: now)
        case .indication:
            break
        }
        updateState()
        return true
    }

    private mutating func respond(_ message: STUNMessage, key: [UInt8]?, from localBase: TransportAddress, to destination: TransportAddress) {
        let bytes = message.encoded(integrity: key.map { .sha1(key: $0) }, fingerprint: true)
        if message.type.messageClass == .errorResponse { stats.errorResponsesSent += 1 } else { stats.successResponsesSent += 1 }
        send(bytes, from: localBase, to: destination, viaRelay: locals.contains { $0.base == localBase && $0.isRelay })
    }

    private mutating func respondError(to request: STUNMessage, code: Int, reason: String, extra: [STUNAttribute] = [],
                                       key: [UInt8]?, from localBase: TransportAddress, to destination: TransportAddress) {
        let response = STUNMessage(type: .bindingError, transactionID: request.transactionID,
                                   attributes: [.errorCode(code: code, reason: reason)] + extra)
        respond(response, key: key, from: localBase, to: destination)
    }

    private mutating func handleRequest(_ message: STUNMessage, raw: [UInt8], from source: TransportAddress, to localBase: TransportAddress, now: MonotonicTime) {
        stats.requestsReceived += 1
        guard message.hasFingerprint else {
            stats.missingFingerprintDrops += 1
            return
        }
        // Authentication (RFC 8445 section 7.3, RFC 8489 section 9.1.3).
        guard let username = message.username, message.integrityOffset != nil else {
            stats.badUsernameDrops += 1
            respondError(to: message, code: 400, reason: "Bad Request", key: nil, from: localBase, to: source)
            return
        }
        let parts = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let credentials: ICECredentials
        if parts.count == 2, parts[0] == localCredentials.ufrag {
            credentials = localCredentials
        } else if parts.count == 2, let previous = previousLocalCredentials, parts[0] == previous.ufrag {
            credentials = previous
        } else {
            stats.badUsernameDrops += 1
            respondError(to: message, code: 401, reason: "Unauthenticated", key: nil, from: localBase, to: source)
            return
        }
        let key = Array(credentials.pwd.utf8)
        guard message.verifyIntegrity(of: raw, key: key) else {
            stats.badIntegrityDrops += 1
            respondError(to: message, code: 401, reason: "Unauthenticated", key: nil, from: localBase, to: source)
            return
        }
        let unknown = message.unknownComprehensionRequired
        guard unknown.isEmpty else {
            stats.unknownAttributeRejections += 1
            respondError(to: message, code: 420, reason: "Unknown Attribute", extra: [.unknownAttributes(unknown)],
                         key: key, from: localBase, to: source)
            return
        }
        let isCurrent = credentials == localCredentials
        if isCurrent, let remoteCredentials, parts[1] != remoteCredentials.ufrag {
            stats.badUsernameDrops += 1
            respondError(to: message, code: 401, reason: "Unauthenticated", key: nil, from: localBase, to: source)
            return
        }

        // Role conflict (RFC 8445 section 7.3.1.1).
        if isCurrent {
            if role == .controlling, let theirs = message.iceControlling {
                stats.roleConflictsReceived += 1
                if tieBreaker >= theirs {
                    stats.roleConflictsSent += 1
                    respondError(to: message, code: 487, reason: "Role Conflict", key: key, from: localBase, to: source)
                    return
                }
                switchRole()
            } else if role == .controlled, let theirs = message.iceControlled {
                stats.roleConflictsReceived += 1
                if tieBreaker >= theirs {
                    switchRole()
                } else {
                    stats.roleConflictsSent += 1
                    respondError(to: message, code: 487, reason: "Role Conflict", key: key, from: localBase, to: source)
                    return
                }
            }
        }

        let response = STUNMessage(type: .bindingSuccess, transactionID: message.transactionID, attributes: [.xorMappedAddress(source)])
        respond(response, key: key, from: localBase, to: source)
        guard isCurrent else { return }
        // Learn a peer-reflexive remote candidate (RFC 8445 section 7.3.1.3).
        guard let localIndex = locals.firstIndex(where: { $0.base == localBase && ($0.candidate.type == .host || $0.candidate.type == .relay) }) else { return }
        var remoteIndex = remotes.firstIndex { $0.address == source }
        if remoteIndex == nil {
            guard remotes.count < configuration.maximumRemoteCandidates, let priority = message.priority else { return }
            prflxCounter += 1
            let candidate = Candidate(foundation: "prflx\(prflxCounter)", component: locals[localIndex].candidate.component,
                                      priority: priority, address: .ip(source.ip), port: source.port, type: .prflx)
            remotes.append(RemoteEntry(candidate: candidate, address: source))
            remoteIndex = remotes.count - 1
        }
        guard let remoteIndex, let pairIndex = formPair(local: localIndex, remote: remoteIndex) else { return }
        if checkingStartedAt == nil, remoteCredentials != nil { checkingStartedAt = now }

        // Triggered check (RFC 8445 section 7.3.1.4).
        switch pairs[pairIndex].state {
        case .succeeded, .inProgress:
            break
        case .frozen, .waiting, .failed:
            pairs[pairIndex].state = .waiting
            if !triggered.contains(pairIndex) { triggered.append(pairIndex) }
        }

        // Nomination from the controlling peer (RFC 8445 section 7.3.1.5).
        if role == .controlled, message.useCandidate {
            pairs[pairIndex].remoteNominated = true
            if pairs[pairIndex].state == .succeeded {
                pairs[pairIndex].nominated = true
                select(pair: pairIndex)
            }
        }
    }

    private mutating func handleResponse(_ message: STUNMessage, raw: [UInt8], from source: TransportAddress, to localBase: TransportAddress, now: MonotonicTime) {
        guard let transaction = transactions[message.transactionID] else {
            stats.unknownTransactionDrops += 1
            return
        }
        if let key = transaction.key {
            // ICE responses carry FINGERPRINT (RFC 8445 section 7.2.2); STUN servers' need not.
            guard message.hasFingerprint else {
                stats.missingFingerprintDrops += 1
                return
            }
            guard message.verifyIntegrity(of: raw, key: key) else {
                stats.badIntegrityDrops += 1
                return
            }
        }
        transactions[message.transactionID] = nil
        let isSuccess = message.type.messageClass == .successResponse
        if isSuccess { stats.successResponsesReceived += 1 } else { stats.errorResponsesReceived += 1 }
        let symmetric = source == transaction.destination && localBase == transaction.source
        if !symmetric { stats.asymmetricResponses += 1 }

        switch transaction.kind {
        case .gather(let base, let server):
            if isSuccess, symmetric, let mapped = message.xorMappedAddress ?? message.mappedAddress {
                addServerReflexive(mapped: mapped, base: base, server: server)
            }
            checkGatheringComplete()

        case .consent:
            guard isSuccess, symmetric, let current = selected,
                  current.pair.localBase == transaction.source, current.pair.remoteAddress == transaction.destination else { return }
            lastConsentResponse = now
            oldestUnansweredConsent = nil
            if disconnected {
                disconnected = false
            }

        case .check(let index, let useCandidate, let sentRole, let checkGeneration):
            guard checkGeneration == generation, pairs.indices.contains(index) else { return }
            pairs[index].transaction = nil
            guard symmetric else {
                pairs[index].state = .failed
                return
            }
            if !isSuccess {
                if message.errorCode?.code == 487 {
                    if sentRole == role { switchRole() }
                    pairs[index].state = .waiting
                    if !triggered.contains(index) { triggered.append(index) }
                } else {
                    pairs[index].state = .failed
                    pairs[index].nominating = false
                }
                return
            }
            checkSucceeded(pair: index, mapped: message.xorMappedAddress, useCandidate: useCandidate, now: now)
        }
    }

    private mutating func addServerReflexive(mapped: TransportAddress, base: TransportAddress, server: TransportAddress) {
        guard !locals.contains(where: { $0.address == mapped }),
              let host = locals.first(where: { $0.base == base && $0.candidate.type == .host }) else { return }
        let key = "\(base.ip)|\(server)"
        let foundation: String
        if let known = srflxFoundations[key] {
            foundation = known
        } else {
            foundation = "s\(srflxFoundations.count + 1)"
            srflxFoundations[key] = foundation
        }
        let localPreference = UInt16(truncatingIfNeeded: host.candidate.priority >> 8)
        let candidate = Candidate(foundation: foundation, component: host.candidate.component,
                                  priority: Candidate.priority(type: .srflx, localPreference: localPreference, component: host.candidate.component),
                                  address: .ip(mapped.ip), port: mapped.port, type: .srflx,
                                  relatedAddress: .ip(base.ip), relatedPort: base.port)
        locals.append(LocalEntry(candidate: candidate, address: mapped, base: base, isRelay: false))
        events.append(.localCandidate(candidate))
    }

    private mutating func checkSucceeded(pair index: Int, mapped: TransportAddress?, useCandidate: Bool, now: MonotonicTime) {
        let base = locals[pairs[index].local].base
        // The valid pair's local candidate is the one whose address is the mapped address (RFC 8445 section 7.2.5.3.2).
        if let mapped {
            if let known = locals.firstIndex(where: { $0.address == mapped && $0.base == base }) {
                pairs[index].validLocal = known
            } else {
                let host = locals[pairs[index].local]
                prflxCounter += 1
                let candidate = Candidate(foundation: "lprflx\(prflxCounter)", component: host.candidate.component,
                                          priority: CandidateType.prflx.preference << 24 | host.candidate.priority & 0x00FF_FFFF,
                                          address: .ip(mapped.ip), port: mapped.port, type: .prflx,
                                          relatedAddress: .ip(base.ip), relatedPort: base.port)
                locals.append(LocalEntry(candidate: candidate, address: mapped, base: base, isRelay: host.isRelay))
                pairs[index].validLocal = locals.count - 1
            }
        }
        pairs[index].state = .succeeded
        // Unfreeze pairs of the same foundation (RFC 8445 section 7.2.5.3.3).
        let foundation = pairs[index].foundation
        for other in pairs.indices where pairs[other].foundation == foundation && pairs[other].state == .frozen {
            pairs[other].state = .waiting
        }
        switch role {
        case .controlling:
            if useCandidate {
                pairs[index].nominated = true
                pairs[index].nominating = false
                select(pair: index)
            } else if selected == nil || selectedIsStale {
                if nominationDeadline == nil { nominationDeadline = now + configuration.nominationDelay }
                nominateIfReady(now: now, force: false)
            }
        case .controlled:
            if pairs[index].remoteNominated {
                pairs[index].nominated = true
                select(pair: index)
            }
        }
    }
}
