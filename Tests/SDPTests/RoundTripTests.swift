import Foundation
import Testing
import SDP

@Suite("SDP fixtures round-trip")
struct RoundTripTests {
    @Test func fixturesArePresent() throws {
        let names = try SDPFixtures.names()
        #expect(names.count >= 18)
        #expect(names.contains("chromium156-offer-to-aiortc1.16-full.sdp"))
        #expect(names.contains("firefox153-offer-to-chromium156-full.sdp"))
        #expect(names.contains("aiortc1.16-answer-to-chromium156-full.sdp"))
    }

    @Test(arguments: try SDPFixtures.names())
    func roundTripsExactly(name: String) throws {
        let text = try SDPFixtures.text(name)
        let parsed = try SessionDescription(parsing: text)
        #expect(parsed.serialized() == SDPFixtures.crlf(text))
        #expect(parsed.description == parsed.serialized())
        let fromBytes = try SessionDescription(parsing: try SDPFixtures.bytes(name))
        #expect(fromBytes == parsed)
        #expect(fromBytes.serializedBytes() == Array(SDPFixtures.crlf(text).utf8))
        #expect(!parsed.media.isEmpty)
    }

    @Test(arguments: try SDPFixtures.names())
    func acceptsLFEndingsAndTrailingEmptyLines(name: String) throws {
        let crlf = SDPFixtures.crlf(try SDPFixtures.text(name))
        let lf = crlf.replacingOccurrences(of: "\r\n", with: "\n")
        let reference = try SessionDescription(parsing: crlf)
        #expect(try SessionDescription(parsing: lf) == reference)
        #expect(try SessionDescription(parsing: lf + "\n") == reference)
        #expect(try SessionDescription(parsing: crlf + "\r\n\r\n") == reference)
        #expect(try SessionDescription(parsing: String(lf.dropLast())) == reference)
        #expect(try SessionDescription(parsing: lf).serialized() == crlf)
    }
}
