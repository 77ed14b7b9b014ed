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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from hw.config import HWConfig
from hw.dre import hcu_batch_cycles, layouts, wtu_cycles, wtu_ingest_lanes
from sim.dre_data import (
    SCORE_KINDS,
    HCUStream,
    ScoreRow,
    hcu_expected,
    hcu_stream,
    score_row,
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


def _wtu_chunk(unit: str, cfg: HWConfig, n: int, seed: int) -> Chunk:
    """``n`` rows of the WTU (``wtu``, or ``wtu_grid``: grid buckets, ``wtu_lanes`` clusters
    per beat). Expected: every selected id with its ``last`` flag and every summary."""
    cfg = wtu_unit_config(unit, cfg)
    lay = layouts(cfg)
    rows = wtu_rows(cfg, n, seed)
    exps = [wtu_expected(cfg, r) for r in rows]
    beats = [b for r in rows for b in wtu_beats(cfg, r)]
    clusters = lay.cluster_lanes if wtu_ingest_lanes(cfg) > 1 else lay.cluster_score
    sel_id, sel_last = [], []
    for e in exps:
        k = e.clusters_emitted
        ids = e.selected.tolist()
        sel_id += ids
        sel_last += [int(i == k - 1) for i in range(len(ids))]
    summary = {
        "b_star": [e.b_star for e in exps],
        "buckets_scanned": [e.buckets_scanned for e in exps],
        "n_selected": [e.clusters_emitted for e in exps],
        "total_mass": [e.total_mass for e in exps],
        "threshold": [e.threshold for e in exps],
        "error": [0] * n,
    }
    cycles = [
        wtu_cycles(cfg, r.scores.size, e.b_star, e.clusters_emitted, emit_cycles=e.emit_cycles)
        for r, e in zip(rows, exps, strict=True)
    ]
    worst = max(cycles)
    return Chunk(
        inputs={
            "cmd": pack(lay.wtu_cmd, {"coverage_q": np.array([r.coverage_q for r in rows])}),
            "clusters": pack_beats(clusters, beats),
        },
        outputs={
            "selected": pack(lay.selected, {"cluster": np.array(sel_id), "last": sel_last})
            if sel_id
            else [],
            "summary": pack(lay.wtu_summary, {k: np.array(v) for k, v in summary.items()}),
        },
        transactions=n,
        drain=4 * worst + 50,
        timeout=8 * worst + 1000,
        golden={"rows": rows, "expected": exps, "cycles": cycles},
    )


#: unit → chunk maker ``(cfg, transactions, seed) -> Chunk``
CHUNKS = {
    "hcu": hcu_chunk,
    "wtu": lambda cfg, n, seed: _wtu_chunk("wtu", cfg, n, seed),
    "wtu_grid": lambda cfg, n, seed: _wtu_chunk("wtu_grid", cfg, n, seed),
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
