"""The core's host interface: commands, error codes, counters, payloads, the configuration check.

``Op`` (4 bits) and ``Error`` (3 bits) are ``amaranth.lib.enum.IntEnum``\\ s: the ``op``
and ``error`` fields of ``cmd`` and ``status``, and Python ints everywhere else (the golden
model's programs, the testbenches). ``PERF`` names the counters in ``perf_addr`` order;
``cmd_layout`` and ``STATUS_LAYOUT`` are the payloads of ``cmd`` and ``status``;
``lane_words`` packs BF16 vectors into ``vin`` beats and memory rows; ``check_core_config``
rejects the configurations the core does not support.
"""

from __future__ import annotations

import numpy as np
from amaranth.lib import data, enum

from golden.core import WORK_COUNTERS

from ..config import HWConfig, bits_for
from .contexts import check_contexts

__all__ = [
    "PERF",
    "STATUS_LAYOUT",
    "Error",
    "Op",
    "check_core_config",
    "cmd_layout",
    "lane_words",
]


class Op(enum.IntEnum, shape=4):
    """A command's ``op`` (see ``hw.core.core``)."""

    RESET_CTX = 1
    SET_BIAS = 2
    INGEST = 3
    QUERY = 4
    CLEAR_PERF = 5
    PREFILL = 6
    SWITCH_CTX = 7
    PREFETCH_CTX = 8


class Error(enum.IntEnum, shape=3):
    """A status beat's ``error`` (see ``hw.core.core``)."""

    OK = 0
    BAD_OP = 1
    EMPTY = 2
    FULL = 3
    BAD_ARG = 4
    BUS = 5


#: Performance counters, in ``perf_addr`` order: cycle counters, then the work counters of
#: ``golden.core.WORK_COUNTERS`` (cross-checked against the model), then error counts.
PERF = (
    "cycles",
    "busy_ingest",
    "busy_query",
    "mac_beats",
    "mac_stall",
    "hash_beats",
    "array_beats",
    "busy_prefill",
    "hcu_wait",
    "axi_read_wait",
    "axi_write_wait",
    "prefetched_rows",
    *WORK_COUNTERS,
    "bad_commands",
    "context_switches",
    "context_beats",
    "prefetch_beats",
    "prefetch_busy",
    "prefetch_wait",
)

#: The ``status`` payload: the command's ``op`` and its ``error``.
STATUS_LAYOUT = data.StructLayout({"op": 4, "error": 3})


def check_core_config(cfg: HWConfig) -> None:
    """``ValueError`` naming the parameter for configurations the core does not support."""
    r = cfg.resv
    if r.head_dim % cfg.mac_lanes:
        raise ValueError(
            f"head_dim ({r.head_dim}) must be a multiple of mac_lanes ({cfg.mac_lanes})"
        )
    row = 16 * cfg.mac_lanes
    if row % cfg.axi_data_bits:
        raise ValueError(
            f"axi_data_bits ({cfg.axi_data_bits}) must divide 16 * mac_lanes ({row}): "
            "a memory row of the core is one MAC beat"
        )
    if r.recent_tokens < 1:
        raise ValueError(f"recent_tokens must be at least 1 for the core, not {r.recent_tokens}")
    if cfg.hcu_batch > r.recent_tokens:
        raise ValueError(
            f"hcu_batch ({cfg.hcu_batch}) must be at most recent_tokens ({r.recent_tokens}) "
            "for the core: a batch ages the oldest tokens of the recent ring"
        )
    check_contexts(cfg)
    bpt = cfg.axi_beats_per_token
    if bpt > cfg.max_burst or 4096 % cfg.kv_token_bytes:
        raise ValueError(
            f"a cluster's key sum ({cfg.kv_token_bytes} bytes, axi_beats_per_token = {bpt}) "
            f"must be one burst for the core: at most max_burst ({cfg.max_burst}) beats, "
            "dividing 4 KiB (resv.head_dim a power of two)"
        )
    if cfg.token_id_bits > 24:
        raise ValueError(f"token_id_bits must be at most 24 for the core, not {cfg.token_id_bits}")
    if cfg.tile_tokens > r.head_dim:
        raise ValueError(
            f"tile_tokens ({cfg.tile_tokens}) must be at most head_dim ({r.head_dim}) for the "
            "core: its attention engine's MAC arrays are mac_lanes wide and head_dim / "
            "mac_lanes beats deep"
        )
    if cfg.frame_rows >= 1 << (cfg.token_id_bits + 1):
        raise ValueError(
            f"frame_rows ({cfg.frame_rows}) must be below 2**(token_id_bits + 1) "
            f"({1 << (cfg.token_id_bits + 1)}): a prefill's rows are counted in that width"
        )


def lane_words(x: np.ndarray, lanes: int) -> list[int]:
    """BF16 bit patterns (any shape, ``lanes`` dividing its size) → one integer per ``lanes``
    consecutive elements, element 0 in the LSBs: a ``vin`` beat, a memory row."""
    out = []
    for row in np.asarray(x).reshape(-1, lanes):
        v = 0
        for i, e in enumerate(row):
            v |= int(e) << (16 * i)
        out.append(v)
    return out


def cmd_layout(cfg: HWConfig) -> data.StructLayout:
    """The ``cmd`` payload: ``op``, ``arg``, and a ``PREFILL``'s ``rows`` and ``group``."""
    w = bits_for(cfg.frame_rows)
    return data.StructLayout({"op": 4, "arg": 32, "rows": w, "group": w})
