"""Projected-feature workload: per-layer/head K, V, Q traces built from real frame features.

None of these are video-LLM keys. They are real image features (``workloads.features``) of
real clips (``workloads.video``) turned into attention inputs by seeded projections, so that
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
   - Logit scale ``a[l,hq]``: chosen so that, over the whole stream and after RoPE, the
     median over ``CALIBRATION_QUERIES`` evenly spaced query tokens ``t`` (from the second
     frame on) of the standard deviation of their causal logits ``q_t.k_s/sqrt(d)``,
     ``s <= t``, equals ``logit_std`` (default 1.5). There is no ground truth for
     "realistic" here, which is why the benchmark sweeps ``logit_std`` (1-5) and why the
     real LLM stream (``workloads.llm_stream``) exists: it needs no such knob.

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
5. RoPE (``rope_base``; None = no rotation) by stream position gives the post-RoPE keys,
   queries and decode queries (a decode query sits at position ``decode_context``).
6. Every float tensor is rounded to BF16 (the hardware format; ``golden.bf16``).

Seeds: ``numpy.random.default_rng(seed)`` is split (``spawn``) into independent streams for
the pixel control's projection, the K/V/Q maps, and the decode queries; same config, same
bits on the same machine. Features go through onnxruntime and BLAS, whose summation order
may differ between builds and CPUs, so another machine may differ in a few last bits: share
the recorded ``.npz`` trace, not the config, when runs must be bit-identical.
``WorkloadConfig.GENERATOR`` changes whenever the same config would give different bits
(it keys the trace cache, ``workloads.trace.load_or_make``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from golden.bf16 import bf16_round
from golden.checks import check_float, check_int, lookup
from golden.rope import rope
from workloads.features import (
    REC_BLOCKS,
    REC_HEAD_DIM,
    REC_HEADS,
    SOURCES,
    Features,
    check_tokens_per_frame,
    frame_features,
)
from workloads.trace import FORMAT_VERSION, NOT_LLM_KEYS, Segment, Trace
from workloads.video import CLIPS, clip_info, read_frames

__all__ = ["CALIBRATION_QUERIES", "PRESETS", "WorkloadConfig", "make_trace", "preset"]

#: Query tokens sampled over the stream to calibrate ``logit_std``.
CALIBRATION_QUERIES = 256


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    """One real-video workload. Defaults: bikes at 2 fps, det features, 196 tokens/frame."""

    #: Version of the generator (keys the trace cache): 3 = stream-wide post-RoPE
    #: calibration, RoPE in the workload, trace format 2.
    GENERATOR: ClassVar[str] = "workloads.projected v3"

    #: Clip name (``workloads.video.CLIPS``).
    clip: str = "bikes"
    #: Sampling rate in frames per second; None = every frame (native rate).
    fps: float | None = 2.0
    #: Stop after this many sampled frames; None = the whole clip.
    max_frames: int | None = None
    #: Tokens per frame: 10 (2x5), 49 (7x7) or 196 (14x14) (``workloads.features.GRIDS``).
    tokens_per_frame: int = 196
    #: Feature source: 'det', 'rec' or 'pixels' (``workloads.features``).
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
    #: Target median std of the stream's causal post-RoPE logits q.k/sqrt(d) (det/pixels).
    logit_std: float = 1.5
    #: RoPE base of the stream (None: no RoPE). Default: Llama-3's 5e5.
    rope_base: float | None = 500000.0
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
        check_tokens_per_frame(self.tokens_per_frame)
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
        if self.rope_base is not None:
            check_float("rope_base", self.rope_base, positive=True)
            if self.rope_base <= 1:
                raise ValueError(
                    f"rope_base must be greater than 1 or None (no RoPE), not {self.rope_base!r}"
                )
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

    def cache_stem(self) -> str:
        return f"{self.clip}-{self.features}"

    def make(self, *, progress: bool = True) -> Trace:
        return make_trace(self, progress=progress)


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
#: bench-native 250 x 196 = 49000, bench-10 250 x 10 = 2500 (VideoLLM-Online-like),
#: bench-vtest 159 x 196 = 31164 (pedestrians, fixed camera; caches past 5 K tokens).
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
    "bench-vtest": _BENCH.replace(clip="vtest"),
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


def _stream_logit_std(cfg: WorkloadConfig, q: np.ndarray, k: np.ndarray, first: int) -> np.ndarray:
    """Median over sampled query tokens of the std of their causal post-RoPE logits.

    ``q`` (L, Hq, N, d) and ``k`` (L, Hkv, N, d) pre-RoPE; query tokens are evenly spaced in
    ``[first, N)``. Returns (L, Hq).
    """
    L, hq, n, d = q.shape
    g = hq // k.shape[1]
    picks = np.unique(np.linspace(min(first, n - 1), n - 1, CALIBRATION_QUERIES).astype(int))
    k_post = rope(k, np.arange(n), base=cfg.rope_base).astype(np.float64)
    q_post = rope(q[:, :, picks], picks, base=cfg.rope_base).astype(np.float64)
    spread = np.empty((L, hq, picks.size))
    for i, t in enumerate(picks):
        # (L, Hkv, G, d) @ (L, Hkv, d, t+1): every query head against its KV head's keys.
        qi = q_post[:, :, i].reshape(L, -1, g, d)
        logits = qi @ np.swapaxes(k_post[:, :, : t + 1], -1, -2)
        spread[:, :, i] = logits.std(axis=-1).reshape(L, hq)
    return np.median(spread, axis=-1) / math.sqrt(d)


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
    spread = _stream_logit_std(cfg, queries, keys, feats.tokens_per_frame)  # (L, Hq)
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
    context = offsets[after + 1]
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "workload": "projected",
        "generator": WorkloadConfig.GENERATOR,
        "rope_base": cfg.rope_base,
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
            f"projections, RoPE base {cfg.rope_base}; {NOT_LLM_KEYS}."
        ),
        **extra,
    }
    # Round one tensor at a time so that float32 originals are freed as we go (the native
    # bench trace holds ~400 MB of them).
    positions = np.arange(keys.shape[2])
    keys_post = bf16_round(rope(keys, positions, base=cfg.rope_base))
    keys = bf16_round(keys)
    values = bf16_round(values)
    queries_post = bf16_round(rope(queries, positions, base=cfg.rope_base))
    queries = bf16_round(queries)
    decode_post = bf16_round(rope(decode_q, context, base=cfg.rope_base))
    decode_q = bf16_round(decode_q)
    return Trace(
        keys=keys,
        keys_post=keys_post,
        values=values,
        queries=queries,
        queries_post=queries_post,
        decode_queries=decode_q,
        decode_queries_post=decode_post,
        decode_positions=context,
        decode_context=context,
        frame_offsets=offsets,
        segment_kind=np.full(feats.frames, Segment.FRAME, np.int8),
        meta=meta,
    )
