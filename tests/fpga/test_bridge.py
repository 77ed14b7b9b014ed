"""HostBridge + DRE on Amaranth's simulator, driven at the byte-stream level by the very
host client that talks to a board (``fpga.host.HostClient``), checked against golden; the
``cycles`` counter checked against the DRE's own handshakes; refused requests."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from fpga.bridge import HostBridge
from fpga.config import FPGAConfig
from fpga.host import BoardError, HostClient, SerialPort, check_against_golden
from fpga.host import main as host_main
from fpga.protocol import ErrorCode, Op
from hw.config import preset
from hw.dre import DynamicRetrievalEngine
from sim.kit.streams import TIMINGS, Harness, run, stream_get, stream_put

#: Buffers as deep as the tiny table: HCU streams go in several runs.
FCFG = FPGAConfig(hw=preset("tiny"), clock_hz=8e6, baud=1_000_000, buffer_depth=16)


class BridgeDRE(Elaboratable):
    def __init__(self, fcfg: FPGAConfig):
        self.bridge, self.dre = HostBridge(fcfg), DynamicRetrievalEngine(fcfg.hw)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge, m.submodules.dre = self.bridge, self.dre
        wiring.connect(m, self.bridge.dre, self.dre)
        return m


class StreamPort:
    """``fpga.host.Port`` on the bridge's byte streams, with random gaps and back-pressure."""

    def __init__(self, ctx, dut: BridgeDRE, h: Harness, idle: float, stall: float, seed: int):
        self.ctx, self.dut, self.h = ctx, dut, h
        self.idle, self.stall = idle, stall
        self.rng = np.random.default_rng(seed)

    async def write(self, data: bytes) -> None:
        await stream_put(
            self.ctx,
            self.dut.bridge.rx,
            list(data),
            cycle=self.h.cycle,
            rng=self.rng,
            idle=self.idle,
        )

    async def read(self, n: int) -> bytes:
        beats = await stream_get(
            self.ctx,
            self.dut.bridge.tx,
            count=n,
            cycle=self.h.cycle,
            rng=self.rng,
            stall=self.stall,
        )
        return bytes(int(b) for b, _ in beats)


def simulate(test, tmp_path, *, timing="random", monitor=None):
    dut = BridgeDRE(FCFG)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]

    async def bench(ctx):
        await test(HostClient(StreamPort(ctx, dut, h, idle, stall, seed=7), FCFG), ctx, dut)

    run(h, [bench], background=[monitor(dut, h)] if monitor else [], vcd=tmp_path / "bridge.vcd")


@pytest.mark.parametrize("timing", ["none", "random"])
def test_bridge_matches_golden(timing, tmp_path):
    reports = []

    async def test(client, ctx, dut):
        reports.append(
            await check_against_golden(client, tokens=40, rows=4, seed=3, log=lambda *_: None)
        )

    simulate(test, tmp_path, timing=timing)
    (rep,) = reports
    assert rep.mismatches == []
    assert rep.tokens == 40 and rep.rows == 4 and rep.counts_checked > 0
    assert len(rep.hcu_cycles) == 3  # 16 + 16 + 8 tokens


def test_cycles_counter_is_the_dre_run(tmp_path):
    """``cycles`` of a run = first record offered .. last output handshake, both included,
    seen on the DRE's own ports."""
    seen: dict[str, list[int]] = {"offer": [], "done": []}

    def monitor(dut, h):
        async def bench(ctx):
            d = dut.bridge.dre
            async for _, _, tv, cv, av, ar, sv, sr, cyc in ctx.tick().sample(
                d.tokens.valid,
                d.clusters.valid,
                d.assign.valid,
                d.assign.ready,
                d.summary.valid,
                d.summary.ready,
                h.cycle,
            ):
                if (tv or cv) and not seen["offer"]:
                    seen["offer"].append(cyc)
                if (av and ar) or (sv and sr):
                    seen["done"].append(cyc)

        return bench

    results = {}

    async def test(client, ctx, dut):
        sigs = [0x0001, 0x0003, 0xF000, 0x0001, 0xFFFF]
        await client.load(
            [
                client.lay.token.const(
                    {"token_id": i, "signature": s, "clear": int(i == 0)}
                ).as_bits()
                for i, s in enumerate(sigs)
            ]
        )
        results["hcu"] = await client.run_hcu(len(sigs))

    simulate(test, tmp_path, timing="none", monitor=monitor)
    first, last = seen["offer"][0], seen["done"][-1]
    assert results["hcu"] == last - first + 1
    assert len(seen["done"]) == 5


def test_refused_requests_then_recovery(tmp_path):
    async def test(client, ctx, dut):
        codes = []
        for op, args in (
            (0x00, b""),
            (Op.READ.value, b"\x00\x00"),
            (Op.RUN_HCU.value, b"\x11\x00"),
            (Op.COUNT.value, b"\x10\x00"),
        ):
            try:
                await client.request(op, args)
            except BoardError as exc:
                codes.append(exc.code)
        assert codes == [ErrorCode.OPCODE, ErrorCode.LENGTH, ErrorCode.LENGTH, ErrorCode.CLUSTER]
        assert ctx.get(dut.bridge.error) == 1
        info = await client.info()  # still in sync after every refusal
        assert info["depth"] == FCFG.depth

    simulate(test, tmp_path, timing="random")


def test_host_client_checks_arguments():
    client = HostClient(port=None, fcfg=FCFG)
    with pytest.raises(ValueError, match=r"^n must be in 1\.\.16, not 17$"):
        asyncio.run(client.run_hcu(17))


def test_serial_port_loopback_and_timeout():
    port = SerialPort("loop://", 115200, timeout=0.05)
    asyncio.run(port.write(b"VREX"))
    assert asyncio.run(port.read(4)) == b"VREX"
    with pytest.raises(TimeoutError, match=r"^loop://: 0 of 2 bytes before the time-out$"):
        asyncio.run(port.read(2))


def test_host_cli_reports_a_port_that_does_not_speak_the_protocol(capsys):
    # loop:// echoes the request: its first reply byte is the opcode, not 'K'.
    assert host_main(["--port", "loop://", "--board", "ulx3s", "--config", "tiny"]) == 2
    assert "reply starts with 0x49, not 'K'" in capsys.readouterr().err
    assert host_main(["--port", "loop://", "--board", "nexys", "--config", "tiny"]) == 2
    assert "board must be one of 'ulx3s', 'icebreaker', not 'nexys'" in capsys.readouterr().err
