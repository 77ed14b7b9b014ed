"""Bytes-to-quality evaluation of retrieval methods on a recorded stream (``workloads.trace``).

``evaluate(trace, cfg, methods)`` replays the stream segment by segment and, at every
evaluation point, asks every method (``golden.baselines``) which old tokens each context's
query rows attend to, for every value of its budget parameter. Per point, context and
parameter value it records:

- ``bytes``: fetched old K+V (``4 d`` bytes per token, BF16) plus the method's metadata
  reads, as a fraction of the old tokens' K+V (``meta``: the metadata part alone);
- ``error``: the attention output's relative L2 error against full attention, mean over the
  context's query rows (at most ``error_rows`` evenly spaced rows of a prefill block);
- ``recall``: the attention mass of the attended tokens (mean over rows);
- ``retrieved``: the fraction of old tokens fetched.

Points (``cfg`` gives ``sink_tokens`` and ``recent_tokens``, free for every method):

- **prefill**: a ``FRAME`` segment ``[a, b)`` once ingested: its rows (every query head of
  the GQA group x the frame's tokens) attend causally to ``0:b``; old = ``[sinks, min(a,
  b - recent))``. Frames whose cache (``a``) is below ``min_context`` are skipped; at most
  ``prefill_frames`` evenly spaced frames are evaluated.
- **decode**: decode query ``j`` with the group's query heads as rows, attending to
  ``0:decode_context[j]``. Its *state point* ``s`` is the start of its ``ANSWER`` segment
  (an answer token of an LLM stream) or ``decode_context[j]`` (an external question of the
  projected workload): methods see the stream as it was at ``s`` and old = ``[sinks, s -
  recent)``; the few answer tokens after ``s`` stay free. Only queries with ``s >=
  min_context`` count ("questions whose cache is >= 1K tokens").

``curves`` averages the records per method and parameter value; ``bytes_at`` reads the bytes
needed for a target error off a curve (linear interpolation between its points in bytes
order, ``None`` when no point reaches it).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .baselines import Context, Method, Rows
from .config import ReSVConfig

__all__ = ["Stream", "bytes_at", "curves", "evaluate", "full_attention", "selected_output"]

FRAME, ANSWER = 0, 2  # workloads.trace.Segment values (golden does not import workloads)


@dataclass
class Stream:
    """A trace as the methods see it: float32 arrays and the segment layout."""

    keys: np.ndarray  #: (L, Hkv, N, d) pre-RoPE
    keys_post: np.ndarray
    values: np.ndarray
    frame_offsets: np.ndarray
    segment_kind: np.ndarray
    q_per_kv: int
    layers: int = field(init=False)
    kv_heads: int = field(init=False)

    def __post_init__(self) -> None:
        self.layers, self.kv_heads = self.keys.shape[:2]

    @classmethod
    def of(cls, trace) -> Stream:
        return cls(
            keys=trace.keys,
            keys_post=trace.keys_post,
            values=trace.values,
            frame_offsets=trace.frame_offsets,
            segment_kind=trace.segment_kind,
            q_per_kv=trace.q_per_kv,
        )

    @property
    def first_frame_end(self) -> int:
        """End of the first ``FRAME`` segment (of the stream if it has none)."""
        frames = np.flatnonzero(self.segment_kind == FRAME)
        return int(self.frame_offsets[frames[0] + 1 if frames.size else -1])

    def context(self, layer: int, head: int, n: int, lo: int, hi: int) -> Context:
        return Context(
            layer=layer,
            head=head,
            keys_post=self.keys_post[layer, head, :n],
            keys_pre=self.keys[layer, head, :n],
            values=self.values[layer, head, :n],
            lo=lo,
            hi=hi,
            segments=self.frame_offsets,
        )


def full_attention(
    rows: np.ndarray, keys: np.ndarray, positions: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised weights ``exp(l - max)`` (r, n) and probabilities of ``rows`` (r, d) over
    ``keys`` (n, d), causal when ``positions`` (r,) are given (row sees keys ``<= pos``)."""
    logits = rows @ keys.astype(np.float64).T / math.sqrt(keys.shape[1])
    if positions is not None:
        logits[np.arange(keys.shape[0])[None, :] > positions[:, None]] = -np.inf
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    return a, a / a.sum(axis=1, keepdims=True)


def selected_output(a: np.ndarray, values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Attention outputs (P, r, d) of weights ``a`` (r, n) restricted to each of ``masks``
    (P, n) over ``values`` (n, d): one matrix product for every mask."""
    w = a[None, :, :] * masks[:, None, :]
    p, r, n = w.shape
    out = w.reshape(p * r, n) @ values.astype(np.float64)
    return out.reshape(p, r, -1) / w.sum(axis=2, keepdims=True)


def _record(
    out: dict[str, dict[str, list]],
    ctx: Context,
    rows: Rows,
    a: np.ndarray,
    methods: Sequence[Method],
    error_rows: int,
) -> None:
    v = ctx.values.astype(np.float64)
    n = ctx.keys_post.shape[0]
    probs = rows.probs
    # Methods select with every row; the error is measured on at most error_rows of them
    # (evenly spaced), which bounds the cost of long prefill blocks.
    if a.shape[0] > error_rows:
        keep = np.linspace(0, a.shape[0] - 1, error_rows).astype(int)
        a, probs = a[keep], probs[keep]
    o_full = (a @ v) / a.sum(axis=1, keepdims=True)
    norm = np.maximum(np.linalg.norm(o_full, axis=1), 1e-30)
    free = np.ones(n, bool)
    free[ctx.lo : ctx.hi] = False
    chosen = [m.select(ctx, rows, m.grid) for m in methods]
    masks = np.repeat(free[None, :], sum(len(sels) for sels, _ in chosen), axis=0)
    i = 0
    for sels, _ in chosen:
        for sel in sels:
            masks[i, sel] = True
            i += 1
    err = np.linalg.norm(selected_output(a, v, masks) - o_full[None], axis=2) / norm[None]
    err = err.mean(axis=1)
    recall = (masks.astype(np.float64) @ probs.T).mean(axis=1)
    i = 0
    for m, (sels, meta) in zip(methods, chosen, strict=True):
        k = len(sels)
        moved, meta_part = ctx.moved(sels, meta)
        rec = out.setdefault(
            m.name, {"bytes": [], "meta": [], "error": [], "recall": [], "retrieved": []}
        )
        rec["bytes"].append(moved)
        rec["meta"].append(meta_part)
        rec["error"].append(err[i : i + k])
        rec["recall"].append(recall[i : i + k])
        rec["retrieved"].append(np.array([sel.size for sel in sels], np.float64) / ctx.n_old)
        i += k


def _points(trace, cfg: ReSVConfig, min_context: int, prefill_frames: int, decode_limit):
    """Evaluation points by segment: {segment: [("prefill", None) | ("decode", j), ...]}."""
    off, kinds = trace.frame_offsets, trace.segment_kind
    frames = [s for s in range(len(kinds)) if kinds[s] == FRAME and off[s] >= min_context]
    if len(frames) > prefill_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, prefill_frames).astype(int)]
    points: dict[int, list[tuple[str, int | None]]] = {s: [("prefill", None)] for s in frames}
    seg = np.searchsorted(off, trace.decode_context, side="left") - 1  # segment of ctx - 1
    state = np.where(
        kinds[seg] == ANSWER, off[seg], trace.decode_context
    )  # answer tokens: the answer's start
    decode = [j for j in range(trace.n_decode) if state[j] >= min_context]
    if decode_limit is not None and len(decode) > decode_limit:
        decode = [decode[i] for i in np.linspace(0, len(decode) - 1, decode_limit).astype(int)]
    for j in decode:
        points.setdefault(int(seg[j]), []).append(("decode", j))
    return points, state


def evaluate(
    trace,
    cfg: ReSVConfig,
    methods: Sequence[Method],
    *,
    min_context: int = 1024,
    prefill_frames: int = 6,
    decode_limit: int | None = None,
    layers: Sequence[int] | None = None,
    group: int | None = None,
    error_rows: int = 48,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Records of every method at every point (module docstring): ``{"prefill": {name:
    {"bytes": [(P,) ...], "error": ..., "recall": ..., "retrieved": ...}}, "decode": ...,
    "points": {"prefill": n, "decode": n}}``. ``layers`` limits the layers evaluated;
    ``group`` uses only the first ``group`` query heads of every GQA group (a smaller group
    on the same model)."""
    stream = Stream.of(trace)
    g, sink, recent = trace.q_per_kv, cfg.sink_tokens, cfg.recent_tokens
    used = g if group is None else group
    if not 1 <= used <= g:
        raise ValueError(f"group must be in 1..{g} (the trace's GQA group), not {group!r}")
    layers = range(trace.layers) if layers is None else layers
    points, state = _points(trace, cfg, min_context, prefill_frames, decode_limit)
    out: dict[str, Any] = {"prefill": {}, "decode": {}, "points": {"prefill": 0, "decode": 0}}
    off, kinds = trace.frame_offsets, trace.segment_kind
    t0, done, total = time.perf_counter(), 0, sum(map(len, points.values()))
    for s in range(trace.n_frames):
        a, b = int(off[s]), int(off[s + 1])
        if kinds[s] != ANSWER:
            for m in methods:
                m.advance(stream, b)
        for kind, j in points.get(s, []):
            if kind == "prefill":
                n, lo, hi = b, sink, min(a, b - recent)
                q = trace.queries_post[:, :, a:b]
                pos = np.tile(np.arange(a, b), g)
            else:
                n, lo, hi = int(trace.decode_context[j]), sink, int(state[j]) - recent
                q = trace.decode_queries_post[:, :, j : j + 1]
                pos = None
            if hi <= lo:
                continue
            out["points"][kind] += 1
            for layer in layers:
                for h in range(trace.kv_heads):
                    rows = q[layer, h * g : h * g + used].reshape(-1, trace.head_dim)
                    rows = rows.astype(np.float64)
                    ctx = stream.context(layer, h, n, lo, hi)
                    p = None if pos is None else pos[: rows.shape[0]]
                    aw, probs = full_attention(rows, ctx.keys_post, p)
                    r = Rows(kind, rows, heads=used, tokens=rows.shape[0] // used, probs=probs)
                    _record(out[kind], ctx, r, aw, methods, error_rows)
            done += 1
            if progress is not None:
                progress(
                    f"{done}/{total} points ({kind} at {n} tokens, old {hi - lo}), "
                    f"{time.perf_counter() - t0:.0f} s"
                )
        if kinds[s] == ANSWER:
            for m in methods:
                m.advance(stream, b)
    return out


def curves(records: dict[str, Any], methods: Sequence[Method]) -> dict[str, Any]:
    """Per phase and method: the parameter values (``grid``, named ``param``) and the mean
    (and 90th-percentile error) of every record over points and contexts."""
    res: dict[str, Any] = {}
    for phase in ("prefill", "decode"):
        res[phase] = {}
        for m in methods:
            rec = records[phase].get(m.name)
            if not rec or not rec["bytes"]:
                continue
            c = {k: np.mean(np.stack(v), axis=0).tolist() for k, v in rec.items()}
            c["error_p90"] = np.quantile(np.stack(rec["error"]), 0.9, axis=0).tolist()
            c["grid"] = list(m.grid)
            c["param"] = m.param
            c["label"] = m.label
            c["samples"] = len(rec["bytes"])
            res[phase][m.name] = c
    return res


def bytes_at(
    curve: dict[str, Any], target: float, *, key: str = "error", field: str = "bytes"
) -> float | None:
    """Bytes (fraction of the old KV) at which ``curve[key]`` first reaches ``target``.

    ``key="error"`` or ``"kl"`` looks for ``value <= target``; any other key (e.g.
    ``"agreement"``) for ``value >= target``. Points are taken in ascending bytes; between
    the last point that misses and the first that reaches, bytes are interpolated linearly.
    ``field`` reads another curve value (e.g. ``"meta"``) at that same place.
    """
    b = np.asarray(curve["bytes"], np.float64)
    y = np.asarray(curve[key], np.float64)
    f = np.asarray(curve[field], np.float64)
    order = np.argsort(b, kind="stable")
    b, y, f = b[order], y[order], f[order]
    ok = y <= target if key in ("error", "kl") else y >= target
    if not ok.any():
        return None
    i = int(np.argmax(ok))
    if i == 0 or y[i] == y[i - 1]:
        return float(f[i])
    w = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(f[i - 1] + w * (f[i] - f[i - 1]))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
