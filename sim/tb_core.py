"""cocotb regression of the generated VRexCore Verilog (``hw.gen`` top ``core``): a host
program (``sim.core_data``) against the bit-exact model ``golden.core.CoreModel``, with
cocotbext-axi's ``AxiRam`` (a real AXI4 slave model, random AR/R/AW/W/B pauses) as memory.

The host drives ``cmd`` and ``vin`` with random idle cycles and reads ``out`` and ``status``
with random back-pressure (``DRE_IDLE`` / ``DRE_STALL``); every status beat, every output
vector (bit for bit) and, at the end of each context, every work counter is scoreboarded.
Workload: ``TRACE`` (a ``golden.trace`` file; ``CORE_FRAMES``, ``CORE_LAYERS``,
``CORE_HEADS`` limit it) or seeded synthetic keys (``SEED``). ``CORE_REPORT=path.json``
writes the per-command cycles and the figures ``sim.run`` prints.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, SimTimeoutError
from cocotbext.axi import AxiBus, AxiRam

from golden import trace as golden_trace
from golden.core import WORK_COUNTERS
from hw.config import HWConfig
from hw.core import PERF
from sim.cocotb_streams import (
    StreamSink,
    StreamSource,
    config_from_env,
    cycle,
    make_rng,
    start_clock,
    timing_from_env,
)
from sim.core_data import Program, program_from_trace, synthetic_program
from sim.dre_data import trace_path


def random_pauses(rng: np.random.Generator, p: float):
    while True:
        yield bool(rng.random() < p)


def raw_layouts(cfg: HWConfig):
    lanes = cfg.mac_lanes
    return (
        data.StructLayout({"op": 3, "arg": 32}),
        data.StructLayout({"x": 16 * lanes}),
        data.StructLayout({"o": 32 * lanes, "last": 1}),
        data.StructLayout({"op": 3, "error": 3}),
    )


def pack(vector: np.ndarray, lanes: int) -> list[dict]:
    """One BF16 vector → ``vin`` beats of ``lanes`` elements (element 0 in the LSBs)."""
    beats = []
    for b in range(0, vector.size, lanes):
        v = 0
        for i, x in enumerate(vector[b : b + lanes]):
            v |= int(x) << (16 * i)
        beats.append({"x": v})
    return beats


def unpack(beats: list[int], lanes: int) -> np.ndarray:
    return np.array([(b >> (32 * i)) & 0xFFFF_FFFF for b in beats for i in range(lanes)], np.uint32)


def env_program(cfg: HWConfig, log) -> Program:
    path = trace_path()
    if path is None:
        return synthetic_program(cfg, seed=int(os.environ.get("SEED", "1")))
    t = golden_trace.load(path)

    def opt(name):
        v = os.environ.get(name, "").strip()
        return int(v) if v else None

    prog = program_from_trace(
        cfg,
        t,
        frames=opt("CORE_FRAMES"),
        layers=opt("CORE_LAYERS"),
        kv_heads=opt("CORE_HEADS"),
        source=f"{path.name} ({t.meta.get('clip', '?')}, {t.meta.get('features', '?')})",
    )
    log.info("workload %s: %d commands, %d queries", prog.source, len(prog.commands), prog.queries)
    return prog


async def read_perf(dut) -> dict[str, int]:
    out = {}
    for i, name in enumerate(PERF):
        await FallingEdge(dut.clk)
        dut.perf_addr.value = i
        await ReadOnly()
        out[name] = int(dut.perf_data.value)
    return out


@cocotb.test()
async def core_program(dut):
    """The whole host program, bit-exact, with random timing on every port."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = env_program(cfg, dut._log)
    rng = make_rng(11)
    lanes = cfg.mac_lanes
    cmd_l, vin_l, out_l, st_l = raw_layouts(cfg)

    dut.cmd__valid.value = 0
    dut.vin__valid.value = 0
    dut.out__ready.value = 0
    dut.status__ready.value = 0
    dut.perf_addr.value = 0
    await start_clock(dut)
    ram = AxiRam(
        AxiBus.from_prefix(dut, "m_axi", bus_separator="__"),
        dut.clk,
        dut.rst,
        size=cfg.kv_base + cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes,
    )
    if stall > 0:
        for ch in (
            ram.read_if.ar_channel,
            ram.read_if.r_channel,
            ram.write_if.aw_channel,
            ram.write_if.w_channel,
            ram.write_if.b_channel,
        ):
            ch.set_pause_generator(random_pauses(rng, stall))
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    fast = idle <= 0 and stall <= 0
    cmd_src = StreamSource(dut, "cmd", cmd_l, rng=make_rng(12), idle=idle, fast=fast)
    vin_src = StreamSource(dut, "vin", vin_l, rng=make_rng(13), idle=idle, fast=fast)
    outs: list[int] = []
    out_sink = StreamSink(
        dut,
        "out",
        out_l,
        rng=make_rng(14),
        stall=stall,
        fast=fast,
        callback=lambda b, _t: outs.append(int(b.o)),
    )
    status_sink = StreamSink(dut, "status", st_l, rng=make_rng(15), stall=stall, fast=fast)
    out_sink.start()
    status_sink.start()

    nb = cfg.resv.head_dim // lanes
    records = []
    failures = []
    counter_checks = 0
    for i, c in enumerate(prog.commands):
        n_out = len(outs)
        start = cycle()
        beats = [b for v in c.vectors for b in pack(v, lanes)]
        vin_task = cocotb.start_soon(vin_src.send(beats)) if beats else None
        await cmd_src.send([{"op": c.op, "arg": c.arg}])
        t_cmd = cmd_src.times[-1]
        budget = 2000 + 400 * len(beats) + 50 * (c.info.get("tokens", 0) * 4 + 200) * nb
        try:
            await status_sink.wait_for(i + 1, timeout_cycles=budget)
        except SimTimeoutError:
            failures.append(
                f"command {i} ({c.kind}, op {int(c.op)}, arg {c.arg}, context "
                f"{c.context}): no status within {budget} cycles (hang)"
            )
            break
        if vin_task is not None:
            await vin_task
        st, t_done = status_sink.beats[-1]
        got_op, got_err = int(st.op), int(st.error)
        rec = {
            "i": i,
            "kind": c.kind,
            "context": c.context,
            "op": int(c.op),
            "cycles": t_done - t_cmd,
            "host_cycles": t_done - start,
            **c.info,
        }
        if (got_op, got_err) != (int(c.op) & 7, int(c.error)):
            failures.append(
                f"command {i} ({c.kind}): status op/error {got_op}/{got_err}, "
                f"expected {int(c.op) & 7}/{int(c.error)}"
            )
        want_beats = nb if c.out is not None else 0
        got = outs[n_out:]
        if len(got) != want_beats:
            failures.append(
                f"command {i} ({c.kind}): {len(got)} output beats, expected {want_beats}"
            )
        elif c.out is not None:
            vec = unpack(got, lanes)
            rec["match"] = bool(np.array_equal(vec, c.out))
            if not rec["match"]:
                bad = np.flatnonzero(vec != c.out)
                failures.append(
                    f"command {i} (query, context {c.context}): {bad.size} of {vec.size} "
                    f"elements differ, first [{bad[0]}] got {vec[bad[0]]:#010x} "
                    f"expected {c.out[bad[0]]:#010x}"
                )
        records.append(rec)
        if i in prog.context_end:
            ci = prog.context_end.index(i)
            perf = await read_perf(dut)
            want = prog.contexts[ci].counters
            for name in WORK_COUNTERS:
                counter_checks += 1
                if perf[name] != want[name]:
                    failures.append(
                        f"context {ci}: counter {name} = {perf[name]}, model {want[name]}"
                    )
            records.append({"kind": "counters", "context": ci, **perf})
        if len(failures) > 20:
            break

    report = os.environ.get("CORE_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(
                {
                    "source": prog.source,
                    "records": records,
                    "failures": failures,
                    "counter_checks": counter_checks,
                },
                f,
            )
    for msg in failures[:20]:
        dut._log.error(msg)
    matched = sum(1 for r in records if r.get("match"))
    assert not failures, f"{len(failures)} mismatches (first: {failures[0]})"
    assert matched == prog.queries > 0, f"{matched} of {prog.queries} queries matched"
    assert counter_checks == len(WORK_COUNTERS) * len(prog.contexts)
    dut._log.info("%d queries bit-exact, %d counters checked", matched, counter_checks)
