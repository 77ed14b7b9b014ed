"""Area of the real units: positive, monotone in HCU lanes, and the analytical area model
(synth/area_model.py) within its stated bound of synthesis, including points that were not
part of its calibration."""

from __future__ import annotations

import pytest

from synth import area_model
from synth.yosys import synthesize

hw_gen = pytest.importorskip("hw.gen")
hw_config = pytest.importorskip("hw.config")


def _cfg(lanes: int = 4, hash_bits: int = 16, clusters: int = 16, buckets: int = 16):
    base = hw_config.preset("tiny")
    return base.replace(
        hcu_lanes=lanes,
        resv={"hash_bits": hash_bits, "max_clusters": clusters, "n_buckets": buckets},
    )


#: (unit, config) of the synthesised points. "hcu-l4-h24-c32" and "wtu-b12" are off the
#: model's calibration grid (24 hash bits, 32 clusters, 12 buckets).
POINTS = {
    "hcu-l1": ("hcu", {"lanes": 1}),
    "hcu-l2": ("hcu", {"lanes": 2}),
    "hcu-l4": ("hcu", {"lanes": 4}),
    "hcu-l4-h24-c32": ("hcu", {"lanes": 4, "hash_bits": 24, "clusters": 32}),
    "wtu-b12": ("wtu", {"buckets": 12}),
}


@pytest.fixture(scope="module")
def areas(tmp_path_factory, liberty):
    out = {}
    for name, (unit, kw) in POINTS.items():
        cfg = _cfg(**kw)
        res = synthesize(hw_gen.generate(unit, cfg), unit, tmp_path_factory.mktemp(name), liberty)
        out[name] = (unit, cfg, res.total)
    return out


def test_area_positive_and_monotone_in_lanes(areas):
    totals = [areas[f"hcu-l{n}"][2] for n in (1, 2, 4)]
    assert all(t.total_area > 0 and t.cells > 0 for t in totals)
    assert all(t.comb_area > 0 and t.seq_area > 0 for t in totals)
    # More comparator lanes, more XOR/popcount logic: strictly more area and cells.
    assert [t.total_area for t in totals] == sorted({t.total_area for t in totals})
    assert totals[0].comb_area < totals[1].comb_area < totals[2].comb_area


def test_model_within_bound(areas):
    errors = {}
    for name, (unit, cfg, total) in areas.items():
        model = area_model.estimate_area(unit, cfg)
        errors[name] = (model - total.total_area) / total.total_area
    assert max(abs(e) for e in errors.values()) <= area_model.ERROR_BOUND, errors


def test_model_monotone_and_covers_macros():
    small = area_model.estimate_area("hcu", _cfg(lanes=2))
    big = area_model.estimate_area("hcu", _cfg(lanes=8))
    assert 0 < small < big
    paper = hw_config.preset("paper")
    parts = area_model.breakdown("dre", paper)
    assert parts["sram_macros"] > 0.5 * parts["total"]  # the 4096-entry tables dominate
    assert area_model.estimate_area("topk", paper) is None
    with pytest.raises(ValueError, match=r"^unit must be one of 'hcu', 'wtu', 'dre', not 'x'$"):
        area_model.memories("x", paper)


def test_model_does_not_cover_batches():
    cfg = _cfg().replace(hcu_batch=2)
    assert area_model.estimate_area("hcu", cfg) is None
    assert area_model.estimate_area("dre", cfg) is None
    assert area_model.estimate_area("wtu", cfg) is not None
