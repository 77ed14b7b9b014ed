"""``hw.shared``: one generated module per (class, key); the component itself elsewhere."""

from __future__ import annotations

import re

from amaranth.back import rtlil
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from golden.fparith import f32_to_bits
from hw.config import preset
from hw.datapath.exp2 import Exp2
from hw.datapath.fp32_add import FP32Add
from hw.gen import generate_rtlil
from hw.shared import shared, sharing


class _Pair(wiring.Component):
    """Two adders (one key) and two Exp2 units of different ``frac_bits`` (two keys)."""

    def __init__(self):
        super().__init__({"x": In(32), "y": In(32), "s": Out(32), "e": Out(64)})

    def elaborate(self, platform):
        m = Module()
        first = shared(m, "add0", FP32Add())
        second = shared(m, "add1", FP32Add())
        m.d.comb += [first.a.eq(self.x), first.b.eq(self.y), second.a.eq(first.s)]
        m.d.comb += [second.b.eq(self.y), self.s.eq(second.s)]
        for i, frac in enumerate((4, 6)):
            e = shared(m, f"exp{i}", Exp2(frac_bits=frac), frac)
            m.d.comb += [e.x.eq(self.x), self.e[32 * i : 32 * i + 32].eq(e.y)]
        return m


def _modules(text: str) -> list[str]:
    return re.findall(r"(?m)^module \\(\S+)$", text)


def test_outside_generation_the_component_is_the_submodule():
    """Amaranth's simulator sees the real adders: (1 + 2) + 2 = 5."""
    dut = _Pair()
    sim = Simulator(dut)
    seen = []

    async def bench(ctx):
        ctx.set(dut.x, int(f32_to_bits(1.0)))
        ctx.set(dut.y, int(f32_to_bits(2.0)))
        seen.append(ctx.get(dut.s))

    sim.add_testbench(bench)
    sim.run()
    assert seen == [int(f32_to_bits(5.0))]


def test_generation_emits_one_module_per_class_and_key():
    with sharing("pair") as ctx:
        text = rtlil.convert(_Pair(), name="pair", emit_src=False)
    names = _modules(text + ctx.text())
    assert ctx.modules == 3
    assert names.count("pair.FP32Add") == 1
    assert {"pair.Exp2", "pair.Exp2_1"} <= set(names)
    # both adders are instances of the one module; only the top keeps the top attribute
    assert len(re.findall(r"(?m)^  cell \\pair\.FP32Add ", text)) == 2
    assert (text + ctx.text()).count("attribute \\top 1") == 1


def test_a_generated_mac_tree_holds_one_adder_and_one_multiplier_module():
    cfg = preset("tiny")
    text = generate_rtlil("mac_tree", cfg)
    names = _modules(text)
    assert names.count("mac_tree.FP32Add") == names.count("mac_tree.BF16Mul") == 1
    cells = re.findall(r"(?m)^  cell \\mac_tree\.(BF16Mul|FP32Add) ", text)
    assert cells.count("BF16Mul") == cfg.mac_lanes
    assert cells.count("FP32Add") == cfg.mac_lanes - 1  # the pairwise tree's adders


def test_sharing_ends_with_its_block():
    with sharing("x"):
        pass
    m = Module()
    add = FP32Add()
    assert shared(m, "add", add) is add
    assert m.submodules["add"] is add  # the component itself, not an instance
    Fragment.get(m, None)  # elaborated (Amaranth warns about unused elaboratables)
