"""Hasher: the core's LSH signatures (``golden.core.CoreModel.signature``) and thresholds."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.bf16 import to_bf16_bits

from ..config import HWConfig, check_config
from ..datapath import FP32Compare, MacArray
from ..datapath.layouts import BF16, FP32
from ..shared import shared
from .host import lane_words

__all__ = ["Hasher"]


class Hasher(wiring.Component):
    """The ``hash_bits`` signature bits of a vector: ``bit_j = dot(x, P_j) >= theta_j``.

    The BF16 hyperplanes ``P_j`` are a ROM (``planes``, plane ``j``'s beats at ``j * nb``,
    ``nb = head_dim // mac_lanes``) that a loader streams, after reset, into a ``MacArray``
    (``array``: ``hash_bits`` rows x ``mac_lanes`` columns) as one block that never ends, so
    every vector hashed afterwards is a K vector of it: its ``nb`` beats give its
    ``hash_bits`` dot products at once (``golden.fparith.dot`` with ``mac_lanes`` lanes, the
    MAC tree's order), compared with the FP32 thresholds ``theta`` in parallel
    (``FP32Compare``).

    Ports:

    - ``keys`` (in stream): a vector to hash, ``nb`` beats of ``x`` (``mac_lanes`` BF16
      values, element order), ``last`` on the final beat.
    - ``signatures`` (out stream): one beat per vector, its ``hash_bits``-bit signature.
    - ``set_theta`` (in): while high, the ``signatures`` beat taken is the bias's
      (``SET_BIAS``): its dot products become ``theta`` (``theta_j = dot(bias, P_j)``).
    - ``theta`` (out), ``load_theta`` (in), ``theta_in`` (in): the thresholds, read and set
      (a context's, by ``SWITCH_CTX``).
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lanes = cfg.mac_lanes
        super().__init__(
            {
                "keys": In(
                    stream.Signature(
                        data.StructLayout({"x": data.ArrayLayout(BF16, lanes), "last": 1})
                    )
                ),
                "signatures": Out(stream.Signature(cfg.resv.hash_bits)),
                "set_theta": In(1),
                # the thresholds of a context (SWITCH_CTX): read, and set by ``load_theta``
                "theta": Out(data.ArrayLayout(FP32, cfg.resv.hash_bits)),
                "load_theta": In(1),
                "theta_in": In(data.ArrayLayout(FP32, cfg.resv.hash_bits)),
            }
        )

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        m = Module()
        lanes, H = cfg.mac_lanes, r.hash_bits
        nb = r.head_dim // lanes
        # tile_tokens (unused by the MacArray) kept within the narrower array's storage
        array_cfg = cfg.replace(mac_rows=H, mac_cols=lanes, tile_tokens=min(cfg.tile_tokens, lanes))
        m.submodules.array = array = MacArray(array_cfg, transposed=False)
        planes = lane_words(to_bf16_bits(r.planes.T), lanes)  # row p*nb + b: plane p, beat b
        m.submodules.planes = planes_mem = Memory(shape=16 * lanes, depth=H * nb, init=planes)
        planes_rd = planes_mem.read_port(domain="comb")

        # Plane loader: the planes ROM row by row into the array.
        pl_row = Signal(range(H + 1), name="planes_row")
        pl_beat = Signal(range(nb), name="planes_beat")
        m.d.comb += [
            planes_rd.addr.eq(pl_row * nb + pl_beat),
            array.queries.valid.eq(pl_row < H),
            array.queries.payload.x.eq(planes_rd.data),
            array.queries.payload.last.eq(pl_beat == nb - 1),
            array.queries.payload.end.eq((pl_row == H - 1) & (pl_beat == nb - 1)),
        ]
        with m.If(array.queries.valid & array.queries.ready):
            m.d.sync += pl_beat.eq(pl_beat + 1)
            with m.If(pl_beat == nb - 1):
                m.d.sync += [pl_beat.eq(0), pl_row.eq(pl_row + 1)]

        # The hashed vectors: K vectors of the planes block.
        m.d.comb += [
            array.keys.valid.eq(self.keys.valid),
            array.keys.payload.x.eq(self.keys.payload.x),
            array.keys.payload.last.eq(self.keys.payload.last),
            array.keys.payload.end.eq(0),
            self.keys.ready.eq(array.keys.ready),
        ]

        # Their dot products against theta, or (set_theta) into theta.
        theta = Signal(data.ArrayLayout(FP32, H), name="theta")
        dots = array.scores.payload.s
        sig_bits = []
        for j in range(H):
            cmp = shared(m, f"sig_cmp_{j}", FP32Compare())
            m.d.comb += [cmp.a.eq(dots[j]), cmp.b.eq(theta[j])]
            sig_bits.append(cmp.ge)
        m.d.comb += [
            self.signatures.valid.eq(array.scores.valid),
            self.signatures.payload.eq(Cat(*sig_bits)),
            array.scores.ready.eq(self.signatures.ready),
        ]
        with m.If(self.signatures.valid & self.signatures.ready & self.set_theta):
            m.d.sync += [theta[j].eq(dots[j]) for j in range(H)]
        m.d.comb += self.theta.eq(theta)
        with m.If(self.load_theta):
            m.d.sync += theta.eq(self.theta_in)
        return m
