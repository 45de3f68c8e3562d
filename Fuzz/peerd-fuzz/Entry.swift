#if canImport(Glibc)
import Glibc
#endif

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// The target named by PEERD_FUZZ_TARGET.
func selectedTarget() -> @Sendable ([UInt8]) -> Void {
    let name = getenv("PEERD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTargets.all[name] else {
        let names = FuzzTargets.all.keys.sorted().joined(separator: ", ")
        printError("peerd-fuzz: set PEERD_FUZZ_TARGET to one of: \(names)")
        exit(2)
    }
    return target
}

#if FUZZING
import CFuzzSupport

// Set once before libFuzzer starts, then only read from libFuzzer's single thread.
nonisolated(unsafe) private var fuzzTarget: @Sendable ([UInt8]) -> Void = { _ in }

// libFuzzer calls this for each input. It runs on libFuzzer's single thread.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { [UInt8](UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzTarget(bytes)
    return 0
}

// SwiftPM renames an executable's `main` to `<module>_main`; this hands control to libFuzzer's driver.
@_cdecl("peerd_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    fuzzTarget = selectedTarget()
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzTestOneInput(data, size) }
}
#else
/// Without libFuzzer: replays the files named on the command line through the target (regression runs).
@main
struct ReplayMain {
    static func main() {
        let target = selectedTarget()
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { printError("cannot open \(path)"); exit(1) }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buffer, 1, buffer.count, file)
                if n <= 0 { break }
                bytes += buffer[..<n]
            }
            fclose(file)
            target(bytes)
            count += 1
        }
        print("replayed \(count) inputs")
    }
}
#endif
