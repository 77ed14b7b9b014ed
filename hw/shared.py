"""One generated module per distinct leaf component (issue 11: generating the paper core).

Amaranth elaborates and emits every submodule *instance* as a module of its own. The paper
core has 14 336 MACs and thousands more FP32 operators, each a BF16 multiplier and an FP32
adder with submodules of their own: tens of thousands of identical modules, which made its
generation take hours (the 16-lane core: 15 min, 8189 modules) and kept it out of
``make verilog`` and ``make synth``.

``shared(m, name, component, *key)`` adds a submodule whose logic depends only on its class
and ``key`` (its constructor arguments). Outside generation (Amaranth's simulator, the formal
and FPGA flows, which convert designs themselves) it adds ``component`` itself. While
``hw.gen`` converts a unit inside ``sharing(top)``, it adds an ``Instance`` of one module
per (class, key): the first instance's component is converted to RTLIL once (its own shared
submodules become instances too), the others are never elaborated, and their port signals
become wires of the parent driven by, or driving, the instance. The module is called
``<top>.<Class>`` (``<top>.<Class>_<n>`` for the class's n-th distinct key), so the files of
several units can be compiled together; ``Sharing.text()`` is every such module's RTLIL,
appended by ``hw.gen`` after the top's. The logic is the same as without sharing (the
cocotb regressions run this Verilog); only the module count changes.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Value
from amaranth.lib import wiring

__all__ = ["Sharing", "shared", "sharing"]

_TOP_ATTR = re.compile(r"(?m)^attribute \\top 1\n")
#: A port of a module's RTLIL as Amaranth writes it (``wire width 16 input 0  \\a``).
_PORT = re.compile(r"(?m)^  wire width \d+ (?:input|output|inout) \d+ +\\(\S+)$")


class Sharing:
    """The shared modules of one generated design (see the module docstring)."""

    def __init__(self, top: str):
        self.top = top
        #: (class, repr(key)) -> (module name, its port names)
        self._modules: dict[tuple[type, str], tuple[str, frozenset[str]]] = {}
        self._texts: list[str] = []

    def module(self, component: wiring.Component, key: tuple) -> tuple[str, frozenset[str]]:
        """The module of ``component``'s (class, key) and its ports, converted on first use."""
        cls = type(component)
        ident = (cls, repr(key))
        if ident not in self._modules:
            n = sum(c.__name__ == cls.__name__ for c, _ in self._modules)  # its n-th key
            name = f"{self.top}.{cls.__name__}" + (f"_{n}" if n else "")
            text = rtlil.convert(component, name=name, emit_src=False)
            head = text.split(f"module \\{name}\n", 1)[1].split("\nend\n", 1)[0]
            self._texts.append(_TOP_ATTR.sub("", text))
            self._modules[ident] = (name, frozenset(_PORT.findall(head)))
        else:
            component._MustUse__silence = True  # never elaborated: its instance stands for it
        return self._modules[ident]

    @property
    def modules(self) -> int:
        """How many shared modules the design has."""
        return len(self._modules)

    def text(self) -> str:
        """The RTLIL of every shared module, in the order they were first used."""
        return "".join(self._texts)


_CURRENT: contextvars.ContextVar[Sharing | None] = contextvars.ContextVar("hw_shared", default=None)


@contextlib.contextmanager
def sharing(top: str) -> Iterator[Sharing]:
    """Within this block, ``shared`` submodules elaborate to instances of shared modules."""
    token = _CURRENT.set(Sharing(top))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


class _SharedInstance(Elaboratable):
    def __init__(self, ctx: Sharing, component: wiring.Component, key: tuple):
        self._ctx, self._component, self._key = ctx, component, key

    def elaborate(self, platform):
        comp = self._component
        name, names = self._ctx.module(comp, self._key)
        ports = {}
        for path, member, value in comp.signature.flatten(comp):
            prefix = "i_" if member.flow == wiring.In else "o_"
            ports[prefix + "__".join(map(str, path))] = Value.cast(value)
        if "clk" in names:
            ports["i_clk"] = ClockSignal()
        if "rst" in names:
            ports["i_rst"] = ResetSignal()
        connected = {p[2:] for p in ports}
        if connected != names:
            raise ValueError(
                f"shared module {name}: its ports {sorted(names)} are not the signature's "
                f"{sorted(connected)}"
            )
        return Instance(name, **ports)


def shared(m: Module, name: str, component: wiring.Component, *key) -> wiring.Component:
    """Add ``component`` to ``m`` as submodule ``name``, or inside ``sharing`` an instance of
    its (class, ``key``) module; returns ``component`` (its ports are used either way)."""
    ctx = _CURRENT.get()
    m.submodules[name] = component if ctx is None else _SharedInstance(ctx, component, key)
    return component
