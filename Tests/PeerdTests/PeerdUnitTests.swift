import Testing
@testable import peerd

@Suite struct SafeFileNameTests {
    @Test func hostileIdsStayInsideTheDirectory() {
        for id in ["../../x", "/etc/passwd", "..", ".hidden", "a/b", "a\\b", "\u{0}nul", String(repeating: "x", count: 500), "", "имя"] {
            let name = SafeFileName.from(participantID: id)
            #expect(!name.contains("/") && !name.contains("\\") && !name.hasPrefix(".") && !name.isEmpty, "\(id) -> \(name)")
            #expect(name.utf8.count <= 64 + 9, "\(name)")
            #expect(name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) })
        }
    }

    @Test func plainIdsAreKeptAndDistinctIdsStayDistinct() {
        #expect(SafeFileName.from(participantID: "chr1") == "chr1")
        #expect(SafeFileName.from(participantID: "user-42_a.b") == "user-42_a.b")
        #expect(SafeFileName.from(participantID: "a/b") != SafeFileName.from(participantID: "a_b"))
        #expect(SafeFileName.from(participantID: "a/b") != SafeFileName.from(participantID: "a\\b"))
    }
}
