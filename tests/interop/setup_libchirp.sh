#!/usr/bin/env bash
# Create a virtualenv holding libchirp 1.2.1b3, the reference peer for the
# interop tests. Idempotent: does nothing when the venv already imports it.
#
#   VENV=${CHIRP_LIBCHIRP_VENV:-<repo root>/.venv-libchirp}
#
# System packages needed (Debian 12):
#   libuv1-dev libssl-dev python3-dev python3-venv build-essential
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CHIRP_LIBCHIRP_VENV:-$root/.venv-libchirp}"
python="${CHIRP_LIBCHIRP_PYTHON:-python3}"
spec="libchirp==1.2.1b3"

log() { echo "[setup_libchirp] $*"; }

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import libchirp' >/dev/null 2>&1; then
    log "libchirp already importable in $venv; nothing to do"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtualenv $venv with $python"
    "$python" -m venv "$venv"
else
    log "reusing virtualenv $venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)

log "installing build requirements: cffi setuptools wheel"
"${pip[@]}" install cffi setuptools wheel

# libchirp 1.2.1 calls FIPS_mode_set(), which OpenSSL 3 no longer has; map it
# to a no-op. --no-build-isolation so the setup uses the cffi installed above.
log "building $spec (CFLAGS='-DFIPS_mode_set(x)=0')"
CFLAGS='-DFIPS_mode_set(x)=0' "${pip[@]}" install --no-build-isolation \
    --no-cache-dir "$spec"

log "checking import"
"$venv/bin/python" -c 'import libchirp; print("[setup_libchirp] libchirp imported from", libchirp.__file__)'
log "done"
