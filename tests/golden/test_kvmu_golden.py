"""golden.kvmu: layout, allocation, burst translation, token gather, bus figures."""

from __future__ import annotations

import pytest

from golden.kvmu import (
    KVLayout,
    KVMemory,
    RecentWindow,
    bus_figures,
    split_run,
    token_gather,
)
from hw.config import preset

L = KVLayout(chunk_tokens=8, token_bytes=1024, n_chunks=4, bus_bytes=16, max_burst=256)


def test_split_at_4k_and_max_burst():
    assert [(b.addr, b.beats) for b in split_run(L, 2048, 8 * 64, 0)] == [
        (2048, 128),
        (4096, 256),
        (8192, 128),
    ]
    short = KVLayout(chunk_tokens=8, token_bytes=64, n_chunks=4, bus_bytes=8, max_burst=3)
    assert [b.beats for b in split_run(short, 0, 8, 0)] == [3, 3, 2]


def test_linked_chunks_and_members():
    mem = KVMemory(L, 4)
    slots = [mem.append(t, c) for t, c in enumerate([0, 1, 0] + [0] * 8)]
    assert [s.chunk for s in slots[:3]] == [0, 1, 0]
    # cluster 0 fills chunk 0 (8 slots) and continues in chunk 2
    assert mem.chunks(0) == [(0, 8), (2, 2)]
    assert slots[-1].addr == L.slot_addr(2, 1) == 2 * 8 * 1024 + 1024
    assert mem.members(0) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert mem.tokens([1, 3, 0])[:2] == [1, 0]  # cluster 3 owns nothing
    bursts = mem.bursts([0])
    assert [(b.addr, b.beats) for b in bursts] == [(0, 256), (4096, 256), (16384, 128)]


def test_pool_exhaustion():
    mem = KVMemory(L.__class__(**{**L.__dict__, "n_chunks": 1}), 2)
    assert not mem.append(0, 0).full
    s = mem.append(1, 1)
    assert s.full and s.addr == L.base and mem.members(1) == []


def test_gather_vs_contiguous_figures():
    mem = KVMemory(L, 4)
    for t in range(20):
        mem.append(t, t % 2)
    contig, gather = mem.bursts([0, 1]), token_gather(mem, [0, 1])
    assert len(gather) == 20 and all(b.beats == 64 for b in gather)
    fc, fg = bus_figures(contig, L, overhead=8), bus_figures(gather, L, overhead=8)
    assert fc.bytes == fg.bytes == 20 * 1024
    assert fc.bytes_per_burst > fg.bytes_per_burst == 1024
    assert fc.utilisation > fg.utilisation == 64 / 72
    with pytest.raises(ValueError, match=r"^overhead must be a non-negative integer, not -1$"):
        bus_figures(contig, L, overhead=-1)


def test_from_hw_and_errors():
    lay = KVLayout.from_hw(preset("paper"))
    # K and V of 128 BF16 each over the paper's 256-bit AXI, in 4-token chunks
    assert (lay.token_bytes, lay.bus_bytes, lay.beats_per_token) == (512, 32, 16)
    assert lay.chunk_tokens == 4
    with pytest.raises(ValueError, match=r"^token_bytes must be a multiple of bus_bytes"):
        KVLayout(chunk_tokens=1, token_bytes=12, n_chunks=1, bus_bytes=8, max_burst=1)
    with pytest.raises(ValueError, match=r"^cluster must be in 0\.\.3, not 4$"):
        KVMemory(L, 4).append(0, 4)


def test_recent_window():
    w = RecentWindow(sink_tokens=2, recent_tokens=3)
    out = [w.push(t) for t in range(7)]
    assert out == [None, None, None, None, None, 2, 3]
    assert w.kept().tolist() == [0, 1, 4, 5, 6]
