"""HWConfig: presets, derived widths and validation messages."""

from __future__ import annotations

import pytest

from golden.config import PRESETS as RESV_PRESETS
from golden.config import SPEC_RULE
from hw.config import PRESETS, HWConfig, bits_for, ceil_log2, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_built_on_the_golden_presets(name):
    cfg = preset(name)
    assert cfg.resv == RESV_PRESETS[name].replace(**SPEC_RULE)
    assert cfg.max_clusters == cfg.resv.max_clusters
    assert 2**cfg.cluster_id_bits >= cfg.max_clusters
    assert 2**cfg.bucket_bits >= cfg.resv.n_buckets
    assert cfg.hcu_rows * cfg.hcu_lanes >= cfg.max_clusters
    big = cfg.max_clusters * cfg.resv.count_max << cfg.resv.lut_frac_bits
    assert big < 2**cfg.mass_bits


def test_paper_preset_matches_the_paper():
    cfg = preset("paper")
    assert (cfg.hcu_lanes, cfg.max_clusters, cfg.resv.count_bits) == (16, 4096, 16)
    assert (cfg.mac_rows, cfg.mac_cols, cfg.mac_chunks) == (64, 64, 2)  # 64 x 64 MAC trees


def test_width_helpers():
    assert [ceil_log2(n) for n in (1, 2, 3, 4, 5, 4096)] == [0, 1, 2, 2, 3, 12]
    assert [bits_for(v) for v in (0, 1, 2, 255, 256)] == [1, 1, 2, 8, 9]


def test_replace_accepts_resv_changes():
    cfg = preset("tiny").replace(resv={"max_clusters": 8}, hcu_lanes=8)
    assert cfg.max_clusters == 8 and cfg.hcu_rows == 1


@pytest.mark.parametrize(
    ("changes", "exc", "message"),
    [
        ({"hcu_lanes": 3}, ValueError, r"^hcu_lanes must be a power of two in 1\.\.16, not 3$"),
        ({"hcu_lanes": 32}, ValueError, r"^hcu_lanes must be a power of two in 1\.\.16, not 32$"),
        ({"hcu_lanes": 0}, ValueError, r"^hcu_lanes must be a power of two in 1\.\.16, not 0$"),
        ({"hcu_lanes": "4"}, TypeError, r"^hcu_lanes must be an integer, not '4'$"),
        ({"hcu_batch": 3}, ValueError, r"^hcu_batch must be a power of two in 1\.\.8, not 3$"),
        ({"hcu_batch": 16}, ValueError, r"^hcu_batch must be a power of two in 1\.\.8, not 16$"),
        ({"hcu_batch": 0}, ValueError, r"^hcu_batch must be a power of two in 1\.\.8, not 0$"),
        ({"hcu_batch": True}, TypeError, r"^hcu_batch must be an integer, not True$"),
        ({"topk_k": 0}, ValueError, r"^topk_k must be in 1\.\.16, not 0$"),
        ({"wtu_lanes": 6}, ValueError, r"^wtu_lanes must be a power of two in 1\.\.256, not 6$"),
        ({"wtu_lanes": 0}, ValueError, r"^wtu_lanes must be in 1\.\.256, not 0$"),
        (
            {"resv": {"bucket_mode": "x"}},
            ValueError,
            r"^bucket_mode must be one of 'relative', 'grid', not 'x'$",
        ),
        ({"topk_k": 17}, ValueError, r"^topk_k must be in 1\.\.16, not 17$"),
        ({"token_id_bits": 0}, ValueError, r"^token_id_bits must be in 1\.\.32, not 0$"),
        ({"token_id_bits": True}, TypeError, r"^token_id_bits must be an integer, not True$"),
        ({"resv": None}, TypeError, r"^resv must be a ReSVConfig, not None$"),
        ({"mac_lanes": 3}, ValueError, r"^mac_lanes must be a power of two in 1\.\.256, not 3$"),
        ({"mac_lanes": 0}, ValueError, r"^mac_lanes must be in 1\.\.256, not 0$"),
        ({"mac_lanes": 4.0}, TypeError, r"^mac_lanes must be an integer, not 4\.0$"),
        ({"mac_cols": 12}, ValueError, r"^mac_cols must be a power of two in 1\.\.256, not 12$"),
        ({"mac_cols": 512}, ValueError, r"^mac_cols must be in 1\.\.256, not 512$"),
        ({"mac_rows": 0}, ValueError, r"^mac_rows must be in 1\.\.1024, not 0$"),
        ({"prefill_rows": 0}, ValueError, r"^prefill_rows must be in 1\.\.256, not 0$"),
        ({"prefill_rows": 2.0}, TypeError, r"^prefill_rows must be an integer, not 2\.0$"),
        ({"mac_rows": "4"}, TypeError, r"^mac_rows must be an integer, not '4'$"),
        ({"rope_lut_bits": 1}, ValueError, r"^rope_lut_bits must be in 2\.\.16, not 1$"),
        ({"exp_frac_bits": 17}, ValueError, r"^exp_frac_bits must be in 1\.\.16, not 17$"),
    ],
)
def test_invalid_configs_raise_before_elaboration(changes, exc, message):
    with pytest.raises(exc, match=message):
        preset("tiny").replace(**changes)


def test_resv_is_required():
    with pytest.raises(TypeError, match=r"resv"):
        HWConfig()


def test_unknown_preset():
    with pytest.raises(
        ValueError, match=r"^config must be one of 'tiny', 'paper', 'edge', not 'big'$"
    ):
        preset("big")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cluster_policy", "page_fallback"),
        ("score_correction", "variance"),
        ("rep_format", "int8"),
        ("representative", "rope_aware"),
        ("selection", "exact"),
        ("coverage_scope", "attended"),
        ("min_fraction", 0.05),
    ],
)
def test_golden_options_the_rtl_lacks_are_refused(field, value):
    """A golden option the RTL does not implement is a clear error, never a mismatch."""
    implemented = preset("tiny").resv.__getattribute__(field)
    with pytest.raises(
        ValueError,
        match=rf"^resv\.{field} must be {implemented!r} for the hardware \(the RTL does not "
        rf"implement {value!r} yet; golden\.cache models it\), not {value!r}$",
    ):
        preset("tiny").replace(resv={field: value})


def test_golden_defaults_are_not_the_hardware_rule():
    """The golden defaults (chosen by the benchmark) need the hardware's rule applied."""
    with pytest.raises(ValueError, match=r"^resv\.\w+ must be .* for the hardware \(the RTL"):
        preset("tiny").replace(resv=RESV_PRESETS["tiny"])
    with pytest.raises(ValueError, match=r"^resv\.rope_base must be a number for the hardware"):
        preset("tiny").replace(resv={"rope_base": None})


def test_both_bucket_modes_are_hardware_options():
    """The WTU implements relative and grid buckets: HWConfig accepts both; the presets keep
    the SPEC's relative buckets."""
    for name in ("tiny", "paper", "edge"):
        assert preset(name).resv.bucket_mode == "relative"
    assert preset("tiny").replace(resv={"bucket_mode": "grid"}).resv.bucket_mode == "grid"
