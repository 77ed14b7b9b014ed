"""A small reader for Liberty (.lib) files: cell areas, leakage, pin directions and functions.

Contract: :func:`read_liberty` parses the group/attribute syntax of a Liberty file (enough of
it for the OSU standard-cell libraries and the SRAM macro libraries that :mod:`synth.sram`
writes) and returns a :class:`Library`. Only what the flow needs is kept: per cell its area
(library area units, µm² for OSU 0.18 µm), leakage, whether it is sequential, and per pin its
direction and Boolean ``function`` (parsed into a :class:`Expr` tree by :func:`parse_function`).
Timing and power tables are skipped: OpenSTA reads those itself.

Unparseable input raises :class:`LibertyError` naming the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Cell",
    "Expr",
    "LibertyError",
    "Library",
    "Pin",
    "parse_function",
    "read_liberty",
]


class LibertyError(ValueError):
    """A Liberty file or function string could not be parsed."""


@dataclass(frozen=True)
class Expr:
    """A Boolean function of pin names: ``op`` is one of ``pin``, ``not``, ``and``, ``or``,
    ``xor``, ``one``, ``zero``; ``pin`` carries the pin name, the others their operands."""

    op: str
    args: tuple[Expr, ...] = ()
    pin: str = ""

    def pins(self) -> set[str]:
        """The pin names the function reads."""
        if self.op == "pin":
            return {self.pin}
        out: set[str] = set()
        for a in self.args:
            out |= a.pins()
        return out

    def evaluate(self, values: dict[str, bool]) -> bool:
        """The function's value for the given pin values."""
        if self.op == "pin":
            return values[self.pin]
        if self.op == "one":
            return True
        if self.op == "zero":
            return False
        vals = [a.evaluate(values) for a in self.args]
        if self.op == "not":
            return not vals[0]
        if self.op == "and":
            return all(vals)
        if self.op == "or":
            return any(vals)
        if self.op == "xor":
            return bool(sum(vals) % 2)
        raise LibertyError(f"unknown operator {self.op!r}")


@dataclass
class Pin:
    """One pin (or bus) of a cell."""

    name: str
    direction: str
    function: Expr | None = None
    width: int = 1
    clock: bool = False


@dataclass
class Cell:
    """One library cell."""

    name: str
    area: float = 0.0
    leakage: float = 0.0
    sequential: bool = False
    #: Internal state names of ff/latch groups (e.g. ``IQ``) mapped to the next-state expr.
    next_state: dict[str, Expr] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)
    dont_use: bool = False
    #: A flip-flop's ``clocked_on`` expression (``CLK``, ``(!CLK)``), else empty.
    clocked_on: str = ""

    @property
    def outputs(self) -> list[Pin]:
        return [p for p in self.pins.values() if p.direction == "output"]

    @property
    def inputs(self) -> list[Pin]:
        return [p for p in self.pins.values() if p.direction == "input"]


@dataclass
class Library:
    """The cells of one Liberty file, plus its unit strings."""

    name: str
    path: Path
    cells: dict[str, Cell]
    time_unit: str = ""
    leakage_power_unit: str = ""
    nom_voltage: float | None = None

    def __contains__(self, cell: str) -> bool:
        return cell in self.cells

    def __getitem__(self, cell: str) -> Cell:
        return self.cells[cell]


# --- tokenizer / group parser --------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|\\\n)
  | (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>[{}();:,])
  | (?P<word>[^\s{}();:,"]+)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class _Group:
    kind: str
    args: list[str]
    attrs: dict[str, list[str]]
    children: list[_Group]
    line: int


def _tokens(text: str, path: Path):
    pos = 0
    line = 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise LibertyError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind not in ("ws", "comment"):
            if kind == "string":
                value = value[1:-1].replace("\\\n", "")
            yield kind, value, line
        line += value.count("\n") if kind in ("ws", "comment") else 0
        pos = m.end()


def _parse_groups(text: str, path: Path) -> _Group:
    toks = list(_tokens(text, path))
    i = 0

    def expect(value: str) -> None:
        nonlocal i
        if i >= len(toks) or toks[i][1] != value:
            got = toks[i][1] if i < len(toks) else "end of file"
            line = toks[i][2] if i < len(toks) else toks[-1][2]
            raise LibertyError(f"{path}:{line}: expected {value!r}, got {got!r}")
        i += 1

    def parse_body(group: _Group) -> None:
        nonlocal i
        while i < len(toks) and toks[i][1] != "}":
            kind, name, line = toks[i]
            if kind not in ("word", "string"):
                raise LibertyError(f"{path}:{line}: unexpected {name!r}")
            i += 1
            if i < len(toks) and toks[i][1] == ":":
                i += 1
                vals = []
                while i < len(toks) and toks[i][1] not in (";", "}"):
                    vals.append(toks[i][1])
                    i += 1
                if i < len(toks) and toks[i][1] == ";":
                    i += 1
                group.attrs[name] = vals
            elif i < len(toks) and toks[i][1] == "(":
                i += 1
                args = []
                while i < len(toks) and toks[i][1] != ")":
                    if toks[i][1] != ",":
                        args.append(toks[i][1])
                    i += 1
                expect(")")
                if i < len(toks) and toks[i][1] == "{":
                    i += 1
                    child = _Group(name, args, {}, [], line)
                    parse_body(child)
                    expect("}")
                    group.children.append(child)
                else:  # complex attribute: name (a, b, ...);
                    if i < len(toks) and toks[i][1] == ";":
                        i += 1
                    group.attrs[name] = args
            else:
                raise LibertyError(f"{path}:{line}: attribute {name!r} has no value")

    root = _Group("<root>", [], {}, [], 1)
    parse_body(root)
    if i != len(toks):
        raise LibertyError(f"{path}:{toks[i][2]}: unbalanced '}}'")
    return root


# --- function strings ------------------------------------------------------------------------

_FTOKEN = re.compile(r"\s*(?:(?P<id>[A-Za-z_][A-Za-z0-9_\[\]\.]*)|(?P<op>[!()'+|&*^])|(?P<c>[01]))")


def parse_function(text: str) -> Expr:
    """Parse a Liberty ``function`` string ("(!((A B)+C))", "A^B", "!S A + S B" ...).

    Precedence, tightest first: postfix ``'``, prefix ``!``, ``^``, AND (``&``, ``*`` or
    juxtaposition), OR (``+``, ``|``).
    """
    toks: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _FTOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise LibertyError(f"cannot parse function {text!r} at {text[pos:]!r}")
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
        pos = m.end()
    i = 0

    def peek() -> tuple[str, str] | None:
        return toks[i] if i < len(toks) else None

    def parse_or() -> Expr:
        nonlocal i
        terms = [parse_and()]
        while peek() and peek()[1] in ("+", "|"):
            i += 1
            terms.append(parse_and())
        return terms[0] if len(terms) == 1 else Expr("or", tuple(terms))

    def starts_operand(t: tuple[str, str] | None) -> bool:
        return t is not None and (t[0] in ("id", "c") or t[1] in ("!", "("))

    def parse_and() -> Expr:
        nonlocal i
        terms = [parse_xor()]
        while True:
            t = peek()
            if t and t[1] in ("&", "*"):
                i += 1
                terms.append(parse_xor())
            elif starts_operand(t):
                terms.append(parse_xor())
            else:
                break
        return terms[0] if len(terms) == 1 else Expr("and", tuple(terms))

    def parse_xor() -> Expr:
        nonlocal i
        terms = [parse_unary()]
        while peek() and peek()[1] == "^":
            i += 1
            terms.append(parse_unary())
        return terms[0] if len(terms) == 1 else Expr("xor", tuple(terms))

    def parse_unary() -> Expr:
        nonlocal i
        t = peek()
        if t is None:
            raise LibertyError(f"unexpected end of function {text!r}")
        if t[1] == "!":
            i += 1
            e = Expr("not", (parse_unary(),))
        elif t[1] == "(":
            i += 1
            e = parse_or()
            if peek() is None or peek()[1] != ")":
                raise LibertyError(f"missing ')' in function {text!r}")
            i += 1
        elif t[0] == "id":
            i += 1
            e = Expr("pin", pin=t[1])
        elif t[0] == "c":
            i += 1
            e = Expr("one" if t[1] == "1" else "zero")
        else:
            raise LibertyError(f"unexpected {t[1]!r} in function {text!r}")
        while peek() and peek()[1] == "'":
            i += 1
            e = Expr("not", (e,))
        return e

    if not toks:
        raise LibertyError("empty function string")
    expr = parse_or()
    if i != len(toks):
        raise LibertyError(f"trailing text in function {text!r}")
    return expr


# --- library -------------------------------------------------------------------------------


def _num(vals: list[str], default: float = 0.0) -> float:
    try:
        return float(vals[0])
    except (IndexError, ValueError):
        return default


def read_liberty(path: str | Path) -> Library:
    """Parse the Liberty file at ``path``.

    Raises ``FileNotFoundError`` if it does not exist and :class:`LibertyError` if it is not
    valid Liberty.
    """
    path = Path(path)
    text = path.read_text(errors="replace")
    root = _parse_groups(text, path)
    libs = [g for g in root.children if g.kind == "library"]
    if not libs:
        raise LibertyError(f"{path}: no library group")
    lib = libs[0]
    bus_widths: dict[str, int] = {}
    for g in lib.children:
        if g.kind == "type" and g.args:
            bus_widths[g.args[0]] = int(_num(g.attrs.get("bit_width", ["1"]), 1))
    cells: dict[str, Cell] = {}
    for g in lib.children:
        if g.kind != "cell" or not g.args:
            continue
        cell = Cell(
            name=g.args[0],
            area=_num(g.attrs.get("area", ["0"])),
            leakage=_num(g.attrs.get("cell_leakage_power", ["0"])),
            dont_use=g.attrs.get("dont_use", ["false"])[0] == "true",
        )
        for ch in g.children:
            if ch.kind in ("ff", "latch", "ff_bank", "latch_bank"):
                cell.sequential = True
                cell.clocked_on = ch.attrs.get("clocked_on", [""])[0].strip('"')
                key = "next_state" if ch.kind.startswith("ff") else "data_in"
                if key in ch.attrs and ch.args:
                    cell.next_state[ch.args[0]] = parse_function(ch.attrs[key][0])
                    if len(ch.args) > 1:
                        cell.next_state[ch.args[1]] = Expr(
                            "not", (parse_function(ch.attrs[key][0]),)
                        )
            elif ch.kind in ("pin", "bus") and ch.args:
                direction = ch.attrs.get("direction", ["input"])[0]
                func = ch.attrs.get("function")
                width = 1
                if ch.kind == "bus":
                    width = bus_widths.get(ch.attrs.get("bus_type", [""])[0], 1)
                cell.pins[ch.args[0]] = Pin(
                    name=ch.args[0],
                    direction=direction,
                    function=parse_function(func[0]) if func else None,
                    width=width,
                    clock=ch.attrs.get("clock", ["false"])[0] == "true",
                )
        cells[cell.name] = cell
    nom_v = lib.attrs.get("nom_voltage")
    return Library(
        name=lib.args[0] if lib.args else path.stem,
        path=path,
        cells=cells,
        time_unit=lib.attrs.get("time_unit", [""])[0],
        leakage_power_unit=lib.attrs.get("leakage_power_unit", [""])[0],
        nom_voltage=_num(nom_v) if nom_v else None,
    )
