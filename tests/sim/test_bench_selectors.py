"""sim.bench's selector part: the lane summary (made-up rows) and a tiny Verilator run."""

from __future__ import annotations

import json

from sim.bench import _markdown, lanes_summary, main


def _row(name, n, grid, qs, topk):
    return {
        "rows": name,
        "clusters": n,
        "wtu_grid_cycles": grid,
        "quickselect_cycles": qs,
        "topk_cycles": topk,
        "ratio_grid_over_quickselect": grid / qs,
        "ratio_grid_over_topk": grid / topk,
    }


def test_lanes_summary_checks_the_goal_per_lane_and_size():
    by_lanes = [
        {
            "wtu_lanes": 16,
            "topk_k": 16,
            "rows": [
                _row("synthetic-4096", 4096, 900, 5000, 100000),
                _row("synthetic-4096", 4096, 1000, 5000, 100000),
                _row("trace-417", 417, 130, 500, 420),
            ],
        },
        {"wtu_lanes": 1, "topk_k": 1, "rows": [_row("synthetic-4096", 4096, 4800, 4000, 9e6)]},
    ]
    out = lanes_summary(by_lanes)
    syn16, trace16, syn1 = out
    assert (syn16["wtu_lanes"], syn16["clusters"], syn16["count"]) == (16, 4096, 2)
    assert syn16["wtu_grid_cycles"] == 950 and syn16["grid_over_quickselect_max"] == 0.2
    assert syn16["goal_quickselect"] and syn16["goal_topk"]
    assert trace16["clusters"] == [417] and trace16["goal_quickselect"]
    assert not trace16["goal_topk"]  # 130 / 420 > 0.2
    assert not syn1["goal_quickselect"] and syn1["goal_topk"]
    md = _markdown(
        {
            "config": {"name": "paper", "max_clusters": 4096, "wtu_lanes": 16, "topk_k": 16},
            "trace": None,
            "lanes_summary": out,
        },
        [],
    )
    assert "| 16 | 16 | trace (1) | 417 | 130 | 500 | 420 | 0.26 (0.26) | 0.31 (0.31) | met " in md
    assert "| not met |" in md


def test_selector_bench_runs_every_selector(tmp_path, monkeypatch):
    """``python -m sim.bench --parts selectors`` at ``tiny`` (Verilator): the relative WTU
    (the ``wtu`` top), the grid WTU, the quick-select and the top-k each run the rows, every
    id and cycle count checked against golden and the units' formulas inside the bench."""
    monkeypatch.delenv("TRACE", raising=False)
    args = ["--config", "tiny", "--parts", "selectors", "--sizes", "16", "--rows", "1"]
    assert main([*args, "--wtu-lanes", "4", "-o", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "hw_bench.json").read_text())
    (row,) = rep["selectors"]["rows"]
    assert row["clusters"] == 16 and rep["selectors"]["wtu_lanes"] == 4
    # The relative WTU reads the row twice, the 4-lane grid WTU ingests 4 clusters per beat.
    assert row["wtu_cycles"] == 2 * 16 + row["b_star"] + row["selected_relative"] + 7
    assert row["wtu_grid_cycles"] < row["wtu_cycles"]
