"""sim.bench_core: the per-command cycle model, its extrapolation and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import preset
from sim.bench_core import FEATURES, budget, fit, main, run, tiled_attention_cycles

TRUE = dict(zip(FEATURES, [300.0, 90.0, 1.5, 4.0, 12.0, 4.0, 18.0], strict=True))
TILE = 64  # the paper preset's tile_tokens


def _records(n=60, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        pf = i % 4 != 3
        fetched = int(rng.integers(0, 400)) + 5 * i
        r = {
            "kind": "prefill" if pf else "decode",
            "op": 6 if pf else 4,
            "rows": (8, 16, 40)[i % 3] if pf else 1,
            "group": 2,
            "clusters": 10 + 4 * i,
            "attended": 260 + fetched,
            "fetched": fetched,
            "bursts": fetched // 3,
            "beats": fetched * 16,
            "tokens": 300 + 10 * i,
            "context": 0,
            "frame": i // 4,
        }
        n = r["attended"]
        f = [1, r["rows"], r["clusters"], n, fetched, r["bursts"], r["rows"] * -(-n // TILE)]
        r["cycles"] = round(float(np.dot(list(TRUE.values()), f)))
        recs.append(r)
    frames = [
        {"kind": "frame", "tokens": 8, "cycles": 800, "context": 0, "frame": f}
        for f in range(n // 4)
        for _ in range(2)
    ]
    counters = [{"kind": "counters", "cycles": 10**6, "array_beats": 10**5, "read_beats": 10**5}]
    return {"source": "synthetic", "records": frames + recs + counters}


def test_fit_recovers_a_linear_model():
    rep = _records()
    coef, resid = fit([r for r in rep["records"] if r["kind"] in ("prefill", "decode")], TILE)
    assert resid < 1e-3
    for name in ("rows", "clusters", "bursts", "row_tiles"):
        assert coef[FEATURES.index(name)] == pytest.approx(TRUE[name], rel=1e-3), name
    # kept is constant (260) in these records: a fetched token's cost is known only as the
    # sum of its attended and fetched costs
    got = coef[FEATURES.index("tokens")] + coef[FEATURES.index("fetched")]
    assert got == pytest.approx(TRUE["tokens"] + TRUE["fetched"], rel=1e-3)


def test_extrapolation_grows_with_the_cache_and_names_the_budget():
    s = run(_records(), preset("paper"), 0.327)
    assert s["holdout_max_rel_error"] < 1e-3
    frames = [r["context_frame"] for r in s["rows"]]
    assert frames == sorted(frames) and frames[0] > 0
    r = s["rows"][0]
    # 16 tokens/frame x 2 heads: one PREFILL of 32 rows over the 1 K cache's attended tokens
    kept = preset("paper").resv.sink_tokens + preset("paper").resv.recent_tokens
    attended = kept + r["fetched"]
    assert (r["prefills"], r["tiles"]) == (1, -(-attended // TILE))
    by_tile = s["by_tile"]  # larger tiles: fewer passes of the rows
    assert [t["tile_tokens"] for t in by_tile] == [16, 32, 64, 128]
    assert by_tile[0]["tiles"] > by_tile[1]["tiles"] > by_tile[3]["tiles"]
    assert by_tile[0]["context_frame"] > by_tile[3]["context_frame"]
    assert r["ratio"]["3.9"] == pytest.approx(r["context_frame"] / budget(3.9))
    assert budget(3.9) == pytest.approx(800e6 * 8 / (3.9 * 256))


def test_cli(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_records()))
    assert main(["--report", str(path), "-o", str(tmp_path)]) == 0
    assert "cycles per context-frame at a 5 K cache" in capsys.readouterr().out
    assert (tmp_path / "core_bench.md").read_text().startswith("## Core cycles")
    for argv, msg in [
        (["--report", str(tmp_path / "none.json")], "does not exist: run python -m sim.run"),
        (["--report", str(path), "--retrieval", "0"], "--retrieval must be in (0, 1], not 0.0"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert msg in capsys.readouterr().err


def test_a_narrower_run_predicts_the_preset():
    """A run at head_dim 32 / 16 lanes has the paper's 2 beats per vector: its model
    predicts the paper preset, with RoPE at the same 2 steps per vector (64 / 32 pairs per
    cycle against 16 / 8) and 6 more at 8 pairs; another beat count is refused."""
    paper = preset("paper")
    narrow = paper.replace(mac_lanes=16, rope_pairs=8, axi_data_bits=64, resv={"head_dim": 32})
    base = run(_records(), paper, 0.327)
    s = run(_records(), narrow, 0.327, paper)
    assert s["shape"]["rope_extra"] == 0
    assert s["rows"][0]["context_frame"] == pytest.approx(base["rows"][0]["context_frame"])
    slow = run(_records(), narrow, 0.327, paper.replace(rope_pairs=8))
    r0, r1 = base["rows"][0], slow["rows"][0]
    assert slow["shape"]["rope_extra"] == 6
    assert r1["ingest"] - r0["ingest"] == pytest.approx(6 * 16)  # 16 tokens per frame
    assert r1["decode_step_grouped"] - r0["decode_step_grouped"] == pytest.approx(6 * 2)
    with pytest.raises(ValueError, match="beats per vector"):
        run(_records(), paper.replace(mac_lanes=16, rope_pairs=8), 0.327, paper)


def test_ingest_is_bounded_by_the_hcu_search():
    """The run's ingest (800 cycles per 8 tokens) at a small table; at 16 K tokens the HCU's
    search of the full 4096-cluster table (16 lanes: 256 rows + 3 cycles per aged token)
    bounds it."""
    s = run(_records(), preset("paper"), 0.327)
    tpf = s["shape"]["tokens_per_frame"]
    small, big = s["rows"][0], s["rows"][-1]
    assert small["clusters"] < 16 * 97
    assert small["ingest"] == pytest.approx(tpf * 100)
    assert big["clusters"] == 4096
    assert big["ingest"] == pytest.approx(tpf * (4096 // 16 + 3))


def test_tiled_engine_cycles():
    """The overlapped engine's pace, by hand at the paper preset (head_dim 128, the core's
    64 lanes, 64-token tiles, a 256-bit bus): 2 beats per row and tile, a tile's keys and
    values load in 256 beats, a fetched token is 16 bus beats (K and V); compute-bound with
    392 rows,
    a frame of 392 rows at a 5 K cache (1590 fetched) is bus-bound, with 1000 fetched
    compute-bound; load-bound with 2 rows, bus-bound with 32 rows and everything fetched."""
    paper = preset("paper")
    assert (paper.resv.head_dim, paper.mac_lanes, paper.tile_tokens) == (128, 64, 64)
    a = tiled_attention_cycles(paper, 392, 1850, 1590)
    assert (a["tiles"], a["row_pace"]) == (29, 2)
    assert a["compute"] == 29 * 392 * 2 and a["cycles"] == a["bus"] == 1590 * 16
    assert a["array_util"] == pytest.approx(29 * 392 * 2 / (1590 * 16))
    a = tiled_attention_cycles(paper, 392, 1850, 1000)
    assert a["cycles"] == a["compute"] == 29 * 392 * 2 and a["array_util"] == 1.0
    b = tiled_attention_cycles(paper, 2, 1850, 0)
    assert b["compute"] == b["cycles"] == 29 * 256
    c = tiled_attention_cycles(paper, 32, 640, 640)
    assert c["cycles"] == c["bus"] == 640 * 16 and c["bus_util"] == 1.0
    s = run(_records(), paper, 0.327)
    for r in s["rows"]:
        t = r["tiled"]
        assert t["context_frame"] == pytest.approx(r["ingest"] + t["prefill"])
        assert t["decode_step"] >= t["decode_bus_bound"]
