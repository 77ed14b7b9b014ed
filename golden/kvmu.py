"""Golden model of the KVMU: paged, cluster-contiguous KV layout and retrieval bursts.

Byte layout (the contract with ``hw/kvmu``):

- A token's KV occupies ``token_bytes`` bytes (K then V, BF16: ``4 * head_dim``).
- The offloaded KV area starts at ``base`` and is cut into ``n_chunks`` chunks of
  ``chunk_tokens`` slots: chunk ``c`` starts at ``base + c * chunk_tokens * token_bytes``,
  slot ``s`` of it at ``chunk_base + s * token_bytes``.
- Each cluster owns a linked list of chunks (``head``, ``next``, ``tail``) and a fill count
  of its tail chunk. A token's assignment appends it to its cluster's tail chunk; a full
  tail (or a newly created cluster) takes a fresh chunk from a bump pointer ``free``.
  Chunks are not freed within a context; ``clear`` starts a new (layer, head) context.
- A chunk is only ever filled from slot 0 upwards, so the used slots of a chunk are one
  contiguous run ``[0, used)``: retrieval is one run per chunk, split into AXI bursts at
  ``max_burst`` beats and at 4 KB boundaries. Runs of different chunks are never merged,
  even when the chunks happen to be adjacent (the hardware does the same).

Always-kept tokens: the first ``sink_tokens`` tokens and the most recent ``recent_tokens``
stay on the device (a sink area and a recent ring in the core's SRAM, ``RecentWindow``)
and are never fetched through clusters; a token enters the paged area when it is
clustered, i.e. when it ages out of the recent ring (SPEC section 2). The KVMU hardware
therefore only sees assignments of tokens leaving the ring.

A selected cluster that owns no chunk (never created in this context) yields no burst.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .resv import ClusterEvent

__all__ = [
    "AXI_BOUNDARY",
    "Burst",
    "BusFigures",
    "KVLayout",
    "KVMemory",
    "RecentWindow",
    "Slot",
    "bus_figures",
    "split_run",
    "token_gather",
    "write_bursts",
]

#: AXI4 bursts must not cross a 4 KB address boundary.
AXI_BOUNDARY = 4096


def _pos_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class KVLayout:
    """Geometry of the paged KV area and of the bus."""

    chunk_tokens: int
    token_bytes: int
    n_chunks: int
    bus_bytes: int
    max_burst: int
    base: int = 0

    def __post_init__(self) -> None:
        for name in ("chunk_tokens", "token_bytes", "n_chunks", "bus_bytes", "max_burst"):
            _pos_int(name, getattr(self, name))
        if self.token_bytes % self.bus_bytes:
            raise ValueError(
                f"token_bytes must be a multiple of bus_bytes ({self.bus_bytes}), "
                f"not {self.token_bytes!r}"
            )
        if self.max_burst > 256:
            raise ValueError(f"max_burst must be in 1..256, not {self.max_burst!r}")
        if self.base < 0 or self.base % self.bus_bytes:
            raise ValueError(
                f"base must be a non-negative multiple of bus_bytes, not {self.base!r}"
            )

    @classmethod
    def from_hw(cls, cfg) -> KVLayout:
        """The layout of an ``hw.config.HWConfig``."""
        return cls(
            chunk_tokens=cfg.chunk_tokens,
            token_bytes=cfg.kv_token_bytes,
            n_chunks=cfg.kv_chunks,
            bus_bytes=cfg.axi_data_bits // 8,
            max_burst=cfg.max_burst,
            base=cfg.kv_base,
        )

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_tokens * self.token_bytes

    @property
    def beats_per_token(self) -> int:
        return self.token_bytes // self.bus_bytes

    def slot_addr(self, chunk: int, slot: int) -> int:
        return self.base + chunk * self.chunk_bytes + slot * self.token_bytes


@dataclass(frozen=True)
class Slot:
    """Where a token's KV goes; ``full`` when no chunk was left (the token is not stored)."""

    token_id: int
    cluster: int
    chunk: int
    slot: int
    addr: int
    full: bool = False


@dataclass(frozen=True)
class Burst:
    """One AXI read burst: start byte address and length in beats (``arlen + 1``)."""

    addr: int
    beats: int
    cluster: int


def split_run(layout: KVLayout, addr: int, beats: int, cluster: int) -> list[Burst]:
    """Cut a contiguous run into bursts of at most ``max_burst`` beats, none crossing 4 KB."""
    out = []
    while beats:
        to_boundary = (AXI_BOUNDARY - addr % AXI_BOUNDARY) // layout.bus_bytes
        n = min(beats, layout.max_burst, to_boundary)
        out.append(Burst(addr, n, cluster))
        addr += n * layout.bus_bytes
        beats -= n
    return out


def write_bursts(layout: KVLayout, addr: int) -> list[Burst]:
    """The AXI write bursts of one token's KV at byte address ``addr`` (``Slot.addr``): its
    ``beats_per_token`` beats from ``addr``, split at ``max_burst`` beats and at 4 KB
    boundaries (``split_run``). A write belongs to no retrieval: ``cluster`` is -1."""
    if not isinstance(layout, KVLayout):
        raise TypeError(f"layout must be a KVLayout, not {layout!r}")
    if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)):
        raise TypeError(f"addr must be an integer, not {addr!r}")
    addr = int(addr)
    if addr < 0 or addr % layout.bus_bytes:
        raise ValueError(
            f"addr must be a non-negative multiple of bus_bytes ({layout.bus_bytes}), not {addr!r}"
        )
    return split_run(layout, addr, layout.beats_per_token, -1)


class KVMemory:
    """Chunk tables of one context: allocation on assignment, translation on selection."""

    def __init__(self, layout: KVLayout, max_clusters: int):
        self.layout = layout
        self.max_clusters = _pos_int("max_clusters", max_clusters)
        self.clear()

    def clear(self) -> None:
        self.head: dict[int, int] = {}
        self.tail: dict[int, int] = {}
        self.fill: dict[int, int] = {}
        self.next: dict[int, int] = {}
        self.free = 0
        #: token id of every used slot, ``(chunk, slot) -> token_id``
        self.owner: dict[tuple[int, int], int] = {}

    def append(self, token_id: int, cluster: int, event: int = 0) -> Slot:
        """Store the token in its cluster. A cluster without a chunk gets its first one; so
        does a ``CREATED`` one whatever the table holds for its id (a cluster of another
        context that used the id: the core switches contexts without clearing the tables)."""
        if not 0 <= cluster < self.max_clusters:
            raise ValueError(f"cluster must be in 0..{self.max_clusters - 1}, not {cluster!r}")
        L = self.layout
        has = cluster in self.tail and event != ClusterEvent.CREATED
        if has and self.fill[cluster] < L.chunk_tokens:
            chunk, slot = self.tail[cluster], self.fill[cluster]
        else:
            if self.free >= L.n_chunks:
                # As in the hardware: chunk 0, slot 0, its address; nothing is stored.
                return Slot(token_id, cluster, 0, 0, L.slot_addr(0, 0), full=True)
            chunk, slot = self.free, 0
            self.free += 1
            if has:
                self.next[self.tail[cluster]] = chunk
            else:
                self.head[cluster] = chunk
            self.tail[cluster] = chunk
        self.fill[cluster] = slot + 1
        self.owner[(chunk, slot)] = token_id
        return Slot(token_id, cluster, chunk, slot, L.slot_addr(chunk, slot))

    def chunks(self, cluster: int) -> list[tuple[int, int]]:
        """``(chunk, used slots)`` of a cluster's list, in list order."""
        if cluster not in self.head:
            return []
        out, c = [], self.head[cluster]
        while True:
            last = c == self.tail[cluster]
            out.append((c, self.fill[cluster] if last else self.layout.chunk_tokens))
            if last:
                return out
            c = self.next[c]

    def members(self, cluster: int) -> list[int]:
        """Token ids of a cluster in storage order."""
        return [self.owner[(c, s)] for c, used in self.chunks(cluster) for s in range(used)]

    def bursts(self, clusters) -> list[Burst]:
        """Cluster-contiguous retrieval: one run per chunk, split into AXI bursts."""
        L = self.layout
        out = []
        for cl in clusters:
            for c, used in self.chunks(int(cl)):
                out += split_run(L, L.slot_addr(c, 0), used * L.beats_per_token, int(cl))
        return out

    def tokens(self, clusters) -> list[int]:
        """Token ids fetched for a selection, in fetch order."""
        return [t for cl in clusters for t in self.members(int(cl))]


def token_gather(mem: KVMemory, clusters) -> list[Burst]:
    """The token-granular baseline: one request per selected token (its own slot)."""
    L = mem.layout
    out = []
    for cl in clusters:
        for c, used in mem.chunks(int(cl)):
            for s in range(used):
                out += split_run(L, L.slot_addr(c, s), L.beats_per_token, int(cl))
    return out


@dataclass(frozen=True)
class BusFigures:
    bursts: int
    beats: int
    bytes: int
    bytes_per_burst: float
    #: data beats / bus cycles with ``overhead`` idle cycles per burst (address phase and
    #: memory latency not hidden by outstanding requests).
    utilisation: float


def bus_figures(bursts: list[Burst], layout: KVLayout, *, overhead: int = 0) -> BusFigures:
    """Bytes per burst and bus utilisation of a burst list (``overhead`` cycles per burst)."""
    if isinstance(overhead, bool) or not isinstance(overhead, int) or overhead < 0:
        raise ValueError(f"overhead must be a non-negative integer, not {overhead!r}")
    beats = sum(b.beats for b in bursts)
    n = len(bursts)
    cycles = beats + overhead * n
    return BusFigures(
        bursts=n,
        beats=beats,
        bytes=beats * layout.bus_bytes,
        bytes_per_burst=beats * layout.bus_bytes / n if n else 0.0,
        utilisation=beats / cycles if cycles else 0.0,
    )


class RecentWindow:
    """Device-side always-kept tokens: the first ``sink_tokens`` (kept for good) and a ring
    of the ``recent_tokens`` most recent. ``push`` returns the token that leaves the ring
    (to be clustered and written to the paged area) or ``None``."""

    def __init__(self, *, sink_tokens: int, recent_tokens: int):
        for name, v in (("sink_tokens", sink_tokens), ("recent_tokens", recent_tokens)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")
        self.sink_tokens, self.recent_tokens = sink_tokens, recent_tokens
        self.sinks: list[int] = []
        self.ring: deque[int] = deque()

    def push(self, token_id: int) -> int | None:
        if len(self.sinks) < self.sink_tokens:
            self.sinks.append(token_id)
            return None
        self.ring.append(token_id)
        if len(self.ring) > self.recent_tokens:
            return self.ring.popleft()
        return None

    def kept(self) -> np.ndarray:
        return np.array(self.sinks + list(self.ring), np.int64)
