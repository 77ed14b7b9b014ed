"""Power of a large hierarchical netlist, one distinct module at a time (default activity).

Why: the flat power path (:mod:`synth.power`: flatten, propagate, OpenSTA ``report_power``
on every leaf) costs time in proportion to the *instances* of the design — 20 minutes for
the paper core before its prefill array, far more with it. After module deduplication
(:mod:`synth.dedup`) the netlist holds each distinct module once; this path analyses each of
them once and multiplies.

Method (:func:`module_power`): every non-black-box module of the mapped netlist becomes an
*own* module: its own cells only, its submodule instances removed, the nets those instances
drove turned into inputs (the nets that only fed them lose that load). One synthetic design
instantiates every own module once, clock ports tied to one clock and ``rst`` ports to 0
(reset inactive); every other input gets OpenSTA's **default activity** (0.1 transitions
per cycle, duty 0.5) and the activity is propagated through the cells as in the flat path
(:func:`synth.power.annotate` with no VCD), then OpenSTA's ``report_power`` gives the power
of each leaf (with ``jobs`` > 1 the modules are split into groups of about equal cell
counts, each its own synthetic design, process and OpenSTA run: a module's figures do not
depend on its group). A module's own power is the sum over its leaves (plus the access
energy of its SRAM macros); an instance's power is the sum of its subtree's own powers, the
design's the top's. This is *not simulated*: each module boundary restarts at the default activity,
whatever its instance really sees (an idle unit counts as busy, a busy datapath as
lightly used), and it says so in the report.

The same OpenSTA run reports the worst setup path of the synthetic design: every input of an
own module comes from a rising-edge source flop and every output goes to a sink flop, so it
is the longest path inside any one distinct module, between flops or module boundaries. A
path through several modules is cut at each boundary: the design's critical path is at least
this long (``ModulePowerResult.worst_slack_ns``, the flow's ``module_timing``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.liberty import Library
from synth.power import (
    DUT_INSTANCE,
    FlatNetlist,
    LeafInstance,
    annotate,
    flatten,
    sram_dynamic_power,
    write_power_netlist,
    write_tcl,
)
from synth.sram import MemoryInstance, SramEstimate
from synth.sta import CriticalPath, run_power
from synth.tools import check_positive_int

__all__ = ["ModulePower", "ModulePowerResult", "module_power", "own_design"]

TOP = "vx_own_modules"
CLOCK = "clk"
RESET = "rst"


@dataclass
class ModulePower:
    """Power of one module's own cells (W), at the default activity."""

    internal_w: float = 0.0
    switching_w: float = 0.0
    leakage_w: float = 0.0
    sram_leakage_w: float = 0.0
    sram_output_w: float = 0.0
    sram_dynamic_w: float = 0.0
    #: Macro cell name -> OpenSTA total + access energy, per macro leaf (cell name -> W).
    macros: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def std_w(self) -> float:
        return self.internal_w + self.switching_w + self.leakage_w

    @property
    def total_w(self) -> float:
        return self.std_w + self.sram_leakage_w + self.sram_output_w + self.sram_dynamic_w


@dataclass
class ModulePowerResult:
    """What :func:`module_power` returns."""

    own: dict[str, ModulePower]
    subtree_w: dict[str, float]
    #: The annotated nets by origin (``synth.power.Annotation.counts``), summed over groups.
    nets: dict[str, int]
    leaves: int
    log: Path
    #: The worst setup slack over the modules (ns) and its path, its start and end points
    #: renamed to ``module/cell/pin`` (see :func:`module_power`).
    worst_slack_ns: float | None = None
    critical_path: CriticalPath | None = None
    #: The module the critical path ends in.
    critical_module: str | None = None


def _design(mapped: dict[str, Any]) -> set[str]:
    """The modules of ``mapped`` that are not black boxes."""
    return {n for n, m in mapped["modules"].items() if not m.get("attributes", {}).get("blackbox")}


def own_design(
    mapped: dict[str, Any], *, reset_inactive: bool = True, only: set[str] | None = None
) -> dict[str, Any]:
    """A Yosys-JSON design whose top :data:`TOP` instantiates the *own* version of every
    non-black-box module of ``mapped`` (or of those in ``only``) once (instance name =
    module name; see the module docstring). ``reset_inactive``: ``rst`` ports tied to 0
    (else a default-activity input)."""
    modules = mapped["modules"]
    design = _design(mapped)
    out: dict[str, Any] = {n: m for n, m in modules.items() if n not in design}
    top_ports: dict[str, Any] = {CLOCK: {"direction": "input", "bits": [2]}}
    top_cells: dict[str, Any] = {}
    next_bit = 3
    for name in sorted(design if only is None else only):
        mod = modules[name]
        own = copy.deepcopy({k: v for k, v in mod.items() if k != "cells"})
        own["cells"] = {}
        ports = own.setdefault("ports", {})
        for cname, cell in mod.get("cells", {}).items():
            if cell["type"] not in design:
                own["cells"][cname] = cell
                continue
            child = modules[cell["type"]]["ports"]
            for port, bits in cell.get("connections", {}).items():
                if child.get(port, {}).get("direction") != "output":
                    continue
                driven = [b for b in bits if not isinstance(b, str)]
                if driven:
                    ports[f"vx_from_{cname}_{port}"] = {"direction": "input", "bits": driven}
        oname = f"{name}$own"
        out[oname] = own
        conns: dict[str, list[Any]] = {}
        for port, info in ports.items():
            n = len(info["bits"])
            if port == CLOCK and info["direction"] == "input":
                conns[port] = [2] * n
            elif reset_inactive and port == RESET and info["direction"] == "input":
                conns[port] = ["0"] * n
            else:
                bits = list(range(next_bit, next_bit + n))
                next_bit += n
                conns[port] = bits
                direction = "input" if info["direction"] == "input" else "output"
                top_ports[f"vx_p{len(top_ports)}"] = {"direction": direction, "bits": bits}
        top_cells[name] = {"type": oname, "connections": conns}
    out[TOP] = {"ports": top_ports, "cells": top_cells, "netnames": {}}
    return {"modules": out}


def _verilog(flat: FlatNetlist, libs: list[Library], path: Path) -> dict[str, Any]:
    """Write ``flat`` as one flat gate-level Verilog module (instances ``c<k>``, nets
    ``n<k>``, one port per input bit ``i<k>`` plus the clock, one per output bit ``o<k>``);
    returns its ports in the
    Yosys-JSON form :func:`synth.power.write_power_netlist` reads."""

    def width(cell: str, pin: str) -> int:
        for lib in libs:
            if cell in lib and pin in lib[cell].pins:
                return lib[cell].pins[pin].width
        return 1

    ports = {}
    port_nets: dict[str, int] = {}
    clk = flat.inputs.get(CLOCK)
    net_name: dict[int, str] = {}  # a port per input net (a set: inputs may share a net)
    for n in flat.inputs.values():
        if isinstance(n, int) and n != clk and n not in net_name:
            net_name[n] = f"i{len(port_nets)}"
            port_nets[net_name[n]] = n
    if isinstance(clk, int):
        net_name[clk] = CLOCK

    def sig(n: int | str) -> str:
        if isinstance(n, str):
            return "1'b1" if n == "1" else "1'b0"
        return net_name.get(n, f"n{n}")

    # an output port per output net a cell drives
    used = {n for inst in flat.instances for n in inst.pins.values() if isinstance(n, int)}
    out_nets: dict[str, int] = {}
    for n in flat.outputs.values():
        if n in used and n not in net_name and n not in out_nets.values():
            out_nets[f"o{len(out_nets)}"] = n
    names = [CLOCK, *port_nets, *out_nets]
    lines = [f"module {TOP}({', '.join(names)});", f"  input {CLOCK};"]
    lines += [f"  input {p};" for p in port_nets]
    lines += [f"  output {p};" for p in out_nets]
    lines += [f"  wire n{n};" for n in sorted(used) if n not in net_name]
    for k, inst in enumerate(flat.instances):
        pins: dict[str, dict[int, int | str]] = defaultdict(dict)
        for pb, n in inst.pins.items():
            base, _, idx = pb.partition("[")
            pins[base][int(idx[:-1]) if idx else 0] = n
        conns = []
        for base, bits in pins.items():
            w = max(width(inst.cell, base), max(bits) + 1)
            if w == 1:
                conns.append(f".{base}({sig(bits[0])})")
            else:
                conns.append(
                    f".{base}({{{', '.join(sig(bits.get(i, '0')) for i in reversed(range(w)))}}})"
                )
        lines.append(f"  {inst.cell} c{k} ({', '.join(conns)});")
    lines += [f"  assign {p} = n{n};" for p, n in out_nets.items()]
    lines.append("endmodule")
    path.write_text("\n".join(lines) + "\n")
    ports[CLOCK] = {"direction": "input", "bits": [0]}
    for p in port_nets:
        ports[p] = {"direction": "input", "bits": [1]}
    for p in out_nets:
        ports[p] = {"direction": "output", "bits": [1]}
    return {"ports": ports, "port_nets": port_nets}


def module_power(
    mapped: dict[str, Any],
    top: str,
    libs: list[Library],
    liberties: list[Path],
    macros: dict[str, tuple[MemoryInstance, SramEstimate]],
    workdir: Path,
    clock_ns: float,
    *,
    reset_inactive: bool = True,
    jobs: int = 1,
) -> ModulePowerResult:
    """Own power of every module of ``mapped`` and subtree power of each (see the module
    docstring). The modules are split into up to ``jobs`` groups of about equal cell counts,
    each analysed by a process and an OpenSTA run of its own in ``workdir/group<k>`` (one
    group: in ``workdir``): a module's own design does not depend on the others', so the
    figures do not depend on ``jobs``."""
    check_positive_int("jobs", jobs)
    modules = mapped["modules"]
    design = _design(mapped)
    if top not in design:
        raise ValueError(f"top {top!r} is not a module of the mapped netlist")
    groups = _groups(modules, design, jobs)
    args = [
        (
            _pruned(mapped, design, group),
            group,
            libs,
            liberties,
            macros,
            workdir if len(groups) == 1 else workdir / f"group{k}",
            clock_ns,
            reset_inactive,
        )
        for k, group in enumerate(groups)
    ]
    if len(groups) == 1:
        results = [_group_power(*args[0])]
    else:
        with ProcessPoolExecutor(len(groups)) as pool:
            results = list(pool.map(_group_power, *zip(*args, strict=True)))
    log = workdir / "sta_module_power.log"
    if len(groups) > 1:
        with open(log, "w") as out:
            for k, r in enumerate(results):
                out.write(f"# modules {', '.join(sorted(groups[k]))}: {r.log}\n")
                out.write(r.log.read_text())
    own: dict[str, ModulePower] = defaultdict(ModulePower)  # a module without cells: 0 W
    nets: dict[str, int] = defaultdict(int)
    for r in results:
        own.update(r.own)
        for kind, n in r.nets.items():
            nets[kind] += n
    subtree: dict[str, float] = {}

    def sub(name: str) -> float:
        if name not in subtree:
            total = own[name].total_w
            for cell in modules[name].get("cells", {}).values():
                if cell["type"] in design:
                    total += sub(cell["type"])
            subtree[name] = total
        return subtree[name]

    for name in design:
        sub(name)
    timed = [r for r in results if r.worst_slack_ns is not None]
    worst = min(timed, key=lambda r: r.worst_slack_ns) if timed else results[0]
    return ModulePowerResult(
        own=dict(own),
        subtree_w=subtree,
        nets=dict(nets),
        leaves=sum(r.leaves for r in results),
        log=log,
        worst_slack_ns=worst.worst_slack_ns,
        critical_path=worst.critical_path,
        critical_module=worst.critical_module,
    )


def _groups(modules: dict[str, Any], design: set[str], jobs: int) -> list[set[str]]:
    """``design`` in up to ``jobs`` non-empty groups of about equal own cell counts (the
    largest module first, each to the lightest group)."""
    size = {n: len(modules[n].get("cells", {})) for n in design}
    groups: list[set[str]] = [set() for _ in range(min(jobs, len(design)))]
    load = [0] * len(groups)
    for name in sorted(design, key=lambda n: (-size[n], n)):
        k = load.index(min(load))
        groups[k].add(name)
        load[k] += size[name] + 1
    return groups


def _pruned(mapped: dict[str, Any], design: set[str], group: set[str]) -> dict[str, Any]:
    """``mapped`` with only ``group``'s modules whole: the other modules of ``design`` keep
    their ports (what :func:`own_design` reads of a submodule), the black boxes stay."""
    modules = mapped["modules"]
    return {
        "modules": {
            n: m if n in group or n not in design else {"ports": m.get("ports", {})}
            for n, m in modules.items()
        }
    }


def _group_power(
    mapped: dict[str, Any],
    group: set[str],
    libs: list[Library],
    liberties: list[Path],
    macros: dict[str, tuple[MemoryInstance, SramEstimate]],
    workdir: Path,
    clock_ns: float,
    reset_inactive: bool,
) -> ModulePowerResult:
    """The own power of ``group``'s modules and the worst path among them: one synthetic
    design, one annotation, one OpenSTA run in ``workdir`` (``subtree_w`` left empty)."""
    workdir.mkdir(parents=True, exist_ok=True)
    synthetic = own_design(mapped, reset_inactive=reset_inactive, only=group)
    flat = flatten(synthetic, TOP, libs)
    owner = [inst.path.split("/", 1) for inst in flat.instances]
    ann = annotate(
        flat,
        libs,
        macros,
        None,
        source="DEFAULT ACTIVITY per distinct module (not simulated)",
    )
    renamed = FlatNetlist(
        [LeafInstance(f"c{k}", inst.cell, inst.pins) for k, inst in enumerate(flat.instances)],
        flat.net_names,
        flat.inputs,
        flat.outputs,
        flat.n_nets,
    )
    netlist = workdir / "own_modules.v"
    info = _verilog(renamed, libs, netlist)
    # write_power_netlist drives every input port of the design from a source flop
    port_map = {CLOCK: flat.inputs.get(CLOCK, "0"), **info["port_nets"]}
    # sink flops on the outputs: the timing check then sees the paths through a module
    # that end at its outputs (a purely combinational module's only paths)
    wrapper = write_power_netlist(
        netlist,
        {"modules": {TOP: {"ports": info["ports"]}}},
        TOP,
        libs,
        workdir / "own_power.v",
        sink_flops=True,
    )
    renamed.inputs = dict(port_map)
    tcl = write_tcl(renamed, ann, wrapper, workdir / "own_activity.tcl")
    pw = run_power(
        wrapper.netlist,
        wrapper.top,
        liberties,
        workdir,
        clock_ns,
        tcl,
        checks=True,
        step="module power",
    )
    macro_cells = {m.macro_name for m, _ in macros.values()}
    # access energy of each macro leaf, keyed by its flat path (module/cell)
    dyn = sram_dynamic_power(ann, macros, clock_ns)
    own: dict[str, ModulePower] = defaultdict(ModulePower)
    for k, inst in enumerate(flat.instances):
        mod, cell_name = owner[k]
        mp = own[mod]
        vals = pw.instances.get(f"{DUT_INSTANCE}/c{k}")
        if vals is None:
            continue
        pi, ps, pl, pt = vals
        if inst.cell in macro_cells:
            d = dyn.get(inst.path, {}).get("dynamic_w", 0.0)
            mp.sram_leakage_w += pl
            mp.sram_output_w += pi + ps
            mp.sram_dynamic_w += d
            mp.macros[cell_name] = {"cell": inst.cell, "opensta_w": pt, "dynamic_w": d}
        else:
            mp.internal_w += pi
            mp.switching_w += ps
            mp.leakage_w += pl
    cp, end_module = pw.critical_path, None
    if cp is not None:
        leaf = re.compile(rf"^{re.escape(DUT_INSTANCE)}/c(\d+)(/.*)?$")

        def rename(point: str) -> str:
            m = leaf.match(point)
            if m is None:
                return point  # a port, or a source flop of the wrapper
            mod, cell_name = owner[int(m.group(1))]
            return f"{mod}/{cell_name}{m.group(2) or ''}"

        # the module of the path's last cell in the design (the endpoint may be a sink)
        ends = [leaf.match(st.split(" ", 1)[0]) for st in reversed(cp.stages)]
        end = next((e for e in ends if e), None)
        end_module = owner[int(end.group(1))][0] if end else None
        cp = dataclasses.replace(
            cp,
            startpoint=rename(cp.startpoint),
            endpoint=rename(cp.endpoint),
            stages=[rename(st.split(" ", 1)[0]) + " " + st.split(" ", 1)[1] for st in cp.stages],
        )
    return ModulePowerResult(
        own=dict(own),
        subtree_w={},
        nets=dict(ann.counts),
        leaves=len(flat.instances),
        log=workdir / "sta_module_power.log",
        worst_slack_ns=pw.worst_slack_ns,
        critical_path=cp,
        critical_module=end_module,
    )
