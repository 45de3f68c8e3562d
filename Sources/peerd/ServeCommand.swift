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
            The WebSocket endpoint is /ws, the page is /, health is /health.

            Example:
              peerd serve --host 127.0.0.1 --port 8080
            """
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8080

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let server = RoomServer(configuration: .init(host: host, port: port))
        let runner = Task { try await server.run() }
        if let bound = await server.waitUntilListening() {
            print("room server on http://\(host):\(bound)/ (WebSocket ws://\(host):\(bound)/ws)")
        }
        await waitForStop(seconds: nil)
        await server.shutdown()
        _ = await runner.result
    }
}
