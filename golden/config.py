"""ReSV algorithm configuration: one frozen, keyword-only dataclass and its named presets.

Every ReSV parameter of shared/SPEC.md section 2 lives here and nowhere else; the hardware
configuration (``hw.config``) is built on top of it. Values are validated on construction,
so a bad configuration fails before any model or elaboration runs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from .checks import check_choice, check_int, lookup, plain_ints

__all__ = ["PRESETS", "RTL_RULE", "SPEC_RULE", "ReSVConfig", "preset"]

HashSpace = Literal["post_rope", "pre_rope"]
PrefillMode = Literal["mean", "union", "mass"]
Selection = Literal["bucketed", "exact"]
ClusterPolicy = Literal["greedy", "page_fallback"]
CoverageScope = Literal["clusters", "attended"]
ScoreCorrection = Literal["none", "variance"]
RepFormat = Literal["bf16", "int8"]
Representative = Literal["mean", "rope_aware"]
BucketMode = Literal["relative", "grid"]


def _as_float(x: int | float) -> float:
    """``float(x)``; an integer too large for a float is infinite (not an OverflowError)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf


@dataclass(frozen=True, kw_only=True)
class ReSVConfig:
    """Parameters of ReSV (hashing, clustering, WiCSum selection, retrieval).

    The defaults are the ``paper`` preset with the variant the bytes-to-quality benchmark
    chose on the real LLM stream (README "Choosing the defaults"); ``SPEC_RULE`` is the rule
    the hardware implements. ``docs/algorithm.md`` states every option's semantics.
    """

    #: Dimension d of one attention head's keys and queries.
    head_dim: int = 128
    #: Number H of random hyperplanes, i.e. signature bits (1..64).
    hash_bits: int = 32
    #: Hamming threshold T: a token joins its nearest cluster when the distance is <= T.
    threshold: int = 5
    #: Cluster-table entries per (layer, KV head); when full, tokens are force-joined.
    max_clusters: int = 4096
    #: WiCSum coverage: fraction of the weighted score mass the selection must reach.
    coverage: float = 0.95
    #: First tokens of the stream that are always attended (never selected via clusters).
    sink_tokens: int = 4
    #: Most recent tokens that are always attended; clustered once they age out.
    recent_tokens: int = 256
    #: Which keys are hashed: after RoPE (the paper) or before it (content only).
    hash_space: HashSpace = "pre_rope"
    #: Subtract a per-head bias (mean key of the first frame, BF16) before hashing.
    centre_keys: bool = True
    #: Frame prefill: one selection from the block's mean query (``mean``), the union of the
    #: per-token selections (``union``), or WiCSum on the block's summed per-row cluster
    #: probabilities (``mass``); docs/algorithm.md.
    prefill_mode: PrefillMode = "mass"
    #: Clustering: ``greedy`` (SPEC: a token that joins nothing within T founds a cluster) or
    #: ``page_fallback`` (it joins the fallback cluster of its position's page of
    #: ``page_tokens`` tokens, founding it if the page has none yet); docs/algorithm.md.
    cluster_policy: ClusterPolicy = "greedy"
    #: Page size (tokens) of ``page_fallback``.
    page_tokens: int = 16
    #: Cluster score: ``none`` (q . rep / sqrt(d)) or ``variance`` (+ |q|^2 v_c / (2d), v_c the
    #: members' mean per-dimension key variance, from one sum of |k|^2 per cluster).
    score_correction: ScoreCorrection = "variance"
    #: Floor of the selection: clusters (ranked by their summed normalised WiCSum weight)
    #: are added until the selection holds at least this fraction of the clustered tokens.
    min_fraction: float = 0.03
    #: Representative keys as stored in the table: ``bf16`` or ``int8`` (per-cluster scale).
    rep_format: RepFormat = "int8"
    #: Representative: ``mean`` of the post-RoPE member keys, or ``rope_aware``: the mean
    #: pre-RoPE key rotated to the members' mean position at query time.
    representative: Representative = "mean"
    #: Selection used by the streaming cache: bit-exact bucketed (hardware) or exact float.
    selection: Selection = "bucketed"
    #: What ``coverage`` is a fraction of: the clusters' estimated mass (``clusters``, SPEC)
    #: or all the attention, the tokens attended anyway (sinks, recent window, the frame's
    #: own tokens) included (``attended``): a query whose attention stays on those tokens
    #: fetches nothing. docs/algorithm.md.
    coverage_scope: CoverageScope = "attended"
    #: Fractional bits of the fixed-point log2 scores fed to the WTU.
    score_frac_bits: int = 8
    #: Total width of the signed fixed-point score (scores saturate to this width).
    score_bits: int = 16
    #: log2 of the bucket width in score LSBs.
    bucket_shift: int = 6
    #: Number of WTU buckets; clusters further than the last bucket carry no mass.
    n_buckets: int = 64
    #: Bucket of a score ``s`` under the maximum ``m``: ``relative`` ``(m - s) >> bucket_shift``
    #: (SPEC) or ``grid`` ``(m >> bucket_shift) - (s >> bucket_shift)`` (buckets on the
    #: score's own grid: the WTU histograms clusters as they arrive, one pass over the row).
    bucket_mode: BucketMode = "relative"
    #: Fractional bits of the exp2 look-up table L[b].
    lut_frac_bits: int = 16
    #: Fractional bits of the fixed-point coverage.
    coverage_frac_bits: int = 16
    #: Width of a cluster's token count (the paper: 16-bit counts in an 8 KB memory).
    count_bits: int = 16
    #: RoPE base frequency; None: the stream has no RoPE (golden only).
    rope_base: float | None = 10000.0
    #: Seed of the random hyperplanes.
    plane_seed: int = 0

    def __post_init__(self) -> None:
        plain_ints(self)
        check_int("head_dim", self.head_dim, 2)
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs), not {self.head_dim!r}")
        check_int("hash_bits", self.hash_bits, 1, 64)
        check_int("threshold", self.threshold, 0, self.hash_bits)
        check_int("max_clusters", self.max_clusters, 1)
        if isinstance(self.coverage, bool) or not isinstance(self.coverage, int | float):
            raise TypeError(f"coverage must be a number, not {self.coverage!r}")
        if not 0.0 < self.coverage <= 1.0:
            raise ValueError(f"coverage must be in (0, 1], not {self.coverage!r}")
        check_int("sink_tokens", self.sink_tokens, 0)
        check_int("recent_tokens", self.recent_tokens, 0)
        check_choice("hash_space", self.hash_space, ("post_rope", "pre_rope"))
        if not isinstance(self.centre_keys, bool):
            raise TypeError(f"centre_keys must be a bool, not {self.centre_keys!r}")
        check_choice("prefill_mode", self.prefill_mode, ("mean", "union", "mass"))
        check_choice("selection", self.selection, ("bucketed", "exact"))
        check_choice("coverage_scope", self.coverage_scope, ("clusters", "attended"))
        check_choice("cluster_policy", self.cluster_policy, ("greedy", "page_fallback"))
        check_int("page_tokens", self.page_tokens, 1)
        check_choice("score_correction", self.score_correction, ("none", "variance"))
        check_choice("rep_format", self.rep_format, ("bf16", "int8"))
        if isinstance(self.min_fraction, bool) or not isinstance(self.min_fraction, int | float):
            raise TypeError(f"min_fraction must be a number, not {self.min_fraction!r}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], not {self.min_fraction!r}")
        check_choice("representative", self.representative, ("mean", "rope_aware"))
        check_int("score_frac_bits", self.score_frac_bits, 0, 16)
        check_int("score_bits", self.score_bits, self.score_frac_bits + 2, 32)
        check_int("bucket_shift", self.bucket_shift, 0, self.score_bits - 1)
        check_int("n_buckets", self.n_buckets, 1, 1 << 16)
        # A score_bits score is at most 2**score_bits - 1 LSBs below the maximum: buckets past
        # 2**(score_bits - bucket_shift) are never reached, silent dead weight (and WTU cycles).
        reach = 1 << (self.score_bits - self.bucket_shift)
        if self.n_buckets > reach:
            raise ValueError(
                f"n_buckets must be in 1..{reach} (the buckets a score_bits={self.score_bits} "
                f"score reaches with bucket_shift={self.bucket_shift}), not {self.n_buckets!r}"
            )
        check_choice("bucket_mode", self.bucket_mode, ("relative", "grid"))
        check_int("lut_frac_bits", self.lut_frac_bits, 1, 32)
        check_int("coverage_frac_bits", self.coverage_frac_bits, 1, 32)
        if self.coverage_q < 1:
            # coverage_q = 0 would make the WTU's threshold 0: it selects nothing useful.
            raise ValueError(
                f"coverage must be at least 2**-{self.coverage_frac_bits + 1} "
                f"(coverage_q = round(coverage * 2**coverage_frac_bits) >= 1), "
                f"not {self.coverage!r}"
            )
        check_int("count_bits", self.count_bits, 1, 32)
        base = self.rope_base
        if base is not None and (
            isinstance(base, bool)
            or not isinstance(base, int | float)
            or not (_as_float(base) > 1.0 and math.isfinite(_as_float(base)))
        ):
            raise ValueError(
                f"rope_base must be a finite number greater than 1 or None, not {base!r}"
            )
        check_int("plane_seed", self.plane_seed, 0)
        mass_bits = self.count_bits + math.ceil(math.log2(self.max_clusters)) + self.lut_frac_bits
        if mass_bits > 62:
            raise ValueError(
                "count_bits + log2(max_clusters) + lut_frac_bits must be <= 62 (the WTU mass "
                f"accumulator), not {mass_bits}"
            )

    def replace(self, **changes: Any) -> ReSVConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    # Derived values ------------------------------------------------------------------------

    @property
    def coverage_q(self) -> int:
        """Coverage in fixed point: ``round(coverage * 2**coverage_frac_bits)``."""
        return int(np.rint(self.coverage * (1 << self.coverage_frac_bits)))

    @property
    def bucket_range_log2(self) -> float:
        """Score range the buckets span, in log2 units (SPEC: should be >= 16)."""
        return self.n_buckets * (1 << self.bucket_shift) / (1 << self.score_frac_bits)

    @property
    def table_bytes_per_cluster(self) -> int:
        """Cluster-table bytes read per cluster when a query scores the table.

        The representative key (BF16: 2 bytes per dimension; int8: 1 byte per dimension plus
        a BF16 scale), the count (``count_bits``), a BF16 variance with ``score_correction =
        "variance"`` and a 16-bit mean position with ``representative = "rope_aware"``.
        """
        rep = 2 * self.head_dim if self.rep_format == "bf16" else self.head_dim + 2
        extra = 2 * (self.score_correction == "variance") + 2 * (
            self.representative == "rope_aware"
        )
        return rep + math.ceil(self.count_bits / 8) + extra

    @property
    def score_min(self) -> int:
        return -(1 << (self.score_bits - 1))

    @property
    def score_max(self) -> int:
        return (1 << (self.score_bits - 1)) - 1

    @property
    def count_max(self) -> int:
        return (1 << self.count_bits) - 1

    @property
    def score_scale(self) -> float:
        """Factor from ``q . k`` to the fixed-point log2 score: log2(e) / sqrt(d) * 2**frac."""
        return math.log2(math.e) / math.sqrt(self.head_dim) * (1 << self.score_frac_bits)

    @cached_property
    def planes(self) -> np.ndarray:
        """The random hyperplanes, (head_dim, hash_bits) float32, from ``plane_seed``."""
        rng = np.random.default_rng(self.plane_seed)
        planes = rng.standard_normal((self.head_dim, self.hash_bits)).astype(np.float32)
        planes.setflags(write=False)
        return planes


#: The selection rule the hardware implements (SPEC section 2, before this project's
#: variants): ``hw.config.HWConfig`` refuses a ``ReSVConfig`` that differs in these fields.
RTL_RULE: dict[str, Any] = {
    "cluster_policy": "greedy",
    "score_correction": "none",
    "rep_format": "bf16",
    "representative": "mean",
    "selection": "bucketed",
    "coverage_scope": "clusters",
    "min_fraction": 0.0,
}
#: That rule with the coverage and prefill mode chosen for it (README "Choosing the
#: defaults"): the hardware presets' algorithm.
SPEC_RULE: dict[str, Any] = {**RTL_RULE, "coverage": 0.9, "prefill_mode": "mean"}

PRESETS: dict[str, ReSVConfig] = {
    # Small enough for exhaustive unit tests and fast RTL simulation.
    "tiny": ReSVConfig(
        head_dim=16,
        hash_bits=16,
        threshold=3,
        max_clusters=16,
        sink_tokens=2,
        recent_tokens=8,
        score_frac_bits=4,
        score_bits=12,
        bucket_shift=4,
        n_buckets=16,
        lut_frac_bits=12,
        coverage_frac_bits=12,
        count_bits=8,
    ),
    # The paper's sizes (VideoLLM-Online heads, 4096-entry cluster table of 16-bit counts).
    "paper": ReSVConfig(),
    # Edge part: same algorithm, smaller cluster table.
    "edge": ReSVConfig(max_clusters=1024),
}


def preset(name: str) -> ReSVConfig:
    """The named preset; raises ``ValueError`` listing the presets for an unknown name."""
    return lookup("config", PRESETS, name)
