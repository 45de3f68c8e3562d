/// One `a=` line: the name before the first colon and the raw text after it (nil when the line
/// has no colon). The value is kept byte for byte, including any leading space.
public struct SDPAttribute: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    /// An attribute carrying a typed value (`a=rtpmap:...`, `a=fingerprint:...`, ...).
    public init<Value: SDPAttributeValue>(_ value: Value) {
        self.name = Value.attributeName
        self.value = value.attributeValue
    }

    /// The text after `a=`.
    public var text: String {
        if let value { return name + ":" + value }
        return name
    }
}

/// A line of a type this codec does not interpret (kept and re-emitted at the end of its section).
public struct SDPLine: Sendable, Equatable, Hashable {
    public var type: Character
    public var value: String

    public init(type: Character, value: String) {
        self.type = type
        self.value = value
    }
}

/// The `o=` line.
public struct SDPOrigin: Sendable, Equatable, Hashable {
    public var username: String
    /// Digits, kept as text so that any length and leading zeros survive.
    public var sessionId: String
    /// Digits, kept as text; see `sessionVersionNumber`.
    public var sessionVersion: String
    public var netType: String
    public var addrType: String
    public var address: String

    public init(username: String = "-", sessionId: String, sessionVersion: String,
                netType: String = "IN", addrType: String = "IP4", address: String = "127.0.0.1") {
        self.username = username
        self.sessionId = sessionId
        self.sessionVersion = sessionVersion
        self.netType = netType
        self.addrType = addrType
        self.address = address
    }

    public init(username: String = "-", sessionId: UInt64, sessionVersion: UInt64,
                netType: String = "IN", addrType: String = "IP4", address: String = "127.0.0.1") {
        self.init(username: username, sessionId: String(sessionId), sessionVersion: String(sessionVersion),
                  netType: netType, addrType: addrType, address: address)
    }

    /// The session id as a number, nil if it does not fit in 64 bits.
    public var sessionIdNumber: UInt64? { SDPText.number(sessionId) }

    /// The session version as a number, nil if it does not fit in 64 bits.
    public var sessionVersionNumber: UInt64? { SDPText.number(sessionVersion) }

    /// Adds one to the session version (RFC 3264 §8: each new offer or answer increments it);
    /// a version that does not fit in 64 bits or would overflow restarts at 0.
    public mutating func incrementSessionVersion() {
        let (next, overflow) = (sessionVersionNumber ?? UInt64.max).addingReportingOverflow(1)
        sessionVersion = String(overflow ? 0 : next)
    }

    var text: String { "\(username) \(sessionId) \(sessionVersion) \(netType) \(addrType) \(address)" }
}

/// A `c=` line: network type, address type and connection address (with any `/ttl/count`).
public struct SDPConnection: Sendable, Equatable, Hashable {
    public var netType: String
    public var addrType: String
    public var address: String

    public init(netType: String = "IN", addrType: String = "IP4", address: String) {
        self.netType = netType
        self.addrType = addrType
        self.address = address
    }

    var text: String { "\(netType) \(addrType) \(address)" }
}

/// A `b=<type>:<kbps or bps>` line.
public struct SDPBandwidth: Sendable, Equatable, Hashable {
    public var type: String
    public var value: UInt64

    public init(type: String, value: UInt64) {
        self.type = type
        self.value = value
    }

    var text: String { "\(type):\(value)" }
}

/// A `t=` line and the `r=` lines that follow it (kept raw).
public struct SDPTiming: Sendable, Equatable, Hashable {
    public var start: UInt64
    public var stop: UInt64
    public var repeats: [String]

    public init(start: UInt64 = 0, stop: UInt64 = 0, repeats: [String] = []) {
        self.start = start
        self.stop = stop
        self.repeats = repeats
    }
}

/// A parsed SDP session description (RFC 8866): session-level lines, then media sections.
///
/// Known line types are stored in fields and re-emitted in RFC order; attributes stay an
/// ordered list so unknown ones and their order survive a round trip.
public struct SessionDescription: Sendable, Equatable, SDPAttributeContainer, CustomStringConvertible {
    /// Inputs larger than this many bytes are rejected.
    public static let maximumBytes = 64 * 1024
    /// Inputs with more lines than this are rejected.
    public static let maximumLines = 2000

    /// `v=`; always 0.
    public var version: Int
    public var origin: SDPOrigin
    /// `s=`
    public var sessionName: String
    /// `i=`
    public var sessionInformation: String?
    /// `u=`
    public var uri: String?
    /// `e=` lines
    public var emails: [String]
    /// `p=` lines
    public var phones: [String]
    /// Session-level `c=`
    public var connection: SDPConnection?
    /// Session-level `b=` lines
    public var bandwidths: [SDPBandwidth]
    /// `t=` lines, each with its `r=` lines; parsing requires at least one.
    public var timings: [SDPTiming]
    /// `z=` (raw)
    public var timeZones: String?
    /// `k=` (raw, obsolete)
    public var encryptionKey: String?
    /// Session-level `a=` lines in order.
    public var attributes: [SDPAttribute]
    /// Session-level lines of unknown type, emitted after the attributes.
    public var extraLines: [SDPLine]
    /// The `m=` sections in order.
    public var media: [MediaDescription]

    public init(version: Int = 0, origin: SDPOrigin, sessionName: String = "-",
                sessionInformation: String? = nil, uri: String? = nil,
                emails: [String] = [], phones: [String] = [],
                connection: SDPConnection? = nil, bandwidths: [SDPBandwidth] = [],
                timings: [SDPTiming] = [SDPTiming()], timeZones: String? = nil,
                encryptionKey: String? = nil, attributes: [SDPAttribute] = [],
                extraLines: [SDPLine] = [], media: [MediaDescription] = []) {
        self.version = version
        self.origin = origin
        self.sessionName = sessionName
        self.sessionInformation = sessionInformation
        self.uri = uri
        self.emails = emails
        self.phones = phones
        self.connection = connection
        self.bandwidths = bandwidths
        self.timings = timings
        self.timeZones = timeZones
        self.encryptionKey = encryptionKey
        self.attributes = attributes
        self.extraLines = extraLines
        self.media = media
    }

    /// Parses SDP text (LF or CRLF line ends).
    public init(parsing text: String) throws(SDPError) {
        self = try SDPParser.parse(Array(text.utf8))
    }

    /// Parses SDP bytes, which must be UTF-8.
    public init(parsing bytes: [UInt8]) throws(SDPError) {
        if bytes.count > Self.maximumBytes {
            throw .inputTooLarge(bytes: bytes.count, limit: Self.maximumBytes)
        }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .invalidUTF8 }
        self = try SDPParser.parse(bytes)
    }

    /// Parses SDP text.
    public static func parse(_ text: String) throws(SDPError) -> SessionDescription {
        try SessionDescription(parsing: text)
    }

    /// The description as SDP text with CRLF line ends.
    public func serialized() -> String { SDPSerializer.serialize(self) }

    /// The description as UTF-8 bytes with CRLF line ends.
    public func serializedBytes() -> [UInt8] { Array(serialized().utf8) }

    public var description: String { serialized() }
}

/// The kind of an `m=` section.
public enum MediaKind: Sendable, Equatable, Hashable, CustomStringConvertible {
    case audio, video, text, application, message
    case other(String)

    /// Maps the `m=` token to a case (`other` for anything unlisted).
    public init(_ token: String) {
        switch token {
        case "audio": self = .audio
        case "video": self = .video
        case "text": self = .text
        case "application": self = .application
        case "message": self = .message
        default: self = .other(token)
        }
    }

    public var description: String {
        switch self {
        case .audio: "audio"
        case .video: "video"
        case .text: "text"
        case .application: "application"
        case .message: "message"
        case .other(let token): token
        }
    }
}

/// One `m=` section and the lines under it.
public struct MediaDescription: Sendable, Equatable, SDPAttributeContainer {
    public var kind: MediaKind
    public var port: UInt16
    /// The `/<number of ports>` suffix of the port, if present.
    public var portCount: UInt16?
    /// Transport protocol, e.g. `UDP/TLS/RTP/SAVPF` or `UDP/DTLS/SCTP`.
    public var proto: String
    /// Format tokens: RTP payload types for RTP, `webrtc-datachannel` for data channels.
    public var formats: [String]
    /// `i=`
    public var title: String?
    /// Media-level `c=`
    public var connection: SDPConnection?
    /// Media-level `b=` lines
    public var bandwidths: [SDPBandwidth]
    /// `k=` (raw, obsolete)
    public var encryptionKey: String?
    /// Media-level `a=` lines in order.
    public var attributes: [SDPAttribute]
    /// Media-level lines of unknown type, emitted after the attributes.
    public var extraLines: [SDPLine]

    public init(kind: MediaKind, port: UInt16 = 9, portCount: UInt16? = nil, proto: String,
                formats: [String], title: String? = nil, connection: SDPConnection? = nil,
                bandwidths: [SDPBandwidth] = [], encryptionKey: String? = nil,
                attributes: [SDPAttribute] = [], extraLines: [SDPLine] = []) {
        self.kind = kind
        self.port = port
        self.portCount = portCount
        self.proto = proto
        self.formats = formats
        self.title = title
        self.connection = connection
        self.bandwidths = bandwidths
        self.encryptionKey = encryptionKey
        self.attributes = attributes
        self.extraLines = extraLines
    }
}
