"""cocotb regression of the generated RopeUnit Verilog (``hw.gen`` top ``rope``).

Driver (``vectors``: ``head_dim / mac_lanes`` beats per vector, ``position`` on the first
beat, random junk in ``position`` on the others, which the unit must ignore) → monitor
(``result``) → golden ``golden.rope.rope_bf16`` → in-order scoreboard of whole output beats
(every element bit-exact, ``last`` on the final beat of each vector, nothing extra). Random
idle cycles on the source and back-pressure on the sink (``DRE_IDLE`` / ``DRE_STALL``);
configuration from ``DRE_CONFIG``, seed from ``SEED``; real pre-RoPE keys at their token
positions from ``TRACE`` when given (through ``workloads.trace.load``), Gaussian vectors of
several scales otherwise. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import itertools

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge

from golden.bf16 import to_bf16_bits
from golden.rope import rope_bf16
from hw.config import HWConfig
from hw.datapath import BF16, layouts
from sim.cases.dre import trace_path
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    config_from_env,
    make_rng,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)

_BF16 = data.Layout.cast(BF16)


def rope_beats(cfg: HWConfig, x: np.ndarray, pos: np.ndarray, rng=None) -> list[data.Const]:
    """Input beats of vectors ``x`` (uint16, (n, d)) at positions ``pos``; with ``rng``,
    random junk in ``position`` of every beat but the first of a vector."""
    lanes, lay = cfg.mac_lanes, layouts(cfg).rope_in
    nb = cfg.resv.head_dim // lanes
    pmax = 1 << (cfg.token_id_bits + 1)
    out = []
    for v, p in zip(x, pos, strict=True):
        for b in range(nb):
            junk = int(rng.integers(pmax)) if rng is not None else 0
            out.append(
                lay.const(
                    {
                        "x": [_BF16.from_bits(int(e)) for e in v[b * lanes : (b + 1) * lanes]],
                        "position": int(p) if b == 0 else junk,
                        "last": int(b == nb - 1),
                    }
                )
            )
    return out


def rope_expected(cfg: HWConfig, x: np.ndarray, pos: np.ndarray) -> list[int]:
    """Payload bits of every expected output beat."""
    y = rope_bf16(x, pos, base=cfg.resv.rope_base, lut_bits=cfg.rope_lut_bits)
    lanes, lay = cfg.mac_lanes, layouts(cfg).rope_out
    nb = cfg.resv.head_dim // lanes
    return [
        int(
            lay.const(
                {
                    "x": [_BF16.from_bits(int(e)) for e in v[b * lanes : (b + 1) * lanes]],
                    "last": int(b == nb - 1),
                }
            ).as_bits()
        )
        for v in y
        for b in range(nb)
    ]


def synthetic(cfg: HWConfig, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = cfg.resv.head_dim
    scale = np.exp2(rng.integers(-10, 11, (n, 1)))
    x = to_bf16_bits((rng.standard_normal((n, d)) * scale).astype(np.float32))
    pmax = (1 << (cfg.token_id_bits + 1)) - 1
    pos = rng.integers(0, pmax + 1, n)
    pos[:2] = [0, pmax]
    return x, pos


async def start(dut) -> None:
    dut.vectors__valid.value = 0
    dut.result__ready.value = 0
    await start_clock(dut)
    await reset(dut)


async def run_vectors(dut, x, pos, *, idle: float, stall: float, tag: int):
    """Send every vector back to back and check all result beats; returns the source's and
    the sink's handshake cycles."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sb = Scoreboard("rope.result", dut._log)
    for item in rope_expected(cfg, x, pos):
        sb.expect(item)
    beats = rope_beats(cfg, x, pos, make_rng(tag, 3))
    sink = StreamSink(
        dut,
        "result",
        lay.rope_out,
        rng=make_rng(tag, 2),
        stall=stall,
        callback=lambda p, _t: sb.check(int(p.as_value().value)),
    )
    src = StreamSource(dut, "vectors", lay.rope_in, rng=make_rng(tag, 1), idle=idle)
    sink.start()
    await src.send(beats)
    h = cfg.resv.head_dim // 2
    budget = (len(x) * (h + 2 + len(beats) // len(x)) + h + 4) / (1 - max(idle, stall)) ** 2
    await sink.wait_for(len(beats), timeout_cycles=int(4 * budget) + 200)
    for _ in range(2 * h + 10):  # anything more would be an extra beat
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    return src.times, [t for _, t in sink.beats]


@cocotb.test()
async def rope_random_vectors(dut):
    """Gaussian vectors over 20 binades at random positions (0 and the largest included);
    random gaps and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    x, pos = synthetic(cfg, 24, seed_from_env())
    await run_vectors(dut, x, pos, idle=idle, stall=stall, tag=1)


@cocotb.test()
async def rope_trace_keys(dut):
    """Pre-RoPE keys of the TRACE file at their token positions when given (layer 0, every
    KV head, a random sample of tokens), else Gaussian keys at consecutive positions;
    random gaps and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    path = trace_path()
    rng = np.random.default_rng(seed_from_env() + 1)
    if path is not None:
        from workloads.trace import load

        t = load(path)
        assert t.head_dim == cfg.resv.head_dim, (
            f"trace head_dim {t.head_dim} differs from the config's {cfg.resv.head_dim}"
        )
        n = min(16, t.n_tokens)
        tok = np.sort(rng.choice(t.n_tokens, n, replace=False))
        head = rng.integers(t.kv_heads, size=n)
        x = to_bf16_bits(t.keys[0, head, tok])
        pos = tok.astype(np.int64)
        dut._log.info("keys from trace %s (d = %d)", path, t.head_dim)
    else:
        x = to_bf16_bits(rng.standard_normal((16, cfg.resv.head_dim)).astype(np.float32))
        pos = np.arange(100, 116)
    idle, stall = timing_from_env()
    await run_vectors(dut, x, pos, idle=idle, stall=stall, tag=2)


@cocotb.test()
async def rope_exact_timing(dut):
    """No stalls: the first result beat ``h/P + 5`` cycles after the last input beat
    (``P = rope_pairs``), result beats of a vector on consecutive cycles, one vector every
    ``max(h/P + 3, B)`` cycles."""
    cfg = config_from_env()
    await start(dut)
    n = 6
    x, pos = synthetic(cfg, n, seed_from_env() + 2)
    in_t, out_t = await run_vectors(dut, x, pos, idle=0.0, stall=0.0, tag=3)
    steps = cfg.resv.head_dim // 2 // cfg.rope_pairs
    nb = cfg.resv.head_dim // cfg.mac_lanes
    first = out_t[::nb]
    assert out_t == [f + b for f in first for b in range(nb)], out_t[: 2 * nb]
    assert first[0] == in_t[nb - 1] + steps + 5, (first[0], in_t[nb - 1])
    assert [b - a for a, b in itertools.pairwise(first)] == [max(steps + 3, nb)] * (n - 1)


@cocotb.test()
async def rope_reset_mid_vector(dut):
    """A reset after part of a vector drops it: the next vectors start clean."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    x, pos = synthetic(cfg, 2, seed_from_env() + 3)
    beats = rope_beats(cfg, x, pos)
    src = StreamSource(dut, "vectors", lay.rope_in)
    await src.send(beats[: len(beats) // 2 + 1])
    await reset(dut, cycles=1)
    x, pos = synthetic(cfg, 5, seed_from_env() + 4)
    await run_vectors(dut, x, pos, idle=0.2, stall=0.2, tag=4)
