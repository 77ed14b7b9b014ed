"""hw.units: the one unit registry that generation, simulation and synthesis read."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring

import hw.gen
import sim.kit.runner
import synth.activity
import synth.flow
from hw.config import preset
from hw.units import UNITS, Unit, unit, units_with_testbench

ROOT = Path(__file__).resolve().parents[2]

#: Units that take seconds to elaborate at the tiny preset; ``tests/hw/test_gen.py`` generates
#: them (``--all``) and their own tests elaborate them.
EXPENSIVE = {"tiled_attention", "core"}


def _resolve(dotted: str) -> object:
    """The object a dotted ``module.attr`` name refers to (the longest importable module)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if importlib.util.find_spec(module) is not None:
            obj = importlib.import_module(module)
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
    raise ImportError(dotted)


def _cocotb_tests(module: str) -> list[str]:
    """The ``@cocotb.test()`` coroutines of a testbench module, read without importing cocotb
    (its import outside a simulator is not the testbench's contract)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.AsyncFunctionDef)
        and any(
            ast.unparse(d.func if isinstance(d, ast.Call) else d) == "cocotb.test"
            for d in node.decorator_list
        )
    ]


@pytest.mark.parametrize("name", [n for n in UNITS if n not in EXPENSIVE])
def test_every_cheap_unit_elaborates_at_tiny(name):
    cfg = preset("tiny")
    dut = UNITS[name].component(cfg)
    assert isinstance(dut, wiring.Component)
    Fragment.get(dut, None)


@pytest.mark.parametrize("name", list(UNITS))
def test_every_entry_resolves(name):
    u = UNITS[name]
    assert u.name == name and u.description.strip()
    if u.testbench is not None:
        assert importlib.util.find_spec(u.testbench) is not None, u.testbench
        assert len(_cocotb_tests(u.testbench)) >= 3, u.testbench
    for ref in u.golden:
        assert callable(_resolve(ref)), ref
    assert u.stimulus in synth.activity.STIMULI


def test_only_the_dre_has_no_unit_testbench():
    # The DRE is the HCU and the WTU joined: their benches and the core's cover it.
    assert [n for n, u in UNITS.items() if u.testbench is None] == ["dre"]


def test_every_flow_reads_the_registry():
    assert list(hw.gen.TOPS) == list(UNITS)
    assert all(hw.gen.TOPS[n] is u.component for n, u in UNITS.items())
    assert units_with_testbench() == sim.kit.runner.UNIT_TESTBENCH
    assert {n: u.description for n, u in UNITS.items()} == synth.flow.EXPECTED_UNITS
    # every stimulus is used by a unit, so none is dead code
    assert set(synth.activity.STIMULI) == {u.stimulus for u in UNITS.values()}


def test_too_large_comes_from_the_entry():
    paper = preset("paper")
    assert hw.gen.too_large("mac_array", paper) == UNITS["mac_array"].too_large(paper)
    assert hw.gen.too_large("hcu", paper) is None and UNITS["hcu"].too_large is None


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        UNITS["x"] = UNITS["hcu"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNITS["hcu"].name = "y"  # type: ignore[misc]


_LISTING = ", ".join(map(repr, UNITS))


def test_unknown_name_names_the_parameter_and_lists_the_units():
    with pytest.raises(ValueError, match=rf"^name must be one of {re.escape(_LISTING)}, not 'x'$"):
        unit("x")
    with pytest.raises(ValueError, match=rf"^top must be one of {re.escape(_LISTING)}, not 3$"):
        unit(3, param="top")  # type: ignore[arg-type]
    assert unit("hcu") is UNITS["hcu"]


def test_each_flow_refuses_an_unknown_unit():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match=rf"^name must be one of {re.escape(_LISTING)}, not 'x'$"):
        hw.gen.generate("x", cfg)
    with pytest.raises(ValueError, match=r"^name must be one of 'hcu', .*, not 'x'$"):
        hw.gen.too_large("x", cfg)
    benches = ", ".join(map(repr, units_with_testbench()))
    with pytest.raises(ValueError, match=rf"^unit must be one of {re.escape(benches)}, not 'dre'$"):
        sim.kit.runner.run_unit("dre", "icarus")


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"name": "a-b"}, ValueError, r"^name must be a Python identifier, not 'a-b'$"),
        ({"component": 3}, TypeError, r"^component must be callable, not 3$"),
        ({"description": " "}, ValueError, r"^description must be a non-empty string, not ' '$"),
        (
            {"testbench": "tb"},
            ValueError,
            r"^testbench must be a dotted module name or None, not 'tb'$",
        ),
        (
            {"golden": ("numpy.sum",)},
            ValueError,
            r"^golden must be a non-empty tuple of dotted golden\.\* names, not \('numpy\.sum',\)$",
        ),
        ({"golden": ()}, ValueError, r"^golden must be a non-empty tuple"),
        ({"stimulus": ""}, ValueError, r"^stimulus must be a non-empty string, not ''$"),
        ({"too_large": 1}, TypeError, r"^too_large must be callable or None, not 1$"),
    ],
)
def test_entries_are_checked_when_declared(changes, error, message):
    with pytest.raises(error, match=message):
        dataclasses.replace(UNITS["hcu"], **changes)


def test_a_new_entry_is_one_declaration():
    entry = Unit(
        name="hcu2",
        component=UNITS["hcu"].component,
        description="a second HCU",
        testbench="sim.benches.tb_hcu",
        golden=("golden.resv.cluster_online",),
    )
    assert entry.stimulus == "ports" and entry.too_large is None
