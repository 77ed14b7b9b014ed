"""The fast harness on Icarus (``sim.fast.icarus``): the generated Verilog testbench checks
the same golden files as the C++ Verilator harness, and its checks can fail."""

from __future__ import annotations

import re

import pytest

from hw.config import preset
from sim import soak
from sim.fast import PROFILES, make_chunk, run_chunk
from sim.fast.__main__ import main as fast_main
from sim.fast.build import FAST_PORTS
from sim.fast.icarus import build_icarus, run_icarus
from sim.fast.run import run_prepared
from sim.fast.stimulus import write_chunk

CFG = preset("tiny")


@pytest.mark.parametrize("unit", list(FAST_PORTS))
def test_icarus_passes_with_stalls_and_a_corrupted_beat_fails(unit):
    verdict, _ = run_chunk(
        unit, CFG, 60, 11, config="tiny", profile=PROFILES["heavy"], sim="icarus"
    )
    assert verdict.passed and verdict.transactions == 60 and verdict.sim == "icarus", verdict.line
    verdict, chunk = run_chunk(unit, CFG, 60, 11, config="tiny", corrupt=3, sim="icarus")
    assert not verdict.passed and verdict.mismatches == 1, verdict.line
    first = next(iter(chunk.outputs))
    assert verdict.first.startswith(f"{first}[3] @"), verdict.first


@pytest.mark.parametrize("unit", ["hcu", "wtu_grid", "kvmu"])
def test_icarus_and_verilator_agree_to_the_cycle_without_stalls(unit):
    """The same design and golden chunk, no pauses: both harnesses count the same cycles."""
    none = PROFILES["none"]
    icarus, _ = run_chunk(unit, CFG, 200, 4, config="tiny", profile=none, sim="icarus")
    verilator, _ = run_chunk(unit, CFG, 200, 4, config="tiny", profile=none)
    assert icarus.passed and verilator.passed
    assert icarus.cycles == verilator.cycles > 0
    # The pauses are real: idle sources and stalled sinks stretch the same chunk.
    for name in ("starved", "backpressure", "bursty"):
        paused, _ = run_chunk(
            unit, CFG, 200, 4, config="tiny", profile=PROFILES[name], sim="icarus"
        )
        assert paused.passed and paused.cycles > 1.1 * icarus.cycles, (name, paused.line)


def test_icarus_end_state_and_beat_count_checks_fail(tmp_path):
    vvp = build_icarus("hcu", CFG, config="tiny")
    profile = PROFILES["light"]

    def run(chunk):
        write_chunk(tmp_path, chunk)
        return run_icarus(vvp, tmp_path, seed=5, profile=profile, drain=chunk.drain, timeout=2000)

    chunk = make_chunk("hcu", CFG, 300, 5)
    occ = next(line for line in chunk.end if line.startswith("scalar occupancy"))
    chunk.end[chunk.end.index(occ)] = f"scalar occupancy {int(occ.split()[2]) + 1}"
    chunk.end[-1] = " ".join([*chunk.end[-1].split()[:3], "999"])  # the last count read
    rc, out = run(chunk)
    assert rc == 1 and "mismatches=2 " in out and "first: occupancy: expected" in out
    chunk = make_chunk("hcu", CFG, 300, 5)
    chunk.outputs["assign"].append(chunk.outputs["assign"][-1])  # one beat too many expected
    rc, out = run(chunk)
    assert rc == 1 and "first: timeout: no handshake" in out and "assign 300/301" in out
    chunk = make_chunk("hcu", CFG, 300, 5)
    chunk.outputs["assign"].pop()  # one beat too few expected: the last one is extra
    rc, out = run(chunk)
    assert rc == 1 and "first: assign[299]" in out and "extra beat" in out


def test_icarus_refuses_what_it_does_not_run():
    with pytest.raises(ValueError, match=r"^unit must be one of hcu, .*, kvmu, not 'x'$"):
        build_icarus("x", CFG)
    chunk = make_chunk("hcu", CFG, 10, 1)
    with pytest.raises(ValueError, match=r"^times and coverage need sim='verilator'"):
        run_prepared("hcu", CFG, chunk, 1, times=True, sim="icarus")
    with pytest.raises(ValueError, match=r"^sim must be one of verilator, icarus, not 'vcs'$"):
        run_prepared("hcu", CFG, chunk, 1, sim="vcs")


def test_cli_on_icarus_replays_with_the_simulator(capsys):
    args = ["wtu", "--seed", "3", "--transactions", "20", "--sim", "icarus"]
    assert fast_main([*args, "--corrupt", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAST FAIL unit=wtu seed=3 transactions=20" in out
    assert (
        "replay: python -m sim.fast wtu --seed 3 --transactions 20 --config tiny --sim icarus"
        in out
    )
    with pytest.raises(SystemExit):
        fast_main(["wtu", "--sim", "vcs"])
    assert "--sim must be one of verilator, icarus, not 'vcs'" in capsys.readouterr().err


def test_soak_on_icarus(tmp_path, capsys):
    out = tmp_path / "soak"
    argv = ["--sim", "icarus", "--units", "hcu,topk", "--transactions", "80", "--chunk", "40"]
    assert soak.main([*argv, "--seed", "9", "--workers", "0", "-o", str(out)]) == 0
    rep = (out / "report.md").read_text()
    assert "simulator: icarus (sim.fast.icarus Verilog testbench)" in rep
    assert re.search(r"\| hcu \| 80 \| 2 \|", rep) and re.search(r"\| topk \| 80 \| 2 \|", rep)
    assert "soak: PASS" in capsys.readouterr().out
    for bad, message in [
        (["--units", "kvmu,x"], r"--units must list units of hcu, .*, kvmu, core, not 'x'"),
        (["--coverage"], r"--coverage needs --sim verilator"),
    ]:
        with pytest.raises(SystemExit):
            soak.main(["--sim", "icarus", *bad, "-o", str(out)])
        assert re.search(message, capsys.readouterr().err)
