"""Switching activity from a real simulation: stimulus per unit, Amaranth simulator, VCD.

Contract:
- :func:`simulate_activity` elaborates a fresh instance of the unit, drives it with the
  stimulus :func:`stimulus_for` picks, runs the Amaranth simulator for ``cycles`` clock
  cycles writing a VCD, and returns an :class:`ActivityRun` (the parsed VCD plus a
  human-readable description of where the activity came from).
- :func:`read_vcd` turns a VCD into per-bit toggle counts and duty (fraction of time at 1)
  for every variable, keyed by its dotted path below the design's top scope
  (``"count"``, ``"hcu.row"``); aliases (one VCD id under several names) share one entry.

Stimulus choice: the unit's entry in the registry ``hw.units.UNITS`` names its stimulus, a
key of :data:`STIMULI` (a design not in the registry gets ``"ports"``):
- ``"ports"``: driven from its stream ports. ``tokens`` + ``assign`` streams get token
  signatures from ``golden.synthetic.synthetic_signatures`` (temporal redundancy 0.8, a
  ``clear`` every context), ``clusters`` + a ``cmd``/``wtu_cmd`` stream get rows of quantised
  scores (``golden.resv.quantize_scores``) with counts, the WTU coverage / a top-k ``k``;
  every other input stream gets random payloads;
- units whose streams need framed traffic have their own: ``"core-host"`` runs the synthetic
  host program of ``sim.cases.core.synthetic_program`` (new seed each round) against
  ``sim.kit.axi_ram.AxiRamModel`` (so the core's power reflects real queries: RoPE, hashing,
  HCU, KV writes and reads, WTU, softmax); ``"rope-vectors"`` random BF16 vectors and
  positions; ``"tile-softmax-rows"`` rows of random scores (masked lanes, first and later tiles);
  ``"tiled-attention-commands"`` commands of ``sim.cases.datapath.attn_case``;
  ``"kv-writer"`` random token slots and data against the AXI RAM model's write channels;
  ``"mac-array-blocks"`` blocks of ``mac_rows`` random BF16 query vectors, each against 16
  random K vectors.
Every output stream sees random back-pressure (ready with probability 0.8) and every input
stream random idle cycles.
The description names the stimulus, so reports say which one produced their power figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import Value
from amaranth.lib import stream, wiring
from amaranth.sim import Simulator

from hw.units import UNITS

__all__ = [
    "STIMULI",
    "ActivityRun",
    "SignalActivity",
    "VcdActivity",
    "read_vcd",
    "simulate_activity",
    "stimulus_for",
]

#: Clock period of the activity simulation (the value only scales VCD time stamps).
SIM_PERIOD_S = 10e-9

Bench = Callable[[Any], Awaitable[None]]
StimulusFactory = Callable[[wiring.Component, Any, np.random.Generator], list[Bench]]


@dataclass
class SignalActivity:
    """Per-bit toggle counts and duty (fraction of simulated time at 1) of one variable."""

    width: int
    toggles: list[int]
    duty: list[float]


@dataclass
class VcdActivity:
    """Activity of every variable of one VCD."""

    path: Path
    cycles: int
    clock: str
    signals: dict[str, SignalActivity] = field(default_factory=dict)

    def rate(self, name: str, bit: int) -> tuple[float, float] | None:
        """(toggles per clock cycle, duty) of bit ``bit`` of variable ``name``, or None."""
        sig = self.signals.get(name)
        if sig is None or not 0 <= bit < sig.width or self.cycles <= 0:
            return None
        return sig.toggles[bit] / self.cycles, sig.duty[bit]


@dataclass
class ActivityRun:
    """A simulation run's activity and a description of its source."""

    vcd: VcdActivity
    stimulus: str
    cycles: int
    seed: int

    @property
    def source(self) -> str:
        return (
            f"Amaranth simulator, stimulus '{self.stimulus}', {self.cycles} cycles, "
            f"seed {self.seed}, VCD {self.vcd.path}"
        )


# --- VCD -----------------------------------------------------------------------------------


def _bits_of(value: Any, width: int) -> list[int | None]:
    """LSB-first bits of a VCD value; None for x/z bits."""
    text = str(value).lower()
    if set(text) <= {"0", "1"}:
        v = int(text, 2)
        return [(v >> i) & 1 for i in range(width)]
    text = text.rjust(width, text[0] if text and text[0] in "xz" else "0")
    out: list[int | None] = []
    for ch in reversed(text[-width:]):
        out.append(1 if ch == "1" else 0 if ch == "0" else None)
    return out


def _vcd_tokens(fh: Any):
    """Whitespace-separated tokens of a VCD file (declarations and value changes)."""
    for line in fh:
        yield from line.split()


def read_vcd(path: str | Path, clock: str = "clk") -> VcdActivity:
    """Parse ``path``; count cycles as rising edges of the top scope's ``clock`` variable.

    The design's top scope is the shallowest scope that declares ``clock``; keys of
    :attr:`VcdActivity.signals` are dotted paths relative to it. ``string`` and ``real``
    variables (Amaranth writes enum-typed aliases as strings) are skipped.
    """
    path = Path(path)
    scopes: list[str] = []
    decls: list[tuple[list[str], str, str, int]] = []  # scope path, name, id, width
    changes: dict[str, list[tuple[int, Any]]] = {}
    widths: dict[str, int] = {}
    time = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        toks = _vcd_tokens(fh)
        for tok in toks:
            if tok.startswith("$"):
                if tok == "$scope":
                    _kind, ident = next(toks), next(toks)
                    scopes.append(ident)
                    next(toks)  # $end
                elif tok == "$upscope":
                    scopes.pop()
                    next(toks)
                elif tok == "$var":
                    vtype, size, code = next(toks), int(next(toks)), next(toks)
                    ref = []
                    for t in toks:
                        if t == "$end":
                            break
                        ref.append(t)
                    name = ref[0].lstrip("\\") if ref else code
                    if vtype in ("string", "real"):
                        continue
                    decls.append((list(scopes), name, code, size))
                    widths[code] = size
                    changes.setdefault(code, [])
                elif tok in ("$dumpvars", "$dumpall", "$dumpon", "$dumpoff", "$end"):
                    continue
                else:  # $date, $version, $timescale, $comment ...: skip to $end
                    for t in toks:
                        if t == "$end":
                            break
            elif tok[0] == "#":
                time = int(tok[1:])
            elif tok[0] in "bB":
                code = next(toks)
                if code in changes:
                    changes[code].append((time, tok[1:]))
            elif tok[0] in "rRsS":
                next(toks)
            elif tok[0] in "01xXzZ":
                code = tok[1:]
                if code in changes:
                    changes[code].append((time, tok[0]))
    end_time = time
    top: list[str] | None = None
    for scope, name, _, _ in decls:
        if name == clock and (top is None or len(scope) < len(top)):
            top = scope
    if top is None:
        raise ValueError(f"{path}: no variable named {clock!r} (the clock) in any scope")
    clock_id = next(i for s, n, i, _ in decls if s == top and n == clock)
    stats: dict[str, SignalActivity] = {}
    span = max(1, end_time)
    for code, events in changes.items():
        width = widths[code]
        toggles = [0] * width
        high = [0.0] * width
        prev: list[int | None] = [None] * width
        prev_t = 0
        for t, value in events:
            bits = _bits_of(value, width)
            dt = t - prev_t
            for i in range(width):
                p = prev[i]
                if p == 1:
                    high[i] += dt
                b = bits[i]
                if p is not None and b is not None and b != p:
                    toggles[i] += 1
            prev = bits
            prev_t = t
        for i in range(width):
            if prev[i] == 1:
                high[i] += end_time - prev_t
        stats[code] = SignalActivity(width, toggles, [h / span for h in high])
    cycles = sum(1 for _, v in changes[clock_id] if v == "1")
    act = VcdActivity(path=path, cycles=cycles, clock=clock)
    n = len(top)
    for scope, name, code, _ in decls:
        if scope[:n] != top:
            continue
        key = ".".join([*scope[n:], name])
        act.signals.setdefault(key, stats[code])
    return act


# --- stimulus ------------------------------------------------------------------------------


class _Done(Exception):
    """Raised inside a testbench when its cycle budget is spent."""


class _Budget:
    """A testbench's cycle budget: ``tick`` advances one clock cycle or ends the bench."""

    def __init__(self, ctx: Any, cycles: int):
        self.ctx = ctx
        self.left = cycles

    async def tick(self) -> None:
        if self.left <= 0:
            raise _Done
        self.left -= 1
        await self.ctx.tick()


BudgetBench = Callable[[_Budget], Awaitable[None]]


def _stream_members(dut: wiring.Component) -> dict[str, tuple[wiring.Flow, Any]]:
    out = {}
    for name, member in dut.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            out[name] = (member.flow, getattr(dut, name))
    return out


async def _put(clk: _Budget, port: Any, beats: list[Any], rng: np.random.Generator, p_idle: float):
    """Drive ``beats`` (ints or dicts) into an input stream, with random idle cycles."""
    ctx = clk.ctx
    for beat in beats:
        while rng.random() < p_idle:
            await clk.tick()
        if isinstance(beat, dict):
            ctx.set(port.payload, port.payload.shape().const(beat))
        else:
            ctx.set(Value.cast(port.payload), int(beat))
        ctx.set(port.valid, 1)
        while True:
            ready = ctx.get(port.ready)
            await clk.tick()
            if ready:
                break
        ctx.set(port.valid, 0)


def _sink(port: Any, rng: np.random.Generator, p_ready: float) -> BudgetBench:
    async def bench(clk: _Budget) -> None:
        while True:
            clk.ctx.set(port.ready, int(rng.random() < p_ready))
            await clk.tick()

    return bench


def _random_source(port: Any, rng: np.random.Generator) -> BudgetBench:
    width = len(Value.cast(port.payload))

    async def bench(clk: _Budget) -> None:
        while True:
            beats = [int(rng.integers(0, 1 << min(width, 62))) for _ in range(64)]
            await _put(clk, port, beats, rng, 0.3)

    return bench


def _token_source(dut: Any, cfg: Any, rng: np.random.Generator) -> BudgetBench:
    from golden.synthetic import synthetic_signatures

    port = dut.tokens
    fields = port.payload.shape().members
    hash_bits = fields["signature"].width
    id_bits = fields["token_id"].width if "token_id" in fields else 16
    max_clusters = getattr(cfg, "max_clusters", 16)
    # A context (one layer/head table) long enough to fill the table and force joins.
    context = max(8, 2 * max_clusters)

    async def bench(clk: _Budget) -> None:
        n = 0
        while True:
            seed = int(rng.integers(0, 2**31))
            sigs = synthetic_signatures(context, hash_bits=hash_bits, redundancy=0.8, seed=seed)
            beats = []
            for i, sig in enumerate(sigs):
                beat = {"signature": int(sig)}
                if "token_id" in fields:
                    beat["token_id"] = (n + i) % (1 << id_bits)
                if "clear" in fields:
                    beat["clear"] = int(i == 0)
                beats.append(beat)
            n += len(sigs)
            await _put(clk, port, beats, rng, 0.1)

    return bench


def _count_reader(dut: Any, rng: np.random.Generator) -> BudgetBench:
    width = len(dut.count_addr)

    async def bench(clk: _Budget) -> None:
        while True:
            clk.ctx.set(dut.count_addr, int(rng.integers(0, 1 << width)))
            await clk.tick()

    return bench


def _row_source(cmd_port: Any, clusters: Any, cfg: Any, rng: np.random.Generator) -> BudgetBench:
    from golden.resv import quantize_scores

    cmd_fields = cmd_port.payload.shape().members
    cl_fields = clusters.payload.shape().members
    # A multi-lane WTU (DRELayouts.cluster_lanes) takes ``lanes`` clusters per beat.
    lanes = cl_fields["score"].length if "n" in cl_fields else 1
    id_field = "base" if lanes > 1 else "cluster"
    max_clusters = getattr(cfg, "max_clusters", 1 << cl_fields[id_field].width)
    resv = getattr(cfg, "resv", None)
    count_shape = cl_fields["count"].elem_shape if lanes > 1 else cl_fields.get("count")
    count_max = (1 << count_shape.width) - 1 if "count" in cl_fields else 1
    topk_k = getattr(cfg, "topk_k", 4)

    async def bench(clk: _Budget) -> None:
        while True:
            # Rows of a quarter to all of the table, capped so that a short run sees
            # several rows (every phase of the unit) even at the paper's 4096 entries.
            c = int(rng.integers(max(1, max_clusters // 4), max_clusters + 1))
            c = min(c, 256)
            raw = rng.normal(0.0, 2.0, c)
            if resv is not None:
                scores = quantize_scores(raw, resv)
            else:
                scores = np.rint(raw * 16).astype(np.int64)
            counts = rng.integers(1, min(count_max, 64) + 1, c)
            if "coverage_q" in cmd_fields:
                width = cmd_fields["coverage_q"].width
                cov = resv.coverage_q if resv is not None else 1 << (width - 2)
                await _put(clk, cmd_port, [{"coverage_q": cov}], rng, 0.0)
            elif "k" in cmd_fields:
                k = int(rng.integers(1, min(c, 2 * topk_k) + 1))
                await _put(clk, cmd_port, [{"k": k}], rng, 0.0)
            beats = []
            if lanes > 1:
                for lo in range(0, c, lanes):
                    hi = min(c, lo + lanes)
                    pad = [0] * (lanes - (hi - lo))
                    beats.append(
                        {
                            "base": lo,
                            "n": hi - lo,
                            "score": [int(x) for x in scores[lo:hi]] + pad,
                            "count": [int(x) for x in counts[lo:hi]] + pad,
                            "last": int(hi == c),
                        }
                    )
            for i in range(c if lanes == 1 else 0):
                beat = {"cluster": i, "score": int(scores[i]), "last": int(i == c - 1)}
                if "count" in cl_fields:
                    beat["count"] = int(counts[i])
                beats.append(beat)
            await _put(clk, clusters, beats, rng, 0.1)

    return bench


def _bf16_rows(rng: np.random.Generator, rows: int, lanes: int) -> list[int]:
    """``rows`` words of ``lanes`` random BF16 N(0, 1) values (``hw.core.lane_words``)."""
    from golden.bf16 import to_bf16_bits
    from hw.core import lane_words

    return lane_words(to_bf16_bits(rng.standard_normal(rows * lanes)), lanes)


def _raw(layout: Any, **fields: int) -> int:
    """The bits of a ``StructLayout`` value from raw field bits (arrays pre-packed)."""
    return sum(int(v) << layout[k].offset for k, v in fields.items())


async def _get(clk: _Budget, port: Any, count: int, rng: np.random.Generator, p_ready: float):
    """Take ``count`` beats from an output stream with random back-pressure."""
    got = 0
    while got < count:
        ready = int(rng.random() < p_ready)
        clk.ctx.set(port.ready, ready)
        valid = clk.ctx.get(port.valid)
        await clk.tick()
        got += int(bool(valid and ready))
    clk.ctx.set(port.ready, 0)


def _rope_source(dut: Any, cfg: Any, rng: np.random.Generator) -> BudgetBench:
    lanes = cfg.mac_lanes
    beats_per = cfg.resv.head_dim // lanes
    pos_max = 1 << (cfg.token_id_bits + 1)

    async def bench(clk: _Budget) -> None:
        while True:
            pos = int(rng.integers(0, pos_max))
            lay = dut.vectors.payload.shape()
            beats = [
                _raw(lay, x=x, position=pos, last=int(b == beats_per - 1))
                for b, x in enumerate(_bf16_rows(rng, beats_per, lanes))
            ]
            await _put(clk, dut.vectors, beats, rng, 0.1)

    return bench


def _attn_sources(dut: Any, cfg: Any, rng: np.random.Generator) -> list[BudgetBench]:
    """``TiledAttention`` commands (``sim.cases.datapath.attn_case``): 1..frame_rows rows
    over 1..4 tiles of tokens, Gaussian q, k, v, causal positions."""
    from sim.cases.datapath import attn_beats, attn_case

    t = cfg.tile_tokens
    shapes = [
        (int(rng.integers(1, cfg.frame_rows + 1)), int(rng.integers(1, 4 * t + 1)))
        for _ in range(64)
    ]
    commands = [attn_beats(cfg, attn_case(cfg, rng, rows=r, tokens=n)) for r, n in shapes]

    def raw(beats):
        return [int(b.as_value().value) for b in beats]

    async def queries(clk: _Budget) -> None:
        for q, _ in commands:
            await _put(clk, dut.queries, raw(q), rng, 0.1)

    async def kv(clk: _Budget) -> None:
        for _, k in commands:
            await _put(clk, dut.kv, raw(k), rng, 0.1)

    return [queries, kv]


def _tile_source(dut: Any, cfg: Any, rng: np.random.Generator) -> BudgetBench:
    """Rows of ``tile_tokens`` random N(0, 16) FP32 scores (10 % masked, ``-inf``); a third
    are first tiles (``m = -inf``, ``l = +0``, one visible token), the rest later tiles with
    a finite ``m`` and ``l``."""
    t = cfg.tile_tokens
    lay = dut.rows.payload.shape()

    async def bench(clk: _Budget) -> None:
        while True:
            beats = []
            for _ in range(64):
                s = (rng.standard_normal(t) * 4.0).astype(np.float32).view(np.uint32)
                s = np.where(rng.random(t) < 0.1, np.uint32(0xFF80_0000), s)
                first = rng.random() < 1 / 3
                if first:
                    s[int(rng.integers(t))] = np.float32(rng.standard_normal()).view(np.uint32)
                m = 0xFF80_0000 if first else int(np.float32(rng.normal(2, 2)).view(np.uint32))
                l = 0 if first else int(np.float32(1 + rng.exponential(8)).view(np.uint32))
                packed = sum(int(v) << (32 * i) for i, v in enumerate(s))
                beats.append(_raw(lay, s=packed, m=m, l=l, last=int(rng.random() < 0.25)))
            await _put(clk, dut.rows, beats, rng, 0.1)

    return bench


def _array_sources(dut: Any, cfg: Any, rng: np.random.Generator) -> list[BudgetBench]:
    """Blocks of ``mac_rows`` N(0, 1) BF16 query vectors of ``head_dim`` elements, each with
    16 K vectors, made as the sources need them; the two sources run freely, the unit's
    phases interleave them."""
    from golden.bf16 import to_bf16_bits
    from sim.cases.datapath import ArrayBlock, array_beats

    data_rng = np.random.default_rng(int(rng.integers(0, 2**63)))
    d = cfg.resv.head_dim
    blocks: list[tuple[list[int], list[int]]] = []

    def block(i: int) -> tuple[list[int], list[int]]:
        while len(blocks) <= i:
            q = to_bf16_bits(data_rng.standard_normal((cfg.mac_rows, d)).astype(np.float32))
            k = to_bf16_bits(data_rng.standard_normal((16, d)).astype(np.float32))
            qb, kb = array_beats(cfg, ArrayBlock(queries=q, keys=k))
            blocks.append(([b.as_value().value for b in qb], [b.as_value().value for b in kb]))
        return blocks[i]

    def source(port: Any, which: int) -> BudgetBench:
        async def bench(clk: _Budget) -> None:
            i = 0
            while True:
                await _put(clk, port, block(i)[which], rng, 0.1)
                i += 1

        return bench

    return [source(dut.queries, 0), source(dut.keys, 1)]


def _writer_sources(dut: Any, cfg: Any, rng: np.random.Generator) -> list[BudgetBench]:
    bus = cfg.axi_data_bits // 8
    beats_per = cfg.kv_token_bytes // bus
    slots = min(cfg.kv_chunks * cfg.chunk_tokens, 1 << 16)
    pending: list[int] = []

    async def cmds(clk: _Budget) -> None:
        while True:
            slot = int(rng.integers(0, slots))
            pending.append(beats_per)
            await _put(clk, dut.cmd, [{"addr": cfg.kv_base + slot * cfg.kv_token_bytes}], rng, 0.2)

    async def data(clk: _Budget) -> None:
        while True:
            if not pending:
                await clk.tick()
                continue
            n = pending.pop(0)
            words = [int(rng.integers(0, 1 << 62)) for _ in range(n)]
            await _put(clk, dut.data, [{"data": w} for w in words], rng, 0.1)

    return [cmds, data]


def _writer_ram(dut: Any, cfg: Any, seed: int) -> list[Bench]:
    from sim.kit.axi_ram import AxiRamModel

    size = min(cfg.kv_chunks * cfg.chunk_tokens, 1 << 16) * cfg.kv_token_bytes
    ram = AxiRamModel(
        dut.m_axi,
        bytearray(size),
        base=cfg.kv_base,
        bus_bytes=cfg.axi_data_bits // 8,
        seed=seed,
        stall=0.2,
    )
    return ram.write_benches()


def _core_host(dut: Any, cfg: Any, rng: np.random.Generator) -> BudgetBench:
    """The core's synthetic host program (``sim.cases.core.synthetic_program``), repeated with
    new seeds: commands, their BF16 vectors, outputs and status drained with back-pressure.
    Small frames (4 tokens, a query after each; from the fourth frame on, each frame
    prefilled for 2 query heads: one PREFILL of 8 rows) so that the cache outgrows the sink
    and recent windows within ~2000 cycles at the tiny preset: the activity window then holds
    queries and prefills that score clusters and fetch KV over AXI, not only ingest. Two
    contexts visited in turn (``SWITCH_CTX`` every frame) when ``contexts`` allows."""
    from sim.cases.core import cmd_beat, synthetic_program

    lanes = cfg.mac_lanes

    async def bench(clk: _Budget) -> None:
        while True:
            prog = synthetic_program(
                cfg,
                frames=8,
                tokens_per_frame=4,
                contexts=_core_contexts(cfg),
                seed=int(rng.integers(0, 2**31)),
                prefill_group=2,
                prefill_from=3,
                interleave=True,
            )
            for c in prog.commands:
                await _put(clk, dut.cmd, [cmd_beat(c)], rng, 0.1)
                beats = c.vin_words(lanes)
                if beats:
                    await _put(clk, dut.vin, beats, rng, 0.1)
                if n := c.out_beats(lanes):
                    await _get(clk, dut.out, n, rng, 0.8)
                await _get(clk, dut.status, 1, rng, 0.8)

    return bench


def _core_contexts(cfg: Any) -> int:
    """Contexts of the core's activity program: 2, or 1 if the core has only one."""
    return min(2, cfg.contexts)


def _core_ram(dut: Any, cfg: Any, seed: int) -> list[Bench]:
    from hw.core.contexts import context_stride
    from sim.kit.axi_ram import AxiRamModel

    mem = bytearray(context_stride(cfg) * _core_contexts(cfg))
    ram = AxiRamModel(
        dut.m_axi, mem, base=cfg.kv_base, bus_bytes=cfg.axi_data_bits // 8, seed=seed, stall=0.2
    )
    return ram.benches()


UnitStimulus = Callable[
    [wiring.Component, Any, np.random.Generator, int],
    tuple[str, list[BudgetBench], list[Bench]],
]


def _core_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "core-host(sim.cases.core.synthetic_program, 2 contexts visited in turn, 8 frames x 4 "
        "tokens, a query after each, frames 3.. prefilled for 2 heads, repeated; "
        "sim.kit.axi_ram.AxiRamModel, 20 % AXI stalls)",
        [_core_host(dut, cfg, rng)],
        _core_ram(dut, cfg, seed),
    )


def _rope_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "rope-vectors(random BF16 N(0,1), random positions)",
        [_rope_source(dut, cfg, rng), _sink(dut.result, rng, 0.8)],
        [],
    )


def _attn_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "tiled-attention-commands(sim.cases.datapath.attn_case: 1..frame_rows rows, 1..4 tiles)",
        [*_attn_sources(dut, cfg, rng), _sink(dut.out, rng, 0.8)],
        [],
    )


def _tile_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "tile-softmax-rows(random FP32 scores N(0,16), 10 % masked, first and later tiles)",
        [_tile_source(dut, cfg, rng), _sink(dut.result, rng, 0.8)],
        [],
    )


def _array_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "mac-array-blocks(mac_rows random BF16 N(0,1) queries x 16 random K vectors)",
        [*_array_sources(dut, cfg, rng), _sink(dut.scores, rng, 0.8)],
        [],
    )


def _writer_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    return (
        "kv-writer(random token slots and data; sim.kit.axi_ram.AxiRamModel, 20 % stalls)",
        [*_writer_sources(dut, cfg, rng), _sink(dut.done, rng, 0.8)],
        _writer_ram(dut, cfg, seed),
    )


def _port_stimulus(dut: Any, cfg: Any, rng: np.random.Generator, seed: int):
    label, benches = _builtin_stimulus(dut, cfg, rng)
    return label, benches, []


def _builtin_stimulus(
    dut: wiring.Component, cfg: Any, rng: np.random.Generator
) -> tuple[str, list[BudgetBench]]:
    streams = _stream_members(dut)
    benches: list[BudgetBench] = []
    names: list[str] = []
    driven: set[str] = set()
    if "tokens" in streams and "signature" in dut.tokens.payload.shape().members:
        benches.append(_token_source(dut, cfg, rng))
        driven.add("tokens")
        names.append("hcu-signatures(golden.synthetic, redundancy 0.8)")
        if hasattr(dut, "count_addr"):
            benches.append(_count_reader(dut, rng))
    for cmd_name in ("cmd", "wtu_cmd"):
        if cmd_name in streams and "clusters" in streams:
            benches.append(_row_source(getattr(dut, cmd_name), dut.clusters, cfg, rng))
            driven |= {cmd_name, "clusters"}
            names.append("selector-rows(golden.resv.quantize_scores)")
    for name, (flow, port) in streams.items():
        if flow == wiring.In and name not in driven:
            benches.append(_random_source(port, rng))
            names.append(f"random({name})")
        elif flow == wiring.Out:
            benches.append(_sink(port, rng, 0.8))
    label = " + ".join(names) if names else "idle (no input streams)"
    return label, benches


#: Synthesis stimuli by key (``hw.units.Unit.stimulus``): each returns (description, benches
#: that stop after the cycle budget, background benches such as RAM models). ``"ports"``
#: drives a unit from its stream ports (the module docstring, items 2 and 4).
STIMULI: dict[str, UnitStimulus] = {
    "ports": _port_stimulus,
    "core-host": _core_stimulus,
    "rope-vectors": _rope_stimulus,
    "tiled-attention-commands": _attn_stimulus,
    "tile-softmax-rows": _tile_stimulus,
    "mac-array-blocks": _array_stimulus,
    "kv-writer": _writer_stimulus,
}


def stimulus_for(
    name: str,
    dut: wiring.Component,
    cfg: Any,
    rng: np.random.Generator,
    cycles: int,
    seed: int = 0,
) -> tuple[str, list[Bench]]:
    """The stimulus of unit ``name``: (description, testbenches); see the module docstring.

    Built-in testbenches stop by themselves after ``cycles`` clock cycles.
    """
    entry = UNITS.get(name)
    key = entry.stimulus if entry is not None else "ports"
    if key not in STIMULI:
        raise ValueError(
            f"stimulus of unit {name!r} must be one of {', '.join(map(repr, STIMULI))}, not {key!r}"
        )
    label, budget_benches, background = STIMULI[key](dut, cfg, rng, seed)

    def bounded(bench: BudgetBench) -> Bench:
        async def run(ctx: Any) -> None:
            with contextlib.suppress(_Done):
                await bench(_Budget(ctx, cycles))

        return run

    return label, [bounded(b) for b in budget_benches] + background


def simulate_activity(
    name: str,
    dut: wiring.Component,
    cfg: Any,
    vcd_path: Path,
    *,
    cycles: int = 2000,
    seed: int = 0,
) -> ActivityRun:
    """Simulate ``dut`` for ``cycles`` cycles with its stimulus and parse the VCD."""
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 10:
        raise ValueError(f"cycles must be an integer of at least 10, not {cycles!r}")
    rng = np.random.default_rng(seed)
    label, benches = stimulus_for(name, dut, cfg, rng, cycles, seed)
    sim = Simulator(dut)
    sim.add_clock(SIM_PERIOD_S)
    for bench in benches:
        sim.add_testbench(bench)
    vcd_path = Path(vcd_path)
    vcd_path.parent.mkdir(parents=True, exist_ok=True)
    with sim.write_vcd(str(vcd_path)):
        # Half a period past the last edge, so the final cycle is fully recorded.
        sim.run_until(SIM_PERIOD_S * (cycles + 0.5))
    vcd = read_vcd(vcd_path)
    return ActivityRun(vcd=vcd, stimulus=label, cycles=vcd.cycles, seed=seed)
