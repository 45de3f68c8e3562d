#!/usr/bin/env bash
# Builds the libFuzzer entry points (AddressSanitizer on) and runs each parser's target for a
# bounded time, seeded from Fixtures/fuzz/<target>/. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
targets=(stun channeldata candidate rtp rtcp sdp ogg wav)

echo "fuzz: building peerd-fuzz with -sanitize=fuzzer,address"
if ! swift build --product peerd-fuzz --scratch-path .build-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING 2>&1 | tail -n 3; then
    echo "fuzz: build failed"; exit 1
fi
binary=.build-fuzz/debug/peerd-fuzz
mkdir -p artifacts/fuzz
failed=0
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    if [[ -d "Fixtures/fuzz/$target" ]]; then cp -r "Fixtures/fuzz/$target/." "$corpus/"; fi
    log="artifacts/fuzz/$target.log"
    if PEERD_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" \
            -artifact_prefix="artifacts/fuzz/$target-" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
        echo "fuzz: $target ok, ${runs:-?} runs in ${seconds}s, no crash"
    else
        echo "fuzz: $target FAILED (see $log)"; tail -n 30 "$log"; failed=1
    fi
    rm -rf "$corpus"
done
exit $failed
