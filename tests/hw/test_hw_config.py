"""HWConfig: presets, derived widths and validation messages."""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from golden.config import PRESETS as RESV_PRESETS
from golden.config import SPEC_RULE, ReSVConfig
from hw.config import HW_RULE, PRESETS, HWConfig, bits_for, ceil_log2, preset
from hw.gen import generate


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_built_on_the_golden_presets(name):
    cfg = preset(name)
    assert cfg.resv == RESV_PRESETS[name].replace(**HW_RULE)
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


def test_tile_tokens_presets_and_fit():
    """``tile_tokens``: the paper's 64-wide vector unit, the tiny array's 4 columns, and a
    tile row that fits the MAC array's stationary storage (``mac_chunks * mac_cols``)."""
    assert {n: preset(n).tile_tokens for n in PRESETS} == {"tiny": 4, "paper": 64, "edge": 64}
    assert HWConfig(resv=RESV_PRESETS["paper"].replace(**SPEC_RULE)).tile_tokens == 64
    assert preset("tiny").replace(tile_tokens=16).tile_tokens == 16  # 4 chunks x 4 columns
    assert preset("tiny").replace(tile_tokens=1).tile_tokens == 1
    with pytest.raises(
        ValueError, match=r"^tile_tokens must be at most mac_chunks \* mac_cols \(32"
    ):
        preset("paper").replace(resv={"head_dim": 32}, mac_cols=16, rope_pairs=8)


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
        (
            {"prefetch_burst": 12},
            ValueError,
            r"^prefetch_burst must be a power of two in 1\.\.256, not 12$",
        ),
        ({"prefetch_burst": 0}, ValueError, r"^prefetch_burst must be in 1\.\.256"),
        ({"mac_lanes": 0}, ValueError, r"^mac_lanes must be in 1\.\.256, not 0$"),
        ({"mac_lanes": 4.0}, TypeError, r"^mac_lanes must be an integer, not 4\.0$"),
        ({"mac_cols": 12}, ValueError, r"^mac_cols must be a power of two in 1\.\.256, not 12$"),
        ({"mac_cols": 512}, ValueError, r"^mac_cols must be in 1\.\.256, not 512$"),
        ({"mac_rows": 0}, ValueError, r"^mac_rows must be in 1\.\.1024, not 0$"),
        ({"mac_rows": "4"}, TypeError, r"^mac_rows must be an integer, not '4'$"),
        ({"rope_lut_bits": 1}, ValueError, r"^rope_lut_bits must be in 2\.\.16, not 1$"),
        ({"rope_pairs": 0}, ValueError, r"^rope_pairs must be in 1\.\.256, not 0$"),
        (
            {"rope_pairs": 3},
            ValueError,
            r"^rope_pairs must be a power of two dividing resv.head_dim / 2 \(8\), not 3$",
        ),
        (
            {"rope_pairs": 16},
            ValueError,
            r"^rope_pairs must be a power of two dividing resv.head_dim / 2 \(8\), not 16$",
        ),
        ({"exp_frac_bits": 17}, ValueError, r"^exp_frac_bits must be in 1\.\.16, not 17$"),
        ({"tile_tokens": 0}, ValueError, r"^tile_tokens must be in 1\.\.256, not 0$"),
        ({"tile_tokens": 512}, ValueError, r"^tile_tokens must be in 1\.\.256, not 512$"),
        ({"tile_tokens": 4.0}, TypeError, r"^tile_tokens must be an integer, not 4\.0$"),
        ({"tile_buffers": 0}, ValueError, r"^tile_buffers must be in 1\.\.2, not 0$"),
        ({"tile_buffers": 3}, ValueError, r"^tile_buffers must be in 1\.\.2, not 3$"),
        ({"prefetch_rows": -1}, ValueError, r"^prefetch_rows must be in 0\.\.65536, not -1$"),
        ({"mac_in_register": 2}, ValueError, r"^mac_in_register must be in 0\.\.1, not 2$"),
        (
            {"tile_tokens": 6},
            ValueError,
            r"^tile_tokens must be a power of two in 1\.\.256, not 6$",
        ),
        (
            {"tile_tokens": 32},
            ValueError,
            r"^tile_tokens must be at most mac_chunks \* mac_cols \(16: P's tile row fills the "
            r"MAC array's stationary storage for P x V\), not 32$",
        ),
        (
            {"resv": {"n_buckets": 512, "bucket_shift": 2}},
            ValueError,
            r"^resv\.n_buckets must be in 1\.\.256 for the hardware \(the WTU's bucket logic "
            r"grows as n_buckets\*\*2\), not 512$",
        ),
        (
            {"resv": {"n_buckets": np.array([4, 4])}},
            TypeError,
            r"^n_buckets must be an integer, not array\(\[4, 4\]\)$",
        ),
    ],
)
def test_invalid_configs_raise_before_elaboration(changes, exc, message):
    with pytest.raises(exc, match=message):
        preset("tiny").replace(**changes)


def test_numpy_integers_give_python_widths():
    cfg = preset("tiny").replace(hcu_lanes=np.int64(2), axi_addr_bits=np.int64(64))
    assert type(cfg.hcu_lanes) is int and type(cfg.hcu_rows) is int
    assert cfg == preset("tiny").replace(hcu_lanes=2, axi_addr_bits=64)


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
    """The WTU implements relative and grid buckets: HWConfig accepts both; the presets use
    the measured default, grid buckets, on the SPEC's rule otherwise."""
    assert HW_RULE == {**SPEC_RULE, "bucket_mode": "grid"}
    for name in ("tiny", "paper", "edge"):
        assert preset(name).resv.bucket_mode == "grid"
    assert preset("tiny").replace(resv={"bucket_mode": "relative"}).resv.bucket_mode == "relative"


# ---- fuzzing: random hardware configurations, and Verilog from valid ones ---------------

#: Hypothesis examples of the HWConfig fuzz: ``make test`` runs the default, ``make fuzz`` 10**4.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
HW_FIELDS = [f.name for f in dataclasses.fields(HWConfig) if f.name != "resv"]
RESV_FIELDS = [f.name for f in dataclasses.fields(ReSVConfig)]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.just(np.int64(64)),
    st.just(np.array([4, 4])),
)
SMALL_INT = st.one_of(
    st.sampled_from([1 << k for k in range(11)]),
    st.integers(0, 16),
    st.integers(-2, 300),
    st.integers(0, 1 << 20),
)
NAMED = re.compile(
    rf"^(resv\.)?({'|'.join(HW_FIELDS + RESV_FIELDS)})\b|^count_bits \+ log2\(max_clusters\)"
)
WIDTHS = [
    name
    for name, value in vars(HWConfig).items()
    if isinstance(value, property) and name not in ("max_clusters",)
]


def check_valid_hw(cfg: HWConfig) -> None:
    """Every derived width is a positive integer and holds what it is meant to hold."""
    for name in WIDTHS:
        value = getattr(cfg, name)
        assert isinstance(value, int) and value >= 1, (name, value)
    assert 2**cfg.cluster_id_bits >= cfg.max_clusters and 2**cfg.bucket_bits >= cfg.resv.n_buckets
    assert cfg.hcu_rows * cfg.hcu_lanes >= cfg.max_clusters
    assert cfg.max_clusters * cfg.resv.count_max << cfg.resv.lut_frac_bits < 2**cfg.mass_bits
    assert cfg.axi_beats_per_token * cfg.axi_data_bits == 8 * cfg.kv_token_bytes


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    base=st.sampled_from(list(PRESETS)),
    hw=st.lists(st.sampled_from(HW_FIELDS), max_size=2, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: SMALL_INT | SMALL_INT | JUNK for n in names})
    ),
    resv=st.dictionaries(
        st.sampled_from(["max_clusters", "n_buckets", "hash_bits", "head_dim", "count_bits"]),
        SMALL_INT | JUNK,
        max_size=2,
    ),
)
def test_fuzz_hw_configs(base, hw, resv):
    """A random HWConfig constructs with positive derived widths or is refused with a
    ``ValueError``/``TypeError`` naming the field: never another exception."""
    try:
        cfg = preset(base).replace(**hw, **({"resv": resv} if resv else {}))
    except Exception as error:  # the type is what is checked
        assert type(error) in (ValueError, TypeError), f"{type(error).__name__}: {error}"
        assert NAMED.match(str(error)), f"the message names no field: {error}"
        event(f"refused: {type(error).__name__}")
        return
    event("valid")
    check_valid_hw(cfg)


#: Small configurations whose DRE elaborates in about a second (``make fuzz``: 20 of them).
SMALL_DRE = st.builds(
    lambda mc, lanes, nb, hb, batch, topk: preset("tiny").replace(
        resv={"max_clusters": mc, "n_buckets": nb, "hash_bits": hb, "threshold": min(3, hb)},
        hcu_lanes=1 << (min(lanes, mc).bit_length() - 1),  # a power of two <= max_clusters
        hcu_batch=batch,
        topk_k=min(topk, mc),
    ),
    mc=st.integers(1, 24),
    lanes=st.sampled_from([1, 2, 4, 8]),
    nb=st.integers(1, 24),
    hb=st.integers(1, 20),
    batch=st.sampled_from([1, 2, 4, 8]),
    topk=st.integers(1, 8),
)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("FUZZ_VERILOG", "5")), deadline=None)
@given(cfg=SMALL_DRE)
def test_fuzz_valid_configs_give_verilog(cfg):
    """Random small valid configurations elaborate and export Verilog (lint is left to the
    cocotb regressions): validation lets nothing through that the generator cannot build."""
    text = generate("dre", cfg)
    assert text.count("\nmodule ") >= 3 and "module dre(" in text


def test_settings_take_integers_and_floats():
    """``--set`` values: an integer where the text is one, a float otherwise; each reaches its
    field with the presets' validation."""
    from hw.config import apply_settings, parse_settings

    s = parse_settings(["mac_lanes=16", "resv.coverage=0.4", "resv.head_dim=32", "rope_pairs=8"])
    assert s == {"mac_lanes": 16, "resv.coverage": 0.4, "resv.head_dim": 32, "rope_pairs": 8}
    assert type(s["mac_lanes"]) is int
    cfg = apply_settings(preset("paper"), s)
    assert (cfg.mac_lanes, cfg.resv.coverage, cfg.resv.head_dim) == (16, 0.4, 32)
    for bad in ("coverage=", "=3", "mac_lanes=x", "resv.coverage=inf"):
        with pytest.raises(ValueError, match="--set must be FIELD=NUMBER"):
            parse_settings([bad])
    with pytest.raises(ValueError, match=r"--set: mac_lanes must be an integer, not 16\.5"):
        apply_settings(preset("paper"), parse_settings(["mac_lanes=16.5"]))
