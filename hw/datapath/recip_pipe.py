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
about 83 bits (exponent, power-of-two flag, significand, remainder, quotient).
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
        "quo": QUOTIENT_BITS,
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
                stages[0].quo.eq(0),
            ]
            for prev, nxt in itertools.pairwise(stages):
                rem, quo = divide_step(prev.rem, prev.sig, prev.quo)
                m.d.sync += [
                    nxt.valid.eq(prev.valid),
                    nxt.exp.eq(prev.exp),
                    nxt.pow2.eq(prev.pow2),
                    nxt.sig.eq(prev.sig),
                    nxt.rem.eq(rem),
                    nxt.quo.eq(quo),
                ]
        m.d.comb += res.payload.value.eq(round_quotient(m, last.exp, last.pow2, last.quo, last.rem))
        return m
