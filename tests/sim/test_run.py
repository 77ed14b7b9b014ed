"""``make sim`` (``python -m sim.run``): its arguments, and one small end-to-end run."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from hw.config import apply_settings, parse_settings, preset
from sim.run import _check_args, _parser, main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "huge"], "--config must be one of tiny, paper, edge, not 'huge'"),
        (["--sim", "modelsim"], "--sim must be one of icarus, verilator, not 'modelsim'"),
        (["--frames", "0"], "--frames must be a positive integer, not 0"),
        (["--heads", "-1"], "--heads must be a positive integer, not -1"),
        (["--stall", "1"], r"--stall must be in [0, 1), not 1.0"),
        (["--workload", "nope"], "--workload must be one of"),
        (["--set", "lanes=4"], "--set must name an HWConfig field"),
        (["--set", "mac_lanes"], "--set must be FIELD=NUMBER, not 'mac_lanes'"),
        (["--set", "mac_lanes=3"], "mac_lanes must be a power of two"),
        (["--set", "mac_lanes=16.5"], "--set: mac_lanes must be an integer, not 16.5"),
        (["--set", "resv.coverage=nan"], "--set must be FIELD=NUMBER, not 'resv.coverage=nan'"),
        (["--set", "resv.coverage=1.5"], "coverage must be in (0, 1], not 1.5"),
        (["--random-state", "5", "--sim", "icarus"], "--random-state needs --sim verilator"),
        (["--random-state", "0"], "a seed in 1..2**31-1, not 0 on verilator"),
    ],
)
def test_bad_arguments_name_the_parameter(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_makefiles_benchmark_runs_take_their_arguments():
    """``make bench``, ``bench-paper`` and ``bench-goal`` run ``sim.run`` and ``sim.bench_core``
    for tens of minutes: their arguments (workload, ``--set`` values) are checked here, as
    the commands stand in the Makefile (``make -n``), so a renamed preset or field fails
    in seconds, not after the golden benchmark."""
    root = Path(__file__).resolve().parents[2]
    text = subprocess.run(
        ["make", "-n", "bench", "bench-paper", "bench-goal"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("\\\n", " ")
    runs = [
        line.split(" -m sim.run ", 1)[1] for line in text.splitlines() if " -m sim.run " in line
    ]
    cores = [line for line in text.splitlines() if " -m sim.bench_core " in line]
    assert len(runs) == 3 and len(cores) == 3
    for line in runs:
        p = _parser()
        _check_args(p, p.parse_args(shlex.split(line)))
    for line in cores:
        argv = shlex.split(line)
        for flag in ("--set", "--check-set"):
            values = [argv[i + 1] for i, a in enumerate(argv) if a == flag]
            apply_settings(preset("paper"), parse_settings(values))


@pytest.mark.late
@pytest.mark.cocotb
def test_small_run_is_bit_exact(tmp_path, capsys):
    """Two frames of one context, bit-exact, from a random initial state: the core's build
    is the one its Verilator regression runs (``sim_build/core/verilator_tiny_xinit``,
    optimised; the seed is a run argument). Marked ``late``: it runs after that regression
    has built the model, instead of waiting for the build beside it."""
    argv = ["--frames", "2", "--layers", "1", "--heads", "1", "-o", str(tmp_path)]
    assert main([*argv, "--sim", "verilator", "--random-state", "7", "--optimize"]) == 0
    printed = capsys.readouterr().out
    assert "sim.run: PASS" in printed and "| cycles per decode step |" in printed
    s = json.loads((tmp_path / "sim_tiny.summary.json").read_text())
    assert s["queries"] > 0 and s["queries_matched"] == s["queries"]
    assert s["prefills"] > 0 and s["prefills_matched"] == s["prefills"]
    assert s["prefill_rows"] >= 2 * s["prefills"] and s["cycles_per_prefill_row"] > 0
    assert s["counter_checks"] > 0 and s["failures"] == []
    assert s["frames"] == 2 and s["cycles_per_frame"] > 0 and s["cycles_per_decode"] > 0
    assert s["read_bursts"] > 0 and s["bytes_per_burst"] >= s["token_bytes"] > 0
    assert (tmp_path / "sim_tiny.md").read_text().startswith("## make sim")
    # the run's own files beside its report: runs with other -o never share them
    run = tmp_path / "run_tiny_verilator"
    assert (run / "results.xml").exists() and "core_program" in (run / "sim.log").read_text()
