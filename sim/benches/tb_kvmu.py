"""cocotb regression of the generated KVMemoryUnit Verilog (``hw.gen`` top ``kvmu``) against
cocotbext-axi's ``AxiRamRead``, a real AXI4 read-slave model with random AR/R stalls.

Driver (``assign``) → monitor (``slot``) → golden ``golden.kvmu.KVMemory`` → scoreboard;
then driver (``selected``) → AR monitor and ``kv`` monitor → scoreboards. The RAM holds a
known image (``sim.cases.kvmu.memory_image``: each beat names its token and beat), so every
selected token must come back exactly once, in full, and nothing else. Configuration from
``config_from_env`` (the run's whole ``HWConfig``, e.g. the ``chunk_tokens``/``kv_chunks``
of ``run_unit(overrides=...)``); seed from ``SEED``; a recorded trace from ``TRACE``
(otherwise video-like synthetic keys); ``KVMU_REPORT=path.json`` makes
``kvmu_bus_utilisation`` write its figures and ``KVMU_AR_GAP=N`` lets the RAM accept at most
one AR every N cycles there.
Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus

from golden.kvmu import AXI_BOUNDARY, bus_figures, split_run, token_gather
from hw.config import HWConfig
from hw.kvmu import kvmu_layouts
from sim.cases.dre import env_workload
from sim.cases.kvmu import (
    KVWorkload,
    decode_beat,
    memory_image,
    selection,
    workload,
    workload_from_sigs,
)
from sim.coverage import collector
from sim.kit.cocotb_streams import (
    Scoreboard,
    SlverrInjector,
    StreamSink,
    StreamSource,
    config_from_env,
    cycle,
    make_rng,
    random_pauses,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)


def kvmu_config() -> HWConfig:
    """The run's ``HWConfig`` (``config_from_env``)."""
    return config_from_env()


#: The KVMU's inputs driven low during reset.
KVMU_IDLE = (
    "assign__valid",
    "selected__valid",
    "slot__ready",
    "kv__ready",
    "summary__ready",
    "clear",
)


def attach_ram(dut, cfg: HWConfig, *, stall: float, rng) -> AxiRamRead:
    # Amaranth joins nested port names with "__": cocotbext-axi binds them through cocotb-bus
    # with bus_separator="__" (the default "_" would look for m_axi_araddr).
    bus = AxiReadBus.from_prefix(dut, "m_axi", bus_separator="__")
    ram = AxiRamRead(bus, dut.clk, dut.rst, size=1 << 20)
    if stall > 0:
        ram.ar_channel.set_pause_generator(random_pauses(rng, stall))
        ram.r_channel.set_pause_generator(random_pauses(rng, stall))
    return ram


class ARMonitor:
    """Records every AR handshake ``(addr, beats)`` and its cycle."""

    def __init__(self, dut):
        self.dut, self.bursts, self.times = dut, [], []
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            if int(d.m_axi__arvalid.value) and int(d.m_axi__arready.value):
                self.bursts.append((int(d.m_axi__araddr.value), int(d.m_axi__arlen.value) + 1))
                self.times.append(cycle())


def burst_bins(wl: KVWorkload, sel: list[int]) -> list[tuple[str, str]]:
    """``kvmu.bursts`` bins of a selection: per chunk run, one burst or a cut at
    ``max_burst`` beats / at a 4 KB boundary (``golden.kvmu.split_run``)."""
    L, out = wl.layout, []
    for cl in sel:
        for c, used in wl.mem.chunks(int(cl)):
            bursts = split_run(L, L.slot_addr(c, 0), used * L.beats_per_token, int(cl))
            if len(bursts) == 1:
                out.append(("kvmu.bursts", "whole_run"))
            for b in bursts[:-1]:
                if b.beats == L.max_burst:
                    out.append(("kvmu.bursts", "split_max_burst"))
                if (b.addr + b.beats * L.bus_bytes) % AXI_BOUNDARY == 0:
                    out.append(("kvmu.bursts", "split_4k"))
    return out


async def allocate(dut, wl: KVWorkload, *, idle: float, stall: float, rng) -> None:
    lay = kvmu_layouts(wl.cfg)
    board = Scoreboard("slot", dut._log)
    for s in wl.slots:
        board.expect((s.token_id, s.chunk, s.slot, s.addr, int(s.full)))
    sink = StreamSink(
        dut,
        "slot",
        lay.slot,
        rng=rng,
        stall=stall,
        callback=lambda b, _: board.check((b.token_id, b.chunk, b.slot, b.addr, b.full)),
    )
    sink.start()
    await StreamSource(dut, "assign", lay.assign, rng=rng, idle=idle).send(wl.assigns)
    await sink.wait_for(len(wl.assigns), timeout_cycles=20 * len(wl.assigns) + 200)
    sink.stop()
    board.assert_done()


async def fetch(
    dut, wl: KVWorkload, sel: list[int], *, idle: float, stall: float, rng, error: int = 0
) -> dict:
    """Select ``sel``; check the bursts, every beat and the summary (``error`` expected
    when the RAM answers SLVERR on one of its bursts); return the figures."""
    cfg, L = wl.cfg, wl.layout
    lay = kvmu_layouts(cfg)
    exp_bursts = wl.mem.bursts(sel)
    ar = ARMonitor(dut)
    beats = Scoreboard("kv", dut._log)
    for cl in sel:
        for t in wl.mem.members(cl):
            for j in range(L.beats_per_token):
                beats.expect((t, j, cl))
    seen: Counter = Counter()

    def on_beat(b, _):
        tb = decode_beat(int(b.data), L.bus_bytes)
        seen[tb] += 1
        beats.check((*tb, int(b.cluster)) if tb is not None else ("garbage", int(b.data)))

    kv = StreamSink(dut, "kv", lay.kv, rng=rng, stall=stall, callback=on_beat)
    summary = StreamSink(dut, "summary", lay.summary, rng=rng, stall=stall)
    kv.start()
    summary.start()
    src = StreamSource(dut, "selected", lay.selected, rng=rng, idle=idle)
    t0 = cycle()
    await src.send([{"cluster": c, "last": int(i == len(sel) - 1)} for i, c in enumerate(sel)])
    n_beats = sum(b.beats for b in exp_bursts)
    await summary.wait_for(1, timeout_cycles=40 * n_beats + 20 * len(sel) + 500)
    kv.stop()
    summary.stop()
    beats.assert_done()
    assert ar.bursts == [(b.addr, b.beats) for b in exp_bursts], "AR bursts differ from golden"
    cov = collector()
    for group, name in burst_bins(wl, sel):
        cov.hit(group, name)
    cov.hit("kvmu.summary", "error" if error else "ok")
    # Every selected token exactly once, in full; no other token.
    want = {t for cl in sel for t in wl.mem.members(cl)}
    got_tokens = Counter(t for (t, _), n in seen.items() for _ in range(n))
    assert set(got_tokens) == want and all(n == L.beats_per_token for n in got_tokens.values())
    ((s, t_sum),) = summary.beats
    assert (int(s.clusters), int(s.bursts), int(s.beats), int(s.error)) == (
        len(sel),
        len(exp_bursts),
        n_beats,
        error,
    )
    first_ar = ar.times[0] if ar.times else t_sum
    last_beat = kv.beats[-1][1] if kv.beats else t_sum
    return {
        "bursts": len(exp_bursts),
        "beats": n_beats,
        "bytes": n_beats * L.bus_bytes,
        "cycles_select_to_summary": t_sum - t0,
        "cycles_first_ar_to_last_beat": last_beat - first_ar + 1,
    }


async def run_case(
    dut, wl: KVWorkload, sel: list[int], *, idle, stall, mem_stall, tag, ram=None, error=0
):
    """Allocate, then fetch ``sel``; a test that runs several cases passes its one ``ram``
    (a second model on the same bus would answer too), whose image is rewritten."""
    rng = make_rng(seed_from_env(), tag)
    if ram is None:
        ram = attach_ram(dut, wl.cfg, stall=mem_stall, rng=rng)
    ram.write(wl.layout.base, memory_image(wl))
    await allocate(dut, wl, idle=idle, stall=stall, rng=rng)
    return await fetch(dut, wl, sel, idle=idle, stall=stall, rng=rng, error=error)


@cocotb.test()
async def kvmu_smoke_bus_separator(dut):
    """cocotbext-axi binds Amaranth's ``m_axi__*`` ports with ``bus_separator="__"``; one
    cluster round-trips without stalls."""
    cfg = kvmu_config()
    await start_clock(dut, cfg)
    await reset(dut, idle=KVMU_IDLE)
    bus = AxiReadBus.from_prefix(dut, "m_axi", bus_separator="__")
    assert bus.ar.araddr._path == dut.m_axi__araddr._path
    assert bus.r.rdata._path == dut.m_axi__rdata._path
    wl = workload(cfg, 12, seed=seed_from_env())
    sel = [int(wl.assigns[0]["cluster"])]
    fig = await run_case(dut, wl, sel, idle=0.0, stall=0.0, mem_stall=0.0, tag=1)
    assert fig["beats"] > 0


@cocotb.test()
async def kvmu_random_stalls_two_contexts(dut):
    """Random idle/back-pressure on every stream and random AR/R pauses in the RAM; a
    ``clear`` between two contexts restarts allocation from chunk 0."""
    cfg = kvmu_config()
    idle, stall = timing_from_env()
    await start_clock(dut, cfg)
    await reset(dut, idle=KVMU_IDLE)
    ram = attach_ram(dut, cfg, stall=0.4, rng=make_rng(seed_from_env(), 9))
    wl = workload(cfg, 80, seed=seed_from_env() + 2)
    sel = selection(wl, seed=3)
    await run_case(dut, wl, sel, idle=idle, stall=stall, mem_stall=0.4, tag=2, ram=ram)
    await FallingEdge(dut.clk)
    dut.clear.value = 1
    await FallingEdge(dut.clk)
    dut.clear.value = 0
    wl2 = workload(cfg, 60, seed=seed_from_env() + 4, redundancy=0.3)
    assert wl2.slots[0].chunk == 0
    sel2 = selection(wl2, seed=5, fraction=0.8)
    await run_case(dut, wl2, sel2, idle=idle, stall=stall, mem_stall=0.4, tag=3, ram=ram)


@cocotb.test()
async def kvmu_read_slverr(dut):
    """SLVERR on every R beat of one read burst (``SlverrInjector``), random stalls: every
    beat still arrives and the selection's summary says ``error``; the same selection
    fetched again, with OKAY responses, says it no more."""
    cfg = kvmu_config()
    idle, stall = timing_from_env()
    await start_clock(dut, cfg)
    await reset(dut, idle=KVMU_IDLE)
    rng = make_rng(seed_from_env(), 10)
    ram = attach_ram(dut, cfg, stall=0.3, rng=rng)
    inj = SlverrInjector(ram)
    wl = workload(cfg, 60, seed=seed_from_env() + 10)
    sel = selection(wl, seed=11, fraction=0.5)
    assert wl.mem.bursts(sel), "the selection reads nothing"
    inj.arm_read()
    kw = {"idle": idle, "stall": stall}
    await run_case(dut, wl, sel, **kw, mem_stall=0.3, tag=10, ram=ram, error=1)
    assert inj.injected["read"] == 1
    await fetch(dut, wl, sel, **kw, rng=rng)


@cocotb.test()
async def kvmu_video_trace(dut):
    """Assignments from golden cluster_online on the TRACE file's signatures (workloads.trace →
    golden.resv.signatures), else on video-like synthetic keys; random stalls everywhere."""
    cfg = kvmu_config()
    idle, stall = timing_from_env()
    await start_clock(dut, cfg)
    await reset(dut, idle=KVMU_IDLE)
    stream, _ = env_workload(cfg, rows=0, seed=seed_from_env(), log=dut._log)
    clears = np.flatnonzero(stream.clear[1:])
    n = int(clears[0]) + 1 if clears.size else len(stream)
    wl = workload_from_sigs(cfg, stream.sigs[:n])
    sel = selection(wl, seed=seed_from_env() + 6, fraction=0.4)
    await run_case(dut, wl, sel, idle=idle, stall=stall, mem_stall=0.3, tag=4)


@cocotb.test()
async def kvmu_bus_utilisation(dut):
    """All-ready streams and RAM: the RTL figures of one selection (cycles per data beat),
    checked against the golden burst list; written to ``KVMU_REPORT`` when set."""
    cfg = kvmu_config()
    await start_clock(dut, cfg)
    await reset(dut, idle=KVMU_IDLE)
    wl = workload(cfg, 96, seed=seed_from_env() + 7)
    sel = selection(wl, seed=8, fraction=0.5)
    rng = make_rng(seed_from_env(), 5)
    ram = attach_ram(dut, cfg, stall=0.0, rng=rng)
    gap = int(os.environ.get("KVMU_AR_GAP", "0"))
    if gap > 1:
        # A command-rate-limited memory: at most one AR accepted every ``gap`` cycles.
        ram.ar_channel.set_pause_generator(itertools.cycle([False] + [True] * (gap - 1)))
    fig = await run_case(dut, wl, sel, idle=0.0, stall=0.0, mem_stall=0.0, tag=5, ram=ram)
    fig["ar_gap"] = gap
    gold = bus_figures(wl.mem.bursts(sel), wl.layout)
    gather = bus_figures(token_gather(wl.mem, sel), wl.layout)
    fig.update(
        chunk_tokens=cfg.chunk_tokens,
        bus_bytes=wl.layout.bus_bytes,
        max_burst=cfg.max_burst,
        tokens=len(wl.mem.tokens(sel)),
        bytes_per_burst=round(gold.bytes_per_burst, 1),
        utilisation=round(fig["beats"] / fig["cycles_first_ar_to_last_beat"], 4),
        golden_token_gather_bursts=gather.bursts,
    )
    assert fig["bursts"] == gold.bursts and fig["beats"] == gold.beats
    assert 0 < fig["utilisation"] <= 1
    dut._log.info("kvmu bus figures: %s", fig)
    if os.environ.get("KVMU_REPORT"):
        with open(os.environ["KVMU_REPORT"], "w") as f:
            json.dump(fig, f, indent=1)
