"""Golden stimulus, expected beats and stall profiles of the fast harness.

A ``Chunk`` is one harness run: the payloads of every input stream, the expected payloads of
every output stream and the end-of-run state, all from the golden model through
``sim.dre_data`` (``hcu_stream`` and ``hcu_expected`` for the HCU). Payloads are packed by the
field offsets of the hardware's own ``amaranth.lib.data`` layouts (``hw.dre.layouts``),
vectorised over a whole chunk. ``write_chunk`` writes the files ``harness.cpp`` reads.

A ``Profile`` is a stall pattern: the probabilities of single idle cycles (sources) and stall
cycles (sinks), of starting a burst, and the longest burst. ``profile_for(seed)`` draws one of
``PROFILES`` from the seed, so a seed alone replays a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from hw.config import HWConfig
from hw.dre import (
    hcu_batch_cycles,
    layouts,
    quickselect_cycles,
    topk_cycles,
    topk_passes,
    wtu_cycles,
    wtu_ingest_lanes,
)
from sim.coverage import wtu_row_bins
from sim.dre_data import (
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

__all__ = [
    "PROFILES",
    "Chunk",
    "Profile",
    "hcu_chunk",
    "hcu_stream_chunk",
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

    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    transactions: int
    drain: int
    timeout: int
    end: list[str] = field(default_factory=list)
    #: extra golden data of the chunk (e.g. the stream, for exact-timing checks)
    golden: dict = field(default_factory=dict)


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
    """``pack`` of beats given as payload dicts (e.g. ``sim.dre_data.wtu_beats``)."""
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


def wtu_unit_config(unit: str, cfg: HWConfig) -> HWConfig:
    """The config a selector unit runs at: ``wtu_grid`` is the WTU with grid buckets
    (``hw.gen`` builds it so, ``sim.tb_wtu.unit_config`` checks it so)."""
    return cfg.replace(resv={"bucket_mode": "grid"}) if unit == "wtu_grid" else cfg


def wtu_rows(cfg: HWConfig, n: int, seed: int) -> list[ScoreRow]:
    """``n`` score rows drawn from ``seed``: 1..max_clusters clusters (with extra weight on
    1 and on a full row) and a kind of ``sim.dre_data.score_row`` each (ties, one bucket,
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
    each row's cycles without stalls, all from golden (as ``sim.tb_wtu``, ``sim.tb_topk``
    and ``sim.tb_quickselect`` expect them)."""
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
    else:  # one cluster per beat, ids 0..n-1 (sim.tb_wtu.cluster_beats)
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


#: unit → chunk maker ``(cfg, transactions, seed) -> Chunk``
CHUNKS = {
    "hcu": hcu_chunk,
    **{unit: partial(_selector_chunk, unit) for unit in ("wtu", "wtu_grid", "topk", "quickselect")},
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
    line) and ``end.txt``."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, streams in (("in", chunk.inputs), ("out", chunk.outputs)):
        for name, beats in streams.items():
            text = f"{len(beats)}\n" + "".join(f"{b:x}\n" for b in beats)
            (directory / f"{prefix}_{name}.hex").write_text(text)
    (directory / "end.txt").write_text("".join(f"{line}\n" for line in chunk.end))
