/// A typed reading of one attribute's value, convertible both ways.
public protocol SDPAttributeValue: Sendable, Equatable {
    /// The attribute name, e.g. `rtpmap`.
    static var attributeName: String { get }
    /// Parses the raw value after `name:`; nil if it does not follow the grammar.
    init?(attributeValue: String)
    /// The value as it is written after `name:`.
    var attributeValue: String { get }
}

/// Media direction attributes (RFC 8866 §6.7); `sendrecv` is the default when none is present.
public enum SDPDirection: String, Sendable, Equatable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive
}

/// `a=setup` (RFC 4145): the DTLS role.
public enum SDPSetupRole: String, SDPAttributeValue, CaseIterable {
    case actpass, active, passive, holdconn

    public static var attributeName: String { "setup" }
    public init?(attributeValue: String) { self.init(rawValue: attributeValue) }
    public var attributeValue: String { rawValue }
}

/// `a=group:<semantics> <mid>...` (RFC 5888), e.g. `BUNDLE 0 1`.
public struct SDPGroup: SDPAttributeValue, Hashable {
    public var semantics: String
    public var mids: [String]

    public init(semantics: String, mids: [String]) {
        self.semantics = semantics
        self.mids = mids
    }

    public static var attributeName: String { "group" }

    public init?(attributeValue: String) {
        guard let tokens = SDPText.tokens(attributeValue) else { return nil }
        semantics = tokens[0]
        mids = Array(tokens.dropFirst())
    }

    public var attributeValue: String { ([semantics] + mids).joined(separator: " ") }
}

/// `a=fingerprint:<hash function> <hex bytes separated by colons>` (RFC 8122).
public struct SDPFingerprint: SDPAttributeValue, Hashable {
    /// As written, e.g. `sha-256`.
    public var hashFunction: String
    public var bytes: [UInt8]

    public init(hashFunction: String, bytes: [UInt8]) {
        self.hashFunction = hashFunction
        self.bytes = bytes
    }

    public static var attributeName: String { "fingerprint" }

    /// Digest length in bytes for the hash functions of RFC 8122, nil for others.
    public static func digestLength(of hashFunction: String) -> Int? {
        switch hashFunction.lowercased() {
        case "sha-1": 20
        case "sha-224": 28
        case "sha-256": 32
        case "sha-384": 48
        case "sha-512": 64
        case "md5", "md2": 16
        default: nil
        }
    }

    public init?(attributeValue: String) {
        let (hash, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard !hash.isEmpty, let rest else { return nil }
        var bytes: [UInt8] = []
        var high: UInt8?
        var digitsInPair = 0
        for character in rest.utf8 {
            if character == SDPText.colon {
                guard digitsInPair == 2 else { return nil }
                digitsInPair = 0
                continue
            }
            guard digitsInPair < 2, let nibble = SDPText.hexValue(character) else { return nil }
            digitsInPair += 1
            if let first = high {
                bytes.append(first << 4 | nibble)
                high = nil
                if bytes.count > 64 { return nil }
            } else {
                high = nibble
            }
        }
        guard digitsInPair == 2 else { return nil }
        if let expected = Self.digestLength(of: hash), expected != bytes.count { return nil }
        hashFunction = hash
        self.bytes = bytes
    }

    /// The bytes as uppercase hex pairs separated by colons.
    public var hexString: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for (index, byte) in bytes.enumerated() {
            if index > 0 { out.append(SDPText.colon) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var attributeValue: String { hashFunction + " " + hexString }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
public struct RTPMap: SDPAttributeValue, Hashable {
    public var payloadType: UInt8
    public var encodingName: String
    public var clockRate: UInt32
    /// Encoding parameters (the channel count for audio), if written.
    public var channels: UInt16?

    public init(payloadType: UInt8, encodingName: String, clockRate: UInt32, channels: UInt16? = nil) {
        self.payloadType = payloadType
        self.encodingName = encodingName
        self.clockRate = clockRate
        self.channels = channels
    }

    public static var attributeName: String { "rtpmap" }

    public init?(attributeValue: String) {
        let (pt, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard let payloadType = SDPText.number(pt, as: UInt8.self), payloadType <= 127,
              let rest else { return nil }
        let parts = SDPText.split(rest, SDPText.slash)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty,
              !parts[0].utf8.contains(SDPText.space),
              let rate = SDPText.number(parts[1], as: UInt32.self) else { return nil }
        var channels: UInt16?
        if parts.count == 3 {
            guard let count = SDPText.number(parts[2], as: UInt16.self) else { return nil }
            channels = count
        }
        self.init(payloadType: payloadType, encodingName: parts[0], clockRate: rate, channels: channels)
    }

    public var attributeValue: String {
        var text = "\(payloadType) \(encodingName)/\(clockRate)"
        if let channels { text += "/\(channels)" }
        return text
    }
}

/// `a=fmtp:<pt> <parameters>`: parameters separated by `;`, each `key=value` or raw text
/// (such as `0-15` or `111/111`).
public struct FormatParameters: SDPAttributeValue, Hashable {
    /// One `;`-separated item.
    public enum Parameter: Sendable, Equatable, Hashable {
        case keyValue(key: String, value: String)
        case raw(String)

        var text: String {
            switch self {
            case .keyValue(let key, let value): key + "=" + value
            case .raw(let text): text
            }
        }
    }

    public var payloadType: UInt8
    public var parameters: [Parameter]

    public init(payloadType: UInt8, parameters: [Parameter]) {
        self.payloadType = payloadType
        self.parameters = parameters
    }

    /// Convenience for key=value parameters in order.
    public init(payloadType: UInt8, _ pairs: KeyValuePairs<String, String>) {
        self.init(payloadType: payloadType, parameters: pairs.map { .keyValue(key: $0.key, value: $0.value) })
    }

    public static var attributeName: String { "fmtp" }

    public init?(attributeValue: String) {
        let (pt, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard let payloadType = SDPText.number(pt, as: UInt8.self), payloadType <= 127 else { return nil }
        var parameters: [Parameter] = []
        for item in SDPText.split(rest ?? "", SDPText.semicolon) {
            let trimmed = SDPText.trimmed(item)
            if trimmed.isEmpty { continue }
            let (key, value) = SDPText.splitOnce(trimmed, SDPText.equals)
            if let value, !key.isEmpty {
                parameters.append(.keyValue(key: SDPText.trimmed(key), value: SDPText.trimmed(value)))
            } else {
                parameters.append(.raw(trimmed))
            }
        }
        self.init(payloadType: payloadType, parameters: parameters)
    }

    public var attributeValue: String {
        if parameters.isEmpty { return "\(payloadType)" }
        return "\(payloadType) " + parameters.map(\.text).joined(separator: ";")
    }

    /// The value of the first `key=value` parameter whose key matches ignoring ASCII case.
    public func value(for key: String) -> String? {
        for case .keyValue(let k, let v) in parameters where SDPText.equalsIgnoringASCIICase(k, key) {
            return v
        }
        return nil
    }
}

/// `a=rtcp-fb:<pt or *> <type> [<subtype and parameters>]` (RFC 4585).
public struct RTCPFeedback: SDPAttributeValue, Hashable {
    /// nil means `*` (all payload types).
    public var payloadType: UInt8?
    public var type: String
    /// The rest after the type (e.g. `pli`, `fir`), if any.
    public var subtype: String?

    public init(payloadType: UInt8?, type: String, subtype: String? = nil) {
        self.payloadType = payloadType
        self.type = type
        self.subtype = subtype
    }

    public static var attributeName: String { "rtcp-fb" }

    public init?(attributeValue: String) {
        let (pt, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard let rest else { return nil }
        if pt == "*" {
            payloadType = nil
        } else {
            guard let number = SDPText.number(pt, as: UInt8.self), number <= 127 else { return nil }
            payloadType = number
        }
        let (type, subtype) = SDPText.splitOnce(rest, SDPText.space)
        guard !type.isEmpty, subtype.map({ !$0.isEmpty }) ?? true else { return nil }
        self.type = type
        self.subtype = subtype
    }

    public var attributeValue: String {
        var text = (payloadType.map { String($0) } ?? "*") + " " + type
        if let subtype { text += " " + subtype }
        return text
    }
}

/// `a=extmap:<id>[/<direction>] <uri> [<extension attributes>]` (RFC 8285).
public struct ExtMap: SDPAttributeValue, Hashable {
    public var id: UInt16
    public var direction: SDPDirection?
    public var uri: String
    public var extensionAttributes: String?

    public init(id: UInt16, direction: SDPDirection? = nil, uri: String, extensionAttributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.extensionAttributes = extensionAttributes
    }

    public static var attributeName: String { "extmap" }

    public init?(attributeValue: String) {
        let (idPart, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard let rest else { return nil }
        let (idText, directionText) = SDPText.splitOnce(idPart, SDPText.slash)
        guard let id = SDPText.number(idText, as: UInt16.self) else { return nil }
        var direction: SDPDirection?
        if let directionText {
            guard let parsed = SDPDirection(rawValue: directionText) else { return nil }
            direction = parsed
        }
        let (uri, attributes) = SDPText.splitOnce(rest, SDPText.space)
        guard !uri.isEmpty, attributes.map({ !$0.isEmpty }) ?? true else { return nil }
        self.init(id: id, direction: direction, uri: uri, extensionAttributes: attributes)
    }

    public var attributeValue: String {
        var text = String(id)
        if let direction { text += "/" + direction.rawValue }
        text += " " + uri
        if let extensionAttributes { text += " " + extensionAttributes }
        return text
    }
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830).
public struct MediaStreamID: SDPAttributeValue, Hashable {
    public var streamId: String
    public var trackId: String?

    public init(streamId: String, trackId: String? = nil) {
        self.streamId = streamId
        self.trackId = trackId
    }

    public static var attributeName: String { "msid" }

    public init?(attributeValue: String) {
        guard let tokens = SDPText.tokens(attributeValue), tokens.count <= 2 else { return nil }
        self.init(streamId: tokens[0], trackId: tokens.count == 2 ? tokens[1] : nil)
    }

    public var attributeValue: String {
        if let trackId { return streamId + " " + trackId }
        return streamId
    }
}

/// `a=msid-semantic:<semantic> <identifiers>` (as Chromium and Firefox write it; Chromium puts a
/// space after the colon, which the raw attribute keeps).
public struct MsidSemantic: SDPAttributeValue, Hashable {
    public var semantic: String
    public var identifiers: [String]

    public init(semantic: String, identifiers: [String]) {
        self.semantic = semantic
        self.identifiers = identifiers
    }

    public static var attributeName: String { "msid-semantic" }

    public init?(attributeValue: String) {
        guard let tokens = SDPText.tokens(SDPText.trimmed(attributeValue)) else { return nil }
        self.init(semantic: tokens[0], identifiers: Array(tokens.dropFirst()))
    }

    public var attributeValue: String { ([semantic] + identifiers).joined(separator: " ") }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).
public struct SSRCAttribute: SDPAttributeValue, Hashable {
    public var ssrc: UInt32
    public var attribute: String
    public var value: String?

    public init(ssrc: UInt32, attribute: String, value: String? = nil) {
        self.ssrc = ssrc
        self.attribute = attribute
        self.value = value
    }

    public static var attributeName: String { "ssrc" }

    public init?(attributeValue: String) {
        let (ssrcText, rest) = SDPText.splitOnce(attributeValue, SDPText.space)
        guard let ssrc = SDPText.number(ssrcText, as: UInt32.self), let rest else { return nil }
        let (attribute, value) = SDPText.splitOnce(rest, SDPText.colon)
        guard !attribute.isEmpty else { return nil }
        self.init(ssrc: ssrc, attribute: attribute, value: value)
    }

    public var attributeValue: String {
        var text = "\(ssrc) \(attribute)"
        if let value { text += ":" + value }
        return text
    }
}

/// `a=ssrc-group:<semantics> <ssrc>...` (RFC 5576).
public struct SSRCGroup: SDPAttributeValue, Hashable {
    public var semantics: String
    public var ssrcs: [UInt32]

    public init(semantics: String, ssrcs: [UInt32]) {
        self.semantics = semantics
        self.ssrcs = ssrcs
    }

    public static var attributeName: String { "ssrc-group" }

    public init?(attributeValue: String) {
        guard let tokens = SDPText.tokens(attributeValue) else { return nil }
        var ssrcs: [UInt32] = []
        for token in tokens.dropFirst() {
            guard let ssrc = SDPText.number(token, as: UInt32.self) else { return nil }
            ssrcs.append(ssrc)
        }
        self.init(semantics: tokens[0], ssrcs: ssrcs)
    }

    public var attributeValue: String {
        ([semantics] + ssrcs.map { String($0) }).joined(separator: " ")
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
public struct RTCPAttribute: SDPAttributeValue, Hashable {
    public var port: UInt16
    public var connection: SDPConnection?

    public init(port: UInt16, connection: SDPConnection? = nil) {
        self.port = port
        self.connection = connection
    }

    public static var attributeName: String { "rtcp" }

    public init?(attributeValue: String) {
        guard let tokens = SDPText.tokens(attributeValue), tokens.count == 1 || tokens.count == 4,
              let port = SDPText.number(tokens[0], as: UInt16.self) else { return nil }
        self.port = port
        connection = tokens.count == 4
            ? SDPConnection(netType: tokens[1], addrType: tokens[2], address: tokens[3]) : nil
    }

    public var attributeValue: String {
        if let connection { return "\(port) \(connection.text)" }
        return String(port)
    }
}
