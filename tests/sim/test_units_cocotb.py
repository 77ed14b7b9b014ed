"""cocotb regressions of the generated Verilog of every unit (``sim.kit.runner.UNIT_TESTBENCH``:
the DRE units, the MAC tree and the KVMU) on Icarus and Verilator.

One build per (unit, simulator) in sim_build/<unit>/<sim>_tiny, all the unit's cocotb tests
in one simulator run; pytest-xdist runs the pairs in parallel. A failure names the results
file, the log and the waveform (``WAVES=1`` writes one on either simulator).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.toolpath import find_tool
from sim.coverage import Coverage
from sim.kit.runner import (
    SESSION_SEED,
    SIMULATORS,
    UNIT_TESTBENCH,
    build_dir,
    replay_command,
    run_seed,
    run_unit,
)

ROOT = Path(__file__).resolve().parents[2]


def cocotb_tests(module: str) -> list[str]:
    """Names of the ``@cocotb.test()`` coroutines of a testbench module (read, not run)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if ast.unparse(target) == "cocotb.test":
                    names.append(node.name)
    return names


#: Units whose regression takes a minute or more (``tests/conftest.py`` starts them first).
SLOW_UNITS = {"core", "tiled_attention"}
#: Units whose Verilator regression runs from a random initial state (``run_unit``'s
#: ``random_state``: no memory initialisers, every register and RAM word random), and its
#: seed. The core's Verilator build is the slowest of the suite (~3 min of C++): it is built
#: once, this way, instead of once with initialisers and once without.
RANDOM_STATE_UNITS = {"core"}
RANDOM_STATE = 12345
#: Units whose Verilator model is compiled with optimisation (``run_unit``'s ``optimize``):
#: the core's regression simulates ~60 K cycles, which its -O0 model runs 3x slower
#: (measured: ``core_program`` 18.9 s against 6.4 s) than the 50 s the optimised build adds.
OPTIMIZED_UNITS = {"core"}
#: Where the parameter variants of a unit run (the tests below ``test_unit_regression``):
#: Icarus, the four-state simulator, whose build takes seconds where Verilator's C++ takes
#: 10-60 s. Every unit runs on both simulators at the tiny preset in ``test_unit_regression``.
VARIANT_SIMS = ("icarus",)


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize(
    "unit",
    [pytest.param(u, marks=pytest.mark.slow) if u in SLOW_UNITS else u for u in UNIT_TESTBENCH],
)
def test_unit_regression(unit, sim):
    """Every cocotb test of the unit's testbench. The core's Verilator run starts from random
    registers and RAM words (``RANDOM_STATE_UNITS``), optimised (``OPTIMIZED_UNITS``): one
    build serves the regression, the random-state check and ``sim.run``'s test
    (``tests/sim/test_run.py``)."""
    exe = "iverilog" if sim == "icarus" else "verilator"
    assert find_tool(exe), f"{exe} is not in the venv nor on PATH (run `make setup`)"
    random_state = RANDOM_STATE if sim == "verilator" and unit in RANDOM_STATE_UNITS else None
    optimize = sim == "verilator" and unit in OPTIMIZED_UNITS
    result = run_unit(unit, sim, config="tiny", random_state=random_state, optimize=optimize)
    # Every cocotb test of the module ran (none skipped or filtered away) and passed.
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH[unit])) > 0
    assert result.failed == 0
    if unit == "core":
        # The error paths reached and matched the model (tb_core's core_bus_errors, and
        # core_context_full, skipped on Icarus), AWREADY held low 4+ cycles by both, a
        # prefetched switch and a clean (core_interleaved_contexts).
        missed = set(Coverage.load(result.results_xml.parent / "coverage.json").missed())
        want = {("core.status", "BUS"), ("axi.aw", "4+")}
        want |= {("core.context", "prefetched"), ("core.context", "clean")}
        if sim == "verilator":
            want.add(("core.status", "FULL"))
        assert not want & missed, f"missed {sorted(want & missed)}"


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
@pytest.mark.parametrize("batch", [2, 8])
def test_hcu_batch_regression(batch, sim):
    """The HCU regression with B-token batches (``hcu_batch``)."""
    result = run_unit("hcu", sim, config="tiny", overrides={"hcu_batch": batch}, tag=f"b{batch}")
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["hcu"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
@pytest.mark.parametrize("lanes", [1, 2])
def test_wtu_grid_lanes_regression(lanes, sim):
    """The grid WTU regression at 1 and 2 clusters per beat (``wtu_lanes``; the tiny
    preset's 4 lanes run in ``test_unit_regression``)."""
    result = run_unit(
        "wtu_grid", sim, config="tiny", overrides={"wtu_lanes": lanes}, tag=f"l{lanes}"
    )
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["wtu_grid"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
@pytest.mark.parametrize("pairs", [1, 8])
def test_rope_pairs_regression(pairs, sim):
    """The RoPE regression at one pair per cycle and at every pair in one cycle
    (``rope_pairs``; the tiny preset's 2 run in ``test_unit_regression``)."""
    result = run_unit("rope", sim, config="tiny", overrides={"rope_pairs": pairs}, tag=f"p{pairs}")
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["rope"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
def test_quickselect_one_lane_regression(sim):
    """The quick-select regression at one cluster per beat (``wtu_lanes = 1``,
    ``DRELayouts.cluster_score``; the tiny preset's 4 lanes per beat run in
    ``test_unit_regression``)."""
    result = run_unit("quickselect", sim, config="tiny", overrides={"wtu_lanes": 1}, tag="l1")
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["quickselect"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
@pytest.mark.parametrize("tokens", [1, 2])
def test_tile_softmax_tokens_regression(tokens, sim):
    """The tile softmax regression at 1 and 2 tokens per tile (``tile_tokens``; the tiny
    preset's 4 run in ``test_unit_regression``)."""
    result = run_unit(
        "tile_softmax", sim, config="tiny", overrides={"tile_tokens": tokens}, tag=f"t{tokens}"
    )
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["tile_softmax"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
def test_tiled_attention_one_buffer_regression(sim):
    """The tiled attention regression with single-buffered arrays (``tile_buffers`` 1; the
    tiny preset's double buffers run in ``test_unit_regression``)."""
    result = run_unit(
        "tiled_attention", sim, config="tiny", overrides={"tile_buffers": 1}, tag="b1"
    )
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["tiled_attention"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", VARIANT_SIMS)
@pytest.mark.parametrize(
    "unit",
    ["mac_tree", "mac_array", "tiled_attention", pytest.param("core", marks=pytest.mark.slow)],
)
def test_mac_in_register_regression(unit, sim):
    """The regressions of every unit with MAC trees, their operands registered
    (``mac_in_register`` 1, the paper preset's; the tiny preset multiplies them as they
    arrive): one more cycle in every tree, the same outputs."""
    result = run_unit(unit, sim, config="tiny", overrides={"mac_in_register": 1}, tag="inreg")
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH[unit])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
def test_core_hcu_batch_regression(sim):
    """The core's regression with its aging in HCU batches (``hcu_batch`` 4: an INGEST's
    aged tokens share the HCU's table search, four at a time; the presets age one at a
    time): the same statuses, outputs and counters, with random stalls."""
    result = run_unit("core", sim, config="tiny", overrides={"hcu_batch": 4}, tag="batch4")
    assert result.tests == len(cocotb_tests(UNIT_TESTBENCH["core"])) > 0
    assert result.failed == 0


@pytest.mark.cocotb
def test_tile_softmax_bench_fails_on_a_corrupted_expectation():
    """The tile softmax scoreboard is live: one flipped bit in one expected ``l``
    (``TILE_CORRUPT``) fails the run, and the results file says which test failed."""
    assert find_tool("iverilog"), "iverilog is not in the venv nor on PATH (run `make setup`)"
    with pytest.raises(AssertionError, match=r"tile_softmax on icarus: 1 of 1 cocotb tests failed"):
        run_unit(
            "tile_softmax",
            "icarus",
            tag="corrupt",
            testcase="ts_random_timing",
            env={"TILE_CORRUPT": "17"},
        )
    log = (ROOT / "sim_build/tile_softmax/icarus_tiny_corrupt/sim.log").read_text()
    assert "tile_softmax.result: got" in log and "1 mismatches" in log


@pytest.mark.cocotb
def test_icarus_waveform_in_the_run_directory(tmp_path, monkeypatch):
    """``WAVES=1`` on Icarus: each run writes its waveform (and its GTKWave file) in its own
    run directory (``+dumpfile_path``), so two runs of one build never share one."""
    monkeypatch.setenv("WAVES", "1")
    for run in ("a", "b"):
        result = run_unit(
            "tile_softmax",
            "icarus",
            tag="waves",
            testcase="ts_random_timing",
            run_dir=tmp_path / run,
        )
        wave = result.waveform
        assert wave == tmp_path / run / "tile_softmax.fst" and wave.stat().st_size > 0
        assert wave.with_suffix(".gtkw").exists()
    assert not (build_dir("tile_softmax", "icarus", "tiny", "waves") / "tile_softmax.fst").exists()


@pytest.mark.cocotb
def test_core_context_full_on_icarus():
    """FULL on Icarus too: ``core_context_full`` with 64-token contexts (``token_id_bits``
    6; the tiny preset's 1024-token one, ~37 K cycles, runs on Verilator in the core's
    regression and is skipped on Icarus)."""
    result = run_unit(
        "core",
        "icarus",
        config="tiny",
        overrides={"token_id_bits": 6},
        tag="full",
        testcase="core_context_full",
    )
    assert result.tests == 1 and result.failed == 0
    missed = Coverage.load(build_dir("core", "icarus", "tiny", "full") / "coverage.json").missed()
    assert ("core.status", "FULL") not in set(missed)


def test_testbenches_define_tests():
    for module in UNIT_TESTBENCH.values():
        assert len(cocotb_tests(module)) >= 3, module


@pytest.mark.cocotb
def test_random_initial_state_kvmu():
    """Registers and RAM words start random (Verilator ``--x-initial unique``, no memory
    initialisers in the Verilog): the KVMU's whole regression is still bit-exact, so it
    relies on its reset and its own writes only, as silicon must (the core's Verilator
    regression runs this way: ``RANDOM_STATE_UNITS``)."""
    tests = cocotb_tests(UNIT_TESTBENCH["kvmu"])
    result = run_unit("kvmu", "verilator", config="tiny", random_state=RANDOM_STATE)
    assert result.tests == len(tests) > 0 and result.failed == 0
    assert result.results_xml.parent.name == "verilator_tiny_xinit"


def test_random_initial_state_needs_verilator():
    with pytest.raises(ValueError, match="random_state needs sim='verilator'"):
        run_unit("hcu", "icarus", random_state=1)


# ---- seeds: every run has one, printed, and a failure says how to replay it --------------


def test_run_seed_order(monkeypatch):
    """The user's SEED, else the caller's pinned one, else the CI session's, else 1."""
    monkeypatch.delenv("SEED", raising=False)
    monkeypatch.delenv(SESSION_SEED, raising=False)
    assert run_seed() == (1, "default")
    monkeypatch.setenv(SESSION_SEED, "99")
    assert run_seed()[0] == 99 and "CI is set" in run_seed()[1]
    assert run_seed({"SEED": "5"}) == (5, "pinned by the caller")
    monkeypatch.setenv("SEED", "7")
    assert run_seed({"SEED": "5"}) == (7, "SEED")
    monkeypatch.setenv("SEED", "x")
    with pytest.raises(ValueError, match=r"^SEED must be a non-negative integer, not 'x'$"):
        run_seed()


def test_replay_command_names_this_test():
    assert replay_command(3) == (
        "SEED=3 python -m pytest -n 0 "
        "tests/sim/test_units_cocotb.py::test_replay_command_names_this_test"
    )


@pytest.mark.cocotb
def test_a_failing_run_names_its_seed(monkeypatch, capsys):
    """A run that fails (here: no cocotb test matches) prints its SEED and quotes it with
    the replay command in the error."""
    assert find_tool("iverilog"), "iverilog is not in the venv nor on PATH (run `make setup`)"
    monkeypatch.delenv("SEED", raising=False)
    with pytest.raises(AssertionError, match=r"; SEED=17; replay: SEED=17 python -m pytest -n 0 "):
        run_unit("hcu", "icarus", tag="seed", testcase="no_such_test", env={"SEED": "17"})
    assert "hcu on icarus: SEED=17 (pinned by the caller)" in capsys.readouterr().out


def test_ci_session_draws_and_prints_a_seed(tmp_path):
    """With CI set and no SEED, the session header shows the random seed it drew."""
    env = {k: v for k, v in os.environ.items() if k not in ("SEED", SESSION_SEED, "CI")}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-n", "0"]
    argv.append(f"{Path(__file__)}::test_testbenches_define_tests")
    out = subprocess.run(
        argv, env={**env, "CI": "1"}, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    seed = re.search(r"^cocotb SEED=(\d+) \(random, VREX_SESSION_SEED: CI is set", out, re.M)
    assert seed and int(seed.group(1)) >= 1, out
    local = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True).stdout
    assert "cocotb SEED=1 (default)" in local
