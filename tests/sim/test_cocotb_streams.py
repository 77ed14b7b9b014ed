"""sim.kit.cocotb_streams: the whole ``HWConfig`` of a run reaches the testbench in one variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sim.kit.runner
from hw.config import PRESETS, apply_settings, parse_settings, preset
from sim.kit.cocotb_streams import CONFIG_ENV, config_from_env, config_from_json, config_to_json


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips(name):
    cfg = preset(name)
    assert config_from_json(config_to_json(cfg)) == cfg


def test_changed_fields_round_trip_including_resv():
    cfg = preset("tiny").replace(
        rope_pairs=8, hcu_batch=2, resv={"bucket_mode": "grid", "coverage": 0.85, "plane_seed": 3}
    )
    text = config_to_json(cfg)
    assert json.loads(text)["resv"]["coverage"] == 0.85
    assert config_from_json(text) == cfg


def test_config_from_env_prefers_the_whole_config(monkeypatch):
    cfg = apply_settings(preset("tiny"), parse_settings(["topk_k=3", "resv.plane_seed=5"]))
    monkeypatch.setenv("DRE_CONFIG", "paper")
    monkeypatch.setenv(CONFIG_ENV, config_to_json(cfg))
    assert config_from_env() == cfg
    # a testbench started by hand: the preset
    monkeypatch.delenv(CONFIG_ENV)
    assert config_from_env() == preset("paper")
    monkeypatch.delenv("DRE_CONFIG")
    assert config_from_env() == preset("tiny")


@pytest.mark.parametrize(
    "text",
    ["not json", "[1]", '{"hcu_lanes": 4}', '{"resv": {}, "no_such_field": 1}'],
)
def test_a_malformed_config_names_the_variable(text):
    with pytest.raises(ValueError, match=rf"^{CONFIG_ENV} must be the JSON of an HWConfig "):
        config_from_json(text)


def test_an_out_of_range_field_is_refused_by_the_config():
    data = json.loads(config_to_json(preset("tiny")))
    data["hcu_lanes"] = 0
    with pytest.raises(ValueError, match=r"^hcu_lanes must be"):
        config_from_json(json.dumps(data))


def test_config_to_json_needs_an_hwconfig():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 'tiny'$"):
        config_to_json("tiny")  # type: ignore[arg-type]


class _RecordingRunner:
    """Stands in for the cocotb runner: the testbench's view of the environment is decoded
    with ``config_from_env`` as a testbench would, and one passing test is reported."""

    def __init__(self, monkeypatch, seen: dict):
        self.monkeypatch = monkeypatch
        self.seen = seen

    def build(self, **_kw) -> None:
        pass

    def test(self, *, extra_env: dict, results_xml: str, **_kw) -> None:
        for key, value in extra_env.items():
            self.monkeypatch.setenv(key, value)
        self.seen["cfg"] = config_from_env()
        self.seen["env"] = dict(extra_env)
        Path(results_xml).write_text('<testsuites><testsuite tests="1" failures="0"/></testsuites>')


def test_run_unit_passes_every_overridden_field(monkeypatch):
    """Fields no hand-written variable ever carried (``rope_pairs``, ``exp_frac_bits``,
    ``resv.coverage``) reach the testbench with the rest of the configuration."""
    seen: dict = {}
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setattr(sim.kit.runner, "_runner", lambda _sim: _RecordingRunner(monkeypatch, seen))
    overrides = {"rope_pairs": 8, "exp_frac_bits": 6, "resv": {"coverage": 0.8}}
    result = sim.kit.runner.run_unit("hcu", "icarus", tag="cfgenv", overrides=overrides)
    assert result.tests == 1 and result.failed == 0
    assert seen["cfg"] == preset("tiny").replace(**overrides)
    assert seen["env"]["DRE_CONFIG"] == "tiny"
    assert not any(k in seen["env"] for k in ("DRE_OVERRIDES", "DRE_LANES", "DRE_BATCH"))
