"""The design-space sweep on Dask: results, Pareto front, and resuming from the cache."""

from __future__ import annotations

import json

import pytest

from synth import sweep

pytest.importorskip("hw.gen")
pytest.importorskip("distributed")


def test_points_and_keys():
    pts = sweep.points("tiny", {"hcu_lanes": [1, 4, 32]}, "ofat")
    # the preset itself, then one axis changed; 32 lanes > 16 clusters is invalid and dropped
    assert pts[0]["hcu_lanes"] == 4 and [p["hcu_lanes"] for p in pts] == [4, 1]
    grid = sweep.points("tiny", {"hcu_lanes": [1, 2], "hash_bits": [8, 16]}, "grid")
    assert len(grid) == 4
    opts = sweep.SweepOptions(preset="tiny")
    k1 = sweep.point_key(pts[0], opts, "lib")
    assert k1 == sweep.point_key(dict(reversed(pts[0].items())), opts, "lib")
    assert k1 != sweep.point_key(pts[1], opts, "lib")
    assert k1 != sweep.point_key(pts[0], sweep.SweepOptions(preset="tiny", clock_ns=5), "lib")


def test_pareto_front():
    rows = [(1, 10), (2, 5), (3, 6), (4, 1), (2, 5)]
    assert sweep.pareto_front(rows) == [0, 1, 3, 4]


def test_unit_cycles_follow_the_documented_formulas():
    cfg = sweep.point_config("tiny", {"hcu_lanes": 2})
    assert sweep.unit_cycles("hcu", cfg)["cycles"] == 16 // 2 + 3
    w = sweep.unit_cycles("wtu", cfg)  # relative buckets
    assert w["cycles"] == 2 * 16 + w["b_star"] + w["selected"] + 7
    g = sweep.unit_cycles("dre_wtu", cfg)  # the DRE's: grid buckets (the preset), one lane
    assert g["cycles"] == 16 + cfg.resv.n_buckets + g["b_star"] + g["selected"] + 5
    assert sweep.unit_cycles("dre", cfg)["cycles"] == 16 // 2 + 3 + g["cycles"]


def test_options_validation():
    with pytest.raises(ValueError, match=r"^mode must be 'ofat' or 'grid', not 'x'$"):
        sweep.SweepOptions(mode="x")
    with pytest.raises(ValueError, match=r"^axis must be one of .*, not 'lanes'$"):
        sweep.SweepOptions(grid={"lanes": [1]})


def test_sweep_on_dask_resumes_from_cache(tmp_path):
    opts = sweep.SweepOptions(
        preset="tiny",
        grid={"hcu_lanes": [2]},
        units=["hcu"],
        workers=2,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "work",
        quiet=True,
    )
    first = sweep.run_sweep(opts)
    assert first["computed"] == 2 and first["cached"] == 0
    cached = sorted((tmp_path / "cache").glob("*.json"))
    assert len(cached) == 2
    by_lanes = {r["point"]["hcu_lanes"]: r["units"]["hcu"] for r in first["points"]}
    assert set(by_lanes) == {2, 4}
    for u in by_lanes.values():
        assert u["area_um2"] > 0 and u["fmax_mhz"] > 0 and u["model_area_um2"] > 0
    assert by_lanes[4]["area_um2"] > by_lanes[2]["area_um2"]
    assert by_lanes[4]["cycles"] < by_lanes[2]["cycles"]  # 16/4+2 < 16/2+2
    assert (tmp_path / "out" / "pareto_hcu.png").is_file()
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["computed"] == 2
    # An interrupted sweep loses nothing: drop one result, rerun, only that one is computed.
    cached[0].unlink()
    second = sweep.run_sweep(opts)
    assert second["computed"] == 1 and second["cached"] == 1
    third = sweep.run_sweep(opts)
    assert third["computed"] == 0 and third["cached"] == 2
