"""The HCU part of ``sim.bench``: its workload and figures, without a simulator."""

from __future__ import annotations

import numpy as np
import pytest

from golden.resv import ClusterEvent
from hw.config import preset
from sim.bench import TableNotFilled, _hcu_figures, _markdown, bench_hcu, hcu_workload
from sim.cases.dre import hcu_expected, hcu_timing

CONFIG = {"name": "tiny", "max_clusters": 256, "topk_k": 4, "wtu_lanes": 4, "n_buckets": 16}


def test_hcu_workload_fills_the_table_then_probes(monkeypatch):
    monkeypatch.delenv("TRACE", raising=False)
    monkeypatch.delenv("DRE_TRACE", raising=False)
    cfg = preset("tiny").replace(hcu_batch=4)
    stream, probes_at, trace_at = hcu_workload(cfg, 16, 24, 100, seed=3)
    assert trace_at == len(stream) == probes_at + 24  # no TRACE: no trace part
    assert stream.clear.tolist() == [True] + [False] * (len(stream) - 1)
    exp = hcu_expected(cfg, stream)
    created = np.cumsum(exp.event == ClusterEvent.CREATED)
    assert created[probes_at - 1] == 16 and created[probes_at - 2] == 15  # full just then
    # Figures from the exact timing model: every probe batch sees the full table.
    timing = hcu_timing(cfg, stream, exp)
    cycles = np.diff([b.first for b in timing.batches] + [len(stream)])  # stand-in cycles
    rows = [[*b, int(c)] for b, c in zip(timing.batches, cycles, strict=True)]
    fig = _hcu_figures(cfg, rows, probes_at, trace_at)
    sel = [b for b in timing.batches if b.first >= probes_at]
    assert fig["tokens"] == sum(b.tokens for b in sel) and fig["tokens"] >= 24 - 3
    assert fig["compares"] == 16 * fig["tokens"]
    assert fig["mean_occupancy"] == 16
    assert fig["compares_per_cycle"] == fig["compares"] / fig["cycles"]
    assert fig["rows_scanned_frac"] <= 1


def test_a_table_the_signatures_cannot_fill_is_left_out_and_said(monkeypatch, capsys):
    """The tiny preset's 16-bit signatures (threshold 3) cannot make 256 clusters: make
    bench's default sizes are left out of the HCU part with the reason, not a traceback
    (no simulator runs: every size is skipped)."""
    monkeypatch.delenv("TRACE", raising=False)
    monkeypatch.delenv("DRE_TRACE", raising=False)
    cfg = preset("tiny")
    with pytest.raises(TableNotFilled, match=r"not 256 \(the preset's 16-bit signatures"):
        hcu_workload(cfg, 256, 256, 0, seed=1)
    rows, skipped = bench_hcu("tiny", cfg, [256, 512], [4], [1], 256, 0, seed=1)
    assert rows == [] and len(skipped) == 2 and "HCU table 512" in skipped[1]
    assert "skipped: HCU table 256" in capsys.readouterr().out
    md = _markdown({"config": CONFIG, "trace": None, "hcu": [], "hcu_skipped": skipped}, [])
    assert "Not measured: HCU table 256" in md
