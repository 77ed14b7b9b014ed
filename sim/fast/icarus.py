"""The fast harness on Icarus Verilog: a generated self-checking Verilog testbench.

The same golden files as the C++ Verilator harness (``sim.fast.stimulus.write_chunk``:
``in_<s>.hex``, ``out_<s>.hex``, ``end.txt``), the same protocol and the same verdict line,
with no Python per cycle: ``tb_verilog`` writes a testbench module for one unit from its
``FAST_PORTS`` entry and the generated Verilog's ports, ``iverilog`` compiles it with the
unit, and ``vvp`` runs it with the run's options as plusargs. Every cycle each source holds
its beat until ready (random idle cycles and idle bursts between beats: the file's next
beat is read when a beat is offered), each sink drives ready (random stalls and stall
bursts), handshakes are sampled before the rising edge and every output beat is compared
with the next expected one; at the end the scalars and the addressed reads of ``end.txt``
are checked. The pauses come from a 32-bit LCG in the testbench seeded with ``--seed`` (a
run replays exactly on Icarus, with other pauses than the C++ harness draws from the same
seed); a ``$random`` call per stream and cycle had cost a fifth of ``vvp``'s time.

The KVMU's extras, as in the C++ harness: its run in phases (``write_phases`` turns
``Chunk.phases`` into ``phases_icarus.txt``, cumulative limits per stream; a phase's inputs
start once every stream has reached the previous phase's limits; a ``clear`` phase first
drives the clear strobe for one cycle with no input beat), and an AXI4 read slave
(``_axi_slave``: the ``mem.hex`` image, the ``axi.txt`` rules, every AR burst checked and
compared as the output stream ``ar``, R beats in order with the sources' pauses). Not on
Icarus: the ``--times`` / ``--coverage`` options of the C++ harness. The wall time and
cycles per second in the verdict are measured around ``vvp``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

from golden.kvmu import KVLayout
from hw.config import HWConfig
from hw.gen import generate
from hw.toolpath import build_lock, find_tool
from sim.fast.build import FAST_PORTS, ROOT, FastPorts

__all__ = ["build_icarus", "out_streams", "run_icarus", "tb_verilog", "write_phases"]

#: Probabilities reach the testbench as integers over 2**24.
PROB_ONE = 1 << 24


def out_streams(ports: FastPorts) -> tuple[str, ...]:
    """The output streams the testbench compares: the unit's, then ``ar`` (an AXI read
    master's AR channel, payload ``araddr | arlen << addr_bits``), as the C++ harness."""
    return (*ports.outputs, *(("ar",) if ports.axi else ()))


def write_phases(directory: Path, ports: FastPorts, phases: list[dict[str, int]]) -> None:
    """``phases_icarus.txt``: the phase count, then per phase its clear flag and the
    cumulative beat limits of every input and output stream (``out_streams`` order) — what
    the C++ harness computes from ``phases.txt``, in a form ``$fscanf`` reads."""
    path = Path(directory) / "phases_icarus.txt"
    if not phases:
        path.unlink(missing_ok=True)
        return
    names = [*ports.inputs, *out_streams(ports)]
    known = {*names, "clear"}
    total = dict.fromkeys(names, 0)
    lines = [str(len(phases))]
    for ph in phases:
        bad = set(ph) - known
        if bad:
            raise ValueError(f"phases must name streams of {', '.join(names)}, not {sorted(bad)}")
        for k in names:
            total[k] += ph.get(k, 0)
        lines.append(" ".join(str(v) for v in (int(bool(ph.get("clear"))), *total.values())))
    path.write_text("\n".join(lines) + "\n")


def _ports(verilog: str, unit: str) -> dict[str, tuple[str, int]]:
    """Port name → (direction, width) of module ``unit`` in the generated Verilog."""
    m = re.search(rf"^module {re.escape(unit)}\(.*?^endmodule", verilog, re.M | re.S)
    if m is None:
        raise ValueError(f"no module {unit!r} in the generated Verilog")
    found = re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", m.group(0), re.M)
    return {name: (d, int(msb) + 1 if msb else 1) for d, msb, name in found}


def _vec(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def tb_verilog(
    unit: str, ports: FastPorts, dut_ports: dict[str, tuple[str, int]], mem_beats: int = 0
) -> str:
    """The testbench module ``fast_tb`` of ``unit`` (see the module docstring); ``mem_beats``:
    the AXI slave's image size in bus beats (a unit with ``ports.axi``)."""
    if ports.axi is not None and mem_beats < 1:
        raise ValueError(f"mem_beats must be at least 1 for an AXI unit, not {mem_beats}")

    def width(name: str) -> int:
        if name not in dut_ports:
            raise ValueError(f"unit {unit!r} has no port {name!r} (ports: {', '.join(dut_ports)})")
        return dut_ports[name][1]

    decl, conn, init, drive, sample, after, files, done_in, done_out = ([] for _ in range(9))
    limits, reached = [], []
    wired = {"clk": "clk", "rst": "rst"}
    if ports.clear is not None:
        width(ports.clear)
        wired[ports.clear] = "clear_now"
    for i, s in enumerate(ports.inputs):
        w = width(f"{s}__payload")
        decl += [
            f"reg i{i}_v = 0; wire i{i}_r; reg {_vec(w)}i{i}_p = 0;",
            f"integer i{i}_fd, i{i}_n, i{i}_next = 0, i{i}_left = 0; reg i{i}_fired = 0;",
        ]
        wired |= {f"{s}__valid": f"i{i}_v", f"{s}__ready": f"i{i}_r", f"{s}__payload": f"i{i}_p"}
        files.append(f'`OPEN(i{i}_fd, "in_{s}.hex", i{i}_n)')
        decl.append(f"integer i{i}_lim;")
        limits.append(f"i{i}_lim")
        drive.append(
            f"if (!clear_now && !i{i}_v && i{i}_next < i{i}_lim) begin "
            f"`PAUSE(i{i}_left, idle, idle_burst, p) "
            f'if (!p) begin rc = $fscanf(i{i}_fd, "%h\\n", i{i}_p); i{i}_v = 1; end end'
        )
        sample.append(
            f"if (i{i}_v && i{i}_r) begin i{i}_next = i{i}_next + 1; i{i}_fired = 1; "
            "last_progress = cycle; end"
        )
        after.append(f"if (i{i}_fired) begin i{i}_v = 0; i{i}_fired = 0; end")
        reached.append(f"i{i}_next >= i{i}_lim")
        done_in.append(f"i{i}_next >= i{i}_n")
        init.append(f"i{i}_v = 0;")
    outputs = out_streams(ports)
    for i, s in enumerate(outputs):
        if s == "ar":
            ax = ports.axi
            aw = width(f"{ax}__araddr")
            w = aw + width(f"{ax}__arlen")
            wired |= {f"{ax}__arvalid": f"o{i}_v", f"{ax}__arready": f"o{i}_r"}
            for n in ("araddr", "arlen", "arsize", "arburst", "arid"):
                decl.append(f"wire {_vec(width(f'{ax}__{n}'))}ax_{n};")
                wired[f"{ax}__{n}"] = f"ax_{n}"
            decl.append(f"wire {_vec(w)}o{i}_p = {{ax_arlen, ax_araddr}};")
            decl.append(f"wire o{i}_v; reg o{i}_r = 0;")
        else:
            w = width(f"{s}__payload")
            decl.append(f"wire o{i}_v; reg o{i}_r = 0; wire {_vec(w)}o{i}_p;")
            wired |= {
                f"{s}__valid": f"o{i}_v",
                f"{s}__ready": f"o{i}_r",
                f"{s}__payload": f"o{i}_p",
            }
        # The expected beat is read 32 bits wider: bits past the payload must be zero in it.
        decl.append(f"reg [{w + 31}:0] o{i}_e;")
        decl.append(f"integer o{i}_fd, o{i}_n, o{i}_got = 0, o{i}_left = 0, o{i}_lim;")
        limits.append(f"o{i}_lim")
        reached.append(f"o{i}_got >= o{i}_lim")
        files.append(f'`OPEN(o{i}_fd, "out_{s}.hex", o{i}_n)')
        drive.append(f"`PAUSE(o{i}_left, stall, stall_burst, p) o{i}_r = !p;")
        sample.append(
            f"if (o{i}_v && o{i}_r) begin "
            f"if (o{i}_got >= o{i}_n) begin if (!mismatches) $sformat(first, "
            f'"{s}[%0d] @%0d: extra beat 0x%h after the %0d expected", o{i}_got, cycle - start, '
            f"o{i}_p, o{i}_n); mismatches = mismatches + 1; end "
            f'else begin rc = $fscanf(o{i}_fd, "%h\\n", o{i}_e); '
            f"if (o{i}_e !== {{32'd0, o{i}_p}}) begin "
            f'if (!mismatches) $sformat(first, "{s}[%0d] @%0d: expected 0x%h got 0x%h", o{i}_got, '
            f"cycle - start, o{i}_e, o{i}_p); mismatches = mismatches + 1; end end "
            + (" `AR_FIRE " if s == "ar" else "")
            + f"o{i}_got = o{i}_got + 1; last_progress = cycle; end"
        )
        done_out.append(f"o{i}_got >= o{i}_n")
        init.append(f"o{i}_r = 0;")
    checks = []
    for s in ports.scalars:
        w = width(s)
        decl.append(f"wire {_vec(w)}sc_{s};")
        wired[s] = f"sc_{s}"
        checks.append(
            f'if (kind == "scalar" && name == "{s}") begin found = 1; rc = $fscanf(efd, "%d", v); '
            f"if (sc_{s} !== v) begin if (!mismatches) $sformat(first, "
            f'"{s}: expected %0d got %0d", v, sc_{s}); mismatches = mismatches + 1; end end'
        )
    for name, addr, data in ports.reads:
        aw, dw = width(addr), width(data)
        decl.append(f"reg {_vec(aw)}ra_{name} = 0; wire {_vec(dw)}rd_{name};")
        wired |= {addr: f"ra_{name}", data: f"rd_{name}"}
        checks.append(
            f'if (kind == "read" && name == "{name}") begin found = 1; '
            f'rc = $fscanf(efd, "%d %d", a, v); ra_{name} = a; #1 `TICK #1 '
            f"if (rd_{name} !== v) begin if (!mismatches) $sformat(first, "
            f'"{name}[%0d]: expected %0d got %0d", a, v, rd_{name}); '
            "mismatches = mismatches + 1; end end"
        )
    ar_fire = ""
    if ports.axi is not None:
        slave = _axi_slave(unit, ports.axi, width, mem_beats)
        wired |= slave["wired"]
        decl += slave["decl"]
        files.append(slave["load"])
        drive.append(slave["drive"])
        sample.insert(0, slave["sample"])  # R before AR: a burst may end as one starts
        after.append(slave["after"])
        init.append("r_v = 0;")
        ar_fire = slave["ar_fire"]
    for name, (d, w) in dut_ports.items():  # inputs the testbench does not drive: 0
        if d == "input" and name not in wired:
            wired[name] = f"{w}'d0"
    count = ports.counted
    counted = (
        f"i{ports.inputs.index(count)}_next"
        if count in ports.inputs
        else f"o{outputs.index(count)}_got"
    )
    progress = [f"{s} %0d/%0d sent" for s in ports.inputs]
    progress += [f"{s} %0d/%0d received" for s in outputs]
    counts = [f"i{i}_next, i{i}_n" for i in range(len(ports.inputs))]
    counts += [f"o{i}_got, o{i}_n" for i in range(len(outputs))]
    progress.append("phase %0d/%0d")
    counts.append("ph, ph_n")
    timeout_fmt = (
        f'"timeout: no handshake for %0d cycles; {"; ".join(progress)}", timeout, '
        + ", ".join(counts)
    )
    # Phases (phases_icarus.txt): each line a clear flag and every stream's cumulative limit.
    defaults = " ".join(f"{lim} = {lim[:-4]}_n;" for lim in limits)
    next_phase = (
        'begin rc = $fscanf(pfd, "%d", ph_clear); '
        + " ".join(f'rc = $fscanf(pfd, "%d", {lim});' for lim in limits)
        + " ph = ph + 1; end"
    )
    conn = ",\n    ".join(f".{p}({wired[p]})" for p in dut_ports if p in wired)
    nl = "\n    "
    return f"""`timescale 1ns/1ns
// Generated by sim.fast.icarus for unit {unit}: see that module.
`define TICK begin #4 clk = 1; #5 clk = 0; cycle = cycle + 1; end
`define CHANCE(P) (rnd(0) < (P))
`define PAUSE(LEFT, P, BURST, OUT) \\
    if (LEFT > 0) begin LEFT = LEFT - 1; OUT = 1; end \\
    else begin \\
        OUT = 0; \\
        if (BURST != 0) if (`CHANCE(BURST)) begin \\
            LEFT = burst_max ? rnd(0) % burst_max : 0; OUT = 1; end \\
        if (!OUT) if (P != 0) OUT = `CHANCE(P); \\
    end
`define NEXT_PHASE {next_phase}
`define AR_FIRE {ar_fire}
`define OPEN(FD, FILE, N) \\
    begin FD = $fopen({{dir, "/", FILE}}, "r"); \\
    if (FD == 0) begin \\
        $display("FAST ERROR unit={unit} missing %0s/%0s", dir, FILE); $finish; end \\
    rc = $fscanf(FD, "%d\\n", N); end

module fast_tb;
    reg clk = 0;
    reg rst = 1;
    // The pauses' random numbers: a 32-bit LCG (no system-task call per draw), 24 bits out.
    reg [31:0] rng = 1;
    function [31:0] rnd;
        input unused;
        begin
            rng = rng * 32'd1664525 + 32'd1013904223;
            rnd = {{8'd0, rng[31:8]}};
        end
    endfunction
    {nl.join(decl)}
    integer seed = 1, idle = 0, stall = 0, idle_burst = 0, stall_burst = 0, burst_max = 0;
    integer drain = 16, timeout = 100000, cycle = 0, start = 0, last_progress = 0;
    integer mismatches = 0, drained = 0, rc, efd, found, seed0, run_cycles;
    integer pfd = 0, ph_n = 0, ph = 0, ph_clear = 0;
    reg [63:0] a, v;
    reg p, done, adv, moved, clear_now = 0;
    reg [8*512-1:0] dir;
    reg [8*32-1:0] kind, name;
    reg [8*1024-1:0] first;

    {unit} dut(
    {conn}
    );

    initial begin
        if (!$value$plusargs("dir=%s", dir)) begin
            $display("FAST ERROR unit={unit} +dir= is required"); $finish;
        end
        if ($value$plusargs("seed=%d", seed)) ;
        if ($value$plusargs("idle=%d", idle)) ;
        if ($value$plusargs("stall=%d", stall)) ;
        if ($value$plusargs("idle_burst=%d", idle_burst)) ;
        if ($value$plusargs("stall_burst=%d", stall_burst)) ;
        if ($value$plusargs("burst_max=%d", burst_max)) ;
        if ($value$plusargs("drain=%d", drain)) ;
        if ($value$plusargs("timeout=%d", timeout)) ;
        seed0 = seed;
        rng = seed ^ 32'h9e3779b9;
        {nl.join(files)}
        {defaults}
        pfd = $fopen({{dir, "/phases_icarus.txt"}}, "r");
        if (pfd != 0) begin
            rc = $fscanf(pfd, "%d", ph_n);
            `NEXT_PHASE
            clear_now = ph_clear;
        end
        `TICK `TICK
        rst = 0;
        start = cycle;
        last_progress = cycle;
        done = 0;
        first = "";
        begin : run
            forever begin
                {(nl + "        ").join(drive)}
                #1;
                {(nl + "        ").join(sample)}
                `TICK
                {(nl + "        ").join(after)}
                if (clear_now) begin clear_now = 0; last_progress = cycle; end
                // The next phase starts once every stream has reached this phase's limits.
                moved = last_progress + 1 >= cycle;  // a handshake or a clear this cycle
                adv = moved;
                while (adv && ph < ph_n) begin
                    if ({" && ".join(reached)}) begin
                        `NEXT_PHASE
                        if (ph_clear) begin clear_now = 1; adv = 0; end
                    end else adv = 0;
                end
                if (moved) if ({" && ".join(done_in + done_out)}) done = 1;
                if (done) begin
                    if (drained >= drain) disable run;
                    drained = drained + 1;
                end
                if (cycle - last_progress > timeout) begin
                    if (!mismatches) $sformat(first, {timeout_fmt});
                    mismatches = mismatches + 1;
                    disable run;
                end
            end
        end
        run_cycles = cycle - start;  // the end-state reads below tick, uncounted
        finish_run;
    end

    task finish_run;
        begin
            {nl.join("    " + x for x in init)}
            #1;
            efd = $fopen({{dir, "/end.txt"}}, "r");
            if (efd != 0) begin
                while ($fscanf(efd, "%s %s", kind, name) == 2) begin
                    found = 0;
                    {(nl + "        ").join(checks) if checks else ""}
                    if (!found) begin
                        $display("FAST ERROR unit={unit} end.txt: unknown %0s %0s", kind, name);
                        $finish;
                    end
                end
            end
            $display(
                "FAST %0s unit={unit} seed=%0d transactions=%0d cycles=%0d mismatches=%0d%0s%0s",
                mismatches ? "FAIL" : "PASS", seed0, {counted}, run_cycles, mismatches,
                mismatches ? " first: " : "", mismatches ? first : "");
            $finish;
        end
    endtask
endmodule
"""


def _axi_slave(unit: str, ax: str, width, mem_beats: int) -> dict:
    """The testbench's AXI4 read slave for master ``ax`` (the C++ harness's, in Verilog):
    ``mem.hex`` (the image, ``mem_beats`` bus beats) and ``axi.txt`` (base, max_burst,
    outstanding, boundary); every accepted AR burst checked (``ar_fire``: INCR, full-width,
    ID 0, aligned, at most max_burst beats, inside one boundary page and the image, at most
    outstanding bursts in flight), then queued; R beats in order with the sources' pauses,
    RRESP OKAY (SLVERR on the image beats of ``axi.txt``'s ``slverr`` lines), RLAST on each
    burst's last beat (zeros for a burst outside the image)."""
    dw = width(f"{ax}__rdata")
    bus = dw // 8
    if bus < 1 or bus & (bus - 1):
        raise ValueError(f"the AXI data width must be a power-of-two number of bytes, not {dw}")
    size_log2 = bus.bit_length() - 1
    qn = 1024
    bad = (
        "begin if (!mismatches) $sformat(first, "
        '"AR[%0d] @%0d: burst 0x%0h+%0d beats: %0s", ar_count, cycle - start, ar_addr, '
        "ar_beats, amsg); mismatches = mismatches + 1; end"
    )

    def check(cond: str, fmt: str, *args: str) -> str:
        fmt_args = "".join(f", {a}" for a in args)
        return f'if ({cond}) begin $sformat(amsg, "{fmt}"{fmt_args}); {bad} end'

    ar_fire = " ".join(
        [
            "begin ar_addr = ax_araddr; ar_beats = ax_arlen + 1;",
            check("ax_arburst != 1", "arburst %0d, not INCR (1)", "ax_arburst"),
            check(
                f"ax_arsize != {size_log2}",
                f"arsize %0d, not the full bus width ({size_log2})",
                "ax_arsize",
            ),
            check("ax_arid != 0", "arid %0d, not 0", "ax_arid"),
            check("ar_beats > ax_max_burst", "longer than max_burst %0d", "ax_max_burst"),
            check(f"ar_addr % {bus} != 0", "not aligned to the bus width"),
            check(
                f"ar_addr / ax_boundary != (ar_addr + ar_beats * {bus} - 1) / ax_boundary",
                "crosses a %0d-byte boundary",
                "ax_boundary",
            ),
            check(f"bq_tail - bq_head >= {qn}", f"more than {qn} bursts queued"),
            f"h = bq_tail % {qn}; bq_left[h] = ar_beats; bq_bad[h] = 0;",
            f"bq_beat[h] = (ar_addr - ax_base) / {bus};",
            "if (ar_addr < ax_base || bq_beat[h] + ar_beats > mem_n) begin bq_bad[h] = 1;",
            '$sformat(amsg, "outside the memory image (%0d beats from 0x%0h)", mem_n, ax_base);',
            f"{bad} end",
            "bq_tail = bq_tail + 1;",
            check(
                "bq_tail - bq_head > ax_outstanding",
                "%0d bursts in flight, above outstanding %0d",
                "bq_tail - bq_head",
                "ax_outstanding",
            ),
            "ar_count = ar_count + 1; end",
        ]
    )
    return {
        "wired": {
            f"{ax}__rvalid": "r_v",
            f"{ax}__rready": "r_rdy",
            f"{ax}__rdata": "r_d",
            f"{ax}__rlast": "r_last",
            f"{ax}__rresp": "r_resp",
        },
        "decl": [
            f"reg r_v = 0, r_last = 0, r_fired = 0; wire r_rdy; reg {_vec(dw)}r_d = 0;",
            f"reg {_vec(dw)}mem [0:{mem_beats - 1}]; reg mem_err [0:{mem_beats - 1}];",
            "reg [1:0] r_resp = 0;",
            f"reg [63:0] bq_beat [0:{qn - 1}]; integer bq_left [0:{qn - 1}];",
            f"reg bq_bad [0:{qn - 1}];",
            "integer bq_head = 0, bq_tail = 0, r_left = 0, ar_count = 0, mem_n, afd, k, h;",
            "reg [63:0] ax_base = 0, ax_max_burst = 256, ax_outstanding = 64'd1 << 30;",
            "reg [63:0] ax_boundary = 4096, ar_addr, ar_beats;",
            "reg [8*32-1:0] akey; reg [8*256-1:0] amsg;",
        ],
        "load": (
            '`OPEN(afd, "mem.hex", mem_n) '
            f"if (mem_n > {mem_beats}) begin "
            f'$display("FAST ERROR unit={unit} mem.hex: %0d beats, the testbench holds '
            f'{mem_beats}", mem_n); $finish; end '
            'for (k = 0; k < mem_n; k = k + 1) begin rc = $fscanf(afd, "%h\\n", mem[k]); '
            "mem_err[k] = 0; end "
            "$fclose(afd); "
            'afd = $fopen({dir, "/axi.txt"}, "r"); '
            f'if (afd == 0) begin $display("FAST ERROR unit={unit} missing %0s/axi.txt", dir); '
            "$finish; end "
            'while ($fscanf(afd, "%s %d", akey, v) == 2) begin '
            'if (akey == "base") ax_base = v; else if (akey == "max_burst") ax_max_burst = v; '
            'else if (akey == "outstanding") ax_outstanding = v; '
            'else if (akey == "boundary") ax_boundary = v; '
            'else if (akey == "slverr") begin if (v >= mem_n) begin '
            f'$display("FAST ERROR unit={unit} axi.txt: slverr beat %0d outside the image", v); '
            "$finish; end mem_err[v] = 1; end "
            f'else begin $display("FAST ERROR unit={unit} axi.txt: unknown key %0s", akey); '
            "$finish; end end "
            "$fclose(afd);"
        ),
        "drive": (
            "if (!r_v && bq_head < bq_tail) begin `PAUSE(r_left, idle, idle_burst, p) "
            f"if (!p) begin h = bq_head % {qn}; r_d = bq_bad[h] ? 0 : mem[bq_beat[h]]; "
            "r_resp = !bq_bad[h] && mem_err[bq_beat[h]] ? 2 : 0; "
            "r_last = bq_left[h] == 1; r_v = 1; end end"
        ),
        "sample": (
            f"if (r_v && r_rdy) begin h = bq_head % {qn}; "
            "if (!bq_bad[h]) bq_beat[h] = bq_beat[h] + 1; bq_left[h] = bq_left[h] - 1; "
            "if (bq_left[h] == 0) bq_head = bq_head + 1; r_fired = 1; last_progress = cycle; end"
        ),
        "after": "if (r_fired) begin r_v = 0; r_fired = 0; end",
        "ar_fire": ar_fire,
    }


#: (unit, repr(cfg), config) → compiled testbench, so that a process generates it once
_BUILT: dict[tuple[str, str, str], Path] = {}


def build_icarus(unit: str, cfg: HWConfig, *, config: str = "custom", log=None) -> Path:
    """The compiled testbench (``vvp`` file) of ``unit`` at ``cfg``, built when missing or
    out of date in ``sim_build/fast_icarus/<unit>/<config>_<hash>``."""
    if unit not in FAST_PORTS:
        raise ValueError(f"unit must be one of {', '.join(FAST_PORTS)}, not {unit!r}")
    memo = (unit, repr(cfg), config)
    if memo in _BUILT and _BUILT[memo].is_file():
        return _BUILT[memo]
    mem_beats = 0
    if FAST_PORTS[unit].axi is not None:
        lay = KVLayout.from_hw(cfg)
        mem_beats = lay.n_chunks * lay.chunk_bytes // lay.bus_bytes
    iverilog = find_tool("iverilog")
    if iverilog is None:
        raise FileNotFoundError("iverilog not found in the venv nor on PATH (run make setup)")
    verilog = generate(unit, cfg)
    tb = tb_verilog(unit, FAST_PORTS[unit], _ports(verilog, unit), mem_beats)
    key = hashlib.sha256("\0".join([verilog, tb]).encode()).hexdigest()[:12]
    bdir = ROOT / "sim_build" / "fast_icarus" / unit / f"{config}_{key}"
    out = bdir / "tb.vvp"
    bdir.mkdir(parents=True, exist_ok=True)
    with build_lock(bdir):
        if not out.is_file():
            (bdir / f"{unit}.v").write_text(verilog)
            (bdir / "fast_tb.v").write_text(tb)
            if log is not None:
                log(f"[sim.fast] compiling the {unit} testbench for Icarus in {bdir}")
            cmd = [iverilog, "-g2005", "-s", "fast_tb", "-o", "tb.vvp", "fast_tb.v", f"{unit}.v"]
            proc = subprocess.run(cmd, cwd=bdir, capture_output=True, text=True)
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(
                    f"iverilog failed on the {unit} testbench (rc {proc.returncode}) in {bdir}:\n"
                    + (proc.stdout + proc.stderr)[-3000:]
                )
    _BUILT[memo] = out
    return out


def run_icarus(
    vvp: Path, directory: Path, *, seed: int, profile, drain: int, timeout: int
) -> tuple[int, str]:
    """(return code, verdict line) of the compiled testbench on the files in ``directory``:
    0 on PASS, 1 on FAIL, 2 when it could not run; seconds and cycles per second measured
    around ``vvp``."""
    vvp_tool = find_tool("vvp")
    if vvp_tool is None:
        raise FileNotFoundError("vvp not found in the venv nor on PATH (run make setup)")

    def prob(p: float) -> int:
        return round(p * PROB_ONE)

    args = [
        f"+dir={Path(directory).resolve()}",
        f"+seed={seed}",
        f"+idle={prob(profile.idle)}",
        f"+stall={prob(profile.stall)}",
        f"+idle_burst={prob(profile.idle_burst)}",
        f"+stall_burst={prob(profile.stall_burst)}",
        f"+burst_max={profile.burst_max}",
        f"+drain={drain}",
        f"+timeout={timeout}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run([vvp_tool, "-n", str(vvp), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    line = next((ln for ln in text.splitlines() if ln.startswith("FAST ")), None)
    m = line and re.match(r"FAST (PASS|FAIL) (.*? mismatches=\d+)(.*)$", line)
    if not m or proc.returncode != 0:
        return 2, text
    cycles = int(re.search(r"cycles=(\d+)", line).group(1))
    rate = cycles / seconds if seconds > 0 else 0.0
    line = f"FAST {m[1]} {m[2]} seconds={seconds:.6f} cycles_per_s={rate:.0f}{m[3]}"
    return (0 if m[1] == "PASS" else 1), line
