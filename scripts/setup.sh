#!/usr/bin/env bash
# Installs what the harness needs on a Debian 12 machine (as root), idempotently:
# Open MPI, OpenBLAS, FFTW and pkg-config from apt, and the analysis virtual
# environment (.venv) from PyPI. Swift itself is expected at /opt/swift or on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libopenmpi-dev openmpi-bin libopenblas-dev libfftw3-dev pkg-config make python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
    command -v swift >/dev/null 2>&1 || { echo "setup: swift not found (install Swift 6 and put it on PATH)" >&2; exit 1; }
fi

# Analysis environment: pinned versions, reinstalled only when requirements change.
if [ -f analysis/requirements.txt ]; then
    stamp=.venv/.requirements.sha
    want=$(sha256sum analysis/requirements.txt | cut -d' ' -f1)
    if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "setup: creating .venv for analysis/" >&2
        python3 -m venv .venv
        .venv/bin/pip install -q --disable-pip-version-check -r analysis/requirements.txt
        echo "$want" > "$stamp"
    fi
fi

# NVRTC for the GPU kernels' compile check (no GPU needed): the version on the GPU nodes,
# from PyPI into the same venv. `make test` points MLRA_NVRTC at its lib folder.
stamp=.venv/.nvrtc.sha
want=$(sha256sum scripts/nvrtc-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing NVRTC into .venv" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/nvrtc-requirements.txt
    echo "$want" > "$stamp"
fi
