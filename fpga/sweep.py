"""``python -m fpga.sweep --board ulx3s``: utilisation and fmax of the board system over DRE
configurations (cluster table size, HCU lanes), one board build per point.

Points are ``hw`` presets with overrides (``--point max_clusters=64,hcu_lanes=4`` adds
one; the defaults are ``POINTS``). Each build goes to ``<out>/sweep/<board>_<tag>/``; the
table to ``<out>/sweep/<board>.json`` and ``.md``. The WTU of this tree ingests one cluster
per cycle (it has no lane parameter): its column reads 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from hw.config import HWConfig, preset

from .boards import BOARDS, get_board
from .build import ROOT, BuildError, build

__all__ = ["POINTS", "main", "point_config", "sweep"]

#: (preset, overrides) per point: table size and HCU lanes around the tiny preset.
POINTS: list[tuple[str, dict[str, int]]] = [
    ("tiny", {"max_clusters": 16, "hcu_lanes": 1}),
    ("tiny", {"max_clusters": 16, "hcu_lanes": 4}),
    ("tiny", {"max_clusters": 16, "hcu_lanes": 16}),
    ("tiny", {"max_clusters": 64, "hcu_lanes": 4}),
    ("tiny", {"max_clusters": 256, "hcu_lanes": 4}),
    ("tiny", {"max_clusters": 256, "hcu_lanes": 16}),
]


def point_config(base: str, changes: dict[str, int]) -> HWConfig:
    """``preset(base)`` with ``max_clusters`` (a ReSV field) and HWConfig fields changed."""
    cfg = preset(base)
    changes = dict(changes)
    resv = {"max_clusters": changes.pop("max_clusters")} if "max_clusters" in changes else {}
    return cfg.replace(**({"resv": resv} if resv else {}), **changes)


def _tag(base: str, changes: dict[str, int]) -> str:
    return "_".join([base, *(f"{k}{v}" for k, v in changes.items())])


def sweep(board: str, points=POINTS, *, out: Path = ROOT / "build" / "fpga") -> list[dict]:
    rows = []
    for i, (base, changes) in enumerate(points):
        cfg = point_config(base, changes)
        print(f"[fpga.sweep] {board} point {i + 1}/{len(points)}: {base} {changes}", flush=True)
        tag = _tag(base, changes)
        try:
            rep = build(board, cfg, out=out / "sweep", tag=tag, quiet=True)
        except BuildError as exc:
            # A point that does not fit the device is a result of the sweep, not its end.
            log = out / "sweep" / f"{board}_{tag}" / "top.tim"
            errors = re.findall(r"^ERROR: (.*)$", log.read_text(), re.M) if log.exists() else []
            rep = {
                "board": board,
                "device": get_board(board).device,
                "hw": {
                    "max_clusters": cfg.max_clusters,
                    "hcu_lanes": cfg.hcu_lanes,
                    "wtu_lanes": 1,
                },
                # Table-safe: nextpnr's region notation contains "|".
                "failed": (errors[-1] if errors else str(exc)).replace("|", "/"),
            }
        rep["config"] = f"{base} {changes}"
        rows.append(rep)
        print(markdown_table(rows[-1:], header=False), end="", flush=True)
    (out / "sweep").mkdir(parents=True, exist_ok=True)
    (out / "sweep" / f"{board}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "sweep" / f"{board}.md").write_text(markdown_table(rows))
    return rows


def markdown_table(rows: list[dict], header: bool = True) -> str:
    lines = []
    if header and rows:
        r0 = rows[0]
        lines += [
            f"Board {r0['board']} ({r0['device']}).",
            "",
            "| clusters | HCU lanes | WTU lanes | LUT | FF | BRAM | DSP | fmax (MHz) | timing "
            "| build (s) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
    for r in rows:
        hw = r["hw"]
        if "failed" in r:
            lines.append(
                f"| {hw['max_clusters']} | {hw['hcu_lanes']} | {hw['wtu_lanes']} | "
                f"did not build: {r['failed']} | | | | | | |"
            )
            continue
        res = r["resources"]
        (clk,) = r["clocks"].values()
        lines.append(
            f"| {hw['max_clusters']} | {hw['hcu_lanes']} | {hw['wtu_lanes']} | "
            + " | ".join(
                f"{res[c]['used']} ({100 * res[c]['used'] / res[c]['available']:.0f} %)"
                for c in ("LUT", "FF", "BRAM", "DSP")
            )
            + f" | {clk['achieved_mhz']:.1f} | {'met' if clk['met'] else 'missed'} | "
            f"{r['build_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _parse_point(text: str) -> tuple[str, dict[str, int]]:
    base, _, rest = text.partition(":") if ":" in text else ("tiny", "", text)
    changes = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        changes[key.strip()] = int(value)
    return base, changes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    ap.add_argument(
        "--point",
        action="append",
        default=None,
        help="[preset:]field=value,... (repeatable; default: fpga.sweep.POINTS)",
    )
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "build" / "fpga")
    args = ap.parse_args(argv)
    try:
        get_board(args.board)
        points = [_parse_point(p) for p in args.point] if args.point else POINTS
        for base, changes in points:
            point_config(base, changes)
        rows = sweep(args.board, points, out=args.out)
    except (ValueError, TypeError, BuildError) as exc:
        print(f"fpga.sweep: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
