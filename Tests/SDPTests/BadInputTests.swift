import Testing
import SDP

@Suite("Bad SDP input")
struct BadInputTests {
    static let header = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    static let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"

    func expectError(_ text: String, _ expected: SDPError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try SessionDescription(parsing: text) }
    }

    @Test func sizeLimits() throws {
        let padding = 65536 - Self.header.utf8.count - "a=x-pad:\r\n".utf8.count
        let atLimit = Self.header + "a=x-pad:" + String(repeating: "p", count: padding) + "\r\n"
        #expect(atLimit.utf8.count == 65536)
        #expect(try SessionDescription(parsing: atLimit).attributes.count == 1)
        let big = Self.header + "a=x-pad:" + String(repeating: "p", count: padding + 1) + "\r\n"
        expectError(big, .inputTooLarge(bytes: 65537, limit: 65536))
        #expect(throws: SDPError.inputTooLarge(bytes: 70000, limit: 65536)) {
            try SessionDescription(parsing: [UInt8](repeating: 0x61, count: 70000))
        }
        // LF line ends count as CRLF, the form `serialized()` writes: 1,001 LF lines leave room for
        // 1,001 bytes less, so whatever parses also re-parses from its serialization.
        let lfHeader = Self.header.replacingOccurrences(of: "\r\n", with: "\n")
        let lfLines = String(repeating: "a=x-lf\n", count: 996)
        let lfPadding = 65536 - (lfHeader.utf8.count + 4) - (lfLines.utf8.count + 996) - "a=x-pad:\r\n".utf8.count
        let lfAtLimit = lfHeader + lfLines + "a=x-pad:" + String(repeating: "p", count: lfPadding) + "\n"
        #expect(lfAtLimit.utf8.count == 65536 - 1001)
        let parsed = try SessionDescription(parsing: lfAtLimit)
        #expect(parsed.serialized().utf8.count == 65536)
        #expect(try SessionDescription(parsing: parsed.serialized()) == parsed)
        let lfOver = lfHeader + lfLines + "a=x-pad:" + String(repeating: "p", count: lfPadding + 1) + "\n"
        #expect(lfOver.utf8.count < 65536)
        expectError(lfOver, .inputTooLarge(bytes: 65537, limit: 65536))

        let manyLines = Self.header + String(repeating: "a=x\n", count: 1997)
        expectError(manyLines, .tooManyLines(limit: 2000))
        let maxLines = Self.header + String(repeating: "a=x\n", count: 1996)
        #expect(try SessionDescription(parsing: maxLines).attributes.count == 1996)
        #expect(SessionDescription.maximumLines == 2000)
        #expect(SessionDescription.maximumBytes == 65536)
    }

    @Test func encodingAndLineShape() {
        #expect(throws: SDPError.invalidUTF8) { try SessionDescription(parsing: [0x76, 0x3D, 0x30, 0x0A, 0xFF, 0xFE]) }
        expectError("", .emptyInput)
        expectError("\r\n\n\r\n", .emptyInput)
        expectError("v=0\r\n\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", .emptyLine(line: 2))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=a\u{0}b\r\nt=0 0\r\n", .invalidCharacter(line: 3))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=a\rb\r\nt=0 0\r\n", .invalidCharacter(line: 3))
        expectError(Self.header + "hello\r\n", .malformedLine(line: 5))
        expectError(Self.header + "a\r\n", .malformedLine(line: 5))
        expectError(Self.header + "ab=c\r\n", .malformedLine(line: 5))
        expectError(Self.header + "1=c\r\n", .malformedLine(line: 5))
        expectError(Self.header + " a=c\r\n", .malformedLine(line: 5))
        expectError("=0\r\n", .malformedLine(line: 1))
    }

    @Test func requiredLinesAndOrder() {
        expectError("o=- 1 2 IN IP4 0.0.0.0\r\nv=0\r\ns=-\r\nt=0 0\r\n", .missingLine(line: 1, type: "v"))
        expectError("v=0\r\n", .missingLine(line: 2, type: "o"))
        expectError("v=0\r\ns=-\r\nt=0 0\r\n", .missingLine(line: 2, type: "o"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\nt=0 0\r\n", .missingLine(line: 3, type: "s"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\n", .missingLine(line: 4, type: "t"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=x\r\n" + Self.audio, .missingLine(line: 5, type: "t"))
        expectError(Self.header + "c=IN IP4 0.0.0.0\r\n", .misplacedLine(line: 5, type: "c"))
        expectError(Self.header + "a=x\r\nb=AS:1\r\n", .misplacedLine(line: 6, type: "b"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nr=1d 1h 0\r\nt=0 0\r\n", .misplacedLine(line: 4, type: "r"))
        expectError(Self.header + "z=0 0\r\nr=1d 1h 0\r\n", .misplacedLine(line: 6, type: "r"))
        expectError(Self.header + "v=0\r\n", .misplacedLine(line: 5, type: "v"))
        expectError(Self.header + "s=again\r\n", .misplacedLine(line: 5, type: "s"))
        expectError(Self.header + Self.audio + "t=0 0\r\n", .misplacedLine(line: 6, type: "t"))
        expectError(Self.header + Self.audio + "o=- 1 2 IN IP4 0.0.0.0\r\n", .misplacedLine(line: 6, type: "o"))
        expectError(Self.header + Self.audio + "a=mid:0\r\nc=IN IP4 0.0.0.0\r\n", .misplacedLine(line: 7, type: "c"))
        expectError(Self.header + Self.audio + "b=AS:1\r\ni=late\r\n", .misplacedLine(line: 7, type: "i"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\ni=a\r\ni=b\r\nt=0 0\r\n", .duplicateLine(line: 5, type: "i"))
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n",
                    .duplicateLine(line: 5, type: "c"))
        expectError(Self.header + Self.audio + "c=IN IP4 0.0.0.0\r\nc=IN IP4 0.0.0.0\r\n", .duplicateLine(line: 7, type: "c"))
        expectError(Self.header + Self.audio + "i=a\r\ni=b\r\n", .duplicateLine(line: 7, type: "i"))
    }

    @Test func badFieldLines() {
        expectError("v=1\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", .badVersion(line: 1))
        expectError("v=\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", .badVersion(line: 1))
        for origin in ["- 1 2 IN IP4", "- x 2 IN IP4 0.0.0.0", "- 1 -2 IN IP4 0.0.0.0", "-  1 2 IN IP4 0.0.0.0",
                       "- 1 2 IN IP4 0.0.0.0 extra", ""] {
            expectError("v=0\r\no=\(origin)\r\ns=-\r\nt=0 0\r\n", .badOrigin(line: 2))
        }
        expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4\r\nt=0 0\r\n", .badConnection(line: 4))
        expectError(Self.header + Self.audio + "c=IN  IP4 0.0.0.0\r\n", .badConnection(line: 6))
        for bandwidth in ["AS", "AS:", "AS:x", ":5", "AS:-1", "AS:99999999999999999999"] {
            expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nb=\(bandwidth)\r\nt=0 0\r\n", .badBandwidth(line: 4))
        }
        for timing in ["0", "0 0 0", "a 0", "0 -1", ""] {
            expectError("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=\(timing)\r\n", .badTiming(line: 4))
        }
    }

    @Test func badMediaLines() {
        for line in ["audio 9 UDP/TLS/RTP/SAVPF", "audio 9", "audio  9 RTP/AVP 0", "audio 9 RTP/AVP 0 ", ""] {
            expectError(Self.header + "m=\(line)\r\n", .badMediaLine(line: 5))
        }
        for line in ["audio x RTP/AVP 0", "audio 65536 RTP/AVP 0", "audio -1 RTP/AVP 0", "audio 9/ RTP/AVP 0",
                     "audio 9/x RTP/AVP 0", "audio /2 RTP/AVP 0"] {
            expectError(Self.header + "m=\(line)\r\n", .badPort(line: 5))
        }
    }

    @Test func badAttributes() {
        let cases: [(String, String)] = [
            ("rtpmap:111 opus", "rtpmap"),
            ("rtpmap:111", "rtpmap"),
            ("rtpmap:128 opus/48000", "rtpmap"),
            ("rtpmap:x opus/48000", "rtpmap"),
            ("rtpmap:111 opus/fast", "rtpmap"),
            ("rtpmap:111 opus/48000/two", "rtpmap"),
            ("rtpmap:111 /48000", "rtpmap"),
            ("rtpmap", "rtpmap"),
            ("fingerprint:sha-256 ZZ:00", "fingerprint"),
            ("fingerprint:sha-256 00:11:22", "fingerprint"),
            ("fingerprint:sha-256", "fingerprint"),
            ("fingerprint:sha-1 0011223344", "fingerprint"),
            ("setup:maybe", "setup"),
            ("setup", "setup"),
            ("fmtp:abc minptime=10", "fmtp"),
            ("rtcp-fb:111", "rtcp-fb"),
            ("rtcp-fb:x nack", "rtcp-fb"),
            ("extmap:x urn:a", "extmap"),
            ("extmap:1/sideways urn:a", "extmap"),
            ("extmap:1", "extmap"),
            ("group:", "group"),
            ("msid:a b c", "msid"),
            ("msid-semantic:", "msid-semantic"),
            ("ssrc:abc cname:x", "ssrc"),
            ("ssrc:1", "ssrc"),
            ("ssrc-group:FID 1 x", "ssrc-group"),
            ("rtcp:x", "rtcp"),
            ("rtcp:9 IN IP4", "rtcp"),
            ("sctp-port:abc", "sctp-port"),
            ("sctp-port:70000", "sctp-port"),
            ("max-message-size:-1", "max-message-size"),
            ("ptime:20.5", "ptime"),
            ("mid:", "mid"),
            ("ice-ufrag", "ice-ufrag"),
            ("ice-pwd:", "ice-pwd"),
            ("candidate", "candidate"),
            (":value", ""),
        ]
        for (attribute, name) in cases {
            expectError(Self.header + Self.audio + "a=\(attribute)\r\n", .badAttribute(line: 6, name: name))
        }
        expectError(Self.header + "a=group:BUNDLE  0\r\n", .badAttribute(line: 5, name: "group"))
    }

    @Test func errorsReportTheirLine() {
        #expect(SDPError.badAttribute(line: 7, name: "rtpmap").line == 7)
        #expect(SDPError.missingLine(line: 1, type: "v").line == 1)
        #expect(SDPError.emptyInput.line == nil)
        #expect(SDPError.inputTooLarge(bytes: 1, limit: 0).line == nil)
    }

    @Test func lenientInputsAreAccepted() throws {
        let sdp = try SessionDescription(parsing: Self.header + Self.audio + "a=rtcp-mux:ignored\nq=odd\na=x-custom\n\n\n")
        #expect(sdp.media[0].rtcpMux)
        #expect(sdp.media[0].extraLines == [SDPLine(type: "q", value: "odd")])
        #expect(sdp.media[0].attributes.last == SDPAttribute("x-custom"))
        let emptyValue = try SessionDescription(parsing: Self.header + "a=x-empty:\r\n")
        #expect(emptyValue.attributes == [SDPAttribute("x-empty", "")])
        #expect(emptyValue.serialized() == Self.header + "a=x-empty:\r\n")
    }
}
