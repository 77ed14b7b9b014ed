"""cocotb bench of the FPGA board system (``fpga.system.DRESystem``, top ``dre_system``) at
the UART bit level, on Icarus and Verilator.

The host side is the board's own client (``fpga.host.HostClient``) on a ``UartPort`` that
drives the ``rx`` pin bit by bit (8N1, random idle gaps between bytes, some not aligned to
the clock) and decodes the ``tx`` pin in the middle of each bit (checking start and stop
bits and that every bit is stable for its whole period). Everything the board returns is
compared with the golden model (``fpga.host.check_against_golden``). Configuration from
``DRE_CONFIG`` (``fpga.config.sim_config`` of the preset), seed from ``SEED``. Run by
tests/fpga/test_fpga_cocotb.py.
"""

from __future__ import annotations

from collections import deque

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, Timer, with_timeout

from fpga.config import sim_config
from fpga.host import BoardError, HostClient, check_against_golden
from fpga.protocol import ErrorCode, Op
from fpga.system import N_LEDS
from sim.kit.cocotb_streams import PERIOD_NS, config_from_env, reset, seed_from_env, start_clock

LED_ERROR, LED_BUSY = 2, 3
assert N_LEDS == 4


class UartPort:
    """``fpga.host.Port`` on the DUT's serial pins."""

    def __init__(self, dut, divisor: int, *, rng: np.random.Generator, gap: float):
        self.dut, self.divisor, self.rng, self.gap = dut, divisor, rng, gap
        self.bit_ns = divisor * PERIOD_NS
        self.received: deque[int] = deque()
        self.errors: list[str] = []
        dut.rx.value = 1
        self._task = cocotb.start_soon(self._monitor())

    async def write(self, data: bytes) -> None:
        for byte in data:
            if self.rng.random() < self.gap:  # idle: whole bits, then a sub-cycle offset
                await ClockCycles(self.dut.clk, int(self.rng.integers(1, 4 * self.divisor)))
                await Timer(int(self.rng.integers(1, PERIOD_NS)), "ns")
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, "ns")

    async def read(self, n: int) -> bytes:
        async def wait():
            while len(self.received) < n:
                await ClockCycles(self.dut.clk, self.divisor)

        # A reply byte takes 10 bits; the longest run of the tiny config is far shorter.
        await with_timeout(wait(), (n * 10 + 2000) * self.bit_ns, "ns")
        assert not self.errors, self.errors
        return bytes(self.received.popleft() for _ in range(n))

    async def _monitor(self) -> None:
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, "ns")
            bits = []
            for i in range(10):
                mid = int(tx.value)
                await Timer(self.bit_ns // 2 - PERIOD_NS // 2, "ns")  # just before the boundary
                if int(tx.value) != mid:
                    self.errors.append(f"tx bit {i} changed within its period")
                bits.append(mid)
                if i < 9:
                    await Timer(self.bit_ns // 2 + PERIOD_NS // 2, "ns")  # the next bit's middle
            if bits[0] != 0 or bits[9] != 1:
                self.errors.append(f"bad start/stop bits {bits}")
            self.received.append(sum(b << i for i, b in enumerate(bits[1:9])))


async def setup(dut, *, gap: float, tag: int) -> HostClient:
    fcfg = sim_config(config_from_env())
    await start_clock(dut)
    dut.rx.value = 1
    await reset(dut, idle=())
    port = UartPort(
        dut, fcfg.uart_divisor, rng=np.random.default_rng([seed_from_env(), tag]), gap=gap
    )
    return HostClient(port, fcfg)


@cocotb.test()
async def uart_host_matches_golden(dut):
    """HCU stream (several runs, a context clear) and WTU rows through the UART, every
    output, count and summary equal to golden; no error LED."""
    client = await setup(dut, gap=0.3, tag=1)
    rep = await check_against_golden(
        client, tokens=40, rows=5, seed=seed_from_env(), log=dut._log.info
    )
    assert rep.mismatches == [], rep.mismatches[:10]
    assert rep.tokens == 40 and rep.rows == 5 and rep.counts_checked > 0
    assert len(rep.hcu_cycles) == -(-40 // client.fcfg.depth)
    st = await client.stats()
    assert int(st.runs) == len(rep.hcu_cycles) + rep.rows
    assert int(st.cycles) == rep.wtu_cycles[-1]
    assert int(dut.leds.value) >> LED_ERROR & 1 == 0
    assert int(dut.leds.value) >> LED_BUSY & 1 == 0


@cocotb.test()
async def uart_refusals_light_the_error_led(dut):
    """Unknown opcode, zero and too long lengths, a cluster id out of range: ``E`` replies
    with the right code, the error LED lit, the protocol still in step afterwards."""
    client = await setup(dut, gap=0.5, tag=2)
    depth = client.fcfg.depth
    cases = [
        (0x7A, b"", ErrorCode.OPCODE),
        (Op.LOAD.value, b"\x00\x00", ErrorCode.LENGTH),
        (Op.RUN_WTU.value, (depth + 1).to_bytes(2, "little") + b"\x00\x10", ErrorCode.LENGTH),
        (Op.COUNT.value, client.fcfg.hw.max_clusters.to_bytes(2, "little"), ErrorCode.CLUSTER),
    ]
    for op, args, code in cases:
        try:
            await client.request(op, args)
        except BoardError as exc:
            assert exc.code == code, (chr(op), exc.code, code)
        else:
            raise AssertionError(f"request {chr(op)!r} was not refused")
    await FallingEdge(dut.clk)
    assert int(dut.leds.value) >> LED_ERROR & 1 == 1
    info = await client.info()
    assert info["depth"] == depth
    rep = await check_against_golden(client, tokens=6, rows=1, seed=seed_from_env() + 1)
    assert rep.mismatches == []


@cocotb.test()
async def uart_reset_mid_request(dut):
    """A reset in the middle of a LOAD's records drops the request; the next session
    works from scratch."""
    client = await setup(dut, gap=0.0, tag=3)
    await client.port.write(bytes([Op.LOAD.value, 4, 0, 1, 2, 3]))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2 * client.fcfg.uart_divisor)
    rep = await check_against_golden(client, tokens=20, rows=2, seed=seed_from_env() + 2)
    assert rep.mismatches == []
    assert int(dut.leds.value) >> LED_ERROR & 1 == 0
