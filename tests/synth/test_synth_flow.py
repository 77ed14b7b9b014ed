"""`python -m synth.flow` on the tiny preset: structure and sanity of the reports."""

from __future__ import annotations

import json

import pytest

import hw.gen  # noqa: F401  (the flow needs the real units: fail loudly if they break)
from synth import flow, tools
from synth import report as rep


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_tiny")
    opts = flow.FlowOptions(
        preset="tiny", tops=["hcu", "not_built"], out_dir=out, cycles=300, quiet=True
    )
    # every architectural unit is built now: an expected unit absent from hw.units.UNITS
    # checks that such units are listed as missing, never estimated
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(flow.EXPECTED_UNITS, "not_built", "a unit not in hw.units.UNITS")
        report = flow.run_flow(opts)
    return out, report


def test_report_files_and_schema(tiny):
    out, report = tiny
    data = json.loads((out / "report.json").read_text())
    assert rep.validate(data) == []
    assert data == json.loads(json.dumps(report))
    for name in (
        "report.md",
        "area_breakdown.png",
        "fmax.png",
        "power.png",
        "paper_comparison.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert "| hcu | ok |" in md and "| not_built | **missing** |" in md and "estimate" in md


def test_unit_figures(tiny):
    _, report = tiny
    (m,) = report["modules"]
    assert m["name"] == "hcu" and m["status"] == "ok", m["error"]
    a, t, p, s = m["area"], m["timing"], m["power"], m["scaled"]
    assert a["total_um2"] == pytest.approx(a["comb_um2"] + a["seq_um2"] + a["macro_um2"])
    assert a["total_um2"] > 0 and a["flops"] > 0
    assert {mem["name"] for mem in a["memories"]} == {"sig_mem", "cnt_mem"}
    # fmax parsed from a real OpenSTA run, consistent with the slack at the clock
    assert t["fmax_mhz"] == pytest.approx(1000 / (t["clock_ns"] - t["worst_slack_ns"]))
    assert t["critical_path"]["startpoint"] and t["critical_path"]["endpoint"]
    assert (tools.ROOT / t["log"]).is_file() or t["log"]
    # power from simulated activity, annotated nets reported
    assert p["activity_mode"] == "simulation" and "Amaranth simulator" in p["activity_source"]
    assert p["total_w"] > 0 and p["std_cell"]["internal_w"] > 0
    assert 0 < p["annotated_fraction"] < 1 and p["nets"]["annotated"] > 0
    assert p["total_w"] == pytest.approx(p["dynamic_w"] + p["leakage_w"])
    # scaled figures are labelled estimates next to the raw ones
    assert s["label"] == "estimate" and "Stillmaker" in s["model"]
    assert 0 < s["area_mm2"] < a["total_um2"] * 1e-6
    assert s["fmax_mhz"] > t["fmax_mhz"]


def test_timing_skipped_above_max_timing_cells(tmp_path):
    """A design of more cells than ``max_timing_cells`` is synthesised and its power
    analysed, but not timed: no fmax (raw or scaled), and the report says why."""
    opts = flow.FlowOptions(
        preset="tiny",
        tops=["kv_writer"],
        out_dir=tmp_path,
        default_activity=True,
        max_timing_cells=10,
        charts=False,
        quiet=True,
    )
    (m,) = flow.run_flow(opts)["modules"]
    assert m["status"] == "ok", m["error"]
    assert m["area"]["cells"] > 10 and m["power"]["total_w"] > 0
    assert m["timing"] is None and m["scaled"]["fmax_mhz"] is None
    assert m["timing_note"].startswith(f"not measured: {m['area']['cells']} cells > ")
    assert rep.validate(json.loads((tmp_path / "report.json").read_text())) == []
    assert f"Timing {m['timing_note']}." in (tmp_path / "report.md").read_text()


def test_missing_units_are_listed_not_estimated(tiny):
    _, report = tiny
    names = [m["name"] for m in report["missing"]]
    assert names == ["not_built"]
    assert all(m["name"] != "not_built" for m in report["modules"])
    assert report["comparison"]["dre_share_of_core"]["status"] == "missing"
    assert report["comparison"]["dre"]["status"] == "missing"  # dre not run here


def test_cli_missing_liberty(tmp_path, capsys):
    rc = flow.main(
        ["--config", "tiny", "--liberty", str(tmp_path / "nope.lib"), "-o", str(tmp_path)]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "liberty file not found" in err and "nope.lib" in err


def test_cli_missing_default_liberty_gives_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tools, "DEFAULT_LIBERTY", tmp_path / "gone.lib")
    assert flow.main(["--config", "tiny", "-o", str(tmp_path)]) == 2
    assert "bash scripts/setup.sh" in capsys.readouterr().err


def test_a_synthesis_over_its_time_limit_fails_its_unit(tmp_path):
    """``--yosys-timeout``: a unit whose Yosys run takes longer is reported failed, with the
    limit in its error, and the flow goes on (the command then exits 1)."""
    assert (
        flow.main(["--top", "hcu", "--yosys-timeout", "0.01", "--no-charts", "-o", str(tmp_path)])
        == 1
    )
    (hcu,) = json.loads((tmp_path / "report.json").read_text())["modules"]
    assert hcu["status"] == "failed" and "timed out after 0.01 s" in hcu["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "huge"], r"config must be one of 'tiny', 'paper', 'edge', not 'huge'"),
        (["--top", "nope"], r"top must be one of .*, not 'nope'"),
        (["--clock-ns", "0"], r"clock_ns must be a positive number, not 0.0"),
        (["--cycles", "3"], r"cycles must be an integer of at least 10, not 3"),
        (["--max-timing-cells", "0"], r"max_timing_cells must be a positive integer, not 0"),
        (["--yosys-timeout", "0"], r"yosys_timeout must be a positive number of seconds, not 0"),
        (["--jobs", "0"], r"jobs must be a positive integer, not 0"),
        (["--set", "mac_rows"], r"--set must be FIELD=NUMBER, not 'mac_rows'"),
        (["--set", "mac_rows=x"], r"--set must be FIELD=NUMBER, not 'mac_rows=x'"),
        (["--set", "nope=3"], r"--set must name an HWConfig field \(.*hcu_batch.*\), not 'nope'"),
        (["--set", "mac_cols=3"], r"mac_cols must be a power of two in 1\.\.256, not 3"),
        (["--set", "hcu_batch=3"], r"hcu_batch must be a power of two in 1\.\.8, not 3"),
        (["--set", "resv.max_clusters=0"], r"max_clusters must be at least 1, not 0"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, args, message):
    assert flow.main([*args, "-o", str(tmp_path)]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_overrides_label_the_report_and_its_directory():
    opts = flow.FlowOptions(preset="tiny", overrides={"mac_rows": 8, "mac_cols": 8})
    assert opts.label == "tiny (mac_rows=8, mac_cols=8)"
    assert opts.directory.name == "tiny_mac_rows8_mac_cols8"
    assert flow.FlowOptions(preset="tiny").label == "tiny"
