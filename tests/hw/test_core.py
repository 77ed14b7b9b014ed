"""VRexCore on the Amaranth simulator against golden.core.CoreModel: a synthetic host
program (several contexts, bad commands, table fill) with random idle cycles, back-pressure
and AXI stalls; every status, every output bit and every work counter is checked."""

from __future__ import annotations

import numpy as np
import pytest

from golden.core import WORK_COUNTERS
from hw.config import preset
from hw.core import PERF, Error, Op, VRexCore, check_core_config
from sim.cases.core import cmd_beat, synthetic_program
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMINGS, Harness, run, stream_get, stream_put

TINY = preset("tiny")


def simulate(cfg, prog, *, timing: str, seed: int, vcd=None, **ram_options):
    dut = VRexCore(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    lanes = cfg.mac_lanes
    mem = bytearray(cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes)
    ram = AxiRamModel(
        dut.m_axi,
        mem,
        base=cfg.kv_base,
        bus_bytes=cfg.axi_data_bits // 8,
        seed=seed,
        stall=stall,
        **ram_options,
    )
    # bursts: the AR and AW bursts accepted by the RAM when each status arrived
    out: dict = {"status": [], "outputs": [], "perf": [], "cycles": [], "bursts": []}
    vin_layout = dut.vin.payload.shape()

    async def host(ctx):
        rng = np.random.default_rng([seed, 1])
        for i, c in enumerate(prog.commands):
            start = ctx.get(h.cycle)
            await stream_put(ctx, dut.cmd, [cmd_beat(c)], cycle=h.cycle, rng=rng, idle=idle)
            beats = [vin_layout.from_bits(w) for w in c.vin_words(lanes)]
            if beats:
                await stream_put(ctx, dut.vin, beats, cycle=h.cycle, rng=rng, idle=idle)
            if n := c.out_beats(lanes):
                got = await stream_get(ctx, dut.out, cycle=h.cycle, count=n, rng=rng, stall=stall)
                vec = [int(p.o[i].as_value().value) for p, _ in got for i in range(lanes)]
                out["outputs"].append((i, np.array(vec, np.uint32), [int(p.last) for p, _ in got]))
            ((st, t),) = await stream_get(
                ctx, dut.status, cycle=h.cycle, count=1, rng=rng, stall=stall
            )
            out["status"].append((i, int(st.op), int(st.error)))
            out["bursts"].append((len(ram.ar_log), len(ram.aw_log)))
            out["cycles"].append(t - start)
            if i in prog.context_end:
                perf = {}
                for k, name in enumerate(PERF):
                    ctx.set(dut.perf_addr, k)
                    perf[name] = ctx.get(dut.perf_data)
                out["perf"].append(perf)

    run(h, [host], background=ram.benches(), vcd=vcd)
    return out


def check(prog, out, errors=None):
    """Statuses (``errors``: command index → expected error, overriding the program's),
    outputs bit for bit, work counters."""
    assert len(out["status"]) == len(prog.commands)
    for (i, op, err), c in zip(out["status"], prog.commands, strict=True):
        want = (errors or {}).get(i, int(c.error))
        assert (op, err) == (int(c.op) & 7, want), f"command {i} ({c.kind})"
    expected = [(i, c) for i, c in enumerate(prog.commands) if c.out is not None]
    assert len(out["outputs"]) == len(expected) > 0
    for (i, vec, lasts), (j, c) in zip(out["outputs"], expected, strict=True):
        assert i == j
        assert lasts[-1] == 1 and not any(lasts[:-1])
        bad = np.flatnonzero(vec != c.out)
        assert bad.size == 0, f"command {i}: {bad.size} elements differ, first {bad[0]}"
    for perf, ctx in zip(out["perf"], prog.contexts, strict=True):
        assert {n: perf[n] for n in WORK_COUNTERS} == ctx.counters


@pytest.mark.slow
@pytest.mark.parametrize("timing", ["none", "random"])
def test_core_prefill(timing, tmp_path):
    """The whole host program: frames ingested, each then one PREFILL of its tokens x 2
    heads (16 rows, one selection, the tiled attention engine over the kept and the fetched
    tokens: the causal mask inside the ring, partial tiles, the padding token), grouped
    decode (one PREFILL of both heads at one position), bad commands and bad PREFILLs; two
    contexts with random timing, one without (its cycles checked below). Single-row
    ``QUERY`` decode runs in the tests after this one."""
    contexts = 2 if timing == "random" else 1
    prog = synthetic_program(
        TINY,
        frames=3,
        tokens_per_frame=8,
        contexts=contexts,
        seed=4,
        prefill_group=2,
        grouped_decode=True,
    )
    prefills = [c for c in prog.commands if c.kind == "prefill"]
    assert len(prefills) == 3 * contexts and {c.rows for c in prefills} == {16}
    assert sum(c.info["fetched"] > 0 for c in prefills) >= contexts
    decode = [c for c in prog.commands if c.kind == "decode"]
    assert decode and all(c.op == Op.PREFILL and c.rows == c.group == 2 for c in decode)
    out = simulate(TINY, prog, timing=timing, seed=6, vcd=tmp_path / "core.vcd")
    check(prog, out)
    if timing == "none":
        # Pipelined ingest: a block whose tokens each age the oldest ring token costs little
        # more than the first block of a context, which ages none (2.2x when the aging ran
        # after the new token instead of beside it).
        for ctx in range(contexts):
            blocks = [
                cy
                for c, cy in zip(prog.commands, out["cycles"], strict=True)
                if c.kind == "frame" and c.context == ctx
            ]
            assert max(blocks[1:]) < 1.5 * blocks[0], blocks


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [{"tile_tokens": 1}, {"tile_tokens": 16}, {"frame_rows": 1}],
    ids=["tile1", "tile16", "rows1"],
)
def test_core_prefill_tiles_and_one_row(changes, tmp_path):
    """Tiles of 1 and of 16 tokens (every token its own tile; one tile for the whole
    attention order) with a 2-head group; and frame_rows = 1: one PREFILL per (token,
    head)."""
    cfg = TINY.replace(**changes)
    prog = synthetic_program(cfg, frames=2, tokens_per_frame=6, contexts=1, seed=8, prefill_group=2)
    if "frame_rows" in changes:
        assert {c.rows for c in prog.commands if c.kind == "prefill"} == {1}
    check(prog, simulate(cfg, prog, timing="random", seed=9, vcd=tmp_path / "core.vcd"))


@pytest.mark.slow
def test_core_paper_shape(tmp_path):
    """The paper preset's shape at tiny sizes: a vector is 2 beats (16 values in 8 lanes, as
    128 in 64) and a memory row spans 2 AXI beats (a 128-bit row over the 64-bit bus, as a
    1024-bit row over 256 bits); RoPE at 2 steps per vector. One context (the switch between
    contexts runs in the tiny-shaped tests)."""
    cfg = TINY.replace(mac_lanes=8, rope_pairs=4)
    assert cfg.resv.head_dim // cfg.mac_lanes == 2 and 16 * cfg.mac_lanes == 2 * cfg.axi_data_bits
    prog = synthetic_program(
        cfg, frames=2, tokens_per_frame=6, contexts=1, seed=12, prefill_group=2, grouped_decode=True
    )
    assert any(c.kind == "prefill" and c.info["fetched"] > 0 for c in prog.commands)
    check(prog, simulate(cfg, prog, timing="random", seed=13, vcd=tmp_path / "core.vcd"))


def test_core_post_rope_hash(tmp_path):
    """``hash_space="post_rope"``: the hasher takes the rotated key after RoPE (pre-RoPE
    keys are hashed while RoPE runs)."""
    cfg = TINY.replace(resv={"hash_space": "post_rope"})
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, seed=4)
    out = simulate(cfg, prog, timing="random", seed=8, vcd=tmp_path / "core.vcd")
    check(prog, out)


def test_core_table_full_and_forced_joins(tmp_path):
    """More clusters than the table holds: forced joins, then every cluster scored."""
    cfg = TINY.replace(resv={"max_clusters": 4, "threshold": 1})
    prog = synthetic_program(
        cfg, frames=3, tokens_per_frame=8, contexts=1, seed=9, bad_commands=False
    )
    assert prog.contexts[0].counters["clusters_forced"] > 0
    out = simulate(cfg, prog, timing="random", seed=2, vcd=tmp_path / "core.vcd")
    check(prog, out)


def test_core_context_full(tmp_path):
    """Tokens past 2**token_id_bits in a context are consumed, dropped and reported FULL;
    queries keep working on the tokens held."""
    cfg = TINY.replace(token_id_bits=4)
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, bad_commands=False)
    assert [c.info["dropped"] for c in prog.commands if c.kind == "frame"] == [0, 0, 8]
    out = simulate(cfg, prog, timing="random", seed=6, vcd=tmp_path / "core.vcd")
    check(prog, out)


def test_core_pool_exhausted_is_full(tmp_path):
    """An exhausted KV chunk pool is an error: the INGEST that loses an aged token's K/V
    answers FULL (and ``kv_dropped`` counts it), bit-exact with the model; earlier frames
    answer OK and queries keep working on what was stored."""
    cfg = TINY.replace(kv_chunks=2)
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, bad_commands=False)
    frames = [c for c in prog.commands if c.kind == "frame"]
    lost = [c.info["kv_lost"] for c in frames]
    assert lost[0] == 0 and sum(lost) > 0
    assert [int(c.error) for c in frames] == [int(Error.FULL if n else Error.OK) for n in lost]
    assert prog.contexts[0].counters["kv_dropped"] == sum(lost)
    out = simulate(cfg, prog, timing="random", seed=7, vcd=tmp_path / "core.vcd")
    check(prog, out)


def test_core_bus_errors(tmp_path):
    """A SLVERR on one write burst (posted: reported when the INGEST drains its writes) and
    on one read burst (a QUERY's retrieval) makes exactly the command that issued the burst
    answer BUS; the data still moved, so every output and counter stays bit-exact."""
    prog = synthetic_program(TINY, frames=3, tokens_per_frame=8, contexts=1, bad_commands=False)
    out = simulate(TINY, prog, timing="random", seed=3, vcd=tmp_path / "core.vcd")
    check(prog, out)
    ar_total, aw_total = out["bursts"][-1]
    assert ar_total >= 2 and aw_total >= 4
    bad_read, bad_write = ar_total // 2, aw_total // 2

    def issuer(kind, burst):  # the command during which burst number ``burst`` was accepted
        return next(i for i, b in enumerate(out["bursts"]) if b[kind] > burst)

    errors = {issuer(0, bad_read): int(Error.BUS), issuer(1, bad_write): int(Error.BUS)}
    assert {prog.commands[i].kind for i in errors} == {"frame", "decode"}
    faulty = simulate(
        TINY,
        prog,
        timing="random",
        seed=3,
        vcd=tmp_path / "core_err.vcd",
        slverr_reads=frozenset({bad_read}),
        slverr_writes=frozenset({bad_write}),
    )
    check(prog, faulty, errors)


def test_core_all_selected(tmp_path):
    """Coverage 1: every cluster with mass is selected, so every clustered token that was
    stored comes back over AXI."""
    cfg = TINY.replace(resv={"coverage": 1.0})
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, bad_commands=False)
    last = [c for c in prog.commands if c.out is not None][-1]
    kept = cfg.resv.sink_tokens + cfg.resv.recent_tokens
    assert last.info["tokens"] > kept
    assert last.info["fetched"] == last.info["tokens"] - kept  # every aged token
    assert last.info["attended"] == last.info["tokens"]
    out = simulate(cfg, prog, timing="random", seed=4, vcd=tmp_path / "core.vcd")
    check(prog, out)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mac_lanes": 32}, r"head_dim \(16\) must be a multiple of mac_lanes \(32\)"),
        ({"axi_data_bits": 128}, r"axi_data_bits \(128\) must divide 16 \* mac_lanes \(64\)"),
        ({"resv": {"recent_tokens": 0}}, r"recent_tokens must be at least 1 for the core, not 0"),
        (
            {"tile_tokens": 32, "mac_cols": 32},
            r"tile_tokens \(32\) must be at most head_dim \(16\) for the core",
        ),
    ],
)
def test_core_config_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        check_core_config(TINY.replace(**changes))
    with pytest.raises(ValueError, match=message):
        VRexCore(TINY.replace(**changes))
