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
import math
from dataclasses import dataclass
from typing import Any

from golden.checks import check_int, lookup, plain_ints
from golden.config import PRESETS as RESV_PRESETS
from golden.config import RTL_RULE, SPEC_RULE, ReSVConfig

__all__ = [
    "HW_RULE",
    "MAX_BUCKETS",
    "PRESETS",
    "HWConfig",
    "apply_settings",
    "bits_for",
    "ceil_log2",
    "check_config",
    "parse_settings",
    "preset",
    "settings_changes",
]


#: Most WTU buckets the generator is asked to build: its per-bucket logic grows as
#: ``n_buckets**2`` (measured at ``tiny``: 64 buckets 1.1 MB of Verilog in 3 s, 256 buckets
#: 16 MB in 45 s; the presets use 16 and 64).
MAX_BUCKETS = 256


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


@dataclass(frozen=True, kw_only=True)
class HWConfig:
    """Parameters of the DRE hardware (HCU, WTU, top-k baseline)."""

    #: Algorithm parameters shared with the golden model.
    resv: ReSVConfig
    #: HCU comparators: signatures compared per cycle (the paper: 16). Power of two.
    hcu_lanes: int = 16
    #: HCU tokens compared per signature-row read (a batch); 1, 2, 4 or 8.
    hcu_batch: int = 1
    #: Slots of the top-k baseline's insertion sorter; a larger ``k`` takes several passes.
    topk_k: int = 64
    #: Selector lanes: clusters the weighted quick-select baseline partitions per cycle (its
    #: score memories are ``wtu_lanes`` banks) and clusters per beat of a WTU with ``grid``
    #: buckets (``hw.dre.wtu``, "Lanes"). Power of two. The ``relative`` WTU and the DRE's WTU
    #: (the core's) ingest one cluster per cycle whatever this value.
    wtu_lanes: int = 1
    #: Width of the token id carried through the HCU (tokens of one context).
    token_id_bits: int = 16
    #: Datapath MAC lanes: BF16 products summed per cycle by the pairwise tree. Power of two.
    mac_lanes: int = 16
    #: MacArray: query rows held stationary, i.e. FP32 scores per streamed K vector (the
    #: paper: 64 x 64 MAC trees, so the default; ``paper`` and ``edge`` keep it). 1..1024.
    mac_rows: int = 64
    #: MacArray: BF16 elements of a vector per beat, the lanes of each row's pairwise tree.
    #: Power of two in 1..256.
    mac_cols: int = 64
    #: Every MacTree (each MacArray row, the core's MAC tree) registers its operands before
    #: its multipliers (1) or multiplies them as they arrive (0): one more cycle of latency,
    #: and a MacArray's K beat, which every row shares, then drives one register per row
    #: instead of every row's multiplier inputs, a fanout of thousands of gates at 64 lanes
    #: that unbuffered it set the paper core's clock. 0 or 1.
    mac_in_register: int = 1
    #: Core: query rows one ``PREFILL`` may carry (a frame's tokens x the GQA group's heads),
    #: held in the core's query buffer (``frame_rows x head_dim`` BF16) and in the tiled
    #: attention engine's FIFOs, all with one selection. 1..4096.
    frame_rows: int = 1024
    #: KVMU: token slots per KV chunk (a cluster owns a linked list of chunks). Power of two.
    chunk_tokens: int = 32
    #: KVMU: physical chunks of the offloaded KV area (chunk table depth). Power of two.
    kv_chunks: int = 8192
    #: KVMU: byte address of chunk 0 (a multiple of 4096): context 0's region (the core).
    kv_base: int = 0
    #: Core: (layer, KV head) contexts whose state lives in DRAM, each in its own region
    #: (its KV chunk pool, then its stored tables: ``hw.core.contexts``); ``SWITCH_CTX``
    #: moves between them. 1..65536.
    contexts: int = 1
    #: KVMU AXI4 master: address width.
    axi_addr_bits: int = 32
    #: KVMU AXI4 master: data width (bits), a power of two in 8..1024.
    axi_data_bits: int = 128
    #: KVMU AXI4 master: longest burst in beats (AXI4 INCR: 1..256).
    max_burst: int = 256
    #: Core: the prefetcher's bursts (beats, a power of two, 1..256; ``max_burst`` and 4 KiB
    #: cap it too). It runs behind the other commands with one burst in flight per direction,
    #: so their AXI transfers wait behind one of its bursts at most (``hw.core.mover``).
    prefetch_burst: int = 4
    #: RoPE unit: log2 of the entries of its full-circle cos/sin tables (phase resolution).
    rope_lut_bits: int = 10
    #: RoPE unit: pairs rotated per cycle (a power of two dividing ``head_dim / 2``); each
    #: pair has its own phase multiplier, table read ports and rotation.
    rope_pairs: int = 1
    #: Vector unit: fractional bits of the fixed-point exponent fed to the exp2 table
    #: (``2**exp_frac_bits`` table entries).
    exp_frac_bits: int = 10
    #: Tile softmax unit (``hw.datapath.TileSoftmax``): tokens of one attention tile ``T`` of
    #: the tiled order (``golden.softmax.tiled_attention``), the FP32 scores it takes per row
    #: and cycle. A power of two in 1..256 and at most ``mac_chunks * mac_cols``: P's tile row
    #: is held in the MAC array's stationary storage for ``P x V``.
    tile_tokens: int = 64
    #: Tiled attention engine: stationary copies of each MAC array (1 or 2). With 2 (a
    #: double buffer) the next tile's K and V load while the current tile's rows stream, at
    #: twice the arrays' stationary registers; with 1 a tile loads only once the previous one
    #: has left both arrays.
    tile_buffers: int = 2
    #: Core: the prefetch buffer's rows (``16 * mac_lanes``-bit K or V rows). The KVMU's
    #: reads of a selection start as soon as the WTU selects, and their rows wait here while
    #: the engine still takes the query rows and the kept tokens; the engine then drains
    #: them at a row per cycle, faster than the bus delivers them. 0: no buffer (the fetch
    #: waits for the engine, as the bus's back-pressure). 0..65536.
    prefetch_rows: int = 0

    def __post_init__(self) -> None:
        plain_ints(self)
        if not isinstance(self.resv, ReSVConfig):
            raise TypeError(f"resv must be a ReSVConfig, not {self.resv!r}")
        mc = self.resv.max_clusters
        if isinstance(self.hcu_lanes, bool) or not isinstance(self.hcu_lanes, int):
            raise TypeError(f"hcu_lanes must be an integer, not {self.hcu_lanes!r}")
        if not (1 <= self.hcu_lanes <= mc and self.hcu_lanes & (self.hcu_lanes - 1) == 0):
            raise ValueError(f"hcu_lanes must be a power of two in 1..{mc}, not {self.hcu_lanes!r}")
        if isinstance(self.hcu_batch, bool) or not isinstance(self.hcu_batch, int):
            raise TypeError(f"hcu_batch must be an integer, not {self.hcu_batch!r}")
        if self.hcu_batch not in (1, 2, 4, 8):
            raise ValueError(f"hcu_batch must be a power of two in 1..8, not {self.hcu_batch!r}")
        check_int("topk_k", self.topk_k, 1, mc)
        check_int("wtu_lanes", self.wtu_lanes, 1, 256)
        if self.wtu_lanes & (self.wtu_lanes - 1):
            raise ValueError(f"wtu_lanes must be a power of two in 1..256, not {self.wtu_lanes!r}")
        check_int("token_id_bits", self.token_id_bits, 1, 32)
        check_int("mac_lanes", self.mac_lanes, 1, 256)
        if self.mac_lanes & (self.mac_lanes - 1):
            raise ValueError(f"mac_lanes must be a power of two in 1..256, not {self.mac_lanes!r}")
        check_int("mac_rows", self.mac_rows, 1, 1024)
        check_int("mac_cols", self.mac_cols, 1, 256)
        if self.mac_cols & (self.mac_cols - 1):
            raise ValueError(f"mac_cols must be a power of two in 1..256, not {self.mac_cols!r}")
        check_int("mac_in_register", self.mac_in_register, 0, 1)
        check_int("frame_rows", self.frame_rows, 1, 4096)
        check_int("rope_lut_bits", self.rope_lut_bits, 2, 16)
        check_int("rope_pairs", self.rope_pairs, 1, 256)
        half = self.resv.head_dim // 2
        if self.rope_pairs & (self.rope_pairs - 1) or half % self.rope_pairs:
            raise ValueError(
                f"rope_pairs must be a power of two dividing resv.head_dim / 2 ({half}), "
                f"not {self.rope_pairs!r}"
            )
        check_int("exp_frac_bits", self.exp_frac_bits, 1, 16)
        check_int("tile_tokens", self.tile_tokens, 1, 256)
        if self.tile_tokens & (self.tile_tokens - 1):
            raise ValueError(
                f"tile_tokens must be a power of two in 1..256, not {self.tile_tokens!r}"
            )
        check_int("tile_buffers", self.tile_buffers, 1, 2)
        check_int("prefetch_rows", self.prefetch_rows, 0, 1 << 16)
        fit = self.mac_chunks * self.mac_cols
        if self.tile_tokens > fit:
            raise ValueError(
                f"tile_tokens must be at most mac_chunks * mac_cols ({fit}: P's tile row fills "
                f"the MAC array's stationary storage for P x V), not {self.tile_tokens!r}"
            )
        self._check_kvmu()
        self._check_implemented()

    def _check_implemented(self) -> None:
        # Golden options the RTL does not implement yet are refused, never simulated against
        # a golden model the hardware cannot match (golden.config.RTL_RULE).
        for name, value in RTL_RULE.items():
            got = getattr(self.resv, name)
            if got != value:
                raise ValueError(
                    f"resv.{name} must be {value!r} for the hardware (the RTL does not "
                    f"implement {got!r} yet; golden.cache models it), not {got!r}"
                )
        if self.resv.n_buckets > MAX_BUCKETS:
            raise ValueError(
                f"resv.n_buckets must be in 1..{MAX_BUCKETS} for the hardware (the WTU's bucket "
                f"logic grows as n_buckets**2), not {self.resv.n_buckets!r}"
            )
        if self.resv.rope_base is None:
            raise ValueError(
                "resv.rope_base must be a number for the hardware (its RoPE unit always "
                "rotates), not None"
            )

    def _check_kvmu(self) -> None:
        for name, lo, hi in (
            ("chunk_tokens", 1, 1 << 16),
            ("kv_chunks", 1, 1 << 24),
            ("axi_addr_bits", 12, 64),
            ("axi_data_bits", 8, 1024),
            ("max_burst", 1, 256),
            ("prefetch_burst", 1, 256),
            ("contexts", 1, 1 << 16),
        ):
            value = getattr(self, name)
            check_int(name, value, lo, hi)
            if name not in ("axi_addr_bits", "max_burst", "contexts") and value & (value - 1):
                raise ValueError(f"{name} must be a power of two in {lo}..{hi}, not {value!r}")
        if self.kv_token_bytes % (self.axi_data_bits // 8):
            raise ValueError(
                f"axi_data_bits must divide the token's KV bits ({8 * self.kv_token_bytes}), "
                f"not {self.axi_data_bits!r}"
            )
        if isinstance(self.kv_base, bool) or not isinstance(self.kv_base, int):
            raise TypeError(f"kv_base must be an integer, not {self.kv_base!r}")
        end = self.kv_base + self.kv_chunks * self.chunk_tokens * self.kv_token_bytes
        if self.kv_base < 0 or self.kv_base % 4096 or end > 1 << self.axi_addr_bits:
            raise ValueError(
                f"kv_base must be a multiple of 4096 with the KV area inside "
                f"{self.axi_addr_bits}-bit addresses, not {self.kv_base!r}"
            )

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
    def kv_token_bytes(self) -> int:
        """Bytes of one token's KV: K and V of ``head_dim`` BF16 values each."""
        return 4 * self.resv.head_dim

    @property
    def kv_chunk_bits(self) -> int:
        """Width of a chunk index ``0..kv_chunks-1``."""
        return max(1, ceil_log2(self.kv_chunks))

    @property
    def kv_fill_bits(self) -> int:
        """Width of a chunk's fill count ``0..chunk_tokens``."""
        return bits_for(self.chunk_tokens)

    @property
    def axi_beats_per_token(self) -> int:
        return self.kv_token_bytes * 8 // self.axi_data_bits

    @property
    def mac_chunks(self) -> int:
        """Beats of ``mac_cols`` elements of a ``head_dim`` vector: the MacArray's query
        memory depth per row (the longest vector it takes)."""
        return -(-self.resv.head_dim // self.mac_cols)

    @property
    def quickselect_key_bits(self) -> int:
        """Width of the quick-select's key: biased score, then the inverted cluster id."""
        return self.resv.score_bits + self.cluster_id_bits

    @property
    def topk_passes_bits(self) -> int:
        return bits_for(-(-self.max_clusters // self.topk_k))


#: The selection rule of the hardware presets: the SPEC's rule with grid buckets, the
#: default chosen by measurement (README "Choosing the defaults": grid buckets cost at most
#: 0.4 points of bytes on the benchmark streams and let the WTU read its row once, about
#: half the cycles). ``resv={"bucket_mode": "relative"}`` gives the SPEC's two-pass rule.
HW_RULE: dict[str, Any] = {**SPEC_RULE, "bucket_mode": "grid"}

PRESETS: dict[str, HWConfig] = {
    # Unit tests and RTL regressions: 16 clusters, 4 lanes (4 memory rows).
    "tiny": HWConfig(
        resv=RESV_PRESETS["tiny"].replace(**HW_RULE),
        hcu_lanes=4,
        topk_k=4,
        wtu_lanes=4,
        token_id_bits=10,
        mac_lanes=4,
        mac_rows=4,
        mac_cols=4,
        mac_in_register=0,  # a 4-row array: the K beat's fanout is small
        frame_rows=16,
        chunk_tokens=4,
        # A pool for a whole context (2**token_id_bits tokens in 4-token chunks, plus each
        # cluster's partly filled tail chunk): a run never loses K/V (FULL would say so).
        kv_chunks=512,
        contexts=4,  # a few contexts in DRAM: the regressions interleave them
        axi_data_bits=64,
        max_burst=16,
        rope_lut_bits=8,
        rope_pairs=2,  # mac_lanes / 2: RoPE keeps pace with the vector beats
        exp_frac_bits=8,
        tile_tokens=4,  # mac_cols: one tile row per stationary beat of the 4 x 4 array
        prefetch_rows=16,  # two fetched tokens (8 rows each): a selection overflows it
    ),
    # The paper's machine: 4096-entry table, 16 XOR+popcount lanes. 4-token KV chunks: on the
    # real bench trace a cluster holds ~2.6 tokens, so 4-token chunks fill 55 % of the
    # off-device KV area (32-token ones 8 %) and still read 1.7 KB per burst
    # (python -m sim.bench_kvmu, "Chunk size").
    "paper": HWConfig(
        resv=RESV_PRESETS["paper"].replace(**HW_RULE),
        hcu_lanes=16,
        topk_k=64,
        wtu_lanes=16,
        chunk_tokens=4,
        # The paper's 64-wide datapath: a vector is 2 beats, the attention engine's arrays
        # are 64 (array A: tile_tokens x 64, the paper's 64 x 64) and 128 x 64 (array B).
        mac_lanes=64,
        axi_data_bits=256,  # the paper's 256-bit AXI: 4 beats per 64-lane BF16 row
        # Llama-3-8B's 32 layers x 8 KV heads, each a 32 MiB region of DRAM (its KV pool and
        # stored tables): 8 GiB of addresses.
        contexts=256,
        axi_addr_bits=40,
        rope_pairs=32,  # mac_lanes / 2: a vector rotated in 2 cycles, its 2 beats
        tile_tokens=64,  # the paper's 64-wide vector unit, one tile per row of the 64 x 64 array
        # 128 KiB of fetched rows (a third of the paper's 384 KB per core): the KV of 256
        # tokens read while the engine takes a frame's rows and its kept tokens.
        prefetch_rows=1024,
    ),
    # Edge part: 1024-entry table.
    "edge": HWConfig(
        resv=RESV_PRESETS["edge"].replace(**HW_RULE),
        hcu_lanes=16,
        topk_k=32,
        wtu_lanes=16,
        chunk_tokens=4,
        rope_pairs=8,
        tile_tokens=64,
    ),
}


def preset(name: str) -> HWConfig:
    """The named hardware preset; ``ValueError`` listing the presets for an unknown name."""
    return lookup("config", PRESETS, name)


def parse_settings(items: list[str]) -> dict[str, int | float]:
    """``--set FIELD=VALUE`` options → ``{FIELD: value}``, an integer where the value is one,
    else a finite float (``resv.coverage=0.4``); ``ValueError`` naming a bad one."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = math.nan
        if not sep or not name.strip() or not math.isfinite(value):
            raise ValueError(f"--set must be FIELD=NUMBER, not {item!r}")
        out[name.strip()] = value
    return out


def apply_settings(cfg: HWConfig, settings: dict[str, int | float]) -> HWConfig:
    """``cfg`` with fields changed: ``FIELD`` of ``HWConfig`` or ``resv.FIELD`` of its
    ``ReSVConfig``; ``ValueError`` naming an unknown field or a bad value (the values are
    validated as the presets' are: an integer field rejects ``1.5``)."""
    known = {f.name for f in dataclasses.fields(cfg)} - {"resv"}
    known |= {f"resv.{f.name}" for f in dataclasses.fields(cfg.resv)}
    bad = sorted(set(settings) - known)
    if bad:
        raise ValueError(
            f"--set must name an HWConfig field ({', '.join(sorted(known))}), not {bad[0]!r}"
        )
    try:
        return cfg.replace(**settings_changes(settings)) if settings else cfg
    except TypeError as exc:
        raise ValueError(f"--set: {exc}") from None


def settings_changes(settings: dict[str, int | float]) -> dict:
    """``{FIELD: v, "resv.F": w}`` → the ``HWConfig.replace`` changes ``{FIELD: v, "resv":
    {"F": w}}``."""
    plain = {k: v for k, v in settings.items() if not k.startswith("resv.")}
    resv = {k[5:]: v for k, v in settings.items() if k.startswith("resv.")}
    return {**plain, **({"resv": resv} if resv else {})}
