/// Writes a session description as CRLF-terminated lines in RFC 8866 order.
enum SDPSerializer {
    static func serialize(_ session: SessionDescription) -> String {
        var out = ""
        out.reserveCapacity(2048)
        func line(_ type: String, _ value: String) {
            out += type
            out += "="
            out += value
            out += "\r\n"
        }
        line("v", String(session.version))
        line("o", session.origin.text)
        line("s", session.sessionName)
        if let info = session.sessionInformation { line("i", info) }
        if let uri = session.uri { line("u", uri) }
        for email in session.emails { line("e", email) }
        for phone in session.phones { line("p", phone) }
        if let connection = session.connection { line("c", connection.text) }
        for bandwidth in session.bandwidths { line("b", bandwidth.text) }
        for timing in session.timings {
            line("t", "\(timing.start) \(timing.stop)")
            for repeatLine in timing.repeats { line("r", repeatLine) }
        }
        if let zones = session.timeZones { line("z", zones) }
        if let key = session.encryptionKey { line("k", key) }
        for attribute in session.attributes { line("a", attribute.text) }
        for extra in session.extraLines { line(String(extra.type), extra.value) }

        for media in session.media {
            var port = String(media.port)
            if let count = media.portCount { port += "/\(count)" }
            line("m", ([media.kind.description, port, media.proto] + media.formats).joined(separator: " "))
            if let title = media.title { line("i", title) }
            if let connection = media.connection { line("c", connection.text) }
            for bandwidth in media.bandwidths { line("b", bandwidth.text) }
            if let key = media.encryptionKey { line("k", key) }
            for attribute in media.attributes { line("a", attribute.text) }
            for extra in media.extraLines { line(String(extra.type), extra.value) }
        }
        return out
    }
}
