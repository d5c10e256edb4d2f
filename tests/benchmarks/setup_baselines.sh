#!/usr/bin/env bash
# Create the virtual environments the peer baselines need (idempotent).
#
#   bash tests/benchmarks/setup_baselines.sh          # both
#   bash tests/benchmarks/setup_baselines.sh sb3      # only Stable-Baselines3 in .venv
#   bash tests/benchmarks/setup_baselines.sh sf       # only the Sample Factory venv
#
# * Stable-Baselines3 goes into the main .venv (it installs beside
#   pettingzoo 1.27 / gymnasium 1.4 / numpy 2). torch is pinned on the same
#   command line so pip never swaps the CPU build for a CUDA one.
# * Sample Factory 2.1.1 pins gymnasium < 1.0 and numpy < 2, so it gets its own
#   venv at .bench/sf with pettingzoo 1.24.3 and supersuit 3.9.3. torch is
#   installed first, alone, so pip takes the local CPU wheel (a bare
#   `pip install torch` pulls several GB of CUDA packages). Needs gcc (pymunk
#   6.2.0 is built from source, see below).
# A venv whose stamp file matches the pinned requirements is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
TORCH="torch==2.13.0"
WHAT="${1:-all}"

SB3_REQS=("stable-baselines3==2.9.2" "$TORCH")
SF_VENV="$ROOT/.bench/sf"
SF_REQS=(
  "sample-factory==2.1.1"
  "$TORCH"
  "gymnasium==0.29.1"
  "numpy==1.26.4"
  "pettingzoo[butterfly,classic]==1.24.3"
  "supersuit==3.9.3"
)

setup_sb3() {
  local py="$ROOT/.venv/bin/python"
  if [[ ! -x "$py" ]]; then
    echo "main venv $ROOT/.venv not found: create it first (make install?)" >&2
    return 1
  fi
  if "$py" -c 'import stable_baselines3, sys; sys.exit(stable_baselines3.__version__ != "2.9.2")' 2>/dev/null; then
    echo "sb3: stable-baselines3 2.9.2 already in $ROOT/.venv"
  else
    "$py" -m pip install "${SB3_REQS[@]}"
  fi
  "$py" -c 'import stable_baselines3, torch, pettingzoo, supersuit; print("sb3:", stable_baselines3.__version__, "torch", torch.__version__, "pettingzoo", pettingzoo.__version__, "supersuit", supersuit.__version__)'
}

setup_sf() {
  local stamp="$SF_VENV/.requirements"
  local want
  want="$(printf '%s\n' "${SF_REQS[@]}")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$SF_VENV/bin/python" -c 'import sample_factory' 2>/dev/null; then
    echo "sf: $SF_VENV up to date"
  else
    mkdir -p "$ROOT/.bench"
    [[ -x "$SF_VENV/bin/python" ]] || "$PYTHON" -m venv "$SF_VENV"
    "$SF_VENV/bin/python" -m pip install --upgrade "pip<25" "setuptools<81" wheel
    "$SF_VENV/bin/python" -m pip install "$TORCH"
    # pettingzoo[butterfly]==1.24.3 pins pymunk==6.2.0, which is an sdist only
    # for Python 3.11; in an isolated build its setup_requires cffi cannot find
    # pycparser. Build it against cffi/pycparser installed in the venv instead.
    "$SF_VENV/bin/python" -m pip install cffi pycparser
    "$SF_VENV/bin/python" -m pip install --no-build-isolation "pymunk==6.2.0"
    "$SF_VENV/bin/python" -m pip install "${SF_REQS[@]}"
    printf '%s\n' "$want" > "$stamp"
  fi
  "$SF_VENV/bin/python" -c 'import importlib.metadata as md, torch, pettingzoo, supersuit, gymnasium, numpy; print("sf: sample_factory", md.version("sample-factory"), "torch", torch.__version__, "pettingzoo", pettingzoo.__version__, "supersuit", supersuit.__version__, "gymnasium", gymnasium.__version__, "numpy", numpy.__version__)'
}

case "$WHAT" in
  all) setup_sb3; setup_sf ;;
  sb3) setup_sb3 ;;
  sf) setup_sf ;;
  *) echo "usage: $0 [all|sb3|sf]" >&2; exit 2 ;;
esac
