"""Seeded synthetic streams with controllable temporal redundancy, for tests and sweeps.

``redundancy`` r in [0, 1] is the correlation of a token with the same token of the previous
frame: ``x_f = r * x_{f-1} + sqrt(1 - r**2) * noise`` (r = 1: a frozen video, r = 0: new
content every frame). ``offset`` adds one shared vector to every key, the degenerate
un-centred case of real features (shared/SPEC.md section 5). Same seed, same bits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_keys", "synthetic_signatures"]


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")


def synthetic_keys(
    *,
    frames: int,
    tokens_per_frame: int,
    head_dim: int,
    redundancy: float,
    layers: int = 1,
    kv_heads: int = 1,
    offset: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Keys (L, H, frames * tokens_per_frame, d) float32 and frame offsets (frames + 1,)."""
    _check("redundancy", redundancy, 0.0, 1.0)
    for name, v in (("frames", frames), ("tokens_per_frame", tokens_per_frame)):
        if v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    rng = np.random.default_rng(seed)
    shape = (layers, kv_heads, tokens_per_frame, head_dim)
    x = rng.standard_normal(shape)
    out = np.empty((frames, *shape), np.float32)
    a, b = redundancy, np.sqrt(1.0 - redundancy**2)
    for f in range(frames):
        if f:
            x = a * x + b * rng.standard_normal(shape)
        out[f] = x
    keys = np.moveaxis(out, 0, 2).reshape(layers, kv_heads, frames * tokens_per_frame, head_dim)
    keys = keys + np.float32(offset) * rng.standard_normal(head_dim).astype(np.float32)
    return keys.astype(np.float32), np.arange(frames + 1) * tokens_per_frame


def synthetic_signatures(
    n: int, *, hash_bits: int, redundancy: float, sources: int = 8, seed: int = 0
) -> np.ndarray:
    """``n`` uint64 signatures drawn around ``sources`` drifting patterns.

    Each token copies the current pattern of a random source and flips each bit with
    probability ``(1 - redundancy) / 2``; patterns drift by one bit flip every few tokens.
    """
    _check("redundancy", redundancy, 0.0, 1.0)
    if not 1 <= hash_bits <= 64:
        raise ValueError(f"hash_bits must be in 1..64, not {hash_bits!r}")
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (sources, hash_bits)).astype(bool)
    src = rng.integers(0, sources, n)
    flip = rng.random((n, hash_bits)) < (1.0 - redundancy) / 2
    drift = rng.integers(0, hash_bits, n)
    tok = np.empty((n, hash_bits), bool)
    for i in range(n):
        if i % 4 == 3:
            bits[src[i], drift[i]] ^= True
        tok[i] = bits[src[i]] ^ flip[i]
    weights = np.left_shift(np.uint64(1), np.arange(hash_bits, dtype=np.uint64))
    return (tok.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
