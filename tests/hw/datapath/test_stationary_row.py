"""StationaryRow on the Amaranth simulator against a NumPy model of its registers: random row
and column strobes, clears (a clear and a column write in one cycle: the column wins) and
reads, with and without the transposed ports, with one bank or two (a write bank and a read
bank chosen at random every cycle)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.datapath.stationary_row import StationaryRow


@pytest.mark.parametrize(
    ("chunks", "cols", "columns", "banks"),
    [(4, 4, True, 1), (1, 8, True, 1), (3, 2, False, 1), (4, 4, True, 2), (3, 2, False, 2)],
)
def test_matches_register_model(chunks, cols, columns, banks):
    """With two banks the strobes write bank ``wbank`` and ``a`` reads bank ``rbank``,
    both random every cycle."""
    dut = StationaryRow(chunks, cols, columns=columns, banks=banks)
    rng = np.random.default_rng([chunks, cols, columns, banks])
    models = np.zeros((banks, chunks, cols), dtype=np.int64)
    checked = 0

    async def bench(ctx):
        nonlocal checked
        for step in range(300):
            x = rng.integers(0, 1 << 16, cols)
            row_w = int(rng.integers(0, 1 << chunks)) if rng.random() < 0.3 else 0
            wbank, rbank = (int(b) for b in rng.integers(0, banks, 2))
            if step < banks:
                row_w, wbank = (1 << chunks) - 1, step  # no reset: write every register
            if banks == 2:
                ctx.set(dut.wbank, wbank)
                ctx.set(dut.rbank, rbank)
            model = models[wbank]
            ctx.set(dut.x.as_value(), sum(int(v) << 16 * e for e, v in enumerate(x)))
            ctx.set(dut.row_w, row_w)
            clear, col_w, col_x = 0, 0, int(rng.integers(0, 1 << 16))
            if columns:
                if not row_w:  # the array never mixes a row beat with a transposed one
                    clear = int(rng.random() < 0.1)
                    col_w = int(rng.integers(0, 1 << (chunks * cols))) if rng.random() < 0.5 else 0
                ctx.set(dut.clear, clear)
                ctx.set(dut.col_w, col_w)
                ctx.set(dut.col_x.as_value(), col_x)
            read = int(rng.integers(0, chunks))
            ctx.set(dut.read, read)
            if step >= banks:
                a = ctx.get(dut.a.as_value())
                assert [a >> 16 * e & 0xFFFF for e in range(cols)] == models[rbank][read].tolist()
                checked += 1
            await ctx.tick()
            for c in range(chunks):
                if row_w >> c & 1:
                    model[c] = x
            if clear:
                model[:] = 0
            for j in range(chunks * cols):
                if col_w >> j & 1:
                    model[j // cols, j % cols] = col_x

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert checked == 300 - banks


def test_rejects_three_banks():
    with pytest.raises(ValueError, match=r"^banks must be 1 or 2, not 3$"):
        StationaryRow(2, 2, columns=False, banks=3)
