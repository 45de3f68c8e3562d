/// Why a session description could not be parsed. Every case that concerns one line carries
/// its 1-based line number.
public enum SDPError: Error, Equatable, Sendable {
    /// The input is larger than `SessionDescription.maximumBytes`, as given or with CRLF line ends (as
    /// `serialized()` writes it).
    case inputTooLarge(bytes: Int, limit: Int)
    /// The input has more than `SessionDescription.maximumLines` lines.
    case tooManyLines(limit: Int)
    /// The bytes are not valid UTF-8.
    case invalidUTF8
    /// The input holds no line at all (only empty lines or nothing).
    case emptyInput
    /// An empty line before the end of the input.
    case emptyLine(line: Int)
    /// A NUL or a lone CR inside a line.
    case invalidCharacter(line: Int)
    /// The line is not `<letter>=<value>`.
    case malformedLine(line: Int)
    /// A line of type `type` is required at this line (`v=` first, `o=` second, `s=` third,
    /// at least one `t=` before the first `m=`).
    case missingLine(line: Int, type: Character)
    /// A known line type out of the order RFC 8866 requires (for example `c=` after `t=`,
    /// `r=` without `t=`, or a session-only line inside a media section).
    case misplacedLine(line: Int, type: Character)
    /// A second line of a type that may occur only once in its section.
    case duplicateLine(line: Int, type: Character)
    /// `v=` is not `0`.
    case badVersion(line: Int)
    /// `o=` does not have six fields with numeric session id and version.
    case badOrigin(line: Int)
    /// `c=` does not have three fields.
    case badConnection(line: Int)
    /// `b=` is not `<type>:<number>`.
    case badBandwidth(line: Int)
    /// `t=` is not two numbers.
    case badTiming(line: Int)
    /// `m=` does not have media, port, proto and at least one format.
    case badMediaLine(line: Int)
    /// The `m=` port or port count is not a number in 0...65535.
    case badPort(line: Int)
    /// A known attribute whose value does not follow its grammar (bad rtpmap, bad fingerprint
    /// hex, non-numeric sctp-port, ...), or an attribute with an empty name.
    case badAttribute(line: Int, name: String)

    /// The 1-based line number the error refers to, if it refers to one.
    public var line: Int? {
        switch self {
        case .inputTooLarge, .tooManyLines, .invalidUTF8, .emptyInput:
            return nil
        case .emptyLine(let line), .invalidCharacter(let line), .malformedLine(let line),
             .missingLine(let line, _), .misplacedLine(let line, _), .duplicateLine(let line, _),
             .badVersion(let line), .badOrigin(let line), .badConnection(let line),
             .badBandwidth(let line), .badTiming(let line), .badMediaLine(let line),
             .badPort(let line), .badAttribute(let line, _):
            return line
        }
    }
}
