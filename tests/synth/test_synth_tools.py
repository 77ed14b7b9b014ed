"""Yosys, OpenSTA and the power annotation on a small real design (``XorPopStream``)."""

from __future__ import annotations

import pytest

from synth.activity import simulate_activity
from synth.liberty import read_liberty
from synth.power import (
    DUT_INSTANCE,
    annotate,
    flatten,
    load_mapped,
    write_power_netlist,
    write_tcl,
)
from synth.sta import _parse_path, run_power, run_sta
from synth.tools import ToolError
from synth.yosys import synthesize

WIDTH, DEPTH = 16, 32  # 512-bit memory


@pytest.fixture(scope="module")
def flops(tmp_path_factory, xorpop_verilog, liberty):
    """The memory as flip-flops (cut-off above its 512 bits)."""
    return synthesize(
        xorpop_verilog, "xorpop", tmp_path_factory.mktemp("ff"), liberty, sram_min_bits=2048
    )


@pytest.fixture(scope="module")
def macro(tmp_path_factory, xorpop_verilog, liberty):
    """The memory as an SRAM macro (cut-off below its 512 bits)."""
    return synthesize(
        xorpop_verilog, "xorpop", tmp_path_factory.mktemp("macro"), liberty, sram_min_bits=256
    )


def test_memory_found(flops):
    (mem,) = flops.memories
    assert (mem.width, mem.depth, mem.read_ports, mem.write_ports) == (WIDTH, DEPTH, 1, 1)
    assert mem.async_read  # domain="comb" read port


def test_area_accounting(flops, macro):
    t = flops.total
    assert t.cells > 0 and t.comb_area > 0 and t.macro_area == 0
    # 512 memory bits + address + count + full flag, all flip-flops
    assert t.flops >= WIDTH * DEPTH
    assert t.seq_area == pytest.approx(t.flops * 96.0)
    m = macro.total
    assert len(macro.macros) == 1 and m.macro_area > 0
    assert m.flops < 16  # only addr, acc and full remain
    assert m.std_area < t.std_area / 5
    # Our area sums match Yosys' own `stat -json` for the top module.
    stat = flops.stat["modules"]["\\xorpop"]["area"]
    assert t.total_area == pytest.approx(float(stat))


def test_sta_real_run(macro):
    res = run_sta(macro.netlist, "xorpop", macro.liberties, macro.workdir, 10.0)
    assert res.clock_port == "clk"
    assert res.worst_slack_ns is not None and res.fmax_mhz is not None
    assert res.fmax_mhz == pytest.approx(1000 / (10.0 - res.worst_slack_ns))
    cp = res.critical_path
    assert cp is not None and cp.slack_ns == pytest.approx(res.worst_slack_ns, abs=1e-3)
    assert cp.startpoint and cp.endpoint and len(cp.stages) >= 3
    # The asynchronous read of the macro is on the critical path: RD_ADDR -> RD_DATA.
    assert any("mem/RD_DATA" in s for s in cp.stages)
    # A faster clock gives the same fmax (same paths) and a smaller slack.
    res2 = run_sta(macro.netlist, "xorpop", macro.liberties, macro.workdir, 5.0, step="timing 5ns")
    assert res2.fmax_mhz == pytest.approx(res.fmax_mhz, rel=1e-3)
    assert res2.worst_slack_ns < res.worst_slack_ns


def test_critical_path_with_a_long_endpoint_name():
    """OpenSTA wraps a long point's kind onto the next line (the 16-lane paper core's
    report): the path is still read."""
    text = """Startpoint: keysum (rising edge-triggered flip-flop clocked by clk)
Endpoint: attn/array_a/q0/_32706_
          (rising edge-triggered flip-flop clocked by clk)
Path Group: clk

   0.0000    0.0000 ^ keysum/RD_CLK (VREX_SRAM_32768X512_A15_1R1W)
  12.8880   12.8880 v keysum/RD_DATA[177] (VREX_SRAM_32768X512_A15_1R1W)
   0.0929   19.7694 ^ attn/array_a/q0/_23589_/Y (OAI21X1)
            19.7694   data arrival time
             9.8224   data required time
           -9.9471   slack (VIOLATED)
"""
    cp = _parse_path(text)
    assert cp is not None
    assert (cp.startpoint, cp.endpoint) == ("keysum", "attn/array_a/q0/_32706_")
    assert cp.end_kind == "rising edge-triggered flip-flop clocked by clk"
    assert (cp.arrival_ns, cp.slack_ns) == (19.7694, -9.9471)
    assert len(cp.stages) == 3


def test_sta_tcl_error_is_a_failure(macro):
    # OpenSTA exits 0 after a Tcl error; the flow must still fail, naming tool, step and log.
    with pytest.raises(ToolError) as exc:
        run_sta(macro.netlist, "no_such_top", macro.liberties, macro.workdir, 10.0, step="bad top")
    e = exc.value
    assert e.tool == "OpenSTA" and e.step == "bad top"
    assert e.log.name == "sta_bad_top.log" and e.log.is_file()
    assert "Error" in str(e)


def test_yosys_failure_names_tool_step_and_log(tmp_path, liberty):
    with pytest.raises(ToolError) as exc:
        synthesize("module broken(input a; endmodule\n", "broken", tmp_path, liberty)
    e = exc.value
    assert e.tool == "yosys" and e.step == "inspect memories" and e.log.is_file()


@pytest.fixture(scope="module")
def activity(tmp_path_factory, xorpop_cls):
    dut = xorpop_cls(WIDTH, DEPTH)
    return simulate_activity(
        "xorpop", dut, None, tmp_path_factory.mktemp("act") / "a.vcd", cycles=400
    )


def _power(res, ann_vcd, tag, **kw):
    libs = [read_liberty(p) for p in res.liberties]
    mapped = load_mapped(res.mapped_json)
    flat = flatten(mapped, "xorpop", libs)
    ann = annotate(flat, libs, res.macros, ann_vcd, **kw)
    wrapper = write_power_netlist(res.netlist, mapped, "xorpop", libs, res.workdir / f"pw_{tag}.v")
    write_tcl(flat, ann, wrapper, res.workdir / f"act_{tag}.tcl")
    pw = run_power(
        wrapper.netlist,
        wrapper.top,
        res.liberties,
        res.workdir,
        10.0,
        res.workdir / f"act_{tag}.tcl",
        output_nets=wrapper.outputs,
        step=f"power {tag}",
    )
    return flat, ann, pw


def test_negligible_activities_are_written_as_zero(flops, activity):
    """An activity that underflowed in the propagation (1e-42 transitions per cycle) is
    written as 0: OpenSTA gave such a gate an infinite internal power, and report_power
    failed with a Tcl domain error on the 64-lane paper core."""
    libs = [read_liberty(p) for p in flops.liberties]
    mapped = load_mapped(flops.mapped_json)
    flat = flatten(mapped, "xorpop", libs)
    ann = annotate(flat, libs, flops.macros, activity.vcd, source=activity.source)
    net = next(iter(ann.activity))
    ann.activity[net] = (1e-42, 1.0)
    wrapper = write_power_netlist(flops.netlist, mapped, "xorpop", libs, flops.workdir / "pw.v")
    text = write_tcl(flat, ann, wrapper, flops.workdir / "act_tiny.tcl").read_text()
    pins = [
        f"{DUT_INSTANCE}/{inst.path}/{pin}"
        for inst in flat.instances
        for pin, n in inst.pins.items()
        if n == net
    ]
    assert pins and all(f"{{{p}}} {{0 1}}" in text for p in pins)
    assert "e-42" not in text


def test_activity_simulation(activity):
    assert activity.cycles == 400
    assert "random(words)" in activity.stimulus
    rate, duty = activity.vcd.rate("addr", 0)
    assert 0.2 < rate <= 1.0 and 0.2 < duty < 0.8  # the address counts up with the beats
    assert activity.vcd.rate("clk", 0)[0] == pytest.approx(2.0, abs=0.01)


def test_power_with_simulated_activity(flops, activity):
    flat, ann, pw = _power(flops, activity.vcd, "sim", source=activity.source)
    assert ann.counts["annotated"] > 0 and 0 < ann.annotated_fraction < 1
    assert sum(ann.counts.values()) == ann.n_nets
    # Registers keep their RTL names: the address register is annotated from the VCD.
    assert any(n.startswith("addr[") for n in ann.matched_names)
    dut = {k: v for k, v in pw.instances.items() if k.startswith(DUT_INSTANCE + "/")}
    assert len(dut) == len(flat.instances)
    total = sum(v[3] for v in dut.values())
    assert total > 0 and pw.total_w >= total
    assert pw.annotated_pins == sum(len(i.pins) for i in flat.instances) + 2 * len(
        flat.inputs
    ) - 2 * 1 - sum(1 for i in flat.instances for n in i.pins.values() if n in ann.clock_nets)


def test_opensta_uses_our_register_annotations(flops, activity):
    """Debian's OpenSTA overwrites internal annotations with its own propagation unless the
    flow works around it; quiet registers must give less power than busy ones."""
    _, _, busy = _power(flops, activity.vcd, "busy", source="sim")
    quiet = type(activity.vcd)(
        activity.vcd.path, activity.vcd.cycles, "clk", dict(activity.vcd.signals)
    )
    for name, sig in list(quiet.signals.items()):
        if not name.startswith("words"):
            quiet.signals[name] = type(sig)(sig.width, [0] * sig.width, sig.duty)
    _, _, calm = _power(flops, quiet, "quiet", source="quiet")

    def dut_total(pw):
        return sum(v[3] for k, v in pw.instances.items() if k.startswith(DUT_INSTANCE))

    assert dut_total(calm) < 0.8 * dut_total(busy)


def test_default_activity_is_labelled_and_differs(flops, activity):
    _, _, sim = _power(flops, activity.vcd, "sim2", source="sim")
    _, ann_def, dflt = _power(flops, None, "default", source="default")
    assert ann_def.counts.get("annotated", 0) == 0 and ann_def.counts["defaulted"] > 0
    assert sim.total_w != pytest.approx(dflt.total_w, rel=1e-3)
