"""Workloads and the memory image shared by the KVMU tests (Amaranth simulator and cocotb).

Assignments come from ``golden.resv.cluster_online`` on synthetic signatures (or a trace's
signatures); the golden ``KVMemory`` places them and gives the expected slots and bursts.
Every bus beat of a stored token holds ``beat_word(token, beat)`` repeated over the bus
width, every other beat of the KV area holds ``EMPTY``: a scoreboard decodes each returned
beat to its (token, beat) and so checks that every selected token arrives exactly once, in
full, and nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.kvmu import KVLayout, KVMemory, Slot
from golden.resv import cluster_online
from golden.synthetic import synthetic_signatures
from hw.config import HWConfig

__all__ = [
    "EMPTY",
    "KVWorkload",
    "beat_value",
    "decode_beat",
    "memory_image",
    "selection",
    "workload",
    "workload_from_sigs",
]

#: 32-bit word of a beat that belongs to no stored token.
EMPTY = 0xDEADBEEF
_TAG = 0xA5 << 24


def beat_word(token: int, beat: int) -> int:
    return _TAG | (token & 0xFFFF) << 8 | (beat & 0xFF)


def beat_value(word: int, bus_bytes: int) -> int:
    """A 32-bit word repeated over the bus width (a 1-byte bus keeps its low byte)."""
    if bus_bytes < 4:
        return word & ((1 << 8 * bus_bytes) - 1)
    return sum(word << 32 * i for i in range(bus_bytes // 4))


def decode_beat(value: int, bus_bytes: int) -> tuple[int, int] | None:
    """``(token, beat)`` of a returned beat, ``None`` for anything but a stored token's beat."""
    word = value & 0xFFFFFFFF
    if value != beat_value(word, bus_bytes) or word >> 24 != _TAG >> 24:
        return None
    return (word >> 8) & 0xFFFF, word & 0xFF


@dataclass
class KVWorkload:
    cfg: HWConfig
    layout: KVLayout
    mem: KVMemory
    #: HCU-like assignments: dicts with token_id, cluster, distance, event
    assigns: list[dict]
    #: golden slot of each assignment
    slots: list[Slot]


def workload_from_sigs(cfg: HWConfig, sigs: np.ndarray) -> KVWorkload:
    r = cfg.resv
    res = cluster_online(sigs, threshold=r.threshold, max_clusters=cfg.max_clusters)
    layout = KVLayout.from_hw(cfg)
    mem = KVMemory(layout, cfg.max_clusters)
    assigns, slots = [], []
    mask = (1 << cfg.token_id_bits) - 1
    for t in range(sigs.size):
        a = {
            "token_id": t & mask,
            "cluster": int(res.assign[t]),
            "distance": int(res.distance[t]),
            "event": int(res.event[t]),
        }
        assigns.append(a)
        slots.append(mem.append(a["token_id"], a["cluster"], a["event"]))
    return KVWorkload(cfg, layout, mem, assigns, slots)


def workload(cfg: HWConfig, n: int, *, seed: int, redundancy: float = 0.6) -> KVWorkload:
    sigs = synthetic_signatures(
        n, hash_bits=cfg.resv.hash_bits, redundancy=redundancy, sources=6, seed=seed
    )
    return workload_from_sigs(cfg, sigs)


def selection(wl: KVWorkload, *, seed: int, fraction: float = 0.5) -> list[int]:
    """A random selection (random order) of the clusters of the workload, plus one cluster
    id without chunks when there is one (it must yield no burst)."""
    rng = np.random.default_rng(seed)
    used = sorted(wl.mem.head)
    k = max(1, round(fraction * len(used)))
    sel = [int(c) for c in rng.permutation(used)[:k]]
    empty = [c for c in range(wl.cfg.max_clusters) if c not in wl.mem.head]
    if empty:
        sel.insert(int(rng.integers(len(sel) + 1)), empty[0])
    return sel


def memory_image(wl: KVWorkload) -> bytes:
    """Bytes of the KV area from ``layout.base``: stored tokens' beats, ``EMPTY`` elsewhere."""
    L = wl.layout
    bb = L.bus_bytes
    n_beats = L.n_chunks * L.chunk_bytes // bb
    words = [EMPTY] * n_beats
    for (chunk, slot), tok in wl.mem.owner.items():
        first = (chunk * L.chunk_bytes + slot * L.token_bytes) // bb
        for j in range(L.beats_per_token):
            words[first + j] = beat_word(tok, j)
    return b"".join(beat_value(w, bb).to_bytes(bb, "little") for w in words)
