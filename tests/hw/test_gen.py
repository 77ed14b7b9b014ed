"""hw.gen: the generation entry point used by the Makefile, the tests and synthesis."""

from __future__ import annotations

import json
import re

import pytest

from hw.config import preset
from hw.gen import LINT_WAIVERS, TOPS, generate, main


def test_generate_names_the_top_module_after_the_unit():
    text = generate("hcu", preset("tiny"))
    assert re.search(r"^module hcu\(", text, re.M)
    assert "tokens__valid" in text and "assign__payload" in text


def test_generate_rejects_unknown_units():
    with pytest.raises(
        ValueError, match=rf"^name must be one of {re.escape(', '.join(map(repr, TOPS)))}, not 'x'$"
    ):
        generate("x", preset("tiny"))


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
