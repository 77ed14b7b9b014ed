"""FPGAConfig, the PLL solvers and the protocol sizes."""

from __future__ import annotations

import pytest

from fpga.config import FPGAConfig, sim_config
from fpga.pll import ecp5_pll, ice40_pll
from fpga.protocol import Op, info_value, pack, protocol, unpack
from hw.config import PRESETS, preset

TINY = preset("tiny")


def test_uart_divisor_and_depth():
    f = FPGAConfig(hw=TINY, clock_hz=50e6)
    assert f.uart_divisor == 434 and f.depth == 256
    assert FPGAConfig(hw=preset("paper"), clock_hz=50e6).depth == 4096
    assert sim_config(TINY).uart_divisor == 8 and sim_config(TINY).depth == 16


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"baud": 20_000_000}, r"^baud must be at most clock_hz / 4 \(12500000\), not 20000000$"),
        (
            {"clock_hz": 10e6, "baud": 1_900_000},
            r"^baud must be within 2% of clock_hz / an integer",
        ),
        ({"buffer_depth": 8}, r"^buffer_depth must be 0 or in 16\.\.65535 \(a WTU row"),
        ({"clock_hz": -1.0}, r"^clock_hz must be a positive number, not -1\.0$"),
    ],
)
def test_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        FPGAConfig(**{"hw": TINY, "clock_hz": 50e6, **changes})


def test_hw_must_be_an_hwconfig():
    with pytest.raises(TypeError, match=r"^hw must be an HWConfig, not 'tiny'$"):
        FPGAConfig(hw="tiny", clock_hz=50e6)


def test_ecp5_pll():
    s = ecp5_pll(25e6, 50e6)
    d = s.dividers
    assert s.fout_hz == 50e6 == 25e6 / d["CLKI_DIV"] * d["CLKFB_DIV"]
    assert 400e6 <= s.fout_hz * d["CLKOP_DIV"] <= 800e6


def test_ice40_pll():
    s = ice40_pll(12e6, 16e6)
    d = s.dividers
    assert s.fout_hz == 12e6 / (d["DIVR"] + 1) * (d["DIVF"] + 1) / 2 ** d["DIVQ"] == 15.9375e6
    assert 533e6 <= s.fout_hz * 2 ** d["DIVQ"] <= 1066e6
    with pytest.raises(ValueError, match=r"^target must be reachable by the iCE40 PLL"):
        ice40_pll(1e6, 16e6)


@pytest.mark.parametrize("name", list(PRESETS))
def test_protocol_sizes(name):
    f = FPGAConfig(hw=preset(name), clock_hz=50e6)
    p = protocol(f)
    assert p.arg_bytes(Op.INFO) == 0 and p.arg_bytes(Op.LOAD) == 2
    assert p.arg_bytes(Op.RUN_WTU) == 2 + p.cmd_bytes
    raw = pack(p.info, info_value(f))
    assert len(raw) == p.info_bytes
    assert int(unpack(p.info, raw).max_clusters) == f.hw.max_clusters
