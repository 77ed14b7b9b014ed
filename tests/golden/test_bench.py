import json

import pytest

from golden import bench


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert bench.main(["--quick", "-o", str(out)]) == 0
    return json.loads((out / "golden.json").read_text()), out


def test_quick_bench_writes_reports(report):
    r, out = report
    assert (out / "golden.md").read_text().count("NOT video-LLM keys") == 1
    assert (out / "golden_sweeps.png").stat().st_size > 0
    assert (out / "golden_methods.png").stat().st_size > 0
    assert {p["value"] for p in r["sweeps"]["threshold"]} == {3, 4, 5, 6, 7}


def test_quick_bench_figures_are_consistent(report):
    r, _ = report
    s = r["workloads"]["tiny"]
    for kind in ("prefill", "decode"):
        resv = s[kind]["resv"]
        assert 0 < resv["retrieved"] <= 1
        assert s["decode"]["resv"]["retrieved"] < 1  # a one-frame recent window: retrieval acts
        for m in bench.METHODS:
            assert 0 <= s[kind][m]["recall"] <= 1 + 1e-9
            # equal budget (whole frame blocks may leave part of it unused)
            if m == "rekv_blocks":
                assert s[kind][m]["retrieved"] <= resv["retrieved"] + 1e-12
            else:
                assert s[kind][m]["retrieved"] == pytest.approx(resv["retrieved"])
            # the oracle maximises summed mass at a given budget
            assert s[kind]["oracle_topk"]["recall"] >= s[kind][m]["recall"] - 1e-9
    c = s["clusters"]
    assert c["clustered_tokens"] > 0 and 0 <= c["join_rate"] < 1
    assert c["tokens_per_cluster"] == pytest.approx(c["clustered_tokens"] / c["clusters"], rel=0.5)
    # higher coverage never retrieves less
    cov = [p["decode"]["resv"]["retrieved"] for p in r["sweeps"]["coverage"]]
    assert cov == sorted(cov)
