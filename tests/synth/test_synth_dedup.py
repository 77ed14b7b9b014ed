"""Module deduplication before synthesis (``synth.dedup``) and the per-module power path
(``synth.modpower``): what merges and what must not, instance counts, area composed from
the distinct modules against a synthesis of every copy, power composed per module."""

from __future__ import annotations

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from synth.dedup import dedup_rtlil, parse_modules
from synth.liberty import read_liberty
from synth.modpower import module_power
from synth.power import (
    DUT_INSTANCE,
    annotate,
    flatten,
    load_mapped,
    sram_dynamic_power,
    write_power_netlist,
    write_tcl,
)
from synth.sta import run_power
from synth.yosys import synthesize


class AddConst(wiring.Component):
    """``y = a + c``, registered: ``width`` and ``c`` are the knobs the tests turn."""

    def __init__(self, width: int = 8, c: int = 3):
        self.width_, self.c = width, c
        super().__init__({"a": In(width), "y": Out(width + 1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.c)
        return m


class Pair(wiring.Component):
    """Two ``AddConst(8, 3)`` in a chain."""

    def __init__(self):
        super().__init__({"a": In(8), "y": Out(9)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.u = u = AddConst(8, 3)
        m.submodules.v = v = AddConst(8, 3)
        m.d.comb += [u.a.eq(self.a), v.a.eq(u.y[:8]), self.y.eq(v.y)]
        return m


class Mix(wiring.Component):
    """Copies and near-copies: 2 x AddConst(8, 3) and 2 x Pair (whose 4 adders are the
    same structure), one adder one bit wider, one with another constant."""

    def __init__(self):
        super().__init__({"a": In(8), "y": Out(16)})

    def elaborate(self, platform):
        m = Module()
        subs = {
            "same0": AddConst(8, 3),
            "same1": AddConst(8, 3),
            "wide": AddConst(9, 3),
            "other": AddConst(8, 4),
            "pair0": Pair(),
            "pair1": Pair(),
        }
        acc = Signal(16)
        for name, sub in subs.items():
            m.submodules[name] = sub
            m.d.comb += sub.a.eq(self.a)
        m.d.comb += acc.eq(sum(sub.y for sub in subs.values()))
        m.d.comb += self.y.eq(acc)
        return m


@pytest.fixture(scope="module")
def mix():
    text = rtlil.convert(Mix(), name="mix", emit_src=False)
    return text, dedup_rtlil(text, "mix")


def test_identical_modules_merge_and_different_ones_do_not(mix):
    text, res = mix
    rep = res.representative
    assert res.modules_before == 11 and set(rep) == {m.name for m in parse_modules(text)[1]}
    adders = ["mix.same0", "mix.same1", "mix.pair0.u", "mix.pair0.v", "mix.pair1.u"]
    assert len({rep[m] for m in [*adders, "mix.pair1.v"]}) == 1
    assert rep["mix.pair0"] == rep["mix.pair1"]  # equal once their children are mapped
    # one bit wider, or another constant: never merged with the copies nor each other
    assert len({rep["mix.same0"], rep["mix.wide"], rep["mix.other"]}) == 3
    assert rep["mix"] == "mix"
    assert res.modules_after == 5  # mix, pair, adder, wide adder, other adder
    assert sorted(m.name for m in parse_modules(res.text)[1]) == sorted(set(rep.values()))
    # the reduced design is a fixed point
    again = dedup_rtlil(res.text, "mix")
    assert again.modules_after == again.modules_before == res.modules_after


def test_instance_counts(mix):
    _, res = mix
    rep = res.representative
    assert res.instances[rep["mix.same0"]] == 6  # 2 direct + 2 in each pair
    assert res.instances[rep["mix.pair0"]] == 2
    assert res.instances[rep["mix.wide"]] == res.instances[rep["mix.other"]] == 1
    assert res.instances["mix"] == 1
    assert sum(res.instances.values()) == res.modules_before


def test_one_constant_apart_in_the_text_is_not_merged(mix):
    """Two module bodies that differ in a single character of a constant stay apart."""
    text, _ = mix
    _, mods = parse_modules(text)
    same1 = next(m for m in mods if m.name == "mix.same1")
    body = "\n".join(same1.body)
    consts = [ln for ln in same1.body if "connect \\B " in ln or "'" in ln]
    assert consts, body
    line = consts[0]
    flipped = line[:-1] + ("0" if line[-1] == "1" else "1")
    assert flipped != line
    at = text.index("module \\mix.same1\n")
    changed = text[:at] + text[at:].replace(body, body.replace(line, flipped, 1), 1)
    res = dedup_rtlil(changed, "mix")
    assert res.representative["mix.same1"] != res.representative["mix.same0"]
    assert res.representative["mix.pair0.u"] == res.representative["mix.same0"]


def _mac_tree_copies() -> str:
    """The tiny MAC tree as Amaranth converts it by itself, every adder and multiplier a
    module of its own (``hw.gen`` shares them through ``hw.shared``; the dedup still merges
    what designs converted elsewhere repeat, and what sharing does not cover)."""
    from hw.config import preset
    from hw.datapath.mac_tree import MacTree
    from hw.gen import strip_initial_state

    text = rtlil.convert(MacTree(preset("tiny")), name="mac_tree", emit_src=False)
    return strip_initial_state(text)


def test_generated_port_names_do_not_block_merging():
    """Amaranth names ports built from a slice of a parent signal ``\\port$<id>$<bit>``,
    the id differing between copies: the MAC tree's adders merge only through renaming."""
    text = _mac_tree_copies()
    assert "\\port$" in text
    res = dedup_rtlil(text, "mac_tree")
    groups = res.groups()
    adders = [m for m in res.representative if ".add" in m]
    muls = [m for m in res.representative if ".mul" in m]
    assert len(adders) > 1 and len({res.representative[m] for m in adders}) == 1
    assert len(muls) > 1 and len({res.representative[m] for m in muls}) == 1
    assert "\\port$" not in "".join(ln for ln in res.text.splitlines() if "port$i" not in ln)
    assert sum(len(v) for v in groups.values()) == res.modules_before


@pytest.fixture(scope="module")
def mac_tree_pair(tmp_path_factory, liberty):
    """The tiny MAC tree synthesised with every copy and with one module per structure."""
    text = _mac_tree_copies()
    out = {}
    for dedup in (False, True):
        wd = tmp_path_factory.mktemp(f"mac_tree_dedup{int(dedup)}")
        out[dedup] = synthesize(text, "mac_tree", wd, liberty, dedup=dedup)
    return out


#: Synthesising each copy lets ABC map identical copies differently (the tiny MAC tree's
#: first multiplier 489 cells, its copies 466); the composed area stays within 1 %.
AREA_TOLERANCE = 0.01


def test_composed_area_matches_synthesis_of_every_copy(mac_tree_pair):
    every, once = mac_tree_pair[False], mac_tree_pair[True]
    assert every.dedup is None and once.dedup is not None
    assert once.dedup.modules_after < once.dedup.modules_before
    # Yosys saw fewer modules, the hierarchy of instances is the same
    assert len(once.modules) == once.dedup.modules_after < len(every.modules)
    assert [i.path for i in once.instances] == [i.path for i in every.instances]
    # the total is composed over instances: sum of (own area x instance count)
    count: dict[str, int] = {}
    for inst in once.instances:
        count[inst.module] = count.get(inst.module, 0) + 1
    composed = sum((m.std_area + m.macro_area) * count[name] for name, m in once.modules.items())
    assert once.total.total_area == pytest.approx(composed, rel=1e-9)
    assert sum(m.cells * count[n] for n, m in once.modules.items()) == once.total.cells
    assert once.total.total_area == pytest.approx(every.total.total_area, rel=AREA_TOLERANCE)
    assert once.total.cells == pytest.approx(every.total.cells, rel=AREA_TOLERANCE)
    assert once.total.flops == every.total.flops


def _flat_default_power(res, top):
    libs = [read_liberty(p) for p in res.liberties]
    mapped = load_mapped(res.mapped_json)
    flat = flatten(mapped, top, libs)
    ann = annotate(flat, libs, res.macros, None, source="default")
    wrapper = write_power_netlist(res.netlist, mapped, top, libs, res.workdir / "pw_flat.v")
    write_tcl(flat, ann, wrapper, res.workdir / "act_flat.tcl")
    pw = run_power(
        wrapper.netlist,
        wrapper.top,
        res.liberties,
        res.workdir,
        10.0,
        res.workdir / "act_flat.tcl",
        output_nets=wrapper.outputs,
        step="power flat",
    )
    dut = sum(v[3] for k, v in pw.instances.items() if k.startswith(DUT_INSTANCE + "/"))
    sram = sum(v["dynamic_w"] for v in sram_dynamic_power(ann, res.macros, 10.0).values())
    return dut + sram


def test_module_power_of_one_module_equals_the_flat_path(tmp_path, xorpop_verilog, liberty):
    """Without submodules (the memory as an SRAM macro), the per-module path is the flat
    default-activity path: same cells, same inputs (reset included here), same
    propagation; only the flat path's 10 fF output loads differ."""
    res = synthesize(xorpop_verilog, "xorpop", tmp_path, liberty, sram_min_bits=256)
    assert res.macros
    libs = [read_liberty(p) for p in res.liberties]
    mp = module_power(
        load_mapped(res.mapped_json),
        "xorpop",
        libs,
        res.liberties,
        res.macros,
        tmp_path,
        10.0,
        reset_inactive=False,
    )
    flat = _flat_default_power(res, "xorpop")
    assert set(mp.own) == {"xorpop"} and mp.own["xorpop"].sram_dynamic_w > 0
    assert mp.subtree_w["xorpop"] == pytest.approx(flat, rel=0.03)
    # reset held inactive is a different operating point, and the figure shows it
    held = module_power(
        load_mapped(res.mapped_json), "xorpop", libs, res.liberties, res.macros, tmp_path, 10.0
    )
    assert held.subtree_w["xorpop"] != pytest.approx(flat, rel=0.03)


def test_module_power_composes_over_instances(mac_tree_pair):
    once = mac_tree_pair[True]
    libs = [read_liberty(p) for p in once.liberties]
    mapped = load_mapped(once.mapped_json)
    mp = module_power(mapped, "mac_tree", libs, once.liberties, once.macros, once.workdir, 10.0)
    assert set(mp.own) == set(once.modules)
    count: dict[str, int] = {}
    for inst in once.instances:
        count[inst.module] = count.get(inst.module, 0) + 1
    total = sum(p.total_w * count[m] for m, p in mp.own.items())
    assert mp.subtree_w["mac_tree"] == pytest.approx(total, rel=1e-9)
    assert all(p.total_w > 0 for p in mp.own.values())
    # each distinct module analysed once: as many leaves as the distinct modules' own cells
    assert mp.leaves == sum(m.cells for m in once.modules.values()) < once.total.cells


def test_module_power_in_groups_gives_the_same_figures(mac_tree_pair, tmp_path):
    """``jobs=3``: the modules split into three groups, each a process and an OpenSTA run of
    its own; every module's own power, the subtrees, the nets and the worst path are those of
    one run (to OpenSTA's rounding: 4e-8 of a module's power here)."""
    once = mac_tree_pair[True]
    libs = [read_liberty(p) for p in once.liberties]
    mapped = load_mapped(once.mapped_json)
    args = (mapped, "mac_tree", libs, once.liberties, once.macros)
    one = module_power(*args, tmp_path / "one", 10.0)
    three = module_power(*args, tmp_path / "three", 10.0, jobs=3)
    assert len(list((tmp_path / "three").glob("group*/sta_module_power.log"))) == 3
    assert three.log.read_text().count("# modules ") == 3
    assert set(three.own) == set(one.own)
    for name, p in one.own.items():
        assert three.own[name].total_w == pytest.approx(p.total_w, rel=1e-6), name
    assert three.subtree_w == pytest.approx(one.subtree_w, rel=1e-6)
    assert three.nets == one.nets and three.leaves == one.leaves
    assert three.worst_slack_ns == one.worst_slack_ns
    assert three.critical_module == one.critical_module
    with pytest.raises(ValueError, match="jobs must be a positive integer, not 0"):
        module_power(*args, tmp_path / "zero", 10.0, jobs=0)


def test_flow_per_module_power_is_labelled(tmp_path):
    """``--power modules`` through the flow: no simulation, the power labelled as default
    activity in the unit and in the report's activity note, the schema still valid."""
    from synth import flow
    from synth import report as rep

    opts = flow.FlowOptions(
        preset="tiny",
        tops=["mac_tree"],
        out_dir=tmp_path,
        power_mode="modules",
        quiet=True,
        charts=False,
    )
    report = flow.run_flow(opts)
    (m,) = report["modules"]
    assert m["status"] == "ok", m["error"]
    p, a = m["power"], m["area"]
    assert p["activity_mode"] == "default" and "not simulated" in p["activity_source"]
    assert "activity" not in m["step_seconds"]  # no simulation was run
    assert p["annotated_fraction"] == 0
    assert p["total_w"] == pytest.approx(p["hierarchy"][0]["total_w"], rel=1e-9)
    assert p["total_w"] == pytest.approx(p["dynamic_w"] + p["leakage_w"])
    assert "EXCEPT mac_tree" in report["activity"]["note"]
    # hw.gen already shares the tree's adders (hw.shared): one module, an instance per adder,
    # each counted in the hierarchy; nothing is left for the dedup to merge
    adders = [h for h in a["hierarchy"] if h["module"] == "mac_tree.FP32Add"]
    assert len(adders) == 3 and a["dedup"] is None  # tiny: 4 lanes, 3 tree adders
    assert m["timing"]["critical_path"]["module"].startswith("mac_tree")
    assert rep.validate(report) == []
    with pytest.raises(ValueError, match="power_mode"):
        flow.FlowOptions(power_mode="guess")


def test_flow_times_each_module_of_a_design_too_large_to_time(tmp_path):
    """Above ``--max-timing-cells`` the flow still reports the worst path inside any one
    module (from the per-module power run): no longer than the whole design's, which the
    same unit timed whole shows, and here close to it."""
    from synth import flow
    from synth import report as rep

    runs = {}
    for limit in (1, flow.MAX_TIMING_CELLS):
        opts = flow.FlowOptions(
            preset="tiny",
            tops=["mac_tree"],
            out_dir=tmp_path / str(limit),
            power_mode="modules",
            max_timing_cells=limit,
            quiet=True,
            charts=False,
        )
        report = flow.run_flow(opts)
        (runs[limit],) = report["modules"]
        assert rep.validate(report) == []
    bound, whole = runs[1], runs[flow.MAX_TIMING_CELLS]
    assert bound["timing"] is None and "not measured" in bound["timing_note"]
    assert "module_timing" not in whole  # timed whole: no bound
    mt, t = bound["module_timing"], whole["timing"]
    modules = {h["module"] for h in bound["area"]["hierarchy"]}
    stages = mt["critical_path"]["stages"]
    assert mt["module"] in modules and any(st.startswith(mt["module"] + "/") for st in stages)
    # a bound: the source flops add a clock-to-Q delay the whole run's input ports lack;
    # they launch on the rising edge, as the design's flops (a falling edge halves a cycle),
    # and sink flops on the outputs time a combinational module (the adders here)
    assert 0.9 * t["fmax_mhz"] <= mt["fmax_bound_mhz"] <= 1.5 * t["fmax_mhz"]
    assert not any("DFFNEG" in stage for stage in stages)
    assert mt["scaled_fmax_bound_mhz"] > mt["fmax_bound_mhz"]
    md = (tmp_path / "1" / "report.md").read_text()
    assert "Timing inside each distinct module" in md and "upper bound" in md
