"""FPGAConfig: the parameters of a board build on top of ``HWConfig``.

The DRE's own parameters stay in ``cfg.hw`` (``hw.config.HWConfig``); this frozen dataclass
adds only what the board system needs: the system clock it runs at (the PLL's output), the
UART baud rate and the depth of the bridge's record buffers. Widths are derived here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from golden.checks import check_float, check_int
from hw.config import HWConfig

__all__ = ["MAX_BAUD_ERROR", "MIN_UART_DIVISOR", "FPGAConfig", "sim_config"]

#: Smallest clocks per UART bit: the receiver samples the middle of a bit.
MIN_UART_DIVISOR = 4
#: Largest relative baud-rate error of the integer clock divider (8N1 tolerates ~4 %).
MAX_BAUD_ERROR = 0.02


@dataclass(frozen=True, kw_only=True)
class FPGAConfig:
    """A board system: the DRE of ``hw`` behind the UART host bridge."""

    #: The DRE's configuration (a ``hw.config`` preset, possibly with overrides).
    hw: HWConfig
    #: Frequency of the system clock in Hz (what the PLL makes from the oscillator).
    clock_hz: float
    #: UART baud rate (8 data bits, no parity, 1 stop bit).
    baud: int = 115200
    #: Records in each of the bridge's two buffers (input and output); 0 = the default,
    #: ``max(256, max_clusters)``. A WTU row must fit, so at least ``max_clusters``.
    buffer_depth: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.hw, HWConfig):
            raise TypeError(f"hw must be an HWConfig, not {self.hw!r}")
        check_float("clock_hz", self.clock_hz, positive=True)
        check_int("baud", self.baud, 1)
        check_int("buffer_depth", self.buffer_depth, 0, 0xFFFF)
        mc = self.hw.max_clusters
        if self.buffer_depth and self.buffer_depth < mc:
            raise ValueError(
                f"buffer_depth must be 0 or in {mc}..65535 (a WTU row of max_clusters must "
                f"fit), not {self.buffer_depth!r}"
            )
        if self.depth > 0xFFFF:
            raise ValueError(f"hw.resv.max_clusters must be at most 65535 here, not {mc!r}")
        divisor = round(self.clock_hz / self.baud)
        if divisor < MIN_UART_DIVISOR:
            raise ValueError(
                f"baud must be at most clock_hz / {MIN_UART_DIVISOR} "
                f"({self.clock_hz / MIN_UART_DIVISOR:.0f}), not {self.baud!r}"
            )
        error = abs(self.clock_hz / divisor - self.baud) / self.baud
        if error > MAX_BAUD_ERROR:
            raise ValueError(
                f"baud must be within {MAX_BAUD_ERROR:.0%} of clock_hz / an integer "
                f"(clock_hz {self.clock_hz:.0f} gives {error:.1%}), not {self.baud!r}"
            )

    def replace(self, **changes: Any) -> FPGAConfig:
        return dataclasses.replace(self, **changes)

    @property
    def uart_divisor(self) -> int:
        """System clocks per UART bit."""
        return round(self.clock_hz / self.baud)

    @property
    def depth(self) -> int:
        """Records per bridge buffer."""
        return self.buffer_depth or max(256, self.hw.max_clusters)


def sim_config(hw: HWConfig) -> FPGAConfig:
    """The system the cocotb bench simulates: 8 clocks per UART bit (a board build has
    hundreds, which only slows simulation down) and buffers of ``max_clusters`` records, so
    that a short HCU stream already takes several runs."""
    return FPGAConfig(hw=hw, clock_hz=8e6, baud=1_000_000, buffer_depth=hw.max_clusters)
