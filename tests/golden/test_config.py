import dataclasses

import pytest

from golden.config import PRESETS, ReSVConfig, preset


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
    ],
)
def test_bad_values_name_the_parameter(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ReSVConfig(**kw)


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
