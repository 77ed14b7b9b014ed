"""Verilator line/toggle coverage (``sim.verilator_coverage``): the ``coverage.dat`` reader,
merging, the summary and the annotation; ``run_unit(coverage=True)`` end to end; argument
errors."""

from __future__ import annotations

import json

import pytest

from hw.toolpath import find_tool
from sim.kit.runner import run_unit
from sim.verilator_coverage import annotate, main, merge, parse, summary


def _point(kind: str, line: int, comment: str, count: int) -> str:
    keys = {"f": "top.v", "l": str(line), "t": kind, "o": comment, "h": "top", "S": str(line)}
    return "C '" + "".join(f"\x01{k}\x02{v}" for k, v in keys.items()) + f"' {count}\n"


@pytest.fixture
def dat(tmp_path):
    a = tmp_path / "a.dat"
    a.write_text(
        "# SystemC::Coverage-3\n"
        + _point("line", 2, "block", 3)
        + _point("line", 3, "block", 0)
        + _point("toggle", 1, "__024x[0]:0->1", 0)
        + _point("toggle", 1, "__024x[0]:1->0", 5)
    )
    b = tmp_path / "b.dat"
    b.write_text(_point("line", 3, "block", 2) + _point("toggle", 1, "__024x[0]:0->1", 0))
    return a, b


def test_parse_summary_merge(dat):
    a, b = dat
    points = parse(a)
    assert [(p.kind, p.line, p.count) for p in points] == [
        ("line", 2, 3),
        ("line", 3, 0),
        ("toggle", 1, 0),
        ("toggle", 1, 5),
    ]
    s = summary(points)
    assert s["types"]["line"] == {"points": 2, "hit": 1, "percent": 50.0}
    assert s["untoggled"] == ["top.$x[0]:0->1"] and s["unexecuted_lines"] == ["top.v:3"]
    merged = summary(merge([a, b]))
    assert merged["types"]["line"]["hit"] == 2 and merged["types"]["toggle"]["points"] == 2


def test_annotate(dat, tmp_path):
    src = tmp_path / "top.v"
    src.write_text("wire x;\nassign a = b;\nassign c = d;\nendmodule\n")
    text = annotate(parse(dat[0]), src).splitlines()
    assert text[0].startswith("%000000  wire x;")  # one toggle point never hit
    assert text[1] == " 000003  assign a = b;"
    assert text[2].startswith("%000000") and text[3] == "       " + "  endmodule"


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^coverage needs sim='verilator'"):
        run_unit("hcu", "icarus", coverage=True)
    with pytest.raises(SystemExit):
        main(["hcu", "--dat", str(tmp_path / "none.dat")])
    assert "--dat: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "unit must be one of hcu," in capsys.readouterr().err
    from hw.config import preset
    from sim.fast.build import build_harness

    with pytest.raises(ValueError, match=r"^coverage must be a bool, not 'yes'$"):
        build_harness("hcu", preset("tiny"), coverage="yes")


def test_dat_files_summarised(dat, tmp_path, capsys):
    src = tmp_path / "top.v"
    src.write_text("wire x;\nassign a = b;\nassign c = d;\n")
    out = tmp_path / "out"
    assert main(["hcu", "--dat", *map(str, dat), "--source", str(src), "--out", str(out)]) == 0
    doc = json.loads((out / "hcu.json").read_text())
    assert doc["types"]["line"] == {"points": 2, "hit": 2, "percent": 100.0}
    assert (out / "hcu.v").read_text().startswith("%000000")
    assert "hcu: line coverage 2 of 2 points (100.0 %)" in capsys.readouterr().out


@pytest.mark.cocotb
def test_hcu_regression_with_coverage(tmp_path):
    """The HCU regression built with coverage: every line point of the HCU is reached."""
    assert find_tool("verilator"), "verilator is not in the venv nor on PATH (run `make setup`)"
    assert main(["hcu", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "hcu.json").read_text())
    assert doc["types"]["line"]["points"] > 100
    assert doc["types"]["line"]["hit"] == doc["types"]["line"]["points"]
    assert 0 < doc["types"]["toggle"]["hit"] < doc["types"]["toggle"]["points"]
    assert "%000000" in (tmp_path / "hcu.v").read_text()
