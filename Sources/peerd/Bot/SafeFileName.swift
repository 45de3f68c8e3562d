import Wire

/// File names from participant ids that cannot leave the record directory: only
/// `[A-Za-z0-9._-]` survive, no leading dot, at most 64 bytes, and a hash suffix whenever the
/// id had to be changed (so `a/b` and `a_b` do not collide).
enum SafeFileName {
    static func from(participantID id: String) -> String {
        var kept = ""
        for scalar in id.unicodeScalars.prefix(64) {
            let ok = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                || scalar == "-" || scalar == "_" || scalar == "."
            kept.unicodeScalars.append(ok ? scalar : "_")
        }
        while kept.hasPrefix(".") { kept.removeFirst() }
        if kept.isEmpty { kept = "participant" }
        if kept != id {
            kept += "-" + String(CRC32.checksum(Array(id.utf8)), radix: 16)
        }
        return kept
    }
}
