"""The HCU part of ``sim.bench``: its workload and figures, without a simulator."""

from __future__ import annotations

import numpy as np

from golden.resv import ClusterEvent
from hw.config import preset
from sim.bench import _hcu_figures, hcu_workload
from sim.cases.dre import hcu_expected, hcu_timing


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
