"""Cheap analytical area model of the DRE units, for the design-space sweep.

Contract: :func:`estimate_area` returns the area (µm², OSU 0.18 µm) of ``hcu``, ``wtu`` or
``dre`` at an ``HWConfig`` without running any tool (microseconds instead of Yosys'
seconds to minutes), or ``None`` for a unit it has no model of; :func:`breakdown` gives its
parts. The sweep reports it next to the synthesised area, and ``tests/synth`` checks it
against synthesis: on the points of the test the model is within :data:`ERROR_BOUND`
(relative) of Yosys.

Structure (the units' docstrings fix the memory shapes; the logic terms follow their
datapaths):
- memories, shapes from the configuration: HCU signature memory ``(H·L) × ceil(C/L)`` 1R1W
  and count memory ``(count_bits·L) × ceil(C/L)`` 2R1W; WTU score, count and ``next``
  memories ``C`` deep, 1R1W each. A memory with at least ``sram_min_bits`` bits is an SRAM
  macro costed by :func:`synth.sram.estimate` (the flow's own model, so identical); a smaller
  one is flip-flops: ``bits·a_bit + width·(depth-1)·read_ports·a_mux + depth·a_row``; one
  row deep, it is plain registers (``bits·a_reg``).
- logic: HCU ``L·H`` (XOR + popcount per lane and bit), ``L·(distance+count+lane bits)``
  (minimum tree), ``H + token_id_bits`` (token registers), a constant; WTU
  ``n_buckets·(2·cluster_id_bits + bucket_count_bits)`` (bucket heads, tails, counts),
  ``n_buckets·lut_bits`` (the exp2 table), ``count_bits·lut_bits`` (weight multiplier),
  ``mass_bits`` (mass, threshold, running sum), a constant.
The coefficients (µm² per unit of each term) were fitted once by non-negative least squares
(:func:`fit`) to 57 syntheses of the tiny preset family with this flow's Yosys script
(HCU: lanes 1-16 × hash bits 8/16/32 × 16/64/256 clusters; WTU: 8-64 buckets × 16/64/256
clusters): max error 5.3 %, mean 1.5 %. They sit in the range of the library's cells (a
DFF with its enable mux is 96 + 48 µm², a full adder 120 µm², a MUX2 48 µm²); terms the
fit set to 0 are absorbed by correlated ones (e.g. the WTU's constant by ``mass_bits``),
so extrapolating far beyond the calibration range is where the model is weakest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from synth.sram import DEFAULT_SRAM_MIN_BITS, OSU018_SRAM, MemoryInstance, estimate, is_macro

__all__ = [
    "COEFFICIENTS",
    "ERROR_BOUND",
    "breakdown",
    "estimate_area",
    "features",
    "fit",
    "memories",
]

#: Relative error bound the tests check the model against synthesis with (calibration set:
#: max 5.3 %, mean 1.5 % over 57 points; the test adds points off the calibration grid).
ERROR_BOUND = 0.10

#: µm² per unit of each term (fitted, see the module docstring).
COEFFICIENTS: dict[str, float] = {
    "mem_bit": 179.8,
    "mem_mux": 36.7,
    "mem_row": 0.0,
    "reg_bit": 147.3,
    "hcu_lane_bit": 337.7,
    "hcu_min": 107.4,
    "hcu_token": 0.0,
    "hcu_const": 20968.5,
    "wtu_bucket": 218.5,
    "wtu_lut": 79.7,
    "wtu_mul": 0.0,
    "wtu_mass": 4109.4,
    "wtu_const": 0.0,
}


def _mem(
    module: str, name: str, width: int, depth: int, reads: int, abits: int | None = None
) -> MemoryInstance:
    ab = abits if abits is not None else max(1, math.ceil(math.log2(max(depth, 2))))
    return MemoryInstance(
        module=module,
        name=name,
        width=width,
        depth=depth,
        abits=ab,
        read_ports=reads,
        write_ports=1,
        read_clocked=(True,) * reads,
        write_clocked=(True,),
    )


def memories(unit: str, cfg: Any) -> list[MemoryInstance]:
    """The memories of ``unit`` at ``cfg`` (shapes from the units' docstrings)."""
    r = cfg.resv
    c, lanes = cfg.max_clusters, cfg.hcu_lanes
    if unit == "hcu":
        rows = -(-c // lanes)
        return [
            _mem(unit, "sig_mem", r.hash_bits * lanes, rows, 1),
            _mem(unit, "cnt_mem", r.count_bits * lanes, rows, 2),
        ]
    if unit == "wtu":
        return [
            _mem(unit, "score_mem", r.score_bits, c, 1),
            _mem(unit, "count_mem", r.count_bits, c, 1),
            _mem(unit, "next_mem", cfg.cluster_id_bits, c, 1),
        ]
    if unit == "dre":
        return memories("hcu", cfg) + memories("wtu", cfg)
    raise ValueError(f"unit must be one of 'hcu', 'wtu', 'dre', not {unit!r}")


def features(
    unit: str, cfg: Any, sram_min_bits: int = DEFAULT_SRAM_MIN_BITS
) -> tuple[dict[str, float], float]:
    """(term -> amount, SRAM macro area µm²) of ``unit`` at ``cfg``."""
    r = cfg.resv
    f: dict[str, float] = dict.fromkeys(COEFFICIENTS, 0.0)
    macro = 0.0
    units = ["hcu", "wtu"] if unit == "dre" else [unit]
    for u in units:
        for mem in memories(u, cfg):
            if is_macro(mem, sram_min_bits):
                macro += estimate(mem, OSU018_SRAM).area_um2
            elif mem.depth <= 1:
                f["reg_bit"] += mem.bits
            else:
                f["mem_bit"] += mem.bits
                f["mem_mux"] += mem.width * (mem.depth - 1) * mem.read_ports
                f["mem_row"] += mem.depth
        if u == "hcu":
            lane_bits = max(1, math.ceil(math.log2(max(cfg.hcu_lanes, 2))))
            f["hcu_lane_bit"] += cfg.hcu_lanes * r.hash_bits
            f["hcu_min"] += cfg.hcu_lanes * (cfg.distance_bits + r.count_bits + lane_bits)
            f["hcu_token"] += r.hash_bits + cfg.token_id_bits
            f["hcu_const"] += 1
        else:
            nb = r.n_buckets
            f["wtu_bucket"] += nb * (2 * cfg.cluster_id_bits + cfg.bucket_count_bits)
            f["wtu_lut"] += nb * cfg.lut_bits
            f["wtu_mul"] += r.count_bits * cfg.lut_bits
            f["wtu_mass"] += cfg.mass_bits
            f["wtu_const"] += 1
    return f, macro


def breakdown(unit: str, cfg: Any, sram_min_bits: int = DEFAULT_SRAM_MIN_BITS) -> dict[str, float]:
    """Area per term (µm²) plus ``sram_macros`` and ``total``."""
    f, macro = features(unit, cfg, sram_min_bits)
    out = {k: v * COEFFICIENTS[k] for k, v in f.items() if v}
    out["sram_macros"] = macro
    out["total"] = sum(out.values())
    return out


def estimate_area(
    unit: str, cfg: Any, *, sram_min_bits: int = DEFAULT_SRAM_MIN_BITS
) -> float | None:
    """Modelled area of ``unit`` in µm², or ``None`` if the model does not cover it (the
    HCU's batches, ``hcu_batch > 1``, are outside its calibration)."""
    if unit not in ("hcu", "wtu", "dre") or (unit != "wtu" and cfg.hcu_batch != 1):
        return None
    return breakdown(unit, cfg, sram_min_bits)["total"]


def fit(samples: Iterable[tuple[str, Any, int, float]]) -> dict[str, float]:
    """Refit :data:`COEFFICIENTS` to (unit, cfg, sram_min_bits, synthesised µm²) samples by
    non-negative least squares on relative error; returns the new coefficients."""
    import numpy as np
    from scipy.optimize import nnls

    names = list(COEFFICIENTS)
    rows, rhs = [], []
    for unit, cfg, min_bits, area in samples:
        f, macro = features(unit, cfg, min_bits)
        rows.append([f[n] / area for n in names])
        rhs.append((area - macro) / area)
    coef, _ = nnls(np.array(rows), np.array(rhs))
    return {n: float(round(c, 1)) for n, c in zip(names, coef, strict=True)}
