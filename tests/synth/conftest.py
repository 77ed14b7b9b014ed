"""Fixtures of the synthesis-flow tests.

``XorPopStream`` is a small real design used as the flow's fixture where the hardware units
would be too slow: an input stream of words, each XORed with the word stored at a rolling
address of a memory (then overwritten), popcount registered into an output stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from synth.tools import DEFAULT_LIBERTY


class XorPopStream(wiring.Component):
    """``out = popcount(in ^ mem[addr])``; ``mem[addr] = in``; ``addr += 1`` per beat."""

    def __init__(self, width: int = 16, depth: int = 32):
        self.width, self.depth = width, depth
        super().__init__(
            {
                "words": In(stream.Signature(width)),
                "counts": Out(stream.Signature(range(width + 1))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        rd = mem.read_port(domain="comb")
        wr = mem.write_port()
        addr = Signal(range(self.depth), name="addr")
        acc = Signal(range(self.width + 1), name="acc")
        full = Signal(name="full")
        take = self.words.valid & (~full | self.counts.ready)
        m.d.comb += [
            rd.addr.eq(addr),
            wr.addr.eq(addr),
            wr.data.eq(self.words.payload),
            wr.en.eq(take),
            self.words.ready.eq(~full | self.counts.ready),
            self.counts.valid.eq(full),
            self.counts.payload.eq(acc),
        ]
        x = rd.data ^ self.words.payload
        with m.If(take):
            m.d.sync += [
                acc.eq(sum(x[i] for i in range(self.width))),
                addr.eq(addr + 1),
                full.eq(1),
            ]
        with m.Elif(self.counts.ready):
            m.d.sync += full.eq(0)
        return m


@pytest.fixture(scope="session")
def liberty() -> Path:
    if not DEFAULT_LIBERTY.is_file():
        pytest.fail(f"liberty missing: {DEFAULT_LIBERTY} (run: bash scripts/setup.sh)")
    return DEFAULT_LIBERTY


@pytest.fixture(scope="session")
def xorpop_cls() -> type[XorPopStream]:
    return XorPopStream


@pytest.fixture(scope="session")
def xorpop_verilog() -> str:
    return verilog.convert(XorPopStream(), name="xorpop", emit_src=False)
