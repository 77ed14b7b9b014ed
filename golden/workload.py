"""Real-video workloads: per-layer/head K, V, Q traces built from real frame features.

None of these are video-LLM keys. They are real image features (``golden.features``) of
real clips (``golden.video``) turned into attention inputs by seeded projections, so that
ReSV meets real spatial and temporal redundancy (SPEC section 5). Say so in every report;
``Trace.meta["note"]`` does.

``make_trace(cfg)`` does, for a ``WorkloadConfig``:

1. Frames: ``read_frames(clip, fps=fps, max_frames=max_frames)``; F frames.
2. Features: ``frame_features(frames, source=features, tokens_per_frame=T)``; N = F*T
   tokens in frame order, row-major within a frame. Token ``t`` is position ``t``.
3. K, V, Q per layer l, KV head h, query head hq (GQA: ``hq = h * q_per_kv + g``):

   ``det`` / ``pixels`` (C-dim features X, divided by the RMS of frame 0's features so
   that values are O(1); deliberately not centred — real keys share a mean offset too,
   and SPEC's key centring is the cache's job):

   - ``K = X @ Wk[l,h]``, ``V = X @ Wv[l,h]`` with Gaussian ``Wk, Wv`` of variance 1/C
     (unit-RMS outputs). Every layer sees the same features through its own projections.
   - ``Q = a[l,hq] * X @ (Wk[l,h] + query_noise * E[l,hq])`` with Gaussian ``E`` of
     variance 1/C: a query head is correlated with its KV head's key map, so a token's
     query points at tokens with similar content (itself, the same patch in nearby
     frames, similar patches).
   - Logit scale ``a[l,hq]``: chosen so that the median, over frame 0's tokens, of the
     standard deviation of their logits ``q.k/sqrt(d)`` over frame 0's keys equals
     ``logit_std`` (default 1.5). Frame 0 only, so a trace of the first F frames is a
     prefix of a longer one. There is no ground truth for "realistic" here; 1.5 gives
     heavy-tailed but not one-hot attention. Measured (median over the last frame's
     prefill queries, all heads; mass on the top 1 % / 5 % of the stream's keys):
     bikes 2 fps det 196 tok/frame 0.84 / 0.95 (at 1.0: 0.47 / 0.70; at 2.0: 0.97 / 1.00),
     bikes native det 10 tok/frame 0.31 / 0.62, bikes 2 fps pixels 196 tok/frame
     0.18 / 0.52; for comparison the SVTR model's own logits (``rec``, uncalibrated)
     0.11 / 0.30. Benchmarks should sweep ``logit_std``.

   ``rec`` (the recognition model's real SVTR attention, 8 heads x 15 dims): layer l is
   SVTR block l (so ``layers <= 2``), KV head h is model head h (``kv_heads <= 8``).
   ``K = k_model @ M[l,h]``, ``V = v_model @ M[l,h]`` where ``M`` (15, d) has orthonormal
   rows (seeded, QR of a Gaussian), so dot products are preserved exactly. Query head g of
   group h: ``Q = sqrt(d) * q_model @ P[l,hq] @ M[l,h]`` with ``P = I`` for g = 0 and
   ``I + query_noise * E`` (E Gaussian, variance 1/15) for g > 0. The model's queries are
   already multiplied by 15^-0.5, and the cache divides by sqrt(d), so for g = 0 the logits
   ``q.k/sqrt(d)`` are exactly the SVTR model's own: no calibration (``logit_std`` unused).

4. Decode queries: ``decode_queries`` questions, issued after evenly spaced frames
   (``decode_after[j] = max(floor((j+1) * F / Nd) - 1, 0)``, the last one after the last
   frame). Question j picks one uniformly random token ``t_j`` already seen (``t_j <
   frame_offsets[decode_after[j] + 1]``), shared by all layers and heads ("a question about
   something seen"), and its query is that token's query plus isotropic Gaussian noise
   whose RMS norm is ``decode_noise`` times the head's mean query norm.
5. Every float tensor is rounded to BF16 (the hardware format; ``golden.bf16``).

Seeds: ``numpy.random.default_rng(seed)`` is split (``spawn``) into independent streams for
the pixel control's projection, the K/V/Q maps, and the decode queries; same config, same
bits on the same machine. Features go through onnxruntime and BLAS, whose summation order
may differ between builds and CPUs, so another machine may differ in a few last bits: share
the recorded ``.npz`` trace, not the config, when runs must be bit-identical.
``GENERATOR_VERSION`` changes whenever the same config would give different bits
(it keys the trace cache, ``golden.trace.load_or_make``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from golden.bf16 import bf16_round
from golden.checks import check_float, check_int, lookup
from golden.features import (
    GRIDS,
    REC_BLOCKS,
    REC_HEAD_DIM,
    REC_HEADS,
    SOURCES,
    Features,
    frame_features,
)
from golden.trace import FORMAT_VERSION, NOT_LLM_KEYS, Trace
from golden.video import CLIPS, clip_info, read_frames

__all__ = ["GENERATOR_VERSION", "PRESETS", "WorkloadConfig", "make_trace", "preset"]

#: Bump when make_trace's output for a given config changes (2: BLAS-based pooling).
GENERATOR_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    """One real-video workload. Defaults: bikes at 2 fps, det features, 196 tokens/frame."""

    #: Clip name (``golden.video.CLIPS``).
    clip: str = "bikes"
    #: Sampling rate in frames per second; None = every frame (native rate).
    fps: float | None = 2.0
    #: Stop after this many sampled frames; None = the whole clip.
    max_frames: int | None = None
    #: Tokens per frame: 10 (2x5), 49 (7x7) or 196 (14x14) (``golden.features.GRIDS``).
    tokens_per_frame: int = 196
    #: Feature source: 'det', 'rec' or 'pixels' (``golden.features``).
    features: str = "det"
    #: Layers L (rec: at most 2, its SVTR blocks).
    layers: int = 2
    #: KV heads per layer (rec: at most 8).
    kv_heads: int = 2
    #: GQA group size: query heads per KV head.
    q_per_kv: int = 2
    #: Head dimension d (even: RoPE rotates pairs; rec: at least 16).
    head_dim: int = 128
    #: Number of decode queries (questions) in the stream.
    decode_queries: int = 16
    #: Query map = key map + query_noise x independent Gaussian map (same variance).
    query_noise: float = 0.5
    #: Decode query = a seen token's query + noise of this norm relative to the mean query.
    decode_noise: float = 0.5
    #: Target median std of frame-0 logits q.k/sqrt(d) (det/pixels only).
    logit_std: float = 1.5
    #: Seed of every random choice.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clip not in CLIPS:
            raise ValueError(
                f"clip must be one of {', '.join(map(repr, CLIPS))}, not {self.clip!r}"
            )
        if self.fps is not None:
            check_float("fps", self.fps, positive=True)
        if self.max_frames is not None:
            check_int("max_frames", self.max_frames, 1)
        tpf = self.tokens_per_frame
        valid = isinstance(tpf, int | np.integer) and not isinstance(tpf, bool)
        if not valid or tpf not in GRIDS:
            raise ValueError(
                f"tokens_per_frame must be one of {', '.join(map(str, GRIDS))}, "
                f"not {self.tokens_per_frame!r}"
            )
        if self.features not in SOURCES:
            raise ValueError(
                f"features must be one of {', '.join(map(repr, SOURCES))}, not {self.features!r}"
            )
        check_int("layers", self.layers, 1)
        check_int("kv_heads", self.kv_heads, 1)
        check_int("q_per_kv", self.q_per_kv, 1)
        check_int("head_dim", self.head_dim, 2)
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs), not {self.head_dim!r}")
        check_int("decode_queries", self.decode_queries, 0)
        check_float("query_noise", self.query_noise, positive=False)
        check_float("decode_noise", self.decode_noise, positive=False)
        check_float("logit_std", self.logit_std, positive=True)
        check_int("seed", self.seed, 0)
        if self.features == "rec":
            if self.layers > REC_BLOCKS:
                raise ValueError(
                    f"layers must be at most {REC_BLOCKS} with features 'rec' (its SVTR "
                    f"blocks), not {self.layers!r}"
                )
            if self.kv_heads > REC_HEADS:
                raise ValueError(
                    f"kv_heads must be at most {REC_HEADS} with features 'rec' (its attention "
                    f"heads), not {self.kv_heads!r}"
                )
            if self.head_dim < REC_HEAD_DIM:
                raise ValueError(
                    f"head_dim must be at least {REC_HEAD_DIM} with features 'rec' (its head "
                    f"dimension), not {self.head_dim!r}"
                )

    def replace(self, **changes: Any) -> WorkloadConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def q_heads(self) -> int:
        return self.kv_heads * self.q_per_kv


_TINY = WorkloadConfig(
    clip="carphone_pristine",
    fps=None,
    max_frames=4,
    tokens_per_frame=49,
    features="det",
    layers=2,
    kv_heads=2,
    q_per_kv=2,
    head_dim=16,
    decode_queries=4,
)
_BENCH = WorkloadConfig(clip="bikes", fps=2.0, tokens_per_frame=196, features="det")

#: Named workloads. ``tiny*`` are for unit tests (4 frames of 176x144, 196 tokens);
#: ``bench*`` for the benchmarks. Token counts: bench 20 frames x 196 = 3920,
#: bench-native 250 x 196 = 49000, bench-10 250 x 10 = 2500 (VideoLLM-Online-like).
PRESETS: dict[str, WorkloadConfig] = {
    "tiny": _TINY,
    "tiny-rec": _TINY.replace(features="rec"),
    "tiny-pixels": _TINY.replace(features="pixels"),
    "bench": _BENCH,
    "bench-native": _BENCH.replace(fps=None),
    "bench-10": _BENCH.replace(fps=None, tokens_per_frame=10),
    "bench-rec": _BENCH.replace(features="rec"),
    "bench-pixels": _BENCH.replace(features="pixels"),
    "bench-bbb": _BENCH.replace(clip="bigbuckbunny"),
}


def preset(name: str) -> WorkloadConfig:
    """The preset ``name``; ``ValueError`` listing the presets otherwise."""
    return lookup("preset", PRESETS, name)


# Projections ----------------------------------------------------------------------------


def orthonormal_lift(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """(k, d) matrix with orthonormal rows: ``(x @ M) . (y @ M) == x . y`` for x, y in R^k."""
    if not 1 <= k <= d:
        raise ValueError(f"k must be in 1..{d} (d), not {k!r}")
    a = rng.standard_normal((d, k))
    q, r = np.linalg.qr(a)
    # Fix the column signs (QR is unique up to them) so the map is the same on every LAPACK.
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    return q.T.astype(np.float32)


def _median_logit_std(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Median over queries of the std over keys of q.k/sqrt(d); q (..., n, d), k (..., m, d)."""
    logits = q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)
    return np.median(logits.std(axis=-1), axis=-1) / math.sqrt(q.shape[-1])


def _project_features(cfg: WorkloadConfig, feats: Features, rng: np.random.Generator):
    x = feats.tokens.reshape(-1, feats.tokens.shape[-1]).astype(np.float32)
    c = x.shape[1]
    rms0 = float(np.sqrt(np.mean(np.square(feats.tokens[0], dtype=np.float64))))
    x /= rms0 if rms0 > 0 else 1.0
    L, H, G, d = cfg.layers, cfg.kv_heads, cfg.q_per_kv, cfg.head_dim
    std = 1.0 / math.sqrt(c)
    wk = rng.standard_normal((L, H, c, d), dtype=np.float32) * std
    wv = rng.standard_normal((L, H, c, d), dtype=np.float32) * std
    e = rng.standard_normal((L, H, G, c, d), dtype=np.float32) * std
    wq = (wk[:, :, None] + np.float32(cfg.query_noise) * e).reshape(L, H * G, c, d)
    keys = x @ wk  # (L, H, N, d) by broadcasting
    values = x @ wv
    queries = x @ wq
    t0 = feats.tokens_per_frame
    k0 = np.repeat(keys[:, :, :t0], G, axis=1)  # each query head against its KV head
    spread = _median_logit_std(queries[:, :, :t0], k0)  # (L, Hq)
    scale = np.where(spread > 0, cfg.logit_std / np.where(spread > 0, spread, 1.0), 1.0)
    queries *= scale.astype(np.float32)[:, :, None, None]
    return keys, values, queries, {"feature_rms_frame0": rms0, "query_scale": scale.tolist()}


def _project_rec(cfg: WorkloadConfig, feats: Features, rng: np.random.Generator):
    if feats.attn_q is None or feats.attn_k is None or feats.attn_v is None:
        raise ValueError("rec features must carry the SVTR queries, keys and values")
    L, H, G, d = cfg.layers, cfg.kv_heads, cfg.q_per_kv, cfg.head_dim
    n = feats.frames * feats.tokens_per_frame

    # (F, blocks, heads, T, 15) → (blocks, heads, N, 15) for the used blocks and heads.
    def take(a: np.ndarray) -> np.ndarray:
        return a[:, :L, :H].transpose(1, 2, 0, 3, 4).reshape(L, H, n, REC_HEAD_DIM)

    kq, kk, kv = take(feats.attn_q), take(feats.attn_k), take(feats.attn_v)
    lift = np.stack(
        [np.stack([orthonormal_lift(rng, REC_HEAD_DIM, d) for _ in range(H)]) for _ in range(L)]
    )  # (L, H, 15, d)
    perturb = np.broadcast_to(np.eye(REC_HEAD_DIM, dtype=np.float32), (L, H, G, 15, 15)).copy()
    noise = rng.standard_normal((L, H, G, 15, 15), dtype=np.float32) / math.sqrt(REC_HEAD_DIM)
    perturb[:, :, 1:] += np.float32(cfg.query_noise) * noise[:, :, 1:]
    keys = kk @ lift
    values = kv @ lift
    # (L, H, 1, N, 15) @ (L, H, G, 15, 15) @ (L, H, 1, 15, d) → (L, H, G, N, d)
    queries = (kq[:, :, None] @ perturb) @ lift[:, :, None] * np.float32(math.sqrt(d))
    return keys, values, queries.reshape(L, H * G, n, d), {}


def _decode(
    cfg: WorkloadConfig, queries: np.ndarray, offsets: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    frames, nd = len(offsets) - 1, cfg.decode_queries
    after = (np.arange(1, nd + 1) * frames) // max(nd, 1) - 1
    after = np.maximum(after, 0).astype(np.int64)
    tokens = rng.integers(0, offsets[after + 1]) if nd else np.zeros(0, np.int64)
    L, Hq, _, d = queries.shape
    base = queries[:, :, tokens]  # (L, Hq, Nd, d)
    mean_norm = np.linalg.norm(queries, axis=-1).mean(axis=-1)  # (L, Hq)
    noise = rng.standard_normal((L, Hq, nd, d), dtype=np.float32) / np.float32(math.sqrt(d))
    sigma = (cfg.decode_noise * mean_norm).astype(np.float32)[:, :, None, None]
    return base + sigma * noise, after, [int(t) for t in tokens]


def make_trace(cfg: WorkloadConfig, *, progress: bool = True) -> Trace:
    """The trace of ``cfg`` (module docstring). ``progress`` reports frames to stderr."""
    if not isinstance(cfg, WorkloadConfig):
        raise TypeError(f"cfg must be a WorkloadConfig, not {type(cfg).__name__}")
    info = clip_info(cfg.clip)
    frames = read_frames(cfg.clip, fps=cfg.fps, max_frames=cfg.max_frames)
    pixel_rng, proj_rng, decode_rng = np.random.default_rng(cfg.seed).spawn(3)
    feats = frame_features(
        frames,
        source=cfg.features,
        tokens_per_frame=cfg.tokens_per_frame,
        seed=int(pixel_rng.integers(0, 2**63)),
        progress=progress,
        label=f"{cfg.clip} {cfg.features} features",
    )
    del frames
    if cfg.features == "rec":
        keys, values, queries, extra = _project_rec(cfg, feats, proj_rng)
    else:
        keys, values, queries, extra = _project_features(cfg, feats, proj_rng)
    offsets = np.arange(feats.frames + 1, dtype=np.int64) * feats.tokens_per_frame
    decode_q, after, picked = _decode(cfg, queries, offsets, decode_rng)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "generator": f"golden.workload v{GENERATOR_VERSION}",
        "clip": cfg.clip,
        "clip_file": info.path.name,
        "fps": cfg.fps,
        "native_fps": float(info.fps),
        "frames": feats.frames,
        "features": cfg.features,
        "tokens_per_frame": cfg.tokens_per_frame,
        "grid": list(feats.grid),
        "seed": cfg.seed,
        "decode_tokens": picked,
        "config": dataclasses.asdict(cfg),
        "note": (
            f"Real-frame features ({cfg.features}) of the clip {cfg.clip!r} under seeded "
            f"projections; keys and queries are pre-RoPE; {NOT_LLM_KEYS}."
        ),
        **extra,
    }
    # Round one tensor at a time so that float32 originals are freed as we go (the native
    # bench trace holds ~400 MB of them).
    keys = bf16_round(keys)
    values = bf16_round(values)
    queries = bf16_round(queries)
    decode_q = bf16_round(decode_q)
    return Trace(
        keys=keys,
        values=values,
        queries=queries,
        decode_queries=decode_q,
        decode_after=after,
        frame_offsets=offsets,
        meta=meta,
    )
