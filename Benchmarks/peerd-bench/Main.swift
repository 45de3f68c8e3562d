/// `swift run -c release peerd-bench [FILTER]`: wire-format and core costs. Groups: wire, srtp,
/// dtls, ice, media, pc; FILTER selects benchmark names containing it (case-insensitive).
@main
struct BenchMain {
    static func main() {
        var bench = Bench(filter: CommandLine.arguments.dropFirst().first)
        print("peerd-bench (release build expected; medians) load average at start: \(loadAverage())")
        WireBenchmarks.run(&bench)
        RTPWireBenchmarks.run(&bench)
        SRTPBenchmarks.run(&bench)
        DTLSBenchmarks.run(&bench)
        ICEBenchmarks.run(&bench)
        MediaBenchmarks.run(&bench)
        PeerConnectionBenchmarks.run(&bench)
        ManyConnectionsBenchmark.run(&bench)
        print("load average at end: \(loadAverage()); peak RSS \(peakResidentKiB()) KiB")
    }
}
