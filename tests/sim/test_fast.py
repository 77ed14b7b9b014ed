"""sim.fast: the C++ Verilator harness agrees with golden (every beat, the end state and, with
no stalls, every handshake cycle), and it fails on a corrupted expectation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw.config import preset
from hw.dre import layouts
from sim.cases.dre import hcu_timing, score_row, wtu_beats
from sim.fast import PROFILES, make_chunk, profile_for, run_chunk
from sim.fast import __main__ as cli
from sim.fast.build import build_harness
from sim.fast.run import FAST_SIMULATORS, run_harness, run_prepared
from sim.fast.stimulus import pack, pack_beats, write_chunk

ROOT = Path(__file__).resolve().parents[2]
CFG = preset("tiny")


def _times(path: Path) -> dict[str, np.ndarray]:
    rows = (line.split() for line in path.read_text().splitlines())
    return {r[0]: np.array(r[1:], np.int64) for r in rows}


@pytest.mark.parametrize("seed", [2, 4])
def test_hcu_no_stalls_matches_golden_to_the_cycle(seed, tmp_path):
    verdict, chunk = run_chunk(
        "hcu", CFG, 1500, seed, config="tiny", profile=PROFILES["none"], keep=tmp_path, times=True
    )
    assert verdict.passed and verdict.mismatches == 0 and verdict.first == ""
    assert verdict.transactions == 1500 and verdict.unit == "hcu" and verdict.seed == seed
    t = _times(tmp_path / "times.txt")
    assert t["tokens"].size == t["assign"].size == 1500
    timing = hcu_timing(CFG, chunk.golden["stream"], chunk.golden["expected"])
    np.testing.assert_array_equal(t["tokens"] - t["tokens"][0], timing.accepted)
    np.testing.assert_array_equal(t["assign"] - t["tokens"][0], timing.done)
    # The chunk visits clears and a full table with forced joins or not: both seeds cover both.
    assert chunk.golden["contexts"] > 1


SELECTORS = ["wtu", "wtu_grid", "topk", "quickselect"]


@pytest.mark.parametrize("unit", SELECTORS)
def test_selector_no_stalls_matches_golden_to_the_cycle(unit, tmp_path):
    verdict, chunk = run_chunk(
        unit, CFG, 150, 2, config="tiny", profile=PROFILES["none"], keep=tmp_path, times=True
    )
    assert verdict.passed and verdict.transactions == 150, verdict.line
    t = _times(tmp_path / "times.txt")
    assert t["cmd"].size == t["summary"].size == 150
    # One beat per id, or per row of wtu_lanes ids holding a selected one (tiny: 4 lanes).
    assert t["selected"].size == len(chunk.golden["selected_beats"])
    if unit in ("wtu_grid", "quickselect"):
        assert len(chunk.golden["selected_beats"]) < sum(len(s) for s in chunk.golden["selected"])
    # Rows back to back: cmd handshake to summary handshake, both included (sim.benches.tb_wtu).
    np.testing.assert_array_equal(t["summary"] - t["cmd"] + 1, chunk.golden["cycles"])
    sizes = [r.scores.size for r in chunk.golden["rows"]]
    assert min(sizes) == 1 and max(sizes) == CFG.max_clusters


@pytest.mark.parametrize("unit", SELECTORS)
def test_selector_stalls_pass_and_a_corrupted_id_fails(unit):
    verdict, _ = run_chunk(unit, CFG, 200, 8, config="tiny", profile=PROFILES["long_bursts"])
    assert verdict.passed, verdict.line
    verdict, _ = run_chunk(unit, CFG, 200, 8, config="tiny", corrupt=17)
    assert not verdict.passed and verdict.first.startswith("selected[17] @")


def test_hcu_stall_profiles_pass_and_stall(tmp_path):
    cycles = {}
    for name in ("none", "heavy", "long_bursts"):
        verdict, _ = run_chunk(
            "hcu", CFG, 1500, 9, config="tiny", profile=PROFILES[name], keep=tmp_path, times=True
        )
        assert verdict.passed, verdict.line
        cycles[name] = verdict.cycles
        t = _times(tmp_path / "times.txt")
        assert t["assign"].size == 1500
    assert cycles["heavy"] > cycles["none"] and cycles["long_bursts"] > cycles["none"]


def test_a_corrupted_expected_beat_fails():
    verdict, chunk = run_chunk("hcu", CFG, 400, 3, config="tiny", corrupt=100)
    assert not verdict.passed and verdict.mismatches == 1
    assert verdict.first.startswith("assign[100] @")
    got = int(verdict.first.rsplit(" got ", 1)[1], 16)
    assert got == chunk.outputs["assign"][100] ^ 1  # the harness saw the golden value


def test_a_corrupted_end_state_fails_and_a_missing_beat_times_out(tmp_path):
    binary = build_harness("hcu", CFG, config="tiny")
    chunk = make_chunk("hcu", CFG, 300, 5)
    profile = PROFILES["light"]
    occ = next(line for line in chunk.end if line.startswith("scalar occupancy"))
    chunk.end[chunk.end.index(occ)] = f"scalar occupancy {int(occ.split()[2]) + 1}"
    chunk.end[-1] = " ".join([*chunk.end[-1].split()[:3], "999"])  # the last count
    write_chunk(tmp_path, chunk)
    rc, out = run_harness(binary, tmp_path, seed=5, profile=profile, chunk=chunk, times=False)
    assert rc == 1 and "mismatches=2 " in out and "first: occupancy: expected" in out
    chunk = make_chunk("hcu", CFG, 300, 5)
    chunk.outputs["assign"].append(chunk.outputs["assign"][-1])  # one beat too many expected
    write_chunk(tmp_path, chunk)
    rc, out = run_harness(binary, tmp_path, seed=5, profile=profile, chunk=chunk, times=False)
    assert rc == 1 and "first: timeout: no handshake" in out and "assign 300/301" in out
    chunk = make_chunk("hcu", CFG, 300, 5)
    chunk.outputs["assign"].pop()  # one beat too few expected: the last one is extra
    write_chunk(tmp_path, chunk)
    rc, out = run_harness(binary, tmp_path, seed=5, profile=profile, chunk=chunk, times=False)
    assert rc == 1 and "first: assign[299]" in out and "extra beat" in out


def test_pack_agrees_with_the_layouts():
    lay = layouts(CFG)
    rng = np.random.default_rng(1)
    cols = {
        "token_id": rng.integers(0, 1 << CFG.token_id_bits, 20),
        "cluster": rng.integers(0, CFG.max_clusters, 20),
        "distance": rng.integers(0, 1 << CFG.distance_bits, 20),
        "event": rng.integers(0, 3, 20),
    }
    got = pack(lay.assign, cols)
    for i, g in enumerate(got):
        beat = {k: int(v[i]) for k, v in cols.items()}
        assert g == lay.assign.const(beat).as_bits()
    with pytest.raises(ValueError, match="columns must be the fields"):
        pack(lay.assign, {"token_id": cols["token_id"]})
    # Array fields (the grid WTU's lanes), signed scores, through the beats of a row.
    grid = CFG.replace(resv={"bucket_mode": "grid"})
    lanes = layouts(grid).cluster_lanes
    row = score_row(grid, 11, seed=4, kind="wide")
    beats = wtu_beats(grid, row)
    assert len(beats) == 3 and min(row.scores) < 0
    assert pack_beats(lanes, beats) == [lanes.const(b).as_bits() for b in beats]


def test_profiles_are_seeded():
    assert profile_for(7) == profile_for(7)
    assert len({profile_for(s).name for s in range(60)}) == len(PROFILES)


def test_cli_corrupt_exits_1_with_the_replay_command():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.fast",
            "hcu",
            *("--seed", "3", "--transactions", "300"),
            "--corrupt",
            "7",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(
        r"^FAST FAIL unit=hcu seed=3 transactions=300 .* first: assign\[7\]", proc.stdout, re.M
    )
    assert "replay: python -m sim.fast hcu --seed 3 --transactions 300 --config tiny" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["wtx"], r"unit must be one of hcu, wtu, wtu_grid, topk, quickselect, kvmu, not 'wtx'"),
        (["hcu", "--transactions", "0"], r"argument --transactions: must be at least 1, not 0"),
        (["hcu", "--seed", "-2"], r"argument --seed: must be at least 0, not -2"),
        (["hcu", "--seed", "x"], r"argument --seed: must be an integer, not 'x'"),
        (["hcu", "--sim", "vcs"], r"--sim must be one of verilator, icarus, not 'vcs'"),
        (["hcu", "--profile", "stormy"], r"--profile must be one of none, .*, not 'stormy'"),
        (["hcu", "--set", "hcu_lanes=x"], r"--set must be FIELD=NUMBER, not 'hcu_lanes=x'"),
        (["hcu", "--config", "huge"], r"config"),
        (["hcu", "--transactions", "10", "--corrupt", "10"], r"corrupt must be a beat index"),
    ],
)
def test_cli_bad_arguments_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_harness_bad_options_name_the_option(tmp_path):
    binary = build_harness("hcu", CFG, config="tiny")
    write_chunk(tmp_path, make_chunk("hcu", CFG, 10, 1))
    for args, message in (
        (["--idle", "1.5"], "--idle must be a probability in [0, 1), not 1.5"),
        (["--seed", "x"], "--seed must be a non-negative integer, not x"),
        (["--bogus", "1"], "unknown option --bogus"),
    ):
        proc = subprocess.run([str(binary), str(tmp_path), *args], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stdout
    proc = subprocess.run([str(binary), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2 and "missing" in proc.stdout


def test_bench_speed_part_runs_the_same_stream_to_the_cycle():
    from sim.bench import _fast_speed
    from sim.cases.dre import hcu_expected, hcu_stream

    stream = hcu_stream(CFG, 300, seed=4)
    out = _fast_speed(CFG, stream, 4, long_tokens=500)
    timing = hcu_timing(CFG, stream, hcu_expected(CFG, stream))
    same, long = out["verilator sim.fast"], out["verilator sim.fast long"]
    assert same["cycles"] == timing.done[-1] + 1  # as sim.benches.tb_bench counts a cocotb run
    assert long["cycles"] > 500 and long["cycles_per_second"] > 0


# ---- KVMU: allocation and selections in phases, an AXI4 read slave in the harness ----------


def test_kvmu_no_stalls_passes_and_allocates_at_alloc_cycles(tmp_path):
    from hw.kvmu.kvmu import ALLOC_CYCLES

    verdict, chunk = run_chunk(
        "kvmu", CFG, 120, 1, config="tiny", profile=PROFILES["none"], keep=tmp_path, times=True
    )
    assert verdict.passed and verdict.mismatches == 0, verdict.line
    assert verdict.transactions == 120 and verdict.unit == "kvmu"
    t = _times(tmp_path / "times.txt")
    assert t["summary"].size == 120
    assert t["kv"].size == len(chunk.outputs["kv"]) and t["ar"].size == len(chunk.outputs["ar"])
    assert t["slot"].size == t["assign"].size == chunk.golden["tokens"]
    # Several contexts (clear strobes), one that exhausts the pool (full slots), selections
    # without any burst (clusters without chunks), max_burst splits and whole runs.
    assert sum(p.get("clear", 0) for p in chunk.phases) > 1 and chunk.golden["full"] > 0
    assert 0 in chunk.golden["summary"]["beats"]
    bins = chunk.golden["bin_counts"]
    assert bins[("kvmu.bursts", "whole_run")] and bins[("kvmu.bursts", "split_max_burst")]
    # The one exact figure of hw.kvmu without stalls: a token every ALLOC_CYCLES cycles, on
    # both allocation streams, within each allocation phase (retrieval has no exact formula).
    lo = 0
    for p in chunk.phases:
        a = p.get("assign", 0)
        for name in ("assign", "slot"):
            assert (np.diff(t[name][lo : lo + a]) == ALLOC_CYCLES).all(), (name, lo, a)
        lo += a
    assert lo == t["assign"].size


def test_kvmu_stall_profiles_pass_and_stall():
    cycles = {}
    for name in ("none", "heavy", "long_bursts"):
        verdict, _ = run_chunk("kvmu", CFG, 60, 4, config="tiny", profile=PROFILES[name])
        assert verdict.passed and verdict.transactions == 60, verdict.line
        cycles[name] = verdict.cycles
    assert cycles["heavy"] > cycles["none"] and cycles["long_bursts"] > cycles["none"]


def test_kvmu_a_corrupted_beat_fails():
    verdict, chunk = run_chunk("kvmu", CFG, 60, 4, config="tiny", corrupt=17)
    assert not verdict.passed and verdict.mismatches == 1
    assert verdict.first.startswith("kv[17] @")
    got = int(verdict.first.rsplit(" got ", 1)[1], 16)
    words = chunk.outputs["kv"][17]  # the corrupted expectation; the harness saw golden's
    assert got == sum(int(w) << 32 * i for i, w in enumerate(words)) ^ 1


def _kvmu_run(chunk, sim, profile="light"):
    """``chunk`` through the KVMU harness of ``sim`` (seed 6): the verdict."""
    return run_prepared("kvmu", CFG, chunk, 6, config="tiny", profile=PROFILES[profile], sim=sim)


@pytest.mark.parametrize("sim", FAST_SIMULATORS)
def test_kvmu_dropped_added_and_corrupted_expectations_fail(sim):
    """Every stream, the memory image, the clear strobes and the end state are checked, by
    the C++ harness and the Icarus testbench alike."""
    base = make_chunk("kvmu", CFG, 40, 6)
    verdict = _kvmu_run(base, sim)
    assert verdict.passed and verdict.transactions == 40, verdict.line
    n = len(base.outputs["kv"])

    def mutated(**streams):
        chunk = make_chunk("kvmu", CFG, 40, 6)
        for name, f in streams.items():
            chunk.outputs[name] = f(chunk.outputs[name])
        return chunk

    cases = [
        # a kv beat dropped in the middle: the first mismatch is at its index
        (dict(kv=lambda b: np.delete(b, 100, 0)), r"kv\[100\] @"),
        # the last kv beat dropped: the unit's last beat is extra
        (dict(kv=lambda b: b[:-1]), rf"kv\[{n - 1}\] @.*extra beat"),
        # one kv beat too many expected: missing, the run times out
        (
            dict(kv=lambda b: np.concatenate([b, b[-1:]])),
            rf"timeout: no handshake.*kv {n}/{n + 1}",
        ),
        (dict(ar=lambda b: [*b[:5], b[5] ^ 1 << 3, *b[6:]]), r"ar\[5\] @"),
        (dict(slot=lambda b: [*b[:9], b[9] ^ 1, *b[10:]]), r"slot\[9\] @"),
        (dict(summary=lambda b: [*b[:3], b[3] ^ 1 << 70, *b[4:]]), r"summary\[3\] @"),
    ]
    for streams, first in cases:
        verdict = _kvmu_run(mutated(**streams), sim)
        assert not verdict.passed and re.match(first, verdict.first), (first, verdict.line)
    # The memory image: a flipped bit comes back in the first kv beat that reads it.
    chunk = make_chunk("kvmu", CFG, 40, 6)
    beat = int(chunk.golden["beat_index"][30])
    first_read = int(np.flatnonzero(chunk.golden["beat_index"] == beat)[0])
    lines = chunk.files["mem.hex"].split(b"\n")
    lines[beat + 1] = b"%x" % (int(lines[beat + 1], 16) ^ 1)
    chunk.files["mem.hex"] = b"\n".join(lines)
    verdict = _kvmu_run(chunk, sim)
    assert not verdict.passed and verdict.first.startswith(f"kv[{first_read}] @"), verdict.line
    # Without its clear strobes the KVMU keeps the previous contexts' chunks: slots differ.
    chunk = make_chunk("kvmu", CFG, 40, 6)
    assert sum(ph.get("clear", 0) for ph in chunk.phases) >= 2
    chunk.phases = [{**ph, "clear": 0} for ph in chunk.phases]
    assert not _kvmu_run(chunk, sim).passed
    # The end state: busy must be low.
    chunk = make_chunk("kvmu", CFG, 40, 6)
    chunk.end = ["scalar busy 1"]
    verdict = _kvmu_run(chunk, sim)
    assert not verdict.passed and verdict.first == "busy: expected 1 got 0", verdict.line


@pytest.mark.parametrize("sim", FAST_SIMULATORS)
def test_kvmu_read_slverr_reaches_the_summary(sim):
    """Image beats answered SLVERR (``axi.txt``'s ``slverr`` lines): every selection that
    reads one expects ``error`` in its summary and gets it; without those lines the slave
    answers OKAY and the first such summary is a mismatch."""
    chunks = (make_chunk("kvmu", CFG, 40, seed) for seed in range(1, 40))
    chunk = next(c for c in chunks if 0 < sum(c.golden["summary"]["error"]) < 40)
    bins = chunk.golden["bin_counts"]
    assert bins[("kvmu.summary", "error")] == sum(chunk.golden["summary"]["error"])
    verdict = _kvmu_run(chunk, sim, profile="heavy")
    assert verdict.passed and verdict.transactions == 40, verdict.line
    first = chunk.golden["summary"]["error"].index(1)
    text = chunk.files["axi.txt"]
    chunk.files["axi.txt"] = "".join(ln for ln in text.splitlines(True) if "slverr" not in ln)
    verdict = _kvmu_run(chunk, sim)
    assert not verdict.passed and verdict.first.startswith(f"summary[{first}] @"), verdict.line


@pytest.mark.parametrize("sim", FAST_SIMULATORS)
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_burst 8", "beats: longer than max_burst 8"),
        ("boundary 64", "beats: crosses a 64-byte boundary"),
        ("outstanding 1", "bursts in flight, above outstanding 1"),
        ("base 4096", "beats: outside the memory image"),
    ],
)
def test_kvmu_axi_rule_checks_can_fail(line, message, sim):
    """The slave's burst checks, shown failing against tightened rules (the KVMU keeps the
    real ones: max_burst, 4 KB, outstanding 4, its base)."""
    chunk = make_chunk("kvmu", CFG, 30, 7)
    key = line.split()[0]
    rules = [ln for ln in chunk.files["axi.txt"].splitlines() if not ln.startswith(key)]
    chunk.files["axi.txt"] = "\n".join([*rules, line]) + "\n"
    verdict = _kvmu_run(chunk, sim, profile="none")
    assert not verdict.passed, verdict.line
    assert re.match(r"AR\[\d+\] @\d+: burst 0x[0-9a-f]+\+\d+ ", verdict.first), verdict.line
    assert message in verdict.first, verdict.line


def test_kvmu_wide_bus_bursts_cut_at_4k():
    """sim.coverage's ``split4k`` KVMU config (1 KB tokens, 24-beat bursts, a 256-bit bus):
    runs of 8 KB chunks cut at max_burst and at 4 KB boundaries, R data wider than 64 bits."""
    cfg = CFG.replace(
        resv={"head_dim": 256}, chunk_tokens=8, max_burst=24, kv_chunks=64, axi_data_bits=256
    )
    verdict, chunk = run_chunk("kvmu", cfg, 30, 3, config="split4k", profile=PROFILES["heavy"])
    assert verdict.passed and verdict.transactions == 30, verdict.line
    assert chunk.golden["bin_counts"][("kvmu.bursts", "split_4k")] > 0
    verdict, _ = run_chunk("kvmu", cfg, 30, 3, config="split4k", corrupt=40)
    assert not verdict.passed and verdict.first.startswith("kv[40] @")
