"""UartRx / UartTx on Amaranth's simulator: loopback of random bytes with random gaps and
back-pressure, exact bit timing of the transmitter, framing errors and overruns."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from fpga.uart_rx import UartRx
from fpga.uart_tx import UartTx
from sim.kit.streams import Harness, run, stream_get, stream_put

DIV = 5


class Loopback(Elaboratable):
    """TX → (line) → RX; ``line`` can be forced by the bench instead (``force``)."""

    def __init__(self, divisor: int):
        self.tx, self.rx = UartTx(divisor=divisor), UartRx(divisor=divisor)
        self.force = Signal(name="force")
        self.forced_line = Signal(init=1, name="forced_line")
        self.line = Signal(name="line")

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += [
            self.line.eq(self.tx.tx & ~self.force | self.forced_line & self.force),
            self.rx.rx.eq(self.line),
        ]
        return m


@pytest.mark.parametrize("timing", ["none", "random"])
def test_loopback_random_bytes(timing, tmp_path):
    dut = Loopback(DIV)
    h = Harness(dut)
    rng = np.random.default_rng(3)
    data = [0x00, 0xFF, 0x55, 0xAA, *rng.integers(0, 256, 40).tolist()]
    idle, stall = (0.0, 0.0) if timing == "none" else (0.5, 0.3)
    got: list = []

    async def source(ctx):
        await stream_put(ctx, dut.tx.data, data, cycle=h.cycle, rng=rng, idle=idle)

    async def sink(ctx):
        # Back-pressure only while the next byte is still being received: never an overrun.
        got.extend(
            await stream_get(
                ctx,
                dut.rx.data,
                cycle=h.cycle,
                count=len(data),
                rng=np.random.default_rng(4),
                stall=stall,
                timeout=50 * DIV,
            )
        )

    async def errors(ctx):
        async for _, _, fe, ov in ctx.tick().sample(dut.rx.frame_error, dut.rx.overrun):
            assert not fe and not ov

    run(h, [source, sink], background=[errors], vcd=tmp_path / "uart.vcd")
    assert [int(b) for b, _ in got] == data


def test_tx_bit_timing(tmp_path):
    """Start bit, 8 data bits LSB first, stop bit, each exactly ``divisor`` cycles; two
    back-to-back bytes leave no idle bit between them."""
    dut = UartTx(divisor=DIV)
    h = Harness(dut)
    line: list[int] = []

    async def source(ctx):
        await stream_put(ctx, dut.data, [0xA5, 0x3C], cycle=h.cycle)

    async def monitor(ctx):
        for _ in range(22 * DIV):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    run(h, [source, monitor], vcd=tmp_path / "tx.vcd")
    start = line.index(0)
    bits = [line[start + i * DIV : start + (i + 1) * DIV] for i in range(20)]
    assert all(len(set(b)) == 1 for b in bits), bits
    want = []
    for byte in (0xA5, 0x3C):
        want += [0, *((byte >> i) & 1 for i in range(8)), 1]
    assert [b[0] for b in bits] == want
    assert set(line[start + 20 * DIV :]) == {1}


async def drive_byte(ctx, dut, byte: int, *, stop: int = 1, divisor: int = DIV) -> None:
    for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(dut.forced_line, bit)
        for _ in range(divisor):
            await ctx.tick()
    ctx.set(dut.forced_line, 1)


def test_frame_error_and_overrun(tmp_path):
    dut = Loopback(DIV)
    h = Harness(dut)
    flags = {"frame": 0, "overrun": 0}

    async def bench(ctx):
        ctx.set(dut.force, 1)
        await drive_byte(ctx, dut, 0x12, stop=0)  # bad stop bit: dropped
        for _ in range(3 * DIV):
            await ctx.tick()
        await drive_byte(ctx, dut, 0x34)
        await drive_byte(ctx, dut, 0x56)  # not taken yet: overrun, dropped
        for _ in range(2 * DIV):
            await ctx.tick()
        beats = await stream_get(ctx, dut.rx.data, cycle=h.cycle, count=1)
        assert [int(b) for b, _ in beats] == [0x34]
        ctx.set(dut.rx.data.ready, 1)
        for _ in range(20 * DIV):
            assert not ctx.get(dut.rx.data.valid)
            await ctx.tick()

    async def count(ctx):
        async for _, _, fe, ov in ctx.tick().sample(dut.rx.frame_error, dut.rx.overrun):
            flags["frame"] += fe
            flags["overrun"] += ov

    run(h, [bench], background=[count], vcd=tmp_path / "rx.vcd")
    assert flags == {"frame": 1, "overrun": 1}


def test_glitch_is_not_a_start_bit(tmp_path):
    dut = Loopback(DIV)
    h = Harness(dut)

    async def bench(ctx):
        ctx.set(dut.force, 1)
        ctx.set(dut.forced_line, 0)
        await ctx.tick()
        ctx.set(dut.forced_line, 1)
        for _ in range(15 * DIV):
            assert not ctx.get(dut.rx.data.valid)
            await ctx.tick()
        await drive_byte(ctx, dut, 0x81)
        beats = await stream_get(ctx, dut.rx.data, cycle=h.cycle, count=1, timeout=3 * DIV)
        assert int(beats[0][0]) == 0x81

    run(h, [bench], vcd=tmp_path / "glitch.vcd")


@pytest.mark.parametrize("cls", [UartRx, UartTx])
def test_divisor_checked(cls):
    with pytest.raises(ValueError, match=r"^divisor must be at least 4, not 3$"):
        cls(divisor=3)
