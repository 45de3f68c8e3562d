/// Which side of the DTLS handshake this endpoint plays.
public enum DTLSRole: Sendable, Equatable {
    case client
    case server
}

/// The SDP `a=setup` attribute (RFC 4145, RFC 5763).
public enum DTLSSetup: String, Sendable, Equatable, CaseIterable {
    case actpass
    case active
    case passive
    case holdconn
}

/// An `a=setup` combination that does not define a DTLS role.
public enum DTLSSetupError: Error, Equatable, Sendable {
    /// The offer used `holdconn`, which asks for no connection.
    case offerHoldsConnection
    /// The answer must be `active` or `passive`; it was this.
    case invalidAnswer(DTLSSetup)
}

extension DTLSRole {
    /// The `a=setup` an offerer sends: always `actpass` (RFC 5763 section 5).
    public static let offerSetup = DTLSSetup.actpass

    /// The answerer's role and the `a=setup` value for its answer, given the offer's value.
    /// For `actpass` the answerer takes `active` (DTLS client), as RFC 8842 recommends.
    public static func forAnswerer(offerSetup: DTLSSetup) throws(DTLSSetupError) -> (role: DTLSRole, answerSetup: DTLSSetup) {
        switch offerSetup {
        case .actpass, .passive: (.client, .active)
        case .active: (.server, .passive)
        case .holdconn: throw .offerHoldsConnection
        }
    }

    /// The offerer's role once the answer's `a=setup` is known.
    public static func forOfferer(answerSetup: DTLSSetup) throws(DTLSSetupError) -> DTLSRole {
        switch answerSetup {
        case .active: .server
        case .passive: .client
        case .actpass, .holdconn: throw .invalidAnswer(answerSetup)
        }
    }
}
