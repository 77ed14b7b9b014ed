"""Per-net switching activity of a mapped netlist, for OpenSTA's power report.

Contract: :func:`annotate` takes the mapped netlist (Yosys JSON, hierarchy kept), the
Liberty cells, the SRAM macros and an :class:`synth.activity.VcdActivity` (or ``None`` for
the labelled default activity) and returns an :class:`Annotation`: activity and duty of
every net, where each value came from, the fraction of nets annotated from the simulation,
a Tcl file for OpenSTA, and the SRAM macros' access rates.

Name mapping: a net is *annotated* when one of its names (``<instance path>.<net name>``
bit ``i``, the names Yosys kept from the Amaranth Verilog: ports, registers and any other
public wire that survived optimisation) is a variable of the VCD (Amaranth's simulator names
its variables after the same signals). The rest is *propagated* from those, in topological
order, with the transition-density model OpenSTA itself uses (independent inputs;
``D(y) = sum_i P(dy/dx_i) D(x_i)``, exact Boolean differences from each cell's Liberty
function), through flip-flops (``Q`` follows ``D``, at most one transition per cycle) and
SRAM read ports (half the data bits toggle per read) to a fixed point. Unmatched top-level
inputs get OpenSTA's default (0.1 transitions per cycle, duty 0.5) and are counted as
*defaulted*.

Why every pin is annotated in Tcl: Debian's OpenSTA (2019) re-propagates activity itself and
overwrites annotations on internal pins it visits, and does not propagate from annotated
register outputs; annotating every pin of every cell (including register D pins, which keeps
its register pass from overwriting Q) makes its report use these values.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synth.activity import VcdActivity
from synth.liberty import Expr, Library
from synth.sram import MemoryInstance, SramEstimate

__all__ = [
    "DEFAULT_INPUT_ACTIVITY",
    "Annotation",
    "FlatNetlist",
    "MacroAccess",
    "annotate",
    "flatten",
    "load_mapped",
    "sram_dynamic_power",
    "write_power_netlist",
    "write_tcl",
]

#: OpenSTA's default for unannotated inputs: transitions per clock cycle, duty.
DEFAULT_INPUT_ACTIVITY = (0.1, 0.5)


@dataclass
class LeafInstance:
    """One standard cell or macro of the flattened netlist."""

    path: str  # OpenSTA name, '/'-separated
    cell: str
    pins: dict[str, int | str]  # pin (bit) name -> net id or constant '0'/'1'/'x'


@dataclass
class FlatNetlist:
    """The mapped netlist with its hierarchy flattened into global net ids."""

    instances: list[LeafInstance]
    net_names: dict[int, list[tuple[str, int]]]  # net -> [(dotted name, bit)]
    inputs: dict[str, int | str]  # top input port bit name -> net
    outputs: dict[str, int | str]
    n_nets: int


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        p = self.parent.setdefault(x, x)
        while p != x:
            self.parent[x] = self.parent.setdefault(p, p)
            x, p = p, self.parent[p]
        return p

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


def _bit_name(port: str, i: int, width: int) -> str:
    return f"{port}[{i}]" if width > 1 else port


def flatten(mapped: dict[str, Any], top: str, libs: list[Library]) -> FlatNetlist:
    """Flatten the Yosys JSON netlist of ``top`` (hierarchical) into one net space."""
    modules = mapped["modules"]
    design = {n for n, m in modules.items() if not m.get("attributes", {}).get("blackbox")}
    uf = _UnionFind()
    const_of: dict[Any, str] = {}
    leaves: list[tuple[str, str, dict[str, Any]]] = []
    names: list[tuple[Any, str, int]] = []

    def key(path: tuple[str, ...], bit: int | str) -> Any:
        if isinstance(bit, str):
            return ("const", bit)
        return (path, bit)

    def pin_width(cell: str, port: str, n: int) -> int:
        for lib in libs:
            if cell in lib and port in lib[cell].pins:
                return lib[cell].pins[port].width
        return n

    def visit(path: tuple[str, ...], mname: str) -> None:
        mod = modules[mname]
        for cname, cell in mod.get("cells", {}).items():
            ctype = cell["type"]
            conns = cell.get("connections", {})
            if ctype in design:
                child = (*path, cname)
                visit(child, ctype)
                for port, bits in conns.items():
                    cbits = modules[ctype]["ports"][port]["bits"]
                    for b, cb in zip(bits, cbits, strict=False):
                        if isinstance(cb, str):
                            continue
                        uf.union(key(path, b), key(child, cb))
            else:
                pins: dict[str, Any] = {}
                for port, bits in conns.items():
                    w = pin_width(ctype, port, len(bits))
                    for i, b in enumerate(bits):
                        pins[_bit_name(port, i, max(w, len(bits)))] = key(path, b)
                leaves.append(("/".join((*path, cname)), ctype, pins))
        for nname, info in mod.get("netnames", {}).items():
            if info.get("hide_name"):
                continue
            offset = int(info.get("offset", 0))
            dotted = ".".join((*path, nname))
            for i, b in enumerate(info["bits"]):
                if not isinstance(b, str):
                    names.append((key(path, b), dotted, i + offset))

    visit((), top)
    ids: dict[Any, int] = {}

    def net(k: Any) -> int | str:
        if k[0] == "const":
            return k[1]
        r = uf.find(k)
        if r in const_of:
            return const_of[r]
        return ids.setdefault(r, len(ids))

    instances = [
        LeafInstance(path, cell, {p: net(k) for p, k in pins.items()})
        for path, cell, pins in leaves
    ]
    net_names: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for k, dotted, bit in names:
        n = net(k)
        if isinstance(n, int):
            net_names[n].append((dotted, bit))
    inputs: dict[str, int | str] = {}
    outputs: dict[str, int | str] = {}
    for pname, port in modules[top]["ports"].items():
        bits = port["bits"]
        for i, b in enumerate(bits):
            target = inputs if port["direction"] == "input" else outputs
            target[_bit_name(pname, i, len(bits))] = net(key((), b))
    return FlatNetlist(instances, dict(net_names), inputs, outputs, len(ids))


# --- propagation ---------------------------------------------------------------------------


@dataclass
class _CellModel:
    """Zero-delay activity model of one cell type (lag-one, spatially independent inputs).

    Each input i has a duty p_i and a toggle probability t_i per cycle, i.e. the joint
    distribution of its value before and after a clock edge: P(0,0) = 1 - p - t/2,
    P(0,1) = P(1,0) = t/2, P(1,1) = p - t/2. An output toggles when its function differs
    between the two assignments; summing over all 4**k (before, after) pairs gives its exact
    toggle probability (<= 1, as in a zero-delay RTL simulation: glitches are not counted)
    and its duty.
    """

    inputs: list[str]
    outputs: list[str]
    table: np.ndarray  # (n_outputs, 2**k) bool, row index bit i = input i
    codes: np.ndarray  # (4**k, k) int: 0=00 1=01 2=10 3=11 (before, after)
    before: np.ndarray  # (4**k,) row index of the before assignment
    after: np.ndarray  # (4**k,)

    def evaluate(self, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p, t: (n_cells, k) -> duty, toggle probability: (n_cells, n_outputs)."""
        n, k = p.shape
        if k == 0:
            duty = np.broadcast_to(self.table[:, 0].astype(float), (n, len(self.outputs)))
            return duty.copy(), np.zeros((n, len(self.outputs)))
        p = np.clip(p, 0.0, 1.0)
        t = np.minimum(np.clip(t, 0.0, 1.0), 2.0 * np.minimum(p, 1.0 - p))
        joint = np.stack([1.0 - p - t / 2, t / 2, t / 2, p - t / 2], axis=2)  # (n, k, 4)
        joint = np.clip(joint, 0.0, 1.0)
        w = np.take_along_axis(joint[:, None, :, :], self.codes[None, :, :, None], axis=3)[
            ..., 0
        ].prod(axis=2)  # (n, 4**k)
        differs = self.table[:, self.before] != self.table[:, self.after]  # (n_out, 4**k)
        toggle = w @ differs.T.astype(float)
        asg = (np.arange(1 << k)[:, None] >> np.arange(k)[None, :]) & 1  # (2**k, k)
        wp = np.where(asg[None, :, :] == 1, p[:, None, :], 1.0 - p[:, None, :]).prod(axis=2)
        duty = wp @ self.table.T.astype(float)
        return duty, toggle


def _cell_model(ins: list[str], outs: list[tuple[str, Expr]]) -> _CellModel:
    k = len(ins)
    rows = range(1 << k)
    table = np.array(
        [
            [expr.evaluate({name: bool((r >> i) & 1) for i, name in enumerate(ins)}) for r in rows]
            for _, expr in outs
        ],
        dtype=bool,
    ).reshape(len(outs), 1 << k)
    combos = np.arange(4**k)
    codes = (combos[:, None] >> (2 * np.arange(k))[None, :]) & 3  # (4**k, k)
    before = ((codes >> 1) << np.arange(k)[None, :]).sum(axis=1) if k else np.zeros(1, int)
    after = ((codes & 1) << np.arange(k)[None, :]).sum(axis=1) if k else np.zeros(1, int)
    return _CellModel(ins, [o for o, _ in outs], table, codes, before, after)


@dataclass
class MacroAccess:
    """Access rates of one SRAM macro instance, from its port activity."""

    path: str
    macro: str
    reads_per_cycle: float
    writes_per_cycle: float


@dataclass
class Annotation:
    """Activity of every net and its origin, plus the OpenSTA Tcl that applies it."""

    activity: dict[int, tuple[float, float]]
    origin: dict[int, str]
    clock_nets: set[int]
    counts: dict[str, int]
    source: str
    tcl: Path | None = None
    macro_access: list[MacroAccess] = field(default_factory=list)
    matched_names: list[str] = field(default_factory=list)

    @property
    def n_nets(self) -> int:
        return sum(self.counts.values())

    @property
    def annotated_fraction(self) -> float:
        """Nets annotated from the simulation / all non-clock, non-constant nets."""
        total = self.n_nets
        return self.counts.get("annotated", 0) / total if total else 0.0


class _Nets:
    """Every net's activity (toggle probability ``t``, duty ``p``) as arrays indexed by net
    id, with three extra slots: constant 0, constant 1 and the clock (which every read of a
    clock net sees, whatever was written to the net's own slot). A net never written reads
    ``(0, 0.5)``."""

    def __init__(self, n: int, act: dict[int, tuple[float, float]], clock_nets: set[int]):
        self.c0, self.c1, self.clk = n, n + 1, n + 2
        self.t = np.zeros(n + 3)
        self.p = np.full(n + 3, 0.5)
        self.t[[self.c0, self.c1, self.clk]] = (0.0, 0.0, 2.0)
        self.p[[self.c0, self.c1, self.clk]] = (0.0, 1.0, 0.5)
        self.clock_nets = clock_nets
        self.written = np.zeros(n + 3, dtype=bool)
        for net, (t, p) in act.items():
            self.t[net], self.p[net] = t, p

    def index(self, n: int | str) -> int:
        """The slot a read of ``n`` (a net id or a constant '0'/'1'/'x') sees."""
        if isinstance(n, str):
            return self.c1 if n == "1" else self.c0
        return self.clk if n in self.clock_nets else n


@dataclass
class _Group:
    """Instances of one cell type evaluated together: their input slots and the nets their
    outputs drive (``-1``: an output that is unconnected, a constant or a fixed net)."""

    model: _CellModel
    inputs: np.ndarray  # (n_insts, k) slots
    outputs: np.ndarray  # (n_insts, n_outputs) net ids or -1

    @classmethod
    def of(cls, model: _CellModel, insts: list[LeafInstance], nets: _Nets, fixed: set[int]):
        k = len(model.inputs)
        ins = np.array(
            [[nets.index(i.pins.get(pin, "0")) for pin in model.inputs] for i in insts],
            dtype=np.int64,
        ).reshape(len(insts), k)

        def out(n: Any) -> int:
            return n if isinstance(n, int) and n not in fixed else -1

        outs = np.array(
            [[out(i.pins.get(o)) for o in model.outputs] for i in insts], dtype=np.int64
        ).reshape(len(insts), len(model.outputs))
        return cls(model, ins, outs)

    def evaluate(self, nets: _Nets, clamp: float | None) -> float:
        """Evaluate the group and write its outputs; returns the largest change. Every input
        is read before any output is written."""
        duty, toggle = self.model.evaluate(nets.p[self.inputs], nets.t[self.inputs])
        if clamp is not None:
            toggle = np.minimum(clamp, toggle)
        live = self.outputs >= 0
        if not live.any():
            return 0.0
        dest, t_new, p_new = self.outputs[live], toggle[live], duty[live]
        change = max(
            float(np.max(np.abs(t_new - nets.t[dest]))),
            float(np.max(np.abs(p_new - nets.p[dest]))),
        )
        nets.t[dest], nets.p[dest] = t_new, p_new
        nets.written[dest] = True
        return change


def _lib_cell(libs: list[Library], name: str):
    for lib in libs:
        if name in lib:
            return lib[name]
    raise KeyError(name)


def annotate(
    flat: FlatNetlist,
    libs: list[Library],
    macros: dict[str, tuple[MemoryInstance, SramEstimate]],
    vcd: VcdActivity | None,
    *,
    clock_port: str = "clk",
    source: str = "",
    max_iterations: int = 60,
) -> Annotation:
    """Activity (transitions per cycle, duty) of every net of ``flat``; see module docstring.

    ``vcd=None`` is the default-activity mode: no net is annotated, inputs get
    :data:`DEFAULT_INPUT_ACTIVITY`, everything else is propagated.
    """
    act: dict[int, tuple[float, float]] = {}
    origin: dict[int, str] = {}
    clock_nets: set[int] = set()
    matched: list[str] = []
    clk = flat.inputs.get(clock_port)
    if isinstance(clk, int):
        clock_nets.add(clk)
    # 1. nets named like a VCD variable
    if vcd is not None:
        for n, nlist in flat.net_names.items():
            if n in clock_nets:
                continue
            for dotted, bit in nlist:
                r = vcd.rate(dotted, bit)
                if r is not None:
                    act[n] = r
                    origin[n] = "annotated"
                    matched.append(f"{dotted}[{bit}]")
                    break
    # 2. top inputs without a match
    for net in flat.inputs.values():
        if isinstance(net, int) and net not in act and net not in clock_nets:
            act[net] = DEFAULT_INPUT_ACTIVITY
            origin[net] = "defaulted"
    fixed = set(act)
    # 3. classify cells
    macro_cells = {m.macro_name for m, _ in macros.values()}
    comb: dict[str, list[LeafInstance]] = defaultdict(list)
    seq: dict[str, list[LeafInstance]] = defaultdict(list)
    seq_models: dict[str, _CellModel] = {}
    macro_insts: list[LeafInstance] = []
    models: dict[str, _CellModel] = {}
    driver: dict[int, LeafInstance] = {}
    for inst in flat.instances:
        cell = _lib_cell(libs, inst.cell)
        for pname, pin in cell.pins.items():
            if pin.direction != "output":
                continue
            for bit in range(pin.width):
                n = inst.pins.get(_bit_name(pname, bit, pin.width))
                if isinstance(n, int):
                    driver.setdefault(n, inst)
        if inst.cell in macro_cells:
            macro_insts.append(inst)
        elif cell.sequential:
            if inst.cell not in seq_models:
                outs = [
                    (o.name, cell.next_state[o.function.pin])
                    for o in cell.outputs
                    if o.function is not None
                    and o.function.op == "pin"
                    and o.function.pin in cell.next_state
                ]
                ins = sorted(set().union(*(e.pins() for _, e in outs))) if outs else []
                seq_models[inst.cell] = _cell_model(ins, outs)
            seq[inst.cell].append(inst)
        else:
            if inst.cell not in models:
                ins = [p.name for p in cell.inputs]
                outs = [(o.name, o.function) for o in cell.outputs if o.function is not None]
                models[inst.cell] = _cell_model(ins, outs)
            comb[inst.cell].append(inst)

    all_nets: set[int] = set()
    for inst in flat.instances:
        all_nets.update(n for n in inst.pins.values() if isinstance(n, int))
    all_nets.update(n for n in flat.inputs.values() if isinstance(n, int))
    all_nets.update(n for n in flat.outputs.values() if isinstance(n, int))
    top = max(all_nets | {flat.n_nets - 1})
    nets = _Nets(top + 1, act, clock_nets)

    def get(n: int | str) -> tuple[float, float]:
        k = nets.index(n)
        return (float(nets.t[k]), float(nets.p[k]))

    # Topological levels of combinational cells (inputs from ports, flops, macros = level 0).
    comb_list = [inst for insts in comb.values() for inst in insts]
    comb_out: dict[int, LeafInstance] = {}
    for inst in comb_list:
        for o in models[inst.cell].outputs:
            n = inst.pins.get(o)
            if isinstance(n, int):
                comb_out[n] = inst
    level: dict[int, int] = {}
    visiting: set[int] = set()

    def lvl(inst: LeafInstance) -> int:
        k = id(inst)
        if k in level:
            return level[k]
        if k in visiting:  # combinational loop: cut it here
            return 0
        visiting.add(k)
        best = 0
        for pin in models[inst.cell].inputs:
            n = inst.pins.get(pin)
            if isinstance(n, int) and n in comb_out and n not in fixed:
                best = max(best, lvl(comb_out[n]) + 1)
        visiting.discard(k)
        level[k] = best
        return best

    import sys

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 100000))
    try:
        for inst in comb_list:
            lvl(inst)
    finally:
        sys.setrecursionlimit(old_limit)
    by_level: dict[int, dict[str, list[LeafInstance]]] = defaultdict(lambda: defaultdict(list))
    for inst in comb_list:
        by_level[level[id(inst)]][inst.cell].append(inst)
    levels = sorted(by_level)

    macro_by_path = {}
    for key_, (mem, est) in macros.items():
        macro_by_path[key_] = (mem, est)

    def macro_read_rate(inst: LeafInstance, mem: MemoryInstance) -> float:
        rate = 0.0
        for r in range(mem.read_ports):
            if mem.read_clocked[r]:
                en = inst.pins.get(_bit_name("RD_EN", r, mem.read_ports))
                rate += get(en)[1] if en is not None else 1.0
            else:  # asynchronous read: a read whenever the address changes
                p_none = 1.0
                for b in range(mem.abits):
                    n = inst.pins.get(
                        _bit_name("RD_ADDR", r * mem.abits + b, mem.read_ports * mem.abits)
                    )
                    if n is not None:
                        p_none *= 1.0 - min(1.0, get(n)[0])
                rate += 1.0 - p_none
        return rate

    def macro_write_rate(inst: LeafInstance, mem: MemoryInstance) -> float:
        rate = 0.0
        total = mem.write_ports * mem.width
        for w in range(mem.write_ports):
            duties = [
                get(inst.pins.get(_bit_name("WR_EN", w * mem.width + b, total), "0"))[1]
                for b in range(mem.width)
            ]
            rate += float(np.mean(duties)) if duties else 0.0
        return rate

    inst_mem: dict[int, MemoryInstance] = {}
    for inst in macro_insts:
        for mem, _ in macros.values():
            if mem.macro_name == inst.cell:
                inst_mem[id(inst)] = mem
                break

    seq_groups = [_Group.of(seq_models[c], insts, nets, fixed) for c, insts in seq.items()]
    comb_groups = [
        _Group.of(models[c], insts, nets, fixed)
        for lv in levels
        for c, insts in by_level[lv].items()
    ]
    macro_data = []  # per macro instance: the nets of its read data
    for inst in macro_insts:
        mem = inst_mem[id(inst)]
        width = mem.read_ports * mem.width
        data_nets = [inst.pins.get(_bit_name("RD_DATA", b, width)) for b in range(width)]
        data_nets = [n for n in data_nets if isinstance(n, int) and n not in fixed]
        macro_data.append(np.array(data_nets, dtype=np.int64))
    for _ in range(max_iterations):
        change = 0.0
        # sequential outputs follow their next-state function of this cycle's inputs,
        # with at most one transition per clock cycle
        for g in seq_groups:
            change = max(change, g.evaluate(nets, 1.0))
        for inst, dest in zip(macro_insts, macro_data, strict=True):
            if dest.size:
                t_new = min(1.0, 0.5 * macro_read_rate(inst, inst_mem[id(inst)]))
                change = max(change, float(np.max(np.abs(t_new - nets.t[dest]))))
                nets.t[dest], nets.p[dest] = t_new, 0.5
                nets.written[dest] = True
        for g in comb_groups:
            change = max(change, g.evaluate(nets, None))
        if change < 1e-6:
            break
    for n in np.flatnonzero(nets.written[: top + 1]).tolist():
        act[n] = (float(nets.t[n]), float(nets.p[n]))
        origin[n] = "propagated"

    # Nets with neither a name match nor a driver (e.g. unconnected macro outputs).
    for n in all_nets:
        if n not in act and n not in clock_nets:
            act[n] = (0.0, 0.0)
            origin[n] = "undriven"
    counts: dict[str, int] = defaultdict(int)
    for n in all_nets - clock_nets:
        counts[origin[n]] += 1
    accesses = [
        MacroAccess(
            inst.path,
            inst.cell,
            macro_read_rate(inst, inst_mem[id(inst)]),
            macro_write_rate(inst, inst_mem[id(inst)]),
        )
        for inst in macro_insts
    ]
    return Annotation(
        activity=act,
        origin=origin,
        clock_nets=clock_nets,
        counts=dict(counts),
        source=source,
        macro_access=accesses,
        matched_names=matched,
    )


@dataclass
class PowerWrapper:
    """The power-analysis netlist of :func:`write_power_netlist`."""

    top: str
    netlist: Path
    outputs: list[str]  # wrapper wires on the design's outputs
    sources: list[str]  # input bit driven by source flop i
    d_pin: str
    q_pin: str


#: Instance name of the design inside the power wrapper, and prefix of the input sources.
DUT_INSTANCE = "vx_dut"
SOURCE_PREFIX = "vx_src_"
#: Instance names of the wrapper's sink flops (``write_power_netlist(sink_flops=True)``).
SINK_PREFIX = "vx_sink_"


def _flop_cell(libs: list[Library]) -> tuple[str, str, str, str]:
    """A plain rising-edge D flip-flop of the library: (cell, clock pin, D pin, Q pin). The
    edge matters to the timing of the per-module power run (``synth.modpower``): a
    falling-edge source flop would give its paths half a cycle."""
    for lib in libs:
        for cell in lib.cells.values():
            if not cell.sequential or cell.dont_use or len(cell.pins) != 3:
                continue
            clk = [p.name for p in cell.inputs if p.clock]
            data = [p.name for p in cell.inputs if not p.clock]
            outs = [p.name for p in cell.outputs]
            rising = len(clk) == 1 and cell.clocked_on.strip("() ") == clk[0]
            if rising and len(data) == 1 and len(outs) == 1:
                return cell.name, clk[0], data[0], outs[0]
    raise ValueError("the liberty has no plain rising-edge D flip-flop (3 pins: CLK, D, Q)")


def write_power_netlist(
    netlist: Path,
    mapped: dict[str, Any],
    top: str,
    libs: list[Library],
    path: Path,
    *,
    clock_port: str = "clk",
    sink_flops: bool = False,
) -> PowerWrapper:
    """The netlist plus a wrapper that drives every non-clock input of ``top`` from a flop
    (and with ``sink_flops`` captures every output bit in one, so that a timing check sees
    the paths that end at the outputs; the sinks are not part of the design's power).

    Why: OpenSTA 2019 re-propagates activity from top-level inputs with its own density
    model and would overwrite the annotations of the whole input cone. Inside the wrapper
    the design has no data inputs: each input bit is the Q of a source flop (whose Q carries
    the input's annotation and whose power is excluded from the totals), so no pin is
    re-propagated. The outputs' wrapper wires get the timing run's output load.
    """
    cell, pin_clk, pin_d, pin_q = _flop_cell(libs)
    ports = mapped["modules"][top]["ports"]
    wrapper = "vx_power_wrapper"
    lines = [
        Path(netlist).read_text(),
        f"module {wrapper}({clock_port});",
        f"  input {clock_port};",
    ]
    conns = []
    outputs: list[str] = []
    sources: list[str] = []
    for name, port in ports.items():
        width = len(port["bits"])
        wire = f"vx_w_{len(conns)}"
        decl = f"[{width - 1}:0] " if width > 1 else ""
        if name == clock_port and port["direction"] == "input":
            conns.append(f".{_vname(name)}({clock_port})")
            continue
        lines.append(f"  wire {decl}{wire};")
        conns.append(f".{_vname(name)}({wire})")
        if port["direction"] == "input":
            for i in range(width):
                bit = f"{wire}[{i}]" if width > 1 else wire
                lines.append(
                    f"  {cell} {SOURCE_PREFIX}{len(sources)} (.{pin_clk}({clock_port}), "
                    f".{pin_d}(1'b0), .{pin_q}({bit}));"
                )
                sources.append(_bit_name(name, i, width))
        else:
            outputs.append(wire)
            for i in range(width if sink_flops else 0):
                bit = f"{wire}[{i}]" if width > 1 else wire
                lines.append(
                    f"  {cell} {SINK_PREFIX}{len(outputs)}_{i} (.{pin_clk}({clock_port}), "
                    f".{pin_d}({bit}), .{pin_q}());"
                )
    lines.append(f"  {_vname(top)} {DUT_INSTANCE} ({', '.join(conns)});")
    lines.append("endmodule")
    path.write_text("\n".join(lines) + "\n")
    return PowerWrapper(wrapper, path, outputs, sources, pin_d, pin_q)


def _vname(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped if it is not a simple one)."""
    import re

    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


#: Transitions per cycle below which an activity is written as 0. Propagated through long
#: gate chains, an activity can underflow towards the denormals (1e-42 on the 64-lane paper
#: core), and OpenSTA then gives the gate an infinite internal power: ``report_power``
#: failed with a Tcl domain error.
MIN_DENSITY = 1e-12


def write_tcl(flat: FlatNetlist, ann: Annotation, wrapper: PowerWrapper, path: Path) -> Path:
    """Write the Tcl that applies ``ann`` to every pin of the power wrapper's design.

    Pins of the design are named ``vx_dut/<instance path>/<pin>``; each top-level input bit's
    activity goes on the Q pin of its source flop (see :func:`write_power_netlist`), whose D
    pin is annotated as constant.
    """

    def value(n: int | str) -> tuple[float, float]:
        if isinstance(n, str):
            return (0.0, 1.0 if n == "1" else 0.0)
        a, d = ann.activity.get(n, (0.0, 0.0))
        return (a if a >= MIN_DENSITY else 0.0, d)

    lines = [
        "# Pin activities (transitions per clock cycle, duty) written by synth/power.py",
        "set vx_act [dict create \\",
    ]
    for inst in flat.instances:
        for pin, n in inst.pins.items():
            if isinstance(n, int) and n in ann.clock_nets:
                continue
            a, d = value(n)
            lines.append(f"  {{{DUT_INSTANCE}/{inst.path}/{pin}}} {{{a:.6g} {d:.6g}}} \\")
    for i, bit in enumerate(wrapper.sources):
        a, d = value(flat.inputs[bit])
        src = f"{SOURCE_PREFIX}{i}"
        lines.append(f"  {{{src}/{wrapper.q_pin}}} {{{a:.6g} {d:.6g}}} \\")
        lines.append(f"  {{{src}/{wrapper.d_pin}}} {{0 0}} \\")
    lines.append("]")
    lines += [
        "set vx_pins 0",
        "foreach p [get_pins -hierarchical *] {",
        "  set n [get_full_name $p]",
        "  if {[dict exists $vx_act $n]} {",
        "    lassign [dict get $vx_act $n] a d",
        "    sta::set_power_pin_activity $p $a $d",
        "    incr vx_pins",
        "  }",
        "}",
        'puts "VREX_ANNOTATED_PINS $vx_pins [dict size $vx_act]"',
    ]
    path.write_text("\n".join(lines) + "\n")
    ann.tcl = path
    return path


def sram_dynamic_power(
    ann: Annotation,
    macros: dict[str, tuple[MemoryInstance, SramEstimate]],
    clock_ns: float,
) -> dict[str, dict[str, float]]:
    """Dynamic power (W) of each SRAM macro instance: f·(reads·E_read + writes·E_write)."""
    by_cell = {mem.macro_name: est for mem, est in macros.values()}
    freq = 1e9 / clock_ns
    out: dict[str, dict[str, float]] = {}
    for acc in ann.macro_access:
        est = by_cell[acc.macro]
        p = (
            freq
            * (acc.reads_per_cycle * est.e_read_pj + acc.writes_per_cycle * est.e_write_pj)
            * 1e-12
        )
        out[acc.path] = {
            "reads_per_cycle": acc.reads_per_cycle,
            "writes_per_cycle": acc.writes_per_cycle,
            "dynamic_w": p,
        }
    return out


def load_mapped(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
