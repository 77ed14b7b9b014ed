"""HostBridge: the UART host protocol (``fpga.protocol``) in hardware, in front of the DRE.

Interface
  ``rx`` (in stream, bytes from the host), ``tx`` (out stream, bytes to the host);
  ``dre`` (the DRE's ports, ``hw.dre.dre_signature`` flipped: the bridge drives ``tokens``,
  ``wtu_cmd``, ``clusters`` and ``count_addr`` and takes ``assign``, ``selected``,
  ``summary``); ``busy`` (a run is in progress), ``error`` (sticky: a request was refused).

Two buffers of ``depth`` records (``amaranth.lib.memory``): the input buffer, filled by
``L``, and the output buffer, filled by ``H``/``W`` runs and read back by ``R``. A run
streams input slots 0..n-1 into the DRE at one record per cycle (the read port's address
runs one ahead) with every output always ready, so its ``cycles`` counter measures the DRE
at full speed, independent of the UART. Replies are shifted out of one register, a byte per
accepted ``tx`` beat.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.dre import dre_signature, layouts

from .config import FPGAConfig
from .protocol import CYCLES_BYTES, LENGTH_BYTES, ErrorCode, Op, Reply, info_value, protocol

__all__ = ["HostBridge"]


class HostBridge(wiring.Component):
    """See the module docstring."""

    def __init__(self, fcfg: FPGAConfig):
        if not isinstance(fcfg, FPGAConfig):
            self._MustUse__silence = True
            raise TypeError(f"fcfg must be an FPGAConfig, not {fcfg!r}")
        self._fcfg = fcfg
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "tx": Out(stream.Signature(8)),
                "dre": In(dre_signature(fcfg.hw)),
                "busy": Out(1),
                "error": Out(1),
            }
        )

    @property
    def fcfg(self) -> FPGAConfig:
        return self._fcfg

    def elaborate(self, platform):
        fcfg, cfg = self._fcfg, self._fcfg.hw
        p, lay, depth = protocol(fcfg), layouts(cfg), fcfg.depth
        m = Module()
        dre = self.dre

        m.submodules.in_mem = in_mem = Memory(shape=p.in_bits, depth=depth, init=[])
        m.submodules.out_mem = out_mem = Memory(shape=p.out_bits, depth=depth, init=[])
        in_wr, in_rd = in_mem.write_port(), in_mem.read_port()
        out_wr, out_rd = out_mem.write_port(), out_mem.read_port()

        op = Signal(8, name="op")
        arg = Signal(8 * max(p.arg_bytes(o) for o in Op), name="arg")
        n = arg[: 8 * LENGTH_BYTES]
        cmd = arg[8 * LENGTH_BYTES :][: lay.wtu_cmd.size]
        nbytes = Signal(range(max(p.in_bytes, len(arg) // 8) + 1), name="byte_index")
        rec = Signal(8 * p.in_bytes, name="record")
        idx = Signal(range(depth + 1), name="index")  # LOAD and READ slot, RUN input slot
        out_idx = Signal(range(depth + 1), name="out_index")
        cmd_sent = Signal(name="cmd_sent")

        stats = Signal(p.stats, name="stats")
        cycles = stats.cycles
        reply_bytes = max(
            1 + p.info_bytes,
            1 + p.stats_bytes,
            1 + CYCLES_BYTES + LENGTH_BYTES,
            1 + p.count_bytes,
            p.out_bytes,
        )
        txbuf = Signal(8 * reply_bytes, name="reply")
        txleft = Signal(range(reply_bytes + 1), name="reply_left")
        reading = Signal(name="reading")  # the reply is part of an ``R`` transfer
        error = Signal(name="error_flag")

        m.d.comb += [
            self.error.eq(error),
            self.tx.payload.eq(txbuf[:8]),
            in_rd.addr.eq(idx),
            out_rd.addr.eq(idx),
            stats.occupancy.eq(dre.occupancy),
            stats.forced.eq(dre.forced),
            dre.count_addr.eq(arg[: cfg.cluster_id_bits]),
        ]

        def reply(*fields, read=False):
            """Send ``fields`` (each padded to whole bytes, LSB byte first) as one reply, then
            go to ``OP`` (or back to the ``R`` transfer)."""
            value = Cat(*(Cat(f, Const(0, -len(f) % 8)) for f in map(Value.cast, fields)))
            m.d.sync += [
                txbuf.eq(value),
                txleft.eq(len(value) // 8),
                reading.eq(read),
            ]
            m.next = "SEND"

        def refuse(code: ErrorCode):
            m.d.sync += error.eq(1)
            reply(Const(Reply.ERROR.value, 8), Const(code.value, 8))

        ok = Const(Reply.OK.value, 8)
        n_bad = (n == 0) | (n > depth)
        rx_fire = self.rx.valid & self.rx.ready
        n_args = Signal(range(len(arg) // 8 + 1), name="n_args")
        m.d.comb += n_args.eq(
            Mux(op == Op.RUN_WTU.value, p.arg_bytes(Op.RUN_WTU), p.arg_bytes(Op.LOAD))
        )

        with m.FSM(name="bridge_fsm"):
            with m.State("OP"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(rx_fire):
                    byte = self.rx.payload
                    m.d.sync += [op.eq(byte), nbytes.eq(0)]
                    with m.Switch(byte):
                        with m.Case(Op.INFO.value):
                            reply(ok, p.info.const(info_value(fcfg)).as_value())
                        with m.Case(Op.STATS.value):
                            reply(ok, stats.as_value())
                        with m.Case(
                            Op.LOAD.value,
                            Op.RUN_HCU.value,
                            Op.RUN_WTU.value,
                            Op.READ.value,
                            Op.COUNT.value,
                        ):
                            m.next = "ARG"
                        with m.Default():
                            refuse(ErrorCode.OPCODE)
            with m.State("ARG"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(rx_fire):
                    m.d.sync += [
                        arg.word_select(nbytes, 8).eq(self.rx.payload),
                        nbytes.eq(nbytes + 1),
                    ]
                    with m.If(nbytes + 1 == n_args):
                        m.next = "EXEC"
            with m.State("EXEC"):
                m.d.sync += [idx.eq(0), out_idx.eq(0), nbytes.eq(0), cmd_sent.eq(0)]
                m.d.comb += in_rd.addr.eq(0)  # slot 0 is on the read port when a run starts
                with m.Switch(op):
                    with m.Case(Op.COUNT.value):
                        with m.If(n >= cfg.max_clusters):  # the argument is a cluster id
                            refuse(ErrorCode.CLUSTER)
                        with m.Else():
                            m.next = "COUNT"  # count_data is valid next cycle
                    with m.Default():
                        with m.If(n_bad):
                            refuse(ErrorCode.LENGTH)
                        with m.Else(), m.Switch(op):
                            with m.Case(Op.LOAD.value):
                                m.next = "LOAD"
                            with m.Case(Op.READ.value):
                                reply(ok, read=True)
                            with m.Default():
                                m.d.sync += [
                                    cycles.eq(0),
                                    stats.in_beats.eq(0),
                                    stats.out_beats.eq(0),
                                ]
                                m.next = "RUN"
            with m.State("COUNT"):
                reply(ok, dre.count_data)
            with m.State("LOAD"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(rx_fire):
                    m.d.sync += [
                        rec.word_select(nbytes, 8).eq(self.rx.payload),
                        nbytes.eq(nbytes + 1),
                    ]
                    with m.If(nbytes == p.in_bytes - 1):
                        full = Cat(rec[: 8 * (p.in_bytes - 1)], self.rx.payload)
                        m.d.comb += [
                            in_wr.addr.eq(idx),
                            in_wr.data.eq(full),
                            in_wr.en.eq(1),
                        ]
                        m.d.sync += [idx.eq(idx + 1), nbytes.eq(0)]
                        with m.If(idx + 1 == n):
                            reply(ok)
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                is_wtu = op == Op.RUN_WTU.value
                offer = idx < n
                # HCU tokens and WTU clusters come from the same input slot.
                tok, clu = dre.tokens, dre.clusters
                m.d.comb += [
                    tok.payload.eq(in_rd.data[: lay.token.size]),
                    clu.payload.eq(in_rd.data[: lay.cluster_score.size]),
                    clu.payload.last.eq(idx == n - 1),
                    tok.valid.eq(offer & ~is_wtu),
                    clu.valid.eq(offer & is_wtu),
                    dre.wtu_cmd.valid.eq(is_wtu & ~cmd_sent),
                    dre.wtu_cmd.payload.eq(cmd),
                    dre.assign.ready.eq(1),
                    dre.selected.ready.eq(1),
                    dre.summary.ready.eq(1),
                ]
                with m.If(dre.wtu_cmd.valid & dre.wtu_cmd.ready):
                    m.d.sync += cmd_sent.eq(1)
                fire_in = (tok.valid & tok.ready) | (clu.valid & clu.ready)
                m.d.comb += in_rd.addr.eq(idx + fire_in)
                with m.If(fire_in):
                    m.d.sync += [idx.eq(idx + 1), stats.in_beats.eq(stats.in_beats + 1)]
                out_fire = Signal(name="out_fire")
                out_data = Signal(p.out_bits, name="out_data")
                with m.If(is_wtu):
                    m.d.comb += [
                        out_fire.eq(dre.selected.valid),
                        out_data.eq(dre.selected.payload.as_value()),
                    ]
                with m.Else():
                    m.d.comb += [
                        out_fire.eq(dre.assign.valid),
                        out_data.eq(dre.assign.payload.as_value()),
                    ]
                with m.If(out_fire & (out_idx < depth)):
                    m.d.comb += [out_wr.addr.eq(out_idx), out_wr.data.eq(out_data), out_wr.en.eq(1)]
                    m.d.sync += out_idx.eq(out_idx + 1)
                with m.If(out_fire):
                    m.d.sync += stats.out_beats.eq(stats.out_beats + 1)
                total = cycles + 1
                m.d.sync += cycles.eq(total)
                with m.If(is_wtu & dre.summary.valid):
                    m.d.sync += [
                        stats.summary.eq(dre.summary.payload),
                        stats.runs.eq(stats.runs + 1),
                    ]
                    reply(
                        ok,
                        total[: 8 * CYCLES_BYTES],
                        (stats.out_beats + out_fire)[: 8 * LENGTH_BYTES],
                    )
                with m.If(~is_wtu & out_fire & (out_idx + 1 == n)):
                    m.d.sync += stats.runs.eq(stats.runs + 1)
                    reply(ok, total[: 8 * CYCLES_BYTES])
            with m.State("SEND"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.d.sync += [txbuf.eq(txbuf >> 8), txleft.eq(txleft - 1)]
                    with m.If(txleft == 1):
                        m.next = "OP"
                        with m.If(reading & (idx != n)):
                            m.next = "READ"
            with m.State("READ"):
                # ``out_rd.addr`` has been ``idx`` for the whole reply before (at least one
                # cycle), so the read port holds slot ``idx``.
                m.d.sync += idx.eq(idx + 1)
                reply(out_rd.data, read=True)
        return m
