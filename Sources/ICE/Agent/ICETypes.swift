import Wire

/// Which side of the ICE session decides the selected pair (RFC 8445 section 2.3).
public enum ICERole: Sendable, Hashable, CustomStringConvertible {
    case controlling, controlled

    public var flipped: ICERole { self == .controlling ? .controlled : .controlling }
    public var description: String { self == .controlling ? "controlling" : "controlled" }
}

/// An ICE username fragment and password (RFC 8445 section 5.3, RFC 8839 section 5.4).
public struct ICECredentials: Sendable, Hashable {
    public var ufrag: String
    public var pwd: String

    public init(ufrag: String, pwd: String) {
        self.ufrag = ufrag
        self.pwd = pwd
    }

    static let iceChars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    /// Random credentials of ice-chars: `ufragLength` (at least 4) and `pwdLength` (at least 22) characters.
    public static func random(using generator: inout some RandomNumberGenerator, ufragLength: Int = 8, pwdLength: Int = 24) -> ICECredentials {
        func draw(_ count: Int) -> String {
            String((0..<count).map { _ in iceChars[Int(generator.next() % UInt64(iceChars.count))] })
        }
        return ICECredentials(ufrag: draw(max(4, ufragLength)), pwd: draw(max(22, pwdLength)))
    }

    /// Random credentials from the system generator.
    public static func random() -> ICECredentials {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// Whether the lengths and characters are what RFC 8839 requires (ufrag 4...256, pwd 22...256 ice-chars).
    public var isValid: Bool {
        let allowed = Set(Self.iceChars)
        return (4...256).contains(ufrag.count) && (22...256).contains(pwd.count)
            && ufrag.allSatisfy(allowed.contains) && pwd.allSatisfy(allowed.contains)
    }
}

/// Tunables of an `ICEAgent`. Defaults follow RFC 8445 / RFC 7675 and what browsers do.
public struct ICEAgentConfiguration: Sendable {
    /// Pacing interval between new connectivity checks and gathering requests (RFC 8445 Ta).
    public var ta: Duration = .milliseconds(50)
    /// First retransmission timeout of a check or gathering request.
    public var initialRTO: Duration = .milliseconds(250)
    /// Ceiling of the doubling retransmission timeout.
    public var maximumRTO: Duration = .seconds(3)
    /// Retransmissions after the first transmission before a transaction times out.
    public var maximumRetransmissions = 7
    /// Mean interval of consent freshness requests on the selected pair (RFC 7675), randomised by 0.8...1.2.
    public var consentInterval: Duration = .seconds(5)
    /// Without any consent response for this long, consent is lost (RFC 7675: 30 s).
    public var consentTimeout: Duration = .seconds(30)
    /// A consent request unanswered for this long makes the state `disconnected`.
    public var disconnectedTimeout: Duration = .seconds(5)
    /// Controlling agent: delay after the first successful check before nominating the best valid pair
    /// (sooner when no better pair is still being checked).
    public var nominationDelay: Duration = .milliseconds(200)
    /// Without end-of-candidates, the agent fails this long after checks started if no pair works.
    public var checkingTimeout: Duration = .seconds(30)
    /// Upper bound on candidate pairs (RFC 8445 section 6.1.2.5 suggests 100).
    public var maximumPairs = 100
    /// Upper bound on remote candidates kept.
    public var maximumRemoteCandidates = 64
    /// Tie-breaker for role conflicts; random when nil.
    public var tieBreaker: UInt64?
    /// Seed of the agent's generator (transaction ids, tie-breaker, jitter); system random when nil.
    public var seed: UInt64?

    public init() {}
}

/// ICE connection state, as `RTCIceConnectionState` reports it.
public enum ICEConnectionState: String, Sendable, Hashable {
    case new, checking, connected, completed, failed, disconnected, closed
}

/// A candidate pair the agent uses or reports.
public struct ICECandidatePair: Sendable, Hashable, CustomStringConvertible {
    /// The local candidate of the valid pair (a host, server-reflexive, peer-reflexive or relay candidate).
    public var local: Candidate
    /// The remote candidate (signalled or peer-reflexive).
    public var remote: Candidate
    /// The local base to send from (a socket address, or a relayed address for relay candidates).
    public var localBase: TransportAddress
    /// The remote transport address to send to.
    public var remoteAddress: TransportAddress
    /// Whether the local base is a TURN relayed address: the shell sends through its TURN client.
    public var viaRelay: Bool

    public var description: String { "\(local.type.rawValue) \(localBase) -> \(remote.type.rawValue) \(remoteAddress)" }
}

/// A datagram the agent wants sent.
public struct ICETransmit: Sendable, Equatable {
    public var bytes: [UInt8]
    /// The local base to send from.
    public var source: TransportAddress
    public var destination: TransportAddress
    /// True when `source` is a relayed address: send through the TURN allocation.
    public var viaRelay: Bool
}

/// Something the shell should know about.
public enum ICEEvent: Sendable, Equatable {
    /// A candidate the agent gathered itself (server-reflexive): signal it to the peer.
    case localCandidate(Candidate)
    /// Gathering finished (after `endOfLocalCandidates()` and all STUN server requests ended).
    case gatheringComplete
    case stateChanged(ICEConnectionState)
    case selectedPairChanged(ICECandidatePair)
    /// No consent response for `consentTimeout`: stop sending media (RFC 7675).
    case consentLost
    case roleChanged(ICERole)
}

/// Counters of an `ICEAgent`.
public struct ICEAgentStats: Sendable, Equatable {
    public var requestsReceived = 0
    public var successResponsesSent = 0
    public var errorResponsesSent = 0
    public var requestsSent = 0
    public var retransmissions = 0
    public var successResponsesReceived = 0
    public var errorResponsesReceived = 0
    public var transactionTimeouts = 0
    /// STUN datagrams that did not decode.
    public var malformedDrops = 0
    /// Requests or responses whose MESSAGE-INTEGRITY was missing or wrong.
    public var badIntegrityDrops = 0
    /// Requests whose USERNAME was missing or not ours.
    public var badUsernameDrops = 0
    /// Responses to transactions we never sent (or already finished).
    public var unknownTransactionDrops = 0
    /// ICE requests and responses without FINGERPRINT.
    public var missingFingerprintDrops = 0
    /// Responses that came from another address than the request went to.
    public var asymmetricResponses = 0
    public var roleConflictsSent = 0
    public var roleConflictsReceived = 0
    public var roleSwitches = 0
    public var unknownAttributeRejections = 0
    /// Remote candidates dropped: unresolved hostnames (mDNS), non-UDP transports, wrong component or limits.
    public var droppedRemoteCandidates = 0
    public var bytesSent = 0
    public var bytesReceived = 0
}
