"""cocotb transaction layer for ``amaranth.lib.stream`` ports of generated Verilog.

Amaranth names a stream ``s`` of the top as ``s__valid``, ``s__ready`` and ``s__payload``
(nested interface members are joined with ``__``); payloads are packed and unpacked through
the same ``amaranth.lib.data`` layouts the hardware uses (``layout.const(...).as_bits()`` /
``layout.from_bits(...)``), never by hand-written bit offsets.

Timing discipline: everything is driven right after a falling edge and sampled in the
``ReadOnly`` phase of that half cycle, so a beat counts as transferred at the following
rising edge when valid and ready were both high. ``cycle()`` numbers rising edges.

``StreamSource`` (driver, random idle cycles), ``StreamSink`` (monitor, random back-pressure)
and ``Scoreboard`` (in-order checker that counts mismatches, missing and extra items).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiResp

from golden.config import ReSVConfig
from hw.config import HWConfig, preset

__all__ = [
    "CONFIG_ENV",
    "PERIOD_NS",
    "Scoreboard",
    "SlverrInjector",
    "StreamSink",
    "StreamSource",
    "burst_pauses",
    "config_from_env",
    "config_from_json",
    "config_to_json",
    "cycle",
    "parse_seed",
    "random_pauses",
    "reset",
    "seed_from_env",
    "start_clock",
    "timing_from_env",
]

PERIOD_NS = 10


def cycle() -> int:
    """Index of the current clock cycle (rising edges since time 0)."""
    return int(get_sim_time(unit="ns")) // PERIOD_NS


#: Environment variable carrying the whole ``HWConfig`` of a run (``config_to_json``).
CONFIG_ENV = "DRE_HWCONFIG"


def config_to_json(cfg: HWConfig) -> str:
    """Every field of ``cfg`` (its ``ReSVConfig`` as a nested object) as one JSON object:
    what ``sim.kit.runner.run_unit`` passes to the testbench in ``DRE_HWCONFIG``."""
    if not isinstance(cfg, HWConfig):
        raise TypeError(f"cfg must be an HWConfig, not {cfg!r}")
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def config_from_json(text: str) -> HWConfig:
    """The ``HWConfig`` of ``config_to_json``, validated as any other; ``ValueError`` naming
    ``DRE_HWCONFIG`` when the text is not such an object (unknown or missing fields)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("resv"), dict):
            raise TypeError("not an object with a resv object")
        resv = ReSVConfig(**data.pop("resv"))
        return HWConfig(resv=resv, **data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(
            f"{CONFIG_ENV} must be the JSON of an HWConfig "
            "(sim.kit.cocotb_streams.config_to_json), "
            f"not {text[:200]!r} ({exc})"
        ) from None


def config_from_env() -> HWConfig:
    """The ``HWConfig`` of this run: every field from ``DRE_HWCONFIG`` (``config_from_json``;
    ``sim.kit.runner.run_unit`` always sets it, so any ``--set``/``overrides`` field reaches the
    testbench), else the preset named by ``DRE_CONFIG`` (default ``tiny``) for a testbench
    started by hand."""
    text = os.environ.get(CONFIG_ENV, "").strip()
    if text:
        return config_from_json(text)
    return preset(os.environ.get("DRE_CONFIG", "tiny"))


def seed_from_env() -> int:
    """``SEED`` (``sim.kit.runner.run_unit`` always sets it and logs it; 1 when unset)."""
    return parse_seed(os.environ.get("SEED", "1"))


def parse_seed(text: str) -> int:
    """A ``SEED`` value: a non-negative integer, else ``ValueError`` naming ``SEED``."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise ValueError(f"SEED must be a non-negative integer, not {text!r}")
    return seed


def timing_from_env() -> tuple[float, float]:
    """``(idle, stall)`` probabilities of the random-timing tests (``DRE_IDLE``/``DRE_STALL``)."""
    return float(os.environ.get("DRE_IDLE", "0.3")), float(os.environ.get("DRE_STALL", "0.3"))


async def start_clock(dut, cfg: HWConfig | None = None) -> None:
    """Start the clock and the protocol checkers of every output stream and AXI master of
    the DUT (``sim.kit.checkers.attach_checkers``; ``cfg`` gives ``max_burst``, default
    ``config_from_env()``)."""
    from sim.kit.checkers import attach_checkers

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    attach_checkers(dut, cfg)


#: The DRE units' stream handshake inputs: what ``reset`` drives low unless told otherwise.
DRE_IDLE = (
    "tokens__valid",
    "cmd__valid",
    "clusters__valid",
    "wtu_cmd__valid",
    "assign__ready",
    "selected__ready",
    "summary__ready",
)


async def reset(dut, cycles: int = 2, *, idle: Iterable[str] = DRE_IDLE) -> None:
    """Synchronous reset for ``cycles`` cycles, with the inputs ``idle`` that the DUT has
    (stream handshakes, strobes) driven low first."""
    await FallingEdge(dut.clk)
    for name in idle:
        if hasattr(dut, name):
            getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


class StreamSource:
    """Driver: sends payload dicts on ``<prefix>__*`` with seeded random idle cycles."""

    def __init__(
        self, dut, prefix: str, layout, *, rng=None, idle: float = 0.0, fast: bool = False
    ):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.rng, self.idle = layout, rng, idle
        self.prefix, self.fast = prefix, fast
        self.valid.value = 0
        #: cycle of each handshake, in order
        self.times: list[int] = []

    async def send(self, payloads: Iterable[dict]) -> list[int]:
        if self.idle <= 0 and self.fast:
            return await self._send_fast(payloads)
        for item in payloads:
            await FallingEdge(self.clk)
            while self.rng is not None and self.idle > 0 and self.rng.random() < self.idle:
                self.valid.value = 0
                await FallingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = self.layout.const(item).as_bits()
            while True:
                await ReadOnly()
                if int(self.ready.value):
                    self.times.append(cycle())
                    break
                await FallingEdge(self.clk)
            await RisingEdge(self.clk)
        await FallingEdge(self.clk)
        self.valid.value = 0
        return self.times

    async def _send_fast(self, payloads: Iterable[dict]) -> list[int]:
        # No idle cycles: sleep on ``ready`` edges instead of waking every cycle (benchmark
        # speed); drives right after the clock edge, samples in ReadOnly, same cycle numbers.
        await RisingEdge(self.clk)
        for item in payloads:
            self.valid.value = 1
            self.payload.value = self.layout.const(item).as_bits()
            await ReadOnly()
            while not int(self.ready.value):
                await RisingEdge(self.ready)
                await ReadOnly()
            self.times.append(cycle())
            await RisingEdge(self.clk)
        self.valid.value = 0
        return self.times


class StreamSink:
    """Monitor with back-pressure: drops ``ready`` with probability ``stall`` each cycle and
    hands every transferred beat (``layout.from_bits``) and its cycle to ``callback``."""

    def __init__(
        self,
        dut,
        prefix: str,
        layout,
        *,
        rng=None,
        stall: float = 0.0,
        callback: Callable[[Any, int], None] | None = None,
        fast: bool = False,
    ):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout, self.rng, self.stall = layout, rng, stall
        self.callback = callback
        self.prefix = prefix
        self.fast = fast and stall <= 0
        self.beats: list[tuple[Any, int]] = []
        self.ready.value = 0
        self._task = None

    def start(self) -> None:
        self._task = cocotb.start_soon(self._run_fast() if self.fast else self._run())

    def _take(self) -> None:
        raw = self.payload.value
        if not raw.is_resolvable:
            raise AssertionError(f"{self.prefix}: valid beat with X/Z payload bits: {raw}")
        beat = self.layout.from_bits(int(raw))
        self.beats.append((beat, cycle()))
        if self.callback is not None:
            self.callback(beat, cycle())

    async def _run_fast(self) -> None:
        # Always ready: sleep on ``valid`` edges while nothing is offered (benchmark speed).
        await RisingEdge(self.clk)
        self.ready.value = 1
        while True:
            await ReadOnly()
            if int(self.valid.value):
                self._take()
                await RisingEdge(self.clk)
            else:
                await RisingEdge(self.valid)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.ready.value = 0

    async def _run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            ready = not (self.rng is not None and self.stall > 0 and self.rng.random() < self.stall)
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and int(self.valid.value):
                self._take()

    async def wait_for(self, count: int, *, timeout_cycles: int) -> None:
        """Wait until ``count`` beats in total arrived; fail after ``timeout_cycles``."""

        async def waiter():
            while len(self.beats) < count:
                await RisingEdge(self.clk)

        await with_timeout(waiter(), timeout_cycles * PERIOD_NS, "ns")


class Scoreboard:
    """In-order checker: ``expect`` items from the golden model, ``check`` items from the
    monitor; counts mismatches, extra (unexpected) and missing items."""

    def __init__(self, name: str, log, *, compare: Callable[[Any, Any], bool] | None = None):
        self.name, self.log = name, log
        self.compare = compare or (lambda got, want: got == want)
        self.expected: deque = deque()
        self.matched = 0
        self.mismatches = 0
        self.extra = 0

    def expect(self, item: Any) -> None:
        self.expected.append(item)

    def check(self, got: Any) -> None:
        if not self.expected:
            self.extra += 1
            self.log.error("%s: unexpected item %r", self.name, got)
            return
        want = self.expected.popleft()
        if self.compare(got, want):
            self.matched += 1
        else:
            self.mismatches += 1
            if self.mismatches <= 10:
                self.log.error("%s: got %r, expected %r", self.name, got, want)

    def assert_done(self) -> None:
        missing = len(self.expected)
        assert (self.mismatches, self.extra, missing) == (0, 0, 0), (
            f"{self.name}: {self.matched} matched, {self.mismatches} mismatches, "
            f"{self.extra} unexpected, {missing} missing"
        )
        assert self.matched > 0, f"{self.name}: nothing was checked"


def random_pauses(rng: np.random.Generator, p: float):
    """Pause generator for cocotbext-axi channels: pause each cycle with probability ``p``."""
    while True:
        yield bool(rng.random() < p)


def burst_pauses(rng: np.random.Generator, p: float, lo: int, hi: int):
    """Pause generator of long bursty stalls: each cycle, with probability ``p``, a pause of
    ``lo..hi`` cycles (uniform) starts; no pause otherwise."""
    while True:
        if rng.random() < p:
            for _ in range(int(rng.integers(lo, hi + 1))):
                yield True
        yield False


def make_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([seed_from_env(), *keys])


class SlverrInjector:
    """SLVERR on chosen bursts of cocotbext-axi's ``AxiRam`` (or ``AxiRamRead``), the data
    still moved (the model's outputs stay exact, only the responses change): after
    ``arm_read()`` the next read burst answers SLVERR on every R beat, after ``arm_write()``
    the next write burst's B answers SLVERR. ``injected`` counts the bursts it answered so."""

    def __init__(self, ram):
        self.armed = {"read": 0, "write": 0}
        self.injected = {"read": 0, "write": 0}
        self._r_bad = False  # the R beats of the current burst answer SLVERR
        self._r_first = True  # the next R beat is the first of a burst
        r_ch = getattr(ram, "read_if", ram).r_channel
        send_r = r_ch.send

        async def r(beat):
            if self._r_first:
                self._r_bad = self._take("read")
            self._r_first = bool(int(beat.rlast))
            if self._r_bad:
                beat.rresp = AxiResp.SLVERR
            await send_r(beat)

        r_ch.send = r
        if hasattr(ram, "write_if"):
            b_ch = ram.write_if.b_channel
            send_b = b_ch.send

            async def b(resp):
                if self._take("write"):
                    resp.bresp = AxiResp.SLVERR
                await send_b(resp)

            b_ch.send = b

    def _take(self, kind: str) -> bool:
        if not self.armed[kind]:
            return False
        self.armed[kind] -= 1
        self.injected[kind] += 1
        return True

    def arm_read(self) -> None:
        self.armed["read"] += 1

    def arm_write(self) -> None:
        self.armed["write"] += 1
