"""Hardware configuration: one frozen, keyword-only dataclass on top of ``ReSVConfig``.

Every generator parameter of ``hw/`` comes from ``HWConfig`` and nothing else; widths are
derived here (properties), never retyped in a module. The algorithm parameters (hash bits,
threshold, table size, score/bucket fixed point) stay in ``cfg.resv`` so that the golden
model and the hardware read the very same values.

Later issues add their fields here (e.g. ``mac_lanes`` for the datapath, ``chunk_tokens``
for the KVMU); every field has a default so presets and callers keep working.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from golden.config import PRESETS as RESV_PRESETS
from golden.config import ReSVConfig

__all__ = ["PRESETS", "HWConfig", "bits_for", "ceil_log2", "check_config", "preset"]


def ceil_log2(n: int) -> int:
    """Smallest ``k`` with ``2**k >= n`` (0 for ``n <= 1``)."""
    return max(0, (int(n) - 1).bit_length())


def bits_for(value: int) -> int:
    """Unsigned width able to hold ``0..value`` (at least 1)."""
    return max(1, int(value).bit_length())


def check_config(owner: object, cfg: object) -> None:
    """``TypeError`` unless ``cfg`` is an ``HWConfig``; raised before ``owner`` (an
    elaboratable being constructed) is used, so it is silenced as Amaranth does itself."""
    if not isinstance(cfg, HWConfig):
        owner._MustUse__silence = True  # no "created but never used" warning on top
        raise TypeError(f"cfg must be an HWConfig, not {cfg!r}")


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class HWConfig:
    """Parameters of the DRE hardware (HCU, WTU, top-k baseline)."""

    #: Algorithm parameters shared with the golden model.
    resv: ReSVConfig
    #: HCU comparators: signatures compared per cycle (the paper: 16). Power of two.
    hcu_lanes: int = 16
    #: Slots of the top-k baseline's insertion sorter; a larger ``k`` takes several passes.
    topk_k: int = 64
    #: Width of the token id carried through the HCU (tokens of one context).
    token_id_bits: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.resv, ReSVConfig):
            raise TypeError(f"resv must be a ReSVConfig, not {self.resv!r}")
        mc = self.resv.max_clusters
        if isinstance(self.hcu_lanes, bool) or not isinstance(self.hcu_lanes, int):
            raise TypeError(f"hcu_lanes must be an integer, not {self.hcu_lanes!r}")
        if not (1 <= self.hcu_lanes <= mc and self.hcu_lanes & (self.hcu_lanes - 1) == 0):
            raise ValueError(f"hcu_lanes must be a power of two in 1..{mc}, not {self.hcu_lanes!r}")
        _check_int("topk_k", self.topk_k, 1, mc)
        _check_int("token_id_bits", self.token_id_bits, 1, 32)

    def replace(self, **changes: Any) -> HWConfig:
        """A copy with ``changes`` applied (and validated); ``resv=`` may be a dict of changes."""
        if isinstance(changes.get("resv"), dict):
            changes["resv"] = self.resv.replace(**changes["resv"])
        return dataclasses.replace(self, **changes)

    # Derived widths ------------------------------------------------------------------------

    @property
    def max_clusters(self) -> int:
        return self.resv.max_clusters

    @property
    def cluster_id_bits(self) -> int:
        """Width of a cluster index ``0..max_clusters-1``."""
        return max(1, ceil_log2(self.max_clusters))

    @property
    def occupancy_bits(self) -> int:
        """Width of a number of clusters ``0..max_clusters``."""
        return bits_for(self.max_clusters)

    @property
    def distance_bits(self) -> int:
        """Width of a Hamming distance ``0..hash_bits``."""
        return bits_for(self.resv.hash_bits)

    @property
    def hcu_rows(self) -> int:
        """Rows of the HCU signature memory (``hcu_lanes`` signatures each)."""
        return -(-self.max_clusters // self.hcu_lanes)

    @property
    def bucket_bits(self) -> int:
        """Width of a bucket index ``0..n_buckets-1``."""
        return max(1, ceil_log2(self.resv.n_buckets))

    @property
    def lut_bits(self) -> int:
        """Width of an exp2 table entry: ``L[0] = 2**lut_frac_bits``."""
        return self.resv.lut_frac_bits + 1

    @property
    def coverage_q_bits(self) -> int:
        """Width of ``coverage_q`` in ``1..2**coverage_frac_bits``."""
        return self.resv.coverage_frac_bits + 1

    @property
    def bucket_count_bits(self) -> int:
        """Width of a bucket's token count ``cnt_b`` (all clusters at ``count_max``)."""
        return bits_for(self.max_clusters * self.resv.count_max)

    @property
    def mass_bits(self) -> int:
        """Width of the total mass ``M`` and of the threshold ``theta``."""
        return bits_for(self.max_clusters * self.resv.count_max << self.resv.lut_frac_bits)

    @property
    def buckets_scanned_bits(self) -> int:
        return bits_for(self.resv.n_buckets)

    @property
    def topk_passes_bits(self) -> int:
        return bits_for(-(-self.max_clusters // self.topk_k))


PRESETS: dict[str, HWConfig] = {
    # Unit tests and RTL regressions: 16 clusters, 4 lanes (4 memory rows).
    "tiny": HWConfig(resv=RESV_PRESETS["tiny"], hcu_lanes=4, topk_k=4, token_id_bits=10),
    # The paper's DRE: 4096-entry table, 16 XOR+popcount lanes.
    "paper": HWConfig(resv=RESV_PRESETS["paper"], hcu_lanes=16, topk_k=64),
    # Edge part: 1024-entry table.
    "edge": HWConfig(resv=RESV_PRESETS["edge"], hcu_lanes=16, topk_k=32),
}


def preset(name: str) -> HWConfig:
    """The named hardware preset; ``ValueError`` listing the presets for an unknown name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"config must be one of {', '.join(map(repr, PRESETS))}, not {name!r}"
        ) from None
