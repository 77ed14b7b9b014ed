"""FP32Compare, FP32ToFixed, IntToFP32 and Exp2 on the Amaranth simulator, bit-exact
against golden.fparith (fp32_ge, fp32_to_fixed, int_to_fp32, exp2q): corner values
crossed, random patterns, exhaustive where the input space is small."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.fparith import QNAN32, exp2q, f32_to_bits, fp32_ge, fp32_to_fixed, int_to_fp32
from hw.datapath import Exp2, FP32Compare, FP32ToFixed, IntToFP32

CORNERS = np.array(
    [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x807F_FFFF, 0x0080_0000, 0x8080_0000,
     0x3F80_0000, 0xBF80_0000, 0x3F80_0001, 0xBF80_0001, 0x7F7F_FFFF, 0xFF7F_FFFF,
     0x7F80_0000, 0xFF80_0000, 0x3F00_0000, 0xBF00_0000, 0x3FC0_0000, 0xC020_0000,
     0x4B00_0000, 0xCB00_0001, 0x3EFF_FFFF, 0xBF40_0000, 0x42FE_0000, 0xC2FC_0000,
     0xC2FE_0000, 0xC2FD_FFFF, 0x4300_0000, 0xC380_0000],
    np.uint32,
)  # fmt: skip


def comb_eval(dut, inputs: dict[str, np.ndarray], output: str, *, signed=False) -> np.ndarray:
    """Drive the combinational ``dut`` with each row of ``inputs``; read ``output``."""
    n = len(next(iter(inputs.values())))
    out = np.zeros(n, np.int64)

    def raw(port):
        return port.as_value() if hasattr(port, "as_value") else port

    async def bench(ctx):
        port = raw(getattr(dut, output))
        for i in range(n):
            for name, vals in inputs.items():
                ctx.set(raw(getattr(dut, name)), int(vals[i]))
            out[i] = ctx.get(port)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out


def random_patterns(rng, n, *, finite=True):
    u = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    mid = f32_to_bits(
        (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(np.float32)
    )
    out = np.where(rng.random(n) < 0.4, u, mid).astype(np.uint32)
    if finite:  # NaN is outside the contract
        out = np.where((out & 0x7F80_0000) == 0x7F80_0000, out & 0xFF80_0000, out)
    return out.astype(np.uint32)


def no_nan(x):
    return x[(x & 0x7FFF_FFFF) <= 0x7F80_0000]


# FP32Compare ---------------------------------------------------------------------------


def test_compare_corners_and_random():
    rng = np.random.default_rng(1)
    c = no_nan(CORNERS)
    a, b = (g.ravel() for g in np.meshgrid(c, c))
    r = random_patterns(rng, 2000)
    a = np.concatenate([a, r, r]).astype(np.uint32)
    r1 = r ^ np.uint32(1)  # neighbours (equal exponents and signs)
    r1 = np.where((r1 & 0x7F80_0000) == 0x7F80_0000, r, r1)  # not a NaN from an inf
    b = np.concatenate([b, random_patterns(rng, 2000), r1]).astype(np.uint32)
    got = comb_eval(FP32Compare(), {"a": a, "b": b}, "ge")
    assert np.array_equal(got.astype(bool), fp32_ge(a, b))


# FP32ToFixed ---------------------------------------------------------------------------


@pytest.mark.parametrize(("frac_bits", "width"), [(8, 17), (10, 19), (0, 8), (4, 32)])
def test_to_fixed_bit_exact(frac_bits, width):
    rng = np.random.default_rng(frac_bits * 100 + width)
    # Halves and quarters of the fixed-point grid: ties in both directions.
    grid = rng.integers(-(1 << (width + 1)), 1 << (width + 1), 600) / 2.0 ** (frac_bits + 2)
    a = np.concatenate(
        [no_nan(CORNERS), random_patterns(rng, 1500), f32_to_bits(grid.astype(np.float32))]
    ).astype(np.uint32)
    got = comb_eval(FP32ToFixed(frac_bits=frac_bits, width=width), {"a": a}, "q")
    got = np.where(got >= 1 << (width - 1), got - (1 << width), got)  # two's complement
    want = fp32_to_fixed(a, frac_bits, width)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), int(got[i]), int(want[i])) for i in bad[:5]]


# IntToFP32 -----------------------------------------------------------------------------


def test_int_to_fp32_exhaustive_small_and_random_wide():
    n = np.arange(1 << 10)
    got = comb_eval(IntToFP32(width=10), {"n": n}, "f").astype(np.uint32)
    assert np.array_equal(got, int_to_fp32(n))
    rng = np.random.default_rng(3)
    n = np.concatenate([[0, 1, (1 << 24) - 1, 1 << 23], rng.integers(0, 1 << 24, 1000)])
    got = comb_eval(IntToFP32(width=24), {"n": n}, "f").astype(np.uint32)
    assert np.array_equal(got, int_to_fp32(n))


# Exp2 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("frac_bits", [8, 10])
def test_exp2_bit_exact(frac_bits):
    rng = np.random.default_rng(frac_bits)
    # Every table entry at several exponents, plus the ends of the exponent range.
    j = np.arange(1 << frac_bits)
    n = rng.integers(-130, 3, j.size)
    x = f32_to_bits(((n * (1 << frac_bits) + j) / 2.0**frac_bits).astype(np.float32))
    edges = f32_to_bits(np.array([-126, -126.01, -127, -126.5, 127, 127.9, 128, 300, -300]))
    a = np.concatenate([x, no_nan(CORNERS), random_patterns(rng, 800), edges]).astype(np.uint32)
    got = comb_eval(Exp2(frac_bits=frac_bits), {"x": a}, "y").astype(np.uint32)
    want = exp2q(a, frac_bits)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    assert got[-9:].tolist() == [0x0080_0000, 0, 0, 0, 0x7F00_0000, want[-4], 0x7F80_0000,
                                 0x7F80_0000, 0]  # fmt: skip


# Construction --------------------------------------------------------------------------


def test_elaborate_without_warnings():
    for dut in (FP32Compare(), FP32ToFixed(frac_bits=8, width=17), IntToFP32(width=24)):
        assert dut.latency == 0
        Fragment.get(dut, None)
    e = Exp2(frac_bits=8)
    assert (e.latency, e.frac_bits) == (0, 8)
    Fragment.get(e, None)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"^width must be an integer in 2\.\.53, not 1$"):
        FP32ToFixed(frac_bits=8, width=1)
    with pytest.raises(TypeError, match=r"^frac_bits must be an integer, not 1\.5$"):
        FP32ToFixed(frac_bits=1.5, width=8)
    with pytest.raises(ValueError, match=r"^width must be an integer in 1\.\.24, not 25$"):
        IntToFP32(width=25)
    with pytest.raises(ValueError, match=r"^frac_bits must be an integer in 1\.\.16, not 0$"):
        Exp2(frac_bits=0)
    assert int(QNAN32) == 0x7FC0_0000
