"""Quick formal checks inside ``make test``: the k-induction stream proofs, a property broken
on purpose that sby must report as FAIL, and the CLI's argument errors. The long tasks run
in ``make formal`` (docs/formal.md)."""

from __future__ import annotations

import json

import pytest

from formal.__main__ import main
from formal.hcu import HCUHarness
from formal.kvmu import KVMUHarness
from formal.sby import SCRIPT, run_task
from formal.tasks import TASKS, Task, task
from formal.wtu import WTUHarness

QUICK = [name for name, t in TASKS.items() if t.quick]


def test_quick_tasks_exist():
    assert QUICK == ["hcu_stream", "wtu_stream", "kvmu_stream"]
    assert all(TASKS[n].mode == "prove" for n in QUICK)


@pytest.mark.parametrize("name", QUICK)
def test_quick_task_proves(name, tmp_path):
    t = task(name)
    res = run_task(name, t.build(), tmp_path, mode=t.mode, depth=t.depth, script=SCRIPT)
    assert res.status == "PASS", f"{name}: {res.detail} (log {res.log})"
    assert res.detail == "proof by k-induction"


def test_broken_threshold_fails(tmp_path):
    # CREATED expected at distance >= T instead of > T: a token at distance exactly T
    # from a cluster joins it, so the bounded check must find the counterexample.
    res = run_task(
        "hcu_bug",
        HCUHarness(props="model", bug="threshold"),
        tmp_path,
        mode="bmc",
        depth=12,
        script=SCRIPT,
    )
    assert res.status == "FAIL", res.detail
    assert res.detail.startswith("failed assertion hcu.py:"), res.detail
    assert res.detail.endswith('("assign: CREATED not exactly when far and not full")')


def test_broken_max_burst_fails(tmp_path):
    res = run_task(
        "kvmu_bug",
        KVMUHarness(props="axi", bug="max_burst"),
        tmp_path,
        mode="bmc",
        depth=14,
        script=SCRIPT,
    )
    assert res.status == "FAIL", res.detail
    assert res.detail.startswith("failed assertion kvmu.py:"), res.detail
    assert res.detail.endswith('("AR: burst longer than max_burst")')


@pytest.mark.parametrize(
    ("cls", "kw", "msg"),
    [
        (
            HCUHarness,
            {"props": "nope"},
            r"^props must be one of \('stream', 'model'\), not 'nope'$",
        ),
        (HCUHarness, {"bug": "x"}, r"^bug must be one of \(None, 'threshold'\), not 'x'$"),
        (
            WTUHarness,
            {"props": "axi"},
            r"^props must be one of \('stream', 'model', 'mass'\), not 'axi'$",
        ),
        (KVMUHarness, {"bug": 1}, r"^bug must be one of \(None, 'max_burst'\), not 1$"),
    ],
)
def test_harness_arguments(cls, kw, msg):
    with pytest.raises(ValueError, match=msg):
        cls(**kw)


def test_task_lookup():
    with pytest.raises(ValueError, match=r"^task must be one of hcu_stream, .*, not 'x'$"):
        task("x")


def test_cli_rejects_unknown_task(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--task", "nope"])
    assert e.value.code == 2
    assert "--task must be one of hcu_stream" in capsys.readouterr().err


def test_cli_runs_one_task(tmp_path, capsys):
    assert main(["--task", "hcu_stream", "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["task"] for r in report["tasks"]] == ["hcu_stream"]
    assert report["tasks"][0]["status"] == "PASS" and report["failed"] == []
    assert "| hcu_stream | prove | 4 | PASS |" in (tmp_path / "report.md").read_text()
    assert "1/1 PASS" in capsys.readouterr().out


def test_cli_fails_on_a_failing_task(tmp_path, monkeypatch, capsys):
    broken = Task(
        name="broken",
        harness=lambda: HCUHarness(props="model", bug="threshold"),
        mode="bmc",
        depth=10,
        about="a property broken on purpose",
    )
    monkeypatch.setitem(TASKS, "broken", broken)
    assert main(["--task", "broken", "-o", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failed"] == ["broken"] and report["tasks"][0]["status"] == "FAIL"
    assert "0/1 PASS" in capsys.readouterr().out
