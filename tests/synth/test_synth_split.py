"""Synthesis module by module (``synth.yosys.split_design``, ``synthesize(jobs=...)``): each
module mapped by a Yosys of its own, ``jobs`` at a time, the results merged."""

from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from synth.dedup import parse_modules
from synth.yosys import split_design, synthesize


class TwoStreams(wiring.Component):
    """Two ``XorPopStream`` of different widths side by side: three modules, a memory in
    each submodule (an SRAM macro at ``sram_min_bits=256``)."""

    def __init__(self, xorpop_cls, narrow_depth: int = 64):
        self._cls, self._depth = xorpop_cls, narrow_depth
        super().__init__({"a": In(16), "b": In(8), "y": Out(5), "z": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.wide = wide = self._cls(16, 32)
        m.submodules.narrow = narrow = self._cls(8, self._depth)
        m.d.comb += [
            wide.words.payload.eq(self.a),
            wide.words.valid.eq(1),
            wide.counts.ready.eq(1),
            narrow.words.payload.eq(self.b),
            narrow.words.valid.eq(1),
            narrow.counts.ready.eq(1),
            self.y.eq(wide.counts.payload),
            self.z.eq(narrow.counts.payload),
        ]
        return m


@pytest.fixture(scope="module")
def two_streams(xorpop_cls) -> str:
    return rtlil.convert(TwoStreams(xorpop_cls), name="two", emit_src=False)


def test_each_module_a_part_with_its_children_declared(two_streams, xorpop_cls):
    _, modules = parse_modules(two_streams)
    assert len(modules) == 3
    parts = split_design(two_streams)
    assert sorted(p.module for p in parts) == sorted(m.name for m in modules)
    sizes = [p.size for p in parts]
    assert sizes == sorted(sizes, reverse=True)
    for part in parts:
        _, defined = parse_modules(part.text)
        boxes = {m.name for m in defined if "attribute \\blackbox 1" in m.head}
        assert {m.name for m in defined} - boxes == {part.module}
        assert "attribute \\top 1" not in part.text
    top = next(p for p in parts if p.module == "two")
    assert {m.name for m in parse_modules(top.text)[1]} == {"two", "two.wide", "two.narrow"}
    one = rtlil.convert(xorpop_cls(), name="one", emit_src=False)
    assert len(parse_modules(one)[1]) == 1 and split_design(one) == []  # mapped whole


@pytest.mark.parametrize("name", ["jobs", "sram_min_bits"])
@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_bad_positive_int_is_named(tmp_path, two_streams, liberty, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, not {value!r}$"):
        synthesize(two_streams, "two", tmp_path, liberty, **{name: value})


def _signature(res):
    return {
        name: (m.cells, m.flops, m.macros, round(m.std_area, 6)) for name, m in res.modules.items()
    }


def test_a_module_maps_alike_in_any_design_and_with_any_jobs(tmp_path, xorpop_cls, liberty):
    """Module by module: ``jobs`` changes nothing, and ``two.wide`` maps to the same cells
    beside a different sibling; the macros, the hierarchy and the totals are those of the
    modules."""
    base = rtlil.convert(TwoStreams(xorpop_cls), name="two", emit_src=False)
    runs = {
        jobs: synthesize(base, "two", tmp_path / f"j{jobs}", liberty, sram_min_bits=256, jobs=jobs)
        for jobs in (1, 3)
    }
    assert (tmp_path / "j3" / "parts" / "two.narrow" / "synth.log").is_file()
    one, three = runs[1], runs[3]
    assert _signature(one) == _signature(three) and len(one.modules) == 3
    assert len(one.macros) == 2 and one.modules["two.wide"].macros
    assert [i.path for i in one.instances] == ["", "narrow", "wide"]
    assert one.total.total_area == pytest.approx(
        sum(m.std_area + m.macro_area for m in one.modules.values()), rel=1e-12
    )
    netlist = one.netlist.read_text()
    for name in one.modules:  # each module written once, escaped when dotted
        assert len(re.findall(rf"(?m)^module \\?{re.escape(name)} ?\(", netlist)) == 1
    other = rtlil.convert(TwoStreams(xorpop_cls, narrow_depth=128), name="two", emit_src=False)
    res = synthesize(other, "two", tmp_path / "other", liberty, sram_min_bits=256)
    assert _signature(res)["two.wide"] == _signature(one)["two.wide"]
    assert _signature(res)["two.narrow"] != _signature(one)["two.narrow"]
