/// Something holding an ordered attribute list: a session or a media section. The typed
/// accessors read the list; the setters edit it in place, keeping the position of the first
/// replaced attribute (or appending when there was none).
public protocol SDPAttributeContainer {
    var attributes: [SDPAttribute] { get set }
}

extension SDPAttributeContainer {
    // MARK: Generic access

    /// True if an attribute with this name is present.
    public func hasAttribute(_ name: String) -> Bool {
        attributes.contains { $0.name == name }
    }

    /// The raw value of the first attribute with this name (nil if absent or valueless).
    public func value(of name: String) -> String? {
        attributes.first { $0.name == name }?.value
    }

    /// Raw values of all attributes with this name, in order (valueless ones skipped).
    public func values(of name: String) -> [String] {
        attributes.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Every attribute of this typed kind that parses, in order.
    public func values<Value: SDPAttributeValue>(_ type: Value.Type) -> [Value] {
        attributes.compactMap { attribute in
            guard attribute.name == Value.attributeName, let value = attribute.value else { return nil }
            return Value(attributeValue: value)
        }
    }

    /// The first attribute of this typed kind that parses.
    public func firstValue<Value: SDPAttributeValue>(_ type: Value.Type) -> Value? {
        for attribute in attributes where attribute.name == Value.attributeName {
            if let value = attribute.value, let parsed = Value(attributeValue: value) { return parsed }
        }
        return nil
    }

    /// Appends an attribute.
    public mutating func append(_ attribute: SDPAttribute) {
        attributes.append(attribute)
    }

    /// Appends a typed attribute.
    public mutating func append<Value: SDPAttributeValue>(_ value: Value) {
        attributes.append(SDPAttribute(value))
    }

    /// Removes every attribute with this name.
    public mutating func removeAttributes(named name: String) {
        attributes.removeAll { $0.name == name }
    }

    /// Replaces all attributes whose name is in `names` by `replacement`, placed where the first
    /// of them was (or appended).
    public mutating func replaceAttributes(named names: Set<String>, with replacement: [SDPAttribute]) {
        let position = attributes.firstIndex { names.contains($0.name) }
        attributes.removeAll { names.contains($0.name) }
        attributes.insert(contentsOf: replacement, at: position ?? attributes.count)
    }

    /// Sets the single attribute `name` to `value` (nil removes it).
    public mutating func setValue(_ value: String?, for name: String) {
        replaceAttributes(named: [name], with: value.map { [SDPAttribute(name, $0)] } ?? [])
    }

    /// Adds or removes a valueless flag attribute such as `rtcp-mux`.
    public mutating func setFlag(_ name: String, _ present: Bool) {
        if present {
            if !hasAttribute(name) { attributes.append(SDPAttribute(name)) }
        } else {
            removeAttributes(named: name)
        }
    }

    /// Replaces all attributes of this typed kind by `values`.
    public mutating func setValues<Value: SDPAttributeValue>(_ values: [Value]) {
        replaceAttributes(named: [Value.attributeName], with: values.map { SDPAttribute($0) })
    }

    // MARK: ICE and DTLS (session or media level)

    /// `a=ice-ufrag`
    public var iceUfrag: String? {
        get { value(of: "ice-ufrag") }
        set { setValue(newValue, for: "ice-ufrag") }
    }

    /// `a=ice-pwd`
    public var icePwd: String? {
        get { value(of: "ice-pwd") }
        set { setValue(newValue, for: "ice-pwd") }
    }

    /// `a=ice-options`, split at spaces (e.g. `["trickle"]`).
    public var iceOptions: [String] {
        get { values(of: "ice-options").flatMap { SDPText.split($0, SDPText.space).filter { !$0.isEmpty } } }
        set { setValue(newValue.isEmpty ? nil : newValue.joined(separator: " "), for: "ice-options") }
    }

    /// `a=ice-lite`
    public var iceLite: Bool {
        get { hasAttribute("ice-lite") }
        set { setFlag("ice-lite", newValue) }
    }

    /// All `a=fingerprint` lines.
    public var fingerprints: [SDPFingerprint] {
        get { values(SDPFingerprint.self) }
        set { setValues(newValue) }
    }

    /// `a=setup`
    public var setup: SDPSetupRole? {
        get { firstValue(SDPSetupRole.self) }
        set { setValues(newValue.map { [$0] } ?? []) }
    }

    /// Raw values of all `a=candidate` lines (the ICE module parses them).
    public var candidates: [String] {
        get { values(of: "candidate") }
        set { replaceAttributes(named: ["candidate"], with: newValue.map { SDPAttribute("candidate", $0) }) }
    }

    /// `a=end-of-candidates`
    public var endOfCandidates: Bool {
        get { hasAttribute("end-of-candidates") }
        set { setFlag("end-of-candidates", newValue) }
    }

    // MARK: Direction and RTP header extensions (session or media level)

    /// The direction attribute present, if any.
    public var explicitDirection: SDPDirection? {
        for attribute in attributes {
            if let direction = SDPDirection(rawValue: attribute.name) { return direction }
        }
        return nil
    }

    /// The media direction; `sendrecv` when no direction attribute is present. Setting it
    /// replaces any direction attribute.
    public var direction: SDPDirection {
        get { explicitDirection ?? .sendrecv }
        set {
            replaceAttributes(named: Set(SDPDirection.allCases.map(\.rawValue)),
                              with: [SDPAttribute(newValue.rawValue)])
        }
    }

    /// All `a=extmap` lines.
    public var extmaps: [ExtMap] {
        get { values(ExtMap.self) }
        set { setValues(newValue) }
    }

    /// The extmap id mapped to this header extension URI, if any.
    public func extmapID(forURI uri: String) -> UInt16? {
        extmaps.first { $0.uri == uri }?.id
    }

    /// `a=extmap-allow-mixed`
    public var extmapAllowMixed: Bool {
        get { hasAttribute("extmap-allow-mixed") }
        set { setFlag("extmap-allow-mixed", newValue) }
    }
}

extension SessionDescription {
    /// All `a=group` lines.
    public var groups: [SDPGroup] {
        get { values(SDPGroup.self) }
        set { setValues(newValue) }
    }

    /// The first `a=group:BUNDLE` group.
    public var bundleGroup: SDPGroup? {
        groups.first { SDPText.equalsIgnoringASCIICase($0.semantics, "BUNDLE") }
    }

    /// `a=msid-semantic`
    public var msidSemantic: MsidSemantic? {
        get { firstValue(MsidSemantic.self) }
        set { setValues(newValue.map { [$0] } ?? []) }
    }

    /// The index of the media section with this `a=mid`.
    public func mediaIndex(mid: String) -> Int? {
        media.firstIndex { $0.mid == mid }
    }

    /// The media section with this `a=mid`.
    public func media(mid: String) -> MediaDescription? {
        mediaIndex(mid: mid).map { media[$0] }
    }

    /// The ICE username fragment for a media section: its own, else the session's.
    public func iceUfrag(for media: MediaDescription) -> String? { media.iceUfrag ?? iceUfrag }

    /// The ICE password for a media section: its own, else the session's.
    public func icePwd(for media: MediaDescription) -> String? { media.icePwd ?? icePwd }

    /// The ICE options for a media section: its own, else the session's.
    public func iceOptions(for media: MediaDescription) -> [String] {
        media.hasAttribute("ice-options") ? media.iceOptions : iceOptions
    }

    /// The DTLS fingerprints for a media section: its own, else the session's.
    public func fingerprints(for media: MediaDescription) -> [SDPFingerprint] {
        let own = media.fingerprints
        return own.isEmpty ? fingerprints : own
    }

    /// The DTLS setup role for a media section: its own, else the session's.
    public func setup(for media: MediaDescription) -> SDPSetupRole? { media.setup ?? setup }

    /// The direction of a media section: its own attribute, else the session's, else sendrecv.
    public func direction(for media: MediaDescription) -> SDPDirection {
        media.explicitDirection ?? explicitDirection ?? .sendrecv
    }

    /// The extmap id for a URI in a media section, else at session level.
    public func extmapID(forURI uri: String, in media: MediaDescription) -> UInt16? {
        media.extmapID(forURI: uri) ?? extmapID(forURI: uri)
    }
}

extension MediaDescription {
    /// `a=mid`
    public var mid: String? {
        get { value(of: "mid") }
        set { setValue(newValue, for: "mid") }
    }

    /// All `a=rtpmap` lines.
    public var rtpmaps: [RTPMap] {
        get { values(RTPMap.self) }
        set { setValues(newValue) }
    }

    /// All `a=fmtp` lines.
    public var fmtps: [FormatParameters] {
        get { values(FormatParameters.self) }
        set { setValues(newValue) }
    }

    /// All `a=rtcp-fb` lines.
    public var rtcpFeedbacks: [RTCPFeedback] {
        get { values(RTCPFeedback.self) }
        set { setValues(newValue) }
    }

    /// All `a=msid` lines.
    public var msids: [MediaStreamID] {
        get { values(MediaStreamID.self) }
        set { setValues(newValue) }
    }

    /// All `a=ssrc` lines.
    public var ssrcs: [SSRCAttribute] {
        get { values(SSRCAttribute.self) }
        set { setValues(newValue) }
    }

    /// All `a=ssrc-group` lines.
    public var ssrcGroups: [SSRCGroup] {
        get { values(SSRCGroup.self) }
        set { setValues(newValue) }
    }

    /// `a=rtcp`
    public var rtcp: RTCPAttribute? {
        get { firstValue(RTCPAttribute.self) }
        set { setValues(newValue.map { [$0] } ?? []) }
    }

    /// `a=rtcp-mux`
    public var rtcpMux: Bool {
        get { hasAttribute("rtcp-mux") }
        set { setFlag("rtcp-mux", newValue) }
    }

    /// `a=rtcp-rsize`
    public var rtcpRsize: Bool {
        get { hasAttribute("rtcp-rsize") }
        set { setFlag("rtcp-rsize", newValue) }
    }

    /// Raw values of `a=rtcp-xr` lines.
    public var rtcpXR: [String] { values(of: "rtcp-xr") }

    /// `a=sctp-port` (RFC 8841).
    public var sctpPort: UInt16? {
        get { value(of: "sctp-port").flatMap { SDPText.number($0, as: UInt16.self) } }
        set { setValue(newValue.map { String($0) }, for: "sctp-port") }
    }

    /// `a=max-message-size` (RFC 8841).
    public var maxMessageSize: UInt64? {
        get { value(of: "max-message-size").flatMap { SDPText.number($0, as: UInt64.self) } }
        set { setValue(newValue.map { String($0) }, for: "max-message-size") }
    }

    /// `a=ptime` in milliseconds.
    public var ptime: UInt32? {
        get { value(of: "ptime").flatMap { SDPText.number($0, as: UInt32.self) } }
        set { setValue(newValue.map { String($0) }, for: "ptime") }
    }

    /// `a=maxptime` in milliseconds.
    public var maxptime: UInt32? {
        get { value(of: "maxptime").flatMap { SDPText.number($0, as: UInt32.self) } }
        set { setValue(newValue.map { String($0) }, for: "maxptime") }
    }

    /// The rtpmap for a payload type.
    public func rtpmap(payloadType: UInt8) -> RTPMap? {
        rtpmaps.first { $0.payloadType == payloadType }
    }

    /// The fmtp for a payload type.
    public func fmtp(payloadType: UInt8) -> FormatParameters? {
        fmtps.first { $0.payloadType == payloadType }
    }

    /// The rtcp-fb lines that apply to a payload type (its own and `*`).
    public func rtcpFeedbacks(payloadType: UInt8) -> [RTCPFeedback] {
        rtcpFeedbacks.filter { $0.payloadType == nil || $0.payloadType == payloadType }
    }

    /// The first payload type, in `m=` format order, whose rtpmap has this encoding name
    /// (ASCII case ignored) and, if given, clock rate.
    public func payloadType(encodingName: String, clockRate: UInt32? = nil) -> UInt8? {
        let maps = rtpmaps.filter {
            SDPText.equalsIgnoringASCIICase($0.encodingName, encodingName)
                && (clockRate == nil || $0.clockRate == clockRate)
        }
        for format in formats {
            if let pt = SDPText.number(format, as: UInt8.self), maps.contains(where: { $0.payloadType == pt }) {
                return pt
            }
        }
        return maps.first?.payloadType
    }

    /// The Opus payload type (`opus/48000`).
    public var opusPayloadType: UInt8? { payloadType(encodingName: "opus", clockRate: 48000) }
}
