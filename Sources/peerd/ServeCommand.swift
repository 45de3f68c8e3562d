import ArgumentParser
import Foundation
import Logging
import Signaling

/// `peerd serve`: the room server (and the browser page) on one port.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a room server compatible with the browser voice rooms, serving the web page too.",
        discussion: """
            The WebSocket endpoint is /ws, the page is /, health is /health (connections,
            users, rooms, and the server's heap in use).

            Example:
              peerd serve --host 127.0.0.1 --port 8080
            """
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8080

    @Option(help: "Seconds between WebSocket pings; a client that does not answer is dropped.")
    var pingInterval: Double = 20

    func validate() throws {
        guard pingInterval >= 0.1, pingInterval <= 3600 else {
            throw ValidationError("--ping-interval must be between 0.1 and 3600 seconds")
        }
    }

    /// `--ping-interval` as the server configuration takes it (milliseconds).
    var pingPeriod: Duration { .milliseconds(Int64((pingInterval * 1000).rounded())) }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let server = RoomServer(configuration: .init(host: host, port: port, pingInterval: pingPeriod))
        let runner = Task { try await server.run() }
        if let bound = await server.waitUntilListening() {
            print("room server on http://\(host):\(bound)/ (WebSocket ws://\(host):\(bound)/ws)")
        }
        await waitForStop(seconds: nil)
        await server.shutdown()
        _ = await runner.result
    }
}
