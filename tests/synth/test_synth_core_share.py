"""The DRE's share of the core (``synth.flow.core_breakdown``) on a small hand-made core
entry, its schema, and the activity stimuli of the units that need framed traffic."""

from __future__ import annotations

import pytest

from hw.config import preset
from hw.gen import TOPS
from synth import flow
from synth import report as rep
from synth.activity import simulate_activity


def _inst(path, module, total, macro=0.0):
    return {
        "path": path,
        "module": module,
        "cells": 1,
        "flops": 1,
        "comb_um2": total - macro,
        "seq_um2": 0.0,
        "macro_um2": macro,
        "total_um2": total,
    }


def _mem(name, cell, area, depth=64, width=128):
    return {
        "module": "core",
        "name": name,
        "width": width,
        "depth": depth,
        "bits": width * depth,
        "kind": "sram_macro",
        "macro_cell": cell,
        "area_um2": area,
    }


def _core_entry():
    hierarchy = [
        _inst("", "core", 1000.0, macro=500.0),
        _inst("dre", "core.dre", 100.0),
        _inst("dre.hcu", "core.dre.hcu", 40.0),
        _inst("mac", "core.mac", 150.0),
        _inst("attn", "core.attn", 200.0),
    ]
    memories = [
        _mem("keysum", "M_A", 300.0),
        _mem("kept_k", "M_B", 100.0),
        _mem("kept_v", "M_B", 100.0),
        {**_mem("small", "-", 0.0), "kind": "flip_flops", "area_um2": None},
    ]
    power_hier = [
        {"path": "", "module": "core", "total_w": 10.0},
        {"path": "dre", "module": "core.dre", "total_w": 0.5},
        {"path": "dre.hcu", "module": "core.dre.hcu", "total_w": 0.2},
        {"path": "mac", "module": "core.mac", "total_w": 2.0},
        {"path": "attn", "module": "core.attn", "total_w": 3.0},
    ]
    instances = [
        {"path": "_1_", "cell": "M_A", "opensta_w": 0.5, "dynamic_w": 1.5, "total_w": 2.0},
        {"path": "_2_", "cell": "M_B", "opensta_w": 0.2, "dynamic_w": 0.8, "total_w": 1.0},
        {"path": "_3_", "cell": "M_B", "opensta_w": 0.2, "dynamic_w": 0.8, "total_w": 1.0},
    ]
    return {
        "name": "core",
        "status": "ok",
        "area": {"total_um2": 1000.0, "hierarchy": hierarchy, "memories": memories},
        "power": {"total_w": 10.0, "hierarchy": power_hier, "sram": {"instances": instances}},
    }


def test_core_breakdown_shares():
    share = flow.core_breakdown(_core_entry(), "dre")
    assert share["status"] == "ok" and share["part"] == "dre"
    assert share["area_share"] == pytest.approx(0.1)
    assert share["power_share"] == pytest.approx(0.05)
    assert share["paper_area_share"] == rep.PAPER["dre_area_share"]
    rows = {r["name"]: r for r in share["breakdown"]}
    # direct submodules only (dre.hcu is inside dre), top-level macros, the rest
    assert set(rows) == {
        "dre",
        "mac",
        "attn",
        "keysum",
        "kept_k",
        "kept_v",
        "(core top-level logic)",
    }
    assert rows["keysum"]["kind"] == "sram_macro" and rows["keysum"]["power_w"] == 2.0
    # two memories of one macro shape split that shape's power by area
    assert rows["kept_k"]["power_w"] == pytest.approx(1.0)
    rest = rows["(core top-level logic)"]
    assert rest["area_um2"] == pytest.approx(1000 - 100 - 150 - 200 - 500)
    assert rest["power_w"] == pytest.approx(10 - 0.5 - 2 - 3 - 2 - 1 - 1)
    assert sum(r["area_share"] for r in rows.values()) == pytest.approx(1.0)
    assert sum(r["power_share"] for r in rows.values()) == pytest.approx(1.0)
    assert share["breakdown"][0]["name"] == "keysum"  # sorted by area, largest first
    assert "keysum" in share["dominant"]
    assert rep.validate(share, rep.SHARE_SCHEMA) == []


def test_core_breakdown_without_power_and_errors():
    entry = _core_entry()
    entry["power"] = None
    share = flow.core_breakdown(entry, "dre")
    assert share["area_share"] == pytest.approx(0.1) and share["power_share"] is None
    assert rep.validate(share, rep.SHARE_SCHEMA) == []
    with pytest.raises(flow.FlowError, match="'kvmu'"):
        flow.core_breakdown(entry, "kvmu")


def test_share_schema_rejects_incomplete():
    share = flow.core_breakdown(_core_entry(), "dre")
    del share["breakdown"]
    report = {"comparison": {"dre_share_of_core": share}}
    with pytest.raises(ValueError, match="breakdown"):
        rep.check(report)


@pytest.mark.parametrize(
    ("name", "handshakes"),
    [
        ("rope", ["vectors__valid", "result__valid"]),
        # tiny's wtu_lanes = 4: four clusters per beat
        ("wtu_grid", ["cmd__valid", "clusters__valid", "selected__valid", "summary__valid"]),
        ("tile_softmax", ["rows__valid", "result__valid", "result__payload"]),
        ("tiled_attention", ["queries__valid", "kv__valid", "out__valid", "out__payload"]),
        ("mac_array", ["queries__valid", "keys__valid", "scores__valid", "scores__payload"]),
        ("kv_writer", ["m_axi__awvalid", "m_axi__bvalid", "done__valid"]),
        pytest.param(
            "core",
            [
                *("cmd__valid", "vin__valid", "status__valid", "out__valid", "m_axi__arvalid"),
                *("attn.kv__valid", "attn.out__valid"),
            ],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_unit_stimuli_do_work(name, handshakes, tmp_path):
    cfg = preset("tiny")
    cycles = 1000 if name in ("core", "tiled_attention") else 400
    run = simulate_activity(name, TOPS[name](cfg), cfg, tmp_path / "a.vcd", cycles=cycles)
    assert run.cycles == cycles
    assert any(w in run.stimulus for w in (name.split("_")[0], "queries", "selector-rows"))
    for sig in handshakes:
        # The simulator's VCD names a port "cmd__valid$290" when a submodule's port of the
        # same name (the core's KV writer has a cmd stream) is used in the same scope.
        same = [v for k, v in run.vcd.signals.items() if k.split("$")[0] == sig]
        assert same and any(sum(v.toggles) > 0 for v in same), sig
