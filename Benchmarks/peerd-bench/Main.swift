/// `swift run -c release peerd-bench [FILTER]`: wire-format and core costs, in ns per operation.
@main
struct BenchMain {
    static func main() {
        var bench = Bench(filter: CommandLine.arguments.dropFirst().first)
        print("peerd-bench (release build expected; figures are medians of 7 rounds)")
        WireBenchmarks.run(&bench)
        print("peak RSS \(peakResidentKiB()) KiB")
    }
}
