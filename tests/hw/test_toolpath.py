"""``hw.toolpath.find_tool``: the venv's tool first, then ``PATH``, else ``None``."""

from __future__ import annotations

import sys

from hw.toolpath import find_tool


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
