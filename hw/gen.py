"""Verilog generation for the hardware units: the one entry point used by the Makefile,
the tests, the synthesis flow and CI.

    python -m hw.gen --config tiny --top hcu -o build/verilog/hcu.v
    python -m hw.gen --config paper --all -o build/verilog

``--all`` writes ``<unit>.v`` for every unit of the registry ``hw.units.UNITS``, the
Verilator waiver file ``lint_waivers.vlt``, a FuseSoC CAPI2 core ``vrex_dre.core`` and
``manifest.json`` (config, units, generation times), then lints every unit with
``verilator --lint-only -Wall`` (skip with ``--no-lint``). Each Verilog module is named
after its unit (``hcu``, ``wtu``, …); submodules are ``<unit>.<sub>``.

``--no-initial-state`` writes the design as silicon starts: no register initial values and
no RAM contents (a memory with a write port); ROM contents stay. The synthesis flow reads
that design as RTLIL (Yosys then never parses megabytes of zero initialisers), and a
Verilator regression runs it from randomised state (``--x-initial unique``) to prove that
nothing depends on an initial value the reset does not set.

Python API: ``TOPS`` (unit name → constructor taking an ``HWConfig``, derived from
``hw.units.UNITS``), ``too_large(name, cfg)``,
``generate(name, cfg, *, initial_state=True) -> str`` (Verilog),
``generate_rtlil(name, cfg, *, initial_state=True) -> str`` and ``strip_initial_state``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from .config import PRESETS, HWConfig, preset
from .shared import sharing
from .toolpath import find_tool
from .units import UNITS, unit

__all__ = [
    "LINT_WAIVERS",
    "TOPS",
    "generate",
    "generate_rtlil",
    "lint",
    "main",
    "strip_initial_state",
    "too_large",
    "write_all",
]

#: Every generated top: unit name → component constructor (from ``hw.units.UNITS``).
TOPS: dict[str, Callable[[HWConfig], wiring.Component]] = {
    name: u.component for name, u in UNITS.items()
}

#: ``verilator -Wall`` rules waived for Amaranth output, each with its reason. Everything
#: else (e.g. UNSIGNED, MULTIDRIVEN, LATCH, UNOPTFLAT, COMBDLY) stays an error.
LINT_WAIVERS: dict[str, str] = {
    "UNUSEDSIGNAL": "Amaranth declares every intermediate net; the upper bits of widened "
    "arithmetic and the unused lanes of a read port are unused by construction.",
    "PROCASSINIT": "Amaranth gives each register its reset value at declaration and also "
    "assigns it in a process (its init/reset model); intended.",
    "WIDTHEXPAND": "Amaranth emits operands at their natural width and relies on Verilog's "
    "context-determined widening; widths are exact in the Amaranth IR and the Verilog is "
    "checked bit-exact in Icarus and Verilator regressions.",
    "WIDTHTRUNC": "Same as WIDTHEXPAND for truncating assignments and reduction-not on "
    "multi-bit FSM states, which Amaranth emits deliberately.",
    "CASEINCOMPLETE": "Amaranth emits switch/FSM `casez` without a default: unlisted "
    "encodings keep the value assigned before the case, which is the Amaranth semantics.",
    "DECLFILENAME": "One file holds a top and its `<top>.<sub>` submodules.",
}


def too_large(name: str, cfg: HWConfig) -> str | None:
    """Why whole-preset runs (``--all``, ``make synth``) leave unit ``name`` out at ``cfg``,
    or ``None`` (``hw.units.Unit.too_large``). Asking for the unit by name still generates
    it."""
    limit = unit(name).too_large
    return None if limit is None else limit(cfg)


def strip_initial_state(text: str) -> str:
    """RTLIL ``text`` without register initial values (``init`` attributes) and without the
    initial contents (``$meminit_v2``) of every memory that has a write port; ROMs keep
    theirs. Works module by module (memory names are local to a module)."""
    out = []
    for module in re.split(r"(?m)^(?=module )", text):
        written = set(re.findall(r'cell \$memwr_v2 \S+\n\s+parameter \\MEMID "(.*?)"', module))
        kept = []
        for block in re.split(r"(?m)^(?=  (?!end$)\S|end$)", module):
            if block.startswith("  attribute \\init "):
                continue
            if block.startswith("  cell $meminit_v2 "):
                memid = re.search(r'parameter \\MEMID "(.*?)"', block)
                if memid and memid.group(1) in written:
                    continue
            kept.append(block)
        out.append("".join(kept))
    return "".join(out)


def generate_rtlil(name: str, cfg: HWConfig, *, initial_state: bool = True) -> str:
    """RTLIL of unit ``name`` for ``cfg``: the top, then its shared modules (``hw.shared``;
    see the module docstring for ``initial_state``)."""
    with sharing(name) as ctx:
        text = rtlil.convert(unit(name).component(cfg), name=name, emit_src=False)
    text += ctx.text()
    return text if initial_state else strip_initial_state(text)


def generate(name: str, cfg: HWConfig, *, initial_state: bool = True) -> str:
    """Verilog of unit ``name`` for ``cfg``; the top module is called ``name``."""
    # The Yosys script verilog.convert runs, on the RTLIL with its shared modules (Amaranth
    # 0.5 pinned).
    return verilog._convert_rtlil_text(generate_rtlil(name, cfg, initial_state=initial_state))


def _waiver_text() -> str:
    lines = ["`verilator_config", "// Waivers for Amaranth-generated Verilog (see hw/gen.py)."]
    for rule, why in LINT_WAIVERS.items():
        lines += [f"// {rule}: {why}", f"lint_off -rule {rule}"]
    return "\n".join(lines) + "\n"


def lint(verilog_path: Path, top: str, waivers: Path) -> tuple[bool, Path]:
    """``verilator --lint-only -Wall`` with the waivers; returns (ok, log path)."""
    exe = find_tool("verilator")
    if exe is None:
        raise FileNotFoundError("verilator is neither on PATH nor in the venv (run `make setup`)")
    log = verilog_path.with_suffix(".lint.log")
    cmd = [exe, "--lint-only", "-Wall", str(waivers), str(verilog_path), "--top-module", top]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.write_text(" ".join(cmd) + "\n" + res.stdout + res.stderr)
    return res.returncode == 0, log


def _core_text(config: str, units: list[str]) -> str:
    files = "\n".join(f"      - {u}.v" for u in units)
    targets = "\n".join(
        f"  lint_{u}:\n"
        f"    default_tool: verilator\n"
        f"    filesets: [waivers, rtl]\n"
        f"    toplevel: {u}\n"
        f"    tools:\n"
        f"      verilator:\n"
        f"        mode: lint-only\n"
        f"        verilator_options: [-Wall]"
        for u in units
    )
    return (
        "CAPI=2:\n"
        f"name: vrex:dre:units:0.1.0\n"
        f"description: V-Rex DRE units generated by Amaranth (hw.gen, config {config})\n"
        "filesets:\n"
        "  rtl:\n"
        "    file_type: verilogSource\n"
        "    files:\n"
        f"{files}\n"
        "  waivers:\n"
        "    files:\n"
        "      - lint_waivers.vlt: {file_type: vlt}\n"
        "targets:\n"
        "  default:\n"
        "    filesets: [rtl]\n"
        f"{targets}\n"
    )


def write_all(
    cfg: HWConfig, out_dir: Path, *, config: str, do_lint: bool = True, initial_state: bool = True
) -> dict:
    """Every unit into ``out_dir`` plus waivers, core file and manifest; returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    waivers = out_dir / "lint_waivers.vlt"
    waivers.write_text(_waiver_text())
    manifest: dict = {"config": config, "units": {}}
    failed = []
    for name in UNITS:
        reason = too_large(name, cfg)
        if reason:
            manifest["units"][name] = {"skipped": reason}
            print(f"[hw.gen] {reason}")
            continue
        t0 = time.perf_counter()
        text = generate(name, cfg, initial_state=initial_state)
        seconds = time.perf_counter() - t0
        path = out_dir / f"{name}.v"
        path.write_text(text)
        entry = {"file": path.name, "bytes": len(text), "gen_seconds": round(seconds, 3)}
        if do_lint:
            ok, log = lint(path, name, waivers)
            entry["lint"] = "ok" if ok else f"failed, see {log}"
            if not ok:
                failed.append(f"{name} ({log})")
        manifest["units"][name] = entry
        print(
            f"[hw.gen] {path} {len(text) / 1e3:.0f} kB in {seconds:.2f} s"
            + (f", lint {entry['lint']}" if do_lint else "")
        )
    written = [u for u, e in manifest["units"].items() if "file" in e]
    (out_dir / "vrex_dre.core").write_text(_core_text(config, written))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if failed:
        raise SystemExit(f"hw.gen: verilator lint failed for {', '.join(failed)}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.gen", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", help=f"preset: {', '.join(PRESETS)}")
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--top", help=f"one unit: {', '.join(UNITS)}")
    sel.add_argument("--all", action="store_true", help="every unit into the directory -o")
    ap.add_argument("-o", "--output", required=True, type=Path, help="file (--top) or dir (--all)")
    ap.add_argument("--no-lint", action="store_true", help="skip verilator --lint-only -Wall")
    ap.add_argument(
        "--no-initial-state",
        action="store_true",
        help="no register initial values and no RAM contents (as silicon starts)",
    )
    args = ap.parse_args(argv)
    try:
        cfg = preset(args.config)
        if args.all:
            write_all(
                cfg,
                args.output,
                config=args.config,
                do_lint=not args.no_lint,
                initial_state=not args.no_initial_state,
            )
            return 0
        text = generate(args.top, cfg, initial_state=not args.no_initial_state)
    except ValueError as exc:
        ap.error(str(exc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"[hw.gen] {args.output} ({args.top}, config {args.config})")
    if not args.no_lint:
        waivers = args.output.parent / "lint_waivers.vlt"
        waivers.write_text(_waiver_text())
        ok, log = lint(args.output, args.top, waivers)
        if not ok:
            raise SystemExit(f"hw.gen: verilator lint failed for {args.top}, see {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
