"""``hw.toolpath.find_tool``: the venv's tool first, then ``PATH``, else ``None``;
``build_lock``: one holder at a time, across processes."""

from __future__ import annotations

import subprocess
import sys

from hw.toolpath import build_lock, find_tool


def _exe(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_venv_wins_over_path(tmp_path, monkeypatch):
    venv = _exe(tmp_path / "venv" / "bin", "tool")
    on_path = _exe(tmp_path / "usr" / "bin", "tool")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "usr" / "bin"))
    assert find_tool("tool") == venv
    monkeypatch.setattr(sys, "executable", str(tmp_path / "other" / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "other"))
    assert find_tool("tool") == on_path
    assert find_tool("no-such-tool") is None


def test_build_lock_excludes_other_processes(tmp_path):
    probe = (
        "import fcntl, sys\n"
        "f = open(sys.argv[1], 'w')\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n"
        "    sys.exit(3)\n"
    )

    def try_lock():
        argv = [sys.executable, "-c", probe, str(tmp_path / "build" / ".lock")]
        return subprocess.run(argv, check=False).returncode

    with build_lock(tmp_path / "build"):  # creates the directory
        assert try_lock() == 3
    assert try_lock() == 0
