import ArgumentParser

@main
struct Peerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peerd",
        abstract: "A headless WebRTC audio peer: joins browser voice rooms, talks, listens and records.",
        discussion: """
            Examples:
              peerd demo                 local room server, web page, peerd and (if installed) a Chromium participant
              peerd serve --port 8080    a room server with the browser page
              peerd join ws://127.0.0.1:8080/ws --room general --tone 440 --record rec/
              peerd selfcheck            check that OpenSSL, libsrtp2, libopus and ALSA load and work
            """,
        subcommands: [DemoCommand.self, JoinCommand.self, ServeCommand.self, SelfCheck.self, RecordChildCommand.self]
    )
}
