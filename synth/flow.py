"""``make synth``: area, timing and power of every hardware unit at one preset.

    python -m synth.flow --config tiny|paper|edge [--top NAME ...] [--clock-ns N]
                         [--cycles N] [--default-activity] [--sram-min-bits N]
                         [--set FIELD=VALUE ...] [--power auto|flat|modules] [--no-dedup]
                         [--jobs N]

``--set`` changes ``HWConfig`` fields of the preset (e.g. ``--set mac_rows=8 --set
mac_cols=8``), and ``resv.FIELD`` fields of its ``ReSVConfig`` (e.g. ``--set
resv.max_clusters=256``; a float field takes a float: ``resv.coverage=0.4``); the report's
preset then reads ``tiny (mac_rows=8, mac_cols=8)`` and the default output directory gets the
changes appended.

For every unit of the registry ``hw.units.UNITS`` (or the ``--top`` ones), in
``build/synth/<preset>/<unit>/``:
1. Verilog from ``hw.gen.generate``;
2. Yosys synthesis to the OSU 0.18 µm liberty, large memories as SRAM macros
   (:mod:`synth.yosys`, :mod:`synth.sram`); structurally identical modules (Amaranth emits
   one per instance) are merged first (:mod:`synth.dedup`), so each distinct module is
   synthesised once and the area is summed per instance (``--no-dedup``: every copy); each
   distinct module is mapped by a Yosys of its own, up to ``--jobs`` at once
   (:func:`synth.yosys.split_design`; a module's netlist depends on its RTLIL only);
3. OpenSTA static timing at the target clock: worst slack, fmax, critical path
   (:mod:`synth.sta`);
4. switching activity from an Amaranth simulation of the unit (:mod:`synth.activity`), or,
   only with ``--default-activity``, a labelled default; mapped onto the netlist and
   propagated (:mod:`synth.power`) and fed to OpenSTA's ``report_power``, plus the SRAM
   macros' access energy. A design of more than ``FLAT_POWER_MAX_CELLS`` cells (``--power
   auto``; ``--power modules`` forces it) is instead analysed per distinct module at the
   default activity, not simulated, and labelled so (:mod:`synth.modpower`; the modules in
   up to ``--jobs`` groups, a process and an OpenSTA run each);
5. the 14 nm / 0.8 V estimate (:mod:`synth.scaling`).
Then ``report.json`` (schema-checked), ``report.md`` and PNG charts (:mod:`synth.report`)
and a summary table on stdout. Units of ``EXPECTED_UNITS`` not in ``hw.units.UNITS`` would be
listed as missing, never estimated. With the ``core`` unit, the DRE's share of the core's area
and power and the core's area/power by direct submodule (:func:`core_breakdown`) come from the
core's own hierarchical synthesis (``comparison.dre_share_of_core`` in ``report.json``).

Exit status: 0 when every unit went through, 1 when one failed (the report says which tool
failed at which step, with its log), 2 for a usage error or a missing tool/liberty (the
message has the install command).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hw.units import UNITS
from synth import report as rep
from synth.activity import simulate_activity
from synth.liberty import read_liberty
from synth.modpower import module_power
from synth.power import (
    DUT_INSTANCE,
    annotate,
    flatten,
    load_mapped,
    sram_dynamic_power,
    write_power_netlist,
    write_tcl,
)
from synth.scaling import CITATION, PAPER_NODE, SOURCE_NODE, factors, scale_figures
from synth.sram import DEFAULT_SRAM_MIN_BITS, OSU018_SRAM, estimate, is_macro
from synth.sta import fmax_mhz, run_power, run_sta
from synth.tools import (
    ROOT,
    FlowError,
    MissingToolError,
    check_positive_int,
    find_liberty,
    sta_command,
    tool_versions,
    yosys_command,
)
from synth.yosys import SynthResult, synthesize

__all__ = [
    "CORE_PARTS",
    "EXPECTED_UNITS",
    "FlowOptions",
    "core_breakdown",
    "main",
    "run_flow",
    "run_module",
]

#: Every unit the architecture has (SPEC section 3): name → description, from the registry
#: ``hw.units.UNITS``; a name added here that the registry lacks is reported as missing.
EXPECTED_UNITS: dict[str, str] = {name: u.description for name, u in UNITS.items()}

#: ``--power`` choices (see ``FlowOptions.power_mode``).
POWER_MODES = ("auto", "flat", "modules")
#: ``--power auto`` takes the per-module path above this many cells: the flat path's
#: propagation and OpenSTA run cost ~7 min for the tiny core's 0.5 M cells, ~20 min for 2 M.
FLAT_POWER_MAX_CELLS = 1_000_000
#: What ``module_timing`` (a design too large to time whole) is.
MODULE_TIMING = (
    "The worst setup path inside any one distinct module (OpenSTA on the per-module power "
    "design, synth.modpower: each module's own cells, every input driven from a flop). Paths "
    "that cross a module boundary are cut there, so the design's true critical path is at "
    "least this long: fmax_bound_mhz is an upper bound on the design's fmax, not its fmax."
)
#: Default ``--max-timing-cells``: OpenSTA links the hierarchical netlist flat, ~1.1-1.2 KB
#: per cell (15.6 GB for 13.9 M cells, 19.2 GB for the 16.0 M cells of the 16-lane paper
#: core), so on a 24 GB machine a larger design is not timed (its timing is reported as not
#: measured).
MAX_TIMING_CELLS = 17_000_000

CONSTRAINTS = (
    "Ideal clock on `clk`; inputs and outputs at 0 ns external delay, 10 fF output load; "
    "no wire-load model (zero wire load, optimistic); typical corner of the library."
)


#: Most Yosys processes one synthesis runs at once by default: beyond that the paper core's
#: synthesis is bounded by its largest module (the RoPE unit).
MAX_JOBS = 4


def default_jobs() -> int:
    """``--jobs``' default: the cores this process may use, at most :data:`MAX_JOBS`."""
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, cores))


@dataclass
class FlowOptions:
    """Options of one flow run (see ``python -m synth.flow --help``)."""

    preset: str = "tiny"
    tops: list[str] | None = None
    clock_ns: float = 10.0
    cycles: int = 2000
    default_activity: bool = False
    sram_min_bits: int = DEFAULT_SRAM_MIN_BITS
    liberty: Path | None = None
    out_dir: Path | None = None
    seed: int = 0
    target_mhz: float = 800.0
    charts: bool = True
    quiet: bool = False
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``HWConfig`` fields changed from the preset (``--set FIELD=VALUE``).
    overrides: dict[str, int | float] = field(default_factory=dict)
    #: Power path: ``flat`` (simulated activity over the whole netlist), ``modules`` (each
    #: distinct module once at the default activity, :mod:`synth.modpower`) or ``auto``
    #: (``modules`` above :data:`FLAT_POWER_MAX_CELLS` cells, else ``flat``).
    power_mode: str = "auto"
    #: Merge identical modules before synthesis (:mod:`synth.dedup`).
    dedup: bool = True
    #: Designs of more cells than this are not timed (see :data:`MAX_TIMING_CELLS`).
    max_timing_cells: int = MAX_TIMING_CELLS
    #: Seconds one Yosys run (one per distinct module) may take before its unit is reported
    #: failed.
    yosys_timeout: float = 3600
    #: Yosys processes mapping one design's modules at the same time (``split_design``);
    #: the machine's cores, at most :data:`MAX_JOBS`.
    jobs: int = field(default_factory=default_jobs)

    def __post_init__(self) -> None:
        if self.power_mode not in POWER_MODES:
            raise ValueError(
                f"power_mode must be one of {', '.join(POWER_MODES)}, not {self.power_mode!r}"
            )
        if not isinstance(self.clock_ns, int | float) or not self.clock_ns > 0:
            raise ValueError(f"clock_ns must be a positive number, not {self.clock_ns!r}")
        if isinstance(self.cycles, bool) or not isinstance(self.cycles, int) or self.cycles < 10:
            raise ValueError(f"cycles must be an integer of at least 10, not {self.cycles!r}")
        if not isinstance(self.yosys_timeout, int | float) or not self.yosys_timeout > 0:
            raise ValueError(
                f"yosys_timeout must be a positive number of seconds, not {self.yosys_timeout!r}"
            )
        for name in ("max_timing_cells", "sram_min_bits", "jobs"):
            check_positive_int(name, getattr(self, name))

    @property
    def directory(self) -> Path:
        if self.out_dir is not None:
            return self.out_dir
        tail = "".join(f"_{k}{v}" for k, v in self.overrides.items())
        return ROOT / "build" / "synth" / (self.preset + tail)

    @property
    def label(self) -> str:
        """The preset's name, with the ``overrides`` if any."""
        if not self.overrides:
            return self.preset
        return f"{self.preset} ({', '.join(f'{k}={v}' for k, v in self.overrides.items())})"


def _say(opts: FlowOptions, msg: str) -> None:
    if not opts.quiet:
        print(f"[synth] {msg}", flush=True)


def _area_dict(res: SynthResult) -> dict[str, Any]:
    tot = res.total
    mems = []
    for mem in res.memories:
        macro = is_macro(mem, res.sram_min_bits)
        entry: dict[str, Any] = {
            "module": mem.module,
            "name": mem.name,
            "width": mem.width,
            "depth": mem.depth,
            "bits": mem.bits,
            "read_ports": mem.read_ports,
            "write_ports": mem.write_ports,
            "async_read": mem.async_read,
            "instances": res.dedup.instances.get(mem.module, 0) if res.dedup else 1,
            # ROMs (no write port, e.g. constant tables) become logic, not flip-flops
            "kind": "sram_macro"
            if macro
            else "rom_logic"
            if mem.write_ports == 0
            else "flip_flops",
        }
        if macro:
            est = res.macros[f"{mem.module}/{mem.name}"][1]
            entry.update(
                macro_cell=mem.macro_name,
                area_um2=est.area_um2,
                e_read_pj=est.e_read_pj,
                e_write_pj=est.e_write_pj,
                leakage_nw=est.leakage_nw,
                t_access_ns=est.t_access_ns,
                efficiency=est.efficiency,
                organisation=f"{est.rows} rows x {est.cols} cols, mux {est.column_mux}",
            )
        else:
            entry["area_um2"] = None  # inside the flops / logic of its module
            entry["macro_estimate_um2"] = estimate(mem, OSU018_SRAM).area_um2
        mems.append(entry)
    return {
        "total_um2": tot.total_area,
        "std_cell_um2": tot.std_area,
        "comb_um2": tot.comb_area,
        "seq_um2": tot.seq_area,
        "macro_um2": tot.macro_area,
        "cells": tot.cells,
        "flops": tot.flops,
        "hierarchy": [
            {
                "path": i.path,
                "module": i.module,
                "cells": i.cells,
                "flops": i.flops,
                "comb_um2": i.comb_area,
                "seq_um2": i.seq_area,
                "macro_um2": i.macro_area,
                "total_um2": i.total_area,
            }
            for i in res.instances
        ],
        "memories": mems,
        "dedup": None
        if res.dedup is None
        else {
            "modules_before": res.dedup.modules_before,
            "modules_after": res.dedup.modules_after,
            "note": "structurally identical modules merged before synthesis (synth.dedup); "
            "each distinct module synthesised once, hierarchy kept, area summed per instance",
            "groups": _rel(res.workdir / "dedup.json"),
        },
        "stat_json": str(res.workdir / "stat.json"),
        "log": str(res.log),
    }


def _path_module(res: SynthResult, *points: str) -> tuple[str, str]:
    """The deepest instance holding every one of ``points`` (OpenSTA pin or instance names,
    ``/``-separated), and its module: where a critical path lies."""
    known = {i.path: i.module for i in res.instances}
    common: list[str] | None = None
    for pt in points:
        parts = pt.split("/")[:-1]
        common = parts if common is None else common
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    parts = common or []
    while parts and ".".join(parts) not in known:
        parts = parts[:-1]
    path = ".".join(parts)
    return path, known.get(path, res.top)


def _module_power_entry(
    res: SynthResult, mapped: dict[str, Any], libs: list[Any], wd: Path, opts: FlowOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``power`` and ``module_timing`` entries of the report from
    :func:`synth.modpower.module_power`: each distinct module's own power at the default
    activity, summed over its instances, and the worst path inside any one module."""
    mp = module_power(
        mapped, res.top, libs, res.liberties, res.macros, wd, opts.clock_ns, jobs=opts.jobs
    )
    cp, ws = mp.critical_path, mp.worst_slack_ns
    fmax = fmax_mhz(opts.clock_ns, ws)
    timing = {
        "what": MODULE_TIMING,
        "clock_ns": opts.clock_ns,
        "worst_slack_ns": ws,
        "fmax_bound_mhz": fmax,
        "scaled_fmax_bound_mhz": None
        if fmax is None
        else fmax / factors(SOURCE_NODE, PAPER_NODE).delay,
        "module": mp.critical_module,
        "critical_path": None if cp is None else asdict(cp),
        "log": _rel(mp.log),
    }
    count: dict[str, int] = {}
    for inst in res.instances:
        count[inst.module] = count.get(inst.module, 0) + 1
    std = {"internal_w": 0.0, "switching_w": 0.0, "leakage_w": 0.0, "total_w": 0.0}
    sram_dyn = sram_out = sram_leak = 0.0
    for mod, own in mp.own.items():
        k = count.get(mod, 0)
        std["internal_w"] += k * own.internal_w
        std["switching_w"] += k * own.switching_w
        std["leakage_w"] += k * own.leakage_w
        std["total_w"] += k * own.std_w
        sram_dyn += k * own.sram_dynamic_w
        sram_out += k * own.sram_output_w
        sram_leak += k * own.sram_leakage_w
    macro_inst = []
    for inst in res.instances:
        own = mp.own.get(inst.module)
        for cell_name, v in (own.macros if own else {}).items():
            path = f"{inst.path.replace('.', '/')}/{cell_name}" if inst.path else cell_name
            macro_inst.append(
                {
                    "path": path,
                    "cell": v["cell"],
                    "opensta_w": v["opensta_w"],
                    "dynamic_w": v["dynamic_w"],
                    "total_w": v["opensta_w"] + v["dynamic_w"],
                }
            )
    dynamic = std["internal_w"] + std["switching_w"] + sram_dyn + sram_out
    leakage = std["leakage_w"] + sram_leak
    return {
        "clock_mhz": 1000.0 / opts.clock_ns,
        "activity_mode": "default",
        "activity_source": (
            "DEFAULT ACTIVITY PER DISTINCT MODULE (not simulated): the design is too large "
            "for the flat power path, so each distinct module's own cells were analysed once "
            "with every input (its ports and its submodules' outputs) at 0.1 transitions/cycle, "
            "duty 0.5, reset inactive, propagated through its cells, and multiplied by its "
            f"instance count (synth.modpower; {mp.leaves} leaf cells analysed for "
            f"{res.total.cells} in the design)"
        ),
        "annotated_fraction": 0.0,
        "nets": mp.nets,
        "matched_signals_sample": [],
        "std_cell": std,
        "sram": {
            "dynamic_w": sram_dyn,
            "output_switching_w": sram_out,
            "leakage_w": sram_leak,
            "macros": [],
            "instances": sorted(macro_inst, key=lambda v: v["path"]),
            "model": OSU018_SRAM.source,
        },
        "dynamic_w": dynamic,
        "leakage_w": leakage,
        "total_w": dynamic + leakage,
        "opensta_pins_annotated": 0,
        "hierarchy": [
            {"path": i.path, "module": i.module, "total_w": mp.subtree_w.get(i.module, 0.0)}
            for i in res.instances
        ],
        "per_module": {
            m: {"instances": count.get(m, 0), "own_w": o.total_w} for m, o in mp.own.items()
        },
        "log": _rel(mp.log),
    }, timing


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def run_module(name: str, cfg: Any, opts: FlowOptions, liberty: Path) -> dict[str, Any]:
    """The whole flow for unit ``name``; returns its ``modules[]`` entry of the report.

    Tool failures are caught and recorded (status ``failed``, the error names the tool, the
    step and the log); other exceptions propagate.
    """
    from hw.gen import generate_rtlil

    t0 = time.perf_counter()
    wd = opts.directory / name
    wd.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {
        "name": name,
        "status": "ok",
        "error": None,
        "runtime_s": 0.0,
        "workdir": _rel(wd),
        "area": None,
        "timing": None,
        "power": None,
        "scaled": None,
    }
    step_times: dict[str, float] = {}

    def lap(step: str, t: float) -> float:
        now = time.perf_counter()
        step_times[step] = round(now - t, 3)
        return now

    try:
        t = time.perf_counter()
        design = generate_rtlil(name, cfg, initial_state=False)
        t = lap("rtlil", t)
        res = synthesize(
            design,
            name,
            wd,
            liberty,
            clock_ns=opts.clock_ns,
            sram_min_bits=opts.sram_min_bits,
            dedup=opts.dedup,
            timeout=opts.yosys_timeout,
            jobs=opts.jobs,
        )
        entry["area"] = _area_dict(res)
        t = lap("yosys", t)
        _say(
            opts,
            f"  {name}: yosys {step_times['yosys']:.1f} s, {res.total.cells} cells, "
            f"{res.total.flops} flops, {len(res.macros)} SRAM macros, "
            f"{res.total.total_area * 1e-6:.4f} mm²",
        )
        if res.total.cells > opts.max_timing_cells:
            fmax_mhz = None
            entry["timing_note"] = (
                f"not measured: {res.total.cells} cells > --max-timing-cells "
                f"{opts.max_timing_cells} (OpenSTA links the netlist flat, ~1.2 KB per cell)"
            )
            _say(opts, f"  {name}: timing {entry['timing_note']}")
        else:
            sta = run_sta(res.netlist, name, res.liberties, wd, opts.clock_ns)
            cp = sta.critical_path
            cp_path, cp_module = _path_module(res, cp.startpoint, cp.endpoint) if cp else ("", "")
            entry["timing"] = {
                "clock_ns": opts.clock_ns,
                "worst_slack_ns": sta.worst_slack_ns,
                "fmax_mhz": sta.fmax_mhz,
                "tns_ns": sta.tns_ns,
                "hold_slack_ns": sta.hold_slack_ns,
                "met": sta.met,
                "clock_port": sta.clock_port,
                "critical_path": None
                if cp is None
                else {
                    "startpoint": cp.startpoint,
                    "start_kind": cp.start_kind,
                    "endpoint": cp.endpoint,
                    "end_kind": cp.end_kind,
                    "arrival_ns": cp.arrival_ns,
                    "required_ns": cp.required_ns,
                    "slack_ns": cp.slack_ns,
                    "stages": cp.stages,
                    "instance": cp_path,
                    "module": cp_module,
                },
                "log": _rel(sta.log),
            }
            t = lap("sta", t)
            _say(
                opts,
                f"  {name}: OpenSTA {step_times['sta']:.1f} s, worst slack "
                f"{sta.worst_slack_ns if sta.worst_slack_ns is not None else float('nan'):.3f} ns, "
                f"fmax {sta.fmax_mhz or float('nan'):.1f} MHz"
                + (
                    f" ({cp.startpoint} -> {cp.endpoint}, in {cp_path or 'the top'}: {cp_module})"
                    if cp
                    else ""
                ),
            )
            fmax_mhz = sta.fmax_mhz
        libs = [read_liberty(p) for p in res.liberties]
        mapped = load_mapped(res.mapped_json)
        use_modules = opts.power_mode == "modules" or (
            opts.power_mode == "auto" and res.total.cells > FLAT_POWER_MAX_CELLS
        )
        if use_modules:
            entry["power"], module_timing = _module_power_entry(res, mapped, libs, wd, opts)
            if entry["timing"] is None:
                entry["module_timing"] = module_timing
                _say(
                    opts,
                    f"  {name}: timing inside each distinct module (a bound): worst slack "
                    f"{module_timing['worst_slack_ns'] or float('nan'):.3f} ns, fmax <= "
                    f"{module_timing['fmax_bound_mhz'] or float('nan'):.1f} MHz "
                    f"({module_timing['scaled_fmax_bound_mhz'] or float('nan'):.0f} MHz "
                    f"scaled), in {module_timing['module']}",
                )
            dynamic = entry["power"]["dynamic_w"]
            leakage = entry["power"]["leakage_w"]
            t = lap("power", t)
            _say(
                opts,
                f"  {name}: power {(dynamic + leakage) * 1e3:.3g} mW at "
                f"{1000 / opts.clock_ns:.0f} MHz (per distinct module, DEFAULT activity, not "
                f"simulated; {res.total.cells} cells > {FLAT_POWER_MAX_CELLS} or --power "
                f"modules) in {step_times['power']:.1f} s",
            )
        else:
            flat = flatten(mapped, name, libs)
            if opts.default_activity:
                vcd = None
                mode = "default"
                source = (
                    "DEFAULT ACTIVITY (--default-activity, not a simulation): every top-level "
                    "input 0.1 transitions/cycle, duty 0.5, propagated through the netlist"
                )
            else:
                run = simulate_activity(
                    name,
                    UNITS[name].component(cfg),
                    cfg,
                    wd / "activity.vcd",
                    cycles=opts.cycles,
                    seed=opts.seed,
                )
                vcd = run.vcd
                mode = "simulation"
                source = run.source.replace(str(wd) + "/", "")
                t = lap("activity", t)
                _say(
                    opts,
                    f"  {name}: simulated {run.cycles} cycles in {step_times['activity']:.1f} s "
                    f"({run.stimulus})",
                )
            ann = annotate(flat, libs, res.macros, vcd, source=source)
            wrapper = write_power_netlist(res.netlist, mapped, name, libs, wd / "power_netlist.v")
            write_tcl(flat, ann, wrapper, wd / "activity.tcl")
            pw = run_power(
                wrapper.netlist,
                wrapper.top,
                res.liberties,
                wd,
                opts.clock_ns,
                wd / "activity.tcl",
                output_nets=wrapper.outputs,
            )
            macro_cells = {m.macro_name for m, _ in res.macros.values()}
            inst_cell = {f"{DUT_INSTANCE}/{i.path}": i.cell for i in flat.instances}
            std = {"internal_w": 0.0, "switching_w": 0.0, "leakage_w": 0.0, "total_w": 0.0}
            sram_leak = sram_sw = 0.0
            per_leaf: dict[str, float] = {}
            macro_inst: dict[str, dict[str, Any]] = {}
            for path, (pi, ps, pl, pt) in pw.instances.items():
                cell = inst_cell.get(path)
                if cell is None:
                    continue  # the wrapper's input-source flops, or a hierarchical instance
                leaf = path.removeprefix(DUT_INSTANCE + "/")
                per_leaf[leaf] = pt
                if cell in macro_cells:
                    sram_leak += pl
                    sram_sw += pi + ps
                    macro_inst[leaf] = {"path": leaf, "cell": cell, "opensta_w": pt}
                else:
                    std["internal_w"] += pi
                    std["switching_w"] += ps
                    std["leakage_w"] += pl
                    std["total_w"] += pt
            sram_dyn = sram_dynamic_power(ann, res.macros, opts.clock_ns)
            sram_dyn_w = sum(v["dynamic_w"] for v in sram_dyn.values())
            for k, v in macro_inst.items():
                v["dynamic_w"] = sram_dyn.get(k, {}).get("dynamic_w", 0.0)
                v["total_w"] = v["opensta_w"] + v["dynamic_w"]
            dynamic = std["internal_w"] + std["switching_w"] + sram_dyn_w + sram_sw
            leakage = std["leakage_w"] + sram_leak
            hier = []
            for inst in res.instances:
                prefix = inst.path.replace(".", "/")
                tot = sum(
                    v for k, v in per_leaf.items() if not prefix or k.startswith(prefix + "/")
                ) + sum(
                    v["dynamic_w"]
                    for k, v in sram_dyn.items()
                    if not prefix or k.startswith(prefix + "/")
                )
                hier.append({"path": inst.path, "module": inst.module, "total_w": tot})
            entry["power"] = {
                "clock_mhz": 1000.0 / opts.clock_ns,
                "activity_mode": mode,
                "activity_source": source,
                "annotated_fraction": ann.annotated_fraction,
                "nets": ann.counts,
                "matched_signals_sample": ann.matched_names[:20],
                "std_cell": std,
                "sram": {
                    "dynamic_w": sram_dyn_w,
                    "output_switching_w": sram_sw,
                    "leakage_w": sram_leak,
                    "macros": [{"path": k, **v} for k, v in sram_dyn.items()],
                    "instances": sorted(macro_inst.values(), key=lambda v: v["path"]),
                    "model": OSU018_SRAM.source,
                },
                "dynamic_w": dynamic,
                "leakage_w": leakage,
                "total_w": dynamic + leakage,
                "opensta_pins_annotated": pw.annotated_pins,
                "hierarchy": hier,
                "log": _rel(wd / "sta_power.log"),
            }
            t = lap("power", t)
            _say(
                opts,
                f"  {name}: power {(dynamic + leakage) * 1e3:.3g} mW at "
                f"{1000 / opts.clock_ns:.0f} MHz ({mode} activity, "
                f"{ann.annotated_fraction * 100:.0f} % of nets annotated)",
            )
        entry["scaled"] = scale_figures(
            area_um2=res.total.total_area,
            fmax_mhz=fmax_mhz,
            dynamic_w=dynamic,
            leakage_w=leakage,
            clock_mhz=1000.0 / opts.clock_ns,
            target_mhz=opts.target_mhz,
        )
    except FlowError as exc:
        entry["status"] = "failed"
        entry["error"] = str(exc)
        _say(opts, f"  {name}: FAILED: {exc}")
    entry["step_seconds"] = step_times
    entry["runtime_s"] = round(time.perf_counter() - t0, 3)
    return entry


#: What the core's direct submodules are (for the breakdown), see hw/core/.
CORE_PARTS: dict[str, str] = {
    "dre": "DRE (HCU + WTU)",
    "mac": "MAC tree (cluster scores)",
    "attn": "tiled attention engine (PREFILL, QUERY: MAC arrays, tile softmax, accumulators)",
    "hasher": "hasher (hyperplanes ROM and their MAC array block, signature compares, theta)",
    "scorer": "cluster scorer (MAC tree result x weight, fixed-point score into the WTU)",
    "gearbox": "fetch gearbox (the KVMU's AXI beats into memory rows)",
    "reps_reader": "representative-key reader (a selection's keys from DRAM)",
    "rep_gearbox": "representative-key gearbox (their AXI beats into memory rows)",
    "feeder": "feeder (representative keys into the MAC tree, kept and fetched K/V to the engine)",
    "aging": "aging (the oldest ring token: HCU, KVMU slot, K/V write, key sum in DRAM, members)",
    "mean": "mean query (the FP32 sum of a PREFILL's rows, times 1/rows, to BF16)",
    "perf": "performance counters (PERF) and their read mux",
    "rope": "RoPE unit",
    "kvmu": "KVMU read path",
    "mover": "context mover (SWITCH_CTX: the context's tables to and from DRAM)",
    "prefetcher": "kept-token prefetcher (PREFETCH_CTX: the spare bank to and from DRAM)",
    "arbiter": "AXI arbiter (the units' bus and the prefetcher's on one master)",
    "prefetch": "prefetch buffer (the fetched K/V rows read ahead of the engine)",
    "writer": "KV writer (AXI write path)",
}


def core_breakdown(core: dict[str, Any], part: str = "dre") -> dict[str, Any]:
    """``part``'s share of the core's area and power, and the core's area and power by
    direct submodule, from the core's own (hierarchical) synthesis entry ``core``.

    Rows: every direct submodule instance (its subtree: cells and the SRAM macros inside
    it), every memory of the core's top module that became an SRAM macro (its macro area;
    its power is OpenSTA's leakage/output switching of the macro cell plus the access
    energy from the simulated port activity), and ``(core top-level logic)``: the rest
    (control, small memories as flip-flops, glue). Shares are fractions of the core total.
    """
    area, power = core["area"], core["power"]
    top = core["name"]
    total_a = area["total_um2"]
    total_p = power["total_w"] if power else None
    p_by_path = {h["path"]: h["total_w"] for h in power["hierarchy"]} if power else {}
    rows: list[dict[str, Any]] = []
    for inst in area["hierarchy"]:
        path = inst["path"]
        if not path or "." in path:
            continue
        rows.append(
            {
                "name": path,
                "kind": "submodule",
                "module": inst["module"],
                "what": CORE_PARTS.get(path) or inst["module"],
                "area_um2": inst["total_um2"],
                "power_w": p_by_path.get(path),
            }
        )
    top_macros = [m for m in area["memories"] if m["module"] == top and m["kind"] == "sram_macro"]
    inst_p: dict[str, float] = {}
    if power:
        for inst in power["sram"].get("instances", []):
            if "/" not in inst["path"]:
                inst_p.setdefault(inst["cell"], 0.0)
                inst_p[inst["cell"]] += inst["total_w"]
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for m in top_macros:
        by_cell.setdefault(m["macro_cell"], []).append(m)
    for cell, mems in by_cell.items():
        cell_area = sum(m["area_um2"] for m in mems)
        for m in mems:
            # same-shape memories share one macro cell: their power is split by area
            pw = inst_p.get(cell)
            rows.append(
                {
                    "name": m["name"],
                    "kind": "sram_macro",
                    "module": cell,
                    "what": f"memory {m['depth']} x {m['width']} b ({m['bits'] / 8192:.1f} KiB)",
                    "area_um2": m["area_um2"],
                    "power_w": None if pw is None else pw * m["area_um2"] / cell_area,
                }
            )
    rest_a = total_a - sum(r["area_um2"] for r in rows)
    rest_p = None
    if total_p is not None and all(r["power_w"] is not None for r in rows):
        rest_p = total_p - sum(r["power_w"] for r in rows)
    rows.append(
        {
            "name": "(core top-level logic)",
            "kind": "top_logic",
            "module": top,
            "what": "control, score/weight arithmetic, FIFOs, memories < the SRAM cut-off "
            "as flip-flops",
            "area_um2": rest_a,
            "power_w": rest_p,
        }
    )
    for r in rows:
        r["area_share"] = r["area_um2"] / total_a if total_a else None
        r["power_share"] = r["power_w"] / total_p if total_p and r["power_w"] is not None else None
    rows.sort(key=lambda r: -r["area_um2"])
    sel = next((r for r in rows if r["name"] == part), None)
    if sel is None:
        raise FlowError(f"the core has no direct submodule {part!r} in its synthesis hierarchy")
    macro_a = sum(r["area_um2"] for r in rows if r["kind"] == "sram_macro")
    first = rows[0]
    macro_names = ", ".join(r["name"] for r in rows if r["kind"] == "sram_macro") or "none"
    dominant = (
        f"largest part: {first['name']} ({first['what']}) at "
        f"{first['area_share'] * 100:.1f} % of the core's area. The core's memories that "
        f"became SRAM macros at its top level ({macro_names}: on-chip representative-key "
        f"sums and kept-token K/V) are {macro_a / total_a * 100:.1f} % of its area; smaller "
        "ones (e.g. hash planes, members, weights below the SRAM cut-off) are flip-flops in "
        "the top-level logic. The paper's core (1.89 mm², 2.6 W at 14 nm) has a much larger "
        "datapath, so its DRE share is not directly comparable with this one."
    )
    return {
        "status": "ok",
        "reason": f"from the '{top}' unit's own hierarchical synthesis: the '{part}' "
        "instance's subtree (cells and SRAM macros) over the whole core",
        "part": part,
        "area_share": sel["area_share"],
        "power_share": sel["power_share"],
        "part_area_um2": sel["area_um2"],
        "part_power_w": sel["power_w"],
        "core_area_um2": total_a,
        "core_power_w": total_p,
        "paper_area_share": rep.PAPER["dre_area_share"],
        "paper_power_share": rep.PAPER["dre_power_share"],
        "dominant": dominant,
        "breakdown": rows,
    }


def _comparison(modules: list[dict[str, Any]], clock_ns: float) -> dict[str, Any]:
    dre = next((m for m in modules if m["name"] == "dre" and m["status"] == "ok"), None)
    if dre is None:
        dre_entry: dict[str, Any] = {
            "status": "missing",
            "note": "no synthesised 'dre' unit in this run",
        }
    else:
        dre_entry = {
            "status": "ok",
            "raw_area_mm2": dre["area"]["total_um2"] * 1e-6,
            "raw_power_mw": dre["power"]["total_w"] * 1e3 if dre["power"] else None,
            "raw_clock_mhz": 1000.0 / clock_ns,
            "scaled_area_mm2": dre["scaled"]["area_mm2"] if dre["scaled"] else None,
            "scaled_power_mw": dre["scaled"]["total_w"] * 1e3 if dre["scaled"] else None,
            "note": (
                "our DRE = HCU + WTU at this preset (buffers as modelled SRAM macros); "
                "scaled figures are estimates (Stillmaker & Baas), the paper's are a 14 nm "
                "implementation"
            ),
        }
    core = next((m for m in modules if m["name"] == "core"), None)
    share: dict[str, Any]
    if core is not None and core["status"] == "ok":
        try:
            share = core_breakdown(core, "dre")
        except FlowError as exc:
            share = {"status": "missing", "reason": str(exc)}
    else:
        share = {
            "status": "missing",
            "reason": "no synthesised 'core' unit in this run"
            + (" (its flow failed)" if core is not None else "")
            + "; the paper reports 2.0 % of area and 2.2 % of power",
        }
    return {"dre": dre_entry, "dre_share_of_core": share}


def run_flow(opts: FlowOptions) -> dict[str, Any]:
    """Run the flow for every selected unit and write the reports; returns the report."""
    liberty = find_liberty(opts.liberty)
    yosys_command()
    sta_command()
    from hw.config import apply_settings
    from hw.config import preset as hw_preset
    from hw.gen import too_large

    cfg = apply_settings(hw_preset(opts.preset), opts.overrides)
    wanted = opts.tops or list(UNITS)
    known = list(dict.fromkeys([*UNITS, *EXPECTED_UNITS]))
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ValueError(f"top must be one of {', '.join(map(repr, known))}, not {unknown[0]!r}")
    run_names = [t for t in wanted if t in UNITS]
    if opts.tops is None:  # a whole preset: leave out what cannot be elaborated here
        for name in list(run_names):
            reason = too_large(name, cfg)
            if reason:
                run_names.remove(name)
                _say(opts, reason)
    missing_names = [
        u for u in EXPECTED_UNITS if u not in UNITS and (opts.tops is None or u in wanted)
    ]
    out = opts.directory
    out.mkdir(parents=True, exist_ok=True)
    _say(
        opts,
        f"preset {opts.label}: {len(run_names)} unit(s) {', '.join(run_names)}; clock "
        f"{opts.clock_ns} ns; {'DEFAULT' if opts.default_activity else 'simulated'} activity; "
        f"liberty {liberty.name}; output {_rel(out)}",
    )
    if missing_names:
        _say(opts, f"missing (not in hw.units.UNITS, not estimated): {', '.join(missing_names)}")
    modules = []
    for i, name in enumerate(run_names, 1):
        _say(opts, f"({i}/{len(run_names)}) {name}")
        modules.append(run_module(name, cfg, opts, liberty))
    lib = read_liberty(liberty)
    f = factors(SOURCE_NODE, PAPER_NODE)
    report: dict[str, Any] = {
        "kind": "vrex-synth-report",
        "schema_version": 1,
        "preset": opts.label,
        "overrides": opts.overrides,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": opts.command or "python -m synth.flow",
        "tools": tool_versions(),
        "library": {
            "path": _rel(liberty),
            "name": lib.name,
            "node": "OSU 0.18 µm (TSMC 0.18 µm design rules), typical",
            "vdd": lib.nom_voltage or 1.8,
            "area_unit": "um2",
        },
        "clock_ns": opts.clock_ns,
        "constraints": CONSTRAINTS,
        "activity": {
            "mode": "default" if opts.default_activity else "simulation",
            "cycles": None if opts.default_activity else opts.cycles,
            "note": (
                "labelled DEFAULT activity (asked for with --default-activity): inputs 0.1 "
                "transitions/cycle, duty 0.5, propagated; not from a simulation"
                if opts.default_activity
                else f"Amaranth simulation of each unit ({opts.cycles} cycles, seed {opts.seed}); "
                "nets named like a simulated signal are annotated from its VCD, the rest "
                "propagated (zero-delay model); SRAM energy from simulated port activity"
            ),
        },
        "sram_model": {"min_bits": opts.sram_min_bits, "source": OSU018_SRAM.source},
        "scaling": {
            "model": CITATION,
            "node": PAPER_NODE.label,
            "source_node": SOURCE_NODE.label,
            "target_mhz": opts.target_mhz,
            "factors": {
                "area": f.area,
                "delay": f.delay,
                "energy": f.energy,
                "static_power": f.static_power,
            },
        },
        "modules": modules,
        "missing": [
            {
                "name": u,
                "reason": f"{EXPECTED_UNITS[u]}: not in hw.units.UNITS yet (a later issue); "
                "nothing synthesised or estimated",
            }
            for u in missing_names
        ],
        "paper": dict(rep.PAPER),
        "comparison": _comparison(modules, opts.clock_ns),
    }
    per_module = [
        m["name"]
        for m in modules
        if m["power"] and m["power"]["activity_source"].startswith("DEFAULT ACTIVITY PER")
    ]
    if per_module:
        report["activity"]["note"] += (
            f"; EXCEPT {', '.join(per_module)}: too large for the flat power path, its power "
            "is per distinct module at the DEFAULT activity (0.1 transitions/cycle, duty 0.5 "
            "at every module's inputs), not simulated"
        )
    rep.write_json(report, out / "report.json")
    charts = rep.write_charts(report, out) if opts.charts and modules else []
    rep.write_markdown(report, out / "report.md", charts)
    _summary(opts, report)
    return report


def _summary(opts: FlowOptions, report: dict[str, Any]) -> None:
    if opts.quiet:
        return
    hdr = (
        f"{'unit':<11} {'status':<7} {'area mm²':>9} {'cells':>7} {'flops':>6} {'fmax MHz':>9} "
        f"{'P mW':>8} {'annot.':>6} | {'14nm mm²':>9} {'fmax':>6} {'mW@800':>7}"
    )
    print("\n" + hdr)
    print("-" * len(hdr))
    for m in report["modules"]:
        a, t, p, s = m["area"], m["timing"], m["power"], m["scaled"]
        print(
            f"{m['name']:<11} {m['status']:<7} "
            f"{(a['total_um2'] * 1e-6 if a else float('nan')):>9.4f} "
            f"{(a['cells'] if a else 0):>7} {(a['flops'] if a else 0):>6} "
            f"{((t and t['fmax_mhz']) or float('nan')):>9.1f} "
            f"{(p['total_w'] * 1e3 if p else float('nan')):>8.3g} "
            f"{(p['annotated_fraction'] * 100 if p else float('nan')):>5.0f}% | "
            f"{(s['area_mm2'] if s else float('nan')):>9.5f} "
            f"{((s and s['fmax_mhz']) or float('nan')):>6.0f} "
            f"{(s['total_w'] * 1e3 if s else float('nan')):>7.3g}"
        )
    for miss in report["missing"]:
        print(f"{miss['name']:<11} missing (not built yet)")
    share = report["comparison"]["dre_share_of_core"]
    if share["status"] == "ok":
        pp = report["paper"]
        ps = share["power_share"]
        print(
            f"\nDRE share of the core (raw, {report['preset']}): area "
            f"{share['area_share'] * 100:.1f} % (paper {pp['dre_area_share'] * 100:.1f} %), "
            f"power {'n/a' if ps is None else f'{ps * 100:.1f} %'} "
            f"(paper {pp['dre_power_share'] * 100:.1f} %)"
        )
        print(f"{'core part':<24} {'area mm²':>9} {'area':>6} {'P mW':>8} {'power':>6}")
        for row in share["breakdown"]:
            pw, psh = row["power_w"], row["power_share"]
            print(
                f"{row['name']:<24} {row['area_um2'] * 1e-6:>9.4f} "
                f"{row['area_share'] * 100:>5.1f}% "
                f"{(pw * 1e3 if pw is not None else float('nan')):>8.3g} "
                f"{(psh * 100 if psh is not None else float('nan')):>5.1f}%"
            )
    else:
        print(f"\nDRE share of the core: {share['status']} ({share['reason']})")
    print(
        f"\nraw: OSU 0.18 µm at {1000 / report['clock_ns']:.0f} MHz; 14 nm columns are "
        f"ESTIMATES ({report['scaling']['model'].split(',')[0]}); "
        f"report: {_rel(opts.directory / 'report.md')}"
    )


def _parser() -> argparse.ArgumentParser:
    from hw.config import PRESETS

    ap = argparse.ArgumentParser(
        prog="python -m synth.flow", description=__doc__.split("\n")[0] if __doc__ else None
    )
    ap.add_argument("--config", default="tiny", help=f"hardware preset: {', '.join(PRESETS)}")
    ap.add_argument(
        "--top",
        action="append",
        help=f"unit to run (repeatable; default: every unit of hw.units.UNITS: {', '.join(UNITS)})",
    )
    ap.add_argument("--clock-ns", type=float, default=10.0, help="target clock period (default 10)")
    ap.add_argument(
        "--cycles", type=int, default=2000, help="activity simulation cycles (default 2000)"
    )
    ap.add_argument(
        "--default-activity",
        action="store_true",
        help="skip the simulation; use a labelled default activity (0.1, duty 0.5) instead",
    )
    ap.add_argument(
        "--sram-min-bits",
        type=int,
        default=DEFAULT_SRAM_MIN_BITS,
        help="memories with at least this many bits become SRAM macros "
        f"(default {DEFAULT_SRAM_MIN_BITS})",
    )
    ap.add_argument("--liberty", type=Path, help="liberty file (default: the OSU 0.18 µm one)")
    ap.add_argument(
        "-o", "--out", type=Path, help="output directory (default build/synth/<config>)"
    )
    ap.add_argument("--seed", type=int, default=0, help="stimulus seed")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change an HWConfig field of the preset (repeatable), e.g. hcu_batch=4 or mac_rows=8",
    )
    ap.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    ap.add_argument(
        "--power",
        choices=POWER_MODES,
        default="auto",
        help="power path: flat (simulated activity over the whole netlist), modules (each "
        "distinct module once, DEFAULT activity, not simulated), auto (modules above "
        f"{FLAT_POWER_MAX_CELLS} cells; default)",
    )
    ap.add_argument(
        "--max-timing-cells",
        type=int,
        default=MAX_TIMING_CELLS,
        metavar="N",
        help="skip timing (reported as not measured) above N cells: OpenSTA links the "
        f"netlist flat, ~1.2 KB of memory per cell (default {MAX_TIMING_CELLS})",
    )
    ap.add_argument(
        "--yosys-timeout",
        type=float,
        default=FlowOptions.yosys_timeout,
        metavar="SECONDS",
        help="report a unit failed when one of its Yosys runs (one per distinct module) "
        "takes longer (default "
        f"{FlowOptions.yosys_timeout:g}; at the paper preset no module's run takes 7 min)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="Yosys processes mapping one design's modules at once, and processes analysing "
        "their power per module (default: the cores, at "
        f"most {MAX_JOBS})",
    )
    ap.add_argument(
        "--no-dedup",
        action="store_true",
        help="synthesise every module copy Amaranth emits instead of one per structure",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    from hw.config import parse_settings

    ap = _parser()
    args = ap.parse_args(argv)
    try:
        opts = FlowOptions(
            preset=args.config,
            overrides=parse_settings(args.set),
            tops=args.top,
            clock_ns=args.clock_ns,
            cycles=args.cycles,
            default_activity=args.default_activity,
            sram_min_bits=args.sram_min_bits,
            liberty=args.liberty,
            out_dir=args.out,
            seed=args.seed,
            charts=not args.no_charts,
            power_mode=args.power,
            dedup=not args.no_dedup,
            max_timing_cells=args.max_timing_cells,
            yosys_timeout=args.yosys_timeout,
            **({} if args.jobs is None else {"jobs": args.jobs}),
            command="python -m synth.flow " + shlex.join(sys.argv[1:] if argv is None else argv),
        )
        report = run_flow(opts)
    except MissingToolError as exc:
        print(f"synth.flow: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        ap.print_usage(sys.stderr)
        print(f"synth.flow: error: {exc}", file=sys.stderr)
        return 2
    except FlowError as exc:
        print(f"synth.flow: {exc}", file=sys.stderr)
        return 1
    return 0 if all(m["status"] == "ok" for m in report["modules"]) else 1


if __name__ == "__main__":
    sys.exit(main())
