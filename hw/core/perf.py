"""PerfCounters: the core's performance counters (``PERF``) and their read port."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .host import PERF

__all__ = ["PerfCounters"]

#: The counters with an increment: every one but ``cycles``.
EVENTS = tuple(name for name in PERF if name != "cycles")


class PerfCounters(wiring.Component):
    """The ``PERF`` counters, 32 bits each (they wrap), zero after reset.

    ``cycles`` counts every cycle; every other counter adds its increment each cycle (0
    while nothing happens). ``clear`` wins over the increments of its cycle.

    Ports:

    - ``inc`` (in): one field per counter but ``cycles``, in ``PERF`` order: 1 bit, or the
      width given in ``amounts`` for a counter that adds an amount.
    - ``clear`` (in): zero every counter (``CLEAR_PERF``).
    - ``addr`` (in), ``data`` (out): counter ``addr``'s value (``PERF`` order),
      combinational.
    """

    def __init__(self, amounts: dict[str, int] | None = None):
        amounts = dict(amounts or {})
        unknown = set(amounts) - set(EVENTS)
        if unknown:
            raise ValueError(f"no such counters with an increment: {sorted(unknown)}")
        super().__init__(
            {
                "inc": In(data.StructLayout({n: amounts.get(n, 1) for n in EVENTS})),
                "clear": In(1),
                "addr": In(range(len(PERF))),
                "data": Out(32),
            }
        )

    def elaborate(self, platform):
        m = Module()
        count = {name: Signal(32, name=name) for name in PERF}
        m.d.comb += self.data.eq(Array(count.values())[self.addr])
        m.d.sync += count["cycles"].eq(count["cycles"] + 1)
        for name in EVENTS:
            m.d.sync += count[name].eq(count[name] + self.inc[name])
        with m.If(self.clear):
            m.d.sync += [c.eq(0) for c in count.values()]
        return m
