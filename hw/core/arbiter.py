"""``AxiArbiter``: two AXI4 masters, ``high`` and ``low``, on one AXI4 master port ``m_axi``.

Every master uses ID 0, so a slave returns R bursts in AR order and B responses in AW
order; the arbiter remembers which master each burst came from in three **order queues**
and routes the answers back by them, without IDs.

AR: each cycle ``m_axi`` carries ``high``'s AR if ``high.arvalid``, else ``low``'s (fixed
priority; valid, ready and payload pass through combinationally, no added latency), while
the order queue has room for that master. One exception keeps ``m_axi`` AXI-stable: a
``low`` AR that was valid and not accepted in the previous cycle keeps the channel until
its handshake (``high`` waits; a ``high`` AR is never withdrawn, so it needs no such
hold). Each AR handshake pushes its master into the R-order queue. R beats go to the
master at the queue's head (``rvalid``, ``rready`` and the handshake are routed; ``rdata``,
``rresp``, ``rlast`` and ``rid`` reach both masters, the other one sees ``rvalid`` 0); the
head burst leaves with its ``rlast`` handshake.

AW: the same arbitration (``high`` first, a waiting ``low`` AW held); each AW handshake
pushes its master into a W-order and a B-order queue. W beats come only from the master
owning the oldest AW whose data has not all gone (the W queue's head), which leaves with its
``wlast`` handshake; while the W queue is empty, the master whose AW is handshaked in this
very cycle may send W in the same cycle, so a master whose W follows its AW in the same
cycle loses no cycle. **W must not lead AW:** a master's W beats sent before their burst's
AW handshake wait (``wready`` low) until it, although the AXI slave itself would take them.
B responses go to the B queue's head, which leaves with the B handshake.

The order queues hold **runs**: consecutive bursts of one master share an entry and its
count (up to ``max_run`` bursts); ``depth`` entries, so up to ``depth`` alternations between
the masters are in flight (at least ``depth`` bursts, up to ``depth * max_run``). An AR or AW
of a master waits (``m_axi`` valid low) only when the queue's last entry belongs to the
other master or is full and all ``depth`` entries are taken: this state has no
combinational path from any ready or answer, so ``m_axi.arvalid``/``awvalid`` never fall
before their handshake.

**Transparency:** while ``low`` never raises a valid, every handshake of ``high`` happens in
exactly the cycles in which it would happen with ``high`` wired straight to the slave,
given that ``high``'s master hands over each burst's AW no later than its first W beat and
always has fewer than ``depth * max_run`` bursts of one direction in flight (AR handshaked,
last R not; AW handshaked, B not): its bursts then form runs that never fill the queues,
so no valid is held back; W passes as it would (the W queue's head is ``high`` or its AW
is handshaked in the same cycle) and R and B reach ``high``. So ``depth`` does not bound
``high``'s outstanding bursts: any ``depth`` keeps the cycle counts of a master with fewer
than ``max_run`` (65535 by default) bursts in flight, whatever bounds them
(``outstanding`` of ``KVMemoryUnit``/``KVWriter``, a region's bursts for
``ContextMover``, whose AR and AW run ahead unbounded). A larger ``depth`` only lets the
two masters interleave more finely (with ``depth = 1`` a master waits until the other
one's bursts of that direction are all answered).

**No deadlock** as long as neither master makes its acceptance of R beats or B responses,
or its sending of W beats for an AW it already handed over, depend on the other master's
progress (each may take them at its own pace): the head burst of each queue then always
completes, as the slave answers in order. ``m_axi.wvalid`` depends combinationally on
``m_axi.awready`` while the W queue is empty (the same-cycle W): the slave must not make
``awready`` depend combinationally on ``wvalid``, nor wait for ``wvalid`` before raising
``awready`` (the masters' W waits for their AW, as ``ContextMover``'s does).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig
from ..kvmu import axi4_signature

__all__ = ["AxiArbiter"]

#: Order-queue entries: which master (``_HIGH`` / ``_LOW``).
_HIGH, _LOW = 0, 1


class _Order:
    """An order queue of up to ``depth`` runs ``(master, bursts)`` built into ``m``:
    ``room(who)`` (a push of ``who`` fits; state only), ``push``/``push_who`` and ``pop``
    (drive them combinationally), ``head_who`` and ``empty``."""

    def __init__(self, m: Module, tag: str, depth: int, max_run: int):
        self.depth, self.max_run = depth, max_run
        self.who = [Signal(name=f"{tag}_who_{i}") for i in range(depth)]
        self.count = [Signal(range(max_run + 1), name=f"{tag}_count_{i}") for i in range(depth)]
        self.head = Signal(range(max(2, depth)), name=f"{tag}_head")
        self.free = Signal(range(max(2, depth)), name=f"{tag}_free")  # the next new entry
        self.level = Signal(range(depth + 1), name=f"{tag}_level")  # entries in use
        self.push = Signal(name=f"{tag}_push")
        self.push_who = Signal(name=f"{tag}_push_who")
        self.pop = Signal(name=f"{tag}_pop")
        tail = Signal.like(self.free, name=f"{tag}_tail")
        m.d.comb += tail.eq(Mux(self.free == 0, depth - 1, self.free - 1))
        who, count = Array(self.who), Array(self.count)
        self.empty = self.level == 0
        self.head_who = who[self.head]
        self._joinable = {}
        for w in (_HIGH, _LOW):
            ok = Signal(name=f"{tag}_join_{w}")
            m.d.comb += ok.eq(~self.empty & (who[tail] == w) & (count[tail] != max_run))
            self._joinable[w] = ok
        join = Signal(name=f"{tag}_join")  # the push adds to the last entry
        new = Signal(name=f"{tag}_new")  # the push takes a new entry
        leave = Signal(name=f"{tag}_leave")  # the head entry's last burst leaves
        joinable = Mux(self.push_who, self._joinable[_LOW], self._joinable[_HIGH])
        m.d.comb += [
            join.eq(self.push & joinable),
            new.eq(self.push & ~joinable),
            # a single entry that gains a burst as it loses one stays
            leave.eq(self.pop & (count[self.head] == 1) & ~(join & (self.level == 1))),
        ]
        for i in range(depth):
            with m.If(new & (self.free == i)):
                m.d.sync += [self.who[i].eq(self.push_who), self.count[i].eq(1)]
            with m.Else():
                up = join & (tail == i)
                down = self.pop & (self.head == i)
                m.d.sync += self.count[i].eq(self.count[i] + up - down)
        m.d.sync += self.level.eq(self.level + new - leave)
        with m.If(new):
            m.d.sync += self.free.eq(Mux(self.free == depth - 1, 0, self.free + 1))
        with m.If(leave):
            m.d.sync += self.head.eq(Mux(self.head == depth - 1, 0, self.head + 1))

    def room(self, who: int):
        return (self.level != self.depth) | self._joinable[who]


class AxiArbiter(wiring.Component):
    """Two AXI4 masters on one port (see the module docstring). ``depth``: order-queue
    entries (runs of one master's bursts), 1..256; ``max_run``: bursts per entry."""

    def __init__(self, cfg: HWConfig, depth: int, *, max_run: int = 65535):
        for name, value, hi in (("depth", depth, 256), ("max_run", max_run, 1 << 32)):
            if isinstance(value, bool) or not isinstance(value, int):
                self._MustUse__silence = True
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not 1 <= value <= hi:
                self._MustUse__silence = True
                raise ValueError(f"{name} must be in 1..{hi}, not {value!r}")
        self._cfg, self._depth, self._max_run = cfg, depth, max_run
        sig = axi4_signature(cfg.axi_addr_bits, cfg.axi_data_bits)
        super().__init__({"high": In(sig), "low": In(sig), "m_axi": Out(sig)})

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def max_run(self) -> int:
        return self._max_run

    def elaborate(self, platform):
        m = Module()
        depth, max_run = self._depth, self._max_run
        hi, lo, bus = self.high, self.low, self.m_axi
        members = bus.signature.members
        rq = _Order(m, "r_order", depth, max_run)
        wq = _Order(m, "w_order", depth, max_run)
        bq = _Order(m, "b_order", depth, max_run)

        def address(ch: str, rooms):
            """AR or AW (``ch`` = "ar" / "aw"): the selected master and the handshake."""
            valid = {w: getattr(p, f"{ch}valid") for w, p in ((_HIGH, hi), (_LOW, lo))}
            hold = Signal(name=f"{ch}_hold_low")  # low's AR/AW waits on m_axi: it keeps it
            sel = Signal(name=f"{ch}_sel")
            room = Signal(name=f"{ch}_room")
            m.d.comb += [
                sel.eq(hold | ~valid[_HIGH]),
                room.eq(Mux(sel, rooms(_LOW), rooms(_HIGH))),
                getattr(bus, f"{ch}valid").eq(Mux(sel, valid[_LOW], valid[_HIGH]) & room),
            ]
            ready = getattr(bus, f"{ch}ready")
            for w, p in ((_HIGH, hi), (_LOW, lo)):
                m.d.comb += getattr(p, f"{ch}ready").eq(ready & room & (sel == w))
            for name, member in members.items():
                if name.startswith(ch) and member.flow == Out and name != f"{ch}valid":
                    m.d.comb += getattr(bus, name).eq(
                        Mux(sel, getattr(lo, name), getattr(hi, name))
                    )
            shake = Signal(name=f"{ch}_handshake")
            m.d.comb += shake.eq(getattr(bus, f"{ch}valid") & ready)
            m.d.sync += hold.eq(getattr(bus, f"{ch}valid") & ~ready & sel)
            return sel, shake

        def answer(ch: str, ok, who):
            """R, W or B: routed to/from master ``who`` while ``ok``."""
            ready, valid = f"{ch}ready", f"{ch}valid"
            for w, p in ((_HIGH, hi), (_LOW, lo)):
                mine = ok & (who == w)
                if members[valid].flow == In:  # R, B: the slave answers
                    m.d.comb += getattr(p, valid).eq(getattr(bus, valid) & mine)
                else:  # W: the master sends
                    m.d.comb += getattr(p, ready).eq(getattr(bus, ready) & mine)
            for name, member in members.items():
                if name[0] != ch or name in (ready, valid):  # rid .. rlast, wdata .., bid ..
                    continue
                if member.flow == In:  # payload of the slave: reaches both masters
                    for p in (hi, lo):
                        m.d.comb += getattr(p, name).eq(getattr(bus, name))
                else:
                    m.d.comb += getattr(bus, name).eq(
                        Mux(who, getattr(lo, name), getattr(hi, name))
                    )
            if members[valid].flow == In:
                m.d.comb += getattr(bus, ready).eq(
                    ok & Mux(who, getattr(lo, ready), getattr(hi, ready))
                )
            else:
                m.d.comb += getattr(bus, valid).eq(
                    ok & Mux(who, getattr(lo, valid), getattr(hi, valid))
                )
            return getattr(bus, valid) & getattr(bus, ready)

        # AR and R
        ar_sel, ar_shake = address("ar", rq.room)
        m.d.comb += [rq.push.eq(ar_shake), rq.push_who.eq(ar_sel)]
        r_shake = answer("r", ~rq.empty, rq.head_who)
        m.d.comb += rq.pop.eq(r_shake & bus.rlast)

        # AW, W and B
        aw_sel, aw_shake = address("aw", lambda w: wq.room(w) & bq.room(w))
        w_who = Mux(wq.empty, aw_sel, wq.head_who)
        w_shake = answer("w", ~wq.empty | aw_shake, w_who)
        w_done = w_shake & bus.wlast
        # a burst handed over and finished in its AW's cycle never enters the W queue
        m.d.comb += [
            wq.push.eq(aw_shake & ~(wq.empty & w_done)),
            wq.push_who.eq(aw_sel),
            wq.pop.eq(w_done & ~wq.empty),
        ]
        b_shake = answer("b", ~bq.empty, bq.head_who)
        m.d.comb += [bq.push.eq(aw_shake), bq.push_who.eq(aw_sel), bq.pop.eq(b_shake)]
        return m
