// Opus SDP format parameters (RFC 7587 §6.1), the value of `a=fmtp:<pt> ...`.

/// One `key=value` (or bare `key`) item of an fmtp line that is kept verbatim.
public struct OpusFmtpItem: Sendable, Equatable, Hashable {
    public var key: String
    public var value: String?

    public init(key: String, value: String?) {
        self.key = key
        self.value = value
    }
}

/// The Opus fmtp parameters. Unset means "absent" (the RFC 7587 default applies).
///
/// Parsing never fails: a known key with a value out of its range is kept in `unknown`
/// verbatim, so `parse(serialized())` always gives back the same value.
/// Known keys match case-insensitively and are written back lower-case.
public struct OpusParameters: Sendable, Equatable, Hashable {
    /// Minimum packet duration in ms the receiver wants (`minptime`).
    public var minptime: Int?
    /// Receiver can use in-band FEC (`useinbandfec`).
    public var useInbandFEC: Bool?
    /// Receiver prefers DTX (`usedtx`).
    public var useDTX: Bool?
    /// Receiver prefers stereo (`stereo`).
    public var stereo: Bool?
    /// Sender is likely to send stereo (`sprop-stereo`).
    public var spropStereo: Bool?
    /// Maximum output rate the receiver can render, 8000–48000 (`maxplaybackrate`).
    public var maxPlaybackRate: Int?
    /// Maximum capture rate of the sender (`sprop-maxcapturerate`).
    public var spropMaxCaptureRate: Int?
    /// Maximum average bitrate in bit/s the receiver accepts, 6000–510000 (`maxaveragebitrate`).
    public var maxAverageBitrate: Int?
    /// Receiver prefers constant bitrate (`cbr`).
    public var cbr: Bool?
    /// Preferred packet duration in ms (`ptime`, sometimes sent inside fmtp).
    public var ptime: Int?
    /// Maximum packet duration in ms (`maxptime`).
    public var maxptime: Int?
    /// Anything else, in the order it appeared.
    public var unknown: [OpusFmtpItem]

    public init(minptime: Int? = nil, useInbandFEC: Bool? = nil, useDTX: Bool? = nil, stereo: Bool? = nil,
                spropStereo: Bool? = nil, maxPlaybackRate: Int? = nil, spropMaxCaptureRate: Int? = nil,
                maxAverageBitrate: Int? = nil, cbr: Bool? = nil, ptime: Int? = nil, maxptime: Int? = nil,
                unknown: [OpusFmtpItem] = []) {
        self.minptime = minptime
        self.useInbandFEC = useInbandFEC
        self.useDTX = useDTX
        self.stereo = stereo
        self.spropStereo = spropStereo
        self.maxPlaybackRate = maxPlaybackRate
        self.spropMaxCaptureRate = spropMaxCaptureRate
        self.maxAverageBitrate = maxAverageBitrate
        self.cbr = cbr
        self.ptime = ptime
        self.maxptime = maxptime
        self.unknown = unknown
    }

    /// Parses an fmtp value such as `minptime=10;useinbandfec=1`.
    public static func parse(_ fmtp: some StringProtocol) -> OpusParameters {
        var result = OpusParameters()
        for rawItem in fmtp.split(separator: ";", omittingEmptySubsequences: true) {
            let item = rawItem.trimmingSpaces
            guard !item.isEmpty else { continue }
            let key: String
            let value: String?
            if let eq = item.firstIndex(of: "=") {
                key = String(item[..<eq]).trimmingSpaces
                value = String(item[item.index(after: eq)...]).trimmingSpaces
            } else {
                key = item
                value = nil
            }
            if !result.setKnown(key: key, value: value) {
                result.unknown.append(OpusFmtpItem(key: key, value: value))
            }
        }
        return result
    }

    /// The fmtp value: known parameters in a fixed order, then unknown ones as they came.
    public func serialized() -> String {
        var items: [String] = []
        func add(_ key: String, _ value: Int?) { if let value { items.append("\(key)=\(value)") } }
        func add(_ key: String, _ value: Bool?) { if let value { items.append("\(key)=\(value ? 1 : 0)") } }
        add("minptime", minptime)
        add("useinbandfec", useInbandFEC)
        add("usedtx", useDTX)
        add("stereo", stereo)
        add("sprop-stereo", spropStereo)
        add("maxplaybackrate", maxPlaybackRate)
        add("sprop-maxcapturerate", spropMaxCaptureRate)
        add("maxaveragebitrate", maxAverageBitrate)
        add("cbr", cbr)
        add("ptime", ptime)
        add("maxptime", maxptime)
        for item in unknown {
            if let value = item.value { items.append("\(item.key)=\(value)") } else { items.append(item.key) }
        }
        return items.joined(separator: ";")
    }

    /// Sets a known parameter; false if the key is unknown, repeated, or its value is invalid.
    private mutating func setKnown(key: String, value: String?) -> Bool {
        guard let value else { return false }
        func flag() -> Bool? { value == "1" ? true : value == "0" ? false : nil }
        func int(_ range: ClosedRange<Int>) -> Int? {
            guard value.count <= 9, value.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(value),
                  range.contains(v), String(v) == value else { return nil }
            return v
        }
        switch key.lowercased() {
        case "minptime": guard minptime == nil, let v = int(1...120) else { return false }; minptime = v
        case "useinbandfec": guard useInbandFEC == nil, let v = flag() else { return false }; useInbandFEC = v
        case "usedtx": guard useDTX == nil, let v = flag() else { return false }; useDTX = v
        case "stereo": guard stereo == nil, let v = flag() else { return false }; stereo = v
        case "sprop-stereo": guard spropStereo == nil, let v = flag() else { return false }; spropStereo = v
        case "maxplaybackrate":
            guard maxPlaybackRate == nil, let v = int(8000...48000) else { return false }; maxPlaybackRate = v
        case "sprop-maxcapturerate":
            guard spropMaxCaptureRate == nil, let v = int(8000...48000) else { return false }; spropMaxCaptureRate = v
        case "maxaveragebitrate":
            guard maxAverageBitrate == nil, let v = int(6000...510_000) else { return false }; maxAverageBitrate = v
        case "cbr": guard cbr == nil, let v = flag() else { return false }; cbr = v
        case "ptime": guard ptime == nil, let v = int(1...120) else { return false }; ptime = v
        case "maxptime": guard maxptime == nil, let v = int(1...120) else { return false }; maxptime = v
        default: return false
        }
        return true
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
