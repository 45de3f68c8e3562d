#!/bin/sh
# Plain-C comparisons for peerd-bench's srtp group (issue 4: wrapper within 1.2x of C) and its
# in-process DTLS handshake.
#   Benchmarks/c/run.sh                    # C figures only
#   Benchmarks/c/run.sh path/to/peerd-bench  # also runs the Swift figures and prints ratios
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc -O2 "$here/srtp_bench.c" -lsrtp2 -o /tmp/srtp_bench
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
/tmp/srtp_bench | tee /tmp/srtp_bench.out
if [ $# -ge 1 ]; then
    "$1" srtp/ | tee /tmp/srtp_bench_swift.out
    awk '
        FNR == NR && /^c\// { key = $0; sub(/^c\//, "", key); sub(/ [0-9.]+ ns\/op$/, "", key); c[key] = $(NF - 1); next }
        /^srtp\// { key = $0; sub(/^srtp\//, "", key); sub(/ +[0-9.]+ ns\/op.*$/, "", key)
                    n = split($0, f, " "); for (i = 1; i <= n; i++) if (f[i] == "ns/op") v = f[i - 1]
                    if (key in c) printf "ratio wrapper/C  %-40s %6.0f / %6.0f ns = %.2fx\n", key, v, c[key], v / c[key] }
    ' /tmp/srtp_bench.out /tmp/srtp_bench_swift.out
fi

cc -O2 "$here/dtls_handshake_bench.c" -lssl -lcrypto -o /tmp/dtls_handshake_bench
/tmp/dtls_handshake_bench | tee /tmp/dtls_handshake_bench.out
if [ $# -ge 1 ]; then
    "$1" "dtls/handshake: handshake only" | grep '^dtls/' | tee /tmp/dtls_handshake_swift.out
    c=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "ns/op") print $(i - 1) }' /tmp/dtls_handshake_bench.out)
    swift=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "ns/op") print $(i - 1) }' /tmp/dtls_handshake_swift.out)
    awk -v s="$swift" -v c="$c" 'BEGIN { printf "ratio DTLSEndpoint/C  handshake only %8.0f / %8.0f ns = %.2fx\n", s, c, s / c }'
fi
