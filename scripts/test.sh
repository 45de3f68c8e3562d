#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs `swift test`, then the fuzz targets for a
# bounded time. Prints a closing "tests: N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh --with-test-tools || exit 1

mkdir -p artifacts
log=artifacts/swift-test.log
swift build --build-tests 2>&1 | tail -n 5
swift test --no-parallel 2>&1 | tee "$log" | grep -vE '^(\[[0-9]+/[0-9]+\]|Test Case .* (started|passed)|◇ Test .* started|✔ Test [^r].*passed after)'
status=${PIPESTATUS[0]}

# One check after the unit tests: the command's output goes to artifacts/LOG; on success the lines
# matching PATTERN are shown, on failure the last LINES lines and "WHAT FAILED (artifacts/LOG)".
# Returns the command's status.
run_check() {
    local log=$1 pattern=$2 lines=$3 what=$4
    shift 4
    if "$@" > "artifacts/$log" 2>&1; then
        grep -E "$pattern" "artifacts/$log" | head -n 20
    else
        tail -n "$lines" "artifacts/$log"
        echo "$what FAILED (artifacts/$log)"
        return 1
    fi
}

# peerd against an independent stack: an aiortc participant in a room with the peerd bot, both
# join orders and peerd offering; both directions checked by dominant frequency.
interop_status=0
if [[ $status -eq 0 ]]; then
    echo "interop: aiortc participant against peerd"
    if run_check aiortc-interop.log '^(order|peerd-|aiortc-|  )' 40 "interop: aiortc" ./Tests/Interop/run_aiortc_interop.sh all; then
        echo "interop: aiortc passed"
    else
        interop_status=1
    fi
fi

# The README's main job: `peerd demo` with its headless Chromium participant, both directions by
# frequency, the recording, events.jsonl and stats.json (Tests/Interop/check_demo.py).
if [[ $status -eq 0 ]]; then
    echo "demo: peerd demo with a headless Chromium participant"
    run_check demo-check.log '^demo check: ' 30 "demo:" python3 Tests/Interop/check_demo.py || interop_status=1
fi

# A recording peerd in a room that participants keep joining, leaving and dying in: every
# recording finalized with its tone, no descriptor, thread or memory growth, the room server restarted
# twice under it (Benchmarks/soak/churn.py).
# Then the room server under thousands of short-lived clients: everything given back (Benchmarks/soak/rooms.py).
churn_status=0
if [[ $status -eq 0 ]]; then
    echo "soak: participants joining and leaving a recording peerd"
    run_check churn.log '^churn: ' 30 "soak: churn" \
        python3 Benchmarks/soak/churn.py --cycles 12 --parallel 3 --hold 1.5 --warmup 4 --server-restart-every 4 || churn_status=1
    echo "soak: the same with decoded (WAV) recordings"
    run_check churn-wav.log '^churn: ' 30 "soak: churn (WAV)" \
        python3 Benchmarks/soak/churn.py --format wav --cycles 10 --parallel 3 --hold 1.5 --warmup 3 || churn_status=1
    echo "soak: thousands of clients joining and leaving the room server"
    run_check rooms-soak.log '^rooms soak: ' 20 "soak: room server" python3 Benchmarks/soak/rooms.py || churn_status=1
fi

fuzz_status=0
if [[ "${PEERD_SKIP_FUZZ:-0}" != "1" ]]; then
    ./scripts/fuzz.sh "${PEERD_FUZZ_SECONDS:-20}" || fuzz_status=$?
fi

summary=$(grep -E 'Test run with [0-9]+ tests? ' "$log" | tail -n 1)
total=$(sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(grep -oE 'with [0-9]+ issues?' <<<"$summary" | grep -oE '[0-9]+' || true)
[[ -n "$total" ]] || total=0
if [[ $status -ne 0 || $fuzz_status -ne 0 || $interop_status -ne 0 || $churn_status -ne 0 ]]; then
    failures=$(grep -cE '^✘ Test .* (failed|recorded)' "$log" || true)
    echo "tests: $(( total - ${failures:-0} )) passed, ${failures:-1} failed"
    exit 1
fi
echo "tests: $total passed, 0 failed"
