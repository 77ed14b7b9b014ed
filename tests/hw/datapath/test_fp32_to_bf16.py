"""FP32ToBF16 on the Amaranth simulator, bit-exact against golden.fparith.fp32_to_bf16 on
corner patterns (signed zeros, subnormals, ties both ways, carries into the exponent,
overflow to inf, infinities, NaNs) and on random patterns of every exponent."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.fparith import fp32_to_bf16
from hw.datapath import FP32ToBF16

CORNERS = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,  # subnormals flush to signed zero
    0x807F_FFFF,
    0x0080_0000,  # smallest normal
    0x0080_8000,  # tie, even: stays
    0x0081_8000,  # tie, odd: rounds up
    0x3F80_8000,
    0x3F81_8000,
    0x3F80_8001,  # above half
    0x3F80_7FFF,  # below half
    0x3FFF_8000,  # carry into the exponent
    0x7F7F_7FFF,  # largest finite that stays finite
    0x7F7F_8000,  # rounds up to inf
    0xFF7F_FFFF,  # rounds to -inf
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0xFFC0_0001,
    0x7F80_0001,  # signalling NaN whose upper half would read as inf
    0xFFFF_FFFF,
]


def run_comb(values: list[int]) -> list[int]:
    dut = FP32ToBF16()
    out: list[int] = []

    async def bench(ctx):
        for v in values:
            ctx.set(dut.a.as_value(), v)
            out.append(ctx.get(dut.b.as_value()))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out


def test_corners_bit_exact():
    got = run_comb(CORNERS)
    want = [int(v) for v in fp32_to_bf16(np.array(CORNERS, np.uint32))]
    assert got == want
    assert got[:4] == [0x0000, 0x8000, 0x0000, 0x8000]
    assert got[5:8] == [0x0080, 0x0082, 0x3F80]
    assert got[11] == 0x4000 and got[12] == 0x7F7F and got[13] == 0x7F80 and got[14] == 0xFF80
    assert got[17:] == [0x7FC0] * 4


def test_random_patterns_bit_exact():
    rng = np.random.default_rng(7)
    n = 3000
    u = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    # A third with the low half exactly at a tie (0x8000) to exercise ties-to-even.
    tie = rng.random(n) < 0.33
    u = np.where(tie, (u & np.uint32(0xFFFF_0000)) | np.uint32(0x8000), u).astype(np.uint32)
    got = run_comb([int(v) for v in u])
    want = fp32_to_bf16(u)
    bad = [
        (hex(int(a)), hex(g), hex(int(w))) for a, g, w in zip(u, got, want, strict=True) if g != w
    ]
    assert not bad, bad[:5]


def test_elaborates_and_is_combinational():
    dut = FP32ToBF16()
    assert dut.latency == 0
    Fragment.get(dut, None)
