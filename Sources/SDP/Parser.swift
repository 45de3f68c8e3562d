/// Line-oriented SDP parser enforcing the RFC 8866 line order for known line types.
enum SDPParser {
    private struct Line {
        let number: Int
        let type: UInt8
        let value: String
        var character: Character { Character(Unicode.Scalar(type)) }
    }

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    static func parse(_ bytes: [UInt8]) throws(SDPError) -> SessionDescription {
        if bytes.count > SessionDescription.maximumBytes {
            throw .inputTooLarge(bytes: bytes.count, limit: SessionDescription.maximumBytes)
        }
        let lines = try splitLines(bytes)
        // The limit holds for the description as `serialized()` writes it too: CRLF after every line
        // (the input may end lines with LF alone) and no value longer than it came. Counted on the raw
        // input alone, an SDP just under the limit with LF line ends parsed and its serialization did not.
        let serializedBound = lines.reduce(0) { $0 + 4 + $1.value.utf8.count }
        if serializedBound > SessionDescription.maximumBytes {
            throw .inputTooLarge(bytes: serializedBound, limit: SessionDescription.maximumBytes)
        }
        var cursor = 0

        func expect(_ type: Character, at number: Int) throws(SDPError) -> Line {
            guard cursor < lines.count, lines[cursor].character == type else {
                throw .missingLine(line: number, type: type)
            }
            cursor += 1
            return lines[cursor - 1]
        }

        let versionLine = try expect("v", at: 1)
        guard SDPText.number(versionLine.value, as: UInt8.self) == 0 else { throw .badVersion(line: 1) }
        let origin = try parseOrigin(try expect("o", at: 2))
        let sessionName = try expect("s", at: 3).value

        var session = SessionDescription(origin: origin, sessionName: sessionName, timings: [])
        var rank = 2
        while cursor < lines.count, lines[cursor].type != UInt8(ascii: "m") {
            let line = lines[cursor]
            cursor += 1
            switch line.type {
            case UInt8(ascii: "i"):
                try advance(&rank, to: 3, singleton: true, line)
                session.sessionInformation = line.value
            case UInt8(ascii: "u"):
                try advance(&rank, to: 4, singleton: true, line)
                session.uri = line.value
            case UInt8(ascii: "e"):
                try advance(&rank, to: 5, singleton: false, line)
                session.emails.append(line.value)
            case UInt8(ascii: "p"):
                try advance(&rank, to: 6, singleton: false, line)
                session.phones.append(line.value)
            case UInt8(ascii: "c"):
                try advance(&rank, to: 7, singleton: true, line)
                session.connection = try parseConnection(line)
            case UInt8(ascii: "b"):
                try advance(&rank, to: 8, singleton: false, line)
                session.bandwidths.append(try parseBandwidth(line))
            case UInt8(ascii: "t"):
                try advance(&rank, to: 9, singleton: false, line)
                session.timings.append(try parseTiming(line))
            case UInt8(ascii: "r"):
                guard rank == 9, !session.timings.isEmpty else {
                    throw .misplacedLine(line: line.number, type: "r")
                }
                session.timings[session.timings.count - 1].repeats.append(line.value)
            case UInt8(ascii: "z"):
                try advance(&rank, to: 10, singleton: true, line)
                session.timeZones = line.value
            case UInt8(ascii: "k"):
                try advance(&rank, to: 11, singleton: true, line)
                session.encryptionKey = line.value
            case UInt8(ascii: "a"):
                try advance(&rank, to: 12, singleton: false, line)
                session.attributes.append(try parseAttribute(line))
            case UInt8(ascii: "v"), UInt8(ascii: "o"), UInt8(ascii: "s"):
                throw .misplacedLine(line: line.number, type: line.character)
            default:
                session.extraLines.append(SDPLine(type: line.character, value: line.value))
            }
        }
        if session.timings.isEmpty {
            throw .missingLine(line: cursor < lines.count ? lines[cursor].number : lines.count + 1, type: "t")
        }

        while cursor < lines.count {
            let mediaLine = lines[cursor]
            cursor += 1
            var media = try parseMediaLine(mediaLine)
            rank = 0
            while cursor < lines.count, lines[cursor].type != UInt8(ascii: "m") {
                let line = lines[cursor]
                cursor += 1
                switch line.type {
                case UInt8(ascii: "i"):
                    try advance(&rank, to: 1, singleton: true, line)
                    media.title = line.value
                case UInt8(ascii: "c"):
                    try advance(&rank, to: 2, singleton: true, line)
                    media.connection = try parseConnection(line)
                case UInt8(ascii: "b"):
                    try advance(&rank, to: 3, singleton: false, line)
                    media.bandwidths.append(try parseBandwidth(line))
                case UInt8(ascii: "k"):
                    try advance(&rank, to: 4, singleton: true, line)
                    media.encryptionKey = line.value
                case UInt8(ascii: "a"):
                    try advance(&rank, to: 5, singleton: false, line)
                    media.attributes.append(try parseAttribute(line))
                case UInt8(ascii: "v"), UInt8(ascii: "o"), UInt8(ascii: "s"), UInt8(ascii: "u"), UInt8(ascii: "e"), UInt8(ascii: "p"), UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "z"):
                    throw .misplacedLine(line: line.number, type: line.character)
                default:
                    media.extraLines.append(SDPLine(type: line.character, value: line.value))
                }
            }
            session.media.append(media)
        }
        return session
    }

    /// Splits at LF (dropping a CR before it), drops trailing empty lines and checks each
    /// remaining line is `<letter>=<value>` without NUL or CR.
    private static func splitLines(_ bytes: [UInt8]) throws(SDPError) -> [Line] {
        try bytes.withUnsafeBufferPointer { (buffer) throws(SDPError) -> [Line] in
            var ranges: [Range<Int>] = []
            var start = 0
            for index in 0...buffer.count where index == buffer.count || buffer[index] == lf {
                if index == buffer.count && start == index { break }
                var end = index
                if end > start && buffer[end - 1] == cr { end -= 1 }
                ranges.append(start..<end)
                if ranges.count > SessionDescription.maximumLines {
                    throw .tooManyLines(limit: SessionDescription.maximumLines)
                }
                start = index + 1
            }
            while let last = ranges.last, last.isEmpty { ranges.removeLast() }
            guard !ranges.isEmpty else { throw .emptyInput }

            var lines: [Line] = []
            lines.reserveCapacity(ranges.count)
            for (offset, range) in ranges.enumerated() {
                let number = offset + 1
                if range.isEmpty { throw .emptyLine(line: number) }
                for index in range where buffer[index] == 0 || buffer[index] == cr {
                    throw .invalidCharacter(line: number)
                }
                guard range.count >= 2, buffer[range.lowerBound + 1] == SDPText.equals else {
                    throw .malformedLine(line: number)
                }
                let type = buffer[range.lowerBound]
                guard (type >= 0x41 && type <= 0x5A) || (type >= 0x61 && type <= 0x7A) else {
                    throw .malformedLine(line: number)
                }
                let value = String(decoding: UnsafeBufferPointer(rebasing: buffer[(range.lowerBound + 2)..<range.upperBound]),
                                   as: UTF8.self)
                lines.append(Line(number: number, type: type, value: value))
            }
            return lines
        }
    }

    private static func advance(_ rank: inout Int, to newRank: Int, singleton: Bool, _ line: Line) throws(SDPError) {
        if newRank < rank { throw .misplacedLine(line: line.number, type: line.character) }
        if newRank == rank && singleton { throw .duplicateLine(line: line.number, type: line.character) }
        rank = newRank
    }

    private static func parseOrigin(_ line: Line) throws(SDPError) -> SDPOrigin {
        guard let tokens = SDPText.tokens(line.value), tokens.count == 6,
              SDPText.isDigits(tokens[1]), SDPText.isDigits(tokens[2]) else {
            throw .badOrigin(line: line.number)
        }
        return SDPOrigin(username: tokens[0], sessionId: tokens[1], sessionVersion: tokens[2],
                         netType: tokens[3], addrType: tokens[4], address: tokens[5])
    }

    private static func parseConnection(_ line: Line) throws(SDPError) -> SDPConnection {
        guard let tokens = SDPText.tokens(line.value), tokens.count == 3 else {
            throw .badConnection(line: line.number)
        }
        return SDPConnection(netType: tokens[0], addrType: tokens[1], address: tokens[2])
    }

    private static func parseBandwidth(_ line: Line) throws(SDPError) -> SDPBandwidth {
        let (type, value) = SDPText.splitOnce(line.value, SDPText.colon)
        guard !type.isEmpty, !type.utf8.contains(SDPText.space),
              let value, let number = SDPText.number(value, as: UInt64.self) else {
            throw .badBandwidth(line: line.number)
        }
        return SDPBandwidth(type: type, value: number)
    }

    private static func parseTiming(_ line: Line) throws(SDPError) -> SDPTiming {
        guard let tokens = SDPText.tokens(line.value), tokens.count == 2,
              let start = SDPText.number(tokens[0], as: UInt64.self),
              let stop = SDPText.number(tokens[1], as: UInt64.self) else {
            throw .badTiming(line: line.number)
        }
        return SDPTiming(start: start, stop: stop)
    }

    private static func parseMediaLine(_ line: Line) throws(SDPError) -> MediaDescription {
        guard let tokens = SDPText.tokens(line.value), tokens.count >= 4 else {
            throw .badMediaLine(line: line.number)
        }
        let (portText, countText) = SDPText.splitOnce(tokens[1], SDPText.slash)
        guard let port = SDPText.number(portText, as: UInt16.self) else { throw .badPort(line: line.number) }
        var portCount: UInt16?
        if let countText {
            guard let count = SDPText.number(countText, as: UInt16.self) else { throw .badPort(line: line.number) }
            portCount = count
        }
        return MediaDescription(kind: MediaKind(tokens[0]), port: port, portCount: portCount,
                                proto: tokens[2], formats: Array(tokens[3...]))
    }

    private static func parseAttribute(_ line: Line) throws(SDPError) -> SDPAttribute {
        let (name, value) = SDPText.splitOnce(line.value, SDPText.colon)
        guard !name.isEmpty, isValid(name: name, value: value) else {
            throw .badAttribute(line: line.number, name: name)
        }
        return SDPAttribute(name, value)
    }

    /// Checks the grammar of the attributes this codec interprets; others are accepted as is.
    static func isValid(name: String, value: String?) -> Bool {
        func parses<Value: SDPAttributeValue>(_ type: Value.Type) -> Bool {
            value.flatMap { Value(attributeValue: $0) } != nil
        }
        switch name {
        case "rtpmap": return parses(RTPMap.self)
        case "fmtp": return parses(FormatParameters.self)
        case "rtcp-fb": return parses(RTCPFeedback.self)
        case "extmap": return parses(ExtMap.self)
        case "fingerprint": return parses(SDPFingerprint.self)
        case "setup": return parses(SDPSetupRole.self)
        case "group": return parses(SDPGroup.self)
        case "msid": return parses(MediaStreamID.self)
        case "msid-semantic": return parses(MsidSemantic.self)
        case "ssrc": return parses(SSRCAttribute.self)
        case "ssrc-group": return parses(SSRCGroup.self)
        case "rtcp": return parses(RTCPAttribute.self)
        case "sctp-port": return value.flatMap { SDPText.number($0, as: UInt16.self) } != nil
        case "max-message-size": return value.flatMap { SDPText.number($0, as: UInt64.self) } != nil
        case "ptime", "maxptime": return value.flatMap { SDPText.number($0, as: UInt32.self) } != nil
        case "mid", "ice-ufrag", "ice-pwd", "ice-options", "candidate":
            return !(value ?? "").isEmpty
        default: return true
        }
    }
}
