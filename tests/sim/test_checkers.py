"""The protocol checkers (``sim.kit.checkers``) fail broken stream and AXI sequences with a
message naming the port, the cycle and the field, and pass legal ones; they find every
output stream and AXI master of a unit from its Verilog."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from hw.config import preset
from hw.toolpath import find_tool
from sim.benches.tb_checkers import passthrough_verilog
from sim.kit.checkers import axi_outstanding, stream_ports, top_ports
from sim.kit.runner import UNIT_TESTBENCH, build_dir, run_unit

#: cocotb test of sim.benches.tb_checkers → the failure message it must give.
BROKEN = {
    "stream_valid_dropped": r"on assign at cycle \d+: valid fell \(0\) while ready was low",
    "stream_payload_changed": r"on assign at cycle \d+: payload field changed while valid "
    r"and not ready: cluster 0x2 -> 0x7$",
    "ar_valid_dropped": r"on m_axi\.ar at cycle \d+: ARVALID fell \(0\) before READY",
    "ar_addr_changed": r"on m_axi\.ar at cycle \d+: araddr changed from 0x0 to 0x40 while VALID",
    "ar_crosses_4k": r"on m_axi\.ar at cycle \d+: ARADDR 0xff0 \+ 4 beats crosses a 4 KB "
    r"boundary at 0x1000",
    "ar_beyond_max_burst": r"on m_axi\.ar at cycle \d+: ARLEN = 16: 17 beats > max_burst 16",
    "rlast_early": r"on m_axi\.r at cycle \d+: RLAST = 1 on beat 2 of a 4-beat burst",
    "reads_beyond_outstanding": r"on m_axi\.ar at cycle \d+: 5 read bursts in flight > "
    r"outstanding 4",
    "wlast_early": r"on m_axi\.w at cycle \d+: WLAST = 1 on beat 3 of a 4-beat burst",
    "wlast_missing": r"on m_axi\.w at cycle \d+: WLAST = 0 on beat 2 of a 2-beat burst",
}


def failures(results) -> dict[str, str | None]:
    """cocotb test name → its failure message (``None`` when it passed)."""
    out = {}
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        fail = case.find("failure")
        out[case.get("name")] = None if fail is None else fail.get("message")
    return out


@pytest.mark.cocotb
def test_checkers_fail_broken_sequences():
    assert find_tool("iverilog"), "iverilog is not in the venv nor on PATH (run `make setup`)"
    cfg = preset("tiny")
    with pytest.raises(AssertionError, match=rf"{len(BROKEN)} of {len(BROKEN) + 1} cocotb tests"):
        run_unit(
            "hcu",
            "icarus",
            verilog=passthrough_verilog(cfg),
            test_module="sim.benches.tb_checkers",
            tag="checkers",
            env={"DRE_COVERAGE": ""},  # not a unit: no coverage file
        )
    got = failures(build_dir("hcu", "icarus", "tiny", "checkers") / "results.xml")
    assert got.pop("legal_sequences") is None
    assert set(got) == set(BROKEN)
    for name, pattern in BROKEN.items():
        assert got[name] is not None and re.search(r"^protocol violation " + pattern, got[name]), (
            f"{name}: {got[name]!r}"
        )


#: unit → (regex of the generated Verilog, replacement, cocotb test, expected violation): a
#: real DUT broken on purpose, run through its own bench.
MUTANTS = {
    "kv_writer": (
        r"(m_axi__wlast <= )[^;]+;",
        r"\g<1>1'h0;",
        "kv_writer_smoke_back_to_back",
        r"on m_axi\.w at cycle \d+: WLAST = 0 on beat (\d+) of a \1-beat burst",
    ),
    "kvmu": (
        r"(assign m_axi__arlen = )([^;]+);",
        r"\g<1>(\2) + 8'h1;",
        "kvmu_random_stalls_two_contexts",
        r"on m_axi\.ar at cycle \d+: ARLEN = 16: 17 beats > max_burst 16",
    ),
}


@pytest.mark.cocotb
@pytest.mark.parametrize("unit", list(MUTANTS))
def test_checkers_fail_a_mutated_dut(unit):
    """The writer with WLAST stuck at 0, the KVMU with ARLEN one too long: their own benches
    fail on the checker's message."""
    from hw.gen import generate

    assert find_tool("iverilog"), "iverilog is not in the venv nor on PATH (run `make setup`)"
    pattern, repl, test, message = MUTANTS[unit]
    verilog, n = re.subn(pattern, repl, generate(unit, preset("tiny")), count=1)
    assert n == 1, f"{unit}: the mutation point {pattern!r} is not in the Verilog any more"
    with pytest.raises(AssertionError, match="1 of 1 cocotb tests failed"):
        run_unit(
            unit,
            "icarus",
            verilog=verilog,
            test_module=UNIT_TESTBENCH[unit],
            tag="mutant",
            testcase=test,
            env={"DRE_COVERAGE": ""},
        )
    got = failures(build_dir(unit, "icarus", "tiny", "mutant") / "results.xml")
    assert re.search(r"^protocol violation " + message, got[test] or ""), got


def test_ports_found_by_name():
    """Every output stream and the AXI master of the core, from its port list."""
    verilog = passthrough_verilog(preset("tiny"))
    ports = stream_ports(verilog, "hcu")
    assert ports.outputs == {"assign": True}
    assert ports.axi == {"m_axi": (True, True)}
    assert top_ports(verilog, "hcu")["assign__ready"] == "input"
    with pytest.raises(ValueError, match=r"^top must name a module of the Verilog, not 'nope'$"):
        top_ports(verilog, "nope")


def test_kvmu_and_writer_ports_found():
    """The KVMU's three output streams and read master, the writer's ``done`` and write
    master, from their generated Verilog."""
    from hw.gen import generate

    cfg = preset("tiny")
    kvmu = stream_ports(generate("kvmu", cfg), "kvmu")
    assert kvmu.outputs == {"slot": True, "kv": True, "summary": True}
    assert kvmu.axi == {"m_axi": (True, False)}
    writer = stream_ports(generate("kv_writer", cfg), "kv_writer")
    assert writer.outputs == {"done": True}
    assert writer.axi == {"m_axi": (False, True)}


def test_outstanding_is_the_rtl_default():
    assert axi_outstanding() == 4


@pytest.mark.cocotb
def test_checkers_flag_is_checked():
    """A bad ``DRE_CHECKERS`` fails the bench with an error naming it."""
    test = "hcu_ties_lowest_index"
    with pytest.raises(AssertionError, match="1 of 1 cocotb tests failed"):
        run_unit("hcu", "icarus", tag="flag", env={"DRE_CHECKERS": "2"}, testcase=test)
    got = failures(build_dir("hcu", "icarus", "tiny", "flag") / "results.xml")
    assert got == {test: "DRE_CHECKERS must be 0 or 1, not '2'"}
