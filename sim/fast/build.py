"""Build the fast C++ Verilator harness (``sim/fast/harness.cpp``) of one DRE unit.

The Verilog comes from ``hw.gen.generate`` (with its initial values, as the cocotb
regressions simulate it); the build uses the lint waivers of ``hw.gen.LINT_WAIVERS`` (as
``sim.kit.runner`` does for cocotb) with ``-Wall``, ``--x-assign fast`` (Verilator's default,
which the cocotb regressions use; ``--x-initial`` stays at its default as there), ``-O3``,
``-O2`` for the C++ and one build job. The streams are bound in a generated ``fast_unit.h``
from the unit's ports (``FAST_PORTS``), with the payload widths read from the generated
Verilog.

One build directory per unit and design, ``sim_build/fast/<unit>/<config>_<hash>``, where the
hash covers the Verilog, the harness source and this module (flags, bindings): a rebuild
happens only when one of them changes, and parallel builds of one design wait on a lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hw.config import HWConfig
from hw.gen import LINT_WAIVERS, generate
from hw.toolpath import build_lock, compiler_cache_env, find_tool

__all__ = ["FAST_PORTS", "HARNESS_SOURCE", "FastPorts", "build_harness", "verilator_path"]

ROOT = Path(__file__).resolve().parent.parent.parent
HARNESS_SOURCE = Path(__file__).resolve().parent / "harness.cpp"


@dataclass(frozen=True)
class FastPorts:
    """The ports the harness drives: input streams, output streams, scalar outputs checked
    at the end and addressed reads ``(name, address port, data port)`` checked at the end;
    ``count``: the stream whose beats are the transactions (default the first input);
    ``clear``: a clear strobe input (driven by ``phases.txt``); ``axi``: the prefix of an
    AXI4 read master served by the harness's memory (its AR channel is the output ``ar``)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    scalars: tuple[str, ...] = ()
    reads: tuple[tuple[str, str, str], ...] = ()
    count: str | None = None
    clear: str | None = None
    axi: str | None = None

    @property
    def counted(self) -> str:
        """The stream whose beats count as transactions."""
        return self.count or self.inputs[0]


#: unit → its ports, for the units the fast harness covers.
FAST_PORTS: dict[str, FastPorts] = {
    "hcu": FastPorts(
        inputs=("tokens",),
        outputs=("assign",),
        scalars=("occupancy", "forced"),
        reads=(("count", "count_addr", "count_data"),),
    ),
    "wtu": FastPorts(inputs=("cmd", "clusters"), outputs=("selected", "summary")),
    "wtu_grid": FastPorts(inputs=("cmd", "clusters"), outputs=("selected", "summary")),
    "topk": FastPorts(inputs=("cmd", "clusters"), outputs=("selected", "summary")),
    "quickselect": FastPorts(inputs=("cmd", "clusters"), outputs=("selected", "summary")),
    # Transactions: selections (one summary beat each); ``assign``/``slot`` allocate.
    "kvmu": FastPorts(
        inputs=("assign", "selected"),
        outputs=("kv", "slot", "summary"),
        scalars=("busy",),
        count="summary",
        clear="clear",
        axi="m_axi",
    ),
}

#: Verilator options of the harness build (besides sources and paths).
VERILATOR_FLAGS = (
    "--cc",
    "--exe",
    "--build",
    "-O3",
    "--x-assign",
    "fast",
    "-Wall",
    "--build-jobs",
    "1",
)
CXX_FLAGS = "-O2"
#: Extra Verilator options of a harness built with ``coverage=True``.
COVERAGE_FLAGS = ("--coverage-line", "--coverage-toggle")


def verilator_path() -> str:
    """The venv's ``verilator``, else the one on ``PATH`` (``hw.toolpath.find_tool``)."""
    found = find_tool("verilator")
    if found is None:
        raise FileNotFoundError(
            f"verilator not found in {Path(sys.prefix) / 'bin'} nor on PATH (run make setup)"
        )
    return found


def _ports(verilog: str) -> dict[str, int]:
    """Port name → width of the generated top module."""
    found = re.findall(r"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", verilog, re.M)
    return {name: int(msb) + 1 if msb else 1 for msb, name in found}


def _cxx(name: str) -> str:
    """The C++ member of Verilog port ``name`` (Verilator escapes ``__`` as ``___05F``)."""
    return name.replace("__", "___05F")


def _header(unit: str, ports: FastPorts, widths: dict[str, int]) -> str:
    def need(name: str) -> int:
        if name not in widths:
            raise ValueError(f"unit {unit!r} has no port {name!r} (ports: {', '.join(widths)})")
        return widths[name]

    lines = [
        f'#include "V{unit}.h"',
        f'#define FAST_UNIT "{unit}"',
        f"typedef V{unit} FastTop;",
        f'#define FAST_COUNT "{ports.counted}"',
        "static void fast_bind(FastTop* t, Harness& h) {",
        "    h.clk = &t->clk;",
        "    h.rst = &t->rst;",
        "    h.eval = [t]() { t->eval(); };",
    ]
    for s in ports.inputs:
        w = need(f"{s}__payload")
        lines.append(
            f'    h.add_in("{s}", {w}, &t->{_cxx(s + "__valid")}, &t->{_cxx(s + "__ready")}, '
            f"[t](const uint32_t* w) {{ put(t->{_cxx(s + '__payload')}, w); }});"
        )
    for s in ports.outputs:
        w = need(f"{s}__payload")
        lines.append(
            f'    h.add_out("{s}", {w}, &t->{_cxx(s + "__valid")}, &t->{_cxx(s + "__ready")}, '
            f"[t](uint32_t* w) {{ get(t->{_cxx(s + '__payload')}, w); }});"
        )
    for s in ports.scalars:
        need(s)
        lines.append(f'    h.add_scalar("{s}", [t]() {{ return (uint64_t)t->{_cxx(s)}; }});')
    for name, addr, dat in ports.reads:
        need(addr), need(dat)
        lines.append(
            f'    h.add_read("{name}", [t](uint64_t a) {{ t->{_cxx(addr)} = a; }}, '
            f"[t]() {{ return (uint64_t)t->{_cxx(dat)}; }});"
        )
    if ports.clear is not None:
        need(ports.clear)
        lines.append(f"    h.clear = &t->{_cxx(ports.clear)};")
    if ports.axi is not None:
        a = ports.axi

        def port(name: str) -> str:
            need(f"{a}__{name}")
            return f"t->{_cxx(f'{a}__{name}')}"

        def getter(name: str) -> str:
            return f"[t]() {{ return (uint64_t){port(name)}; }}"

        lines.append(
            f"    h.add_axi_read({need(f'{a}__araddr')}, {need(f'{a}__rdata')}, "
            f"&{port('arvalid')}, &{port('arready')}, "
            + ", ".join(getter(n) for n in ("araddr", "arlen", "arsize", "arburst", "arid"))
            + f", &{port('rvalid')}, &{port('rready')}, "
            f"[t](const uint32_t* w) {{ put({port('rdata')}, w); }}, "
            f"&{port('rlast')}, &{port('rresp')}, &{port('rid')});"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


#: (unit, repr(cfg), config) → binary, so that a process generates a design's Verilog once
_BUILT: dict[tuple[str, str, str], Path] = {}


def build_harness(
    unit: str, cfg: HWConfig, *, config: str = "custom", log=None, coverage: bool = False
) -> Path:
    """The harness binary of ``unit`` at ``cfg`` (built when missing or out of date);
    ``config`` names the build directory. ``log``: a callable given progress lines.
    ``coverage``: built with Verilator line and toggle coverage (``COVERAGE_FLAGS``, its own
    build directory ``<config>_cov_<hash>``; the binary's ``--coverage FILE`` writes the
    counts, ``sim.verilator_coverage`` reads them)."""
    if unit not in FAST_PORTS:
        raise ValueError(f"unit must be one of {', '.join(FAST_PORTS)}, not {unit!r}")
    if not isinstance(coverage, bool):
        raise ValueError(f"coverage must be a bool, not {coverage!r}")
    memo = (unit, repr(cfg), config, coverage)
    if memo in _BUILT and _BUILT[memo].is_file():
        return _BUILT[memo]
    _BUILT[memo] = binary = _build(unit, cfg, config, log, coverage)
    return binary


def _build(unit: str, cfg: HWConfig, config: str, log, coverage: bool = False) -> Path:
    verilog = generate(unit, cfg)  # wtu_grid: hw.gen builds it with grid buckets
    source = HARNESS_SOURCE.read_text()
    flags = CXX_FLAGS + (" ".join(("", *COVERAGE_FLAGS)) if coverage else "")
    key = hashlib.sha256(
        "\0".join([verilog, source, Path(__file__).read_text(), flags]).encode()
    ).hexdigest()[:12]
    bdir = ROOT / "sim_build" / "fast" / unit / f"{config}_{'cov_' if coverage else ''}{key}"
    binary = bdir / "harness"
    bdir.mkdir(parents=True, exist_ok=True)
    with build_lock(bdir):
        if binary.is_file():
            return binary
        (bdir / f"{unit}.v").write_text(verilog)
        (bdir / "waivers.vlt").write_text(
            "`verilator_config\n" + "".join(f"lint_off -rule {r}\n" for r in LINT_WAIVERS)
        )
        (bdir / "fast_unit.h").write_text(_header(unit, FAST_PORTS[unit], _ports(verilog)))
        cmd = [
            verilator_path(),
            *VERILATOR_FLAGS,
            *(COVERAGE_FLAGS if coverage else ()),
            "--top-module",
            unit,
            "--prefix",
            f"V{unit}",
            "-Mdir",
            "obj",
            "-o",
            "../harness",
            "-CFLAGS",
            f"{CXX_FLAGS} -I{bdir}",
            "waivers.vlt",
            f"{unit}.v",
            str(HARNESS_SOURCE),
        ]
        if log is not None:
            log(f"[sim.fast] building the {unit} harness in {bdir}")
        env = {**os.environ, **compiler_cache_env(), "MAKEFLAGS": "-j1"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with open(bdir / "build.log", "w") as out:
            proc = subprocess.run(cmd, cwd=bdir, stdout=out, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0 or not binary.is_file():
            tail = (bdir / "build.log").read_text().splitlines()[-15:]
            raise RuntimeError(
                f"Verilator build of the {unit} harness failed (rc {proc.returncode}); "
                f"log {bdir / 'build.log'}:\n" + "\n".join(tail)
            )
    return binary
