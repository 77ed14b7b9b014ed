import dataclasses
import os
import re
import typing

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from golden.config import PRESETS, ReSVConfig, preset
from golden.resv import bucket_lut, quantize_scores, wicsum_select_bucketed


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_wide(name):
    cfg = preset(name)
    assert cfg.planes.shape == (cfg.head_dim, cfg.hash_bits)
    assert cfg.bucket_range_log2 >= 16  # SPEC section 2: a narrow range undershoots
    assert 1 <= cfg.coverage_q <= 1 << cfg.coverage_frac_bits


def test_frozen_and_replace_revalidates():
    cfg = preset("paper")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hash_bits = 3
    assert cfg.replace(threshold=3).threshold == 3
    with pytest.raises(ValueError, match=r"^threshold must be in 0\.\.32, not 40$"):
        cfg.replace(threshold=40)


def test_planes_are_seeded():
    a, b = ReSVConfig(plane_seed=1).planes, ReSVConfig(plane_seed=1).planes
    assert (a == b).all() and not (a == ReSVConfig(plane_seed=2).planes).all()


@pytest.mark.parametrize(
    ("kw", "exc", "msg"),
    [
        ({"hash_bits": 80}, ValueError, r"^hash_bits must be in 1\.\.64, not 80$"),
        ({"head_dim": 15}, ValueError, r"^head_dim must be even \(RoPE rotates pairs\), not 15$"),
        ({"max_clusters": 0}, ValueError, r"^max_clusters must be at least 1, not 0$"),
        ({"coverage": 0.0}, ValueError, r"^coverage must be in \(0, 1\], not 0\.0$"),
        ({"coverage": "a"}, TypeError, r"^coverage must be a number, not 'a'$"),
        ({"hash_space": "rope"}, ValueError, r"^hash_space must be one of 'post_rope', "),
        ({"prefill_mode": "x"}, ValueError, r"^prefill_mode must be one of 'mean', 'union', "),
        ({"threshold": 2.0}, TypeError, r"^threshold must be an integer, not 2\.0$"),
        ({"centre_keys": 1}, TypeError, r"^centre_keys must be a bool, not 1$"),
        ({"count_bits": 32, "lut_frac_bits": 32}, ValueError, r"^count_bits \+ log2"),
        ({"min_fraction": 1.5}, ValueError, r"^min_fraction must be in \[0, 1\], not 1\.5$"),
        ({"min_fraction": "x"}, TypeError, r"^min_fraction must be a number, not 'x'$"),
        (
            {"prefill_mode": "sum"},
            ValueError,
            r"^prefill_mode must be one of 'mean', 'union', 'mass', not 'sum'$",
        ),
        (
            {"coverage_scope": "all"},
            ValueError,
            r"^coverage_scope must be one of 'clusters', 'attended', not 'all'$",
        ),
        (
            {"cluster_policy": "pages"},
            ValueError,
            r"^cluster_policy must be one of 'greedy', 'page_fallback', not 'pages'$",
        ),
        ({"page_tokens": 0}, ValueError, r"^page_tokens must be at least 1, not 0$"),
        (
            {"score_correction": "max"},
            ValueError,
            r"^score_correction must be one of 'none', 'variance', not 'max'$",
        ),
        (
            {"rep_format": "int4"},
            ValueError,
            r"^rep_format must be one of 'bf16', 'int8', not 'int4'$",
        ),
        (
            {"representative": "x"},
            ValueError,
            r"^representative must be one of 'mean', 'rope_aware', not 'x'$",
        ),
        (
            {"rope_base": float("inf")},
            ValueError,
            r"^rope_base must be a finite number greater than 1 or None, not inf$",
        ),
        (
            {"rope_base": 1},
            ValueError,
            r"^rope_base must be a finite number greater than 1 or None, not 1$",
        ),
        (
            {"rope_base": True},
            ValueError,
            r"^rope_base must be a finite number greater than 1 or None, not True$",
        ),
        (
            {"rope_base": float("nan")},
            ValueError,
            r"^rope_base must be a finite number greater than 1 or None, not nan$",
        ),
        (
            {"rope_base": 10**400},  # too large for a float: no OverflowError from math
            ValueError,
            r"^rope_base must be a finite number greater than 1 or None, not 10{400}$",
        ),
        ({"coverage": float("nan")}, ValueError, r"^coverage must be in \(0, 1\], not nan$"),
        (
            {"coverage": 1e-9},  # coverage_q would be 0: a threshold of nothing
            ValueError,
            r"^coverage must be at least 2\*\*-17 \(coverage_q = round\(coverage \* "
            r"2\*\*coverage_frac_bits\) >= 1\), not 1e-09$",
        ),
        (
            {"n_buckets": 65536},  # 16-bit scores in 64-LSB buckets reach 1024 buckets
            ValueError,
            r"^n_buckets must be in 1\.\.1024 \(the buckets a score_bits=16 score reaches "
            r"with bucket_shift=6\), not 65536$",
        ),
        ({"n_buckets": 65537}, ValueError, r"^n_buckets must be in 1\.\.65536, not 65537$"),
        (
            {"hash_space": np.array(["pre_rope", "post_rope"])},  # no numpy truth-value error
            ValueError,
            r"^hash_space must be one of 'post_rope', 'pre_rope', not array\(",
        ),
        (
            {"bucket_mode": ["grid"]},
            ValueError,
            r"^bucket_mode must be one of 'relative', 'grid', not \['grid'\]$",
        ),
    ],
)
def test_bad_values_name_the_parameter(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ReSVConfig(**kw)


def test_numpy_integers_become_python_integers():
    """An ``np.int64`` field would make every width derived from it an ``np.int64``."""
    cfg = ReSVConfig(head_dim=np.int64(16), n_buckets=np.int32(8))
    assert type(cfg.head_dim) is int and type(cfg.n_buckets) is int
    assert cfg == ReSVConfig(head_dim=16, n_buckets=8)


def test_unknown_preset_lists_presets():
    with pytest.raises(
        ValueError, match=r"^config must be one of 'tiny', 'paper', 'edge', not 'x'$"
    ):
        preset("x")


def test_keyword_only():
    with pytest.raises(TypeError):
        ReSVConfig(128)


def test_table_bytes_per_cluster_follow_the_options():
    cfg = preset("paper").replace(rep_format="bf16", score_correction="none", representative="mean")
    assert cfg.table_bytes_per_cluster == 2 * 128 + 2  # BF16 key + 16-bit count
    assert cfg.replace(rep_format="int8").table_bytes_per_cluster == 128 + 2 + 2  # + scale
    assert cfg.replace(score_correction="variance").table_bytes_per_cluster == 258 + 2
    assert cfg.replace(representative="rope_aware").table_bytes_per_cluster == 258 + 2
    tiny = preset("tiny").replace(rep_format="bf16", score_correction="none")
    assert tiny.table_bytes_per_cluster == 2 * 16 + 1


def test_rope_base_none_means_no_rope():
    assert ReSVConfig(rope_base=None).rope_base is None


# ---- fuzzing: every configuration either constructs or is refused by name ------------------

#: Hypothesis examples per fuzz test: ``make test`` runs the default, ``make fuzz`` 10**4.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FIELDS = [f.name for f in dataclasses.fields(ReSVConfig)]
CHOICES = {
    name: typing.get_args(hint)
    for name, hint in typing.get_type_hints(ReSVConfig).items()
    if typing.get_origin(hint) is typing.Literal
}
#: Wrong types and non-finite or huge numbers, tried on every field.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400),
    st.just(np.int64(8)),
    st.just(np.float32(0.5)),
    st.just(np.array([1, 2])),
    st.just([1]),
)


def field_values(name: str) -> st.SearchStrategy:
    """Plausible values of field ``name`` (in range and just outside it), or junk."""
    if name in CHOICES:
        good = st.sampled_from(CHOICES[name])
    elif name == "centre_keys":
        good = st.booleans()
    elif name in ("coverage", "min_fraction"):
        good = st.floats(-0.5, 1.5) | st.floats(0, 1e-6) | st.sampled_from([0, 1])
    elif name == "rope_base":
        good = st.none() | st.floats(0.5, 1e6) | st.integers(0, 10**6)
    else:
        good = st.integers(0, 16) | st.integers(-2, 70) | st.integers(0, 1 << 17)
    return st.one_of(good, good, good, JUNK)


#: Messages start with the field they are about; a cross-field rule names its formula.
NAMED = re.compile(rf"^(resv\.)?({'|'.join(FIELDS)})\b|^count_bits \+ log2\(max_clusters\)")


def assert_refused_by_name(error: Exception) -> None:
    assert type(error) in (ValueError, TypeError), f"{type(error).__name__}: {error}"
    assert NAMED.match(str(error)), f"the message names no field: {error}"


def check_valid_config(cfg: ReSVConfig, seed: int) -> None:
    """Cheap invariants of a constructed configuration, and one bucketed WiCSum on it."""
    assert cfg.score_min < 0 < cfg.score_max and cfg.count_max >= 1
    assert 1 <= cfg.coverage_q <= 1 << cfg.coverage_frac_bits
    assert cfg.bucket_range_log2 > 0 and cfg.table_bytes_per_cluster > 0
    lut = bucket_lut(cfg)
    assert lut.shape == (cfg.n_buckets,) and lut[0] == 1 << cfg.lut_frac_bits
    rng = np.random.default_rng(seed)
    scores = quantize_scores(rng.standard_normal(8) * 4, cfg)
    counts = rng.integers(1, cfg.count_max + 1, 8)
    sel = wicsum_select_bucketed(scores, counts, cfg)
    # The top-scoring cluster sits in bucket 0 (full weight): something is always selected.
    assert sel.selected.size >= 1 and 0 <= sel.b_star < cfg.n_buckets
    if cfg.head_dim * cfg.hash_bits <= 1 << 16:
        assert cfg.planes.shape == (cfg.head_dim, cfg.hash_bits)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    base=st.sampled_from(sorted(PRESETS)),
    changes=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: field_values(n) for n in names})
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_configs(base, changes, seed):
    """A random configuration constructs (and then is usable) or is refused by name with a
    ``ValueError``/``TypeError``: never another exception, never a silent bad value."""
    try:
        cfg = preset(base).replace(**changes)
    except Exception as error:  # the type is what is checked
        assert_refused_by_name(error)
        event(f"refused: {type(error).__name__}")
        return
    event("valid")
    check_valid_config(cfg, seed)
