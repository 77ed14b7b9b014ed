"""The core on Amaranth's simulator: a host program (``sim.cases.core.Program``) through
``VRexCore``'s streams against an AXI RAM model, and its check against the golden model's
expectations (statuses, outputs bit for bit, work counters)."""

from __future__ import annotations

import numpy as np

from hw.core import PERF, Error, VRexCore
from hw.core.contexts import context_stride
from sim.cases.core import Program, cmd_beat
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMEOUT, TIMINGS, Harness, run, stream_get, stream_put

__all__ = ["bus_errors", "check", "simulate"]


def simulate(
    cfg,
    prog: Program,
    *,
    timing: str,
    seed: int,
    vcd=None,
    timeout=TIMEOUT,
    pause: int = 0,
    **ram_options,
) -> dict:
    """Run ``prog`` on a ``VRexCore(cfg)`` with the host and RAM timing ``timing`` (a
    ``TIMINGS`` name) drawn from ``seed``, the host also pausing 0 to ``pause`` cycles
    before each command; ``ram_options`` go to the ``AxiRamModel``; a command's output or
    status may take up to ``timeout`` cycles to come.
    Returns per command its status (index, op, error), cycles from its ``cmd`` beat to its
    status, the AR/AW bursts accepted so far and the cycles of its ``cmd`` and ``status``
    handshakes (``handshakes``); the outputs; every counter where the program reads them
    (``Program.counter_reads``); the RAM's bursts (``ar_log``, ``aw_log``) and response
    handshakes (``responses``: ``AxiRamModel.response_log``).
    The AXI RAM holds the regions of the contexts the program uses (``Program.regions``)."""
    dut = VRexCore(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    lanes = cfg.mac_lanes
    mem = bytearray(context_stride(cfg) * prog.regions)
    ram = AxiRamModel(
        dut.m_axi,
        mem,
        base=cfg.kv_base,
        bus_bytes=cfg.axi_data_bits // 8,
        seed=seed,
        stall=stall,
        cycle=h.cycle,
        **ram_options,
    )
    # bursts: the AR and AW bursts accepted by the RAM when each status arrived;
    # handshakes: the cycles of each command's cmd and status beats
    out: dict = {k: [] for k in ("status", "outputs", "perf", "cycles", "bursts", "handshakes")}
    vin_layout = dut.vin.payload.shape()
    reads = dict(prog.counter_reads)

    async def host(ctx):
        rng = np.random.default_rng([seed, 1])
        for i, c in enumerate(prog.commands):
            if pause and (wait := int(rng.integers(pause + 1))):
                await ctx.tick().repeat(wait)
            start = ctx.get(h.cycle)
            (sent,) = await stream_put(
                ctx, dut.cmd, [cmd_beat(c)], cycle=h.cycle, rng=rng, idle=idle
            )
            beats = [vin_layout.from_bits(w) for w in c.vin_words(lanes)]
            if beats:
                await stream_put(ctx, dut.vin, beats, cycle=h.cycle, rng=rng, idle=idle)
            if n := c.out_beats(lanes):
                got = await stream_get(
                    ctx, dut.out, cycle=h.cycle, count=n, rng=rng, stall=stall, timeout=timeout
                )
                vec = [int(p.o[i].as_value().value) for p, _ in got for i in range(lanes)]
                out["outputs"].append((i, np.array(vec, np.uint32), [int(p.last) for p, _ in got]))
            ((st, t),) = await stream_get(
                ctx, dut.status, cycle=h.cycle, count=1, rng=rng, stall=stall, timeout=timeout
            )
            out["status"].append((i, int(st.op), int(st.error)))
            out["bursts"].append((len(ram.ar_log), len(ram.aw_log)))
            out["cycles"].append(t - start)
            out["handshakes"].append((sent, t))
            if i in reads:
                perf = {}
                for k, name in enumerate(PERF):
                    ctx.set(dut.perf_addr, k)
                    perf[name] = ctx.get(dut.perf_data)
                out["perf"].append(perf)

    run(h, [host], background=ram.benches(), vcd=vcd)
    out["mem"] = mem  # the DRAM image at the end
    out["ar_log"], out["aw_log"], out["responses"] = ram.ar_log, ram.aw_log, ram.response_log
    return out


def bus_errors(out: dict) -> dict[int, int]:
    """The commands that answer ``BUS`` in the run ``out``: for each response not OKAY, the
    first command whose status comes after it (the core's rule)."""
    status = [s for _, s in out["handshakes"]]
    bad = [cycle for _, _, resp, cycle in out["responses"] if resp]
    return {next(i for i, s in enumerate(status) if s > e): int(Error.BUS) for e in bad}


def check(prog: Program, out: dict, errors=None) -> None:
    """Statuses (``errors``: command index → expected error, overriding the program's),
    outputs bit for bit, work counters."""
    assert len(out["status"]) == len(prog.commands)
    for (i, op, err), c in zip(out["status"], prog.commands, strict=True):
        want = (errors or {}).get(i, int(c.error))
        assert (op, err) == (int(c.op) & 15, want), f"command {i} ({c.kind}): {(op, err)}"
    expected = [(i, c) for i, c in enumerate(prog.commands) if c.out is not None]
    assert len(out["outputs"]) == len(expected) > 0
    for (i, vec, lasts), (j, c) in zip(out["outputs"], expected, strict=True):
        assert i == j
        assert lasts[-1] == 1 and not any(lasts[:-1])
        bad = np.flatnonzero(vec != c.out)
        assert bad.size == 0, f"command {i}: {bad.size} elements differ, first {bad[0]}"
    for perf, (_, want) in zip(out["perf"], prog.counter_reads, strict=True):
        assert {n: perf[n] for n in want} == want
