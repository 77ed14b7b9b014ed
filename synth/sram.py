"""SRAM macro model: area, access energy, leakage and access time of on-chip memories.

Why: standard-cell synthesis would turn every memory into flip-flops and multiplexers, which
for the paper's 4096-entry tables overstates area and power by an order of magnitude. Large
memories are therefore kept out of synthesis (Yosys ``memory -nomap`` collects each one into
a ``$mem_v2`` cell, :mod:`synth.yosys` turns it into a black-box macro instance) and costed
with this model; small ones (fewer than ``sram_min_bits`` bits, default 2048, or without a
write port) are synthesised to flip-flops, because a macro's fixed periphery (about
0.06 mm² in this model at 180 nm) costs more than a small flop array.

The model (all numbers are parameters of :class:`SramTech`; :data:`OSU018_SRAM` holds the
0.18 µm / 1.8 V values) follows the decomposition of CACTI (Thoziyoor, Muralimanohar, Ahn,
Jouppi, "CACTI 5.1", HP Labs HPL-2008-20, 2008): a near-square array of 6T cells plus a
row-decoder/word-line-driver strip, a column periphery strip (precharge, column mux, sense
amplifiers, write drivers) and a control block, each repeated per port.

- Cell: 140 F² per 6T bit (ITRS 2001 SRAM cell-area factor for the 180-130 nm nodes),
  ×1.3 per extra port (8T two-port cell). Aspect 2:1 (wide).
- Organisation: column mux m in 1..16 (powers of 2) chosen so rows=depth/m and
  cols=width·m are closest to square (CACTI's Ndwl/Ndbl/Nspd search, simplified).
- Periphery: decoder strip 300 F wide × array height, column strip 400 F tall × array
  width, control 1e6 F², all × ports.
- Read energy: every column pair's bitline swings ΔV = 0.15·VDD
  (E = cols·C_BL·VDD·ΔV), plus the word line (cols·C_wl·VDD²), sense amplifiers, decoder
  and output drivers. Write energy: the written columns swing fully (width·C_BL·VDD²) plus
  word line, decoder and input drivers. C_BL = rows·1.2 fF + 20 fF, C_wl = 1.6 fF/cell.
- Leakage: 36 pW per bit (≈20 pA at 1.8 V) + 20 % for the periphery.
- Access time: 0.6 ns + 2 ps per row + 1 ps per column; setup 0.25 ns, hold 0.05 ns.

These are estimates of the magnitude a memory compiler gives at this node, not compiler
data; every report says so next to the figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = [
    "DEFAULT_SRAM_MIN_BITS",
    "OSU018_SRAM",
    "MemoryInstance",
    "SramEstimate",
    "SramTech",
    "estimate",
    "is_macro",
    "liberty_text",
    "verilog_stub",
]

#: Memories with at least this many bits (and a write port) become SRAM macros.
DEFAULT_SRAM_MIN_BITS = 2048


@dataclass(frozen=True, kw_only=True)
class SramTech:
    """Technology parameters of the SRAM model (see the module docstring)."""

    #: Feature size F in µm.
    feature_um: float
    #: Supply voltage in V.
    vdd: float
    #: 6T cell area in F².
    cell_area_f2: float = 140.0
    #: Cell area factor per port beyond the first.
    extra_port_cell_factor: float = 0.3
    #: Decoder / word-line driver strip width, in F.
    decoder_width_f: float = 300.0
    #: Column periphery strip height, in F.
    column_height_f: float = 400.0
    #: Control block area in F².
    control_area_f2: float = 1.0e6
    #: Bitline capacitance per cell (fF) and fixed per bitline (fF).
    c_bitline_cell_ff: float = 1.2
    c_bitline_fixed_ff: float = 20.0
    #: Word-line capacitance per cell, fF.
    c_wordline_cell_ff: float = 1.6
    #: Read bitline swing as a fraction of VDD.
    read_swing: float = 0.15
    #: Sense amplifier energy per output bit, fJ.
    e_sense_fj: float = 60.0
    #: Decoder switched capacitance per address bit, fF.
    c_decoder_per_abit_ff: float = 50.0
    #: I/O driver capacitance per data bit, fF.
    c_io_per_bit_ff: float = 30.0
    #: Leakage per bit in nW, and the periphery's share on top.
    leakage_per_bit_nw: float = 0.036
    periphery_leakage_share: float = 0.2
    #: Access time: fixed part, per row, per column (ns).
    t_fixed_ns: float = 0.6
    t_per_row_ns: float = 0.002
    t_per_col_ns: float = 0.001
    #: Setup and hold times of the macro's inputs (ns).
    t_setup_ns: float = 0.25
    t_hold_ns: float = 0.05
    #: Human-readable source of the numbers.
    source: str = (
        "CACTI-style analytical model (Thoziyoor et al., CACTI 5.1, HPL-2008-20) with "
        "ITRS 2001 cell-area factor; synth/sram.py"
    )


#: SRAM parameters for the OSU 0.18 µm library at its 1.8 V nominal supply.
OSU018_SRAM = SramTech(feature_um=0.18, vdd=1.8)


@dataclass(frozen=True)
class MemoryInstance:
    """One memory of the RTL, as Yosys' ``memory_collect`` sees it (a ``$mem_v2`` cell)."""

    #: Yosys module holding the memory, without the leading backslash.
    module: str
    #: Cell name inside that module (the memory's MEMID, without the backslash).
    name: str
    width: int
    depth: int
    abits: int
    read_ports: int
    write_ports: int
    #: Per read port: True if the read is clocked (synchronous).
    read_clocked: tuple[bool, ...]
    #: Per write port: True if the write is clocked.
    write_clocked: tuple[bool, ...]

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def async_read(self) -> bool:
        return not all(self.read_clocked)

    @property
    def macro_name(self) -> str:
        """Liberty/Verilog name of the macro cell for this memory's shape."""
        suffix = "A" if self.async_read else ""
        return (
            f"VREX_SRAM_{self.depth}X{self.width}_A{self.abits}"
            f"_{self.read_ports}R{self.write_ports}W{suffix}"
        )

    def ports(self) -> list[tuple[str, str, int]]:
        """The macro's pins as (name, direction, width), in ``$mem_v2`` port order."""
        r, w = self.read_ports, self.write_ports
        return [
            ("RD_CLK", "input", r),
            ("RD_EN", "input", r),
            ("RD_ARST", "input", r),
            ("RD_SRST", "input", r),
            ("RD_ADDR", "input", r * self.abits),
            ("RD_DATA", "output", r * self.width),
            ("WR_CLK", "input", w),
            ("WR_EN", "input", w * self.width),
            ("WR_ADDR", "input", w * self.abits),
            ("WR_DATA", "input", w * self.width),
        ]


@dataclass(frozen=True)
class SramEstimate:
    """Model output for one memory. Areas in µm², energies in pJ, leakage in nW, times in ns."""

    area_um2: float
    array_area_um2: float
    efficiency: float
    rows: int
    cols: int
    column_mux: int
    e_read_pj: float
    e_write_pj: float
    leakage_nw: float
    t_access_ns: float
    t_setup_ns: float
    t_hold_ns: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def is_macro(mem: MemoryInstance, min_bits: int = DEFAULT_SRAM_MIN_BITS) -> bool:
    """Whether ``mem`` becomes an SRAM macro (else it is synthesised to flip-flops)."""
    return (
        mem.bits >= min_bits
        and mem.read_ports >= 1
        and mem.write_ports >= 1
        and all(mem.write_clocked)
    )


def _organisation(depth: int, width: int) -> tuple[int, int, int]:
    best: tuple[float, int, int, int] | None = None
    for mux in (1, 2, 4, 8, 16):
        rows = math.ceil(depth / mux)
        cols = width * mux
        if rows < 1:
            continue
        skew = abs(math.log(rows / cols))
        if best is None or skew < best[0] - 1e-9:
            best = (skew, rows, cols, mux)
    assert best is not None
    return best[1], best[2], best[3]


def estimate(mem: MemoryInstance, tech: SramTech = OSU018_SRAM) -> SramEstimate:
    """Area, energy, leakage and timing of ``mem`` as a macro in ``tech``."""
    f2 = tech.feature_um**2
    ports = mem.read_ports + mem.write_ports
    cell = tech.cell_area_f2 * f2 * (1 + tech.extra_port_cell_factor * (ports - 1))
    rows, cols, mux = _organisation(mem.depth, mem.width)
    cell_h = math.sqrt(cell / 2)
    cell_w = 2 * cell_h
    array_h = rows * cell_h
    array_w = cols * cell_w
    array = rows * cols * cell
    periphery = ports * (
        tech.decoder_width_f * tech.feature_um * array_h
        + tech.column_height_f * tech.feature_um * array_w
        + tech.control_area_f2 * f2
    )
    area = array + periphery
    v = tech.vdd
    c_bl = (rows * tech.c_bitline_cell_ff + tech.c_bitline_fixed_ff) * 1e-15
    c_wl = cols * tech.c_wordline_cell_ff * 1e-15
    c_dec = mem.abits * tech.c_decoder_per_abit_ff * 1e-15
    c_io = mem.width * tech.c_io_per_bit_ff * 1e-15
    e_read = (
        cols * c_bl * v * (tech.read_swing * v)
        + c_wl * v * v
        + mem.width * tech.e_sense_fj * 1e-15
        + c_dec * v * v
        + 0.5 * c_io * v * v
    )
    e_write = mem.width * c_bl * v * v + c_wl * v * v + c_dec * v * v + c_io * v * v
    leak = mem.bits * tech.leakage_per_bit_nw * (1 + tech.periphery_leakage_share)
    t_access = tech.t_fixed_ns + rows * tech.t_per_row_ns + cols * tech.t_per_col_ns
    return SramEstimate(
        area_um2=area,
        array_area_um2=array,
        efficiency=array / area,
        rows=rows,
        cols=cols,
        column_mux=mux,
        e_read_pj=e_read * 1e12,
        e_write_pj=e_write * 1e12,
        leakage_nw=leak,
        t_access_ns=t_access,
        t_setup_ns=tech.t_setup_ns,
        t_hold_ns=tech.t_hold_ns,
    )


def verilog_stub(mems: Iterable[MemoryInstance]) -> str:
    """Black-box Verilog modules for the macros (one per distinct shape), for Yosys."""
    seen: set[str] = set()
    out = ["// SRAM macro black boxes generated by synth/sram.py (see its docstring)."]
    for mem in mems:
        if mem.macro_name in seen:
            continue
        seen.add(mem.macro_name)
        ports = [(n, d, w) for n, d, w in mem.ports() if w > 0]
        decl = ",\n  ".join(f"{d} {'' if w == 1 else f'[{w - 1}:0] '}{n}" for n, d, w in ports)
        out.append(f"(* blackbox *)\nmodule {mem.macro_name}(\n  {decl}\n);\nendmodule\n")
    return "\n".join(out)


def _scalar(name: str, value: float) -> str:
    return f'{name} (scalar) {{ values ("{value:.4f}"); }}'


def liberty_text(
    macros: Iterable[tuple[MemoryInstance, SramEstimate]],
    tech: SramTech = OSU018_SRAM,
    name: str = "vrex_sram_macros",
) -> str:
    """A Liberty library with one cell per macro shape: area, leakage, pins, timing arcs.

    Dynamic energy is deliberately absent (no ``internal_power``): the flow adds
    ``f·(reads·E_read + writes·E_write)`` from simulated port activity instead, so OpenSTA's
    report holds the macro's leakage and the switching of the nets around it.
    """
    lines = [
        f"/* SRAM macro models generated by synth/sram.py: {tech.source}. Estimates. */",
        f"library ({name}) {{",
        "  delay_model : table_lookup;",
        '  time_unit : "1ns";',
        '  voltage_unit : "1V";',
        '  current_unit : "1uA";',
        '  pulling_resistance_unit : "1kohm";',
        '  leakage_power_unit : "1nW";',
        "  capacitive_load_unit (1,pf);",
        "  nom_process : 1;",
        f"  nom_voltage : {tech.vdd};",
        "  nom_temperature : 25;",
        "  slew_upper_threshold_pct_rise : 80;",
        "  slew_lower_threshold_pct_rise : 20;",
        "  slew_upper_threshold_pct_fall : 80;",
        "  slew_lower_threshold_pct_fall : 20;",
        "  input_threshold_pct_rise : 50;",
        "  input_threshold_pct_fall : 50;",
        "  output_threshold_pct_rise : 50;",
        "  output_threshold_pct_fall : 50;",
    ]
    macros = list(macros)

    def related(mem: MemoryInstance, pin: str) -> str:
        # A bus related to a bus of another width gets no arc in OpenSTA ("different
        # sizes"): list the bits, which relates every bit of the pin to every one of them.
        width = dict((n, w) for n, _, w in mem.ports())[pin]
        return pin if width == 1 else " ".join(f"{pin}[{i}]" for i in range(width))

    widths = sorted({w for mem, _ in macros for _, _, w in mem.ports() if w > 1})
    for w in widths:
        lines.append(
            f"  type (vrex_bus{w}) {{ base_type : array; data_type : bit; bit_width : {w}; "
            f"bit_from : {w - 1}; bit_to : 0; downto : true; }}"
        )
    seen: set[str] = set()
    for mem, est in macros:
        if mem.macro_name in seen:
            continue
        seen.add(mem.macro_name)
        lines += [
            f"  cell ({mem.macro_name}) {{",
            f"    area : {est.area_um2:.2f};",
            "    dont_use : true;",
            "    dont_touch : true;",
            f"    cell_leakage_power : {est.leakage_nw:.4f};",
        ]
        for pname, direction, width in mem.ports():
            if width == 0:
                continue
            head = f"    pin ({pname}) {{" if width == 1 else f"    bus ({pname}) {{"
            body = [f"direction : {direction};"]
            if width > 1:
                body.insert(0, f"bus_type : vrex_bus{width};")
            if direction == "input":
                cap = 0.05 if pname.endswith("CLK") else 0.01
                if pname == "WR_EN":
                    # Yosys gives a memory one enable bit per data bit, mostly one signal: a
                    # macro's enable is one buffered pin (10 fF in all), not 10 fF per bit
                    # (a 4096-bit FIFO row's enable was a 41 pF net: a 61 ns NOR2).
                    cap = 0.01 / width
                body.append(f"capacitance : {cap:.6g};")
            if pname.endswith("CLK"):
                body.append("clock : true;")
            clk = "WR_CLK" if pname.startswith("WR_") else "RD_CLK"
            timing: list[str] = []
            constrained = pname in ("WR_EN", "WR_ADDR", "WR_DATA") or (
                pname in ("RD_EN", "RD_ADDR") and not mem.async_read
            )
            if constrained:
                for kind, value in (
                    ("setup_rising", est.t_setup_ns),
                    ("hold_rising", est.t_hold_ns),
                ):
                    timing.append(
                        f'timing () {{ related_pin : "{related(mem, clk)}"; '
                        f"timing_type : {kind}; "
                        f"{_scalar('rise_constraint', value)} "
                        f"{_scalar('fall_constraint', value)} }}"
                    )
            if pname == "RD_DATA":
                arcs = (
                    [("RD_ADDR", "combinational")]
                    if mem.async_read
                    else [("RD_CLK", "rising_edge")]
                )
                for rel, kind in arcs:
                    sense = "timing_sense : non_unate; " if kind == "combinational" else ""
                    timing.append(
                        f'timing () {{ related_pin : "{related(mem, rel)}"; timing_type : {kind}; '
                        f"{sense}"
                        f"{_scalar('cell_rise', est.t_access_ns)} "
                        f"{_scalar('cell_fall', est.t_access_ns)} "
                        f"{_scalar('rise_transition', 0.2)} {_scalar('fall_transition', 0.2)} }}"
                    )
            lines.append(head)
            lines += ["      " + b for b in body + timing]
            lines.append("    }")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
