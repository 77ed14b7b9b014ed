"""Yosys synthesis of one top module to the standard-cell liberty, with SRAM macros.

Contract: :func:`synthesize` takes the design as RTLIL (what the flow passes:
``hw.gen.generate_rtlil(..., initial_state=False)``, read with ``read_rtlil``, so Yosys never
parses per-word memory initialisers — the paper core's 2 MiB key-sum RAM alone was 9 MB of
Verilog) or as Verilog text (``read_verilog``), the top module name, a
work directory, the liberty and an SRAM cut-off, and returns a :class:`SynthResult` with the
mapped hierarchical netlist (``netlist.v``, ``mapped.json``), Yosys' ``stat -json`` and the
area per module and per instance (cells, flops, combinational / sequential / macro area).

Two Yosys runs (YoWASP Yosys, each in the work directory with relative paths because the
WebAssembly sandbox hides the host's ``/tmp``):

1. *inspect*: ``proc; memory -nomap`` and ``write_json``: every memory is one ``$mem_v2``
   cell whose WIDTH/SIZE/ABITS/port parameters give its shape (:class:`MemoryInstance`).
2. *map*: the same front end; memories chosen by :func:`synth.sram.is_macro` are retyped to
   a black-box macro cell (``setparam -type``), whose Liberty model :mod:`synth.sram`
   writes; then ``synth -top -noabc`` (hierarchy kept, so area per submodule is exact),
   ``dfflibmap``, a generic ``abc`` (logic optimisation, one ABC run per module: ``synth``'s
   own ``abc`` would run once per flip-flop enable signal), ``abc -D <clock> -constr``
   (timing-driven mapping with fanout buffering
   and gate sizing; driving cell = the library's smallest buffer, 10 fF load) and
   ``stat -json``. Small memories are mapped to
   flip-flops by ``synth``'s ``memory_map``. An RTLIL design of several modules is mapped
   module by module (:func:`split_design`: one Yosys per module, in ``parts/<module>/``,
   ``jobs`` at a time), and their ``stat.json``, ``mapped.json``, ``netlist.v`` and
   ``synth.log`` merged into the work directory.

Registers keep their RTL names as net names (``opt_clean`` keeps public wire names and
``write_verilog -noattr`` writes them), which is what :mod:`synth.power` matches the
simulation's VCD against.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.dedup import DedupResult, dedup_rtlil, parse_modules
from synth.liberty import Library, read_liberty
from synth.sram import (
    DEFAULT_SRAM_MIN_BITS,
    OSU018_SRAM,
    MemoryInstance,
    SramEstimate,
    SramTech,
    estimate,
    is_macro,
    liberty_text,
    verilog_stub,
)
from synth.tools import ToolError, check_positive_int, run_tool, yosys_command

__all__ = [
    "InstanceArea",
    "ModuleArea",
    "SynthResult",
    "inspect_memories",
    "split_design",
    "synthesize",
]

STD_LIB = "std_cells.lib"
MACRO_LIB = "sram_macros.lib"
MACRO_STUB = "sram_macros.v"
ABC_CONSTR = "abc.constr"
#: Load ABC assumes on every output when it buffers and sizes (pF, the library's unit).
ABC_LOAD_PF = 0.01


def _buffer_cell(lib: Library) -> str:
    """The smallest non-inverting buffer of ``lib`` (ABC's driving cell)."""
    best: tuple[float, str] | None = None
    for cell in lib.cells.values():
        if cell.sequential or cell.dont_use or len(cell.inputs) != 1 or len(cell.outputs) != 1:
            continue
        f = cell.outputs[0].function
        is_buffer = f is not None and f.op == "pin" and f.pin == cell.inputs[0].name
        if is_buffer and (best is None or cell.area < best[0]):
            best = (cell.area, cell.name)
    if best is None:
        raise ValueError(f"liberty {lib.path} has no buffer cell")
    return best[1]


@dataclass
class ModuleArea:
    """Area of one Yosys module, its own cells only (submodule instances excluded)."""

    name: str
    cells: int = 0
    flops: int = 0
    comb_area: float = 0.0
    seq_area: float = 0.0
    macro_area: float = 0.0
    cells_by_type: dict[str, int] = field(default_factory=dict)
    #: Submodule instances: instance name -> module name.
    children: dict[str, str] = field(default_factory=dict)
    #: Memories kept as macros here: cell name -> macro cell name.
    macros: dict[str, str] = field(default_factory=dict)

    @property
    def std_area(self) -> float:
        return self.comb_area + self.seq_area


@dataclass
class InstanceArea:
    """Area of one instance of the hierarchy, its subtree included."""

    path: str
    module: str
    cells: int
    flops: int
    comb_area: float
    seq_area: float
    macro_area: float

    @property
    def std_area(self) -> float:
        return self.comb_area + self.seq_area

    @property
    def total_area(self) -> float:
        return self.std_area + self.macro_area


@dataclass
class SynthResult:
    """Everything :func:`synthesize` produced."""

    top: str
    workdir: Path
    netlist: Path
    mapped_json: Path
    liberties: list[Path]
    stat: dict[str, Any]
    modules: dict[str, ModuleArea]
    instances: list[InstanceArea]
    memories: list[MemoryInstance]
    macros: dict[str, tuple[MemoryInstance, SramEstimate]]
    sram_min_bits: int
    log: Path
    #: The module deduplication applied before synthesis (``None``: the design as given).
    dedup: DedupResult | None = None

    @property
    def total(self) -> InstanceArea:
        """The top instance (the whole design)."""
        return self.instances[0]


def _param_int(value: str | int) -> int:
    if isinstance(value, int):
        return value
    value = value.strip()
    if set(value) <= {"0", "1"}:
        return int(value, 2)
    return int(value)


def _param_bits(value: str | int, n: int) -> tuple[bool, ...]:
    if isinstance(value, int):
        return tuple(bool((value >> i) & 1) for i in range(n))
    bits = value.strip()
    bits = bits.rjust(n, "0")
    return tuple(bits[len(bits) - 1 - i] == "1" for i in range(n))


def _memories_from_json(data: dict[str, Any]) -> list[MemoryInstance]:
    mems: list[MemoryInstance] = []
    for mname, mod in data.get("modules", {}).items():
        for cname, cell in mod.get("cells", {}).items():
            if cell.get("type") != "$mem_v2":
                continue
            p = cell["parameters"]
            rd = _param_int(p["RD_PORTS"])
            wr = _param_int(p["WR_PORTS"])
            mems.append(
                MemoryInstance(
                    module=mname,
                    name=cname,
                    width=_param_int(p["WIDTH"]),
                    depth=_param_int(p["SIZE"]),
                    abits=_param_int(p["ABITS"]),
                    read_ports=rd,
                    write_ports=wr,
                    read_clocked=_param_bits(p["RD_CLK_ENABLE"], rd),
                    write_clocked=_param_bits(p["WR_CLK_ENABLE"], wr),
                )
            )
    return mems


def _is_rtlil(design: str) -> bool:
    return re.search(r"(?m)^module \\", design) is not None


def _design_file(design: str) -> str:
    return "design.il" if _is_rtlil(design) else "design.v"


def _front_end(top: str | None, design: str, extra: list[str] = ()) -> list[str]:
    reader = "read_rtlil" if _is_rtlil(design) else "read_verilog"
    return [
        f"{reader} {_design_file(design)}",
        *extra,
        f"hierarchy -check -top {top}" if top else "hierarchy -check",
        "proc",
        "opt_clean",
        "memory -nomap",
        "opt_clean",
    ]


#: A port declaration in an RTLIL module (``wire width 16 input 3 \\a``).
_PORT_LINE = re.compile(r"^\s+wire\b.*\b(?:input|output|inout) \d+ ")


@dataclass
class DesignPart:
    """One module of a design as :func:`split_design` gives it: ``text`` (RTLIL) defines
    ``module`` and declares the modules it instances as black boxes (their ports only);
    ``size`` is its RTLIL line count."""

    module: str
    text: str
    size: int


def split_design(design: str) -> list[DesignPart]:
    """The RTLIL ``design``'s modules, each as a design of its own (largest first), or no
    part for a design of one module.

    Without ``-flatten`` Yosys optimises and maps each module on its own, but in one run the
    internal names it gives a module's cells depend on every module processed before it,
    and ABC's mapping on those names: the paper core's FP32 adder, the same RTLIL each time,
    mapped to 1804, 1734 and 1714 cells in three runs. Mapped alone, a module's netlist
    depends on its own text only, whatever design holds it and however many Yosys run at
    once. The ``top`` attribute is dropped (a part with a top would be checked as one)."""
    preamble, modules = parse_modules(design)
    if len(modules) < 2:
        return []
    by_name = {m.name: m for m in modules}
    parts = []
    for m in sorted(modules, key=lambda m: -len(m.body)):
        head = [h for h in m.head if h.split() != ["attribute", "\\top", "1"]]
        lines = [*preamble, *head, f"module \\{m.name}", *m.body, "end"]
        for name in sorted({child for _, child in m.cells}):
            ports = [ln for ln in by_name[name].body if _PORT_LINE.match(ln)]
            lines += ["attribute \\blackbox 1", f"module \\{name}", *ports, "end"]
        parts.append(DesignPart(m.name, "\n".join(lines) + "\n", len(m.body)))
    return parts


def _synthesize_parts(
    parts: list[DesignPart], workdir: Path, script: Any, timeout: float, jobs: int
) -> None:
    """Map ``parts``, each by one Yosys in ``workdir/parts/<module>``, ``jobs`` at a time
    (the largest first), and merge their ``stat.json``, ``mapped.json``, ``netlist.v`` and
    ``synth.log`` into ``workdir``."""
    shared_files = [
        p for p in (STD_LIB, ABC_CONSTR, MACRO_STUB, MACRO_LIB) if (workdir / p).exists()
    ]
    dirs = []
    for part in parts:
        d = workdir / "parts" / part.module
        _write_design(d, part.text)
        for name in shared_files:
            shutil.copyfile(workdir / name, d / name)
        dirs.append(d)

    def run(k: int) -> None:
        lines = script(None, parts[k].text, parts[k].module)
        _run_yosys(dirs[k], "synth", f"synthesis of module {parts[k].module}", lines, timeout)

    with ThreadPoolExecutor(min(jobs, len(parts))) as pool:
        for future in [pool.submit(run, k) for k in range(len(parts))]:
            future.result()  # the first failure, with its module's log
    stat: dict[str, Any] = {"modules": {}}
    mapped: dict[str, Any] = {"modules": {}}
    for part, d in zip(parts, dirs, strict=True):
        stat["modules"].update(json.loads((d / "stat.json").read_text())["modules"])
        for name, mod in json.loads((d / "mapped.json").read_text())["modules"].items():
            if name == part.module or name not in mapped["modules"]:
                mapped["modules"][name] = mod  # the module, or a black box until it comes
    (workdir / "stat.json").write_text(json.dumps(stat))
    (workdir / "mapped.json").write_text(json.dumps(mapped))
    with open(workdir / "netlist.v", "w") as out, open(workdir / "synth.log", "w") as log:
        for part, d in zip(parts, dirs, strict=True):
            out.write((d / "netlist.v").read_text())
            log.write(f"# module {part.module}: parts/{part.module}/synth.log\n")
            log.write((d / "synth.log").read_text())


def _write_design(workdir: Path, design: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _design_file(design)).write_text(design)


def _run_yosys(workdir: Path, name: str, step: str, script: list[str], timeout: float) -> None:
    """Run ``script`` as ``<name>.ys`` in ``workdir`` (log ``<name>.log``, output
    ``<name>.out``); :class:`ToolError` naming ``step`` on failure."""
    (workdir / f"{name}.ys").write_text("\n".join(script) + "\n")
    run_tool(
        "yosys",
        step,
        [*yosys_command(), "-q", "-l", f"{name}.log", f"{name}.ys"],
        cwd=workdir,
        log=workdir / f"{name}.out",
        timeout=timeout,
    )


def inspect_memories(
    design: str, top: str, workdir: Path, *, timeout: float = 1800
) -> list[MemoryInstance]:
    """The memories of the design (Yosys run 1). Writes ``inspect.ys/.log/.json``."""
    _write_design(workdir, design)
    script = [*_front_end(top, design), "write_json inspect.json"]
    _run_yosys(workdir, "inspect", "inspect memories", script, timeout)
    data = json.loads((workdir / "inspect.json").read_text())
    return _memories_from_json(data)


def _select(mem: MemoryInstance) -> str:
    return f"{mem.module}/{mem.name}"


def _module_areas(
    stat: dict[str, Any], mapped: dict[str, Any], lib: Library, macro_lib: Library | None
) -> dict[str, ModuleArea]:
    modules: dict[str, ModuleArea] = {}
    design_modules = set(mapped.get("modules", {}))
    for mname, mod in mapped.get("modules", {}).items():
        if mod.get("attributes", {}).get("blackbox"):
            continue
        ma = ModuleArea(name=mname)
        for cname, cell in mod.get("cells", {}).items():
            ctype = cell["type"]
            if ctype in design_modules and not mapped["modules"][ctype].get("attributes", {}).get(
                "blackbox"
            ):
                ma.children[cname] = ctype
                continue
            ma.cells += 1
            ma.cells_by_type[ctype] = ma.cells_by_type.get(ctype, 0) + 1
            if macro_lib is not None and ctype in macro_lib:
                ma.macro_area += macro_lib[ctype].area
                ma.macros[cname] = ctype
            elif ctype in lib:
                c = lib[ctype]
                if c.sequential:
                    ma.flops += 1
                    ma.seq_area += c.area
                else:
                    ma.comb_area += c.area
            else:
                raise ToolError(
                    "yosys",
                    "area accounting",
                    Path("mapped.json"),
                    None,
                    f"    cell {cname!r} of module {mname!r} has unmapped type {ctype!r}",
                )
        modules[mname] = ma

    # Cross-check against Yosys' own stat -json (same liberty areas). Yosys 0.70 reports a
    # module's area with its submodules included, older versions without: accept either
    # (a module mapped alone, split_design, has only black boxes below it: its own area).
    def hier(mname: str) -> float:
        ma = modules[mname]
        return ma.std_area + ma.macro_area + sum(hier(c) for c in ma.children.values())

    for mname, ma in modules.items():
        st = stat.get("modules", {}).get("\\" + mname) or stat.get("modules", {}).get(mname)
        if st is not None and "area" in st:
            yosys_area = float(st["area"])
            own, total = ma.std_area + ma.macro_area, hier(mname)
            if min(abs(own - yosys_area), abs(total - yosys_area)) > 1e-3 * max(1.0, total):
                raise ToolError(
                    "yosys",
                    "area accounting",
                    Path("stat.json"),
                    None,
                    f"    module {mname}: liberty area {total:.1f} != stat -json {yosys_area}",
                )
    return modules


def _instances(top: str, modules: dict[str, ModuleArea]) -> list[InstanceArea]:
    out: list[InstanceArea] = []

    def walk(path: str, mname: str) -> InstanceArea:
        ma = modules[mname]
        idx = len(out)
        out.append(InstanceArea(path, mname, 0, 0, 0.0, 0.0, 0.0))
        cells, flops = ma.cells, ma.flops
        comb, seq, macro = ma.comb_area, ma.seq_area, ma.macro_area
        for inst, child in sorted(ma.children.items()):
            sub = walk(f"{path}.{inst}" if path else inst, child)
            cells += sub.cells
            flops += sub.flops
            comb += sub.comb_area
            seq += sub.seq_area
            macro += sub.macro_area
        out[idx] = InstanceArea(path, mname, cells, flops, comb, seq, macro)
        return out[idx]

    walk("", top)
    return out


def _unsign_netlist(path: Path) -> None:
    """Drop ``signed`` from the mapped netlist's declarations: Amaranth's RTLIL marks the
    wires of signed fields (e.g. a score), which OpenSTA's Verilog reader rejects; a gate
    netlist only connects bits, so the keyword carries no meaning there."""
    text = path.read_text()
    fixed = re.sub(r"^(\s*(?:wire|input|output|inout|reg)) signed\b", r"\1", text, flags=re.M)
    if fixed != text:
        path.write_text(fixed)


def synthesize(
    design: str,
    top: str,
    workdir: Path,
    liberty: Path,
    *,
    clock_ns: float = 10.0,
    sram_min_bits: int = DEFAULT_SRAM_MIN_BITS,
    sram_tech: SramTech = OSU018_SRAM,
    timeout: float = 3600,
    dedup: bool = True,
    jobs: int = 1,
) -> SynthResult:
    """Synthesise ``design`` (RTLIL or Verilog text, top ``top``) in ``workdir`` to ``liberty``.

    With ``dedup`` (the default) an RTLIL design whose modules are copies of one another is
    first reduced to one module per structure (:func:`synth.dedup.dedup_rtlil`; instances
    retyped, hierarchy kept), so each distinct module is synthesised once; a design without
    copies, or Verilog, is synthesised as given. ``SynthResult.dedup`` says what was merged.

    An RTLIL design of several modules is mapped module by module (:func:`split_design`),
    one Yosys per module, ``jobs`` of them at a time, and the results merged.

    Raises :class:`synth.tools.ToolError` (naming Yosys, the step and the log) on failure.
    """
    check_positive_int("jobs", jobs)
    check_positive_int("sram_min_bits", sram_min_bits)
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, not {clock_ns!r}")
    workdir = Path(workdir)
    merged: DedupResult | None = None
    if dedup and _is_rtlil(design):
        merged = dedup_rtlil(design, top)
        if merged.modules_after < merged.modules_before:
            design = merged.text
            (workdir / "dedup.json").parent.mkdir(parents=True, exist_ok=True)
            (workdir / "dedup.json").write_text(
                json.dumps(
                    {
                        "modules_before": merged.modules_before,
                        "modules_after": merged.modules_after,
                        "instances": dict(merged.instances),
                        "groups": merged.groups(),
                    },
                    indent=1,
                )
                + "\n"
            )
        else:
            merged = None
    mems = inspect_memories(design, top, workdir, timeout=timeout)
    shutil.copyfile(liberty, workdir / STD_LIB)
    lib = read_liberty(workdir / STD_LIB)
    macro_mems = [m for m in mems if is_macro(m, sram_min_bits)]
    macros = {f"{m.module}/{m.name}": (m, estimate(m, sram_tech)) for m in macro_mems}
    liberties = [workdir / STD_LIB]
    extra: list[str] = []
    macro_lib: Library | None = None
    if macro_mems:
        (workdir / MACRO_STUB).write_text(verilog_stub(macro_mems))
        (workdir / MACRO_LIB).write_text(liberty_text(macros.values(), sram_tech))
        extra.append(f"read_verilog -lib {MACRO_STUB}")
        liberties.append(workdir / MACRO_LIB)
        macro_lib = read_liberty(workdir / MACRO_LIB)
    inspect = json.loads((workdir / "inspect.json").read_text())
    (workdir / ABC_CONSTR).write_text(
        f"set_driving_cell {_buffer_cell(lib)}\nset_load {ABC_LOAD_PF}\n"
    )
    stat_libs = f"-liberty {STD_LIB}" + (f" -liberty {MACRO_LIB}" if macro_mems else "")

    def script(part_top: str | None, text: str, module: str | None) -> list[str]:
        lines = _front_end(part_top, text, extra)
        for mem in macro_mems:
            if module is not None and mem.module != module:
                continue
            params = inspect["modules"][mem.module]["cells"][mem.name]["parameters"]
            unset = " ".join(f"-unset {p}" for p in sorted(params))
            lines.append(f"setparam {unset} -type {mem.macro_name} {_select(mem)}")
        return [
            *lines,
            # -noabc, then one generic abc after dfflibmap: synth's own abc partitions a
            # module by flop enable and runs ABC once per enable (16 391 runs for one MAC
            # array of the paper core); once the flops are library cells a module is one ABC
            # run. -run :check leaves out synth's closing statistics (a minute on the
            # paper core): stat -json below gives them.
            "synth -noabc -run :check" + (f" -top {part_top}" if part_top else ""),
            f"dfflibmap -liberty {STD_LIB}",
            "abc",
            # -constr makes ABC buffer high-fanout nets and size gates for the delay target
            # (without it a select line driving hundreds of muxes costs ~10 ns at 0.18 µm).
            f"abc -D {clock_ns * 1000:.0f} -constr {ABC_CONSTR} -liberty {STD_LIB}",
            "opt_clean",
            # Private ($...) cell and wire names become short public ones, identical in the
            # JSON (activity mapping) and the Verilog (OpenSTA), so both name the same pins.
            "rename -enumerate",
            f"tee -q -o stat.json stat -json {stat_libs}",
            "write_json mapped.json",
            "write_verilog -noattr -noexpr -simple-lhs netlist.v",
        ]

    parts = split_design(design) if _is_rtlil(design) else []
    if not parts:
        _run_yosys(workdir, "synth", "synthesis", script(top, design, None), timeout)
    else:
        _synthesize_parts(parts, workdir, script, timeout, jobs)
    _unsign_netlist(workdir / "netlist.v")
    stat = json.loads((workdir / "stat.json").read_text())
    mapped = json.loads((workdir / "mapped.json").read_text())
    modules = _module_areas(stat, mapped, lib, macro_lib)
    if top not in modules:
        raise ToolError(
            "yosys", "synthesis", workdir / "synth.log", None, f"    top {top!r} not in netlist"
        )
    return SynthResult(
        top=top,
        workdir=workdir,
        netlist=workdir / "netlist.v",
        mapped_json=workdir / "mapped.json",
        liberties=liberties,
        stat=stat,
        modules=modules,
        instances=_instances(top, modules),
        memories=mems,
        macros=macros,
        sram_min_bits=sram_min_bits,
        log=workdir / "synth.log",
        dedup=merged,
    )
