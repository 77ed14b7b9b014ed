"""golden.bench: the quick run end to end (tiny LLM and projected streams) and its report."""

import json

import pytest

from golden import bench
from golden.evaluate import bytes_at


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert bench.main(["--quick", "-o", str(out)]) == 0
    return json.loads((out / "golden.json").read_text()), out


def test_quick_bench_writes_reports(report):
    r, out = report
    md = (out / "golden.md").read_text()
    assert set(r["streams"]) == {"llm-tiny", "synthetic-tiny"}
    assert "the model never saw such visual tokens" in md
    assert "these are not video-LLM keys" in md
    for name in r["streams"]:
        assert (out / f"golden_{name}.png").stat().st_size > 0
    assert (out / "golden_llm-tiny_quality.png").stat().st_size > 0


def test_quick_bench_curves_are_consistent(report):
    r, _ = report
    for res in r["streams"].values():
        assert res["points"]["decode"] > 0 and res["points"]["prefill"] > 0
        for phase in ("prefill", "decode"):
            cur = res["curves"][phase]
            assert {"resv", "oracle", "topk", "quest", "pages", "kmeans", "rekv", "window"} <= set(
                cur
            )
            for name, c in cur.items():
                n = len(c["grid"])
                assert len(c["bytes"]) == len(c["error"]) == len(c["recall"]) == n
                assert all(0 <= x <= 1 + 1e-9 for x in c["retrieved"] + c["recall"])
                # A larger budget never retrieves fewer old tokens on average.
                assert c["retrieved"] == sorted(c["retrieved"]), name
            # The oracle reads no metadata; its error falls to ~0 at recall 0.999.
            assert cur["oracle"]["error"][-1] < 0.05
            for name, row in res["summary"][phase].items():
                assert row["bytes@0.05"] == bytes_at(cur[name], 0.05)


def test_quick_bench_reruns_the_llm_answers(report):
    r, _ = report
    q = r["streams"]["llm-tiny"]["quality"]
    assert q["answers"] >= 1 and q["steps"] >= q["answers"]
    for name in ("resv", "resv-spec", "oracle", "kmeans", "quest", "pages", "topk"):
        m = q[name]
        assert len(m["agreement"]) == len(m["kl"]) == len(m["bytes"]) == len(m["grid"])
        assert all(0 <= a <= 1 for a in m["agreement"]) and all(k > -1e-9 for k in m["kl"])
    # The oracle at a recall of 0.995 is close to full attention.
    assert q["oracle"]["kl"][-1] < 0.05


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--streams", "nope"], r"--streams must be among llm-tiny, synthetic-tiny, not nope"),
        (
            ["--variants", "resv-x"],
            r"--variants must be among resv-spec, .*resv-grid.*, not resv-x",
        ),
    ],
)
def test_bad_streams_and_variants_name_the_option(argv, message, capsys):
    import re

    with pytest.raises(SystemExit):
        bench.main(["--quick", *argv])
    assert re.search(message, capsys.readouterr().err)
