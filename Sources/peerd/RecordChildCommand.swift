import ArgumentParser
import RTP
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// `peerd record-test-child` (hidden): records a simulated participant in real time, for the
/// kill -9 test. Opus packets of a tone arrive every 20 ms of wallclock and go through the real
/// `OggOpusRecorder` into an `OggFileOutput`, exactly as the bot records a participant, until
/// the process is killed (or `--seconds` pass, then the file is finished normally).
struct RecordChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record-test-child",
        abstract: "Test helper: record a simulated tone participant to an Ogg Opus file in real time.",
        shouldDisplay: false
    )

    @Option(help: "The Ogg Opus file to write.") var output: String
    @Option(help: "Tone frequency in Hz.") var frequency: Double = 440
    @Option(help: "Stop (and finish the file) after this many seconds if not killed.") var seconds: Double = 30

    func run() throws {
        let encoder = try OpusEncoder(channels: 1, application: .audio)
        var tone = ToneGenerator(frequency: frequency, amplitude: 0.4)
        let file = try OggFileOutput(path: output)
        let recorder = try OggOpusRecorder(output: file, serialNumber: 0x6B69_6C6C)
        let start = MonotonicTime.now()
        var sequence = SequenceNumber(UInt16.random(in: 0...UInt16.max))
        var timestamp = RTPTimestamp(UInt32.random(in: 0...UInt32.max))
        let frames = Int(seconds * 50)
        for k in 0..<frames {
            let due = start + .milliseconds(20 * k)
            let wait = due - MonotonicTime.now()
            if wait > .zero {
                var spec = timespec(tv_sec: Int(wait.components.seconds), tv_nsec: Int(wait.components.attoseconds / 1_000_000_000))
                nanosleep(&spec, nil)
            }
            let now = MonotonicTime.now()
            let packet = try encoder.encode(tone.next(frames: 960))
            try recorder.receive(ssrc: 0x5EED, sequenceNumber: sequence, timestamp: timestamp, payload: packet, arrival: now)
            try recorder.tick(now: now)
            if k == 0 {
                print("recording", output)
                fflush(nil)  // all output streams (stdout is not concurrency-safe to name)
            }
            sequence = SequenceNumber(sequence.rawValue &+ 1)
            timestamp = RTPTimestamp(timestamp.rawValue &+ 960)
        }
        try recorder.finish()
        try file.close()
    }
}
