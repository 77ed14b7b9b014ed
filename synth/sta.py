"""Static timing (and power) of a mapped netlist with OpenSTA.

Contract: :func:`run_sta` writes a Tcl script into the work directory, runs Debian's OpenSTA
on the netlist with the standard-cell and SRAM-macro liberties, and returns an
:class:`StaResult`: worst setup slack, fmax, TNS, worst hold slack and the critical path
(start and end points, arrival, required, the cells on it). :func:`run_power` runs OpenSTA's
``report_power`` on the power wrapper of :mod:`synth.power` with its pin activities and
returns a :class:`PowerReport` (totals, per group, per leaf instance).

Constraints (stated in every report): one ideal clock on the ``clk`` port (a virtual clock
if there is none) with the target period; inputs and outputs constrained at 0 ns external
delay against it; 10 fF on every output; no wire-load model (the OSU library has none).
fmax = 1 / (period - worst slack), i.e. the clock at which the worst path would just meet
setup.

Failure detection: OpenSTA 2019 exits 0 after a Tcl error, so the log is scanned for lines
starting with ``Error`` and for a sentinel printed by the script's last line; either raises
:class:`synth.tools.ToolError` naming OpenSTA, the step and the log.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from synth.tools import ToolError, run_tool, sta_command

__all__ = ["CriticalPath", "PowerReport", "StaResult", "fmax_mhz", "run_power", "run_sta"]

SENTINEL = "VREX_STA_DONE"
OUTPUT_LOAD_PF = 0.01


@dataclass
class CriticalPath:
    """The worst setup path of the design."""

    startpoint: str
    endpoint: str
    start_kind: str
    end_kind: str
    arrival_ns: float
    required_ns: float
    slack_ns: float
    stages: list[str] = field(default_factory=list)


@dataclass
class PowerReport:
    """OpenSTA's ``report_power`` in watts."""

    internal_w: float
    switching_w: float
    leakage_w: float
    total_w: float
    groups: dict[str, dict[str, float]]
    instances: dict[str, tuple[float, float, float, float]]  # path -> int, sw, leak, total
    annotated_pins: int = 0
    annotated_ports: int = 0
    #: With ``run_power(checks=True)``: the worst setup slack and its path.
    worst_slack_ns: float | None = None
    critical_path: CriticalPath | None = None


@dataclass
class StaResult:
    """Timing (and power) of one netlist at one clock."""

    clock_ns: float
    clock_port: str | None
    worst_slack_ns: float | None
    fmax_mhz: float | None
    tns_ns: float | None
    hold_slack_ns: float | None
    critical_path: CriticalPath | None
    log: Path
    script: Path

    @property
    def met(self) -> bool:
        return self.worst_slack_ns is not None and self.worst_slack_ns >= 0


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    if not math.isfinite(v) or abs(v) > 1e20:
        return None
    return v


# OpenSTA puts a point's kind on the next line when its name is long.
_PATH_RE = re.compile(
    r"Startpoint: (?P<start>\S+)\s+\((?P<skind>[^)]*)\)\s*\n"
    r"Endpoint: (?P<end>\S+)\s+\((?P<ekind>[^)]*)\)"
    r"(?P<body>.*?)\n\s*(?P<slack>-?[\d.]+)\s+slack \((?:MET|VIOLATED)\)",
    re.DOTALL,
)


def fmax_mhz(clock_ns: float, worst_slack_ns: float | None) -> float | None:
    """The clock at which the worst path would just meet timing, ``1 / (period - slack)``
    in MHz, or ``None`` without a slack."""
    if worst_slack_ns is None or clock_ns - worst_slack_ns <= 0:
        return None
    return 1000.0 / (clock_ns - worst_slack_ns)


def _parse_path(text: str) -> CriticalPath | None:
    m = _PATH_RE.search(text)
    if m is None:
        return None
    body = m.group("body")
    arrival = re.search(r"(-?[\d.]+)\s+data arrival time", body)
    required = re.search(r"(-?[\d.]+)\s+data required time", body)
    stages = re.findall(r"^\s*-?[\d.]+\s+-?[\d.]+ [\^v] (\S+) \((\S+)\)", body, re.MULTILINE)
    return CriticalPath(
        startpoint=m.group("start"),
        endpoint=m.group("end"),
        start_kind=m.group("skind"),
        end_kind=m.group("ekind"),
        arrival_ns=float(arrival.group(1)) if arrival else float("nan"),
        required_ns=float(required.group(1)) if required else float("nan"),
        slack_ns=float(m.group("slack")),
        stages=[f"{pin} ({cell})" for pin, cell in stages],
    )


_NUM = r"(-?[\d.]+(?:e[-+]?\d+)?)"


def _parse_power(text: str) -> PowerReport | None:
    groups: dict[str, dict[str, float]] = {}
    for name in ("Sequential", "Combinational", "Macro", "Pad", "Total"):
        m = re.search(rf"^{name}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}", text, re.MULTILINE)
        if m:
            groups[name.lower()] = {
                "internal_w": float(m.group(1)),
                "switching_w": float(m.group(2)),
                "leakage_w": float(m.group(3)),
                "total_w": float(m.group(4)),
            }
    if "total" not in groups:
        return None
    inst: dict[str, tuple[float, float, float, float]] = {}
    section = text.split("VREX_INSTANCE_POWER", 1)
    if len(section) == 2:
        for m in re.finditer(
            rf"^\s*{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+(\S+)\s*$", section[1], re.MULTILINE
        ):
            inst[m.group(5)] = tuple(float(m.group(i)) for i in range(1, 5))  # type: ignore[assignment]
    pins = re.search(r"VREX_ANNOTATED_PINS (\d+)", text)
    ports = re.search(r"VREX_ANNOTATED_PORTS (\d+)", text)
    t = groups["total"]
    return PowerReport(
        internal_w=t["internal_w"],
        switching_w=t["switching_w"],
        leakage_w=t["leakage_w"],
        total_w=t["total_w"],
        groups={k: v for k, v in groups.items() if k != "total"},
        instances=inst,
        annotated_pins=int(pins.group(1)) if pins else 0,
        annotated_ports=int(ports.group(1)) if ports else 0,
    )


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _run_script(
    script: Path, lines: list[str], *, step: str, workdir: Path, log: Path, timeout: float
) -> str:
    """Write ``lines`` (ending with the sentinel) to ``script`` and run OpenSTA on it.

    OpenSTA exits 0 on Tcl errors, so its log is scanned for errors and the sentinel printed
    by the script's last line must appear: otherwise the script stopped early.
    """
    script.write_text("\n".join(lines) + "\n")
    out = run_tool(
        "OpenSTA",
        step,
        [*sta_command(), "-no_splash", "-exit", script.name],
        cwd=workdir,
        log=log,
        timeout=timeout,
        error_patterns=[r"^Error", r"^Warning: .*(different sizes|not found)"],
    )
    if SENTINEL not in out:
        raise ToolError("OpenSTA", step, log, None, "    the script did not run to its end")
    return out


def run_sta(
    netlist: Path,
    top: str,
    liberties: list[Path],
    workdir: Path,
    clock_ns: float,
    *,
    clock_port: str | None = "clk",
    step: str = "timing",
    timeout: float = 3600,
) -> StaResult:
    """Static timing of ``netlist`` (top ``top``) at ``clock_ns``; see the module docstring."""
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, not {clock_ns!r}")
    workdir = Path(workdir)
    tag = step.replace(" ", "_")
    script = workdir / f"sta_{tag}.tcl"
    log = workdir / f"sta_{tag}.log"
    lines = [f"read_liberty {{{_rel(lib, workdir)}}}" for lib in liberties]
    lines += [
        f"read_verilog {{{_rel(netlist, workdir)}}}",
        f"link_design {{{top}}}",
        f"set vx_clk_port [get_ports -quiet {{{clock_port}}}]"
        if clock_port
        else "set vx_clk_port {}",
        "if {[llength $vx_clk_port]} {",
        f"  create_clock -name clk -period {clock_ns} $vx_clk_port",
        '  puts "VREX_CLOCK port"',
        "  set vx_inputs [delete_from_list [all_inputs] $vx_clk_port]",
        "} else {",
        f"  create_clock -name clk -period {clock_ns}",
        '  puts "VREX_CLOCK virtual"',
        "  set vx_inputs [all_inputs]",
        "}",
        "if {[llength $vx_inputs]} { set_input_delay 0 -clock clk $vx_inputs }",
        "if {[llength [all_outputs]]} {",
        "  set_output_delay 0 -clock clk [all_outputs]",
        f"  set_load {OUTPUT_LOAD_PF} [all_outputs]",
        "}",
        "report_checks -path_delay max -digits 4",
        'puts "VREX_WS_MAX [sta::worst_slack -max]"',
        'puts "VREX_WS_MIN [sta::worst_slack -min]"',
        "report_tns",
    ]
    lines.append(f'puts "{SENTINEL}"')
    out = _run_script(script, lines, step=step, workdir=workdir, log=log, timeout=timeout)
    clock_kind = re.search(r"VREX_CLOCK (\w+)", out)
    ws = re.search(r"VREX_WS_MAX (\S+)", out)
    wh = re.search(r"VREX_WS_MIN (\S+)", out)
    tns = re.search(r"^tns (\S+)", out, re.MULTILINE)
    worst = _float(ws.group(1)) if ws else None
    fmax = fmax_mhz(clock_ns, worst)
    path = _parse_path(out.split("VREX_WS_MAX")[0])
    return StaResult(
        clock_ns=clock_ns,
        clock_port=clock_port if clock_kind and clock_kind.group(1) == "port" else None,
        worst_slack_ns=worst,
        fmax_mhz=fmax,
        tns_ns=_float(tns.group(1)) if tns else None,
        hold_slack_ns=_float(wh.group(1)) if wh else None,
        critical_path=path,
        log=log,
        script=script,
    )


def run_power(
    netlist: Path,
    top: str,
    liberties: list[Path],
    workdir: Path,
    clock_ns: float,
    activity_tcl: Path,
    *,
    output_nets: list[str] = (),
    clock_port: str = "clk",
    checks: bool = False,
    step: str = "power",
    timeout: float = 3600,
) -> PowerReport:
    """OpenSTA's ``report_power`` of ``netlist`` (the power wrapper of
    :func:`synth.power.write_power_netlist`) with the pin activities of ``activity_tcl``.

    Returns the totals as OpenSTA prints them and the power of every leaf instance; callers
    sum the instances they own (the wrapper's source flops are not part of the design).
    With ``checks``, the same run also reports the worst setup path (``worst_slack_ns``,
    ``critical_path``): the wrapper drives every input from a flop, so every path from a
    flop or an input to a flop is timed.
    """
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, not {clock_ns!r}")
    workdir = Path(workdir)
    tag = step.replace(" ", "_")
    script = workdir / f"sta_{tag}.tcl"
    log = workdir / f"sta_{tag}.log"
    lines = [f"read_liberty {{{_rel(lib, workdir)}}}" for lib in liberties]
    lines += [
        f"read_verilog {{{_rel(netlist, workdir)}}}",
        f"link_design {{{top}}}",
        f"create_clock -name clk -period {clock_ns} [get_ports {{{clock_port}}}]",
    ]
    for net in output_nets:
        lines.append(f"set_load {OUTPUT_LOAD_PF} [get_nets {{{net}*}}]")
    lines += [
        f"source {{{_rel(activity_tcl, workdir)}}}",
    ]
    if checks:
        lines += [
            "report_checks -path_delay max -digits 4",
            'puts "VREX_WS_MAX [sta::worst_slack -max]"',
        ]
    lines += [
        "report_power -digits 6",
        'puts "VREX_INSTANCE_POWER"',
        "report_power -instances [get_cells -hierarchical *] -digits 6",
        f'puts "{SENTINEL}"',
    ]
    out = _run_script(script, lines, step=step, workdir=workdir, log=log, timeout=timeout)
    power = _parse_power(out)
    if power is None:
        raise ToolError("OpenSTA", step, log, None, "    no power report in the log")
    if checks:
        ws = re.search(r"VREX_WS_MAX (\S+)", out)
        if ws is None:
            raise ToolError("OpenSTA", step, log, None, "    no worst slack in the log")
        power.worst_slack_ns = _float(ws.group(1))
        power.critical_path = _parse_path(out.split("VREX_WS_MAX")[0])
    return power
