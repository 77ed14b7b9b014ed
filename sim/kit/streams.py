"""Amaranth-simulator helpers for ``amaranth.lib.stream`` interfaces.

``stream_put`` / ``stream_get`` drive and collect one stream from an async testbench, with
seeded random idle cycles on the source and random back-pressure on the sink; both record
the cycle of every handshake (from the harness's free-running counter) so that tests can
check cycle formulas exactly. ``run`` builds the simulator, writes a VCD + GTKWave file when
``WAVES=1`` and names the waveform in any failure message.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

__all__ = [
    "TIMINGS",
    "Harness",
    "StreamTimeout",
    "assert_idle",
    "run",
    "stream_get",
    "stream_put",
    "waves_enabled",
]

#: Default number of cycles without a handshake after which a helper gives up.
TIMEOUT = 5000


class StreamTimeout(AssertionError):
    """No handshake within the time-out: the design hung or lost a beat."""


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


class Harness(Elaboratable):
    """Wraps a DUT with its own ``sync`` domain (so tests can pulse ``rst``) and a
    free-running ``cycle`` counter that the stream helpers sample at each handshake."""

    def __init__(self, dut: Elaboratable):
        self.dut = dut
        self.cycle = Signal(32, name="cycle")
        self.domain = ClockDomain("sync")

    @property
    def rst(self) -> Signal:
        return self.domain.rst

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.domain
        m.submodules.dut = self.dut
        m.d.sync += self.cycle.eq(self.cycle + 1)
        return m


def _gap(rng: np.random.Generator | None, p: float) -> bool:
    return rng is not None and p > 0 and rng.random() < p


async def stream_put(
    ctx: Any,
    stream: Any,
    payloads: Iterable[Any],
    *,
    cycle: Signal,
    rng: np.random.Generator | None = None,
    idle: float = 0.0,
    timeout: int = TIMEOUT,
) -> list[int]:
    """Send ``payloads`` in order; before each beat, idle while ``rng.random() < idle``.

    Returns the cycle of each handshake.
    """
    times = []
    for payload in payloads:
        while _gap(rng, idle):
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload, payload)
        for _ in range(timeout):
            _, _, ready, now = await ctx.tick().sample(stream.ready, cycle)
            if ready:
                break
        else:
            raise StreamTimeout(f"stream_put: no ready within {timeout} cycles (beat {len(times)})")
        times.append(now)
        ctx.set(stream.valid, 0)
    return times


async def stream_get(
    ctx: Any,
    stream: Any,
    *,
    cycle: Signal,
    count: int | None = None,
    until: Callable[[Any], bool] | None = None,
    rng: np.random.Generator | None = None,
    stall: float = 0.0,
    timeout: int = TIMEOUT,
) -> list[tuple[Any, int]]:
    """Receive beats until ``count`` are in or ``until(payload)`` is true for one.

    Before each cycle ``ready`` is dropped while ``rng.random() < stall`` (random
    back-pressure). Returns ``(payload, cycle)`` per beat.
    """
    if (count is None) == (until is None):
        raise ValueError("stream_get needs exactly one of count= and until=")
    beats: list[tuple[Any, int]] = []
    waited = 0
    while count is None or len(beats) < count:
        ready = not _gap(rng, stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload, now = await ctx.tick().sample(stream.valid, stream.payload, cycle)
        if valid and ready:
            beats.append((payload, now))
            waited = 0
            if until is not None and until(payload):
                break
        else:
            waited += 1
            if waited > timeout:
                raise StreamTimeout(
                    f"stream_get: no beat within {timeout} cycles after {len(beats)} beats"
                )
    ctx.set(stream.ready, 0)
    return beats


async def assert_idle(ctx: Any, stream: Any, cycles: int) -> None:
    """Hold ``ready`` high for ``cycles`` and fail on any beat: nothing may be duplicated."""
    ctx.set(stream.ready, 1)
    for _ in range(cycles):
        _, _, valid = await ctx.tick().sample(stream.valid)
        if valid:
            raise AssertionError("unexpected extra beat on an output stream")
    ctx.set(stream.ready, 0)


def run(
    harness: Harness,
    benches: Sequence[Callable[[Any], Awaitable[None]]],
    *,
    vcd: Path | None = None,
    traces: Sequence[Any] = (),
    background: Sequence[Callable[[Any], Awaitable[None]]] = (),
    period: float = 1e-8,
) -> None:
    """Simulate ``harness`` with testbenches; with ``WAVES=1`` write ``vcd`` (+ ``.gtkw``).

    Failures are re-raised with the waveform path (or how to get one) in the message.
    """
    sim = Simulator(harness)
    sim.add_clock(period, domain="sync")
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    write = vcd is not None and waves_enabled()
    try:
        if write:
            vcd.parent.mkdir(parents=True, exist_ok=True)
            with sim.write_vcd(str(vcd), str(vcd.with_suffix(".gtkw")), traces=list(traces)):
                sim.run()
        else:
            sim.run()
    except AssertionError as exc:
        where = f"waveform: {vcd}" if write else f"rerun with WAVES=1 for a waveform at {vcd}"
        raise AssertionError(f"{exc} ({where})") from exc


#: Named timing profiles ``(source idle probability, sink stall probability)`` crossed with
#: the data cases of every stream test.
TIMINGS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "random": (0.35, 0.35),
    "slow_sink": (0.0, 0.75),
}
