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

# peerd against an independent stack: an aiortc participant in a room with the peerd bot, both
# join orders and peerd offering; both directions checked by dominant frequency.
interop_status=0
if [[ $status -eq 0 ]]; then
    echo "interop: aiortc participant against peerd"
    if ./Tests/Interop/run_aiortc_interop.sh all > artifacts/aiortc-interop.log 2>&1; then
        grep -E '^(order|peerd-|aiortc-|  )' artifacts/aiortc-interop.log | head -n 8
        echo "interop: aiortc passed"
    else
        tail -n 40 artifacts/aiortc-interop.log
        echo "interop: aiortc FAILED (artifacts/aiortc-interop.log)"
        interop_status=1
    fi
fi

# The README's main job: `peerd demo` with its headless Chromium participant, both directions by
# frequency, the recording, events.jsonl and stats.json (Tests/Interop/check_demo.py).
if [[ $status -eq 0 ]]; then
    echo "demo: peerd demo with a headless Chromium participant"
    if python3 Tests/Interop/check_demo.py > artifacts/demo-check.log 2>&1; then
        grep -E '^demo check: ' artifacts/demo-check.log
    else
        tail -n 30 artifacts/demo-check.log
        echo "demo: FAILED (artifacts/demo-check.log)"
        interop_status=1
    fi
fi

# A recording peerd in a room that participants keep joining, leaving and dying in: every
# recording finalized with its tone, no descriptor, thread or memory growth, the room server restarted
# twice under it (Benchmarks/soak/churn.py).
# Then the room server under thousands of short-lived clients: everything given back (Benchmarks/soak/rooms.py).
churn_status=0
if [[ $status -eq 0 ]]; then
    echo "soak: participants joining and leaving a recording peerd"
    if python3 Benchmarks/soak/churn.py --cycles 12 --parallel 3 --hold 1.5 --warmup 4 --server-restart-every 4 > artifacts/churn.log 2>&1; then
        grep -E '^churn: ' artifacts/churn.log
    else
        tail -n 30 artifacts/churn.log
        echo "soak: churn FAILED (artifacts/churn.log)"
        churn_status=1
    fi
    echo "soak: the same with decoded (WAV) recordings"
    if python3 Benchmarks/soak/churn.py --format wav --cycles 10 --parallel 3 --hold 1.5 --warmup 3 > artifacts/churn-wav.log 2>&1; then
        grep -E '^churn: ' artifacts/churn-wav.log
    else
        tail -n 30 artifacts/churn-wav.log
        echo "soak: churn (WAV) FAILED (artifacts/churn-wav.log)"
        churn_status=1
    fi
    echo "soak: thousands of clients joining and leaving the room server"
    if python3 Benchmarks/soak/rooms.py > artifacts/rooms-soak.log 2>&1; then
        grep -E '^rooms soak: ' artifacts/rooms-soak.log
    else
        tail -n 20 artifacts/rooms-soak.log
        echo "soak: room server FAILED (artifacts/rooms-soak.log)"
        churn_status=1
    fi
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
