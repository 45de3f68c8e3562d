import Foundation
import RTP
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The `peerd` executable next to the test bundle (built with the tests by `swift build --build-tests`).
private func peerdExecutable() -> String? {
    var candidates: [URL] = []
    if let executable = Bundle.main.executableURL { candidates.append(executable.deletingLastPathComponent()) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug"))
    for directory in candidates {
        let path = directory.appendingPathComponent("peerd").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

@Suite("Recording survives kill -9")
struct KillRecordingTests {
    @Test("a process recording in real time, killed with SIGKILL after 2.5 s, leaves a playable Ogg Opus file with the tone")
    func sigkillMidRecording() throws {
        let executable = try #require(peerdExecutable(), "peerd executable not found next to the tests: run `swift build --build-tests`")
        let dir = try MediaTempDirectory()
        defer { dir.remove() }
        let path = dir.path("killed.opus")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["record-test-child", "--output", path, "--frequency", "440", "--seconds", "30"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Wait until the child recorded its first packet (it prints "recording"), at most 20 s.
        var seen = ""
        let deadline = Date().addingTimeInterval(20)
        let handle = pipe.fileHandleForReading
        while !seen.contains("recording"), Date() < deadline, process.isRunning {
            var poll = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            if Glibc.poll(&poll, 1, 100) > 0 {
                let data = handle.availableData
                if data.isEmpty { break }
                seen += String(decoding: data, as: UTF8.self)
            }
        }
        try #require(seen.contains("recording"), "the child did not start recording: \(seen)")
        Thread.sleep(forTimeInterval: 2.5)
        #expect(process.isRunning, "the child stopped before it was killed")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)

        let bytes = try readFileBytes(path)
        #expect(bytes.count > 2_000, "\(bytes.count) bytes on disk")
        // Our reader: whole pages with valid CRCs, no end-of-stream page (the process never finished).
        var reader = OggOpusReader()
        reader.append(bytes)
        var packets = 0
        var lastGranule: Int64 = 0
        var sawEOS = false
        while let packet = try reader.nextPacket() {
            packets += 1
            lastGranule = packet.granulePosition
            sawEOS = sawEOS || packet.isEndOfStream
        }
        #expect(!sawEOS)
        let seconds = Double(lastGranule - Int64(reader.preSkip ?? 0)) / 48_000
        #expect(seconds >= 1.5 && seconds <= 2.7, "\(packets) packets, \(seconds) s recorded before the kill")

        if let info = try MediaTools.run("opusinfo", [path]) {
            // opusinfo exits 1 for a stream without EOS ("normal for live streams"); that must be its only complaint.
            let warnings = info.output.split(separator: "\n").filter { $0.contains("WARNING") || $0.contains("ERROR") }
            #expect(warnings.allSatisfy { $0.contains("EOS not set") }, "opusinfo: \(info.output)")
            #expect(info.status == 0 || warnings.count == 1, "opusinfo: \(info.output)")
            #expect(info.output.contains("Playback length"), "opusinfo: \(info.output)")
        }
        if let probe = try MediaTools.run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]) {
            #expect(probe.status == 0, "ffprobe: \(probe.output)")
            let value = Double(probe.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(value >= 1.5, "ffprobe duration \(value)")
        }
        if let dec = try MediaTools.run("opusdec", ["--rate", "48000", path, dir.path("killed.wav")]) {
            #expect(dec.status == 0, "opusdec: \(dec.output)")
            let wav = try WAVFile.parse(try readFileBytes(dir.path("killed.wav")))
            #expect(wav.durationSeconds >= 1.5, "decoded \(wav.durationSeconds) s")
            let middle = Array(wav.samples[(48_000 / 5)..<min(wav.samples.count, 48_000 * 3 / 2)])
            let frequency = try #require(AudioAnalysis.dominantFrequency(samples: middle, sampleRate: 48_000))
            #expect(abs(frequency - 440) < 3, "decoded tone at \(frequency) Hz")
        }
    }
}
