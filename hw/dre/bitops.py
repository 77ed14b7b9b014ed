"""Small combinational building blocks shared by the DRE units."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["lowest_set", "popcount", "tree_sum"]


def tree_sum(terms: list) -> Value:
    """Exact sum of ``terms`` as a balanced adder tree (depth ``ceil(log2 n)``)."""
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(pairs) * 2 :]
    return terms[0]


def popcount(value: Value) -> Value:
    """Number of set bits of ``value`` as a balanced adder tree (``tree_sum``)."""
    if not len(value):
        raise ValueError("popcount needs a value at least one bit wide, not a 0-bit value")
    return tree_sum([value[i] for i in range(len(value))])


def lowest_set(m: Module, mask: Value, *, name: str) -> tuple[Signal, Value]:
    """Priority encoder: index of the lowest set bit of ``mask`` and whether any bit is set."""
    index = Signal(range(max(2, len(mask))), name=name)
    # Assignments later in the chain win, so walking from the top leaves the lowest set bit.
    for j in reversed(range(len(mask))):
        with m.If(mask[j]):
            m.d.comb += index.eq(j)
    return index, mask.any()
