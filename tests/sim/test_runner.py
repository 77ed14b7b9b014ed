"""sim.kit.runner: what it shows while a simulation runs."""

from __future__ import annotations

import time

from sim.kit import runner


def test_progress_lines_are_echoed_while_the_simulator_runs(tmp_path, capsys):
    """``sim.kit.runner`` prints the last tagged line the simulator wrote to its log since it
    last looked, complete lines only, and the rest not at all."""
    log = tmp_path / "sim.log"
    with runner._echo_progress(log, "core on icarus", period=0.01):
        time.sleep(0.05)  # no log yet
        with log.open("w") as fh:
            fh.write(f"INFO cocotb {runner.PROGRESS_TAG} command 1/3 (reset) done\n")
            fh.write(f"INFO cocotb {runner.PROGRESS_TAG} command 2/3 (frame) done\n")
            fh.write("INFO cocotb.core.m_axi Read burst\n")
            fh.write(f"INFO cocotb {runner.PROGRESS_TAG} command 3/3 (pre")
            fh.flush()
            time.sleep(0.1)
            assert capsys.readouterr().out == (
                "[sim.kit.runner] core on icarus: command 2/3 (frame) done\n"
            )
            fh.write("fill) done\n")
    assert (
        capsys.readouterr().out == "[sim.kit.runner] core on icarus: command 3/3 (prefill) done\n"
    )
