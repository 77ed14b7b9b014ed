"""sim.soak (make soak) on tiny runs: the plan, the report, resumption, a failing chunk
with its replay command, the Dask path, bad arguments and the core's cocotb chunks."""

from __future__ import annotations

import json
import os
import re

import pytest

from sim import soak


def test_plan_rotates_seeds_per_chunk_and_unit():
    chunks = soak.plan(["hcu"], 2500, 1000, 40)
    assert [(c["seed"], c["transactions"]) for c in chunks] == [(40, 1000), (41, 1000), (42, 500)]
    chunks = soak.plan(["wtu_grid", "hcu"], 2, 1, 40)
    assert [(c["unit"], c["seed"]) for c in chunks] == [
        ("wtu_grid", 2_000_040),
        ("wtu_grid", 2_000_041),
        ("hcu", 40),
        ("hcu", 41),
    ]


def test_tiny_soak_reports_and_resumes(tmp_path, capsys):
    args = ["--units", "hcu", "--transactions", "2000", "--chunk", "800", "--seed", "5"]
    args += ["--workers", "0"]
    assert soak.main([*args, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for seed in (5, 6, 7):
        assert re.search(rf"^soak: \[\d/3\] hcu seed={seed} profile=\w+ PASS", out, re.M)
    rep = json.loads((tmp_path / "report.json").read_text())
    hcu = rep["units"]["hcu"]
    assert rep["passed"] and rep["base_seed"] == 5
    assert hcu["transactions"] == 2000 and hcu["chunks"] == 3 and hcu["mismatches"] == 0
    assert hcu["seeds"] == [5, 6, 7] and hcu["cycles"] > 2000 and hcu["failures"] == []
    md = (tmp_path / "report.md").read_text()
    assert "| hcu | 2000 | 3 |" in md and "**PASS**" in md
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(state["chunks"]) == 3 and state["base_seed"] == 5
    # A rerun skips everything; without --seed it resumes the saved base seed.
    assert soak.main([*args[:-4], "--workers", "0", "-o", str(tmp_path)]) == 0
    assert "base seed 5 (resumed from" in (out := capsys.readouterr().out)
    assert "3 chunks done, 0 to run" in out
    # Growing the run keeps the full chunks and runs the rest (the short last one again).
    more = ["--units", "hcu", "--transactions", "3000", "--chunk", "800", "--workers", "0"]
    more += ["-o", str(tmp_path)]
    assert soak.main(more) == 0
    assert "2 chunks done, 2 to run" in capsys.readouterr().out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["units"]["hcu"]["seeds"] == [5, 6, 7, 8]
    # --fresh starts over.
    assert soak.main([*args, "--fresh", "-o", str(tmp_path)]) == 0
    assert "0 chunks done, 3 to run" in capsys.readouterr().out


def test_a_failing_chunk_is_reported_with_its_replay(tmp_path, capsys, monkeypatch):
    real = soak.run_chunk

    def faulty(unit, cfg, n, seed, **kw):  # the second chunk's golden is wrong
        return real(unit, cfg, n, seed, **kw, corrupt=3 if seed == 21 else None)

    monkeypatch.setattr(soak, "run_chunk", faulty)
    args = ["--units", "hcu", "--transactions", "600", "--chunk", "300", "--seed", "20"]
    args += ["--workers", "0"]
    assert soak.main([*args, "-o", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    replay = "python -m sim.fast hcu --seed 21 --transactions 300 --config tiny"
    assert f"soak: replay: {replay}" in out and "soak: FAIL in" in out
    assert "hcu seed=20 profile=" in out and "FAIL (1 mismatches)" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    (fail,) = rep["units"]["hcu"]["failures"]
    assert fail["seed"] == 21 and fail["replay"] == replay and fail["first"].startswith("assign[3]")
    assert not rep["passed"] and f"replay: `{replay}`" in (tmp_path / "report.md").read_text()


def test_two_units_on_a_dask_local_cluster(tmp_path, capsys):
    args = ["--units", "hcu,wtu_grid", "--transactions", "300", "--chunk", "150", "--seed", "2"]
    assert soak.main([*args, "--workers", "1", "-o", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert set(rep["units"]) == {"hcu", "wtu_grid"}
    for u in rep["units"].values():
        assert u["chunks"] == 2 and u["transactions"] == 300 and u["mismatches"] == 0
    md = (tmp_path / "report.md").read_text()
    assert "| hcu | 300 | 2 |" in md and "| wtu_grid | 300 | 2 |" in md


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--units", "hcu,wtx"],
            r"--units must list units of hcu, wtu, wtu_grid, topk, quickselect, kvmu, core, "
            r"not 'wtx'",
        ),
        (["--core-queries", "0"], r"argument --core-queries: must be at least 1, not 0"),
        (["--core-chunk", "-2"], r"argument --core-chunk: must be at least 1, not -2"),
        (["--transactions", "0"], r"argument --transactions: must be at least 1, not 0"),
        (["--chunk", "-5"], r"argument --chunk: must be at least 1, not -5"),
        (["--seed", "-1"], r"argument --seed: must be at least 0, not -1"),
        (["--workers", "-1"], r"argument --workers: must be at least 0, not -1"),
        (["--set", "nope=1"], r"--set must name an HWConfig field .*, not 'nope'"),
        (["--config", "huge"], r"config"),
    ],
)
def test_bad_arguments_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        soak.main(argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_an_interrupted_soak_resumes_where_it_stopped(tmp_path, capsys, monkeypatch):
    real = soak.run_chunk

    def interrupted(unit, cfg, n, seed, **kw):  # Ctrl-C during the third chunk
        if seed == 32:
            raise KeyboardInterrupt
        return real(unit, cfg, n, seed, **kw)

    monkeypatch.setattr(soak, "run_chunk", interrupted)
    args = ["--units", "hcu", "--transactions", "900", "--chunk", "300", "--workers", "0"]
    with pytest.raises(KeyboardInterrupt):
        soak.main([*args, "--seed", "30", "-o", str(tmp_path)])
    state = json.loads((tmp_path / "state.json").read_text())
    assert sorted(c["seed"] for c in state["chunks"].values()) == [30, 31]
    monkeypatch.setattr(soak, "run_chunk", real)
    capsys.readouterr()
    assert soak.main([*args, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "base seed 30 (resumed from" in out and "2 chunks done, 1 to run" in out
    assert "[1/1] hcu seed=32 " in out
    assert json.loads((tmp_path / "report.json").read_text())["units"]["hcu"]["seeds"] == [
        30,
        31,
        32,
    ]


def test_soak_coverage(tmp_path, capsys):
    """Functional bins from every passed chunk's golden data; with ``--coverage`` the
    harness built with Verilator line/toggle coverage, its counts merged over the chunks."""
    args = ["--units", "hcu", "--transactions", "1200", "--chunk", "600", "--seed", "3"]
    assert soak.main([*args, "--workers", "0", "--coverage", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^soak: coverage hcu: \d of 7 bins hit; missed: ", out, re.M)
    cov = json.loads((tmp_path / "coverage.json").read_text())["hcu"]
    assert sum(cov["bins"]["hcu.decision"].values()) == 1200
    assert "| hcu |" in (tmp_path / "coverage.md").read_text()
    assert len(list((tmp_path / "vcov" / "hcu").glob("*.dat"))) == 2
    vcov = json.loads((tmp_path / "verilator_coverage.json").read_text())["hcu"]
    assert vcov["chunks"] == vcov["of_chunks"] == 2
    line = vcov["types"]["line"]
    assert 0 < line["hit"] <= line["points"]
    assert re.search(r"^soak: Verilator coverage hcu \(2 chunks\): .*line \d+ of \d+", out, re.M)


def test_kvmu_soak_counts_selections_and_replays_a_failure(tmp_path, capsys, monkeypatch):
    real = soak.run_chunk

    def faulty(unit, cfg, n, seed, **kw):  # the second chunk's expected kv beat 9 is wrong
        return real(unit, cfg, n, seed, **kw, corrupt=9 if seed == 5_000_031 else None)

    monkeypatch.setattr(soak, "run_chunk", faulty)
    args = ["--units", "kvmu", "--transactions", "120", "--chunk", "60", "--seed", "30"]
    assert soak.main([*args, "--workers", "0", "-o", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    # kvmu is the sixth unit of FAST_PORTS: seeds base + 5 * 10**6 + i
    assert re.search(
        r"^soak: \[1/2\] kvmu seed=5000030 profile=\w+ PASS: 60 transactions", out, re.M
    )
    replay = "python -m sim.fast kvmu --seed 5000031 --transactions 60 --config tiny"
    assert f"soak: replay: {replay}" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    kv = rep["units"]["kvmu"]
    assert kv["transactions"] == 120 and kv["seeds"] == [5_000_030, 5_000_031]
    (fail,) = kv["failures"]
    assert fail["first"].startswith("kv[9] @") and fail["replay"] == replay
    # Coverage from the passed chunk: the burst bins, not the cocotb checkers' axi.* bins.
    cov = json.loads((tmp_path / "coverage.json").read_text())
    text = json.dumps(cov)
    assert "whole_run" in text and "split_max_burst" in text and "axi.ar" not in text


def test_plan_gives_the_core_its_own_queries_and_seeds():
    chunks = soak.plan(["hcu", "core"], 2, 1, 40, core=(1100, 500))
    core = [(c["seed"], c["transactions"]) for c in chunks if c["unit"] == "core"]
    stride = soak.UNIT_SEED_STRIDE * soak.SOAK_UNITS.index("core")
    assert core == [(40 + stride, 500), (41 + stride, 500), (42 + stride, 100)]


@pytest.mark.slow
def test_core_soak_on_icarus_checks_every_decode_query(tmp_path, capsys):
    # Base seed 42: the core's chunk seed 6000042 draws the smallest program shape (4 frames
    # of 4 tokens, one context) and the back-pressure profile.
    args = ["--units", "core", "--core-queries", "4", "--core-chunk", "4", "--seed", "42"]
    assert soak.main([*args, "--sim", "icarus", "--workers", "0", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "core seed=6000042 profile=backpressure PASS: 4 transactions" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    core = rep["units"]["core"]
    assert core["transactions"] == 4 and core["mismatches"] == 0 and core["cycles"] > 1000
    (chunk,) = json.loads((tmp_path / "state.json").read_text())["chunks"].values()
    assert "decode=4 " in chunk["line"] and chunk["sim"] == "icarus"
    # Every decode output was compared bit for bit with the model (the bench's records).
    records = json.loads((tmp_path / "core" / "0_6000042" / "report.json").read_text())["records"]
    assert sum(r["kind"] == "decode" and r["match"] for r in records) == 4
    core_cov = json.loads((tmp_path / "coverage.json").read_text())["core"]
    assert core_cov["bins"]["core.status"]["OK"] > 0 and core_cov["bins"]["axi.r"]["4+"] > 0
    assert "decode queries" in (tmp_path / "report.md").read_text()


def test_a_failing_core_chunk_is_reported_with_its_replay(tmp_path, capsys, monkeypatch):
    import sim.kit.runner

    seen = []

    def failing(unit, sim, *, testcase, **kw):  # the build check passes, the program fails
        seen.append((os.environ.get("SEED"), kw.get("env", {}).get("SEED")))
        if testcase == "core_program":
            raise AssertionError(f"{unit} on {sim}: 1 of 1 cocotb tests failed; results ...")

    monkeypatch.setattr(sim.kit.runner, "run_unit", failing)
    # A user's SEED would override the chunk's own in the cocotb runner: hidden, then restored.
    monkeypatch.setenv("SEED", "99")
    args = ["--units", "core", "--core-queries", "7", "--core-chunk", "7", "--seed", "3"]
    assert soak.main([*args, "--workers", "0", "-o", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    replay = "python -m sim.soak_core --seed 6000003 --queries 7 --config tiny --sim verilator"
    assert f"soak: replay: {replay}" in out and "FAIL (1 mismatches)" in out
    (fail,) = json.loads((tmp_path / "report.json").read_text())["units"]["core"]["failures"]
    assert fail["replay"] == replay and "1 of 1 cocotb tests failed" in fail["first"]
    assert seen == [(None, None), (None, "6000003")] and os.environ["SEED"] == "99"
    # More queries keep the chunk already run (the query count is not a soak parameter).
    args[3] = "14"
    assert soak.main([*args, "--workers", "0", "-o", str(tmp_path)]) == 1
    assert "2 chunks, base seed 3 (--seed); 1 chunks done, 1 to run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], r"argument --seed: must be at least 0, not -1"),
        (["--seed", "1", "--queries", "0"], r"argument --queries: must be at least 1, not 0"),
        (["--seed", "1", "--sim", "xsim"], r"--sim must be one of verilator, icarus, not 'xsim'"),
        (["--seed", "1", "--set", "nope=1"], r"--set must name an HWConfig field .*, not 'nope'"),
    ],
)
def test_core_chunk_bad_arguments_name_the_option(argv, message, capsys):
    from sim import soak_core

    with pytest.raises(SystemExit) as exc:
        soak_core.main(argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
