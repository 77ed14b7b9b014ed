"""The contexts in DRAM: each (layer, KV head) context's region and its stored tables.

Context ``c`` owns the region at ``context_base(cfg, c) = kv_base + c * context_stride(cfg)``:
first its KV chunk pool (``kv_chunks`` chunks, the KVMU's addresses are relative to the
region), then, each at a 4 KiB-aligned offset, the tables ``SWITCH_CTX`` stores and loads
(``context_regions``), then the two tables that live only in DRAM (``resident_regions``).
A moved table moves at its occupancy, not at its size: ``region_rows`` gives the rows of
each for a context's state, and every row is ``beats_per_row`` bus beats (its bits from the
LSB of the first beat, the rest of the last beat zero).

========== ===================================================== ===========================
region     one row                                               rows moved
========== ===================================================== ===========================
scalars    ``scalars_layout``: the core's counts, the ring's      1
           pointer, the HCU's pending clear and forced joins,
           the KVMU's chunks in use, the hasher's thresholds
hcu        the HCU's signature and count rows (``hcu_lanes``      ceil(clusters / hcu_lanes)
           clusters each)
clusters   a cluster's score weight, member count and chunk list clusters
           (head, tail, tail fill): ``cluster_row_layout``
chunks     the KVMU's ``next`` link of a chunk                   chunks in use
kept       a kept token's K and V rows (``mac_lanes`` BF16 each) kept tokens x head_dim / mac_lanes
kept_sig   a kept token's signature                              kept tokens
========== ===================================================== ===========================

Kept tokens are ``min(tokens, sink_tokens)`` sinks and the ring's ``ring_n`` tokens (slots
``0 .. kept - 1``: the ring fills from slot 0 and wraps only once full). ``SWITCH_CTX``'s
mover moves the first four regions (``switch_regions``); the core's prefetcher the last
two, with the scalars loaded for their count (``kept_regions``): the kept tokens have two
banks on chip and move behind other commands (``hw.core.core``, ``PREFETCH_CTX``).

In DRAM only (never moved): ``sums``, cluster ``c``'s FP32 key sum (``head_dim`` FP32,
``axi_beats_per_token`` beats, as a token's K and V) at ``c * kv_token_bytes``, and
``reps``, its BF16 representative key ``bf16(sum)`` (half of that) at ``c *
kv_token_bytes / 2``. The aging reads a cluster's sum (not for a new cluster), adds the aged
token's key and writes both back; a selection streams ``reps`` for the clusters it scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import data

from ..config import HWConfig, bits_for, ceil_log2
from ..dre.hcu import hcu_row_bits
from ..kvmu.kvmu import cluster_lists_layout

__all__ = [
    "Region",
    "cluster_row_layout",
    "context_base",
    "context_regions",
    "context_stride",
    "kept_regions",
    "kept_rows",
    "moved_beats",
    "region_rows",
    "resident_regions",
    "scalars_layout",
    "swap_beats",
    "switch_regions",
]

_ALIGN = 4096


@dataclass(frozen=True)
class Region:
    name: str
    row_bits: int
    max_rows: int
    offset: int  #: byte offset in the context's region (after the KV pool)
    beats_per_row: int


def scalars_layout(cfg: HWConfig) -> data.StructLayout:
    r, tid = cfg.resv, cfg.token_id_bits
    return data.StructLayout(
        {
            "n_tok": tid + 1,
            "n_clu": bits_for(r.max_clusters),
            "ring_n": bits_for(r.recent_tokens),
            "ring_wp": bits_for(r.recent_tokens - 1),
            "hcu_clear": 1,
            "forced": tid,
            "chunks": bits_for(cfg.kv_chunks),
            "theta": 32 * r.hash_bits,
        }
    )


def cluster_row_layout(cfg: HWConfig) -> data.StructLayout:
    return data.StructLayout(
        {
            "weight": 32,
            "members": cfg.token_id_bits + 1,
            "lists": cluster_lists_layout(cfg).size,
        }
    )


def context_regions(cfg: HWConfig) -> tuple[Region, ...]:
    """The regions ``SWITCH_CTX`` moves, in order."""
    r = cfg.resv
    nb = r.head_dim // cfg.mac_lanes
    kept = r.sink_tokens + r.recent_tokens
    shapes = (
        ("scalars", scalars_layout(cfg).size, 1),
        ("hcu", hcu_row_bits(cfg), cfg.hcu_rows),
        ("clusters", cluster_row_layout(cfg).size, r.max_clusters),
        ("chunks", cfg.kv_chunk_bits, cfg.kv_chunks),
        ("kept", 32 * cfg.mac_lanes, kept * nb),
        ("kept_sig", r.hash_bits, kept),
    )
    return _place(cfg, shapes, _kv_bytes(cfg))


#: The regions of the kept tokens: the prefetcher's (``hw.core.core``: two banks on chip,
#: moved behind the commands of another context), not ``SWITCH_CTX``'s.
KEPT = ("kept", "kept_sig")


def switch_regions(cfg: HWConfig) -> tuple[Region, ...]:
    """The regions ``SWITCH_CTX`` swaps: all but the kept tokens'."""
    return tuple(g for g in context_regions(cfg) if g.name not in KEPT)


def kept_regions(cfg: HWConfig) -> tuple[Region, ...]:
    """The prefetcher's regions: the scalars (only loaded: they give the kept tokens'
    count) and the kept tokens'."""
    return tuple(g for g in context_regions(cfg) if g.name == "scalars" or g.name in KEPT)


def resident_regions(cfg: HWConfig) -> tuple[Region, Region]:
    """``sums`` and ``reps``, after the moved regions: a row is a cluster's (module
    docstring)."""
    d, C = cfg.resv.head_dim, cfg.resv.max_clusters
    return _place(cfg, (("sums", 32 * d, C), ("reps", 16 * d, C)), _end(cfg, context_regions(cfg)))


def _end(cfg: HWConfig, regions: tuple[Region, ...]) -> int:
    """The byte offset just past the last of ``regions``."""
    last = regions[-1]
    return last.offset + last.max_rows * last.beats_per_row * cfg.axi_data_bits // 8


def _place(cfg: HWConfig, shapes, offset: int) -> tuple[Region, ...]:
    bus = cfg.axi_data_bits
    out = []
    for name, bits, rows in shapes:
        offset = -(-offset // _ALIGN) * _ALIGN
        bpr = -(-bits // bus)
        out.append(Region(name, bits, rows, offset, bpr))
        offset += rows * bpr * bus // 8
    return tuple(out)


def _kv_bytes(cfg: HWConfig) -> int:
    return cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes


def context_stride(cfg: HWConfig) -> int:
    """Bytes between two contexts' regions: a power of two holding the pool and the tables."""
    return 1 << ceil_log2(_end(cfg, resident_regions(cfg)))


def context_base(cfg: HWConfig, context: int) -> int:
    return cfg.kv_base + context * context_stride(cfg)


def region_rows(
    cfg: HWConfig, *, n_tok: int, n_clu: int, ring_n: int, chunks: int
) -> dict[str, int]:
    """The rows ``SWITCH_CTX`` moves per region (a store or a load) for a context in this
    state."""
    r = cfg.resv
    kept = n_tok if n_tok < r.sink_tokens else r.sink_tokens + ring_n
    return {
        "scalars": 1,
        "hcu": -(-n_clu // cfg.hcu_lanes),
        "clusters": n_clu,
        "chunks": chunks,
        **kept_rows(cfg, kept),
    }


def kept_rows(cfg: HWConfig, kept: int) -> dict[str, int]:
    """The rows of the kept tokens' regions for ``kept`` kept tokens."""
    return {"kept": kept * (cfg.resv.head_dim // cfg.mac_lanes), "kept_sig": kept}


def moved_beats(cfg: HWConfig, rows: dict[str, int], regions=None) -> int:
    """Bus beats of one store (or one load) of a context with these ``region_rows``, over
    ``regions`` (default ``switch_regions``)."""
    return swap_beats(cfg, rows, rows, regions)


def swap_beats(cfg: HWConfig, stored: dict[str, int], loaded: dict[str, int], regions=None) -> int:
    """Bus beats that bound a swap of a context with ``stored`` rows for one with
    ``loaded`` rows (``region_rows``; a missing name moves nothing) over ``regions``
    (default ``switch_regions``, ``SWITCH_CTX``'s): region by region the store's W beats
    and the load's R beats move together, so each region takes the longer of the two."""
    regions = switch_regions(cfg) if regions is None else regions
    return sum(max(stored.get(g.name, 0), loaded.get(g.name, 0)) * g.beats_per_row for g in regions)


def check_contexts(cfg: HWConfig) -> None:
    """``ValueError`` unless every context's region fits the AXI addresses."""
    end = context_base(cfg, cfg.contexts)
    if end > 1 << cfg.axi_addr_bits:
        raise ValueError(
            f"contexts ({cfg.contexts}) regions of {context_stride(cfg)} bytes from kv_base "
            f"({cfg.kv_base}) must fit {cfg.axi_addr_bits}-bit addresses (axi_addr_bits): "
            f"they end at {end:#x}"
        )
