"""FP32RecipPipe: the reciprocal of ``FP32Recip``, pipelined: one operand per cycle.

Interface, contract and arithmetic as ``FP32Recip`` (``operand`` -> ``result``, streams of
``{value: FP32}``, bit-exact with ``golden.fparith.fp32_recip`` for positive normal finite
operands, results in order): the ``QUOTIENT_BITS = 25`` restoring-division steps are
unrolled, one per pipeline stage, and the rounding (``recip.round_quotient``) reads the last
stage. Issue 11 asks for it: the tiled attention normalises every row of a frame at the end
(``o * 1/l``), which the sequential unit does at one row per 27 cycles.

Stages: an operand accepted at cycle ``t`` is unpacked into stage 0 at ``t + 1``; stage ``i``
holds it after ``i`` division steps, so its result is offered from ``t + latency``,
``latency = QUOTIENT_BITS + 1 = 26`` (the sequential unit's latency) and held until
``result.ready``. Back-pressure stalls every stage at once (the stages advance when the
output is empty or read: ``operand.ready = ~result.valid | result.ready``), so without
stalls it takes one operand per cycle and a stalled result loses nothing. Cost: 26 stages of
59 bits (valid, exponent, power-of-two flag, significand, remainder) plus the quotient, which
has ``i`` bits in stage ``i``.
"""

import itertools

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .recip import _SIG_W, QUOTIENT_BITS, RECIP_LATENCY, RECIP_PAYLOAD, divide_step, round_quotient

__all__ = ["FP32RecipPipe"]

_STAGE = data.StructLayout(
    {
        "valid": 1,
        "exp": 8,
        "pow2": 1,
        "sig": _SIG_W,
        "rem": _SIG_W + 1,
    }
)


class FP32RecipPipe(wiring.Component):
    """Pipelined FP32 reciprocal; see the module docstring."""

    operand: In(stream.Signature(RECIP_PAYLOAD))
    result: Out(stream.Signature(RECIP_PAYLOAD))

    @property
    def latency(self) -> int:
        """Cycles from the operand's handshake to the result being offered."""
        return RECIP_LATENCY

    def elaborate(self, platform):
        m = Module()
        op, res = self.operand, self.result
        stages = [Signal(_STAGE, name=f"stage{i}") for i in range(QUOTIENT_BITS + 1)]
        # Stage i's quotient has i bits (the rest would be constant 0 registers, which Yosys
        # discovers one stage per pass of its opt loop).
        # (Stage 0's is empty: no signal, Verilog has no zero-width vectors.)
        quos = [Const(0, 0)] + [
            Signal(i, name=f"stage{i}_quo") for i in range(1, QUOTIENT_BITS + 1)
        ]
        last = stages[-1]
        advance = ~last.valid | res.ready
        m.d.comb += [op.ready.eq(advance), res.valid.eq(last.valid)]
        with m.If(advance):
            v = op.payload.value
            m.d.sync += [
                stages[0].valid.eq(op.valid),
                stages[0].exp.eq(v.exponent),
                stages[0].pow2.eq(v.mantissa == 0),
                stages[0].sig.eq(Cat(v.mantissa, Const(1, 1))),
                stages[0].rem.eq(1 << _SIG_W),
            ]
            for i, (prev, nxt) in enumerate(itertools.pairwise(stages)):
                rem, quo = divide_step(prev.rem, prev.sig, Cat(quos[i], Const(0, 1)))
                m.d.sync += [
                    nxt.valid.eq(prev.valid),
                    nxt.exp.eq(prev.exp),
                    nxt.pow2.eq(prev.pow2),
                    nxt.sig.eq(prev.sig),
                    nxt.rem.eq(rem),
                    quos[i + 1].eq(quo),
                ]
        m.d.comb += res.payload.value.eq(round_quotient(m, last.exp, last.pow2, quos[-1], last.rem))
        return m
