"""FP32Mul on the Amaranth simulator, bit-exact against golden.fparith.fp32_mul: random
patterns of every exponent range, corner values (zeros, subnormals, infinities, NaN, the
flush and overflow boundaries, rounding ties) crossed with each other."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.fparith import f32_to_bits, fp32_mul
from hw.datapath import FP32Mul

CORNERS = np.array(
    [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x807F_FFFF, 0x0080_0000, 0x8080_0000,
     0x3F80_0000, 0xBF80_0000, 0x3F80_0001, 0x3FFF_FFFF, 0x7F7F_FFFF, 0xFF7F_FFFF,
     0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFFC0_0001, 0x1F80_0000,
     0x2000_0000, 0x1FFF_FFFF, 0x5F80_0000, 0x5F7F_FFFF, 0x3F00_0000, 0x3FC0_0000,
     0x3F80_0003, 0x3FAA_AAAB, 0x4B80_0001],
    np.uint32,
)  # fmt: skip


def comb_eval(dut, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Drive the combinational ``dut`` with each row of ``inputs``; read ``output``."""
    n = len(next(iter(inputs.values())))
    out = np.zeros(n, np.int64)

    async def bench(ctx):
        port = getattr(dut, output)
        for i in range(n):
            for name, vals in inputs.items():
                ctx.set(getattr(dut, name).as_value(), int(vals[i]))
            out[i] = ctx.get(port.as_value() if hasattr(port, "as_value") else port)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out


def random_patterns(rng, n):
    """FP32 patterns with exponents spread over the whole range and near the middle."""
    u = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    mid = f32_to_bits(
        (rng.standard_normal(n) * np.exp2(rng.integers(-70, 70, n))).astype(np.float32)
    )
    return np.where(rng.random(n) < 0.5, u, mid).astype(np.uint32)


def check(a, b):
    got = comb_eval(FP32Mul(), {"a": a, "b": b}, "p").astype(np.uint32)
    want = fp32_mul(a, b)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]


def test_corners_crossed():
    a, b = np.meshgrid(CORNERS, CORNERS)
    check(a.ravel(), b.ravel())


def test_random_bit_exact():
    rng = np.random.default_rng(1)
    check(random_patterns(rng, 3000), random_patterns(rng, 3000))


def test_flush_and_overflow_boundaries():
    """Products straddling 2**-126 and 2**128, with round-up carries across them."""
    rng = np.random.default_rng(2)
    n = 1500
    ea = rng.integers(1, 254, n)
    tiny = rng.random(n) < 0.5
    eb = np.where(tiny, 127 - ea + rng.integers(-2, 3, n), 381 - ea + rng.integers(-2, 3, n))
    eb = np.clip(eb, 1, 254)
    ma = np.where(rng.random(n) < 0.3, 0x7F_FFFF, rng.integers(0, 1 << 23, n))
    mb = np.where(
        rng.random(n) < 0.3, 0x7F_FFFF - rng.integers(0, 4, n), rng.integers(0, 1 << 23, n)
    )
    a = ((ea << 23) | ma | (rng.integers(0, 2, n) << 31)).astype(np.uint32)
    b = ((eb << 23) | mb).astype(np.uint32)
    check(a, b)


def test_elaborates_without_warnings():
    dut = FP32Mul()
    assert dut.latency == 0
    Fragment.get(dut, None)
