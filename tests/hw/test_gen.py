"""hw.gen: the generation entry point used by the Makefile, the tests and synthesis."""

from __future__ import annotations

import json
import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.config import preset
from hw.gen import LINT_WAIVERS, TOPS, generate, main, strip_initial_state, too_large


def test_generate_names_the_top_module_after_the_unit():
    text = generate("hcu", preset("tiny"))
    assert re.search(r"^module hcu\(", text, re.M)
    assert "tokens__valid" in text and "assign__payload" in text


def test_generate_rejects_unknown_units():
    with pytest.raises(
        ValueError, match=rf"^name must be one of {re.escape(', '.join(map(repr, TOPS)))}, not 'x'$"
    ):
        generate("x", preset("tiny"))


@pytest.mark.slow
def test_all_writes_every_unit_core_and_manifest_and_lints(tmp_path, capsys):
    assert main(["--config", "tiny", "--all", "-o", str(tmp_path)]) == 0
    for name in TOPS:
        assert (tmp_path / f"{name}.v").stat().st_size > 1000
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"] == "tiny"
    assert {u: e["lint"] for u, e in manifest["units"].items()} == dict.fromkeys(TOPS, "ok")
    core = (tmp_path / "vrex_dre.core").read_text()
    assert core.startswith("CAPI=2:") and all(f"- {n}.v" in core for n in TOPS)
    waivers = (tmp_path / "lint_waivers.vlt").read_text()
    # Every waiver is explained next to its rule.
    for rule in LINT_WAIVERS:
        assert f"// {rule}: " in waivers and f"lint_off -rule {rule}" in waivers
    assert "lint ok" in capsys.readouterr().out


def test_single_top(tmp_path):
    out = tmp_path / "sub" / "wtu.v"
    assert main(["--config", "tiny", "--top", "wtu", "-o", str(out)]) == 0
    assert re.search(r"^module wtu\(", out.read_text(), re.M)


def test_cli_rejects_unknown_preset(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--config", "huge", "--top", "hcu", "-o", str(tmp_path / "x.v")])
    assert "config must be one of 'tiny', 'paper', 'edge', not 'huge'" in capsys.readouterr().err


class _RamRomReg(wiring.Component):
    def __init__(self):
        super().__init__({"addr": In(3), "ram_out": Out(8), "rom_out": Out(8), "reg_out": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = Memory(shape=8, depth=8, init=[])
        m.submodules.rom = rom = Memory(shape=8, depth=8, init=[0xA5] * 8)
        wr, rd, rrd = ram.write_port(), ram.read_port(), rom.read_port()
        reg = Signal(8, init=0x3C)
        m.d.sync += reg.eq(reg + 1)
        m.d.comb += [
            wr.addr.eq(self.addr),
            wr.data.eq(reg),
            wr.en.eq(1),
            rd.addr.eq(self.addr),
            rrd.addr.eq(self.addr),
            self.ram_out.eq(rd.data),
            self.rom_out.eq(rrd.data),
            self.reg_out.eq(reg),
        ]
        return m


def test_strip_initial_state_keeps_rom_contents_only():
    text = rtlil.convert(_RamRomReg(), name="top")
    assert text.count("$meminit_v2") == 2 and "attribute \\init " in text
    out = strip_initial_state(text)
    assert out.count("$meminit_v2") == 1 and "attribute \\init " not in out
    assert re.search(r'cell \$meminit_v2 [^\n]*\n\s+parameter \\MEMID "\\\\rom"', out)
    # The stripped design still converts; the RTL of the RAM, ROM and register is untouched.
    assert out.count("$memwr_v2") == text.count("$memwr_v2") == 1
    assert out.count("$memrd_v2") == text.count("$memrd_v2")


def test_generate_without_initial_state():
    with_init = generate("kvmu", preset("tiny"))
    bare = generate("kvmu", preset("tiny"), initial_state=False)
    assert re.search(r"^module kvmu\(", bare, re.M)
    # Registers lose their declaration initialisers (Yosys' own $auto flags stay).
    init = re.compile(r"^\s*reg (?!\\\$auto).* = ", re.M)
    assert init.search(with_init) and not init.search(bare)


def test_whole_preset_runs_leave_out_arrays_too_large_to_elaborate():
    assert too_large("mac_array", preset("tiny")) is None
    reason = too_large("mac_array", preset("paper"))
    assert reason and "mac_array 64 x 64 is left out" in reason
    assert too_large("core", preset("edge")) is None  # (32 + 64 + 128) x 16 MACs
    assert too_large("core", preset("paper")) is None  # 14 336 MACs: make synth takes it
    reason = too_large("core", preset("paper").replace(mac_lanes=128))
    assert reason and "arrays have 28672 MACs" in reason and "--top core" in reason
    assert too_large("tiled_attention", preset("tiny")) is None  # (4 + 16) x 4 MACs
    reason = too_large("tiled_attention", preset("paper"))
    assert reason and "two MAC arrays have 12288 MACs" in reason
