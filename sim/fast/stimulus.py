"""Golden stimulus, expected beats and stall profiles of the fast harness.

A ``Chunk`` is one harness run: the payloads of every input stream, the expected payloads of
every output stream and the end-of-run state, all from the golden model through
``sim.cases.dre`` (``hcu_stream`` and ``hcu_expected`` for the HCU) or ``golden.kvmu`` (the
KVMU: allocations and selections in phases, the AXI memory image, the expected bursts, data
beats, slots and summaries). Payloads are packed by the
field offsets of the hardware's own ``amaranth.lib.data`` layouts (``hw.dre.layouts``),
vectorised over a whole chunk. ``write_chunk`` writes the files ``harness.cpp`` reads.

A ``Profile`` is a stall pattern: the probabilities of single idle cycles (sources) and stall
cycles (sinks), of starting a burst, and the longest burst. ``profile_for(seed)`` draws one of
``PROFILES`` from the seed, so a seed alone replays a run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from golden.kvmu import AXI_BOUNDARY, KVLayout, KVMemory, split_run
from golden.resv import ClusterEvent
from hw.config import HWConfig
from hw.dre import (
    hcu_batch_cycles,
    layouts,
    quickselect_cycles,
    topk_cycles,
    topk_passes,
    wtu_cycles,
    wtu_ingest_lanes,
    wtu_unit_config,
)
from hw.kvmu import KVMemoryUnit, kvmu_layouts
from sim.cases.dre import (
    SCORE_KINDS,
    HCUStream,
    ScoreRow,
    hcu_expected,
    hcu_stream,
    quickselect_beats,
    quickselect_expected,
    score_row,
    selected_beats,
    topk_expected,
    wtu_beats,
    wtu_expected,
)
from sim.coverage import wtu_row_bins

__all__ = [
    "PROFILES",
    "Chunk",
    "Profile",
    "hcu_chunk",
    "hcu_stream_chunk",
    "hex_lines",
    "kvmu_chunk",
    "make_chunk",
    "pack",
    "pack_beats",
    "profile_for",
    "write_chunk",
]


@dataclass(frozen=True)
class Profile:
    """Random pauses of one run (probabilities per cycle; ``burst_max`` cycles at most)."""

    name: str
    idle: float = 0.0
    stall: float = 0.0
    idle_burst: float = 0.0
    stall_burst: float = 0.0
    burst_max: int = 0

    def args(self) -> list[str]:
        return [
            *("--idle", repr(self.idle), "--stall", repr(self.stall)),
            *("--idle-burst", repr(self.idle_burst), "--stall-burst", repr(self.stall_burst)),
            *("--burst-max", str(self.burst_max)),
        ]


#: The stall profiles a soak rotates through; ``none`` gives the exact no-stall cycle counts.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("none"),
        Profile("light", idle=0.1, stall=0.1),
        Profile("heavy", idle=0.5, stall=0.5),
        Profile("starved", idle=0.8),
        Profile("backpressure", stall=0.8),
        Profile(
            "bursty", idle=0.02, stall=0.02, idle_burst=0.002, stall_burst=0.002, burst_max=300
        ),
        Profile(
            "long_bursts", idle=0.05, stall=0.05, idle_burst=2e-4, stall_burst=2e-4, burst_max=5000
        ),
    )
}


def profile_for(seed: int) -> Profile:
    """The stall profile of ``seed`` (a seeded draw among ``PROFILES``)."""
    names = sorted(PROFILES)
    return PROFILES[names[int(np.random.default_rng([seed, 0x57A11]).integers(len(names)))]]


@dataclass
class Chunk:
    """One harness run: beats per stream, end-of-run checks, its transactions and the cycles
    the harness must wait for stragglers (``drain``) or declare a hang (``timeout``)."""

    #: payloads per stream: a list of integers, or an ``(n, words)`` ``uint32`` array of
    #: 32-bit words, least significant first (``hex_lines``)
    inputs: dict[str, list[int] | np.ndarray]
    outputs: dict[str, list[int] | np.ndarray]
    transactions: int
    drain: int
    timeout: int
    end: list[str] = field(default_factory=list)
    #: extra golden data of the chunk (e.g. the stream, for exact-timing checks)
    golden: dict = field(default_factory=dict)
    #: ``phases.txt``: beats per stream of each phase (``"clear": 1``: a clear strobe first)
    phases: list[dict[str, int]] = field(default_factory=list)
    #: other files of the harness (name → text or bytes), e.g. ``mem.hex``, ``axi.txt``
    files: dict[str, str | bytes] = field(default_factory=dict)
    #: payload width of the streams given as word arrays (default: all their words)
    widths: dict[str, int] = field(default_factory=dict)


def pack(layout: data.Layout, columns: dict[str, np.ndarray]) -> list[int]:
    """Payload integers of beats given one array per field of ``layout`` (a
    ``StructLayout``; enum fields as their integer values, signed fields two's complement; an
    ``ArrayLayout`` field as an (n, length) array), at the layout's own field offsets."""
    names = {name for name, _ in layout}
    if set(columns) != names:
        raise ValueError(f"columns must be the fields {sorted(names)}, not {sorted(columns)}")
    n = len(next(iter(columns.values())))
    wide = layout.size > 63
    acc = np.zeros(n, object if wide else np.uint64)

    def put(col, width: int, offset: int):
        nonlocal acc
        col = np.asarray(col).astype(np.int64) & ((1 << width) - 1)
        if wide:
            acc = acc + np.array([int(v) << offset for v in col], object)
        else:
            acc |= col.astype(np.uint64) << np.uint64(offset)

    for name, fld in layout:
        shape = fld.shape
        if isinstance(shape, data.ArrayLayout):
            elem = Shape.cast(shape.elem_shape).width
            col = np.asarray(columns[name]).reshape(n, shape.length)
            for j in range(shape.length):
                put(col[:, j], elem, fld.offset + j * elem)
        else:
            put(columns[name], fld.width, fld.offset)
    return [int(v) for v in acc]


def pack_beats(layout: data.Layout, beats: list[dict]) -> list[int]:
    """``pack`` of beats given as payload dicts (e.g. ``sim.cases.dre.wtu_beats``)."""
    if not beats:
        return []
    return pack(layout, {name: np.array([b[name] for b in beats]) for name, _ in layout})


def hcu_chunk(cfg: HWConfig, n: int, seed: int) -> Chunk:
    """``n`` HCU tokens drawn from ``seed``: temporal redundancy, number of sources and of
    contexts (clears) drawn too, so chunks range from a table that stays small to one that
    fills and forces joins. Expected: every ``assign`` beat, occupancy, forced joins and the
    count of every cluster."""
    rng = np.random.default_rng([seed, 0x4C0])
    mc = cfg.max_clusters
    redundancy = float(rng.choice([0.0, 0.5, 0.85, 0.95, rng.random()]))
    sources = int(rng.integers(2, 8 * mc + 1))
    contexts = int(rng.integers(1, max(2, min(n, n // (2 * mc) + 1))))
    stream = hcu_stream(
        cfg, n, seed=seed, redundancy=redundancy, sources=sources, contexts=contexts
    )
    chunk = hcu_stream_chunk(cfg, stream)
    chunk.golden.update(redundancy=redundancy, sources=sources, contexts=contexts)
    return chunk


def hcu_stream_chunk(cfg: HWConfig, stream: HCUStream) -> Chunk:
    """The chunk of a given HCU token stream (golden: ``hcu_expected``)."""
    n = len(stream)
    mc = cfg.max_clusters
    exp = hcu_expected(cfg, stream)
    lay = layouts(cfg)
    tid = np.arange(n) % (1 << cfg.token_id_bits)
    tokens = pack(lay.token, {"token_id": tid, "signature": stream.sigs, "clear": stream.clear})
    assign = pack(
        lay.assign,
        {"token_id": tid, "cluster": exp.cluster, "distance": exp.distance, "event": exp.event},
    )
    end = [f"scalar occupancy {exp.occupancy}", f"scalar forced {exp.forced}"]
    end += [f"read count {c} {int(k)}" for c, k in enumerate(exp.counts[: exp.occupancy])]
    worst = hcu_batch_cycles(cfg, mc, [None] * cfg.hcu_batch)
    return Chunk(
        inputs={"tokens": tokens},
        outputs={"assign": assign},
        transactions=n,
        drain=4 * worst + 16,
        timeout=8 * worst + 1000,
        end=end,
        golden={"stream": stream, "expected": exp},
    )


def wtu_rows(cfg: HWConfig, n: int, seed: int) -> list[ScoreRow]:
    """``n`` score rows drawn from ``seed``: 1..max_clusters clusters (with extra weight on
    1 and on a full row) and a kind of ``sim.cases.dre.score_row`` each (ties, one bucket,
    saturated scores and counts, wide ranges, normal)."""
    rng = np.random.default_rng([seed, 0x37D])
    mc = cfg.max_clusters
    sizes = rng.integers(1, mc + 1, n)
    sizes[rng.random(n) < 0.1] = mc
    sizes[rng.random(n) < 0.05] = 1
    kinds = rng.integers(0, len(SCORE_KINDS), n)
    row_seeds = rng.integers(0, 2**62, n)
    return [
        score_row(cfg, int(k), seed=int(s), kind=SCORE_KINDS[int(i)])
        for k, s, i in zip(sizes, row_seeds, kinds, strict=True)
    ]


def _selector_rows_expected(unit: str, cfg: HWConfig, rows: list[ScoreRow]) -> dict:
    """Per selector unit: the ``cmd`` payloads, the selected ids, the summary columns and
    each row's cycles without stalls, all from golden (as the benches
    ``tb_wtu``, ``tb_topk`` and ``tb_quickselect`` in ``sim.benches`` expect them)."""
    from sim.coverage import quickselect_row_bins, topk_row_bins

    cmd, ids, cycles, bins = [], [], [], []
    summary: dict[str, list[int]] = {}

    def add(**fields: int) -> None:
        for k, v in fields.items():
            summary.setdefault(k, []).append(int(v))

    for r in rows:
        n = r.scores.size
        if unit == "topk":
            sel = topk_expected(r).tolist()
            cmd.append(r.k)
            add(n_selected=len(sel), passes=topk_passes(cfg, n, r.k), error=0)
            cycles.append(topk_cycles(cfg, n, r.k))
            bins += topk_row_bins(cfg, r)
        elif unit == "quickselect":
            e = quickselect_expected(cfg, r)
            sel = e.selected.tolist()
            cmd.append(r.coverage_q)
            add(
                n_selected=len(sel),
                passes=len(e.pass_reads),
                total_mass=e.total_mass,
                threshold=e.threshold,
                error=0,
            )
            cycles.append(quickselect_cycles(cfg, n, e))
            bins += quickselect_row_bins(cfg, r, e)
        else:
            e = wtu_expected(cfg, r)
            sel = e.selected.tolist()
            cmd.append(r.coverage_q)
            add(
                b_star=e.b_star,
                buckets_scanned=e.buckets_scanned,
                n_selected=e.clusters_emitted,
                total_mass=e.total_mass,
                threshold=e.threshold,
                error=0,
            )
            cycles.append(
                wtu_cycles(cfg, n, e.b_star, e.clusters_emitted, emit_cycles=e.emit_cycles)
            )
            bins += wtu_row_bins(cfg, r, e)
        ids.append(sel)
    return {"cmd": cmd, "ids": ids, "summary": summary, "cycles": cycles, "bins": bins}


def _selector_chunk(unit: str, cfg: HWConfig, n: int, seed: int) -> Chunk:
    """``n`` rows of a selector: the WTU (``wtu``; ``wtu_grid``: grid buckets, ``wtu_lanes``
    clusters per beat), the top-k baseline (``topk``; k drawn with the row, 0 and
    ``max_clusters`` included) or the weighted quick-select (``quickselect``). Expected:
    every selected id with its ``last`` flag and every summary."""
    cfg = wtu_unit_config(unit, cfg)
    lay = layouts(cfg)
    rows = wtu_rows(cfg, n, seed)
    if unit == "topk":
        rng = np.random.default_rng([seed, 0x70C])
        ks = [r.k for r in rows]
        for i, u in enumerate(rng.random(n)):
            ks[i] = 0 if u < 0.05 else cfg.max_clusters if u < 0.1 else ks[i]
        rows = [replace(r, k=k) for r, k in zip(rows, ks, strict=True)]
    exp = _selector_rows_expected(unit, cfg, rows)
    if unit in ("wtu", "wtu_grid"):
        beats = pack_beats(
            lay.cluster_lanes if wtu_ingest_lanes(cfg) > 1 else lay.cluster_score,
            [b for r in rows for b in wtu_beats(cfg, r)],
        )
    elif unit == "quickselect" and cfg.wtu_lanes > 1:  # wtu_lanes clusters per beat
        beats = pack_beats(lay.cluster_lanes, [b for r in rows for b in quickselect_beats(cfg, r)])
    else:  # one cluster per beat, ids 0..n-1 (sim.benches.tb_wtu.cluster_beats)
        sizes = [r.scores.size for r in rows]
        beats = pack(
            lay.cluster_score,
            {
                "cluster": np.concatenate([np.arange(k) for k in sizes]),
                "score": np.concatenate([r.scores for r in rows]),
                "count": np.concatenate([r.counts for r in rows]),
                "last": np.concatenate([np.arange(k) == k - 1 for k in sizes]),
            },
        )
    cmd_layout = {"topk": lay.topk_cmd}.get(unit, lay.wtu_cmd)
    summary_layout = {"topk": lay.topk_summary, "quickselect": lay.quickselect_summary}.get(
        unit, lay.wtu_summary
    )
    # One id per beat, or (grid WTU and quick-select with wtu_lanes > 1) the selected ids of
    # a row of wtu_lanes per beat (DRELayouts.selected_lanes).
    lanes = {"wtu_grid": wtu_ingest_lanes(cfg), "quickselect": cfg.wtu_lanes}.get(unit, 1)
    sel_beats = [b for sel in exp["ids"] for b in selected_beats(sel, lanes)]
    if lanes > 1:
        sel_layout = lay.selected_lanes
        sel_cols = {k: np.array([b[i] for b in sel_beats]) for i, k in enumerate(("base", "mask"))}
    else:
        sel_layout = lay.selected
        sel_cols = {"cluster": np.array([b[0] for b in sel_beats])}
    sel_cols["last"] = np.array([b[-1] for b in sel_beats])
    worst = max(exp["cycles"])
    return Chunk(
        inputs={
            "cmd": pack(cmd_layout, {next(iter(cmd_layout))[0]: np.array(exp["cmd"])}),
            "clusters": beats,
        },
        outputs={
            "selected": pack(sel_layout, sel_cols) if sel_beats else [],
            "summary": pack(summary_layout, {k: np.array(v) for k, v in exp["summary"].items()}),
        },
        transactions=n,
        drain=4 * worst + 50,
        timeout=8 * worst + 1000,
        golden={
            "rows": rows,
            "cycles": exp["cycles"],
            "selected": exp["ids"],
            "selected_beats": sel_beats,
            "bins": exp["bins"],  # sim.coverage bins of the rows (the selectors)
        },
    )


def hex_lines(words: np.ndarray, width: int) -> bytes:
    """Beats given as an ``(n, k)`` array of 32-bit words (least significant first) as
    ``ceil(width / 4)`` hex digits and a newline each (vectorised; the words must hold no bit
    at or above ``width``)."""
    words = np.asarray(words, np.uint32)
    n, k = words.shape
    digits = (width + 3) // 4
    if digits > 8 * k:
        raise ValueError(f"width must fit in {k} words, not {width}")
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)
    out = np.empty((n, digits + 1), np.uint8)
    out[:, digits] = ord("\n")
    for lo in range(0, n, 1 << 16):  # in blocks: the nibbles take 32 bytes a word
        block = words[lo : lo + (1 << 16), ::-1, None]
        nib = ((block >> shifts) & 0xF).reshape(len(block), 8 * k)  # most significant first
        out[lo : lo + len(block), :digits] = chars[nib[:, 8 * k - digits :]]
    return out.tobytes()


def _words(values: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers below ``2**bits`` (``uint64``) as ``(n, ceil(bits / 32))``
    32-bit words, least significant first."""
    v = np.asarray(values, np.uint64)
    k = max(1, (bits + 31) // 32)
    return np.stack([(v >> np.uint64(32 * i)) & np.uint64(0xFFFFFFFF) for i in range(k)], 1)


#: Chance of a context that exhausts the chunk pool (``full`` slots), and of a large one.
KVMU_FILL, KVMU_LARGE = 0.02, 0.10
#: Probability that a KVMU chunk has SLVERR beats (1..4 image beats answered SLVERR).
KVMU_SLVERR = 0.5


def kvmu_chunk(cfg: HWConfig, n: int, seed: int) -> Chunk:
    """``n`` KVMU selections drawn from ``seed``, in contexts (a ``clear`` strobe between
    them; the first one after reset, with or without one). A context has 1..3 rounds of
    allocation (HCU-like ``assign`` beats to 1..``max_clusters`` active clusters with
    skewed weights, a random distance, and the event ``CREATED`` on a cluster's first token
    of the context, else joined or forced at random: a created cluster starts a new chunk
    list) followed by selections (distinct
    cluster ids, active ones more likely, clusters without chunks included, ``last`` on the
    final one); no round overlaps another (the KVMU's contract: the harness starts a phase
    when the previous one's outputs are all in, ``Chunk.phases``). Token budgets: 0..64 a
    context, 64..256 with ``KVMU_LARGE``, past the pool's capacity with ``KVMU_FILL``
    (``full`` slots; then 1..2 clusters a selection). The AXI memory holds random words over
    the whole KV area (``mem.hex``). Expected from ``golden.kvmu.KVMemory``: every ``slot``,
    every AR burst (``ar``: ``araddr | arlen << axi_addr_bits``), every ``kv`` beat (the
    image's word at each burst beat, the cluster id) and every ``summary``. With
    ``KVMU_SLVERR`` a chunk marks 1..4 image beats (in the chunks that contexts fill first)
    that the slave answers with RRESP SLVERR, data unchanged (``axi.txt`` ``slverr I``
    lines): a selection that reads one expects ``error`` in its summary."""
    rng = np.random.default_rng([seed, 0x4B3])
    L = KVLayout.from_hw(cfg)
    lay = kvmu_layouts(cfg)
    mc, bb, D = cfg.max_clusters, L.bus_bytes, cfg.axi_data_bits
    n_img = L.n_chunks * L.chunk_bytes // bb
    nw = (D + 31) // 32
    image = rng.integers(0, 1 << 32, (n_img, nw), dtype=np.uint64)
    if D % 32:
        image[:, -1] &= (1 << (D % 32)) - 1
    image = image.astype(np.uint32)
    # SLVERR beats from a stream of their own (the other draws stay as they were), in the
    # low chunks, which every context allocates first.
    err_rng = np.random.default_rng([seed, 0x5E7])
    slverr = np.zeros(0, np.int64)
    if err_rng.random() < KVMU_SLVERR:
        low = min(n_img, 4 * L.chunk_bytes // bb)
        k = int(err_rng.integers(1, min(4, low) + 1))
        slverr = np.sort(err_rng.choice(low, k, replace=False))
    pool = L.n_chunks * L.chunk_tokens
    tid_mask = (1 << cfg.token_id_bits) - 1
    assign: dict[str, list[int]] = {k: [] for k in ("token_id", "cluster", "distance", "event")}
    slots: dict[str, list[int]] = {k: [] for k in ("token_id", "chunk", "slot", "addr", "full")}
    sel_cl: list[int] = []
    sel_last: list[int] = []
    bursts: list[tuple[int, int, int]] = []  # (addr, beats, cluster)
    summary: dict[str, list[int]] = {k: [] for k in ("clusters", "bursts", "beats", "error")}
    phases: list[dict[str, int]] = []
    bins = dict.fromkeys(("whole_run", "split_max_burst", "split_4k", "ok", "error"), 0)
    contexts = {"small": 0, "large": 0, "fill": 0}
    tid = done = ctx = 0
    while done < n:
        mem = KVMemory(L, mc)
        seen: set[int] = set()
        u = rng.random()
        if u < KVMU_FILL:
            kind, budget = "fill", pool + int(rng.integers(1, 65))
        elif u < KVMU_FILL + KVMU_LARGE:
            kind, budget = "large", int(rng.integers(64, 257))
        else:
            kind, budget = "small", int(rng.integers(0, 65))
        contexts[kind] += 1
        m = int(rng.integers(1, mc + 1))
        active = rng.permutation(mc)[:m]
        weights = rng.dirichlet(np.full(m, float(rng.choice([0.3, 1.0, 5.0]))))
        pick = np.ones(mc)
        pick[active] = 8.0
        pick /= pick.sum()
        rounds = int(rng.integers(1, 4))
        cuts = np.sort(rng.integers(0, budget + 1, rounds - 1))
        for r, a in enumerate(np.diff([0, *cuts.tolist(), budget])):
            a = int(a)
            clusters = active[rng.choice(m, a, p=weights)] if a else np.zeros(0, np.int64)
            forced = rng.integers(0, 2, a).tolist()
            for c, f in zip(clusters.tolist(), forced, strict=True):
                # CREATED on the cluster's first token of the context (a new chunk list),
                # else joined or forced, as the HCU says
                ev = ClusterEvent.CREATED if c not in seen else (ClusterEvent.FORCED if f else 0)
                seen.add(c)
                s = mem.append(tid & tid_mask, c, ev)
                for k, v in (("token_id", s.token_id), ("cluster", c), ("event", int(ev))):
                    assign[k].append(v)
                for k, v in zip(slots, (s.token_id, s.chunk, s.slot, s.addr, s.full), strict=True):
                    slots[k].append(int(v))
                tid += 1
            assign["distance"] += rng.integers(0, 1 << cfg.distance_bits, a).tolist()
            phases.append({"clear": int(r == 0 and (ctx > 0 or rng.random() < 0.5))})
            phases[-1].update(assign=a, slot=a)
            n_sel = min(n - done, 1 if kind == "fill" else int(rng.geometric(0.3)))
            top = 2 if kind == "fill" else mc
            ph = {"selected": 0, "ar": 0, "kv": 0, "summary": n_sel}
            for _ in range(n_sel):
                k = int(min(top, rng.geometric(0.3)))
                sel = rng.choice(mc, k, replace=False, p=pick).tolist()
                sel_cl += sel
                sel_last += [0] * (k - 1) + [1]
                nb = beats = err = 0
                for cl in sel:
                    for c, used in mem.chunks(cl):
                        run = split_run(L, L.slot_addr(c, 0), used * L.beats_per_token, cl)
                        if len(run) == 1:
                            bins["whole_run"] += 1
                        for b in run[:-1]:
                            bins["split_max_burst"] += b.beats == L.max_burst
                            bins["split_4k"] += (b.addr + b.beats * bb) % AXI_BOUNDARY == 0
                        bursts += [(b.addr, b.beats, cl) for b in run]
                        for b in run:
                            first = (b.addr - L.base) // bb
                            err |= bool(((slverr >= first) & (slverr < first + b.beats)).any())
                        nb += len(run)
                        beats += sum(b.beats for b in run)
                bins["ok" if not err else "error"] += 1
                for key, v in zip(summary, (k, nb, beats, err), strict=True):
                    summary[key].append(v)
                ph["selected"] += k
                ph["ar"] += nb
                ph["kv"] += beats
            phases.append(ph)
            done += n_sel
            if done >= n:
                break
        ctx += 1
    b_addr = np.array([b[0] for b in bursts], np.int64)
    b_beats = np.array([b[1] for b in bursts], np.int64)
    b_cl = np.array([b[2] for b in bursts], np.int64)
    total = int(b_beats.sum())
    # Image beat of every data beat: its burst's first beat plus its place in the burst.
    starts = np.repeat((b_addr - L.base) // bb - np.cumsum(b_beats) + b_beats, b_beats)
    idx = starts + np.arange(total)
    cbits = lay.kv.size - D
    if D % 32 == 0:
        kv = np.concatenate([image[idx], _words(np.repeat(b_cl, b_beats), cbits)], 1)
    else:  # a narrow or odd bus: integers
        cl_beats = np.repeat(b_cl, b_beats)
        kv = [
            sum(int(w) << 32 * j for j, w in enumerate(image[i])) | int(c) << D
            for i, c in zip(idx.tolist(), cl_beats.tolist(), strict=True)
        ]
    ar = [int(a) | (int(b) - 1) << cfg.axi_addr_bits for a, b in zip(b_addr, b_beats, strict=True)]
    outstanding = inspect.signature(KVMemoryUnit.__init__).parameters["outstanding"].default
    return Chunk(
        inputs={
            "assign": pack(lay.assign, {k: np.array(v, np.int64) for k, v in assign.items()}),
            "selected": pack(
                lay.selected, {"cluster": np.array(sel_cl), "last": np.array(sel_last)}
            ),
        },
        outputs={
            "kv": kv,
            "slot": pack(lay.slot, {k: np.array(v, np.int64) for k, v in slots.items()}),
            "summary": pack(lay.summary, {k: np.array(v) for k, v in summary.items()}),
            "ar": ar,
        },
        transactions=n,
        drain=64,
        timeout=1000 + 4 * cfg.max_clusters,
        end=["scalar busy 0"],
        phases=phases,
        widths={"kv": lay.kv.size},
        files={
            "mem.hex": f"{n_img}\n".encode() + hex_lines(image, D),
            "axi.txt": f"base {L.base}\nmax_burst {L.max_burst}\noutstanding {outstanding}\n"
            f"boundary {AXI_BOUNDARY}\n" + "".join(f"slverr {i}\n" for i in slverr.tolist()),
        },
        golden={
            "image": image,
            "bursts": bursts,
            "beat_index": idx,
            "summary": summary,
            "contexts": contexts,
            "tokens": tid,
            "full": int(sum(slots["full"])),
            "slverr": slverr,
            "bin_counts": {
                ("kvmu.summary" if k in ("ok", "error") else "kvmu.bursts", k): v
                for k, v in bins.items()
            },
        },
    )


#: unit → chunk maker ``(cfg, transactions, seed) -> Chunk``
CHUNKS = {
    "hcu": hcu_chunk,
    **{unit: partial(_selector_chunk, unit) for unit in ("wtu", "wtu_grid", "topk", "quickselect")},
    "kvmu": kvmu_chunk,
}


def make_chunk(unit: str, cfg: HWConfig, n: int, seed: int) -> Chunk:
    """The chunk of ``n`` transactions of ``unit`` drawn from ``seed``."""
    if unit not in CHUNKS:
        raise ValueError(f"unit must be one of {', '.join(CHUNKS)}, not {unit!r}")
    if n < 1:
        raise ValueError(f"transactions must be at least 1, not {n}")
    return CHUNKS[unit](cfg, n, seed)


def write_chunk(directory: Path, chunk: Chunk) -> None:
    """The harness's files: ``in_<s>.hex``, ``out_<s>.hex`` (count, then one hex payload per
    line), ``end.txt``, ``phases.txt`` when the chunk has phases, and ``Chunk.files``."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, streams in (("in", chunk.inputs), ("out", chunk.outputs)):
        for name, beats in streams.items():
            path = directory / f"{prefix}_{name}.hex"
            if isinstance(beats, np.ndarray):
                width = chunk.widths.get(name, 32 * beats.shape[1])
                path.write_bytes(f"{len(beats)}\n".encode() + hex_lines(beats, width))
            else:
                path.write_text(f"{len(beats)}\n" + "".join(f"{b:x}\n" for b in beats))
    (directory / "end.txt").write_text("".join(f"{line}\n" for line in chunk.end))
    phases = directory / "phases.txt"
    if chunk.phases:
        phases.write_text(
            "".join(" ".join(f"{k}={v}" for k, v in p.items()) + "\n" for p in chunk.phases)
        )
    elif phases.exists():
        phases.unlink()
    for name, text in chunk.files.items():
        path = directory / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
