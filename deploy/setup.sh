#!/usr/bin/env bash
# Set up Crossband on a fresh Debian 12 machine with Python 3.11.
#   deploy/setup.sh          runtime: Debian's libopus0 + a venv in .venv with crossband
#   deploy/setup.sh --test   the same plus the test tools (pytest, hypothesis, ruff, mypy, …)
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

py=${PYTHON:-python3}
debs=(libopus0)
# Debian's python3 needs python3-venv for "python3 -m venv" (ensurepip).
"$py" -c 'import ensurepip' 2>/dev/null || debs+=(python3-venv)
# The tests speak real sentences (espeak-ng) and resample them (sox); strace counts fsyncs;
# ffmpeg is a radio-side RTP peer nobody here wrote; iproute2 + nftables make lossy links;
# the adapters' real peers: mumble-server, prosody (XMPP), sip-tester (sipp) and baresip (SIP);
# chromium for the console's browser tests, and libatomic1, which the node binary inside
# playwright's wheel links against (a minimal Debian lacks it); systemd for
# systemd-analyze/-sysusers, which check the deploy/ units offline (nothing runs under systemd).
[ $want_test = 1 ] && debs+=(espeak-ng sox strace ffmpeg iproute2 nftables
                             mumble-server prosody sip-tester baresip chromium libatomic1 systemd)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ $want_test = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup: ready (.venv/bin/crossband)"
