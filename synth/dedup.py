"""Deduplication of structurally identical modules in an RTLIL design.

Amaranth emits every submodule *instance* as a module of its own (``core.attn.array_b.row3.add1_0``,
``core.hasher.array.row17.mul5``, …), so a hierarchical synthesis of the paper core maps
thousands of copies of the same FP32 adder. :func:`dedup_rtlil` groups modules that are
identical up to their names and keeps one representative per group; the instances of the
others are retyped to it. Yosys then synthesises each distinct module once, the hierarchy is
kept (``synth`` without ``-flatten``), and the area of every instance is the sum over its
subtree of (its module's cells), which :mod:`synth.yosys` already computes per instance.

Equivalence is decided on text, bottom-up: a module's *key* is its RTLIL body (everything
between ``module \\NAME`` and ``end``, with the attributes written before it) in which the
type of every submodule cell is replaced by its child's representative, ports generated from
slices of a parent signal are renamed after their position, and the wire declarations are
sorted without their port positions (cells connect to ports by name). Two modules merge
only when their keys are equal character for character, so any difference in a constant, a
width, a parameter, a wire name or a child's structure keeps them apart (a miss costs
synthesis time, never correctness). Synthesis without flattening optimises each module on
its own (no constants propagate across instance boundaries), so synthesising one copy gives
exactly what synthesising each copy would.

Contract: ``dedup_rtlil(text, top) -> DedupResult``: ``text`` (the representatives only,
instance types rewritten, modules not reachable from ``top`` dropped), ``representative``
(every original module → its representative), ``instances`` (representative → how many
instances of it the flattened hierarchy holds; ``top`` counts 1), ``modules_before`` /
``modules_after``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DedupResult", "RtlilModule", "dedup_rtlil", "parse_modules"]

_CELL_RE = re.compile(r"^(\s+cell )(\\\S+)( \S+\s*)$")
#: A port the RTLIL back end named after a slice of a parent signal (``\port$<id>$<bit>``):
#: the id differs between otherwise identical copies, so such ports are renamed after their
#: port index before modules are compared.
_GEN_PORT_RE = re.compile(r"^\s+wire .*\b(?:input|output|inout) (\d+) +(\\port\$\d+\$\d+)\s*$")
_GEN_NAME_RE = re.compile(r"\\port\$\d+\$\d+(?=[\s\[]|$)")
_CONNECT_RE = re.compile(r"^(\s+connect )(\S+)(.*)$")


@dataclass
class RtlilModule:
    """One ``module ... end`` block of an RTLIL file."""

    name: str  # without the leading backslash
    head: list[str]  # attribute lines written before ``module``
    body: list[str]  # lines after ``module \\NAME`` up to (not including) ``end``
    #: Indices into ``body`` of submodule cells, and the module each one instantiates.
    cells: list[tuple[int, str]] = field(default_factory=list)
    #: Generated port names (``\\port$<id>$<bit>``) → ``\\port$i<index>``.
    port_names: dict[str, str] = field(default_factory=dict)


@dataclass
class DedupResult:
    """What :func:`dedup_rtlil` returns (see the module docstring)."""

    text: str
    top: str
    representative: dict[str, str]
    instances: Counter
    modules_before: int
    modules_after: int

    def groups(self) -> dict[str, list[str]]:
        """Representative → every module it stands for (itself first)."""
        out: dict[str, list[str]] = {}
        for mod, rep in self.representative.items():
            out.setdefault(rep, []).append(mod)
        for rep, mods in out.items():
            mods.sort(key=lambda m: (m != rep, m))
        return out


def parse_modules(text: str) -> tuple[list[str], list[RtlilModule]]:
    """Split RTLIL ``text`` into its top-level lines outside modules (e.g. ``autoidx``) and
    its modules, in file order."""
    preamble: list[str] = []
    modules: list[RtlilModule] = []
    pending: list[str] = []
    cur: RtlilModule | None = None
    for line in text.splitlines():
        if cur is not None:
            if line == "end":
                modules.append(cur)
                cur = None
            else:
                cur.body.append(line)
            continue
        if line.startswith("attribute "):
            pending.append(line)
        elif line.startswith("module "):
            name = line[len("module ") :].strip()
            if not name.startswith("\\"):
                raise ValueError(f"unexpected RTLIL module name {name!r}")
            cur = RtlilModule(name=name[1:], head=pending, body=[])
            pending = []
        elif line.strip():
            if pending:
                raise ValueError(f"RTLIL attribute before {line!r}, not before a module")
            preamble.append(line)
    if cur is not None:
        raise ValueError(f"RTLIL module {cur.name!r} has no 'end'")
    names = {m.name for m in modules}
    for m in modules:
        for i, line in enumerate(m.body):
            mt = _CELL_RE.match(line)
            if mt and mt.group(2)[1:] in names:
                m.cells.append((i, mt.group(2)[1:]))
            mp = _GEN_PORT_RE.match(line)
            if mp:
                m.port_names[mp.group(2)] = f"\\port$i{mp.group(1)}"
    return preamble, modules


def _rename(line: str, names: dict[str, str]) -> str:
    if not names or "\\port$" not in line:
        return line
    return _GEN_NAME_RE.sub(lambda mt: names.get(mt.group(0), mt.group(0)), line)


def _rewritten(
    m: RtlilModule, rep: dict[str, str], by_name: dict[str, RtlilModule], own: bool
) -> list[str]:
    """``m``'s body with its submodule cells retyped to their representatives, the
    generated port names of those cells' connections renamed after the child's ports, and
    (``own``) ``m``'s own generated port names renamed."""
    names = m.port_names if own else {}
    body = [_rename(line, names) for line in m.body]
    for i, child in m.cells:
        mt = _CELL_RE.match(m.body[i])
        assert mt is not None
        body[i] = f"{mt.group(1)}\\{rep[child]}{mt.group(3)}"
        cnames = by_name[child].port_names
        j = i + 1
        while j < len(m.body) and m.body[j].strip() != "end":
            mc = _CONNECT_RE.match(m.body[j])
            if mc:
                port = cnames.get(mc.group(2), mc.group(2))
                body[j] = f"{mc.group(1)}{port}{_rename(mc.group(3), names)}"
            j += 1
    return body


_PORT_INDEX_RE = re.compile(r"\b(input|output|inout) \d+ ")


def _key(head: list[str], body: list[str]) -> str:
    """The text two modules must share to merge: attributes, then the wire declarations
    (each with the attributes written before it) sorted and without their port *positions*
    (cells connect to ports by name), then every other line in order."""
    wires: list[str] = []
    rest: list[str] = []
    pending: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if line.startswith("  attribute "):
            pending.append(line)
        elif line.startswith("  wire "):
            wires.append("\n".join([*pending, _PORT_INDEX_RE.sub(r"\1 ", line)]))
            pending = []
        else:
            rest += pending
            rest.append(line)
            pending = []
    return "\n".join([*head, "", *sorted(wires), "", *rest, *pending])


def dedup_rtlil(text: str, top: str) -> DedupResult:
    """Merge the structurally identical modules of ``text`` (see the module docstring)."""
    preamble, modules = parse_modules(text)
    by_name = {m.name: m for m in modules}
    if top not in by_name:
        raise ValueError(f"top module {top!r} is not in the RTLIL design")
    rep: dict[str, str] = {}
    rep_of_key: dict[str, str] = {}
    body_of: dict[str, list[str]] = {}
    visiting: set[str] = set()

    def canon(name: str) -> str:
        if name in rep:
            return rep[name]
        if name in visiting:
            raise ValueError(f"recursive RTLIL hierarchy at module {name!r}")
        visiting.add(name)
        m = by_name[name]
        for _, child in m.cells:
            canon(child)
        body = _rewritten(m, rep, by_name, own=name != top)
        # the top is never merged: it keeps its name (Yosys' -top, the report's unit)
        key = _key(m.head, body) if name != top else f"top\n{name}"
        r = rep_of_key.setdefault(key, name)
        rep[name] = r
        if r == name:
            body_of[name] = body
        visiting.discard(name)
        return r

    canon(top)
    # instance counts of the representatives over the flattened hierarchy
    count: Counter = Counter()
    memo: dict[str, Counter] = {}

    def subtree(name: str) -> Counter:
        if name not in memo:
            c: Counter = Counter({name: 1})
            for _, child in by_name[name].cells:
                c.update(subtree(rep[child]))
            memo[name] = c
        return memo[name]

    count.update(subtree(top))
    out = list(preamble)
    if out:
        out.append("")
    for m in modules:  # file order, representatives only
        if rep.get(m.name) != m.name:
            continue
        out += [*m.head, f"module \\{m.name}", *body_of[m.name], "end", ""]
    return DedupResult(
        text="\n".join(out),
        top=top,
        representative=dict(rep),
        instances=count,
        modules_before=len(modules),
        modules_after=len(body_of),
    )
