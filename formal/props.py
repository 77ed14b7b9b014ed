"""Property helpers shared by the harnesses: environment set-up, ``past`` registers and the
stream rule (valid and payload held until the handshake).

Properties are stated in the ``comb`` domain and sampled every step; ``past`` values come
from ``sync`` registers that the harness resets with the design. ``after_reset`` is high
from the first step after the reset step on, so no property looks at a register that was
never written.
"""

from __future__ import annotations

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Module, ResetSignal, Signal, Value
from amaranth.lib import stream

__all__ = ["Env", "popcount"]


def popcount(value: Value) -> Value:
    """Number of set bits (the harness's own, not the design's ``bitops.popcount``)."""
    total = Value.cast(0)
    for i in range(len(value)):
        total = total + value[i]
    return total


class Env:
    """The harness's side of the clock: reset in the first step only, ``past`` registers
    and the stream rules (asserted on the design's outputs, assumed on its inputs)."""

    def __init__(self, m: Module):
        self.m = m
        with m.If(Initial()):
            m.d.comb += Assume(ResetSignal())
        with m.Else():
            m.d.comb += Assume(~ResetSignal())
        self.after_reset = Signal(name="after_reset")
        m.d.sync += self.after_reset.eq(1)

    def past(self, value, *, name: str) -> Signal:
        """``value`` of the previous step (its reset value in the step after the reset)."""
        reg = Signal(Value.cast(value).shape(), name=f"past_{name}")
        self.m.d.sync += reg.eq(value)
        return reg

    def any(self, width, *, name: str) -> Value:
        """A free input that may change every step."""
        sig = Signal(width, name=name)
        self.m.d.comb += sig.eq(AnySeq(width))
        return sig

    def held(self, s: stream.Interface, *, name: str, unless: Value | None = None) -> Signal:
        """High when ``s`` was valid and not ready in the previous step (its beat is still
        owed), optionally not when ``unless`` was high in that step."""
        cond = s.valid & ~s.ready
        if unless is not None:
            cond = cond & ~unless
        return self.past(cond, name=f"{name}_held") & self.after_reset

    def _stable(self, s, *, name, kind, unless):
        m = self.m
        held = self.held(s, name=name, unless=unless)
        payload = Value.cast(s.payload)
        prev = self.past(payload, name=f"{name}_payload")
        with m.If(held):
            # src_loc_at=2: sby names the harness line that asked for the rule.
            m.d.comb += kind(s.valid, f"{name}: valid dropped before its handshake", src_loc_at=2)
            m.d.comb += kind(
                payload == prev, f"{name}: payload changed before its handshake", src_loc_at=2
            )
        return held

    def assert_stable(self, s, *, name: str, unless: Value | None = None) -> Signal:
        """Assert the stream rule on an output stream; returns the ``held`` signal."""
        return self._stable(s, name=name, kind=Assert, unless=unless)

    def assume_stable(self, s, *, name: str) -> Signal:
        """Assume the stream rule on an input stream driven by the environment."""
        return self._stable(s, name=name, kind=Assume, unless=None)

    def drive_source(self, s: stream.Interface, *, name: str, stable: bool = True) -> None:
        """Drive an input stream of the design from free inputs (obeying the stream rule
        when ``stable``)."""
        m = self.m
        m.d.comb += s.valid.eq(self.any(1, name=f"{name}_valid"))
        m.d.comb += s.payload.eq(self.any(len(s.payload.as_value()), name=f"{name}_payload"))
        if stable:
            self.assume_stable(s, name=name)

    def drive_sink(self, s: stream.Interface, *, name: str) -> None:
        """Back-pressure on an output stream of the design: ``ready`` free every step."""
        self.m.d.comb += s.ready.eq(self.any(1, name=f"{name}_ready"))
