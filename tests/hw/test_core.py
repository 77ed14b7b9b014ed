"""VRexCore on the Amaranth simulator against golden.core.CoreModel: a synthetic host
program (several contexts, bad commands, table fill) with random idle cycles, back-pressure
and AXI stalls; every status, every output bit and every work counter is checked."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from golden.fparith import fp32_to_bf16
from hw.config import preset
from hw.core import Error, Op, VRexCore, check_core_config
from hw.core.contexts import KEPT, context_regions, context_stride, resident_regions
from hw.core.mover import ContextMover
from sim.cases.core import synthetic_program
from sim.kit.core_sim import bus_errors, check, simulate

TINY = preset("tiny")


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
        # Pipelined ingest: a block whose 8 tokens each age the oldest ring token costs the
        # first block of a context (which ages none) plus less than the aged tokens' bus
        # beats (their K/V write, their key sum's read and its FP32 and BF16 write-back:
        # 3.5 tokens' beats each), since the aging runs beside the new tokens.
        bpt = TINY.axi_beats_per_token
        for ctx in range(contexts):
            blocks = [
                cy
                for c, cy in zip(prog.commands, out["cycles"], strict=True)
                if c.kind == "frame" and c.context == ctx
            ]
            assert max(blocks[1:]) < blocks[0] + 8 * 3.5 * bpt, blocks


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


def test_core_bus_error_wins_over_full():
    """An INGEST that loses K/V to the exhausted pool (FULL) and gets a SLVERR on its first
    write burst, before the loss, answers BUS: a later FULL does not replace it."""
    cfg = TINY.replace(kv_chunks=2)
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, bad_commands=False)
    out = simulate(cfg, prog, timing="none", seed=1)
    check(prog, out)
    full = next(i for i, c in enumerate(prog.commands) if c.error == Error.FULL)
    assert prog.commands[full].kind == "frame"
    first_write = out["bursts"][full - 1][1]  # the bursts accepted before this INGEST
    assert out["bursts"][full][1] > first_write
    faulty = simulate(cfg, prog, timing="none", seed=1, slverr_writes=frozenset({first_write}))
    check(prog, faulty, {full: int(Error.BUS)})


@pytest.mark.parametrize(
    "changes",
    [
        {"hcu_batch": 4},
        {"hcu_batch": 2, "token_id_bits": 4},
        {"hcu_batch": 8, "resv": {"max_clusters": 4, "threshold": 1}},
    ],
    ids=["batch4", "batch2_context_full", "batch8_forced"],
)
def test_core_hcu_batches(changes, tmp_path):
    """The aging in HCU batches (``hcu_batch`` > 1): an INGEST's aged tokens go through the
    HCU's table search together, up to ``hcu_batch`` at a time (fewer at the end of the
    INGEST, and none past the context's capacity); the results are the golden model's,
    which ages one token at a time."""
    cfg = TINY.replace(**changes)
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=2, seed=5)
    if "token_id_bits" in changes:
        assert sum(c.info["dropped"] for c in prog.commands if c.kind == "frame") > 0
    if "resv" in changes:
        assert prog.contexts[0].counters["clusters_forced"] > 0
    check(prog, simulate(cfg, prog, timing="random", seed=10, vcd=tmp_path / "core.vcd"))


#: Every command's cycles (no stalls, no prefetch buffer) of ``test_core_aging_cycles``'s
#: program at ``hcu_batch`` 1 and 4, on the core whose key sums live in DRAM. The first
#: command, ``RESET_CTX``, takes 3 cycles (the KVMU empties its pool, no table sweep); the
#: ``SET_BIAS`` after it waits for the hasher's planes, loaded once after reset.
CYCLES = {
    1: [3, 5, 5, 1, 1, 52, 187, 175, 307, 245, 371, 259, 341, 5, 1, 5, 5, 69, 5, 9, 1],
    4: [3, 5, 5, 1, 1, 52, 187, 175, 310, 245, 374, 259, 341, 5, 1, 5, 5, 69, 5, 9, 1],
}


@pytest.mark.parametrize("batch", [1, 4])
def test_core_aging_cycles(batch):
    """Every command's exact cycles, pinned: a change of any command's timing shows here.
    The aging runs ahead of the new tokens (the HCU searches for the next tokens to age
    while one is aged, in batches of ``hcu_batch``), but at ``tiny`` (16 clusters, a
    4-row table) the aging proper bounds an ``INGEST`` that ages tokens: each aged token's
    K/V write, its key sum's read and write-back, 28 bus beats. So batches of 4 gain
    nothing here (310 and 374 cycles against 307 and 371); ``sim.bench_ingest`` measures
    them at a paper-sized table, where the HCU's search bounds the aging."""
    cfg = TINY.replace(hcu_batch=batch, prefetch_rows=0)
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, seed=5)
    out = simulate(cfg, prog, timing="none", seed=1)
    check(prog, out)
    assert out["cycles"] == CYCLES[batch]


def test_core_waits_for_its_key_sum_writes():
    """The RAM takes a write's data only with its B response, and every B comes 40 cycles
    late; with the Hamming threshold at the signature's width every aged token joins the
    first cluster. An aged token that read the key sum before the previous token's write of
    it was answered would read the old sum. The aging waits for those writes: every output
    and counter is bit-exact, and DRAM holds the golden model's key sums and their BF16
    representative keys where ``hw.core.contexts`` says (without the wait the sums differ)."""
    cfg = TINY.replace(resv={"threshold": TINY.resv.hash_bits})
    prog = synthetic_program(cfg, frames=3, tokens_per_frame=8, contexts=1, seed=5)
    assert prog.contexts[0].counters["clusters_joined"] >= 10
    out = simulate(cfg, prog, timing="none", seed=1, b_latency=40)
    check(prog, out)
    keysum = prog.contexts[0].keysum
    sums, reps = resident_regions(cfg)
    for region, want in ((sums, keysum), (reps, fp32_to_bf16(keysum))):
        off = region.offset  # context 0's region is at kv_base
        got = np.frombuffer(out["mem"][off : off + want.nbytes], want.dtype)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=region.name)


def test_core_prefetch_cycles():
    """The prefetch buffer: a selection's reads start once the WTU selects, and their rows
    wait in the buffer while the engine takes the query rows and the kept tokens; the
    engine then takes a row per cycle where the bus delivers one per 2 cycles (a 32-bit
    bus). Every command that fetches is faster than without the buffer, bit-exact, every
    other command takes the same cycles, and ``prefetched_rows`` counts the early rows."""
    base = TINY.replace(axi_data_bits=32)
    prog = synthetic_program(base, frames=3, tokens_per_frame=8, contexts=1, seed=5)
    runs = {}
    for rows in (0, 16):
        runs[rows] = simulate(base.replace(prefetch_rows=rows), prog, timing="none", seed=1)
        check(prog, runs[rows])
    fetches = [i for i, c in enumerate(prog.commands) if c.info.get("fetched", 0) > 0]
    assert fetches
    for i, (now, before) in enumerate(zip(runs[16]["cycles"], runs[0]["cycles"], strict=True)):
        if i in fetches:
            assert now < before, (i, now, before)
        else:
            assert now == before, (i, prog.commands[i].kind)
    early = runs[16]["perf"][-1]["prefetched_rows"]
    assert 0 < early <= 16 * len(fetches)
    assert runs[0]["perf"][-1]["prefetched_rows"] == 0


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
            {"hcu_batch": 8, "resv": {"recent_tokens": 4}},
            r"hcu_batch \(8\) must be at most recent_tokens \(4\) for the core",
        ),
        (
            {"tile_tokens": 32, "mac_cols": 32},
            r"tile_tokens \(32\) must be at most head_dim \(16\) for the core",
        ),
        (
            {"contexts": 65536},
            r"contexts \(65536\) regions of 262144 bytes from kv_base \(0\) must fit "
            r"32-bit addresses \(axi_addr_bits\)",
        ),
    ],
)
def test_core_config_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        check_core_config(TINY.replace(**changes))
    with pytest.raises(ValueError, match=message):
        VRexCore(TINY.replace(**changes))


@pytest.mark.parametrize(
    ("timing", "prefetch"), [("none", True), ("random", True), ("none", False)]
)
def test_core_interleaved_contexts(timing, prefetch, tmp_path):
    """Contexts visited in turn, as a model does (every frame, each context: ``SWITCH_CTX``
    stores the active context's tables to its DRAM region and loads the next one's, and
    the host prefetches the next context's kept tokens): every output is the golden
    model's, one ``CoreModel`` per context, and the counters add up, the context switches,
    the prefetches and the beats they moved included; a switch or prefetch of a context
    never started or beyond ``contexts`` is refused (``BAD_ARG``). A switch into a
    prefetched context moves only the other tables; without prefetch, each switch first
    moves the kept tokens itself."""
    prog = synthetic_program(
        TINY,
        frames=3,
        tokens_per_frame=8,
        contexts=3,
        seed=7,
        prefill_group=2,
        prefill_from=1,
        interleave=True,
        prefetch=prefetch,
    )
    assert prog.regions == 3
    # 3 frames x 3 contexts, then context 0 for its last commands
    assert prog.counter_reads[0][1]["context_switches"] == 3 * 3 + 1
    out = simulate(TINY, prog, timing=timing, seed=3, vcd=tmp_path / "core.vcd")
    check(prog, out)
    # a swap's bus beats (one per cycle on each channel, what sim.bench_core's model takes)
    # bound its cycles from below; without stalls, each of its regions adds its start and
    # the RAM's latency
    switches = [c for c in prog.commands if c.kind == "switch"]
    swaps = [
        (c.info["swap_beats"] + c.info["kept_beats"], n)
        for c, n in zip(prog.commands, out["cycles"], strict=True)
        if c.kind == "switch"
    ]
    # (the prefetcher's regions once more: its load trails its store by a burst)
    slack = 8 * (len(context_regions(TINY)) + 1) + 2 * ContextMover.burst(TINY)
    slack = slack if timing == "none" else float("inf")
    assert len(swaps) == 10 and all(b < n <= b + slack for b, n in swaps), swaps
    # with prefetch, only the first switch (into context 0, while the spare bank holds
    # context 1) moves kept tokens; without, every one
    prefetched = [c.info["prefetched"] for c in switches]
    assert prefetched == ([False] + [True] * 9 if prefetch else [False] * 10)
    assert all((c.info["kept_beats"] > 0) != c.info["prefetched"] for c in switches)
    # the prefetcher's busy cycles: with prefetch some run behind other commands; without,
    # a switch (or a RESET_CTX) waits for all of them
    perf = out["perf"][-1]
    assert perf["prefetch_busy"] > 0
    # with prefetch, a PREFILL or decode step after an INGEST stores the kept tokens (the
    # clean), so a prefetch finds the spare bank clean and only loads (without the clean,
    # every prefetch would store: every visit ingests)
    cleans = [c for c in prog.commands if c.info.get("cleans")]
    stores = [c.info["stores"] for c in prog.commands if c.kind == "prefetch" and c.info["moves"]]
    assert (len(cleans) > 0, len(stores) > 0) == (prefetch, prefetch)
    assert not prefetch or not all(stores), stores
    if prefetch:
        assert perf["prefetch_wait"] < perf["prefetch_busy"], perf
    else:
        assert perf["prefetch_wait"] == perf["prefetch_busy"], perf


def test_core_switch_bus_errors():
    """A SLVERR on the first write burst (a RESET_CTX storing the active context) and on the
    first read burst (a SWITCH_CTX loading a context) makes exactly those two commands
    answer BUS; the data still moved, so every output stays the golden model's."""
    prog = synthetic_program(
        TINY,
        frames=2,
        tokens_per_frame=8,
        contexts=2,
        seed=9,
        bad_commands=False,
        interleave=True,
    )
    kinds = [(c.kind, c.arg) for c in prog.commands]
    first_store = kinds.index(("reset", 1))  # stores context 0 (nothing else wrote yet)
    first_load = kinds.index(("switch", 0))  # loads context 0 (nothing else read yet)
    out = simulate(TINY, prog, timing="random", seed=4, slverr_writes={0}, slverr_reads={0})
    check(prog, out, errors={first_store: Error.BUS, first_load: Error.BUS})


def test_core_prefetch_bus_errors():
    """The background prefetcher's responses arrive during any command or between two: a
    SLVERR on one of its read bursts whose R beats all come between a status and the next
    command answers ``BUS`` on that next command (not lost), one on a write burst (a clean's
    store) on the command its B comes in; only those commands, every output the golden
    model's."""
    prog = synthetic_program(
        TINY, frames=2, tokens_per_frame=8, contexts=3, seed=7, interleave=True, bad_commands=False
    )
    out = simulate(TINY, prog, timing="random", seed=5, pause=40)
    check(prog, out)
    stride, bus = context_stride(TINY), TINY.axi_data_bits // 8
    spans = [
        (g.offset, g.offset + g.max_rows * g.beats_per_row * bus)
        for g in context_regions(TINY)
        if g.name in KEPT
    ]

    def prefetcher(log):  # the bursts in the kept tokens' regions: only the prefetcher's
        offsets = [(a - TINY.kv_base) % stride for a, _ in log]
        return [i for i, o in enumerate(offsets) if any(lo <= o < hi for lo, hi in spans)]

    reads, writes = prefetcher(out["ar_log"]), prefetcher(out["aw_log"])
    r_beats = {n: [] for n in reads}  # the cycles of the prefetcher's R beats, per burst
    for ch, n, _, e in out["responses"]:
        if ch == "r" and n in r_beats:
            r_beats[n].append(e)
    hs = out["handshakes"]
    gaps = [(s, c) for (_, s), (c, _) in pairwise(hs)]  # a status to the next cmd beat
    between = [n for n, es in r_beats.items() if any(s <= min(es) <= max(es) < c for s, c in gaps)]
    assert between and writes
    bad = {("r", between[0]), ("b", writes[0])}
    faulty = simulate(
        TINY,
        prog,
        timing="random",
        seed=5,
        pause=40,
        slverr_reads={between[0]},
        slverr_writes={writes[0]},
    )
    # the same run, only those responses SLVERR
    assert faulty["responses"] == [
        (c, n, 2 * ((c, n) in bad), e) for c, n, _, e in out["responses"]
    ]
    want = bus_errors(faulty)
    assert len(want) == 2, want
    check(prog, faulty, want)
