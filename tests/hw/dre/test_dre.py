"""DynamicRetrievalEngine: the wrapper routes every port to its unit."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment, MemoryInstance

from hw.config import PRESETS, preset
from hw.dre import (
    DynamicRetrievalEngine,
    HashClusterUnit,
    TopKSelector,
    WiCSumThresholdUnit,
    dre_wtu_config,
)
from sim.cases.dre import hcu_expected, hcu_stream, score_row, wtu_expected
from sim.kit.streams import Harness, run, stream_get, stream_put


def test_dre_routes_both_units(tmp_path):
    cfg = preset("tiny")
    dut = DynamicRetrievalEngine(cfg)
    h = Harness(dut)
    tokens = hcu_stream(cfg, 24, seed=1, redundancy=0.8, sources=5)
    row = score_row(cfg, 12, seed=2)
    got: dict = {}

    async def hcu_side(ctx):
        payloads = [
            {"token_id": t, "signature": int(s), "clear": 0} for t, s in enumerate(tokens.sigs)
        ]
        for p in payloads:
            await stream_put(ctx, dut.tokens, [p], cycle=h.cycle)
            got.setdefault("assign", []).extend(
                await stream_get(ctx, dut.assign, cycle=h.cycle, count=1)
            )
        got["occupancy"] = ctx.get(dut.occupancy)
        ctx.set(dut.count_addr, 0)
        await ctx.tick()
        got["count0"] = ctx.get(dut.count_data)

    async def wtu_side(ctx):
        await stream_put(ctx, dut.wtu_cmd, [{"coverage_q": row.coverage_q}], cycle=h.cycle)
        beats = [
            {"cluster": c, "score": int(s), "count": int(n), "last": int(c == 11)}
            for c, (s, n) in enumerate(zip(row.scores, row.counts, strict=True))
        ]
        await stream_put(ctx, dut.clusters, beats, cycle=h.cycle)
        got["selected"] = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["summary"] = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)

    run(h, [hcu_side, wtu_side], vcd=tmp_path / "dre.vcd", traces=[h.cycle])
    exp = hcu_expected(cfg, tokens)
    assert [p.cluster for p, _ in got["assign"]] == exp.cluster.tolist()
    assert got["occupancy"] == exp.occupancy and got["count0"] == exp.counts[0]
    sel = wtu_expected(dre_wtu_config(cfg), row)  # one lane: bucket order
    assert [p.cluster for p, _ in got["selected"]] == sel.selected.tolist()
    assert got["summary"][0][0].total_mass == sel.total_mass
    assert not np.any(exp.counts == 0)


def memories(dut) -> list[str]:
    """Dotted names of the memories in ``dut``'s elaborated design."""
    found = []

    def walk(frag, prefix):
        for sub, name, *_ in frag.subfragments:
            if isinstance(sub, MemoryInstance):
                found.append(prefix + name)
            walk(sub, f"{prefix}{name}.")

    walk(Fragment.get(dut, None), "")
    return sorted(found)


@pytest.mark.parametrize("name", list(PRESETS))
def test_one_count_memory(name):
    """With the presets' grid buckets the DRE keeps the counts once, in the HCU's table (the
    WTU histograms each count as it arrives); relative buckets add the WTU's second copy."""
    cfg = preset(name)
    assert cfg.resv.bucket_mode == "grid"
    assert memories(DynamicRetrievalEngine(cfg)) == ["hcu.cnt_mem", "hcu.sig_mem", "wtu.next_mem"]
    relative = cfg.replace(resv={"bucket_mode": "relative"})
    assert "wtu.count_mem" in memories(DynamicRetrievalEngine(relative))


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("unit", [HashClusterUnit, WiCSumThresholdUnit, TopKSelector])
def test_every_preset_elaborates(unit, name):
    Fragment.get(unit(preset(name)), None)
