"""cocotb regression of the generated VRexCore Verilog (``hw.gen`` top ``core``): a host
program (``sim.cases.core``) against the bit-exact model ``golden.core.CoreModel``, with
cocotbext-axi's ``AxiRam`` (a real AXI4 slave model, random AR/R/AW/W/B pauses) as memory.

The host drives ``cmd`` and ``vin`` with random idle cycles and reads ``out`` and ``status``
with random back-pressure (``DRE_IDLE`` / ``DRE_STALL``); every status beat, every output
vector (bit for bit) and, at the end of each context, every work counter is scoreboarded.
Workload: ``TRACE`` (a ``workloads.trace`` file; ``CORE_FRAMES``, ``CORE_LAYERS``,
``CORE_HEADS`` limit it; its frames are prefilled unless ``CORE_PREFILL=0``) or seeded
synthetic keys (``SEED``), the frames from the third on prefilled in 2-head blocks.
``CORE_QUERIES=N`` replaces the workload by the soak's seeded host program
(``sim.cases.core.soak_program``: several contexts, prefill blocks, bad commands and at least
``N`` decode queries; ``python -m sim.soak_core`` sets it).
``CORE_REPORT=path.json`` writes the per-command cycles and the figures ``sim.run`` prints.

Error paths, each against the model's expected status: ``core_context_full`` (a context of
more than ``2**token_id_bits`` tokens: ``FULL``, with the RAM holding AWREADY low in long
bursts; Verilator only, skipped on Icarus) and ``core_bus_errors`` (``SlverrInjector``: a
SLVERR on one write and one read burst: ``BUS`` on exactly the commands that issued them,
then ``OK`` again) and ``core_prefetch_bus_error`` (a SLVERR on a read burst of the
background prefetcher while no command runs: ``BUS`` on the next command).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError
from cocotbext.axi import AxiBus, AxiRam

from hw.config import HWConfig
from hw.core import PERF, STATUS_LAYOUT, Error, Op, cmd_layout
from hw.core.contexts import context_base
from sim.cases.core import (
    Program,
    cmd_beat,
    program_from_trace,
    soak_program,
    synthetic_program,
)
from sim.cases.dre import trace_path
from sim.coverage import collector
from sim.kit.cocotb_streams import (
    SlverrInjector,
    StreamSink,
    StreamSource,
    burst_pauses,
    config_from_env,
    make_rng,
    random_pauses,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from sim.kit.runner import PROGRESS_TAG
from workloads import trace as trace_io


def raw_layouts(cfg: HWConfig):
    lanes = cfg.mac_lanes
    return (
        cmd_layout(cfg),
        data.StructLayout({"x": 16 * lanes}),
        data.StructLayout({"o": 32 * lanes, "last": 1}),
        STATUS_LAYOUT,
    )


def unpack(beats: list[int], lanes: int) -> np.ndarray:
    return np.array([(b >> (32 * i)) & 0xFFFF_FFFF for b in beats for i in range(lanes)], np.uint32)


def _bounded(ram: AxiRam) -> None:
    """An access outside ``ram`` is answered SLVERR (cocotbext-axi's ``AxiRam`` would wrap its
    address modulo the RAM's size, silently aliasing another context's region), so the
    command answers ``BUS`` and the test fails."""
    for part, name in ((ram.write_if, "_write"), (ram.read_if, "_read")):
        inner = getattr(part, name)

        async def checked(address, arg, inner=inner):
            n = arg if isinstance(arg, int) else len(arg)
            if not 0 <= address <= address + n <= ram.size:
                raise AssertionError(
                    f"AXI access of {n} bytes at {address:#x} outside the {ram.size}-byte RAM"
                )
            return await inner(address, arg)

        setattr(part, name, checked)


def env_program(cfg: HWConfig, log) -> Program:
    def opt(name):
        v = os.environ.get(name, "").strip()
        return int(v) if v else None

    path = trace_path()
    if path is None:
        if opt("CORE_QUERIES") is not None:
            return soak_program(cfg, seed_from_env(), opt("CORE_QUERIES"))
        return synthetic_program(cfg, seed=seed_from_env(), prefill_group=2, prefill_from=2)
    t = trace_io.load(path)

    prog = program_from_trace(
        cfg,
        t,
        frames=opt("CORE_FRAMES"),
        layers=opt("CORE_LAYERS"),
        kv_heads=opt("CORE_HEADS"),
        prefill=os.environ.get("CORE_PREFILL", "1") != "0",
        interleave=os.environ.get("CORE_INTERLEAVE", "0") != "0",
        prefetch=os.environ.get("CORE_PREFETCH", "1") != "0",
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

    def __init__(self, dut, cfg: HWConfig, *, idle: float, stall: float, regions: int = 1):
        self.dut, self.cfg = dut, cfg
        self.lanes = cfg.mac_lanes
        self.nb = cfg.resv.head_dim // self.lanes
        cmd_l, vin_l, out_l, st_l = raw_layouts(cfg)
        self.ram = AxiRam(
            AxiBus.from_prefix(dut, "m_axi", bus_separator="__"),
            dut.clk,
            dut.rst,
            size=context_base(cfg, regions),  # the regions of the contexts 0..regions-1
        )
        _bounded(self.ram)
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
    async def start(
        cls, dut, cfg: HWConfig, *, idle: float, stall: float, regions: int = 1
    ) -> Host:
        for name in ("cmd__valid", "vin__valid", "out__ready", "status__ready", "perf_addr"):
            getattr(dut, name).value = 0
        await start_clock(dut)
        host = cls(dut, cfg, idle=idle, stall=stall, regions=regions)
        await host.reset()
        return host

    async def reset(self, cycles: int = 2) -> None:
        """Reset the core; the host's streams keep driving (a reset may hit mid-command)."""
        await reset(self.dut, cycles, idle=())

    async def command(self, c) -> tuple[int, int, int]:
        """Send one command and its vectors; returns (status op, error, cycles from the
        command's handshake to its status handshake)."""
        beats = [{"x": w} for w in c.vin_words(self.lanes)]
        vin_task = cocotb.start_soon(self.vin.send(beats)) if beats else None
        await self.cmd.send([cmd_beat(c)])
        t_cmd = self.cmd.times[-1]
        budget = 2000 + 400 * len(beats) + 50 * (c.info.get("tokens", 0) * 4 + 200) * self.nb
        await self.status.wait_for(len(self.status.beats) + 1, timeout_cycles=budget)
        if vin_task is not None:
            await vin_task
        st, t_done = self.status.beats[-1]
        return int(st.op), int(st.error), t_done - t_cmd

    async def run(self, prog: Program, before=None) -> tuple[list[dict], list[str], int]:
        """Run ``prog`` (``await before(i, command)`` before sending each command); returns
        (records, failures, counters checked)."""
        records: list[dict] = []
        failures: list[str] = []
        checks = 0
        reads = dict(prog.counter_reads)
        for i, c in enumerate(prog.commands):
            if before is not None:
                await before(i, c)
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
            if (got_op, got_err) != (int(c.op) & 15, int(c.error)):
                failures.append(
                    f"command {i} ({c.kind}): status op/error {got_op}/{got_err}, "
                    f"expected {int(c.op) & 15}/{int(c.error)}"
                )
            else:
                collector().hit("core.status", Error(got_err).name)
                ops = (Op.RESET_CTX, Op.SWITCH_CTX, Op.PREFETCH_CTX)
                if c.op in ops and got_err == Error.BAD_ARG:
                    collector().hit("core.context", "refused")
                elif c.kind == "switch":
                    collector().hit(
                        "core.context", "prefetched" if c.info["prefetched"] else "switch"
                    )
                elif c.kind == "prefetch" and c.info["moves"]:
                    collector().hit("core.context", "prefetch")
                elif c.info.get("cleans"):
                    collector().hit("core.context", "clean")
            want_beats = c.out_beats(self.lanes)
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
            # echoed to the console by sim.kit.runner (a long run shows its progress and
            # each command's outputs against golden as they come)
            self.dut._log.info(
                "%s command %d/%d (%s) done in %d cycles%s",
                PROGRESS_TAG,
                i + 1,
                len(prog.commands),
                c.kind,
                cycles,
                {True: ", outputs bit-exact", False: ", outputs DIFFER from golden"}.get(
                    rec.get("match"), ""
                ),
            )
            records.append(rec)
            if i in reads:
                perf = await read_perf(self.dut)
                for name, want in reads[i].items():
                    checks += 1
                    if perf[name] != want:
                        failures.append(
                            f"counters after command {i}: {name} = {perf[name]}, model {want}"
                        )
                records.append({"kind": "counters", "after": i, **perf})
            if len(failures) > 20:
                break
        return records, failures, checks


def check(dut, prog: Program, records, failures, checks) -> None:
    for msg in failures[:20]:
        dut._log.error(msg)
    matched = sum(1 for r in records if r.get("match"))
    assert not failures, f"{len(failures)} mismatches (first: {failures[0]})"
    assert matched == prog.queries > 0, f"{matched} of {prog.queries} queries matched"
    assert checks == sum(len(want) for _, want in prog.counter_reads)
    dut._log.info("%d queries bit-exact, %d counters checked", matched, checks)


@cocotb.test()
async def core_program(dut):
    """The whole host program (several contexts, bad commands; ``TRACE`` or synthetic),
    bit-exact, with random timing on every port and on the AXI RAM."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = env_program(cfg, dut._log)
    host = await Host.start(dut, cfg, idle=idle, stall=stall, regions=prog.regions)
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
async def core_interleaved_contexts(dut):
    """Contexts visited in turn, as a model does: every frame, each context's INGEST,
    PREFILL and decode after a ``SWITCH_CTX`` that stores the active context's tables to
    its DRAM region and loads the next one's (plus refused switches); bit-exact with one
    golden model per context, the counters (the switches and their beats included) too."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = synthetic_program(
        cfg,
        frames=3,
        tokens_per_frame=8,
        contexts=min(3, cfg.contexts),
        seed=seed_from_env() + 3,
        prefill_group=2,
        prefill_from=1,
        interleave=True,
    )
    host = await Host.start(dut, cfg, idle=idle, stall=stall, regions=prog.regions)
    check(dut, prog, *await host.run(prog))


@cocotb.test()
async def core_reset_mid_query(dut):
    """A reset while a query is scoring and fetching (AXI bursts in flight): the core and
    the RAM model recover, and the whole program (one context: ``core_program`` runs
    several) then runs bit-exact from the start."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = synthetic_program(cfg, seed=seed_from_env() + 5, bad_commands=False, contexts=1)
    host = await Host.start(dut, cfg, idle=idle, stall=stall)
    queries = [i for i, c in enumerate(prog.commands) if c.out is not None]
    fetching = [i for i in queries if prog.commands[i].info["fetched"]]
    first_fetch = (fetching or queries)[0]
    for c in prog.commands[:first_fetch]:
        await host.command(c)
    c = prog.commands[first_fetch]
    cocotb.start_soon(host.vin.send([{"x": w} for w in c.vin_words(host.lanes)]))
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


#: Largest ``token_id_bits`` at which ``core_context_full`` runs on Icarus (a 2**7-token
#: context: ~5 K cycles); ``tests/sim/test_units_cocotb.py`` runs it there at 6.
ICARUS_FULL_TOKEN_BITS = 7


def _skip_full() -> bool:
    icarus = "icarus" in str(getattr(cocotb, "SIM_NAME", "")).lower()
    return icarus and config_from_env().token_id_bits > ICARUS_FULL_TOKEN_BITS


@cocotb.test(skip=_skip_full())
async def core_context_full(dut):
    """FULL: one INGEST of ``2**token_id_bits + 16`` tokens into an empty context answers
    FULL (its last 16 tokens consumed and dropped, as the model says); the QUERY after it
    answers OK, bit-exact on the tokens held, and so are the counters. No host idle cycles
    or back-pressure; the RAM holds AWREADY low in pauses of 4..8 cycles, so the aged
    tokens' write bursts wait for it. At the tiny preset (1040 tokens) the program is ~37 K
    cycles: 45 s on Verilator, minutes on Icarus, where it is skipped above
    ``ICARUS_FULL_TOKEN_BITS`` (and run with ``token_id_bits`` 6 instead)."""
    cfg = config_from_env()
    prog = synthetic_program(
        cfg,
        frames=1,
        tokens_per_frame=(1 << cfg.token_id_bits) + 16,
        contexts=1,
        bad_commands=False,
        seed=seed_from_env() + 7,
    )
    kinds = [(c.kind, Error(c.error).name, c.info.get("dropped")) for c in prog.commands]
    assert kinds == [
        ("reset", "OK", None),
        ("bias", "OK", None),
        ("frame", "FULL", 16),
        ("decode", "OK", None),
        ("perf", "OK", None),
    ], kinds
    host = await Host.start(dut, cfg, idle=0.0, stall=0.0)
    aw = host.ram.write_if.aw_channel
    aw.set_pause_generator(burst_pauses(make_rng(16), 0.1, 4, 8))
    check(dut, prog, *await host.run(prog))


@cocotb.test()
async def core_bus_errors(dut):
    """BUS: the RAM answers SLVERR on one write burst (its B) of the first INGEST that
    writes aged tokens, and on one read burst (every R beat) of the first QUERY that
    fetches; the data still moved. Exactly those two commands answer BUS (the model's
    outputs bit-exact all the same); the later INGEST and QUERY commands, which write and
    read again, answer OK, and the counters match the model. The RAM holds AWREADY low in
    pauses of 6..10 cycles."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = synthetic_program(
        cfg, frames=4, tokens_per_frame=8, contexts=1, bad_commands=False, seed=seed_from_env()
    )
    cmds = prog.commands
    writes = [i for i, c in enumerate(cmds) if c.kind == "frame" and c.info["kv_written"]]
    reads = [i for i, c in enumerate(cmds) if c.out is not None and c.info["bursts"]]
    bad_write, bad_read = writes[0], reads[0]
    assert max(writes) > bad_write and max(reads) > bad_read, "nothing left to recover on"
    assert cmds[bad_write].error == cmds[bad_read].error == Error.OK
    bad = {bad_write, bad_read}
    prog = replace(
        prog, commands=[replace(c, error=Error.BUS) if i in bad else c for i, c in enumerate(cmds)]
    )
    host = await Host.start(dut, cfg, idle=idle, stall=stall)
    inj = SlverrInjector(host.ram)
    # Long AW pauses here too (core_context_full is skipped on Icarus).
    host.ram.write_if.aw_channel.set_pause_generator(burst_pauses(make_rng(17), 0.3, 6, 10))

    async def arm(i, _c):
        if i == bad_write:
            inj.arm_write()
        if i == bad_read:
            inj.arm_read()

    result = await host.run(prog, before=arm)
    assert inj.injected == {"read": 1, "write": 1}, f"SLVERR injected {inj.injected}"
    check(dut, prog, *result)


@cocotb.test()
async def core_prefetch_bus_error(dut):
    """BUS from the background prefetcher between commands: after the first
    ``PREFETCH_CTX`` that moves kept tokens, the host waits (no command runs) until the
    RAM has answered one of the prefetcher's read bursts with SLVERR on every beat; the next
    command answers BUS (the error is not lost), every other command as the model says,
    the outputs and counters bit-exact."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    prog = synthetic_program(
        cfg,
        frames=2,
        tokens_per_frame=8,
        contexts=min(3, cfg.contexts),
        seed=seed_from_env() + 9,
        interleave=True,
        bad_commands=False,
    )
    cmds = prog.commands
    after = 1 + next(i for i, c in enumerate(cmds) if c.kind == "prefetch" and c.info["moves"])
    assert cmds[after].error == Error.OK
    bad = replace(cmds[after], error=Error.BUS)
    prog = replace(prog, commands=[*cmds[:after], bad, *cmds[after + 1 :]])
    host = await Host.start(dut, cfg, idle=idle, stall=stall, regions=prog.regions)
    inj = SlverrInjector(host.ram)

    async def between(i, _c):
        if i != after:
            return
        inj.arm_read()  # only the prefetcher reads now
        for _ in range(20_000):  # until the burst's last R beat is handed over
            await RisingEdge(dut.clk)
            await ReadOnly()
            names = ("rvalid", "rready", "rlast", "rresp")
            if all(int(getattr(dut, f"m_axi__{n}").value) for n in names):  # the error's last
                break
        else:
            raise AssertionError("the prefetcher read nothing between the commands")
        await RisingEdge(dut.clk)  # the handshake; the command comes after it

    result = await host.run(prog, before=between)
    assert inj.injected == {"read": 1, "write": 0}, f"SLVERR injected {inj.injected}"
    check(dut, prog, *result)
