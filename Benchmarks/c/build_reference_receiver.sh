#!/bin/sh
# Builds the C reference receiver (`peerd-load run --receiver c`) into $1 (default
# /tmp/peerd-reference-receiver): libsrtp2 with the same OpenSSL AES-GCM types peerd installs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shims="$here/../../Sources/CShims"
out=${1:-/tmp/peerd-reference-receiver}
cc -O2 -I"$shims/include" "$here/reference_receiver.c" "$shims/srtp_openssl.c" "$shims/hmac.c" -lsrtp2 -lcrypto -o "$out"
echo "$out"
