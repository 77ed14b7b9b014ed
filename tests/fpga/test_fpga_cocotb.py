"""The board system's UART host protocol in cocotb (``sim.benches.tb_fpga``) on the generated
Verilog, on Icarus and Verilator, bit-exact with golden (``sim.kit.runner.run_unit`` reads the
results file: a failed cocotb test fails here)."""

from __future__ import annotations

import pytest

from fpga.gen import SYSTEM_TOP, system_verilog
from hw.config import preset
from hw.gen import _waiver_text, lint
from hw.toolpath import find_tool
from sim.kit.runner import SIMULATORS, run_unit

TB = "sim.benches.tb_fpga"


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", SIMULATORS)
def test_board_system_uart(sim):
    exe = "iverilog" if sim == "icarus" else "verilator"
    assert find_tool(exe), f"{exe} is not in the venv nor on PATH (run `make setup`)"
    result = run_unit(
        SYSTEM_TOP, sim, config="tiny", test_module=TB, verilog=system_verilog(preset("tiny"))
    )
    assert result.tests == 3 and result.failed == 0


def test_system_verilog_lints_clean(tmp_path):
    """``verilator --lint-only -Wall`` with the project's explained waivers (``hw.gen``)."""
    assert find_tool("verilator"), "verilator is not in the venv nor on PATH (run `make setup`)"
    waivers = tmp_path / "waivers.vlt"
    waivers.write_text(_waiver_text())
    src = tmp_path / f"{SYSTEM_TOP}.v"
    src.write_text(system_verilog(preset("tiny")))
    ok, log = lint(src, SYSTEM_TOP, waivers)
    assert ok, log.read_text()
