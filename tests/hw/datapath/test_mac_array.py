"""MacArray on the Amaranth simulator, bit-exact against golden.fparith.mac_array: blocks of
every data kind (1..mac_rows rows, one row too many, partial final beats) crossed with the
stall patterns of ``sim.kit.streams.TIMINGS`` at several shapes; the exact cycle formula without
stalls; special values and a block smaller than the previous one."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.bf16 import to_bf16_bits
from hw.config import preset
from hw.datapath import MacArray, block_cycles, mac_latency
from sim.cases.datapath import (
    ARRAY_SPECIAL_SCORES,
    ArrayBlock,
    array_beats,
    array_blocks,
    array_expected,
    array_score_beat,
    array_special_blocks,
    gqa_blocks,
    load_beats,
)
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # 4 x 4, head_dim 16: 4 beats per vector
CONFIGS = {
    "tiny": TINY,
    "rows3_cols8": TINY.replace(mac_rows=3, mac_cols=8),
    "rows3_in_register": TINY.replace(mac_rows=3, mac_in_register=1),  # latency + 1
    "rows2_cols1": TINY.replace(mac_rows=2, mac_cols=1),
    "rows1_cols32": TINY.replace(mac_rows=1, mac_cols=32),  # one beat, 16 lanes of padding
}


def simulate(cfg, blocks, *, timing: str, seed: int, vcd, banks: int = 1):
    dut = MacArray(cfg, banks=banks)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    qbeats, kbeats = [], []
    for b in blocks:
        q, k = array_beats(cfg, b)
        qbeats += q
        kbeats += k
    out: dict = {}

    async def queries(ctx):
        rng = np.random.default_rng([seed, 1])
        out["q_t"] = await stream_put(ctx, dut.queries, qbeats, cycle=h.cycle, rng=rng, idle=idle)

    async def keys(ctx):
        rng = np.random.default_rng([seed, 2])
        out["k_t"] = await stream_put(ctx, dut.keys, kbeats, cycle=h.cycle, rng=rng, idle=idle)

    async def sink(ctx):
        count = sum(len(b.keys) for b in blocks)
        rng = np.random.default_rng([seed, 3])
        got = await stream_get(ctx, dut.scores, cycle=h.cycle, count=count, rng=rng, stall=stall)
        out["got"] = [(array_score_beat(p), t) for p, t in got]
        await assert_idle(ctx, dut.scores, 3 * dut.latency + 5)

    run(h, [queries, keys, sink], vcd=vcd, traces=[dut.queries.valid, dut.keys.valid])
    return dut, qbeats, kbeats, out


def expected(cfg, blocks):
    return [e for b in blocks for e in array_expected(cfg, b)]


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_blocks_bit_exact(name, timing, tmp_path):
    cfg = CONFIGS[name]
    blocks = array_blocks(cfg, 12, seed=len(name) * 31 + len(timing))
    _, _, _, out = simulate(cfg, blocks, timing=timing, seed=3, vcd=tmp_path / "array.vcd")
    want = expected(cfg, blocks)
    got = [g for g, _ in out["got"]]
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, bad[:3]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_cycles_without_stalls(name, tmp_path):
    cfg = CONFIGS[name]
    blocks = array_blocks(cfg, 6, seed=5)
    dut, qbeats, kbeats, out = simulate(cfg, blocks, timing="none", seed=4, vcd=None)
    assert dut.latency == mac_latency(cfg.replace(mac_lanes=cfg.mac_cols))
    q_t, k_t = out["q_t"], out["k_t"]
    # Each block: its query beats, then its K beats, back to back, no bubble anywhere.
    start, qi, ki, last_t = q_t[0], 0, 0, []
    assert any(b.columns for b in blocks) and not all(b.columns for b in blocks)
    for b in blocks:
        m = -(-b.queries.shape[1] // cfg.mac_cols)
        nq, nk = load_beats(cfg, b), len(b.keys) * m
        assert q_t[qi : qi + nq] == list(range(start, start + nq))
        assert k_t[ki : ki + nk] == list(range(start + nq, start + nq + nk))
        last_t += k_t[ki + m - 1 : ki + nk : m]
        if not b.columns:
            assert nq + nk == block_cycles(len(b.queries), len(b.keys), m)
        start += nq + nk
        qi, ki = qi + nq, ki + nk
    assert (qi, ki) == (len(qbeats), len(kbeats))
    assert [t for _, t in out["got"]] == [t + dut.latency for t in last_t]
    assert [g for g, _ in out["got"]] == expected(cfg, blocks)


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", ["tiny", "rows3_cols8"])
def test_two_banks_bit_exact(name, timing):
    """``banks = 2``: blocks load into one bank while the other streams, bit-exact under
    every stall profile (row and transposed blocks, one row too many, partial beats)."""
    cfg = CONFIGS[name]
    blocks = array_blocks(cfg, 12, seed=len(name) * 17 + len(timing))
    _, _, _, out = simulate(cfg, blocks, timing=timing, seed=5, vcd=None, banks=2)
    assert [g for g, _ in out["got"]] == expected(cfg, blocks)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_banks_overlap_exactly(name):
    """Without stalls, block ``i`` loads from ``max(load_end[i-1], keys_end[i-2]) + 1`` (a
    free bank) and streams its K vectors from ``max(load_end[i], keys_end[i-1]) + 1``, one
    beat per cycle; the scores follow ``latency`` cycles after each K vector."""
    cfg = CONFIGS[name]
    blocks = array_blocks(cfg, 6, seed=6)
    dut, qbeats, kbeats, out = simulate(cfg, blocks, timing="none", seed=4, vcd=None, banks=2)
    q_t, k_t = out["q_t"], out["k_t"]
    qi = ki = 0
    q_end, k_end, last_t = [q_t[0] - 1], [q_t[0] - 1], []
    for i, b in enumerate(blocks):
        m = -(-b.queries.shape[1] // cfg.mac_cols)
        nq, nk = load_beats(cfg, b), len(b.keys) * m
        qs = max(q_end[-1], k_end[-2] if i >= 1 else q_t[0] - 1) + 1
        assert q_t[qi : qi + nq] == list(range(qs, qs + nq)), i
        ks = max(qs + nq - 1, k_end[-1]) + 1
        assert k_t[ki : ki + nk] == list(range(ks, ks + nk)), i
        last_t += k_t[ki + m - 1 : ki + nk : m]
        q_end.append(qs + nq - 1)
        k_end.append(ks + nk - 1)
        qi, ki = qi + nq, ki + nk
    assert (qi, ki) == (len(qbeats), len(kbeats))
    assert [t for _, t in out["got"]] == [t + dut.latency for t in last_t]
    assert [g for g, _ in out["got"]] == expected(cfg, blocks)


def test_special_values_and_a_smaller_block():
    """Overflow, NaN, flushing, -0 sums; then a one-row block (``array_special_blocks``)."""
    blocks = array_special_blocks()
    _, _, _, out = simulate(TINY, blocks, timing="random", seed=9, vcd=None)
    got = [g for g, _ in out["got"]]
    assert got == ARRAY_SPECIAL_SCORES
    assert got == expected(TINY, blocks)


@pytest.mark.parametrize("source", ["gaussian", "trace"])
def test_prefill_and_grouped_gemv_blocks(source, tmp_path, random_trace):
    """A prefill block (tokens x the group's query heads) and a decode block (the group's
    heads) against K vectors of their KV head, from a saved trace or Gaussian vectors."""
    from workloads.trace import save

    path = None
    if source == "trace":
        trace = random_trace(
            seed=2, layers=1, head_dim=16, frame_offsets=[0, 8, 16], decode_after=[1]
        )
        path = save(trace, tmp_path / "t.npz")
    blocks = gqa_blocks(TINY, path, seed=3)
    assert [len(b.queries) for b in blocks] == [TINY.mac_rows, 2]  # 2 query heads per KV
    _, _, _, out = simulate(TINY, blocks, timing="random", seed=6, vcd=None)
    assert [g for g, _ in out["got"]] == expected(TINY, blocks)


def test_vectors_longer_than_the_array_keep_the_framing():
    """Vectors of more than ``mac_chunks`` beats are outside the contract: their scores are
    unspecified, but every K vector still yields one beat with the right ``end`` and the
    next block is exact."""
    cfg = TINY
    rng = np.random.default_rng(8)
    n = (cfg.mac_chunks + 2) * cfg.mac_cols
    bad = ArrayBlock(
        queries=rng.integers(0, 0x7F00, (2, n)).astype(np.uint16),
        keys=rng.integers(0, 0x7F00, (3, n)).astype(np.uint16),
    )
    good = array_blocks(cfg, 2, seed=3)
    _, _, _, out = simulate(cfg, [bad, *good], timing="random", seed=7, vcd=None)
    got = [g for g, _ in out["got"]]
    assert [e for _, e in got[:3]] == [0, 0, 1]
    assert got[3:] == expected(cfg, good)


def test_elaborates_without_warnings():
    Fragment.get(MacArray(TINY), None)


def test_rejects_a_bad_bank_count():
    with pytest.raises(ValueError, match=r"^banks must be 1 or 2, not 0$"):
        MacArray(TINY, banks=0)


def test_rejects_a_bad_config():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 4$"):
        MacArray(4)


def test_a_transposed_v_tile_gives_the_tiled_orders_p_times_v():
    """A V tile loaded transposed (one ``columns`` vector per token), then P's rows as the
    keys: each score beat is a row of ``P x V`` exactly as ``golden.softmax``'s tiled order
    computes it (``dot(pb, values[tile, i], mac_cols)``), a partial tile included."""
    from golden.fparith import dot

    cfg = TINY  # 4 x 4, 4 chunks: tiles of up to 16 tokens, head_dim 4 (one row group)
    rng = np.random.default_rng(11)
    blocks, want = [], []
    for tokens in (16, 5, 4):
        v = to_bf16_bits(rng.standard_normal((tokens, cfg.mac_rows)).astype(np.float32))
        p = to_bf16_bits(rng.random((3, tokens)).astype(np.float32))
        blocks.append(ArrayBlock(queries=np.ascontiguousarray(v.T), keys=p, columns=True))
        shape = (3, cfg.mac_rows, tokens)
        pv = dot(np.broadcast_to(p[:, None], shape), np.broadcast_to(v.T, shape), cfg.mac_cols)
        want += [(tuple(int(x) for x in row), int(i == 2)) for i, row in enumerate(pv)]
    _, qbeats, _, out = simulate(cfg, blocks, timing="random", seed=12, vcd=None)
    assert len(qbeats) == 16 + 5 + 4  # one beat per token: head_dim 4 is one group of rows
    assert [g for g, _ in out["got"]] == want


def test_a_transposed_block_clears_stale_elements_and_counts_its_rows():
    """After a row block of -1s, a transposed block of one token: its rows' other elements
    must read +0, not the stale -1s (which would turn the +0 sum of ``-1 * +0`` and
    ``+0 * +0`` products into -0); a transposed block covering 4 of 8 rows reports rows 4..7
    as +0 (unmasked, their cleared elements against a key of -1s would give -0)."""
    cfg = TINY.replace(mac_rows=8)  # 8 rows of 4 columns: two groups of rows
    neg, one, zero = 0xBF80, 0x3F80, 0x0000
    blocks = [
        ArrayBlock(queries=np.full((8, 16), neg, np.uint16), keys=np.full((1, 16), one, np.uint16)),
        ArrayBlock(
            queries=np.full((4, 1), neg, np.uint16),
            keys=np.full((1, 1), zero, np.uint16),
            columns=True,
        ),
        ArrayBlock(
            queries=np.full((4, 4), one, np.uint16),
            keys=np.full((1, 4), neg, np.uint16),
            columns=True,
        ),
    ]
    _, _, _, out = simulate(cfg, blocks, timing="none", seed=1, vcd=None)
    got = [g for g, _ in out["got"]]
    assert got == expected(cfg, blocks)
    assert got[1][0] == (0,) * 8  # +0 everywhere, not -0
    assert got[2][0][4:] == (0,) * 4 and got[2][0][0] == 0xC080_0000  # -4.0, then masked +0
