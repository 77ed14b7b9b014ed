"""Host programs for the core (``hw.core.VRexCore``) and their golden expectations.

A ``Program`` is the exact command sequence a host sends — reset, bias, one ``INGEST`` per
frame, the decode ``QUERY`` commands after their frame, plus bad commands — for several
(layer, KV head) contexts of a workload, each command with what the bit-exact model
(``golden.core.CoreModel``) says must come back: the status error, the FP32 output vector
and, at the end of each context, the work counters. Used by the cocotb regression
(``sim.benches.tb_core``), the Amaranth-simulator tests and ``python -m sim.run``.

Workloads: a recorded trace (``workloads.trace``; the decode queries of the first query head of
each KV head's GQA group, at position = tokens so far) or seeded
synthetic keys with temporal redundancy (``golden.synthetic``).

The host protocol, written once for the three simulation environments (the Amaranth tests'
host, the cocotb bench's ``Host``, the synthesis activity's host): per command its ``cmd``
beat (``cmd_beat``), its ``vin`` words (``Command.vin_words``), then ``Command.out_beats``
beats on ``out`` (a vector-answering command) and one ``status`` beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from golden.bf16 import from_bf16_bits, to_bf16_bits
from golden.core import CoreModel
from golden.rope import rope
from golden.synthetic import synthetic_keys
from hw.config import HWConfig, bits_for
from hw.core import Error, Op, lane_words
from hw.core.contexts import kept_regions, kept_rows, moved_beats, region_rows, swap_beats
from workloads.trace import Trace

__all__ = [
    "Command",
    "Context",
    "Program",
    "cmd_beat",
    "program_from_arrays",
    "program_from_trace",
    "soak_program",
    "synthetic_program",
]


@dataclass(frozen=True)
class Command:
    op: int
    arg: int
    vectors: list[np.ndarray]  #: BF16 (d,) vectors sent on ``vin``, in order
    context: int
    kind: str  #: reset, bias, frame, prefill, decode, query (at position 0), bad, perf
    error: int = Error.OK
    rows: int = 0  #: PREFILL: query rows (``vectors``)
    group: int = 0  #: PREFILL: rows per position
    out: np.ndarray | None = None  #: expected FP32 output (d,) uint32; (rows * d,) for PREFILL
    info: dict = field(default_factory=dict)  #: model figures for the report

    def vin_words(self, lanes: int) -> list[int]:
        """The ``vin`` beats' payload words: every vector's ``lane_words``, in order."""
        return [w for v in self.vectors for w in lane_words(v, lanes)]

    def out_beats(self, lanes: int) -> int:
        """The beats the command answers with on ``out`` (0: it answers with no vector)."""
        return 0 if self.out is None else len(self.out) // lanes


@dataclass(frozen=True)
class Context:
    layer: int
    head: int
    counters: dict  #: the context's own work counters at its end (the model's)
    #: its clusters' FP32 key sums at its end (the model's; the core keeps them in DRAM)
    keysum: np.ndarray
    #: its aged tokens' clusters, in the order aged, with the token whose ingest aged each:
    #: (ingested token id, cluster) (the model's ``CoreModel.aged``)
    aged: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Program:
    commands: list[Command]
    contexts: list[Context]
    #: where the host reads the counters: (the command after which it reads them, what they
    #: must read); each context's end, or (interleaved contexts) the program's end
    counter_reads: list[tuple[int, dict]]
    source: str

    @property
    def queries(self) -> int:
        return sum(c.out is not None for c in self.commands)

    @property
    def regions(self) -> int:
        """The contexts' DRAM regions the program uses (``hw.core.contexts``): 1 + the
        highest context it starts or switches to."""
        ops = (Op.RESET_CTX, Op.SWITCH_CTX)
        used = [c.arg for c in self.commands if c.op in ops and c.error == Error.OK]
        return 1 + max(used, default=0)


def cmd_beat(c: Command) -> dict:
    """The ``cmd`` beat of a command."""
    return {"op": c.op, "arg": c.arg, "rows": c.rows, "group": c.group}


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
    prefill: np.ndarray | None = None,
    prefill_from: int = 0,
    interleave: bool = False,
    prefetch: bool = True,
) -> Program:
    """``contexts``: ``(layer, head, keys (N, d), values (N, d), decode queries (Nd, d))``
    as BF16 bit patterns (uint16). Decode queries ``(Nd, G, d)`` are grouped: each step is
    one ``PREFILL`` of the group's ``G`` heads at the same position.

    ``prefill``: per context, the frame tokens' queries ``(N, G, d)`` of the GQA group's
    ``G`` heads (a sequence indexed like ``contexts``). With it, each frame is ingested in
    blocks of ``frame_rows // G`` tokens (at most ``recent_tokens``, so a block's tokens
    are still in the recent window), each block followed by a ``PREFILL`` of its tokens x
    heads (token major; with ``G > frame_rows``, one ``PREFILL`` per token and
    ``frame_rows`` heads). Frames before ``prefill_from`` are ingested whole, unprefilled.

    The contexts run one after the other (each from ``RESET_CTX 0``, its counters read at
    its end), or with ``interleave`` as a model visits them: every frame, each context in
    turn (``RESET_CTX c`` the first time, then ``SWITCH_CTX c``), the counters read once at
    the end (the sum over the contexts, and the switches and the beats they moved,
    ``hw.core.contexts``); one ``golden.core.CoreModel`` per context gives the results,
    since a context's results must not depend on what ran between its commands. After each
    ``SWITCH_CTX`` the host prefetches the kept tokens of the next context it visits
    (``PREFETCH_CTX``), unless ``prefetch`` is false."""
    d = cfg.resv.head_dim
    if interleave and len(contexts) > cfg.contexts:
        raise ValueError(
            f"an interleaved program of {len(contexts)} contexts needs contexts >= "
            f"{len(contexts)}, not {cfg.contexts}"
        )
    models, parts, states = [], [], []
    for ci, (_, _, keys, values, dq) in enumerate(contexts):
        if keys.shape[-1] != d:
            raise ValueError(
                f"the workload's head_dim ({keys.shape[-1]}) must equal the config's ({d})"
            )
        model = CoreModel(cfg)
        models.append(model)
        # the context's commands: its start, one list per frame, its end
        start = [Command(Op.RESET_CTX, ci if interleave else 0, [], ci, "reset")]
        if bad_commands and ci == 0:
            q0 = dq.reshape(-1, d)[0] if len(dq) else keys[0]
            start.append(Command(Op.QUERY, 0, [q0], ci, "bad", error=Error.EMPTY))
            start += _bad_prefills(cfg, model, q0, ci)
            for op in (0, 15):
                start.append(Command(op, 0, [], ci, "bad", error=Error.BAD_OP))
            if interleave:  # a context never started, one beyond cfg.contexts
                for op in (Op.SWITCH_CTX, Op.PREFETCH_CTX):
                    for c in (1, cfg.contexts):
                        start.append(Command(op, c, [], ci, "bad", error=Error.BAD_ARG))
                # the active context is on chip already
                start.append(Command(Op.PREFETCH_CTX, 0, [], ci, "prefetch", info={"moves": False}))
        if cfg.resv.centre_keys:
            bias = _bias(cfg, from_bf16_bits(keys), int(frame_offsets[1]))
            model.set_bias(bias)
            start.append(Command(Op.SET_BIAS, 0, [bias], ci, "bias"))
        pq = None if prefill is None else prefill[ci]
        state = [_state(model)]  # after each part: what its tables hold
        frames = []
        for f in range(len(frame_offsets) - 1):
            frames.append(
                _frame(
                    cfg,
                    model,
                    keys,
                    values,
                    dq,
                    decode_after,
                    pq,
                    f,
                    frame_offsets,
                    ci,
                    prefill_from,
                )
            )
            state.append(_state(model))
        end = []
        if bad_commands and ci == 0:
            # A QUERY at position 0 sees the kept tokens newer than it (no causal mask);
            # its -0 elements become +0 in the selection query.
            q_old = keys[0].copy()
            q_old[:2] = 0x8000
            res = model.query(q_old, 0)
            info = _info(model, res)
            end.append(Command(Op.QUERY, 0, [q_old], ci, "query", out=res.output, info=info))
            bad_pos = 1 << (cfg.token_id_bits + 1)
            end.append(Command(Op.QUERY, bad_pos, [keys[0]], ci, "bad", error=Error.BAD_ARG))
            end += _bad_prefills(cfg, model, keys[0], ci)
        parts.append([start, *frames, end])
        states.append([*state, _state(model)])
    cmds: list[Command] = []
    ctxs = [
        Context(
            layer,
            head,
            dict(models[ci].counters),
            models[ci].keysum[: models[ci].n_clusters],
            tuple(models[ci].aged),
        )
        for ci, (layer, head, *_) in enumerate(contexts)
    ]
    if not interleave:
        reads = []
        for ci, ctx in enumerate(ctxs):
            for part in parts[ci]:
                cmds += part
            reads.append((len(cmds) - 1, ctx.counters))
            cmds.append(Command(Op.CLEAR_PERF, 0, [], ci, "perf"))
        return Program(cmds, ctxs, reads, source)

    # Interleaved: part k of every context in turn. A change of context stores the active
    # one's tables and loads the next one's (a RESET_CTX only stores); after a switch the
    # host prefetches the next context's kept tokens into the spare bank, which holds the
    # context a switch left until then (stored first if it is dirty), and that arms the
    # clean: a PREFILL or QUERY stores the active context's kept tokens if an INGEST
    # changed them. Their beats follow from the states the models had after each part, and
    # a clean's from its command's.
    def rows(ci: int) -> dict[str, int]:
        return region_rows(cfg, **states[ci][done[ci]])

    kept = kept_regions(cfg)
    # a context's kept tokens on chip differ from its DRAM copy; a PREFETCH_CTX since the
    # last switch (the clean armed)
    dirty, armed = [False] * len(contexts), False

    def move_spare(load: int | None) -> tuple[int, int]:
        """Moves the spare bank as the prefetcher does: stores it if dirty (it is then
        clean) and loads ``load``'s kept tokens. Returns the move's beats and the beats
        that bound its cycles."""
        stored = {} if spare is None or not dirty[spare] else {**rows(spare), "scalars": 0}
        loaded = {} if load is None else rows(load)
        if spare is not None:
            dirty[spare] = False
        beats = moved_beats(cfg, stored, kept) + moved_beats(cfg, loaded, kept)
        return beats, swap_beats(cfg, stored, loaded, kept)

    def run_part(part: list[Command], ci: int) -> None:
        """The part's effect on the kept tokens' state, and its cleans' beats."""
        nonlocal armed
        for c in part:
            if c.op == Op.PREFETCH_CTX and c.error == Error.OK:
                armed = True
            elif c.op == Op.INGEST and c.info["tokens"] > c.info["dropped"]:
                dirty[ci] = True
            elif c.op in (Op.PREFILL, Op.QUERY) and c.error == Error.OK and armed and dirty[ci]:
                stored = {"scalars": 0, **kept_rows(cfg, c.info["kept"])}
                moved["prefetch_beats"] += moved_beats(cfg, stored, kept)
                dirty[ci] = False
                c.info["cleans"] = True

    moved = {"context_switches": 0, "context_beats": 0, "prefetch_beats": 0}
    active, done, spare = None, {}, None  # the last part each context ran
    for k in range(len(parts[0])):
        for ci in range(len(contexts)):
            part = parts[ci][k]
            if part and ci != active:
                # the beats that bound the swap (sim.bench_core checks its cycles), and the
                # prefetcher's before it, unless the context's kept tokens are on chip
                info = {"prefetched": spare == ci, "kept_beats": 0}
                if active is not None:
                    moved["context_beats"] += moved_beats(cfg, rows(active))
                    if k == 0 or spare != ci:  # the spare bank stored, ci's loaded
                        load = ci if k > 0 else None
                        beats, info["kept_beats"] = move_spare(load)
                        moved["prefetch_beats"] += beats
                    spare, armed = active, False
                if k > 0:
                    info["swap_beats"] = swap_beats(cfg, rows(active), rows(ci))
                    info["tokens"] = max(states[c][done[c]]["n_tok"] for c in (active, ci))
                    cmds.append(Command(Op.SWITCH_CTX, ci, [], ci, "switch", info=info))
                    moved["context_switches"] += 1
                    moved["context_beats"] += moved_beats(cfg, rows(ci))
                    # the next context the program visits (none: nothing to prefetch, and
                    # no move left running when the host reads the counters)
                    later = (
                        c
                        for j in range(k, len(parts[0]))
                        for c in range(len(contexts))
                        if (j, c) > (k, ci) and parts[c][j] and c != ci
                    )
                    nxt = next(later, None)
                    if prefetch and nxt is not None and nxt != spare:
                        move = {"moves": True, "stores": spare is not None and dirty[spare]}
                        cmds.append(Command(Op.PREFETCH_CTX, nxt, [], ci, "prefetch", info=move))
                        moved["prefetch_beats"] += move_spare(nxt)[0]
                        spare, armed = nxt, True
                active = ci
            run_part(part, ci)
            cmds += part
            done[ci] = k
    total = {n: sum(c.counters[n] for c in ctxs) for n in ctxs[0].counters}
    return Program(cmds, ctxs, [(len(cmds) - 1, {**total, **moved})], source)


def _state(model: CoreModel) -> dict:
    """What sizes a switch of the context ``model`` holds (``region_rows``' arguments)."""
    return {
        "n_tok": model.n_tokens,
        "n_clu": model.n_clusters,
        "ring_n": len(model.window.ring),
        "chunks": model.memory.free,
    }


def _frame(cfg, model, keys, values, dq, decode_after, pq, f, offsets, ci, prefill_from):
    """Frame ``f`` of a context: its ``INGEST`` blocks, prefills and decode steps."""
    out = []
    lo, hi = int(offsets[f]), int(offsets[f + 1])
    on = pq is not None and f >= prefill_from
    step = _block_tokens(cfg, pq.shape[1]) if on else hi - lo
    for a in range(lo, hi, step):
        b = min(hi, a + step)
        out.append(_ingest(model, keys, values, a, b, ci, f))
        if on:
            out += _prefills(cfg, model, pq, a, b, ci, f)
    for j in np.flatnonzero(decode_after == f):
        pos = model.n_tokens
        if dq.ndim == 3:  # grouped decode: one PREFILL of the group's G heads
            g = dq.shape[1]
            res = model.prefill(dq[j], pos, g)
            info = _info(model, res, rows=g, group=g)
            c = Command(Op.PREFILL, pos, list(dq[j]), ci, "decode", rows=g, group=g)
            out.append(replace(c, out=res.output.reshape(-1), info=info))
            continue
        res = model.query(dq[j], pos)
        info = _info(model, res)
        out.append(Command(Op.QUERY, pos, [dq[j]], ci, "decode", out=res.output, info=info))
    return out


def _ingest(model: CoreModel, keys, values, lo: int, hi: int, ci: int, frame: int) -> Command:
    lost, beats = model.counters["kv_dropped"], model.counters["write_beats"]
    dropped = model.ingest(keys[lo:hi], values[lo:hi])
    lost = model.counters["kv_dropped"] - lost
    written = (model.counters["write_beats"] - beats) // model.layout.beats_per_token
    vecs = [x for t in range(lo, hi) for x in (keys[t], values[t])]
    err = Error.FULL if dropped or lost else Error.OK
    info = {
        "tokens": hi - lo,
        "dropped": dropped,
        "kv_lost": lost,
        "kv_written": written,  # aged tokens whose K/V this INGEST writes over AXI
        "frame": frame,
    }
    return Command(Op.INGEST, hi - lo, vecs, ci, "frame", error=err, info=info)


def _info(model: CoreModel, res, **extra) -> dict:
    """A query's or prefill's figures for the reports."""
    return {
        "tokens": model.n_tokens,
        "attended": len(res.order),
        "fetched": res.fetched,
        "clusters": model.n_clusters,
        "chunks": model.memory.free,  # KV chunks in use (a switch moves their links)
        "selected": len(res.selected),
        "kept": min(model.n_tokens, model.cfg.resv.sink_tokens) + len(model.window.ring),
        "bursts": res.bursts,
        "beats": res.beats,
        **extra,
    }


def _block_tokens(cfg: HWConfig, group: int) -> int:
    """Tokens ingested before each prefill: a block's rows fit the query buffer, its tokens
    the recent window."""
    return max(1, min(cfg.frame_rows // group, cfg.resv.recent_tokens))


def _prefills(cfg: HWConfig, model: CoreModel, pq, lo: int, hi: int, ci: int, frame: int):
    """``PREFILL`` commands for tokens ``lo..hi-1`` (just ingested) and their expectations."""
    P, G = cfg.frame_rows, pq.shape[1]
    if G <= P:
        blocks = [(lo, pq[lo:hi].reshape(-1, pq.shape[2]), G)]
    else:
        blocks = [
            (t, pq[t, h : h + P], min(P, G - h)) for t in range(lo, hi) for h in range(0, G, P)
        ]
    out = []
    for p0, rows, group in blocks:
        res = model.prefill(rows, p0, group)
        info = _info(model, res, rows=len(rows), group=group, frame=frame)
        out.append(
            Command(
                Op.PREFILL,
                p0,
                list(rows),
                ci,
                "prefill",
                rows=len(rows),
                group=group,
                out=res.output.reshape(-1),
                info=info,
            )
        )
    return out


def _bad_prefills(cfg: HWConfig, model: CoreModel, q0, ci: int) -> list[Command]:
    """``PREFILL`` commands the core refuses, the vectors consumed and nothing else changed:
    ``EMPTY`` on an empty context, else ``BAD_ARG`` for a bad ``rows`` (0, past
    ``frame_rows``), ``group`` (0, past ``rows``) or position (older than the newest
    clustered token, or a last row past ``2**(token_id_bits + 1) - 1``)."""
    if model.n_tokens == 0:
        assert model.prefill_error(1, 1, 0) is not None
        return [Command(Op.PREFILL, 0, [q0], ci, "bad", rows=1, group=1, error=Error.EMPTY)]
    P, n = cfg.frame_rows, model.n_tokens
    cases = [(0, 1, n), (1, 0, n), (1, 2, n)]
    if (1 << bits_for(P)) > P + 1:
        cases.append((P + 1, 1, n))
    if model.newest_aged > 0:
        cases.append((1, 1, model.newest_aged - 1))
    if P >= 2:
        cases.append((2, 1, (1 << (cfg.token_id_bits + 1)) - 1))
    out = []
    for rows, group, p0 in cases:
        assert model.prefill_error(rows, group, p0) is not None, (rows, group, p0)
        c = Command(Op.PREFILL, p0, [q0] * rows, ci, "bad", Error.BAD_ARG, rows=rows, group=group)
        out.append(c)
    return out


def program_from_trace(
    cfg: HWConfig,
    trace: Trace,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    frames: int | None = None,
    bad_commands: bool = True,
    source: str = "trace",
    prefill: bool = False,
    interleave: bool = False,
    prefetch: bool = True,
) -> Program:
    """Contexts (layer, KV head) of a recorded trace, first ``frames`` frames; with
    ``prefill``, every frame token's queries of the group's heads as ``PREFILL`` blocks;
    ``interleave``: see ``program_from_arrays``."""
    F = trace.n_frames if frames is None else min(frames, trace.n_frames)
    offsets = trace.frame_offsets[: F + 1]
    n = int(offsets[-1])
    keep = trace.decode_after < F
    G = trace.q_per_kv
    ctxs, pqs = [], []
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
            q = trace.queries[layer, head * G : (head + 1) * G, :n]
            pqs.append(to_bf16_bits(np.ascontiguousarray(q.transpose(1, 0, 2))))
    return program_from_arrays(
        cfg,
        ctxs,
        offsets,
        trace.decode_after[keep],
        source=source,
        bad_commands=bad_commands,
        prefill=pqs if prefill else None,
        interleave=interleave,
        prefetch=prefetch,
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
    prefill_group: int = 0,
    prefill_from: int = 0,
    grouped_decode: bool = False,
    interleave: bool = False,
    prefetch: bool = True,
) -> Program:
    """Seeded video-like keys (temporal redundancy, shared offset), values and queries;
    with ``prefill_group = G > 0``, ``G`` query heads per token for ``PREFILL`` blocks (and,
    with ``grouped_decode``, per decode step: one ``PREFILL`` of ``G`` rows);
    ``interleave``: see ``program_from_arrays``."""
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
    ctxs, pqs = [], []
    for h in range(contexts):
        k = keys[0, h]
        v = rng.standard_normal(k.shape).astype(np.float32)
        picks = rng.integers(0, n, frames * queries_per_frame)
        q = 2.0 * k[picks] + rng.standard_normal((picks.size, d)).astype(np.float32)
        if grouped_decode:
            g = (picks.size, max(1, prefill_group), d)
            q = 2.0 * k[picks][:, None] + rng.standard_normal(g).astype(np.float32)
        ctxs.append((0, h, to_bf16_bits(k), to_bf16_bits(v), to_bf16_bits(q)))
        g = max(1, prefill_group)
        pq = 2.0 * k[:, None] + rng.standard_normal((n, g, d)).astype(np.float32)
        pqs.append(to_bf16_bits(pq))
    decode_after = np.repeat(np.arange(frames), queries_per_frame)
    return program_from_arrays(
        cfg,
        ctxs,
        offsets,
        decode_after,
        source=f"synthetic seed {seed}",
        bad_commands=bad_commands,
        prefill=pqs if prefill_group else None,
        prefill_from=prefill_from,
        interleave=interleave,
        prefetch=prefetch,
    )


def soak_program(cfg: HWConfig, seed: int, queries: int) -> Program:
    """A seeded synthetic program with at least ``queries`` decode queries (``make soak``'s
    core chunks): ``seed`` also draws its shape, 4..8 frames of 4, 8 or 12 tokens in 1..3
    contexts, the decode queries spread evenly over the frames, from the third frame on
    the frames prefilled in 2-head blocks, and (half the programs of several contexts, if
    ``cfg.contexts`` holds them) the contexts visited in turn, with a ``SWITCH_CTX`` each and
    (half of those) a ``PREFETCH_CTX`` of the next context after it."""
    if queries < 1:
        raise ValueError(f"queries must be at least 1, not {queries}")
    rng = np.random.default_rng([seed, 0xC0DE])
    frames = int(rng.integers(4, 9))
    contexts = int(rng.integers(1, 4))
    tokens = int(rng.choice([4, 8, 12]))
    interleave = bool(rng.integers(0, 2)) and 1 < contexts <= cfg.contexts
    per_frame = -(-queries // (frames * contexts))
    prefetch = bool(rng.integers(0, 2))
    return synthetic_program(
        cfg,
        frames=frames,
        tokens_per_frame=tokens,
        contexts=contexts,
        queries_per_frame=per_frame,
        seed=seed,
        prefill_group=2,
        prefill_from=2,
        interleave=interleave,
        prefetch=prefetch,
    )
