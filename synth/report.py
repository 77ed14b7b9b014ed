"""The synthesis report: JSON for machines (with a schema), Markdown and PNG charts for people.

Contract:
- :data:`SCHEMA` describes ``report.json`` (a small JSON-Schema subset: type, required,
  properties, items, enum, minimum); :func:`validate` returns the list of violations and
  :func:`check` raises ``ValueError`` listing them. The flow validates before writing.
- :func:`write_markdown` and :func:`write_charts` render a validated report: the summary
  table (raw 0.18 µm figures and, labelled as estimates, the 14 nm scaled ones), per-module
  area hierarchy, memories, critical path, power with its activity source, the comparison
  with the paper, and charts (area breakdown, fmax, power, paper comparison / DRE share).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "PAPER",
    "SCHEMA",
    "check",
    "validate",
    "write_charts",
    "write_json",
    "write_markdown",
]

#: The paper's figures (14 nm, 0.8 V, 800 MHz): V-Rex (arXiv 2512.12284), shared/SPEC.md §1.
PAPER = {
    "node": "14 nm, 0.8 V, 800 MHz",
    "dre_area_mm2": 0.04,
    "dre_power_mw": 57.0,
    "dre_area_share": 0.020,
    "dre_power_share": 0.022,
    "core_area_mm2": 1.89,
    "core_power_mw": 2609.0,
}

_NUM = ["number", "integer"]
_OPT_NUM = ["number", "integer", "null"]

_AREA = {
    "type": "object",
    "required": [
        "total_um2",
        "std_cell_um2",
        "comb_um2",
        "seq_um2",
        "macro_um2",
        "cells",
        "flops",
        "hierarchy",
        "memories",
    ],
    "properties": {
        "total_um2": {"type": _NUM, "minimum": 0},
        "std_cell_um2": {"type": _NUM, "minimum": 0},
        "comb_um2": {"type": _NUM, "minimum": 0},
        "seq_um2": {"type": _NUM, "minimum": 0},
        "macro_um2": {"type": _NUM, "minimum": 0},
        "cells": {"type": "integer", "minimum": 0},
        "flops": {"type": "integer", "minimum": 0},
        "hierarchy": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "path",
                    "module",
                    "cells",
                    "flops",
                    "comb_um2",
                    "seq_um2",
                    "macro_um2",
                    "total_um2",
                ],
                "properties": {
                    "path": {"type": "string"},
                    "module": {"type": "string"},
                    "cells": {"type": "integer", "minimum": 0},
                    "flops": {"type": "integer", "minimum": 0},
                    "total_um2": {"type": _NUM, "minimum": 0},
                },
            },
        },
        "memories": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["module", "name", "width", "depth", "bits", "kind"],
                "properties": {
                    "kind": {"enum": ["sram_macro", "flip_flops", "rom_logic"]},
                    "bits": {"type": "integer", "minimum": 1},
                    "area_um2": {"type": _OPT_NUM},
                },
            },
        },
    },
}

_TIMING = {
    "type": "object",
    "required": ["clock_ns", "worst_slack_ns", "fmax_mhz", "met", "critical_path", "log"],
    "properties": {
        "clock_ns": {"type": _NUM, "minimum": 0},
        "worst_slack_ns": {"type": _OPT_NUM},
        "fmax_mhz": {"type": _OPT_NUM},
        "met": {"type": "boolean"},
        "critical_path": {
            "type": ["object", "null"],
            "required": ["startpoint", "endpoint", "arrival_ns", "slack_ns", "stages"],
            "properties": {
                "startpoint": {"type": "string"},
                "endpoint": {"type": "string"},
                "stages": {"type": "array", "items": {"type": "string"}},
            },
        },
        "log": {"type": "string"},
    },
}

_POWER = {
    "type": ["object", "null"],
    "required": [
        "clock_mhz",
        "activity_mode",
        "activity_source",
        "annotated_fraction",
        "nets",
        "std_cell",
        "sram",
        "dynamic_w",
        "leakage_w",
        "total_w",
        "hierarchy",
    ],
    "properties": {
        "clock_mhz": {"type": _NUM, "minimum": 0},
        "activity_mode": {"enum": ["simulation", "default"]},
        "activity_source": {"type": "string"},
        "annotated_fraction": {"type": _NUM, "minimum": 0},
        "nets": {"type": "object"},
        "std_cell": {
            "type": "object",
            "required": ["internal_w", "switching_w", "leakage_w", "total_w"],
        },
        "sram": {"type": "object", "required": ["dynamic_w", "leakage_w", "macros"]},
        "dynamic_w": {"type": _NUM, "minimum": 0},
        "leakage_w": {"type": _NUM, "minimum": 0},
        "total_w": {"type": _NUM, "minimum": 0},
        "hierarchy": {"type": "array"},
    },
}

_SCALED = {
    "type": ["object", "null"],
    "required": ["label", "node", "model", "area_mm2", "fmax_mhz", "target_mhz", "total_w"],
    "properties": {
        "label": {"enum": ["estimate"]},
        "area_mm2": {"type": _NUM, "minimum": 0},
        "fmax_mhz": {"type": _OPT_NUM},
        "total_w": {"type": _OPT_NUM},
    },
}

#: Schema of report.json.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "kind",
        "schema_version",
        "preset",
        "created",
        "tools",
        "library",
        "clock_ns",
        "constraints",
        "activity",
        "sram_model",
        "scaling",
        "modules",
        "missing",
        "paper",
        "comparison",
    ],
    "properties": {
        "kind": {"enum": ["vrex-synth-report"]},
        "schema_version": {"enum": [1]},
        "preset": {"type": "string"},
        "created": {"type": "string"},
        "tools": {"type": "object"},
        "library": {"type": "object", "required": ["path", "name", "node", "vdd"]},
        "clock_ns": {"type": _NUM, "minimum": 0},
        "constraints": {"type": "string"},
        "activity": {
            "type": "object",
            "required": ["mode", "cycles", "note"],
            "properties": {
                "mode": {"enum": ["simulation", "default"]},
                "cycles": {"type": ["integer", "null"], "minimum": 1},
                "note": {"type": "string"},
            },
        },
        "sram_model": {"type": "object", "required": ["min_bits", "source"]},
        "scaling": {
            "type": "object",
            "required": ["model", "node", "target_mhz", "factors"],
            "properties": {
                "target_mhz": {"type": _NUM, "minimum": 0},
                "factors": {
                    "type": "object",
                    "required": ["area", "delay", "energy", "static_power"],
                },
            },
        },
        "modules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "status",
                    "error",
                    "runtime_s",
                    "area",
                    "timing",
                    "power",
                    "scaled",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "status": {"enum": ["ok", "failed"]},
                    "error": {"type": ["string", "null"]},
                    "runtime_s": {"type": _NUM, "minimum": 0},
                    "area": {
                        "type": ["object", "null"],
                        **{k: v for k, v in _AREA.items() if k != "type"},
                    },
                    "timing": {
                        "type": ["object", "null"],
                        **{k: v for k, v in _TIMING.items() if k != "type"},
                    },
                    "power": _POWER,
                    "scaled": _SCALED,
                    "module_timing": {
                        "type": "object",
                        "required": [
                            "what",
                            "clock_ns",
                            "worst_slack_ns",
                            "fmax_bound_mhz",
                            "module",
                            "critical_path",
                            "log",
                        ],
                    },
                },
            },
        },
        "missing": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "reason"]},
        },
        "paper": {"type": "object", "required": list(PAPER)},
        "comparison": {
            "type": "object",
            "required": ["dre", "dre_share_of_core"],
            "properties": {
                "dre": {"type": "object", "required": ["status", "note"]},
                "dre_share_of_core": {
                    "type": "object",
                    "required": ["status", "reason"],
                    "properties": {"status": {"type": "string", "enum": ["ok", "missing"]}},
                },
            },
        },
    },
}

_PY_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _PY_TYPES[name])


def validate(instance: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
    """Violations of ``schema`` by ``instance``, as ``"<json path>: <problem>"`` strings."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(instance, t) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']!r}")
    if "minimum" in schema and _type_ok(instance, "number") and instance < schema["minimum"]:
        errors.append(f"{path}: {instance!r} is below the minimum {schema['minimum']!r}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required key {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                errors += validate(instance[key], sub, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


_SHARE_ROW = {
    "type": "object",
    "required": ["name", "kind", "what", "area_um2", "area_share", "power_w", "power_share"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["submodule", "sram_macro", "top_logic"]},
        "area_um2": {"type": _NUM},
        "area_share": {"type": _OPT_NUM},
        "power_w": {"type": _OPT_NUM},
        "power_share": {"type": _OPT_NUM},
    },
}

#: ``comparison.dre_share_of_core`` when its status is ``ok`` (flow.core_breakdown).
SHARE_SCHEMA = {
    "type": "object",
    "required": [
        "status",
        "reason",
        "part",
        "area_share",
        "power_share",
        "part_area_um2",
        "part_power_w",
        "core_area_um2",
        "core_power_w",
        "paper_area_share",
        "paper_power_share",
        "dominant",
        "breakdown",
    ],
    "properties": {
        "area_share": {"type": "number", "minimum": 0},
        "power_share": {"type": _OPT_NUM},
        "part_area_um2": {"type": _NUM},
        "part_power_w": {"type": _OPT_NUM},
        "core_area_um2": {"type": _NUM},
        "core_power_w": {"type": _OPT_NUM},
        "paper_area_share": {"type": _NUM},
        "paper_power_share": {"type": _NUM},
        "dominant": {"type": "string"},
        "breakdown": {"type": "array", "items": _SHARE_ROW},
    },
}


def check(report: dict[str, Any]) -> None:
    """Raise ``ValueError`` listing every schema violation of ``report``."""
    errors = validate(report)
    share = report.get("comparison", {}).get("dre_share_of_core")
    if isinstance(share, dict) and share.get("status") == "ok":
        errors += validate(share, SHARE_SCHEMA, "$.comparison.dre_share_of_core")
    if errors:
        raise ValueError("report.json does not match its schema:\n  " + "\n  ".join(errors))


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Validate ``report`` and write it as JSON."""
    check(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


# --- Markdown ------------------------------------------------------------------------------


def _f(value: Any, fmt: str = "{:.3g}", none: str = "–") -> str:
    if value is None:
        return none
    return fmt.format(value)


def _mm2(um2: float | None) -> str:
    return _f(None if um2 is None else um2 * 1e-6, "{:.4f}")


def _mw(w: float | None) -> str:
    return _f(None if w is None else w * 1e3, "{:.3g}")


def write_markdown(report: dict[str, Any], path: Path, charts: list[Path] = ()) -> Path:
    """Human-readable report of a validated ``report``."""
    r = report
    lib = r["library"]
    sc = r["scaling"]
    act = r["activity"]
    lines = [
        f"# Synthesis report — preset `{r['preset']}`",
        "",
        f"Generated {r['created']} by `{r.get('command', 'python -m synth.flow')}`.",
        "",
        f"- Library: **{lib['name']}** ({lib['node']}, {lib['vdd']} V), `{lib['path']}`. "
        "Areas are in that library's units (µm²).",
        f"- Tools: {', '.join(f'{k} {v}' for k, v in r['tools'].items())}.",
        f"- Clock: **{r['clock_ns']} ns** ({1000 / r['clock_ns']:.0f} MHz) for timing and power. "
        f"{r['constraints']}",
        f"- Activity: **{act['mode']}** — {act['note']}",
        f"- Memories of ≥ {r['sram_model']['min_bits']} bits are SRAM macros costed by "
        f"{r['sram_model']['source']}; smaller ones are flip-flops. **Estimates.**",
        f"- Scaled columns: **estimate** for {sc['node']} with {sc['model']} "
        f"(area ×{sc['factors']['area']:.4g}, delay ×{sc['factors']['delay']:.4g}, "
        f"energy ×{sc['factors']['energy']:.4g}, leakage ×{sc['factors']['static_power']:.4g}); "
        f"power quoted at {sc['target_mhz']:g} MHz.",
        "",
        "## Summary",
        "",
        "| module | status | area mm² (0.18 µm) | cells | flops | SRAM mm² | fmax MHz | "
        f"power mW @ {1000 / r['clock_ns']:.0f} MHz | nets annotated | "
        "area mm² (14 nm, est.) | fmax MHz (14 nm, est.) | power mW @ 800 MHz (14 nm, est.) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["modules"]:
        a, t, p, s = m["area"], m["timing"], m["power"], m["scaled"]
        lines.append(
            f"| {m['name']} | {m['status']} | {_mm2(a and a['total_um2'])} | "
            f"{_f(a and a['cells'], '{}')} | {_f(a and a['flops'], '{}')} | "
            f"{_mm2(a and a['macro_um2'])} | {_f(t and t['fmax_mhz'], '{:.1f}')} | "
            f"{_mw(p and p['total_w'])} | "
            f"{_f(p and p['annotated_fraction'] * 100, '{:.0f} %')} | "
            f"{_f(s and s['area_mm2'], '{:.5f}')} | {_f(s and s['fmax_mhz'], '{:.0f}')} | "
            f"{_mw(s and s['total_w'])} |"
        )
    for miss in r["missing"]:
        lines.append(
            f"| {miss['name']} | **missing** | {miss['reason']} |  |  |  |  |  |  |  |  |  |"
        )
    lines += ["", "## Against the paper (14 nm, 0.8 V, 800 MHz)", ""]
    comp = r["comparison"]
    dre = comp["dre"]
    pp = r["paper"]
    lines += [
        "| quantity | paper | ours (scaled estimate) | ours (raw 0.18 µm) |",
        "|---|---:|---:|---:|",
        f"| DRE area | {pp['dre_area_mm2']} mm² | {_f(dre.get('scaled_area_mm2'), '{:.4f}')} mm² | "
        f"{_f(dre.get('raw_area_mm2'), '{:.3f}')} mm² |",
        f"| DRE power | {pp['dre_power_mw']} mW | {_f(dre.get('scaled_power_mw'), '{:.3g}')} mW | "
        f"{_f(dre.get('raw_power_mw'), '{:.3g}')} mW @ {1000 / r['clock_ns']:.0f} MHz |",
    ]
    share = comp["dre_share_of_core"]
    ok = share["status"] == "ok"
    core = next((m for m in r["modules"] if m["name"] == "core" and m["status"] == "ok"), None)
    sc = core["scaled"] if core else None

    def pct(v: Any) -> str:
        return "–" if v is None else f"{v * 100:.1f} %"

    lines += [
        f"| core area | {pp['core_area_mm2']} mm² | "
        f"{_f(sc and sc['area_mm2'], '{:.4f}') + ' mm²' if sc else 'missing'} | "
        f"{_mm2(share['core_area_um2']) + ' mm²' if ok else 'missing'} |",
        f"| core power | {pp['core_power_mw']} mW | "
        f"{_f(sc and sc['total_w'] * 1e3, '{:.3g}') + ' mW' if sc else 'missing'} | "
        f"{_mw(share['core_power_w']) + ' mW' if ok else 'missing'} |",
        f"| DRE share of core area | {pp['dre_area_share'] * 100:.1f} % | | "
        f"{pct(share['area_share']) if ok else share['status']} |",
        f"| DRE share of core power | {pp['dre_power_share'] * 100:.1f} % | | "
        f"{pct(share['power_share']) if ok else share['status']} |",
        "",
        f"DRE: {dre.get('note', '')}  ",
        f"DRE share of the core: {share['reason']}.",
        "",
    ]
    if ok:
        lines += [
            f"**What dominates the core:** {share['dominant']}",
            "",
            "### Core area and power by direct submodule",
            "",
            "| part | kind | what | area mm² | area share | power mW | power share |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for row in share["breakdown"]:
            lines.append(
                f"| {row['name']} | {row['kind']} | {row['what']} | {_mm2(row['area_um2'])} | "
                f"{pct(row['area_share'])} | {_mw(row['power_w'])} | {pct(row['power_share'])} |"
            )
        lines.append("")
    for m in r["modules"]:
        lines += [f"## {m['name']}", ""]
        if m["status"] != "ok":
            lines += [f"**Failed:** `{m['error']}`", ""]
        a = m["area"]
        if a:
            lines += [
                f"Area {a['total_um2']:.0f} µm²: combinational {a['comb_um2']:.0f}, sequential "
                f"{a['seq_um2']:.0f} ({a['flops']} flops), SRAM macros {a['macro_um2']:.0f}."
                + (
                    f" Identical modules merged before synthesis: {a['dedup']['modules_before']} "
                    f"modules, {a['dedup']['modules_after']} distinct, each synthesised once and "
                    "counted per instance (the module column names the representative)."
                    if a.get("dedup")
                    else ""
                ),
                "",
                "| instance | module | cells | flops | comb µm² | seq µm² | SRAM µm² | total µm² |",
                "|---|---|---:|---:|---:|---:|---:|---:|",
            ]
            for h in a["hierarchy"]:
                lines.append(
                    f"| {h['path'] or '(top)'} | {h['module']} | {h['cells']} | {h['flops']} | "
                    f"{h['comb_um2']:.0f} | {h['seq_um2']:.0f} | {h['macro_um2']:.0f} | "
                    f"{h['total_um2']:.0f} |"
                )
            if a["memories"]:
                lines += [
                    "",
                    "| memory | shape | ports | implemented as | area µm² | E read pJ | "
                    "E write pJ | leakage nW | access ns |",
                    "|---|---|---|---|---:|---:|---:|---:|---:|",
                ]
                for mem in a["memories"]:
                    lines.append(
                        f"| {mem['module']}/{mem['name']}"
                        + (f" (×{mem['instances']})" if mem.get("instances", 1) != 1 else "")
                        + f" | {mem['depth']}×{mem['width']} "
                        f"({mem['bits']} b) | {mem['read_ports']}R{mem['write_ports']}W | "
                        f"{mem['kind']} | {_f(mem.get('area_um2'), '{:.0f}')} | "
                        f"{_f(mem.get('e_read_pj'))} | {_f(mem.get('e_write_pj'))} | "
                        f"{_f(mem.get('leakage_nw'))} | {_f(mem.get('t_access_ns'))} |"
                    )
            lines.append("")
        t = m["timing"]
        if m.get("timing_note"):
            lines += [f"Timing {m['timing_note']}.", ""]
        mt = m.get("module_timing")
        if mt:
            cp = mt["critical_path"]
            lines += [
                f"Timing inside each distinct module at {mt['clock_ns']} ns: worst slack "
                f"{_f(mt['worst_slack_ns'], '{:.3f}')} ns, fmax at most "
                f"**{_f(mt['fmax_bound_mhz'], '{:.1f}')} MHz** "
                f"({_f(mt['scaled_fmax_bound_mhz'], '{:.0f}')} MHz scaled, estimate), in "
                f"`{mt['module']}`"
                + (f" (`{cp['startpoint']}` → `{cp['endpoint']}`)" if cp else "")
                + f". {mt['what']} Log: `{mt['log']}`.",
                "",
            ]
        if t:
            cp = t["critical_path"]
            lines += [
                f"Timing at {t['clock_ns']} ns: worst slack {_f(t['worst_slack_ns'], '{:.3f}')} ns"
                f" ({'met' if t['met'] else 'VIOLATED'}), "
                f"fmax **{_f(t['fmax_mhz'], '{:.1f}')} MHz**, "
                f"hold slack {_f(t.get('hold_slack_ns'), '{:.3f}')} ns. Log: `{t['log']}`.",
            ]
            if cp:
                lines += [
                    "",
                    f"Critical path: `{cp['startpoint']}` → `{cp['endpoint']}`, arrival "
                    f"{cp['arrival_ns']:.3f} ns, {len(cp['stages'])} stages"
                    + (
                        f", in instance `{cp['instance'] or '(top)'}` (module `{cp['module']}`)."
                        if cp.get("module")
                        else "."
                    ),
                ]
            lines.append("")
        p = m["power"]
        if p:
            sc_ = p["std_cell"]
            nets = p["nets"]
            lines += [
                f"Power at {p['clock_mhz']:.0f} MHz: **{p['total_w'] * 1e3:.3g} mW** "
                f"(standard cells {sc_['total_w'] * 1e3:.3g} mW = internal "
                f"{sc_['internal_w'] * 1e3:.3g} + switching {sc_['switching_w'] * 1e3:.3g} + "
                f"leakage {sc_['leakage_w'] * 1e3:.3g}; SRAM dynamic "
                f"{p['sram']['dynamic_w'] * 1e3:.3g} mW, SRAM leakage "
                f"{p['sram']['leakage_w'] * 1e3:.3g} mW).",
                "",
                f"Activity ({p['activity_mode']}): {p['activity_source']}. Nets: "
                + ", ".join(f"{k} {v}" for k, v in sorted(nets.items()))
                + f" — **{p['annotated_fraction'] * 100:.1f} % annotated** from the simulation, "
                "the rest propagated.",
                "",
            ]
        s = m["scaled"]
        if s:
            lines += [
                f"Scaled (**estimate**, {s['node']}): area {s['area_mm2']:.5f} mm², fmax "
                f"{_f(s['fmax_mhz'], '{:.0f}')} MHz, power {_mw(s['total_w'])} mW at "
                f"{s['target_mhz']:g} MHz.",
                "",
            ]
    if charts:
        lines += ["## Charts", ""]
        lines += [f"![{c.stem}]({c.name})" for c in charts]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --- charts ----------------------------------------------------------------------------------


def write_charts(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG charts of a validated report into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    mods = [m for m in report["modules"] if m["status"] == "ok"]
    names = [m["name"] for m in mods]
    paths: list[Path] = []
    missing = [m["name"] for m in report["missing"]]
    note = f"missing (not built yet): {', '.join(missing)}" if missing else ""

    def finish(fig: Any, name: str) -> None:
        if note:
            fig.text(0.01, 0.01, note, fontsize=7, color="gray")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        p = out_dir / name
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    # 1. area breakdown
    fig, ax = plt.subplots(figsize=(7, 4))
    comb = [m["area"]["comb_um2"] * 1e-6 for m in mods]
    seq = [m["area"]["seq_um2"] * 1e-6 for m in mods]
    mac = [m["area"]["macro_um2"] * 1e-6 for m in mods]
    ax.bar(names, comb, label="combinational")
    ax.bar(names, seq, bottom=comb, label="sequential (flops)")
    ax.bar(
        names,
        mac,
        bottom=[c + s for c, s in zip(comb, seq, strict=True)],
        label="SRAM macros (model)",
    )
    ax.set_ylabel("area, mm² (OSU 0.18 µm)")
    ax.set_title(f"Area breakdown — preset {report['preset']}")
    ax.legend(fontsize=8)
    finish(fig, "area_breakdown.png")

    # 2. fmax raw and scaled
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    raw = [(m["timing"] or {}).get("fmax_mhz") or 0 for m in mods]
    scl = [(m["scaled"] or {}).get("fmax_mhz") or 0 for m in mods]
    axes[0].bar(names, raw, color="tab:blue")
    axes[0].set_title("fmax, 0.18 µm (OpenSTA)")
    axes[0].set_ylabel("MHz")
    axes[1].bar(names, scl, color="tab:orange")
    axes[1].axhline(800, color="k", ls="--", lw=1, label="paper clock 800 MHz")
    axes[1].set_title("fmax, 14 nm (estimate)")
    axes[1].legend(fontsize=8)
    finish(fig, "fmax.png")

    # 3. power breakdown
    fig, ax = plt.subplots(figsize=(7, 4))
    parts = [
        ("internal", lambda p: p["std_cell"]["internal_w"]),
        ("switching", lambda p: p["std_cell"]["switching_w"]),
        ("std-cell leakage", lambda p: p["std_cell"]["leakage_w"]),
        ("SRAM dynamic", lambda p: p["sram"]["dynamic_w"]),
        ("SRAM leakage", lambda p: p["sram"]["leakage_w"]),
    ]
    bottom = [0.0] * len(mods)
    for label, get in parts:
        vals = [get(m["power"]) * 1e3 if m["power"] else 0.0 for m in mods]
        ax.bar(names, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel(f"mW @ {1000 / report['clock_ns']:.0f} MHz (0.18 µm)")
    ax.set_title(f"Power ({report['activity']['mode']} activity)")
    ax.legend(fontsize=8)
    finish(fig, "power.png")

    # 4. paper comparison and DRE share of the core
    dre = report["comparison"]["dre"]
    paper = report["paper"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].bar(["paper", "ours (est.)"], [paper["dre_area_mm2"], dre.get("scaled_area_mm2") or 0])
    axes[0].set_title(f"DRE area, mm² (14 nm) — ours: {report['preset']}")
    axes[1].bar(["paper", "ours (est.)"], [paper["dre_power_mw"], dre.get("scaled_power_mw") or 0])
    axes[1].set_title(f"DRE power, mW (800 MHz) — ours: {report['preset']}")
    share = report["comparison"]["dre_share_of_core"]
    axes[2].bar(
        ["area", "power"],
        [paper["dre_area_share"] * 100, paper["dre_power_share"] * 100],
        label="paper",
    )
    axes[2].set_title("DRE share of core, %")
    if share["status"] == "ok":
        axes[2].bar(
            ["area ", "power "],
            [share["area_share"] * 100, (share["power_share"] or 0) * 100],
            label=f"ours ({report['preset']}, raw)",
        )
    else:
        axes[2].text(
            0.5,
            0.5,
            f"ours: {share['status']}",
            transform=axes[2].transAxes,
            ha="center",
            color="red",
        )
    axes[2].legend(fontsize=8)
    finish(fig, "paper_comparison.png")
    return paths
