#!/usr/bin/env bash
# Interop test: peerd <-> an aiortc participant, both directions, through `peerd serve`.
#
# Usage: Tests/Interop/run_aiortc_interop.sh [peerd-first|aiortc-first|peerd-offers|both|all]
#   peerd-first   peerd joins, the aiortc participant 3 s later (it offers to peerd, like a newcomer browser)
#   aiortc-first  the aiortc participant joins, peerd 3 s later (the aiortc side offers at once, as a browser
#                 does on every participant update; peerd answers)
#   peerd-offers  like peerd-first, but the aiortc participant never offers: peerd must offer after
#                 --offer-delay and the aiortc side answers
#   both (default) = peerd-first + aiortc-first; all = the three
# Env:   PEERD=path/to/peerd (default: .build/debug/peerd of this repository)
#        PYTHON=python3, PEERD_TRICKLE=on|off (passed to peerd join --trickle, default on)
#        PEERD_FORMAT=ogg|wav (peerd join --format; default ogg, decoded with opusdec or ffmpeg)
#        PEERD_OFFER_DELAY=seconds (peerd join --offer-delay; 0 makes both sides offer at once: glare)
#        AIORTC_ID=id of the aiortc participant (default aiortc-y; glare: it keeps its offer iff its id > peerd-x)
#        AIORTC_OPUS_MONO=1 makes the aiortc side send mono Opus (like Chrome) instead of aiortc's stereo
#        KEEP=1 keeps the temporary directories (logs, recordings)
# Needs: python3 with aiortc + websockets (pip install aiortc websockets), numpy,
#        and opusdec (opus-tools) or ffmpeg.
#
# Per scenario: starts `peerd serve` on a free port, the peerd bot (tone 440 Hz, records
# to a temp dir, --loopback, 20 s) and the aiortc participant (tone 660 Hz, 15 s), the
# second one 3 s after the first. Checks that the aiortc participant heard ~440 Hz from
# peerd and that peerd's recording of the aiortc participant decodes to ~660 Hz with at
# least 1.5 s of audio. Exits 0 when every scenario passes.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERD="${PEERD:-$REPO/.build/debug/peerd}"
PYTHON="${PYTHON:-python3}"
TRICKLE="${PEERD_TRICKLE:-on}"
FORMAT="${PEERD_FORMAT:-ogg}"
OFFER_DELAY_ARGS=()
[ -n "${PEERD_OFFER_DELAY:-}" ] && OFFER_DELAY_ARGS=(--offer-delay "$PEERD_OFFER_DELAY")
MODE="${1:-both}"

PEERD_TONE=440
AIORTC_TONE=660
TOLERANCE=25
PEERD_DURATION=20
AIORTC_DURATION=15
STAGGER=3
MIN_AUDIO_S=1.5

die() { echo "FAIL: $*" >&2; exit 2; }

[ -x "$PEERD" ] || die "peerd binary not found at $PEERD (build it, or set PEERD=...)"
"$PYTHON" -c "import aiortc, websockets, numpy, av" 2>/dev/null \
    || die "$PYTHON lacks aiortc/websockets/numpy/av: pip install aiortc websockets"
if command -v opusdec >/dev/null; then DECODER=opusdec
elif command -v ffmpeg >/dev/null; then DECODER=ffmpeg
else die "need opusdec (opus-tools) or ffmpeg to decode peerd's recording"; fi

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    local port=$1
    for _ in $(seq 1 100); do
        "$PYTHON" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))" && return 0
        sleep 0.1
    done
    return 1
}

# Converts a 16-bit WAV file to 48 kHz mono s16 raw ($2).
wav_to_raw() {
    "$PYTHON" - "$1" "$2" <<'EOF'
import sys, wave, numpy as np
w = wave.open(sys.argv[1])
ch, n = w.getnchannels(), w.getnframes()
a = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, ch).astype(np.int32).mean(axis=1)
a.astype("<i2").tofile(sys.argv[2])
EOF
}

# Decodes an Ogg Opus file to 48 kHz mono s16 raw; echoes nothing, writes $2.
decode_ogg() {
    local ogg=$1 raw=$2
    if [ "$DECODER" = opusdec ]; then
        opusdec --quiet --rate 48000 --force-wav "$ogg" "$raw.wav" >/dev/null 2>&1 || return 1
        wav_to_raw "$raw.wav" "$raw"
    else
        ffmpeg -v error -y -i "$ogg" -f s16le -ac 1 -ar 48000 "$raw" || return 1
    fi
}

# Prints "<dominant_hz> <seconds>" of a 48 kHz mono s16 raw file.
analyse_raw() {
    "$PYTHON" - "$1" <<'EOF'
import sys, numpy as np
x = np.fromfile(sys.argv[1], dtype="<i2").astype(np.float64) / 32768.0
rate = 48000
secs = len(x) / rate
if len(x) > rate:
    x = x[rate // 2:]
if len(x) < 1024:
    print(0.0, round(secs, 2)); sys.exit(0)
s = np.abs(np.fft.rfft(x * np.hanning(len(x))))
s[0] = 0
k = int(np.argmax(s))
if 0 < k < len(s) - 1:
    a, b, c = s[k - 1], s[k], s[k + 1]
    d = a - 2 * b + c
    k = k + (0.5 * (a - c) / d if d else 0)
print(round(k * rate / len(x), 1), round(secs, 2))
EOF
}

RESULTS=()
FAILED=0

run_scenario() {
    local order=$1
    local tmp; tmp="$(mktemp -d /tmp/peerd-aiortc-interop.XXXXXX)"
    local port; port="$(free_port)"
    local url="ws://127.0.0.1:$port/ws"
    local peerd_id="peerd-x"
    local aiortc_id="${AIORTC_ID:-aiortc-y}"
    local rec="$tmp/rec"
    mkdir -p "$rec"
    echo "== scenario $order (port $port, dir $tmp)"

    PEERD_LOG_LEVEL="${PEERD_LOG_LEVEL:-debug}" "$PEERD" serve --host 127.0.0.1 --port "$port" >"$tmp/serve.log" 2>&1 &
    local serve_pid=$!
    if ! wait_for_port "$port"; then
        kill "$serve_pid" 2>/dev/null
        RESULTS+=("$order|-|-|-|-|-|-|server did not start (see $tmp/serve.log)"); FAILED=1; return
    fi

    local t0; t0=$(date +%s.%N)
    start_peerd() {
        PEERD_LOG_LEVEL="${PEERD_LOG_LEVEL:-debug}" timeout $((PEERD_DURATION + 15)) "$PEERD" join "$url" \
            --room general --tone "$PEERD_TONE" --record "$rec" --format "$FORMAT" --loopback --trickle "$TRICKLE" \
            --id "$peerd_id" --duration "$PEERD_DURATION" "${OFFER_DELAY_ARGS[@]}" >"$tmp/peerd.log" 2>&1 &
        peerd_pid=$!
    }
    start_aiortc() {
        timeout $((AIORTC_DURATION + 15)) "$PYTHON" "$HERE/aiortc_participant.py" "$url" --room general \
            --id "$aiortc_id" --tone "$AIORTC_TONE" --duration "$AIORTC_DURATION" "${aiortc_extra[@]}" \
            >"$tmp/aiortc.json" 2>"$tmp/aiortc.log" &
        aiortc_pid=$!
    }
    local peerd_pid aiortc_pid
    local aiortc_extra=()
    [ "$order" = peerd-offers ] && aiortc_extra=(--no-offer)
    [ "${AIORTC_OPUS_MONO:-0}" = 1 ] && aiortc_extra+=(--opus-mono)
    if [ "$order" != aiortc-first ]; then
        start_peerd; sleep "$STAGGER"; start_aiortc
    else
        start_aiortc; sleep "$STAGGER"; start_peerd
    fi
    wait "$aiortc_pid"; local aiortc_rc=$?
    wait "$peerd_pid"; local peerd_rc=$?
    kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null

    # Direction 1: peerd -> aiortc.
    # And what peerd's RTCP report blocks told aiortc about its audio (remote-inbound-rtp): the
    # round-trip time aiortc computed from their LSR/DLSR, in ms, and the loss they reported.
    local heard first_aiortc connected report_rtt report_lost
    read -r heard first_aiortc connected report_rtt report_lost < <("$PYTHON" - "$tmp/aiortc.json" "$peerd_id" <<'EOF'
import json, sys
try:
    lines = [l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
    r = json.loads(lines[-1])
except Exception:
    print("none none no none none"); sys.exit(0)
p = sys.argv[2]
inbound = r.get("remote_inbound", {}).get(p) or {}
rtt = inbound.get("round_trip_time")
lost = inbound.get("packets_lost")
print(r["heard"].get(p, "none"), r.get("first_audio_s", {}).get(p, "none"),
      "yes" if p in r.get("connected", []) else "no",
      "none" if rtt is None else round(rtt * 1000, 1), "none" if lost is None else lost)
EOF
)
    # Direction 2: aiortc -> peerd (the recording).
    local ogg="$rec/$aiortc_id.$FORMAT" rec_hz="none" rec_s="0" first_peerd="none"
    if [ -s "$ogg" ]; then
        if [ "$FORMAT" = wav ]; then wav_to_raw "$ogg" "$tmp/aiortc.raw"; else decode_ogg "$ogg" "$tmp/aiortc.raw"; fi
    fi
    if [ -s "$tmp/aiortc.raw" ]; then
        read -r rec_hz rec_s < <(analyse_raw "$tmp/aiortc.raw")
    fi
    if [ -s "$rec/events.jsonl" ]; then
        first_peerd=$("$PYTHON" - "$rec/events.jsonl" "$aiortc_id" <<'EOF'
import json, sys
from datetime import datetime
def ts(e):
    for k in ("time", "ts", "timestamp", "at"):
        v = e.get(k)
        if isinstance(v, (int, float)): return float(v)
        if isinstance(v, str):
            try: return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError: pass
    return None
def who(e):
    for k in ("participant", "peer", "id", "participant_id", "user"):
        if isinstance(e.get(k), str): return e[k]
    return None
ev = []
for line in open(sys.argv[1]):
    try: ev.append(json.loads(line))
    except ValueError: pass
kind = lambda e: e.get("event") or e.get("type") or e.get("kind")
join = next((ts(e) for e in ev if kind(e) == "join" and who(e) == sys.argv[2]), None)
first = next((ts(e) for e in ev if kind(e) == "first-audio" and who(e) == sys.argv[2]), None)
print(round(first - join, 3) if join is not None and first is not None else "none")
EOF
)
    fi

    local ok=1 why=()
    [ "$aiortc_rc" = 0 ] || { ok=0; why+=("aiortc exit $aiortc_rc"); }
    [ "$peerd_rc" = 0 ] || { ok=0; why+=("peerd exit $peerd_rc"); }
    if [ "$heard" = none ]; then ok=0; why+=("aiortc heard nothing from $peerd_id")
    elif ! "$PYTHON" -c "import sys; sys.exit(0 if abs($heard-$PEERD_TONE)<=$TOLERANCE else 1)"; then
        ok=0; why+=("aiortc heard $heard Hz from peerd, want $PEERD_TONE±$TOLERANCE"); fi
    if [ "$report_rtt" = none ]; then ok=0; why+=("aiortc got no report block from peerd with a round-trip time (remote-inbound-rtp)")
    elif [ "$report_lost" != 0 ]; then ok=0; why+=("peerd reported $report_lost packets of aiortc's lost on loopback"); fi
    if [ "$rec_hz" = none ]; then ok=0; why+=("no decodable audio in $ogg ($(stat -c %s "$ogg" 2>/dev/null || echo missing) bytes)")
    else
        "$PYTHON" -c "import sys; sys.exit(0 if abs($rec_hz-$AIORTC_TONE)<=$TOLERANCE else 1)" \
            || { ok=0; why+=("peerd recorded $rec_hz Hz, want $AIORTC_TONE±$TOLERANCE"); }
        "$PYTHON" -c "import sys; sys.exit(0 if $rec_s>=$MIN_AUDIO_S else 1)" \
            || { ok=0; why+=("peerd recorded only $rec_s s, want >= $MIN_AUDIO_S"); }
    fi
    local verdict=PASS
    if [ $ok = 0 ]; then
        verdict="FAIL: $(IFS=';'; echo "${why[*]}")"; FAILED=1
        echo "-- $tmp/peerd.log (last 40 lines)"; tail -40 "$tmp/peerd.log"
        echo "-- $tmp/aiortc.log (last 20 lines)"; tail -20 "$tmp/aiortc.log"
    elif [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$tmp"
    fi
    RESULTS+=("$order|$heard|$first_aiortc|$rec_hz|$rec_s|$first_peerd|$report_rtt|$verdict")
}

case "$MODE" in
    peerd-first|aiortc-first|peerd-offers) run_scenario "$MODE" ;;
    both) run_scenario peerd-first; run_scenario aiortc-first ;;
    all) run_scenario peerd-first; run_scenario aiortc-first; run_scenario peerd-offers ;;
    *) die "unknown mode '$MODE' (peerd-first|aiortc-first|peerd-offers|both|all)" ;;
esac

echo
printf "%-13s | %-22s | %-12s | %-24s | %-10s | %-12s | %-15s | %s\n" \
    "order" "aiortc heard peerd Hz" "1st audio s" "peerd recorded aiortc Hz" "audio s" "1st audio s" "RTT ms" "result"
printf "%-13s | %-22s | %-12s | %-24s | %-10s | %-12s | %-15s | %s\n" \
    "" "(want $PEERD_TONE)" "at aiortc" "(want $AIORTC_TONE)" "(>= $MIN_AUDIO_S)" "at peerd" "(peerd's RTCP)" ""
for r in "${RESULTS[@]}"; do
    IFS='|' read -r o h fa rh rs fp rt v <<<"$r"
    printf "%-13s | %-22s | %-12s | %-24s | %-10s | %-12s | %-15s | %s\n" "$o" "$h" "$fa" "$rh" "$rs" "$fp" "$rt" "$v"
done
if [ $FAILED = 0 ]; then echo "OK: aiortc interop passed"; exit 0; fi
echo "FAILED: aiortc interop (logs kept in the directories above)" >&2
exit 1
