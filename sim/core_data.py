"""Host programs for the core (``hw.core.VRexCore``) and their golden expectations.

A ``Program`` is the exact command sequence a host sends — reset, bias, one ``INGEST`` per
frame, the decode ``QUERY`` commands after their frame, plus bad commands — for several
(layer, KV head) contexts of a workload, each command with what the bit-exact model
(``golden.core.CoreModel``) says must come back: the status error, the FP32 output vector
and, at the end of each context, the work counters. Used by the cocotb regression
(``sim.tb_core``), the Amaranth-simulator tests and ``python -m sim.run``.

Workloads: a recorded trace (``workloads.trace``; the decode queries of the first query head of
each KV head's GQA group, at position = tokens so far) or seeded
synthetic keys with temporal redundancy (``golden.synthetic``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.bf16 import from_bf16_bits, to_bf16_bits
from golden.core import CoreModel
from golden.rope import rope
from golden.synthetic import synthetic_keys
from hw.config import HWConfig
from hw.core import Error, Op
from workloads.trace import Trace

__all__ = [
    "Command",
    "Context",
    "Program",
    "program_from_arrays",
    "program_from_trace",
    "synthetic_program",
]


@dataclass(frozen=True)
class Command:
    op: int
    arg: int
    vectors: list[np.ndarray]  #: BF16 (d,) vectors sent on ``vin``, in order
    context: int
    kind: str  #: reset, bias, frame, decode, bad, perf
    error: int = Error.OK
    out: np.ndarray | None = None  #: expected FP32 output (d,) uint32
    info: dict = field(default_factory=dict)  #: model figures for the report


@dataclass(frozen=True)
class Context:
    layer: int
    head: int
    counters: dict  #: expected work counters at the end of the context


@dataclass(frozen=True)
class Program:
    commands: list[Command]
    contexts: list[Context]
    #: index of the last command of each context (counters are read after it)
    context_end: list[int]
    source: str

    @property
    def queries(self) -> int:
        return sum(c.out is not None for c in self.commands)


def _bias(cfg: HWConfig, keys_f32: np.ndarray, first: int) -> np.ndarray:
    """The float model's centring bias: BF16 mean of the first frame's hashing-space keys."""
    r = cfg.resv
    k = keys_f32[:first]
    if r.hash_space == "post_rope":
        k = rope(k, np.arange(first), base=r.rope_base)
    return to_bf16_bits(k.mean(axis=0, dtype=np.float64).astype(np.float32))


def program_from_arrays(
    cfg: HWConfig,
    contexts: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]],
    frame_offsets: np.ndarray,
    decode_after: np.ndarray,
    *,
    source: str,
    bad_commands: bool = True,
) -> Program:
    """``contexts``: ``(layer, head, keys (N, d), values (N, d), decode queries (Nd, d))``
    as BF16 bit patterns (uint16)."""
    d = cfg.resv.head_dim
    cmds: list[Command] = []
    ctxs: list[Context] = []
    ends: list[int] = []
    model = CoreModel(cfg)
    for ci, (layer, head, keys, values, dq) in enumerate(contexts):
        if keys.shape[-1] != d:
            raise ValueError(
                f"the workload's head_dim ({keys.shape[-1]}) must equal the config's ({d})"
            )
        model.reset()
        model.counters = dict.fromkeys(model.counters, 0)
        cmds.append(Command(Op.RESET_CTX, 0, [], ci, "reset"))
        if bad_commands and ci == 0:
            q0 = dq[0] if len(dq) else keys[0]
            cmds.append(Command(Op.QUERY, 0, [q0], ci, "bad", error=Error.EMPTY))
            for op in (0, 6, 7):
                cmds.append(Command(op, 0, [], ci, "bad", error=Error.BAD_OP))
        if cfg.resv.centre_keys:
            bias = _bias(cfg, from_bf16_bits(keys), int(frame_offsets[1]))
            model.set_bias(bias)
            cmds.append(Command(Op.SET_BIAS, 0, [bias], ci, "bias"))
        for f in range(len(frame_offsets) - 1):
            lo, hi = int(frame_offsets[f]), int(frame_offsets[f + 1])
            lost = model.counters["kv_dropped"]
            dropped = model.ingest(keys[lo:hi], values[lo:hi])
            lost = model.counters["kv_dropped"] - lost
            vecs = [x for t in range(lo, hi) for x in (keys[t], values[t])]
            err = Error.FULL if dropped or lost else Error.OK
            info = {"tokens": hi - lo, "dropped": dropped, "kv_lost": lost}
            cmds.append(Command(Op.INGEST, hi - lo, vecs, ci, "frame", error=err, info=info))
            for j in np.flatnonzero(decode_after == f):
                pos = model.n_tokens
                res = model.query(dq[j], pos)
                info = {
                    "tokens": model.n_tokens,
                    "attended": len(res.order),
                    "fetched": res.fetched,
                    "clusters": model.n_clusters,
                    "selected": len(res.selected),
                    "bursts": res.bursts,
                    "beats": res.beats,
                }
                cmds.append(
                    Command(Op.QUERY, pos, [dq[j]], ci, "decode", out=res.output, info=info)
                )
        if bad_commands and ci == 0:
            bad_pos = 1 << (cfg.token_id_bits + 1)
            cmds.append(Command(Op.QUERY, bad_pos, [keys[0]], ci, "bad", error=Error.BAD_ARG))
        ends.append(len(cmds) - 1)
        ctxs.append(Context(layer, head, dict(model.counters)))
        cmds.append(Command(Op.CLEAR_PERF, 0, [], ci, "perf"))
    return Program(cmds, ctxs, ends, source)


def program_from_trace(
    cfg: HWConfig,
    trace: Trace,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    frames: int | None = None,
    bad_commands: bool = True,
    source: str = "trace",
) -> Program:
    """Contexts (layer, KV head) of a recorded trace, first ``frames`` frames."""
    F = trace.n_frames if frames is None else min(frames, trace.n_frames)
    offsets = trace.frame_offsets[: F + 1]
    n = int(offsets[-1])
    keep = trace.decode_after < F
    G = trace.q_per_kv
    ctxs = []
    for layer in range(trace.layers if layers is None else min(layers, trace.layers)):
        for head in range(trace.kv_heads if kv_heads is None else min(kv_heads, trace.kv_heads)):
            ctxs.append(
                (
                    layer,
                    head,
                    to_bf16_bits(trace.keys[layer, head, :n]),
                    to_bf16_bits(trace.values[layer, head, :n]),
                    to_bf16_bits(trace.decode_queries[layer, head * G][keep]),
                )
            )
    return program_from_arrays(
        cfg, ctxs, offsets, trace.decode_after[keep], source=source, bad_commands=bad_commands
    )


def synthetic_program(
    cfg: HWConfig,
    *,
    frames: int = 4,
    tokens_per_frame: int = 8,
    contexts: int = 2,
    queries_per_frame: int = 1,
    seed: int = 0,
    bad_commands: bool = True,
) -> Program:
    """Seeded video-like keys (temporal redundancy, shared offset), values and queries."""
    d = cfg.resv.head_dim
    keys, offsets = synthetic_keys(
        frames=frames,
        tokens_per_frame=tokens_per_frame,
        head_dim=d,
        redundancy=0.8,
        offset=0.3,
        seed=seed,
        layers=1,
        kv_heads=contexts,
    )
    rng = np.random.default_rng(seed + 1)
    n = keys.shape[2]
    ctxs = []
    for h in range(contexts):
        k = keys[0, h]
        v = rng.standard_normal(k.shape).astype(np.float32)
        picks = rng.integers(0, n, frames * queries_per_frame)
        q = 2.0 * k[picks] + rng.standard_normal((picks.size, d)).astype(np.float32)
        ctxs.append((0, h, to_bf16_bits(k), to_bf16_bits(v), to_bf16_bits(q)))
    decode_after = np.repeat(np.arange(frames), queries_per_frame)
    return program_from_arrays(
        cfg, ctxs, offsets, decode_after, source=f"synthetic seed {seed}", bad_commands=bad_commands
    )
