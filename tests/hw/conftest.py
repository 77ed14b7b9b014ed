"""Failure reports of the Amaranth-simulator tests name their waveforms."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    tmp = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if tmp is None:
        return
    waves = sorted(Path(tmp).glob("*.vcd"))
    if waves:
        text = "\n".join(f"{w} (GTKWave: {w.with_suffix('.gtkw')})" for w in waves)
    else:
        text = f"none written: rerun with WAVES=1 to get VCD + .gtkw files under {tmp}"
    report.sections.append(("waveform", text))
