"""FP32Add and BF16Mul on the Amaranth simulator, bit-exact against golden.fparith on
corner values (signed zeros, subnormals, cancellation, exponent carries, overflow, ties,
infinities and NaN) and on random operands biased towards close exponents."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from golden.fparith import bf16_mul, fp32_add
from hw.datapath import BF16Mul, FP32Add

INF, NINF, QNAN = 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000

ADD_CORNERS = [
    (0x0000_0000, 0x8000_0000),  # +0 + -0
    (0x8000_0000, 0x8000_0000),  # -0 + -0
    (0x3F80_0000, 0xBF80_0000),  # exact cancellation
    (0x0080_0001, 0x8080_0000),  # subnormal difference flushed
    (0x8080_0001, 0x0080_0000),
    (0x0000_0001, 0x3F80_0000),  # subnormal operand
    (0x807F_FFFF, 0x0000_0000),  # subnormal + zero: a clean zero
    (0x7F7F_FFFF, 0x7F7F_FFFF),  # overflow
    (0x7F7F_FFFF, 0x7380_0000),  # rounding up into overflow (tie, odd)
    (0x3F80_0000, 0x3380_0000),  # tie, stays even
    (0x3F80_0001, 0x3380_0000),  # tie, rounds up
    (0x3FFF_FFFF, 0x3400_0000),  # carry through the whole significand
    (0x3F80_0000, 0xB380_0000),  # 1 - 2**-24
    (0x3F80_0000, 0xB3C0_0000),  # 1 - 1.5 * 2**-24: borrow and round
    (0x4B80_0000, 0xBF80_0001),  # big difference, sticky borrow
    (0x3F80_0000, 0x0080_0000),  # shift far beyond the significand
    (INF, NINF),
    (INF, 0x3F80_0000),
    (0xBF80_0000, NINF),
    (INF, INF),
    (QNAN | 0x8000_0000, 0x3F80_0000),
    (0x7F80_0001, INF),
]


def random_fp32_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    # Half of the pairs with exponents within 0..3 of each other (cancellation, carries),
    # some near the top and bottom of the range.
    close = rng.random(n) < 0.5
    e = rng.integers(1, 255, n).astype(np.uint32)
    de = rng.integers(-3, 4, n)
    eb = np.clip(e.astype(np.int64) + de, 0, 255).astype(np.uint32)
    a = np.where(close, (a & np.uint32(0x807F_FFFF)) | (e << np.uint32(23)), a)
    b = np.where(close, (b & np.uint32(0x807F_FFFF)) | (eb << np.uint32(23)), b)
    return a.astype(np.uint32), b.astype(np.uint32)


def run_comb(dut, inputs: list[tuple[int, int]], ports) -> list[int]:
    out: list[int] = []
    pa, pb, po = ports

    async def bench(ctx):
        for x, y in inputs:
            ctx.set(pa.as_value(), x)
            ctx.set(pb.as_value(), y)
            out.append(ctx.get(po.as_value()))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out


def test_fp32_add_bit_exact():
    rng = np.random.default_rng(7)
    ra, rb = random_fp32_pairs(rng, 6000)
    pairs = (
        ADD_CORNERS
        + [(b, a) for a, b in ADD_CORNERS]
        + list(zip(ra.tolist(), rb.tolist(), strict=True))
    )
    dut = FP32Add()
    got = run_comb(dut, pairs, (dut.a, dut.b, dut.s))
    a = np.array([p[0] for p in pairs], np.uint32)
    b = np.array([p[1] for p in pairs], np.uint32)
    want = fp32_add(a, b)
    bad = np.flatnonzero(np.array(got, np.uint32) != want)
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    assert dut.latency == 0


def test_bf16_mul_bit_exact():
    rng = np.random.default_rng(8)
    finite = np.array([x for x in range(1 << 16) if (x >> 7) & 0xFF != 0xFF], np.uint16)
    a = rng.choice(finite, 6000)
    b = rng.choice(finite, 6000)
    corners = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x3F80, 0x3FFF, 0x7F7F, 0xFF7F, 0x2000]
    ca, cb = np.meshgrid(np.array(corners, np.uint16), np.array(corners, np.uint16))
    a = np.concatenate([ca.ravel(), a]).astype(np.uint16)
    b = np.concatenate([cb.ravel(), b]).astype(np.uint16)
    dut = BF16Mul()
    got = run_comb(dut, list(zip(a.tolist(), b.tolist(), strict=True)), (dut.a, dut.b, dut.p))
    want = bf16_mul(a, b)
    bad = np.flatnonzero(np.array(got, np.uint32) != want)
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    assert dut.latency == 0
