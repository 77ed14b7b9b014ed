"""cocotb regression of the generated VRexCore Verilog (``hw.gen`` top ``core``): a host
program (``sim.core_data``) against the bit-exact model ``golden.core.CoreModel``, with
cocotbext-axi's ``AxiRam`` (a real AXI4 slave model, random AR/R/AW/W/B pauses) as memory.

The host drives ``cmd`` and ``vin`` with random idle cycles and reads ``out`` and ``status``
with random back-pressure (``DRE_IDLE`` / ``DRE_STALL``); every status beat, every output
vector (bit for bit) and, at the end of each context, every work counter is scoreboarded.
Workload: ``TRACE`` (a ``workloads.trace`` file; ``CORE_FRAMES``, ``CORE_LAYERS``,
``CORE_HEADS`` limit it; its frames are prefilled unless ``CORE_PREFILL=0``) or seeded
synthetic keys (``SEED``), the frames from the third on prefilled in 2-head blocks.
``CORE_REPORT=path.json`` writes the per-command cycles and the figures ``sim.run`` prints.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError
from cocotbext.axi import AxiBus, AxiRam

from golden.core import WORK_COUNTERS
from hw.config import HWConfig
from hw.core import PERF, Error, cmd_layout, lane_words
from sim.cocotb_streams import (
    StreamSink,
    StreamSource,
    config_from_env,
    make_rng,
    random_pauses,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from sim.core_data import Program, cmd_beat, program_from_trace, synthetic_program
from sim.coverage import collector
from sim.dre_data import trace_path
from workloads import trace as trace_io


def raw_layouts(cfg: HWConfig):
    lanes = cfg.mac_lanes
    return (
        cmd_layout(cfg),
        data.StructLayout({"x": 16 * lanes}),
        data.StructLayout({"o": 32 * lanes, "last": 1}),
        data.StructLayout({"op": 3, "error": 3}),
    )


def pack(vector: np.ndarray, lanes: int) -> list[dict]:
    """One BF16 vector → its ``vin`` beats."""
    return [{"x": w} for w in lane_words(vector, lanes)]


def unpack(beats: list[int], lanes: int) -> np.ndarray:
    return np.array([(b >> (32 * i)) & 0xFFFF_FFFF for b in beats for i in range(lanes)], np.uint32)


def env_program(cfg: HWConfig, log) -> Program:
    path = trace_path()
    if path is None:
        seed = int(os.environ.get("SEED", "1"))
        return synthetic_program(cfg, seed=seed, prefill_group=2, prefill_from=2)
    t = trace_io.load(path)

    def opt(name):
        v = os.environ.get(name, "").strip()
        return int(v) if v else None

    prog = program_from_trace(
        cfg,
        t,
        frames=opt("CORE_FRAMES"),
        layers=opt("CORE_LAYERS"),
        kv_heads=opt("CORE_HEADS"),
        prefill=os.environ.get("CORE_PREFILL", "1") != "0",
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


class Host:
    """The host side of the core: drivers, monitors and the AXI RAM, for one test."""

    def __init__(self, dut, cfg: HWConfig, *, idle: float, stall: float):
        self.dut, self.cfg = dut, cfg
        self.lanes = cfg.mac_lanes
        self.nb = cfg.resv.head_dim // self.lanes
        cmd_l, vin_l, out_l, st_l = raw_layouts(cfg)
        self.ram = AxiRam(
            AxiBus.from_prefix(dut, "m_axi", bus_separator="__"),
            dut.clk,
            dut.rst,
            size=cfg.kv_base + cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes,
        )
        if stall > 0:
            rng = make_rng(11)
            for ch in (
                self.ram.read_if.ar_channel,
                self.ram.read_if.r_channel,
                self.ram.write_if.aw_channel,
                self.ram.write_if.w_channel,
                self.ram.write_if.b_channel,
            ):
                ch.set_pause_generator(random_pauses(rng, stall))
        fast = idle <= 0 and stall <= 0
        self.cmd = StreamSource(dut, "cmd", cmd_l, rng=make_rng(12), idle=idle, fast=fast)
        self.vin = StreamSource(dut, "vin", vin_l, rng=make_rng(13), idle=idle, fast=fast)
        self.outs: list[int] = []
        self.out = StreamSink(
            dut,
            "out",
            out_l,
            rng=make_rng(14),
            stall=stall,
            fast=fast,
            callback=lambda b, _t: self.outs.append(int(b.o)),
        )
        self.status = StreamSink(dut, "status", st_l, rng=make_rng(15), stall=stall, fast=fast)
        self.out.start()
        self.status.start()

    @classmethod
    async def start(cls, dut, cfg: HWConfig, *, idle: float, stall: float) -> Host:
        for name in ("cmd__valid", "vin__valid", "out__ready", "status__ready", "perf_addr"):
            getattr(dut, name).value = 0
        await start_clock(dut)
        host = cls(dut, cfg, idle=idle, stall=stall)
        await host.reset()
        return host

    async def reset(self, cycles: int = 2) -> None:
        """Reset the core; the host's streams keep driving (a reset may hit mid-command)."""
        await reset(self.dut, cycles, idle=())

    async def command(self, c) -> tuple[int, int, int]:
        """Send one command and its vectors; returns (status op, error, cycles from the
        command's handshake to its status handshake)."""
        beats = [b for v in c.vectors for b in pack(v, self.lanes)]
        vin_task = cocotb.start_soon(self.vin.send(beats)) if beats else None
        await self.cmd.send([cmd_beat(c)])
        t_cmd = self.cmd.times[-1]
        budget = 2000 + 400 * len(beats) + 50 * (c.info.get("tokens", 0) * 4 + 200) * self.nb
        await self.status.wait_for(len(self.status.beats) + 1, timeout_cycles=budget)
        if vin_task is not None:
            await vin_task
        st, t_done = self.status.beats[-1]
        return int(st.op), int(st.error), t_done - t_cmd

    async def run(self, prog: Program) -> tuple[list[dict], list[str], int]:
        """Run ``prog``; returns (records, failures, counters checked)."""
        records: list[dict] = []
        failures: list[str] = []
        checks = 0
        for i, c in enumerate(prog.commands):
            n_out = len(self.outs)
            try:
                got_op, got_err, cycles = await self.command(c)
            except SimTimeoutError:
                failures.append(
                    f"command {i} ({c.kind}, op {int(c.op)}, arg {c.arg}, context {c.context}): "
                    "no status (hang)"
                )
                break
            rec = {
                "i": i,
                "kind": c.kind,
                "context": c.context,
                "op": int(c.op),
                "cycles": cycles,
                **c.info,
            }
            if (got_op, got_err) != (int(c.op) & 7, int(c.error)):
                failures.append(
                    f"command {i} ({c.kind}): status op/error {got_op}/{got_err}, "
                    f"expected {int(c.op) & 7}/{int(c.error)}"
                )
            else:
                collector().hit("core.status", Error(got_err).name)
            want_beats = len(c.out) // self.lanes if c.out is not None else 0
            got = self.outs[n_out:]
            if len(got) != want_beats:
                failures.append(
                    f"command {i} ({c.kind}): {len(got)} output beats, expected {want_beats}"
                )
            elif c.out is not None:
                vec = unpack(got, self.lanes)
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
                perf = await read_perf(self.dut)
                want = prog.contexts[ci].counters
                for name in WORK_COUNTERS:
                    checks += 1
                    if perf[name] != want[name]:
                        failures.append(
                            f"context {ci}: counter {name} = {perf[name]}, model {want[name]}"
                        )
                records.append({"kind": "counters", "context": ci, **perf})
            if len(failures) > 20:
                break
        return records, failures, checks


def check(dut, prog: Program, records, failures, checks) -> None:
    for msg in failures[:20]:
        dut._log.error(msg)
    matched = sum(1 for r in records if r.get("match"))
    assert not failures, f"{len(failures)} mismatches (first: {failures[0]})"
    assert matched == prog.queries > 0, f"{matched} of {prog.queries} queries matched"
    assert checks == len(WORK_COUNTERS) * len(prog.contexts)
    dut._log.info("%d queries bit-exact, %d counters checked", matched, checks)


@cocotb.test()
async def core_program(dut):
    """The whole host program (several contexts, bad commands; ``TRACE`` or synthetic),
    bit-exact, with random timing on every port and on the AXI RAM."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = env_program(cfg, dut._log)
    host = await Host.start(dut, cfg, idle=idle, stall=stall)
    records, failures, checks = await host.run(prog)
    report = os.environ.get("CORE_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(
                {
                    "source": prog.source,
                    "records": records,
                    "failures": failures,
                    "counter_checks": checks,
                },
                f,
            )
    check(dut, prog, records, failures, checks)


@cocotb.test()
async def core_reset_mid_query(dut):
    """A reset while a query is scoring and fetching (AXI bursts in flight): the core and
    the RAM model recover, and the whole program then runs bit-exact from the start."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = synthetic_program(cfg, seed=seed_from_env() + 5, bad_commands=False)
    host = await Host.start(dut, cfg, idle=idle, stall=stall)
    queries = [i for i, c in enumerate(prog.commands) if c.out is not None]
    fetching = [i for i in queries if prog.commands[i].info["fetched"]]
    first_fetch = (fetching or queries)[0]
    for c in prog.commands[:first_fetch]:
        await host.command(c)
    c = prog.commands[first_fetch]
    cocotb.start_soon(host.vin.send([b for v in c.vectors for b in pack(v, host.lanes)]))
    await host.cmd.send([cmd_beat(c)])
    burst = False
    for _ in range(5000 if fetching else 50):  # until a read burst is in flight
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.m_axi__arvalid.value) and int(dut.m_axi__arready.value):
            burst = True
            break
    assert burst or not fetching, "the query never issued a read burst"
    await RisingEdge(dut.clk)
    await host.reset(4)
    n_status = len(host.status.beats)
    records, failures, checks = await host.run(prog)
    assert len(host.status.beats) == n_status + len(prog.commands)
    check(dut, prog, records, failures, checks)


@cocotb.test()
async def core_single_token(dut):
    """Corner case: a context of one token (attended from the kept memory, no cluster)."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    host = await Host.start(dut, cfg, idle=idle, stall=stall)
    one = synthetic_program(cfg, frames=1, tokens_per_frame=1, contexts=1, bad_commands=False)
    assert one.contexts[0].counters["tokens_attended"] == 1
    check(dut, one, *await host.run(one))
