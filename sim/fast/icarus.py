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
are checked. The pauses come from ``$random`` seeded with ``--seed`` (a run replays
exactly on Icarus, with other pauses than the C++ harness draws from the same seed).

Not on Icarus (``ValueError`` naming the unit): units with phases, a clear strobe or an AXI
read master (the KVMU), and the ``--times`` / ``--coverage`` options of the C++ harness.
The wall time and cycles per second in the verdict are measured around ``vvp``.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import subprocess
import time
from pathlib import Path

from hw.config import HWConfig
from hw.gen import generate
from hw.toolpath import find_tool
from sim.fast.build import FAST_PORTS, ROOT, FastPorts

__all__ = ["build_icarus", "icarus_units", "run_icarus", "tb_verilog"]

#: Probabilities reach the testbench as integers over 2**24.
PROB_ONE = 1 << 24


def icarus_units() -> list[str]:
    """The units of ``FAST_PORTS`` the Icarus testbench drives (streams, scalars, reads)."""
    return [u for u, p in FAST_PORTS.items() if p.clear is None and p.axi is None]


def _ports(verilog: str, unit: str) -> dict[str, tuple[str, int]]:
    """Port name → (direction, width) of module ``unit`` in the generated Verilog."""
    m = re.search(rf"^module {re.escape(unit)}\(.*?^endmodule", verilog, re.M | re.S)
    if m is None:
        raise ValueError(f"no module {unit!r} in the generated Verilog")
    found = re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", m.group(0), re.M)
    return {name: (d, int(msb) + 1 if msb else 1) for d, msb, name in found}


def _vec(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def tb_verilog(unit: str, ports: FastPorts, dut_ports: dict[str, tuple[str, int]]) -> str:
    """The testbench module ``fast_tb`` of ``unit`` (see the module docstring)."""
    if ports.clear is not None or ports.axi is not None:
        raise ValueError(
            f"unit must be one of {', '.join(icarus_units())} on Icarus (no phases, clear "
            f"strobe or AXI), not {unit!r}"
        )

    def width(name: str) -> int:
        if name not in dut_ports:
            raise ValueError(f"unit {unit!r} has no port {name!r} (ports: {', '.join(dut_ports)})")
        return dut_ports[name][1]

    decl, conn, init, drive, sample, after, files, done_in, done_out = ([] for _ in range(9))
    wired = {"clk": "clk", "rst": "rst"}
    for i, s in enumerate(ports.inputs):
        w = width(f"{s}__payload")
        decl += [
            f"reg i{i}_v = 0; wire i{i}_r; reg {_vec(w)}i{i}_p = 0;",
            f"integer i{i}_fd, i{i}_n, i{i}_next = 0, i{i}_left = 0; reg i{i}_fired = 0;",
        ]
        wired |= {f"{s}__valid": f"i{i}_v", f"{s}__ready": f"i{i}_r", f"{s}__payload": f"i{i}_p"}
        files.append(f'`OPEN(i{i}_fd, "in_{s}.hex", i{i}_n)')
        drive.append(
            f"if (!i{i}_v && i{i}_next < i{i}_n) begin `PAUSE(i{i}_left, idle, idle_burst, p) "
            f'if (!p) begin rc = $fscanf(i{i}_fd, "%h\\n", i{i}_p); i{i}_v = 1; end end'
        )
        sample.append(
            f"if (i{i}_v && i{i}_r) begin i{i}_next = i{i}_next + 1; i{i}_fired = 1; "
            "last_progress = cycle; end"
        )
        after.append(f"if (i{i}_fired) begin i{i}_v = 0; i{i}_fired = 0; end")
        done_in.append(f"i{i}_next >= i{i}_n")
        init.append(f"i{i}_v = 0;")
    for i, s in enumerate(ports.outputs):
        w = width(f"{s}__payload")
        decl += [
            f"wire o{i}_v; reg o{i}_r = 0; wire {_vec(w)}o{i}_p; reg {_vec(w)}o{i}_e;",
            f"integer o{i}_fd, o{i}_n, o{i}_got = 0, o{i}_left = 0;",
        ]
        wired |= {f"{s}__valid": f"o{i}_v", f"{s}__ready": f"o{i}_r", f"{s}__payload": f"o{i}_p"}
        files.append(f'`OPEN(o{i}_fd, "out_{s}.hex", o{i}_n)')
        drive.append(f"`PAUSE(o{i}_left, stall, stall_burst, p) o{i}_r = !p;")
        sample.append(
            f"if (o{i}_v && o{i}_r) begin "
            f"if (o{i}_got >= o{i}_n) begin if (!mismatches) $sformat(first, "
            f'"{s}[%0d] @%0d: extra beat 0x%h after the %0d expected", o{i}_got, cycle - start, '
            f"o{i}_p, o{i}_n); mismatches = mismatches + 1; end "
            f'else begin rc = $fscanf(o{i}_fd, "%h\\n", o{i}_e); if (o{i}_e !== o{i}_p) begin '
            f'if (!mismatches) $sformat(first, "{s}[%0d] @%0d: expected 0x%h got 0x%h", o{i}_got, '
            f"cycle - start, o{i}_e, o{i}_p); mismatches = mismatches + 1; end end "
            f"o{i}_got = o{i}_got + 1; last_progress = cycle; end"
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
    for name, (d, w) in dut_ports.items():  # inputs the testbench does not drive: 0
        if d == "input" and name not in wired:
            wired[name] = f"{w}'d0"
    count = ports.counted
    counted = (
        f"i{ports.inputs.index(count)}_next"
        if count in ports.inputs
        else f"o{ports.outputs.index(count)}_got"
    )
    progress = [f"{s} %0d/%0d sent" for s in ports.inputs]
    progress += [f"{s} %0d/%0d received" for s in ports.outputs]
    counts = [f"i{i}_next, i{i}_n" for i in range(len(ports.inputs))]
    counts += [f"o{i}_got, o{i}_n" for i in range(len(ports.outputs))]
    timeout_fmt = (
        f'"timeout: no handshake for %0d cycles; {"; ".join(progress)}", timeout, '
        + ", ".join(counts)
    )
    conn = ",\n    ".join(f".{p}({wired[p]})" for p in dut_ports if p in wired)
    nl = "\n    "
    return f"""`timescale 1ns/1ns
// Generated by sim.fast.icarus for unit {unit}: see that module.
`define TICK begin #4 clk = 1; #5 clk = 0; cycle = cycle + 1; end
`define CHANCE(P) ((($random(seed) & 32'h00ffffff) < (P)))
`define PAUSE(LEFT, P, BURST, OUT) \\
    if (LEFT > 0) begin LEFT = LEFT - 1; OUT = 1; end \\
    else if (BURST != 0 && `CHANCE(BURST)) begin \\
        LEFT = burst_max ? (($random(seed) & 32'h7fffffff) % burst_max) : 0; OUT = 1; end \\
    else OUT = (P != 0) && `CHANCE(P);
`define OPEN(FD, FILE, N) \\
    begin FD = $fopen({{dir, "/", FILE}}, "r"); \\
    if (FD == 0) begin \\
        $display("FAST ERROR unit={unit} missing %0s/%0s", dir, FILE); $finish; end \\
    rc = $fscanf(FD, "%d\\n", N); end

module fast_tb;
    reg clk = 0;
    reg rst = 1;
    {nl.join(decl)}
    integer seed = 1, idle = 0, stall = 0, idle_burst = 0, stall_burst = 0, burst_max = 0;
    integer drain = 16, timeout = 100000, cycle = 0, start = 0, last_progress = 0;
    integer mismatches = 0, drained = 0, rc, efd, found, seed0, run_cycles;
    reg [63:0] a, v;
    reg p, done;
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
        {nl.join(files)}
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
                if ({" && ".join(done_in + done_out)}) done = 1;
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


#: (unit, repr(cfg), config) → compiled testbench, so that a process generates it once
_BUILT: dict[tuple[str, str, str], Path] = {}


def build_icarus(unit: str, cfg: HWConfig, *, config: str = "custom", log=None) -> Path:
    """The compiled testbench (``vvp`` file) of ``unit`` at ``cfg``, built when missing or
    out of date in ``sim_build/fast_icarus/<unit>/<config>_<hash>``."""
    if unit not in icarus_units():
        raise ValueError(
            f"unit must be one of {', '.join(icarus_units())} on Icarus (no phases, clear "
            f"strobe or AXI), not {unit!r}"
        )
    memo = (unit, repr(cfg), config)
    if memo in _BUILT and _BUILT[memo].is_file():
        return _BUILT[memo]
    iverilog = find_tool("iverilog")
    if iverilog is None:
        raise FileNotFoundError("iverilog not found in the venv nor on PATH (run make setup)")
    verilog = generate(unit, cfg)
    tb = tb_verilog(unit, FAST_PORTS[unit], _ports(verilog, unit))
    key = hashlib.sha256("\0".join([verilog, tb]).encode()).hexdigest()[:12]
    bdir = ROOT / "sim_build" / "fast_icarus" / unit / f"{config}_{key}"
    out = bdir / "tb.vvp"
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
