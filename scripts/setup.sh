#!/usr/bin/env bash
# Installs the Debian packages peerd needs to build and test. Idempotent: when every package is
# already installed it does nothing; otherwise it runs `apt-get update` once, then installs.
set -euo pipefail

build_packages=(libsrtp2-dev libopus-dev libssl-dev libasound2-dev pkgconf)
# Tools the tests use to check what peerd produces and to run real peers against it.
test_packages=(opus-tools ffmpeg openssl espeak-ng coturn iptables chromium firefox-esr)

packages=("${build_packages[@]}")
case "${1:-}" in
    --with-test-tools) packages+=("${test_packages[@]}") ;;
    # The demo adds a headless Chromium participant when Chromium is installed.
    --with-browser) packages+=(chromium) ;;
esac

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if (( ${#missing[@]} == 0 )); then
    echo "setup: all ${#packages[@]} Debian packages already installed"
else
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Independent peers the interop tests run against, from PyPI.
if [[ "${1:-}" == "--with-test-tools" ]]; then
    python_packages=(aioice aiortc websockets numpy)
    for package in "${python_packages[@]}"; do
        if ! python3 -c "import $package" 2>/dev/null; then
            echo "setup: pip install $package"
            python3 -m pip install --quiet --disable-pip-version-check "$package"
        fi
    done
fi
