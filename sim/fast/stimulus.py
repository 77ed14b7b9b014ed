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
from amaranth.lib import data

from hw.config import HWConfig
from hw.dre import hcu_batch_cycles, layouts
from sim.dre_data import hcu_expected, hcu_stream

__all__ = [
    "PROFILES",
    "Chunk",
    "Profile",
    "hcu_chunk",
    "make_chunk",
    "pack",
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
    ``StructLayout``; enum fields as their integer values, signed fields two's complement)."""
    n = len(next(iter(columns.values())))
    wide = layout.size > 63
    acc = np.zeros(n, object if wide else np.uint64)
    names = {name for name, _ in layout}
    if set(columns) != names:
        raise ValueError(f"columns must be the fields {sorted(names)}, not {sorted(columns)}")
    for name, fld in layout:
        mask = (1 << fld.width) - 1
        col = np.asarray(columns[name]).astype(np.int64) & mask
        if wide:
            acc = acc + np.array([int(v) << fld.offset for v in col], object)
        else:
            acc |= col.astype(np.uint64) << np.uint64(fld.offset)
    return [int(v) for v in acc]


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
        golden={
            "stream": stream,
            "expected": exp,
            "redundancy": redundancy,
            "sources": sources,
            "contexts": contexts,
        },
    )


#: unit → chunk maker ``(cfg, transactions, seed) -> Chunk``
CHUNKS = {"hcu": hcu_chunk}


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
