"""The UART host protocol of the board system: opcodes, record formats, byte packing.

Shared by the bridge (``fpga.bridge``, which takes its constants from here), the host client
(``fpga.host``) and the testbenches, so the two ends cannot drift apart.

Framing: bytes, 8N1. A request is an opcode byte followed by its arguments; every integer and
every record is little-endian, a record being the ``amaranth.lib.data`` layout's bits in
``ceil(size / 8)`` bytes. Each request gets exactly one reply, which starts with ``K`` (ok)
or ``E`` followed by one ``ErrorCode`` byte. The board handles one request at a time and
has no flow control: the host sends the next request after reading the reply.

======  ==========================  ===========================================================
 op      arguments                   reply after ``K``
======  ==========================  ===========================================================
 ``I``   none                        ``info`` record (protocol version and the config's sizes)
 ``L``   n (2 B), n input records    none: the records are in input slots 0..n-1
 ``H``   n (2 B)                     cycles (4 B): HCU run over input slots 0..n-1 (as
                                     ``token`` records); ``assign`` records to output 0..n-1
 ``W``   n (2 B), ``wtu_cmd`` record  cycles (4 B), k (2 B): WTU row of input slots 0..n-1 (as
                                     ``cluster_score`` records; the bridge sets ``last`` on
                                     slot n-1); the k ``selected`` records to output 0..k-1
 ``R``   n (2 B)                     output records 0..n-1
 ``C``   cluster (2 B)               the HCU's token count of that cluster (``count_bits``)
 ``S``   none                        ``stats`` record (performance counters, WTU summary)
======  ==========================  ===========================================================

Errors: ``OPCODE`` (unknown opcode; no argument is read), ``LENGTH`` (n is 0 or more than
the buffer depth; the reply comes right after the 2-byte n, before any record, so the host
must not send the records), ``CLUSTER`` (cluster id >= max_clusters).
``cycles`` counts system clocks from the first cycle the first record is offered to the DRE
to the cycle of the last output handshake (HCU: the n-th ``assign``; WTU: the ``summary``),
both included: the records stream from on-chip buffers, so it is the DRE's own speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from hw.dre import layouts

from .config import FPGAConfig

__all__ = [
    "CYCLES_BYTES",
    "LENGTH_BYTES",
    "VERSION",
    "ErrorCode",
    "Op",
    "ProtocolLayouts",
    "Reply",
    "info_value",
    "nbytes",
    "pack",
    "protocol",
    "unpack",
]

#: Protocol version reported by ``I``.
VERSION = 1
#: Bytes of a record count n, a cluster id and the ``k`` of a WTU reply.
LENGTH_BYTES = 2
#: Bytes of a run's cycle count.
CYCLES_BYTES = 4


class Op(enum.Enum, shape=8):
    INFO = ord("I")
    LOAD = ord("L")
    RUN_HCU = ord("H")
    RUN_WTU = ord("W")
    READ = ord("R")
    COUNT = ord("C")
    STATS = ord("S")


class Reply(enum.Enum, shape=8):
    OK = ord("K")
    ERROR = ord("E")


class ErrorCode(enum.Enum, shape=8):
    OPCODE = 1
    LENGTH = 2
    CLUSTER = 3


def nbytes(bits: int) -> int:
    return -(-bits // 8)


@dataclass(frozen=True)
class ProtocolLayouts:
    """Record layouts and byte sizes of the protocol for one ``FPGAConfig``."""

    in_bits: int  # an input slot: a ``token`` or a ``cluster_score`` record
    out_bits: int  # an output slot: an ``assign`` or a ``selected`` record
    info: data.StructLayout
    stats: data.StructLayout
    count_bits: int
    cmd_bytes: int  # the ``wtu_cmd`` argument of ``W``

    @property
    def in_bytes(self) -> int:
        return nbytes(self.in_bits)

    @property
    def out_bytes(self) -> int:
        return nbytes(self.out_bits)

    @property
    def info_bytes(self) -> int:
        return nbytes(self.info.size)

    @property
    def stats_bytes(self) -> int:
        return nbytes(self.stats.size)

    @property
    def count_bytes(self) -> int:
        return nbytes(self.count_bits)

    def arg_bytes(self, op: Op) -> int:
        """Argument bytes that follow opcode ``op`` (records of ``L`` not included)."""
        if op in (Op.INFO, Op.STATS):
            return 0
        return LENGTH_BYTES + (self.cmd_bytes if op == Op.RUN_WTU else 0)


@cache
def protocol(fcfg: FPGAConfig) -> ProtocolLayouts:
    cfg = fcfg.hw
    lay = layouts(cfg)
    info = data.StructLayout(
        {
            "version": unsigned(8),
            "in_bytes": unsigned(8),
            "out_bytes": unsigned(8),
            "depth": unsigned(16),
            "max_clusters": unsigned(16),
            "hash_bits": unsigned(8),
            "hcu_lanes": unsigned(8),
            "count_bits": unsigned(8),
            "score_bits": unsigned(8),
        }
    )
    stats = data.StructLayout(
        {
            "cycles": unsigned(8 * CYCLES_BYTES),
            "in_beats": unsigned(16),
            "out_beats": unsigned(16),
            "runs": unsigned(16),
            "occupancy": unsigned(16),
            "forced": unsigned(cfg.token_id_bits),
            "summary": lay.wtu_summary,
        }
    )
    return ProtocolLayouts(
        in_bits=max(lay.token.size, lay.cluster_score.size),
        out_bits=max(lay.assign.size, lay.selected.size),
        info=info,
        stats=stats,
        count_bits=cfg.resv.count_bits,
        cmd_bytes=nbytes(lay.wtu_cmd.size),
    )


def info_value(fcfg: FPGAConfig) -> dict:
    """The ``info`` record the board of ``fcfg`` reports."""
    p, cfg = protocol(fcfg), fcfg.hw
    return {
        "version": VERSION,
        "in_bytes": p.in_bytes,
        "out_bytes": p.out_bytes,
        "depth": fcfg.depth,
        "max_clusters": cfg.max_clusters,
        "hash_bits": cfg.resv.hash_bits,
        "hcu_lanes": cfg.hcu_lanes,
        "count_bits": cfg.resv.count_bits,
        "score_bits": cfg.resv.score_bits,
    }


def pack(layout, value) -> bytes:
    """``value`` (a dict of fields or an int) as the layout's little-endian bytes."""
    bits = value if isinstance(value, int) else layout.const(value).as_bits()
    return int(bits).to_bytes(nbytes(layout.size), "little")


def unpack(layout, raw: bytes):
    """The ``data.Const`` view of ``raw`` (little-endian) in ``layout``."""
    return layout.from_bits(int.from_bytes(raw, "little") & ((1 << layout.size) - 1))
