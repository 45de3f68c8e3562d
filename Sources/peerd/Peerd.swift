import ArgumentParser

@main
struct Peerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peerd",
        abstract: "A headless WebRTC audio peer: joins browser voice rooms, talks, listens and records.",
        discussion: """
            Examples:
              peerd selfcheck            check that OpenSSL, libsrtp2, libopus and ALSA load and work
            """,
        subcommands: [SelfCheck.self]
    )
}
