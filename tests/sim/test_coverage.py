"""Functional coverage (``sim.coverage``): bins, merge, the JSON + Markdown report with
every missed bin, the bins the benches and the soak compute from golden data, and the
command line's argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import preset
from hw.toolpath import find_tool
from sim.cases.dre import ScoreRow, hcu_expected, hcu_stream, quickselect_expected
from sim.coverage import (
    Coverage,
    hcu_token_bins,
    mac_array_block_bins,
    main,
    quickselect_row_bins,
    tile_softmax_row_bins,
    topk_row_bins,
    unit_bins,
    write_report,
)
from sim.fast.stimulus import make_chunk
from sim.soak import chunk_coverage


def test_hit_merge_missed_and_report(tmp_path):
    a = Coverage({"g": ["x", "y", "z"]})
    a.hit("g", "x")
    a.hit("g", "x", 2)
    b = Coverage({"g": ["x", "y", "z"], "h": ["w"]})
    b.hit("g", "y")
    a.merge(b)
    assert a.counts == {"g": {"x": 3, "y": 1, "z": 0}, "h": {"w": 0}}
    assert a.missed() == [("g", "z"), ("h", "w")]
    assert a.total() == (2, 4)
    js, md = write_report({"unit": a}, tmp_path)
    doc = json.loads(js.read_text())
    assert doc["unit"]["missed"] == ["g/z", "h/w"] and doc["unit"]["bins"]["g"]["x"] == 3
    text = md.read_text()
    assert "| unit | 2 of 4 | g/z, h/w |" in text
    assert "| g | x | 3 |" in text and "| g | z | **missed** |" in text
    a.save(tmp_path / "c.json")
    assert Coverage.load(tmp_path / "c.json").counts == a.counts


def test_undefined_bin_is_an_error():
    cov = Coverage({"g": ["x"]})
    with pytest.raises(ValueError, match=r"^bin must be a defined bin, not g/nope \(defined: g"):
        cov.hit("g", "nope")


def test_unit_bins():
    cfg = preset("tiny")
    assert "hcu.batch" not in unit_bins("hcu", cfg)
    assert unit_bins("hcu", cfg.replace(hcu_batch=8))["hcu.batch"] == [
        "first",
        "inner",
        "last",
        "joins_own_batch",
    ]
    assert unit_bins("hcu", cfg.replace(hcu_batch=2))["hcu.batch"][1] == "last"
    assert unit_bins("core", cfg)["core.status"] == [
        "OK",
        "BAD_OP",
        "EMPTY",
        "FULL",
        "BAD_ARG",
        "BUS",
    ]
    assert set(unit_bins("kv_writer", cfg)) == {"axi.aw", "axi.w", "axi.b"}
    assert unit_bins("mac_tree", cfg) == {}


def test_selector_bins():
    """The top-k and quick-select bins of hand-made rows; passes bins only up to the most
    passes a row of ``max_clusters`` can take."""
    cfg = preset("tiny")  # 16 clusters, topk_k 4, 6 coverage bits
    assert unit_bins("topk", cfg)["topk.passes"] == ["1", "2", "3+"]
    assert unit_bins("topk", cfg.replace(topk_k=8))["topk.passes"] == ["1", "2"]
    ones = np.ones(16, np.int64)

    def row(scores, k=0, counts=None, coverage_q=64):
        s = np.array(scores, np.int64)
        c = ones[: s.size] if counts is None else np.array(counts, np.int64)
        return ScoreRow(scores=s, counts=c, coverage_q=coverage_q, k=k)

    assert topk_row_bins(cfg, row([5, 3, 3, 1], k=2)) == [
        ("topk.row", "mid"),
        ("topk.k", "partial"),
        ("topk.passes", "1"),
        ("topk.ties", "tie_at_cut"),
    ]
    assert dict(topk_row_bins(cfg, row(np.arange(16), k=16)))["topk.passes"] == "3+"
    assert dict(topk_row_bins(cfg, row([7], k=3))) == {
        "topk.row": "1",
        "topk.k": "over",
        "topk.passes": "1",
        "topk.ties": "distinct",
    }
    assert dict(topk_row_bins(cfg, row([4, 4, 1], k=2)))["topk.ties"] == "ties"

    def qs(r):
        return dict(quickselect_row_bins(cfg, r, quickselect_expected(cfg, r)))

    no_mass = qs(row(np.arange(16) * 7, counts=np.zeros(16), coverage_q=1))
    assert no_mass["quickselect.zero_weight"] == "all"
    assert (no_mass["quickselect.row"], no_mass["quickselect.coverage"]) == ("max", "min")
    far = qs(row([cfg.resv.score_max, cfg.resv.score_min, cfg.resv.score_min]))
    assert far["quickselect.zero_weight"] == "all_but_one"
    assert far["quickselect.selected"] == "one" and far["quickselect.ties"] == "ties"
    assert qs(row([3, 2, 1]))["quickselect.zero_weight"] == "none"


def test_datapath_bins():
    """MAC array blocks and tile softmax rows; bins only where the config can reach them."""
    from sim.benches.tb_tile_softmax import NEG_INF, TileRow
    from sim.cases.datapath import ArrayBlock

    cfg = preset("tiny")  # mac_rows 4, mac_cols 4, tile_tokens 4
    assert unit_bins("mac_array", cfg)["mac_array.rows"] == ["1", "partial", "full", "over"]
    assert unit_bins("mac_array", cfg.replace(mac_rows=1))["mac_array.rows"] == ["1", "over"]
    q = np.zeros((5, 6), np.uint16)
    assert mac_array_block_bins(cfg, ArrayBlock(q, q[:2], columns=True)) == [
        ("mac_array.rows", "over"),
        ("mac_array.load", "columns"),
        ("mac_array.final_beat", "partial"),
    ]
    full = dict(mac_array_block_bins(cfg, ArrayBlock(q[:4, :4], q[:1, :4])))
    assert full["mac_array.rows"] == "full" and full["mac_array.final_beat"] == "full"
    assert unit_bins("tile_softmax", cfg.replace(tile_tokens=1))["tile_softmax.masked"] == [
        "none",
        "all",
    ]
    s = np.array([NEG_INF, 0, NEG_INF, 0x3F80_0000], np.uint32)
    assert tile_softmax_row_bins(TileRow(s, NEG_INF, 0, 0), 0) == [
        ("tile_softmax.tile", "first"),
        ("tile_softmax.masked", "some"),
        ("tile_softmax.rescale", "zero"),
    ]
    row = TileRow(np.full(4, NEG_INF, np.uint32), 0x3F80_0000, 0x4000_0000, 1)
    assert dict(tile_softmax_row_bins(row, 0x3F80_0000))["tile_softmax.rescale"] == "one"


def test_hcu_token_bins_follow_golden():
    cfg = preset("tiny").replace(hcu_batch=4)
    stream = hcu_stream(cfg, 200, seed=3, redundancy=0.5, sources=64, contexts=2)
    exp = hcu_expected(cfg, stream)
    bins = hcu_token_bins(cfg, stream, exp, exact=True)
    assert len(bins) == 200
    assert bins[0][0] == ("hcu.decision", "created@0")
    decisions = [b[0][1] for b in bins]
    assert decisions.count("forced@full") == int((exp.event == 2).sum())
    assert sum(("hcu.batch", "first") in b for b in bins) >= 200 // 4
    # Without exact timing there are no batch bins.
    assert all(len(b) == 1 for b in hcu_token_bins(cfg, stream, exp, exact=False))


def test_soak_chunk_coverage_from_golden():
    cfg = preset("tiny")
    hcu = chunk_coverage("hcu", cfg, make_chunk("hcu", cfg, 300, 5), exact=False)
    assert sum(hcu["hcu.decision"].values()) == 300
    wtu = chunk_coverage("wtu_grid", cfg, make_chunk("wtu_grid", cfg, 40, 7), exact=False)
    assert {g: sum(b.values()) for g, b in wtu.items()} == {
        "wtu.b_star": 40,
        "wtu.out_of_range": 40,
        "wtu.coverage": 40,
    }
    assert np.all([n >= 0 for n in wtu["wtu.coverage"].values()])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sim", "xsim"], "--sim must be one of icarus, verilator, not 'xsim'"),
        (["no_unit"], "UNIT must be one of hcu, "),
        (["--config", "nope"], "--config: config must be one of "),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.cocotb
def test_kvmu_report_on_icarus(tmp_path, capsys):
    """The KVMU's regressions (tiny, and 1 KB tokens whose runs cross 4 KB) on Icarus: the
    report lists every bin with its hits; the burst cuts at max_burst and at 4 KB are hit."""
    assert find_tool("iverilog"), "iverilog is not in the venv nor on PATH (run `make setup`)"
    argv = ["--run", "--sim", "icarus", "--tag", "covtest", "--out", str(tmp_path), "kvmu"]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "coverage.json").read_text())["kvmu"]
    bursts = doc["bins"]["kvmu.bursts"]
    assert bursts["split_max_burst"] > 0 and bursts["split_4k"] > 0 and bursts["whole_run"] > 0
    assert set(doc["bins"]) == {"kvmu.bursts", "kvmu.summary", "axi.ar", "axi.r"}
    assert doc["bins"]["kvmu.summary"]["ok"] > 0 and doc["bins"]["kvmu.summary"]["error"] > 0
    assert doc["missed"] == [
        f"{g}/{b}" for g, bins in doc["bins"].items() for b, n in bins.items() if n == 0
    ]
    assert "kvmu: " in capsys.readouterr().out
    assert "## kvmu" in (tmp_path / "coverage.md").read_text()
