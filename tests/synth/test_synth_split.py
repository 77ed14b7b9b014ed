"""Synthesis in parts (``synth.yosys.split_design``, ``synthesize(jobs=...)``): the design's
modules mapped by several Yosys processes at once give the netlist of mapping it whole."""

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

    def __init__(self, xorpop_cls):
        self._cls = xorpop_cls
        super().__init__({"a": In(16), "b": In(8), "y": Out(5), "z": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.wide = wide = self._cls(16, 32)
        m.submodules.narrow = narrow = self._cls(8, 64)
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


def test_parts_hold_every_module_once_and_declare_the_others(two_streams):
    _, modules = parse_modules(two_streams)
    assert len(modules) == 3
    parts = split_design(two_streams, 2)
    assert len(parts) == 2
    assert sorted(n for p in parts for n in p.modules) == sorted(m.name for m in modules)
    for part in parts:
        _, defined = parse_modules(part.text)
        boxes = {m.name for m in defined if "attribute \\blackbox 1" in m.head}
        assert {m.name for m in defined} - boxes == part.modules
        assert not boxes & part.modules
        assert "attribute \\top 1" not in part.text
    assert split_design(two_streams, 1) == []
    assert len(split_design(two_streams, 8)) == 3  # at most one part per module


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2"])
def test_bad_jobs_is_named(two_streams, jobs):
    with pytest.raises(ValueError, match=rf"^jobs must be a positive integer, not {jobs!r}$"):
        split_design(two_streams, jobs)


def test_parts_map_to_the_whole_design(tmp_path, two_streams, liberty):
    """Same cells, flops, areas and SRAM macros per module, mapped whole or in parts."""
    whole = synthesize(two_streams, "two", tmp_path / "whole", liberty, sram_min_bits=256)
    split = synthesize(two_streams, "two", tmp_path / "split", liberty, sram_min_bits=256, jobs=2)
    assert (tmp_path / "split" / "part1" / "synth.log").is_file()
    assert not (tmp_path / "whole" / "part0").exists()
    assert len(whole.macros) == len(split.macros) == 2
    assert set(whole.modules) == set(split.modules) and len(whole.modules) == 3
    for name, mod in whole.modules.items():
        other = split.modules[name]
        assert (mod.cells, mod.flops, mod.macros) == (other.cells, other.flops, other.macros)
        assert other.std_area == pytest.approx(mod.std_area, rel=1e-12)
    assert [i.path for i in split.instances] == [i.path for i in whole.instances]
    assert split.total.total_area == pytest.approx(whole.total.total_area, rel=1e-12)
    netlist = split.netlist.read_text()
    for name in whole.modules:  # each module written once, escaped when dotted
        assert len(re.findall(rf"(?m)^module \\?{re.escape(name)} ?\(", netlist)) == 1
