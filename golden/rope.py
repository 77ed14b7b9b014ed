"""Rotary position embedding (RoPE), Llama "rotate-half" layout.

``rope(x, positions, base=...)`` rotates the pairs ``(x[i], x[i + d/2])`` by the angle
``position * base**(-2i/d)``. Angles and products are computed in float64 and the result is
returned as float32 (the float model); the bit-exact datapath model comes with the core.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rope"]


def rope(x: np.ndarray, positions: np.ndarray, *, base: float = 10000.0) -> np.ndarray:
    """Apply RoPE to ``x`` (..., n, d) at ``positions`` (n,)."""
    x = np.asarray(x)
    pos = np.asarray(positions)
    if x.ndim < 2:
        raise ValueError(f"x must be (..., n, d), not shape {x.shape}")
    n, d = x.shape[-2:]
    if d % 2:
        raise ValueError(f"x must have an even last dimension, not {d}")
    if pos.shape != (n,):
        raise ValueError(f"positions must have shape ({n},), not {pos.shape}")
    inv_freq = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = pos.astype(np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    x1 = x[..., : d // 2].astype(np.float64)
    x2 = x[..., d // 2 :].astype(np.float64)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(np.float32)
