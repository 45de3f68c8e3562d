import DTLS
import Foundation
import NIOCore
import NIOPosix
import Wire

/// `peerd-load`: N sending peers at one receiving peerd over real UDP on loopback (issue 7).
///
///     swift run -c release peerd-load sweep [--format ogg|wav] [--steps 500,1000,2000,3000] [--window 10]
///     swift run -c release peerd-load run --streams 1000 [--format ogg|wav] [--receiver peerd|aiortc|c]
///     swift run -c release peerd-load compare --streams 30      # peerd (ogg, wav) vs aiortc, same senders
///
/// The receiver is a child process (`peerd-load receive`, or `aiortc_receiver.py`) speaking JSON
/// lines on stdin/stdout; the senders run in this process on their own event loop.
@main
struct PeerdLoad {
    static let usage = """
    peerd-load: N sending peers (real ICE, DTLS-SRTP, 20 ms Opus at 50 packets/s each) at one receiving
    peerd (one event loop: PeerConnectionDriver per connection, RTP receive stream, Ogg pass-through
    or WAV-decoding recorder per stream) over UDP on 127.0.0.1. Prints a table.

      peerd-load sweep   [--format ogg|wav] [--steps 500,1000,2000,3000,4000] [--budget SECONDS]
                         steps N up until a step loses packets (or the time budget is spent)
      peerd-load run     --streams N [--format ogg|wav] [--receiver peerd|aiortc|c]
      peerd-load compare --streams M [--aiortc-script PATH]
                         the same senders against peerd (ogg), peerd (wav) and aiortc, in one run
      peerd-load reference --streams N [--rounds R]
                         peerd (--shared-port, Ogg) and the C primitives alone (`--receiver c`:
                         Benchmarks/c/reference_receiver.c, recvmmsg + libsrtp GCM + Ogg page; the
                         senders then use SRTP keys derived from the stream index, no ICE or DTLS),
                         back to back R times, alternating which goes first; prints the ratio
      peerd-load srtp-scaling [--sessions 1,500,1000,2000,4000]   (PEERD_NSS_OPTIMIZE_SPACE=1: small tables)
                         SRTP protect + unprotect per packet against the number of live sessions
    Common: --drain SECONDS (1.5: wait after the senders stop before counting)
            --nss-small-tables (receiver runs with PEERD_NSS_OPTIMIZE_SPACE=1: NSS as libsrtp sets it up)
            --vector N (receiver sockets' recvmmsg batch; default the driver's), --no-talk (receiver skips
            talk detection; experiments only: the bot runs it on every packet and every 20 ms),
            --no-prefetch (receiver gives the shared port no prefetch hints), --no-record (receiver records
            nothing), --no-owner (receiver only counts each RTP packet), --consent-interval SECONDS (receiver's
            RFC 7675 checks; default 5): experiments only, to see what each part costs
            --shared-port (receiver: every connection on ONE UDP port, `SharedUDPPort` as `peerd join --port`,
            recvmmsg batches across connections; the senders then use a socket each)
            --srtp-profile NAME (the senders offer only this profile, e.g. SRTP_AES128_CM_SHA1_80, which
            Chromium picks as the DTLS server; default SRTP_AEAD_AES_256_GCM first, as peerd prefers)
            --read-pacing MS (with --shared-port: the port is read MS ms after each batch; default 2, as
            `peerd join --port`; 0: as soon as it is readable)
            --ramp SECONDS (streams start one after another over this time; default 1 ms per stream, 0: at once)
            --window SECONDS (10) --warmup SECONDS (2, at least the ramp + 1.5) --in-flight K (32 handshakes at a time)
            --dir DIR (recordings; default $TMPDIR/peerd-load-recordings/slot-K, kept and overwritten by
            the next run: see `recordingsDirectory()` for why they are not deleted)
            --pin (the senders on the first core, the receiver alone on the last, by taskset(1))
            --live-senders (the senders packetize and protect each RTP packet as they send it; by default
            they protect the run's packets once connected, before sending starts, so that on 2 cores
            sending costs them a sendto(2) a packet and the full rate reaches the receiver)
            --sendto-senders (with a socket per sender: each prepared packet goes out by sendto(2) on the
            sender's socket; by default, when peerd-load may open an AF_PACKET socket (CAP_NET_RAW), one
            such socket on lo writes them with the senders' addresses, 64 per sendmmsg(2), for about
            half the senders' CPU: see `PacketInjector`)
    """

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let mode = arguments.first.map { $0.hasPrefix("-") ? "sweep" : $0 } ?? "sweep"
        if let first = arguments.first, !first.hasPrefix("-") { arguments.removeFirst() }
        if mode == "receive" {
            do { try await ReceiverMode.run(arguments: arguments) } catch {
                FileHandle.standardError.write(Data("receiver: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        if mode == "srtp-scaling" {
            do { try SRTPScaling.run(arguments: arguments) } catch {
                FileHandle.standardError.write(Data("srtp-scaling: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        if mode == "help" || arguments.contains("--help") || arguments.contains("-h") {
            say(usage)
            return
        }
        do {
            try await drive(mode: mode, arguments: arguments)
        } catch {
            FileHandle.standardError.write(Data("peerd-load: \(error)\n".utf8))
            exit(1)
        }
    }

    struct BadArgument: Error, CustomStringConvertible { var description: String }

    static func drive(mode: String, arguments: [String]) async throws {
        var format = "ogg"
        var steps: [Int]?
        var streams = 100
        var receiver = "peerd"
        var rounds = 3
        var budget = 300.0
        var options = StepOptions(receiverCommand: [], receiverName: "")
        var aiortcScript = FileManager.default.currentDirectoryPath + "/Benchmarks/peerd-load/aiortc_receiver.py"
        var directory: String?
        var nssSmallTables = false
        var receiverExtras: [String] = []
        var pin = false
        var index = 0
        func value() throws -> String {
            index += 1
            guard index < arguments.count else { throw BadArgument(description: "\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--format": format = try value()
            case "--steps": steps = try value().split(separator: ",").compactMap { Int($0) }
            case "--streams": streams = Int(try value()) ?? streams
            case "--receiver": receiver = try value()
            case "--rounds": rounds = Int(try value()) ?? rounds
            case "--window": options.window = Double(try value()) ?? options.window
            case "--warmup": options.warmup = Double(try value()) ?? options.warmup
            case "--ramp": options.ramp = Double(try value())
            case "--drain": options.drain = Double(try value()) ?? options.drain
            case "--live-senders": options.liveSenders = true
            case "--sendto-senders": options.sendtoSenders = true
            case "--pin": pin = true
            case "--budget": budget = Double(try value()) ?? budget
            case "--in-flight": options.maxInFlight = Int(try value()) ?? options.maxInFlight
            case "--aiortc-script": aiortcScript = try value()
            case "--dir": directory = try value()
            case "--nss-small-tables": nssSmallTables = true
            case "--vector": receiverExtras += ["--vector", try value()]
            case "--no-talk": receiverExtras.append("--no-talk")
            case "--no-record": receiverExtras.append("--no-record")
            case "--no-owner": receiverExtras.append("--no-owner")
            case "--no-prefetch": receiverExtras.append("--no-prefetch")
            case "--read-pacing": receiverExtras += ["--read-pacing", try value()]
            case "--consent-interval": receiverExtras += ["--consent-interval", try value()]
            case "--shared-port": receiverExtras.append("--shared-port"); options.sharedPort = true
            case "--srtp-profile":
                let name = try value()
                guard let profile = SRTPProfile.allCases.first(where: { $0.openSSLName == name }) else {
                    throw BadArgument(description: "--srtp-profile is one of \(SRTPProfile.allCases.map(\.openSSLName).joined(separator: ", "))")
                }
                options.srtpProfiles = [profile]
            default: throw BadArgument(description: "unknown option \(arguments[index]) (see --help)")
            }
            index += 1
        }
        guard format == "ogg" || format == "wav" else { throw BadArgument(description: "--format is ogg or wav") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        if pin {
            // The senders on the first core, the receiver alone on the last: the receiver's cost per
            // core, without the senders' threads taking turns on its core. Re-run under taskset (Swift
            // cannot import sched_setaffinity), before any thread of ours exists.
            guard cores >= 2 else { throw BadArgument(description: "--pin needs two cores") }
            if ProcessInfo.processInfo.environment["PEERD_LOAD_PINNED"] == nil {
                setenv("PEERD_LOAD_PINNED", "1", 1)
                let argv = ["/usr/bin/taskset", "-c", "0", executable] + CommandLine.arguments.dropFirst()
                var cArguments = argv.map { strdup($0) } + [nil]
                execv("/usr/bin/taskset", &cArguments)
                throw BadArgument(description: "--pin: could not run /usr/bin/taskset (errno \(errno))")
            }
        }
        let receiverPrefix = pin ? ["/usr/bin/taskset", "-c", "\(cores - 1)"] : []
        raiseFileLimit()
        let base = try directory ?? recordingsDirectory()
        let senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let certificate = try DTLSCertificate.generate()
        let frames = try preEncodedFrames()
        let log = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        // The C reference receiver (`--receiver c`), built from Benchmarks/c when asked for.
        let referenceReceiver = NSTemporaryDirectory() + "peerd-load-\(getpid())-reference-receiver"
        if receiver == "c" || mode == "reference" {
            guard format == "ogg" else { throw BadArgument(description: "--receiver c records Ogg only") }
            options.sharedPort = true  // a socket per sender, as for peerd's shared port
            let build = Process()
            build.executableURL = URL(fileURLWithPath: "/bin/sh")
            build.arguments = [FileManager.default.currentDirectoryPath + "/Benchmarks/c/build_reference_receiver.sh", referenceReceiver]
            build.standardOutput = FileHandle.nullDevice
            try build.run()
            build.waitUntilExit()
            guard build.terminationStatus == 0 else { throw BadArgument(description: "building the C reference receiver failed (run from the repository's root)") }
        }
        defer { try? FileManager.default.removeItem(atPath: referenceReceiver) }
        func command(_ kind: String, _ format: String) -> (command: [String], name: String) {
            let dir = base + "/\(kind)-\(format)"
            options.rawSRTP = kind == "c"
            if kind == "aiortc" {
                return (receiverPrefix + ["/usr/bin/env", "python3", aiortcScript, "--dir", dir], "aiortc 1.16 (MediaRecorder wav)")
            }
            if kind == "c" {
                try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                return (receiverPrefix + [referenceReceiver, dir], "C primitives (recvmmsg, libsrtp GCM, Ogg page)")
            }
            let env = nssSmallTables ? ["/usr/bin/env", "PEERD_NSS_OPTIMIZE_SPACE=1"] : []
            return (receiverPrefix + env + [executable, "receive", "--format", format, "--dir", dir] + receiverExtras,
                    "peerd (\(format == "ogg" ? "Ogg pass-through" : "WAV, decoded")\(nssSmallTables ? ", NSS small tables" : "")\(receiverExtras.isEmpty ? "" : ", " + receiverExtras.joined(separator: " ")))")
        }
        say("peerd-load \(mode): window \(formatted(options.window, 0)) s after \(formatted(options.warmup, 0)) s warm-up, 50 packets/s per stream, 127.0.0.1")
        say("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()) at start")
        say(tableHeader())
        var results: [StepResult] = []
        func step(_ n: Int, _ kind: String, _ format: String) async throws -> StepResult {
            (options.receiverCommand, options.receiverName) = command(kind, format)
            log("  \(options.receiverName): \(n) streams")
            let result = try await runStep(streams: n, options: options, senderLoop: senderGroup.next(),
                                           certificate: certificate, frames: frames, log: log)
            say(tableRow(result))
            if let note = result.note { say("    note: \(note)") }
            results.append(result)
            return result
        }
        let start = MonotonicTime.now()
        switch mode {
        case "sweep":
            let plan = steps ?? (format == "ogg" ? [500, 1000, 2000, 3000, 4000, 5000, 6000] : [100, 200, 300, 400, 600, 800])
            var best: StepResult?
            var bestAnyRate: StepResult?
            for n in plan {
                let elapsed = (MonotonicTime.now() - start).seconds
                let estimate = options.warmup + options.window + 10 + Double(n) * 0.006
                if elapsed + estimate > budget {
                    say("(stopping: the next step would pass the \(formatted(budget, 0)) s budget)")
                    break
                }
                let result = try await step(n, "peerd", format)
                // Loss or failed connections end the sweep; a sender that fell behind (rate < 98 %)
                // does not, but such a step does not count as carrying the full 50 packets/s.
                guard result.lostPackets == 0, result.connected == result.streams else { break }
                bestAnyRate = result
                if result.lossless { best = result }
            }
            if let best {
                say("largest N without loss at the full 50 packets/s on one receiving event loop (one core): \(best.streams) (\(formatted(best.loopMicrosPerPacket, 2)) µs/packet, \(formatted(best.rssPerConnectionKiB, 1)) KiB/connection)")
            } else {
                say("no step was lossless at the full rate")
            }
            if let bestAnyRate, bestAnyRate.streams != best?.streams {
                say("largest N without loss with the senders behind (\(formatted(bestAnyRate.senderRateFraction * 100, 1)) % of 50 packets/s): \(bestAnyRate.streams)")
            }
        case "run":
            _ = try await step(streams, receiver, format)
        case "compare":
            let ogg = try await step(streams, "peerd", "ogg")
            let wav = try await step(streams, "peerd", "wav")
            let aiortc = try await step(streams, "aiortc", "wav")
            say("")
            say("process CPU per received packet, \(streams) streams each, same senders, same run:")
            say("  peerd Ogg pass-through \(formatted(ogg.processMicrosPerPacket, 2)) µs, peerd WAV (decoded) \(formatted(wav.processMicrosPerPacket, 2)) µs, aiortc \(formatted(aiortc.processMicrosPerPacket, 1)) µs")
            say("  ratio aiortc / peerd: \(formatted(aiortc.processMicrosPerPacket / ogg.processMicrosPerPacket, 0))x (vs Ogg), \(formatted(aiortc.processMicrosPerPacket / wav.processMicrosPerPacket, 1))x (vs WAV, both decode)")
            say("  RSS per connection: peerd \(formatted(ogg.rssPerConnectionKiB, 0)) KiB, aiortc \(formatted(aiortc.rssPerConnectionKiB, 0)) KiB")
        case "reference":
            // peerd on its shared port and the C primitives alone, one after the other, alternating
            // which goes first, over the same senders: the machine's speed drifts from minute to
            // minute, the ratio of neighbouring runs much less.
            var ratios: [Double] = []
            var peerdFigures: [Double] = []
            var referenceFigures: [Double] = []
            if !receiverExtras.contains("--shared-port") { receiverExtras.append("--shared-port") }  // peerd on one port
            for round in 0..<rounds {
                var pair: [String: StepResult] = [:]
                for kind in round % 2 == 0 ? ["peerd", "c"] : ["c", "peerd"] {
                    pair[kind] = try await step(streams, kind, "ogg")
                }
                guard let peerd = pair["peerd"], let reference = pair["c"] else { continue }
                peerdFigures.append(peerd.processMicrosPerPacket)
                referenceFigures.append(reference.processMicrosPerPacket)
                ratios.append(peerd.processMicrosPerPacket / reference.processMicrosPerPacket)
            }
            func median(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.isEmpty ? .nan : sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            }
            say("")
            say("process CPU per received packet, \(streams) streams, \(ratios.count) rounds (peerd and the C primitives back to back):")
            say("  peerd \(peerdFigures.map { formatted($0, 2) }.joined(separator: " / ")) µs; C primitives \(referenceFigures.map { formatted($0, 2) }.joined(separator: " / ")) µs")
            say("  ratio peerd / C per round: \(ratios.map { formatted($0, 2) }.joined(separator: " / ")); median \(formatted(median(ratios), 2)) (peerd median \(formatted(median(peerdFigures), 2)) µs, C median \(formatted(median(referenceFigures), 2)) µs)")
        default:
            throw BadArgument(description: "unknown mode \(mode) (see --help)")
        }
        say("SRTP: \(SRTPCrypto.summary) (receiver and senders; PEERD_SRTP_CRYPTO=nss for NSS)")
        say("load average at end: \(loadAverage()); total \(formatted((MonotonicTime.now() - start).seconds, 0)) s")
        try await senderGroup.shutdownGracefully()
    }

    /// Unbuffered, so the table shows up row by row even through a pipe.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "?"
    }
}

/// Where the recordings go by default: `$TMPDIR/peerd-load-recordings/slot-K`, the first slot no
/// other peerd-load holds (an exclusive `flock` on its lock file, kept until exit), kept after
/// the run and overwritten by the next. Deleting a run's thousands of files makes ext4 skip the
/// recently deleted inodes (its `recently_deleted` check, for 1–5 minutes) at every file the next
/// run creates: 200 µs a file instead of 9 (measured, 3,000 files), on the receiver's core. That
/// is the benchmark's doing, not a recording bot's; files that already exist are truncated instead.
func recordingsDirectory() throws -> String {
    let root = NSTemporaryDirectory() + "peerd-load-recordings"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    for slot in 0..<64 {
        let lock = open(root + "/slot-\(slot).lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { continue }
        if flock(lock, LOCK_EX | LOCK_NB) == 0 { return root + "/slot-\(slot)" }  // held (open) until exit
        close(lock)
    }
    throw PeerdLoad.BadArgument(description: "no free recordings slot in \(root) (64 peerd-load at once?)")
}
