"""golden.sweep (make sweep-algo): points, keys, a quick run on Dask and its resumption."""

import json

import pytest

from golden import sweep


def test_points_and_keys():
    pts = sweep.points(["llm", "synthetic"], ["logit_std", "group"])
    assert {(p["stream"], p["axis"]) for p in pts} == {
        ("synthetic", "logit_std"),
        ("llm", "group"),
        ("synthetic", "group"),
    }
    assert len(pts) == 5 + 3 + 3
    grid = sweep.points(["llm"], ["bucket_mode"])
    assert [p["value"] for p in grid] == ["relative", "grid"]
    k = sweep.point_key(pts[0], quick=True)
    assert k == sweep.point_key(dict(reversed(pts[0].items())), quick=True)
    assert k != sweep.point_key(pts[0], quick=False) and k != sweep.point_key(pts[1], quick=True)


def test_quick_run_writes_results_and_resumes(tmp_path, capsys):
    args = ["--quick", "--streams", "synthetic", "--axes", "threshold", "--workers", "1"]
    assert sweep.main([*args, "-o", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "sweep.json").read_text())
    assert [p["point"]["value"] for p in s["points"]] == [3, 5, 7, 9]
    tpc = [p["clusters"]["tokens_per_cluster"] for p in s["points"]]
    assert tpc == sorted(tpc)  # a larger threshold joins more tokens per cluster
    for p in s["points"]:
        assert set(sweep.METHODS) <= set(p["summary"]["decode"])
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "| synthetic | threshold | 3 |" in (tmp_path / "sweep.md").read_text()
    capsys.readouterr()
    assert sweep.main([*args, "-o", str(tmp_path)]) == 0
    assert "4 points, 4 cached, 0 to run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--streams", "video"], r"--streams must list 'llm' and/or 'synthetic', not 'video'"),
        (["--axes", "speed"], r"--axes must list values of logit_std, .*, not 'speed'"),
        (["--workers", "0"], r"--workers must be at least 1, not 0"),
    ],
)
def test_bad_arguments_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit):
        sweep.main(argv)
    import re

    assert re.search(message, capsys.readouterr().err)
