#!/usr/bin/env bash
# Installs what the harness needs, idempotently, and only what is missing:
#   - the MPI library (MLRA_MPI: openmpi, the default, or mpich), OpenBLAS, FFTW and
#     pkg-config: found through pkg-config first (a cluster's `module load` or
#     PKG_CONFIG_PATH is enough), else from apt on Debian as root; otherwise one
#     line says what is missing and how to provide it;
#   - unless --build: the analysis virtual environment (.venv) from PyPI.
# Swift itself is expected at /opt/swift or on PATH (see README: "Building on a cluster").
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=0
[ "${1:-}" = --build ] && build_only=1

mpi=${MLRA_MPI:-openmpi}
case "$mpi" in
  openmpi) mpi_pc=ompi-c; mpi_apt=(libopenmpi-dev openmpi-bin) ;;
  mpich) mpi_pc=mpich; mpi_apt=(libmpich-dev mpich) ;;
  *) mpi_pc=$mpi; mpi_apt=() ;;   # a site MPI: its pkg-config file must be found
esac
# pkg-config file -> the Debian packages that provide it (with pkg-config itself).
declare -A apt_for=([openblas]="libopenblas-dev" [fftw3]="libfftw3-dev" [$mpi_pc]="${mpi_apt[*]}")
missing=()
if ! command -v pkg-config >/dev/null 2>&1; then
  missing+=(pkg-config "${mpi_apt[@]}" libopenblas-dev libfftw3-dev)
else
  for pc in "$mpi_pc" openblas fftw3; do
    pkg-config --exists "$pc" || missing+=(${apt_for[$pc]:-})
    pkg-config --exists "$pc" || [ -n "${apt_for[$pc]:-}" ] || {
      echo "setup: pkg-config finds no '$pc' (MLRA_MPI=$mpi): load its module or add its lib/pkgconfig folder to PKG_CONFIG_PATH" >&2
      exit 1
    }
  done
fi
if [ "$build_only" = 0 ]; then
  command -v make >/dev/null 2>&1 || missing+=(make)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${missing[*]} (MLRA_MPI=$mpi); without root or apt, load them (module load ...) or point PKG_CONFIG_PATH at their .pc files; see README" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
    command -v swift >/dev/null 2>&1 || { echo "setup: swift not found (install Swift 6 and put it on PATH)" >&2; exit 1; }
fi

[ "$build_only" = 1 ] && exit 0

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
