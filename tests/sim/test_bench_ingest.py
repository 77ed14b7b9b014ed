"""sim.bench_ingest: the core's ingest cycles per token against the table and hcu_batch,
on Amaranth's simulator (bit-exact with the golden model), at tiny sizes."""

from __future__ import annotations

import json

import pytest

from hw.config import apply_settings, parse_settings, preset
from hw.core.contexts import context_regions
from sim import bench_ingest
from sim.bench_ingest import PAPER_LIKE, bench_config, bench_program, main


def test_the_program_fills_the_table_before_the_measured_frame():
    cfg = bench_config(preset("tiny"), rows=2, batch=2, tokens=8)
    assert cfg.resv.max_clusters == 2 * cfg.hcu_lanes and cfg.hcu_batch == 2
    prog = bench_program(cfg, tokens=8)
    frames = [c for c in prog.commands if c.kind == "frame"]
    assert [c.info["tokens"] for c in frames][-1] == 8
    assert prog.contexts[0].counters["clusters_created"] == cfg.resv.max_clusters
    assert prog.queries == 1


def test_cli(tmp_path, capsys):
    """One lane per table row: at 96 rows the HCU's search (99 cycles) bounds an aged token's
    ingest, and batches of 4 share it (then the aging proper, about 84 cycles with its key
    sum's read and write-back, bounds it); at 4 rows the aging proper does, whatever the
    batch. With
    B = 1 the context is also stored and loaded back: the store after an 8-token frame and
    the load move the same tables, the load's SWITCH_CTX (a swap) also stores the empty
    context's scalars, at the same time (the key sums stay in DRAM)."""
    sets = ["--set", "axi_data_bits=32", "--set", "hcu_lanes=1"]
    argv = ["--rows", "4", "96", "--batches", "1", "4", "--tokens", "8", *sets]
    assert main([*argv, "-o", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "ingest_bench.json").read_text())
    by = {(r["rows"], r["batch"]): r["cycles"] for r in res["results"]}
    assert by[(96, 4)] < by[(96, 1)]
    assert by[(96, 1)] > by[(4, 1)]
    trip = next(r for r in res["results"] if (r["rows"], r["batch"]) == (96, 1))
    cfg = bench_config(preset("tiny").replace(axi_data_bits=32, hcu_lanes=1), 96, 1, 8)
    scalars = context_regions(cfg)[0]
    assert scalars.name == "scalars"
    assert trip["load_beats"] == trip["store_beats"] + scalars.beats_per_row
    # the load's SWITCH_CTX is a swap: the empty context's scalars leave while they arrive
    assert trip["store_cycles"] >= trip["store_beats"]
    assert trip["load_cycles"] >= trip["load_beats"] - scalars.beats_per_row
    assert all("store_cycles" not in r for r in res["results"] if r["batch"] == 4)
    assert res["settings"] == ["axi_data_bits=32", "hcu_lanes=1"]
    md = (tmp_path / "ingest_bench.md").read_text()
    assert "| 96 (96) | 99 |" in md and (tmp_path / "ingest_bench.png").is_file()
    assert "`SWITCH_CTX` at the same tables" in md
    assert "cycles per token with hcu_batch" in capsys.readouterr().out


def test_the_default_settings_are_the_papers_ring_and_bus(monkeypatch):
    """Without ``--set`` the measured core has the paper's ring and 16 beats per token (the
    measurement itself, a 256-token ring filled first, is ``test_cli``'s at tiny sizes)."""
    seen = []

    class Measured(Exception):
        pass

    def measured(cfg, rows, batch, tokens, switch=False):
        seen.append(cfg)
        raise Measured  # stop before the simulation

    monkeypatch.setattr(bench_ingest, "measure", measured)
    with pytest.raises(Measured):
        main(["--rows", "1", "--batches", "1", "--tokens", "1"])
    assert apply_settings(preset("tiny"), parse_settings(PAPER_LIKE)) == seen[0]
    assert (seen[0].axi_data_bits, seen[0].resv.recent_tokens) == (32, 256)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batches", "3"], "hcu_batch must be a power of two"),
        (["--batches", "8", "--set", "resv.recent_tokens=4"], "must be at most recent_tokens"),
        (["--rows", "0"], "--rows: must be at least 1, not 0"),
        (["--set", "nope=1"], "nope"),
    ],
)
def test_bad_arguments_name_the_option(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
