"""Protocol checkers attached to every cocotb bench: ``amaranth.lib.stream`` outputs and AXI4
masters of the DUT, found from the top module's ports in the generated Verilog.

Rules (a violation raises ``ProtocolError`` in the checker's task, which fails the cocotb
test, naming the port, the cycle and the field):

- stream ``<p>__valid`` / ``<p>__ready`` / ``<p>__payload`` driven by the DUT: once valid is
  high and ready low, valid stays high and the payload keeps its value until the transfer
  (the AXI-stream rule Amaranth streams follow). A changed payload is reported by field
  (the ``amaranth.lib.data`` layout of the port, looked up only on a violation).
- AXI4 master ``<p>__ar*`` / ``<p>__r*`` / ``<p>__aw*`` / ``<p>__w*`` / ``<p>__b*``: ARVALID,
  AWVALID and WVALID stay high with their payload until READY; every AR/AW burst is INCR of
  full-width beats, at most ``max_burst`` beats and does not cross a 4 KB boundary; WLAST on
  exactly the last beat of each write burst (W may run ahead of its AW); RLAST on the beat
  ARLEN announces (the slave's side, checked all the same); at most ``outstanding`` bursts
  in flight per direction (AR handshakes not yet closed by RLAST; AW or W bursts not yet
  answered on B) — the limit ``hw.kvmu.KVMemoryUnit`` and ``hw.kvmu.KVWriter`` document.

Cheap by design: one task per DUT wakes once per cycle (falling edge, ``ReadOnly``, the
phase the benches sample in), reads each output ``valid`` and reads ``ready`` and the
payload only while valid is high. A cycle with ``rst`` high forgets every pending beat and
burst (a reset may drop a stream). The checker's observations (cycles each AXI channel
waited for its handshake) feed ``sim.coverage``.

``attach_checkers(dut)`` is called by ``sim.kit.cocotb_streams.start_clock``, so every bench
gets it; ``DRE_CHECKERS=0`` turns it off (to measure its cost).
"""

from __future__ import annotations

import inspect
import os
import re
from collections import deque
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from sim.kit.cocotb_streams import cycle

__all__ = [
    "AXI_BOUNDARY",
    "ProtocolChecker",
    "ProtocolError",
    "StreamPorts",
    "attach_checkers",
    "axi_outstanding",
    "find_ports",
    "stream_ports",
    "top_ports",
]

AXI_BOUNDARY = 4096
_INCR = 1
#: Cycles a channel waited for its handshake, as ``sim.coverage`` bins.
WAIT_BINS = ("0", "1", "2-3", "4+")


class ProtocolError(AssertionError):
    """A stream or AXI protocol violation (port, cycle, field)."""


def axi_outstanding() -> int:
    """The bursts in flight the KVMU's AXI master promises at most (its default
    ``outstanding``; ``KVWriter`` has the same default)."""
    from hw.kvmu import KVMemoryUnit, KVWriter

    limits = {
        inspect.signature(cls.__init__).parameters["outstanding"].default
        for cls in (KVMemoryUnit, KVWriter)
    }
    (limit,) = limits
    return limit


def top_ports(verilog: str, top: str) -> dict[str, str]:
    """``{port name: "input" | "output"}`` of module ``top`` in ``verilog``."""
    m = re.search(rf"^module\s+\\?{re.escape(top)}\s*\(", verilog, re.M)
    if m is None:
        raise ValueError(f"top must name a module of the Verilog, not {top!r}")
    end = verilog.find("endmodule", m.end())
    body = verilog[m.end() : end if end >= 0 else None]
    decl = r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]+\]\s+)?\\?(\w+)\s*;"
    return {name: d for d, name in re.findall(decl, body, re.M)}


class StreamPorts:
    """The stream and AXI ports of a top: ``outputs`` (stream prefixes the DUT drives, with
    ``payload`` or not), ``axi`` (AXI master prefixes with ``read``/``write`` channels)."""

    def __init__(self, ports: dict[str, str]):
        self.outputs: dict[str, bool] = {}
        self.axi: dict[str, tuple[bool, bool]] = {}
        for name, direction in ports.items():
            if name.endswith("__valid") and direction == "output":
                p = name.removesuffix("__valid")
                if ports.get(f"{p}__ready") == "input":
                    self.outputs[p] = ports.get(f"{p}__payload") == "output"
            for ch in ("ar", "aw"):
                if name.endswith(f"__{ch}valid") and direction == "output":
                    p = name.removesuffix(f"__{ch}valid")
                    read, write = self.axi.get(p, (False, False))
                    self.axi[p] = (read or ch == "ar", write or ch == "aw")

    def __repr__(self) -> str:
        return f"StreamPorts(outputs={self.outputs}, axi={self.axi})"


def stream_ports(verilog: str, top: str) -> StreamPorts:
    return StreamPorts(top_ports(verilog, top))


def find_ports(dut) -> StreamPorts:
    """The DUT's stream/AXI ports from ``<top>.v`` in the simulator's directory (where
    ``sim.kit.runner.run_unit`` writes it), or ``DRE_VERILOG``."""
    top = dut._name
    path = Path(os.environ.get("DRE_VERILOG") or f"{top}.v")
    if not path.exists():
        raise FileNotFoundError(
            f"DRE_VERILOG: the checkers need the Verilog of {top!r}; {path} does not exist"
        )
    return stream_ports(path.read_text(), top)


def _bit(handle) -> int | None:
    try:
        return int(handle.value)
    except ValueError:
        return None


def _hex(value) -> str:
    try:
        return f"{int(value):#x}"
    except ValueError:
        return str(value)


def _wait_bin(n: int) -> str:
    return "0" if n == 0 else "1" if n == 1 else "2-3" if n < 4 else "4+"


class _Stream:
    __slots__ = ("held", "name", "payload", "pending", "ready", "valid", "waited")

    def __init__(self, dut, prefix: str, has_payload: bool):
        self.name = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload") if has_payload else None
        self.held = None
        self.pending = False
        self.waited = 0


class _Channel:
    """One AXI channel the master drives (AR, AW or W): valid, ready and payload members."""

    __slots__ = ("fields", "held", "name", "pending", "ready", "valid", "waited")

    def __init__(self, dut, prefix: str, ch: str, fields: tuple[str, ...]):
        self.name = f"{prefix}.{ch}"
        self.valid = getattr(dut, f"{prefix}__{ch}valid")
        self.ready = getattr(dut, f"{prefix}__{ch}ready")
        self.fields = [
            (f, getattr(dut, f"{prefix}__{f}")) for f in fields if hasattr(dut, f"{prefix}__{f}")
        ]
        self.held = None
        self.pending = False
        self.waited = 0


class ProtocolChecker:
    """The checker task of one DUT (see the module docstring)."""

    def __init__(
        self, dut, ports: StreamPorts, *, max_burst: int, bus_bytes: int, outstanding: int
    ):
        self.dut = dut
        self.rst = dut.rst
        self.max_burst, self.bus_bytes, self.outstanding = max_burst, bus_bytes, outstanding
        self.size = bus_bytes.bit_length() - 1
        self.streams = [_Stream(dut, p, pl) for p, pl in ports.outputs.items()]
        self.axi = []
        for p, (read, write) in ports.axi.items():
            a = {"prefix": p}
            if read:
                a["ar"] = _Channel(dut, p, "ar", ("araddr", "arlen", "arsize", "arburst", "arid"))
                a["r"] = (getattr(dut, f"{p}__rvalid"), getattr(dut, f"{p}__rready"))
                a["rlast"] = getattr(dut, f"{p}__rlast")
            if write:
                a["aw"] = _Channel(dut, p, "aw", ("awaddr", "awlen", "awsize", "awburst", "awid"))
                a["w"] = _Channel(dut, p, "w", ("wdata", "wstrb", "wlast"))
                a["b"] = (getattr(dut, f"{p}__bvalid"), getattr(dut, f"{p}__bready"))
            self.axi.append(a)
        #: handshakes per stream/channel and the cycles each waited (``WAIT_BINS``)
        self.waits: dict[str, dict[str, int]] = {}
        self._armed = False
        self._reset_state()

    def _reset_state(self) -> None:
        for s in self.streams:
            s.pending, s.waited = False, 0
        for a in self.axi:
            a["reads"] = deque()  # beats of each AR burst not yet closed by RLAST
            a["r_beat"] = 0
            a["aw_lens"] = deque()  # beats of AW bursts whose W burst has not ended
            a["w_lens"] = deque()  # beats of W bursts (ended by WLAST) not yet matched
            a["w_beat"] = 0
            a["aw_count"] = a["w_count"] = a["b_count"] = 0
            for ch in ("ar", "aw", "w", "r", "b"):
                c = a.get(ch)
                if isinstance(c, _Channel):
                    c.pending, c.waited = False, 0
            a["r_wait"] = a["b_wait"] = 0

    def fail(self, port: str, what: str) -> None:
        cyc = cycle()
        raise ProtocolError(f"protocol violation on {port} at cycle {cyc}: {what}")

    def _wait(self, name: str, n: int) -> None:
        d = self.waits.setdefault(name, dict.fromkeys(WAIT_BINS, 0))
        d[_wait_bin(n)] += 1

    async def run(self) -> None:
        try:
            await self._loop()
        finally:  # the end of the test cancels this task: save the coverage so far
            from sim.coverage import save_collector

            save_collector(_CHECKERS)

    async def _loop(self) -> None:
        fe, ro = FallingEdge(self.dut.clk), ReadOnly()
        while True:
            await fe
            await ro
            rst = _bit(self.rst)
            if rst != 0:
                self._armed = self._armed or rst == 1
                self._reset_state()
                continue
            if not self._armed:  # before the first reset: nothing is defined yet
                continue
            for s in self.streams:
                self._stream(s)
            for a in self.axi:
                self._axi(a)

    # ---- streams -------------------------------------------------------------------------

    def _stream(self, s: _Stream) -> None:
        v = _bit(s.valid)
        if s.pending:
            if v != 1:
                self.fail(s.name, f"valid fell ({v}) while ready was low (the beat was dropped)")
            if s.payload is not None:
                now = s.payload.value
                if now != s.held:
                    self.fail(s.name, self._payload_diff(s.name, s.held, now))
        if v == 1:
            if _bit(s.ready) == 1:
                self._wait(s.name, s.waited)
                s.pending, s.waited = False, 0
            else:
                if not s.pending and s.payload is not None:
                    s.held = s.payload.value
                s.pending = True
                s.waited += 1

    def _payload_diff(self, port: str, old, new) -> str:
        """Which payload fields changed (by the port's layout; bits when it is unknown)."""
        try:
            o, n = int(old), int(new)
        except ValueError:
            return f"payload changed from {old} to {new} (X/Z bits)"
        fields = _payload_fields(self.dut._name, port)
        diff = o ^ n
        changed = [
            f"{name} {(o >> lo) & ((1 << w) - 1):#x} -> {(n >> lo) & ((1 << w) - 1):#x}"
            for name, lo, w in fields
            if (diff >> lo) & ((1 << w) - 1)
        ]
        if not changed:
            changed = [f"payload {o:#x} -> {n:#x}"]
        return "payload field changed while valid and not ready: " + ", ".join(changed)

    # ---- AXI ------------------------------------------------------------------------------

    def _channel(self, c: _Channel) -> list[int] | None:
        """Stability of one master channel; returns the payload values on a handshake."""
        v = _bit(c.valid)
        if c.pending:
            if v != 1:
                self.fail(c.name, f"{c.name[-2:].upper()}VALID fell ({v}) before READY")
            for (f, h), old in zip(c.fields, c.held, strict=True):
                now = h.value
                if now != old:
                    self.fail(
                        c.name,
                        f"{f} changed from {_hex(old)} to {_hex(now)} while VALID and not READY",
                    )
        if v != 1:
            return None
        if _bit(c.ready) == 1:
            self._wait(c.name, c.waited)
            values = c.held if c.pending else [h.value for _, h in c.fields]
            c.pending, c.waited = False, 0
            return [int(x) for x in values]
        if not c.pending:
            c.held = [h.value for _, h in c.fields]
        c.pending = True
        c.waited += 1
        return None

    def _burst(self, c: _Channel, values: list[int]) -> int:
        addr, length, size, burst = values[:4]
        beats = length + 1
        x = c.name[-2:].upper()
        if burst != _INCR:
            self.fail(c.name, f"{x}BURST = {burst}, expected INCR ({_INCR})")
        if size != self.size:
            self.fail(
                c.name, f"{x}SIZE = {size}, expected {self.size} (full {self.bus_bytes}-byte beats)"
            )
        if beats > self.max_burst:
            self.fail(c.name, f"{x}LEN = {length}: {beats} beats > max_burst {self.max_burst}")
        last = addr + beats * self.bus_bytes - 1
        if addr // AXI_BOUNDARY != last // AXI_BOUNDARY:
            edge = (last // AXI_BOUNDARY) * AXI_BOUNDARY
            self.fail(
                c.name, f"{x}ADDR {addr:#x} + {beats} beats crosses a 4 KB boundary at {edge:#x}"
            )
        return beats

    def _axi(self, a: dict) -> None:
        p = a["prefix"]
        if "ar" in a:
            hs = self._channel(a["ar"])
            if hs is not None:
                a["reads"].append(self._burst(a["ar"], hs))
                if len(a["reads"]) > self.outstanding:
                    self.fail(
                        f"{p}.ar",
                        f"{len(a['reads'])} read bursts in flight > outstanding {self.outstanding}",
                    )
            rvalid, rready = a["r"]
            rv = _bit(rvalid)
            if rv == 1:
                if _bit(rready) == 1:
                    if a["r_beat"]:  # pause of the slave between two beats of a burst
                        self._wait(f"{p}.r", a["r_wait"])
                    a["r_wait"] = 0
                    if not a["reads"]:
                        self.fail(f"{p}.r", "R beat with no read burst in flight")
                    beats = a["reads"][0]
                    a["r_beat"] += 1
                    last = _bit(a["rlast"])
                    if last != int(a["r_beat"] == beats):
                        self.fail(
                            f"{p}.r",
                            f"RLAST = {last} on beat {a['r_beat']} of a {beats}-beat burst",
                        )
                    if last:
                        a["reads"].popleft()
                        a["r_beat"] = 0
            elif a["r_beat"]:
                a["r_wait"] += 1
        if "aw" in a:
            hs = self._channel(a["aw"])
            if hs is not None:
                a["aw_lens"].append(self._burst(a["aw"], hs))
                a["aw_count"] += 1
            hs = self._channel(a["w"])
            if hs is not None:
                wlast = hs[-1]
                a["w_beat"] += 1
                if a["aw_lens"] and len(a["w_lens"]) == 0:
                    want = a["aw_lens"][0]
                    if wlast != int(a["w_beat"] == want):
                        beat = a["w_beat"]
                        self.fail(
                            f"{p}.w",
                            f"WLAST = {wlast} on beat {beat} of a {want}-beat burst "
                            f"(AWLEN {want - 1})",
                        )
                if wlast:
                    a["w_lens"].append(a["w_beat"])
                    a["w_beat"] = 0
                    a["w_count"] += 1
            while a["aw_lens"] and a["w_lens"]:
                want, got = a["aw_lens"].popleft(), a["w_lens"].popleft()
                if want != got:
                    self.fail(f"{p}.w", f"a W burst of {got} beats (WLAST) for AWLEN {want - 1}")
            bvalid, bready = a["b"]
            if _bit(bvalid) == 1:
                if _bit(bready) == 1:
                    self._wait(f"{p}.b", a["b_wait"])
                    a["b_wait"] = 0
                    a["b_count"] += 1
                else:
                    a["b_wait"] += 1
            flight = max(a["aw_count"], a["w_count"]) - a["b_count"]
            if flight > self.outstanding:
                self.fail(
                    f"{p}.aw", f"{flight} write bursts in flight > outstanding {self.outstanding}"
                )


def _payload_fields(top: str, port: str) -> list[tuple[str, int, int]]:
    """``(field, offset, width)`` of the payload of stream ``port`` of unit ``top`` (leaf
    fields of its ``amaranth.lib.data`` layout); empty when it cannot be built."""
    try:
        from amaranth.lib import data

        from hw.dre import wtu_unit_config
        from hw.gen import TOPS
        from sim.kit.cocotb_streams import config_from_env

        cfg = wtu_unit_config(top, config_from_env())
        member = TOPS[top](cfg).signature.members[port]
        shape = member.signature.members["payload"].shape
    except Exception:
        return []
    out: list[tuple[str, int, int]] = []

    def walk(layout, prefix: str, base: int) -> None:
        for name, field in layout:
            full = f"{prefix}.{name}" if prefix else str(name)
            inner = field.shape
            if isinstance(inner, data.Layout):
                walk(inner, full, base + field.offset)
            else:
                out.append((full, base + field.offset, field.width))

    if isinstance(shape, data.Layout):
        walk(shape, "", 0)
    return out


def attach_checkers(dut, cfg=None) -> ProtocolChecker | None:
    """Start the protocol checker of ``dut`` (every output stream, every AXI master);
    ``None`` when ``DRE_CHECKERS=0``. ``cfg`` gives ``max_burst`` and the bus width (default
    ``config_from_env()``)."""
    flag = os.environ.get("DRE_CHECKERS", "1").strip()
    if flag not in ("0", "1"):
        raise ValueError(f"DRE_CHECKERS must be 0 or 1, not {flag!r}")
    if flag == "0":
        return None
    if cfg is None:
        from sim.kit.cocotb_streams import config_from_env

        cfg = config_from_env()
    checker = ProtocolChecker(
        dut,
        find_ports(dut),
        max_burst=cfg.max_burst,
        bus_bytes=cfg.axi_data_bits // 8,
        outstanding=axi_outstanding(),
    )
    cocotb.start_soon(checker.run())
    _CHECKERS.append(checker)
    return checker


#: Checkers started in this simulator process (the coverage collector reads their waits).
_CHECKERS: list[ProtocolChecker] = []
