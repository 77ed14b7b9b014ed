"""Output quality of retrieval methods on the real LLM: rerun the answers with retrieval.

For an ``ANSWER`` segment ``[a, b)`` of an LLM stream trace (``workloads.llm_stream``), the
model's KV cache of the stream before the answer is rebuilt from the trace (post-RoPE keys and
values, BF16) and the answer is replayed teacher-forced, one token per step: step ``i`` feeds
token ``a - 1 + i`` (the last prompt token, then the answer's tokens) and predicts token ``a +
i``. ``rerun`` does that with full attention (the reference) or with a method applied in
*every* layer and KV head: at every step each KV head's query heads attend to the sinks, the
tokens after ``a - recent`` (the recent window at the answer's start plus the answer so far)
and the old tokens the method selects (``golden.baselines``; the method's state is the
stream's at ``a``). Hidden states, and so later layers' queries, follow the retrieval, as in
a real deployment.

``quality`` compares the next-token distributions of a method's rerun with the reference's,
per step: KL divergence ``KL(p_full || p_method)`` (nats) and top-1 agreement. It also
returns the bytes each step fetched (mean over layers and KV heads, as a fraction of the old
KV, ``golden.evaluate``'s accounting). In the rerun the oracles' probabilities cover the
tokens before the step's own token (its attention to itself is left out of their recall).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from golden.baselines import Method, Rows
from golden.evaluate import Stream, full_attention
from workloads.trace import Segment

__all__ = ["quality", "rerun"]


def rerun(
    model,
    trace,
    stream: Stream,
    a: int,
    b: int,
    *,
    method: Method | None = None,
    param: float | None = None,
    sink_tokens: int,
    recent_tokens: int,
) -> tuple[np.ndarray, list[float]]:
    """Log-probabilities (b - a, vocab) of the teacher-forced answer ``[a, b)`` and the bytes
    fraction of every step (empty with full attention)."""
    from workloads.llama import KVCache

    tokens = trace.meta["tokens"]
    cache = KVCache.from_arrays(trace.keys_post[:, :, : a - 1], trace.values[:, :, : a - 1])
    lo, hi = sink_tokens, a - recent_tokens
    g = trace.q_per_kv
    step_bytes: list[float] = []

    def attend(layer: int, q_pre: np.ndarray, q_post: np.ndarray, positions: np.ndarray):
        n = cache.n
        keys, values = cache.keys(layer), cache.values(layer)
        out, fetched = [], 0.0
        for h in range(trace.kv_heads):
            rows = q_post[h * g : (h + 1) * g, 0].astype(np.float64)
            # The rerun's own cache: old tokens as recorded, the answer so far as recomputed.
            ctx = dataclasses.replace(
                stream.context(layer, h, n, lo, hi), keys_post=keys[h], values=values[h]
            )
            _, probs = full_attention(rows, keys[h], None)
            sels, meta = method.select(ctx, Rows("decode", rows, g, 1, probs), [param])
            free = np.concatenate([np.arange(min(lo, n)), np.arange(max(hi, lo), n)])
            out.append(np.union1d(free, sels[0]).astype(np.int64))
            fetched += float(ctx.moved(sels, meta)[0][0])
        layer_bytes.append(fetched / trace.kv_heads)
        return out

    logp = []
    for i in range(b - a):
        layer_bytes: list[float] = []
        hook = attend if method is not None and hi > lo else None
        logits = model.forward(cache, ids=[tokens[a - 1 + i]], attend=hook).astype(np.float64)
        logits -= logits.max()
        logp.append(logits - np.log(np.exp(logits).sum()))
        if hook is not None:
            step_bytes.append(float(np.mean(layer_bytes)))
    return np.stack(logp), step_bytes


def quality(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Per-step KL(p_ref || p_got) and top-1 agreement of two log-probability arrays."""
    p = np.exp(ref)
    kl = np.sum(p * (ref - got), axis=1)
    agree = np.argmax(ref, axis=1) == np.argmax(got, axis=1)
    return {"kl": kl.tolist(), "agreement": agree.astype(float).tolist()}


def answers(trace, min_context: int) -> list[tuple[int, int, int]]:
    """(segment, start, end) of the answers whose cache holds at least ``min_context`` tokens."""
    off, kinds = trace.frame_offsets, trace.segment_kind
    return [
        (s, int(off[s]), int(off[s + 1]))
        for s in range(trace.n_frames)
        if kinds[s] == Segment.ANSWER and off[s] >= min_context
    ]


def evaluate_answers(
    model,
    trace,
    methods: Sequence[Method],
    grids: dict[str, Sequence[float]],
    *,
    sink_tokens: int,
    recent_tokens: int,
    min_context: int = 1024,
    progress=None,
) -> dict[str, Any]:
    """Replays the stream (advancing every method in order) and, at every answer whose cache
    holds ``min_context`` tokens, reruns it with full attention and with each method at each
    value of ``grids[method.name]``. Returns per method: the grid and per value the mean KL,
    agreement and bytes over all steps, plus the counts."""
    stream = Stream.of(trace)
    todo = answers(trace, min_context)
    per: dict[str, dict[float, dict[str, list[float]]]] = {
        m.name: {float(p): {"kl": [], "agreement": [], "bytes": []} for p in grids[m.name]}
        for m in methods
    }
    steps = 0
    off = trace.frame_offsets
    for k, (s, a, b) in enumerate(todo):
        for m in methods:
            m.advance(stream, int(off[s]))
        ref, _ = rerun(
            model, trace, stream, a, b, sink_tokens=sink_tokens, recent_tokens=recent_tokens
        )
        steps += b - a
        for m in methods:
            for p in grids[m.name]:
                got, by = rerun(
                    model,
                    trace,
                    stream,
                    a,
                    b,
                    method=m,
                    param=float(p),
                    sink_tokens=sink_tokens,
                    recent_tokens=recent_tokens,
                )
                q = quality(ref, got)
                rec = per[m.name][float(p)]
                rec["kl"] += q["kl"]
                rec["agreement"] += q["agreement"]
                rec["bytes"] += by
            if progress is not None:
                progress(f"answer {k + 1}/{len(todo)} at {a} tokens: {m.name} done")
    out: dict[str, Any] = {"answers": len(todo), "steps": steps}
    for m in methods:
        grid = [float(p) for p in grids[m.name]]
        recs = [per[m.name][p] for p in grid]
        out[m.name] = {
            "grid": grid,
            "param": m.param,
            "label": m.label,
            "kl": [float(np.mean(r["kl"])) if r["kl"] else None for r in recs],
            "agreement": [float(np.mean(r["agreement"])) if r["agreement"] else None for r in recs],
            "bytes": [float(np.mean(r["bytes"])) if r["bytes"] else None for r in recs],
        }
    return out
