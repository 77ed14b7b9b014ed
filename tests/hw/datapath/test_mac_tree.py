"""MacTree on the Amaranth simulator, bit-exact against golden.fparith.dot: every data kind
(normal, corner values, cancellation, wide exponents, overflow/flush extremes) crossed with
the stall patterns of ``sim.kit.streams.TIMINGS``, at several lane counts; the exact latency
and the one-beat-per-cycle throughput without stalls."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.config import preset
from hw.datapath import MacTree, mac_latency
from sim.cases.datapath import mac_beats, mac_expected, synthetic_cases
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,
    "lanes1": TINY.replace(mac_lanes=1),
    "lanes8": TINY.replace(mac_lanes=8),
    "in_register": TINY.replace(mac_in_register=1),  # operands registered: latency + 1
    "paper": preset("paper"),  # 64 lanes
}


def simulate(cfg, cases, *, timing: str, seed: int, vcd):
    dut = MacTree(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    beats = [b for c in cases for b in mac_beats(cfg, c)]
    out: dict = {}

    async def src(ctx):
        out["in_t"] = await stream_put(
            ctx, dut.vectors, beats, cycle=h.cycle, rng=np.random.default_rng([seed, 1]), idle=idle
        )

    async def sink(ctx):
        got = await stream_get(
            ctx,
            dut.result,
            cycle=h.cycle,
            count=len(cases),
            rng=np.random.default_rng([seed, 2]),
            stall=stall,
        )
        out["got"] = [(int(p.value.as_value().value), t) for p, t in got]
        await assert_idle(ctx, dut.result, 3 * dut.latency + 5)

    run(h, [src, sink], vcd=vcd, traces=[dut.vectors.valid, dut.result.valid])
    return dut, beats, out


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_dot_products_bit_exact(name, timing, tmp_path):
    cfg = CONFIGS[name]
    cases = synthetic_cases(cfg, 60, seed=len(name) * 31 + len(timing))
    _, _, out = simulate(cfg, cases, timing=timing, seed=3, vcd=tmp_path / "mac.vcd")
    want = [mac_expected(cfg, c) for c in cases]
    got = [v for v, _ in out["got"]]
    bad = [(i, hex(g), hex(w)) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, bad[:5]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_latency_and_throughput(name, tmp_path):
    cfg = CONFIGS[name]
    cases = synthetic_cases(cfg, 20, seed=5)
    dut, beats, out = simulate(cfg, cases, timing="none", seed=4, vcd=tmp_path / "mac.vcd")
    assert dut.latency == mac_latency(cfg)
    in_t = out["in_t"]
    # One beat per cycle: the source never waits.
    assert in_t == list(range(in_t[0], in_t[0] + len(beats)))
    last_t = [t for b, t in zip(beats, in_t, strict=True) if b.last]
    assert [t for _, t in out["got"]] == [t + dut.latency for t in last_t]


def test_special_results():
    """Overflow to inf, inf - inf = NaN, flushed products, signed zeros, exact ties."""
    from sim.cases.datapath import DotCase

    cfg = TINY
    u = lambda *x: np.array(x, np.uint16)  # noqa: E731
    cases = [
        DotCase(u(0x7F7F), u(0x7F7F)),  # product overflow
        DotCase(u(0x7F7F, 0x7F7F), u(0x7F7F, 0xFF7F)),  # inf + -inf
        DotCase(u(0x0080), u(0x3F00)),  # product below 2**-126
        DotCase(u(0x8000, 0x8000, 0x8000, 0x8000), u(0x3F80).repeat(4)),  # -0 sums
        DotCase(u(0x3F80, 0x3380), u(0x3F80, 0x3F80)),  # 1 + 2**-24: tie to even
        DotCase(u(*([0x3F80] * 9)), u(*([0x3F80] * 8 + [0xC100]))),  # 8 - 8 across chunks
    ]
    _, _, out = simulate(cfg, cases, timing="random", seed=9, vcd=None)
    got = [v for v, _ in out["got"]]
    assert got == [0x7F80_0000, 0x7FC0_0000, 0x0000_0000, 0x8000_0000, 0x3F80_0000, 0x0]
    assert got == [mac_expected(cfg, c) for c in cases]


def test_elaborates_without_warnings():
    Fragment.get(MacTree(TINY), None)


def test_rejects_a_bad_config():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 4$"):
        MacTree(4)
