"""sim.bench_core: the per-command cycle model, its extrapolation and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import preset
from hw.core.contexts import kept_regions
from sim.bench_core import (
    FEATURES,
    _ingest_fit,
    _ingests,
    _steady,
    budget,
    check,
    engine_cycles,
    fit,
    main,
    run,
)

TRUE = dict(zip(FEATURES, [300.0, 90.0, 1.5, 4.0, 1.0], strict=True))
PAPER = preset("paper")
TILE = PAPER.tile_tokens  # 64


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
        engine = engine_cycles(PAPER, r["rows"], 260, fetched)["cycles"]
        f = [1, r["rows"], r["clusters"], r["bursts"], engine]
        r["cycles"] = round(float(np.dot(list(TRUE.values()), f)))
        recs.append(r)
    counters = [{"kind": "counters", "cycles": 10**6, "array_beats": 10**5, "read_beats": 10**5}]
    records = []  # in program order: a frame's two INGESTs, then its commands
    for f in range(n // 4):
        frame = {"kind": "frame", "tokens": 8, "cycles": 800, "context": 0, "frame": f}
        records += [frame, dict(frame)] + [r for r in recs if r["frame"] == f]
    records += counters
    for i, r in enumerate(records):
        r["i"] = i
    return {"source": "synthetic", "records": records}


def test_fit_recovers_a_linear_model():
    rep = _records()
    coef, resid = fit([r for r in rep["records"] if r["kind"] in ("prefill", "decode")], PAPER)
    assert resid < 1e-3
    # the cycles are rounded to integers: the burst cost, nearly collinear with the engine's
    # pace, takes up the rounding most (4.05 for 4)
    for name in FEATURES:
        assert coef[FEATURES.index(name)] == pytest.approx(TRUE[name], rel=2e-2), name


def test_fit_never_gives_a_negative_cost():
    """Bursts that save cycles in the data (a negative cost, as collinear features can
    make plain least squares give) get a cost of 0; the others stay costs."""
    rep = _records()
    recs = [r for r in rep["records"] if r["kind"] in ("prefill", "decode")]
    for r in recs:
        r["cycles"] -= 6 * r["bursts"]
    coef, _ = fit(recs, PAPER)
    assert coef[FEATURES.index("bursts")] == 0 and (coef >= 0).all()
    assert coef[FEATURES.index("engine")] > 0.5


def test_extrapolation_grows_with_the_cache_and_names_the_budget():
    s = run(_records(), PAPER, 0.327)
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
    # 32 rows are bound by the token stream, which the tile size does not change
    assert by_tile[0]["context_frame"] == pytest.approx(by_tile[3]["context_frame"])
    assert r["ratio"]["3.9"] == pytest.approx(r["context_frame"] / budget(3.9))
    assert budget(3.9) == pytest.approx(800e6 * 8 / (3.9 * 256))


def test_cli(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_records()))
    assert main(["--report", str(path), "-o", str(tmp_path)]) == 0
    assert "cycles per context-frame at a 5 K cache" in capsys.readouterr().out
    md = (tmp_path / "core_bench.md").read_text()
    assert md.startswith("## Core cycles")
    assert "R + 2B + 1 cycles and R + (B - 1) tokens per batch of B = 1" in md
    assert "| hcu_batch | ingest |" in md
    rep = json.loads((tmp_path / "core_bench.json").read_text())
    ingest = [r["ingest"] for r in rep["by_batch"]]
    assert [r["hcu_batch"] for r in rep["by_batch"]] == [1, 2, 4, 8]
    assert ingest == sorted(ingest, reverse=True) and ingest[0] > ingest[-1]
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
    cycle against 16 / 8) and 6 more at 8 pairs, and the ingest 2 cycles a token slower
    (the 64-lane trees' two more levels); another beat count is refused."""
    paper = preset("paper")
    narrow = paper.replace(mac_lanes=16, rope_pairs=8, axi_data_bits=64, resv={"head_dim": 32})
    base = run(_records(), paper, 0.327)
    s = run(_records(), narrow, 0.327, paper)
    assert s["shape"]["rope_extra"] == 0
    # 16 lanes: two MAC tree levels fewer than 64, two cycles more per ingested token there
    assert s["shape"]["latency_extra"] == 2 and base["shape"]["latency_extra"] == 0
    r, b = s["rows"][0], base["rows"][0]
    assert r["ingest"] - b["ingest"] == pytest.approx(2 * 16)  # 16 tokens per frame
    assert r["prefill"] == pytest.approx(b["prefill"])
    slow = run(_records(), narrow, 0.327, paper.replace(rope_pairs=8))
    r0, r1 = base["rows"][0], slow["rows"][0]
    assert slow["shape"]["rope_extra"] == 6
    assert r1["ingest"] - r0["ingest"] == pytest.approx((6 + 2) * 16)  # RoPE and trees
    assert r1["decode_step_grouped"] - r0["decode_step_grouped"] == pytest.approx(6 * 2)
    with pytest.raises(ValueError, match="beats per vector"):
        run(_records(), paper.replace(mac_lanes=16, rope_pairs=8), 0.327, paper)


def test_ingest_is_bounded_by_the_hcu_search():
    """The run's ingest (800 cycles per 8 tokens) at a small table; at 16 K tokens the HCU's
    search of the full 4096-cluster table (16 lanes: 256 rows + 3 cycles per aged token)
    bounds it; with batches of 8 a batch costs the search and 7 tokens' aging (the HCU
    takes the next batch once all but the last result of one are taken): (256 + 7 x 100) / 8
    cycles per token."""
    s = run(_records(), PAPER, 0.327)
    tpf = s["shape"]["tokens_per_frame"]
    small, big = s["rows"][0], s["rows"][-1]
    assert small["clusters"] < 16 * 97
    assert small["ingest"] == pytest.approx(tpf * 100)
    assert big["clusters"] == 4096
    assert big["ingest"] == pytest.approx(tpf * (4096 // 16 + 3))
    batched = run(_records(), PAPER, 0.327, PAPER.replace(hcu_batch=8))["rows"][-1]
    assert batched["ingest"] == pytest.approx(tpf * (256 + 7 * 100) / 8)


def test_engine_cycles():
    """The engine's pace, by hand at the paper preset (head_dim 128, the core's 64 lanes,
    64-token tiles, a 256-bit bus, tile_gap 16): 2 beats per row and tile, 4 cycles per kept
    token, 16 (the bus) per fetched token; a frame of 392 rows over 260 kept and 1590 fetched
    tokens is bound by the bus, over 500 fetched by the rows' passes; two rows over kept
    tokens by the stream; one row over a single tile by ``tile_gap``. The prefetch buffer
    (1024 rows, 256 tokens) takes the tokens the bus delivers while the engine takes the
    rows and the kept tokens, (392 + 2 x 260) x 2 cycles: 114 tokens at 16 cycles each,
    which then stream at 4."""
    assert (PAPER.resv.head_dim, PAPER.mac_lanes, PAPER.tile_tokens) == (128, 64, 64)
    a = engine_cycles(PAPER.replace(prefetch_rows=0), 392, 260, 1590)
    assert (a["tiles"], a["row_pace"]) == (29, 2)
    assert a["passes"] == 29 * 392 * 2 and a["cycles"] == a["stream"] == 260 * 4 + 1590 * 16
    assert a["bus_util"] == pytest.approx(1590 * 16 / a["cycles"])
    assert a["prefetched"] == 0
    assert PAPER.prefetch_rows == 1024
    p = engine_cycles(PAPER, 392, 260, 1590)
    assert p["cycles"] == p["stream"] == (260 + 114) * 4 + (1590 - 114) * 16
    assert p["prefetched"] == pytest.approx(114 / 1590)
    small = engine_cycles(PAPER.replace(prefetch_rows=64), 392, 260, 1590)  # 16 tokens
    assert small["stream"] == (260 + 16) * 4 + (1590 - 16) * 16
    a = engine_cycles(PAPER, 392, 260, 500)
    assert a["cycles"] == a["passes"] == 12 * 392 * 2 and a["array_util"] == 1.0
    b = engine_cycles(PAPER, 2, 1850, 0)
    assert (b["passes"], b["cycles"]) == (29 * 16, 1850 * 4)
    assert engine_cycles(PAPER, 1, 1, 0)["cycles"] == 16
    s = run(_records(), PAPER, 0.327)
    for r in s["rows"]:
        assert r["decode_step_grouped"] >= r["decode_bus_bound"] > 0


def test_check_against_a_run_of_the_preset_itself(tmp_path, capsys):
    """``check``: the model fitted to one run predicts another run's commands from their
    work figures, and its ingest by the fitted run's cycles for the same frame; a run that
    is 10 % slower in its PREFILLs shows -9 % there and nothing elsewhere."""
    rep = _records()
    s = run(rep, PAPER, 0.327)
    same = check(s, rep, rep, PAPER, PAPER)["by_kind"]
    assert set(same) == {"frame", "prefill", "decode"}
    assert all(abs(v["error"]) < 1e-3 for v in same.values())
    assert same["frame"]["commands"] == 30 and same["frame"]["max_abs_error"] == 0
    slow = json.loads(json.dumps(rep))
    for r in slow["records"]:
        if r["kind"] == "prefill":
            r["cycles"] = round(r["cycles"] * 1.1)
    k = check(s, rep, slow, PAPER, PAPER)["by_kind"]
    assert k["prefill"]["error"] == pytest.approx(1 / 1.1 - 1, abs=2e-3)
    assert abs(k["decode"]["error"]) < 1e-3 and k["frame"]["error"] == 0
    path, other = tmp_path / "r.json", tmp_path / "slow.json"
    path.write_text(json.dumps(rep))
    other.write_text(json.dumps(slow))
    assert main(["--report", str(path), "--check", str(other), "-o", str(tmp_path)]) == 0
    md = (tmp_path / "core_bench.md").read_text()
    assert "The model checked against a run of `paper` (" in md
    assert "| PREFILL | 45 |" in md and "-9.1 %" in md
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--report", str(path), "--check", str(tmp_path / "none.json")])
    assert "--check" in capsys.readouterr().err


def test_check_predicts_the_later_frames_of_a_longer_run(tmp_path, capsys):
    """Fitted on a run's first 8 frames, the model predicts the whole run: the frames it
    was not fitted on from the measured cycles per token, or the HCU's search of the table
    the frame leaves when that is longer; ``beyond`` sums the commands at larger caches."""
    rep = _records()
    short = {**rep, "records": [r for r in rep["records"] if r.get("frame", 0) < 8]}
    s = run(short, PAPER, 0.327)
    cmds = [r for r in rep["records"] if r["kind"] in ("prefill", "decode")]
    k = check(s, short, rep, PAPER, PAPER)
    later = [r for r in cmds if r["tokens"] > s["largest_cache_run"]]
    assert k["beyond"]["prefill"]["commands"] + k["beyond"]["decode"]["commands"] == len(later)
    assert k["beyond"]["frame"]["commands"] == 2 * (15 - 8)
    assert all(abs(v["error"]) < 1e-3 for v in k["beyond"].values())
    # the last frame leaves a table the HCU searches in more than the measured 100 cycles
    # per token: R + 2B + 1 cycles and R + (B - 1) x 100 per batch of B
    B, R = PAPER.hcu_batch, 400
    first = next(r for r in rep["records"] if r["kind"] == "prefill" and r["frame"] == 14)
    first["clusters"] = R * PAPER.hcu_lanes
    k = check(s, short, rep, PAPER, PAPER)
    last = [x for x in k["commands"] if x["kind"] == "frame"][-2:]
    per_token = max((R + 2 * B + 1) / B, (R + (B - 1) * 100) / B)
    assert per_token > 100 and [x["predicted"] for x in last] == [8 * per_token] * 2
    # a SWITCH_CTX: its swap's beats, the model's cycles; a first frame of another context
    # (its tokens do not age: not the steady state) is not predicted
    switch = {"kind": "switch", "context": 0, "cycles": 110, "swap_beats": 100, "tokens": 700}
    first = {"kind": "frame", "context": 1, "frame": 0, "tokens": 8, "cycles": 90}
    after = {**next(r for r in rep["records"] if r["kind"] == "prefill"), "context": 1}
    after["tokens"] = 8
    more = [{**x, "i": 999 + j} for j, x in enumerate((switch, first, after))]
    k = check(s, short, {**rep, "records": [*rep["records"], *more]}, PAPER, PAPER)
    assert k["by_kind"]["switch"]["error"] == pytest.approx(100 / 110 - 1)
    assert k["beyond"]["switch"]["commands"] == 1
    assert k["by_kind"]["frame"]["commands"] == 2 * 15
    # the CLI: the checked run's settings by --check-set, named in the table
    (tmp_path / "s.json").write_text(json.dumps(short))
    (tmp_path / "r.json").write_text(json.dumps(rep))
    args = ["--report", str(tmp_path / "s.json"), "--check", str(tmp_path / "r.json")]
    assert main([*args, "--check-set", "hcu_batch=8", "-o", str(tmp_path)]) == 0
    md = (tmp_path / "core_bench.md").read_text()
    assert "a run of `paper hcu_batch=8` (" in md and "| INGEST, beyond | 14 |" in md
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*args, "--check-set", "hcu_batch=x"])
    assert "hcu_batch" in capsys.readouterr().err


def test_check_of_another_clip_and_its_last_context_frames(tmp_path, capsys):
    """A run of another clip is checked with the model's ingest, not the fitted run's cycles
    for the same frame index; the check sums the checked run's last context-frames as
    measured: the switch into the context, its INGESTs and its PREFILLs, no decode step."""
    rep = _records()
    odd = next(r for r in rep["records"] if r["kind"] == "frame")
    odd["cycles"] = 1234  # frame 0's first INGEST, unlike every other
    s = run(rep, PAPER, 0.327)
    first = check(s, rep, rep, PAPER, PAPER)["commands"][0]
    assert (first["i"], first["predicted"]) == (odd["i"], 1234)
    other = {**rep, "source": "another clip"}
    first = check(s, rep, other, PAPER, PAPER)["commands"][0]
    # its 8 tokens created 10 clusters: none joined one, so the fitted base cost alone
    assert first["i"] == odd["i"] and first["predicted"] == pytest.approx(
        8 * s["shape"]["ingest_base"]
    )
    recs = [r for r in rep["records"] if r["kind"] != "counters"]
    switch = {"kind": "switch", "context": 0, "cycles": 77, "swap_beats": 70, "tokens": 700}
    switch["i"] = 999
    at = next(j for j, r in enumerate(recs) if r["kind"] == "frame" and r["frame"] == 14)
    recs = [*recs[:at], switch, *recs[at:]]
    last = check(s, rep, {**rep, "records": recs}, PAPER, PAPER)["last_frames"]
    pf = [r for r in recs if r["kind"] == "prefill" and r["frame"] == 14]
    assert [(f["context"], f["frame"], f["switch"], f["ingest"]) for f in last] == [
        (0, 14, 77, 1600)
    ]
    assert last[0]["prefill"] == sum(r["cycles"] for r in pf)
    assert last[0]["cycles"] == 77 + 1600 + last[0]["prefill"]
    assert last[0]["cache"] == pf[-1]["tokens"]
    assert last[0]["retrieval"] == pytest.approx(pf[-1]["fetched"] / (pf[-1]["tokens"] - 260))
    (tmp_path / "r.json").write_text(json.dumps(rep))
    (tmp_path / "c.json").write_text(json.dumps({**rep, "records": recs}))
    args = ["--report", str(tmp_path / "r.json"), "--check", str(tmp_path / "c.json")]
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path)]) == 0
    md = (tmp_path / "core_bench.md").read_text()
    row = f"| 0 | 14 | {last[0]['cache']} | {100 * last[0]['retrieval']:.1f} % | 77 | 1600 |"
    assert "Its last context-frames as measured" in md and row in md
    assert f"**{last[0]['cycles']}**" in md
    assert "measured, context 0's last context-frame at a" in capsys.readouterr().out


def test_the_ingest_pays_for_each_token_that_joins_a_cluster():
    """A steady-state ``INGEST``'s cycles are fitted as a cost per token plus one per token
    that joined a cluster (its key sum read from DRAM): the tokens less the clusters the
    ``INGEST`` created."""
    recs, clusters = [], 0
    for f, joins in enumerate([20, 20, 40, 60, 80, 50, 30]):
        clusters += 100 - joins
        ingest = {"kind": "frame", "context": 0, "frame": f, "tokens": 100}
        ingest["cycles"] = 100 * 50 + 20 * joins
        after = {"kind": "prefill", "context": 0, "tokens": 300 + 100 * f, "clusters": clusters}
        recs += [ingest, after]
    seen = _ingests(recs)
    assert [j for _, _, j in seen] == [20, 20, 40, 60, 80, 50, 30]
    steady = [x for x in seen if _steady(x[0], x[1], 260)]
    assert len(steady) == 6  # the first frame found fewer than 260 tokens kept
    fitted = _ingest_fit(steady)
    assert fitted["ingest_base"] == pytest.approx(50) and fitted["ingest_join"] == pytest.approx(20)
    assert fitted["joins"][0] == [400, 0.2] and fitted["joins"][-1] == [900, 0.3]
    assert _ingest_fit([]) == {"ingest_base": None, "ingest_join": 0.0, "joins": []}


def test_the_switch_moves_the_runs_chunks_per_cluster():
    """The extrapolated switch moves each cluster's chunk links as the run had them (its
    last command's ``chunks``): twice the chunks, one more link beat per cluster."""
    rep = _records()
    one, two = json.loads(json.dumps(rep)), json.loads(json.dumps(rep))
    for r in one["records"]:
        r["chunks"] = r.get("clusters", 0)
    for r in two["records"]:
        r["chunks"] = 2 * r.get("clusters", 0)
    rows = [run(x, PAPER, 0.327)["rows"] for x in (one, two)]
    for a, b in zip(*rows, strict=True):
        c = a["clusters"]
        assert b["switch"] - a["switch"] == round(2 * c) - round(c) > 0  # 1 beat a link


def test_a_run_that_fetched_nothing_is_refused():
    rep = _records()
    for r in rep["records"]:
        r["bursts"] = 0
    with pytest.raises(ValueError, match="fetched nothing from DRAM"):
        run(rep, PAPER, 0.327)


def test_the_kept_tokens_prefetch_is_counted_and_its_overlap_reported(tmp_path):
    """The kept tokens move in the prefetcher's swap, counted in full in the switch (an
    upper bound: the commands it overlaps still wait for part of it); the overlap a run
    measured (``prefetch_wait`` of ``prefetch_busy``) is reported, from the fitted run or
    the ``--check`` one; a switch that moved them itself is predicted with them
    (``kept_beats``)."""
    rep = _records()
    none = run(rep, PAPER, 0.327)
    assert none["prefetch_overlap"] is None
    five = next(r for r in none["rows"] if r["cache"] == 5120)
    # at paper: 4 sinks + 256 recent tokens, K and V 16 beats each, their signatures, and
    # the scalars' row the load reads for their count
    scalars = kept_regions(PAPER)[0]
    assert scalars.name == "scalars"
    assert five["prefetch"] == 260 * 16 + 260 + scalars.beats_per_row
    assert five["switch"] > five["prefetch"]
    prefetch = {"prefetch_busy": 1000, "prefetch_wait": 250, "prefetch_beats": 9000}
    recs = [r | prefetch if r["kind"] == "counters" else r for r in rep["records"]]
    assert recs != rep["records"]
    measured = {**rep, "records": recs}
    s = run(measured, PAPER, 0.327)
    assert s["prefetch_overlap"]["hidden"] == pytest.approx(0.75)
    assert s["rows"] == none["rows"]
    assert run(rep, PAPER, 0.327, overlap=s["prefetch_overlap"])["prefetch_overlap"]["busy"] == 1000
    # a switch that moved the kept tokens itself: its swap and theirs
    switch = {"kind": "switch", "context": 0, "cycles": 200, "swap_beats": 100, "tokens": 700}
    switch |= {"kept_beats": 60, "i": 999}
    k = check(none, rep, {**rep, "records": [*rep["records"], switch]}, PAPER, PAPER)
    assert k["by_kind"]["switch"]["predicted"] == 160
    # the CLI takes the overlap from the --check run and names it
    (tmp_path / "r.json").write_text(json.dumps(rep))
    (tmp_path / "c.json").write_text(json.dumps(measured))
    args = ["--report", str(tmp_path / "r.json"), "--check", str(tmp_path / "c.json")]
    assert main([*args, "-o", str(tmp_path)]) == 0
    md = (tmp_path / "core_bench.md").read_text()
    assert "on the --check run (" in md and "75.00 % of its 1000 busy cycles" in md
    assert main(["--report", str(tmp_path / "r.json"), "-o", str(tmp_path)]) == 0
    assert "no run here measured its overlap" in (tmp_path / "core_bench.md").read_text()
