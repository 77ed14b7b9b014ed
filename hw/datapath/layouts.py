"""Number formats and stream payloads of the datapath, all in one place.

``BF16`` and ``FP32`` are ``data.Struct`` views of the IEEE-style bit patterns (field order
= packing order, first field = LSBs), so a ``BF16`` is exactly a ``golden.bf16`` pattern
and an ``FP32`` a ``golden.fparith`` pattern. Stream payloads depend on ``mac_lanes`` (the
MacArray's on ``mac_cols`` / ``mac_rows``, the TileSoftmax's on ``tile_tokens``) and are
built per ``HWConfig`` by ``DatapathLayouts`` (cached).
"""

# No ``from __future__ import annotations``: ``data.Struct`` reads its field shapes from the
# class annotations, which must be evaluated.
from functools import cache

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..config import HWConfig

__all__ = ["BF16", "BF16_FRAC", "FP32", "FP32_FRAC", "DatapathLayouts", "frac_bits", "layouts"]


class BF16(data.Struct):
    """bfloat16: 7-bit fraction, 8-bit biased exponent (bias 127), sign."""

    mantissa: unsigned(7)
    exponent: unsigned(8)
    sign: unsigned(1)


class FP32(data.Struct):
    """IEEE 754 binary32: 23-bit fraction, 8-bit biased exponent (bias 127), sign."""

    mantissa: unsigned(23)
    exponent: unsigned(8)
    sign: unsigned(1)


def frac_bits(fmt: type[data.Struct]) -> int:
    """Width of the stored fraction (``mantissa`` field) of ``BF16`` or ``FP32``."""
    return data.Layout.cast(fmt)["mantissa"].shape.width


#: Stored fraction bits: 7 for BF16, 23 for FP32 (the significands have one more).
BF16_FRAC = frac_bits(BF16)
FP32_FRAC = frac_bits(FP32)


class DatapathLayouts:
    """The payload layouts of every datapath stream for one configuration."""

    def __init__(self, cfg: HWConfig):
        lanes = cfg.mac_lanes
        #: MacTree input: one chunk of ``mac_lanes`` element pairs of a dot product. ``last``
        #: ends the dot product (a single-chunk dot product has ``last`` on its only beat);
        #: unused lanes of a short final chunk carry BF16 ``+0`` (all-zero bits).
        self.mac_in = data.StructLayout(
            {
                "a": data.ArrayLayout(BF16, lanes),
                "b": data.ArrayLayout(BF16, lanes),
                "last": unsigned(1),
            }
        )
        #: MacTree output: one dot product.
        self.mac_out = data.StructLayout({"value": FP32})
        #: MacArray inputs (``queries`` and ``keys``): ``mac_cols`` BF16 elements of one
        #: vector; ``last`` ends the vector, ``end`` (read on ``last`` beats) the block.
        self.array_in = data.StructLayout(
            {"x": data.ArrayLayout(BF16, cfg.mac_cols), "last": unsigned(1), "end": unsigned(1)}
        )
        #: MacArray ``queries`` input: an ``array_in`` beat and ``columns``, which loads the
        #: block transposed (its vectors are the stored rows' columns, e.g. a V tile for
        #: P x V); read on every beat, the same for a whole block.
        self.array_load = data.StructLayout(
            {
                "x": data.ArrayLayout(BF16, cfg.mac_cols),
                "last": unsigned(1),
                "end": unsigned(1),
                "columns": unsigned(1),
            }
        )
        #: MacArray output: the ``mac_rows`` FP32 scores of one K vector; ``end`` on the
        #: block's final K vector.
        self.array_out = data.StructLayout(
            {"s": data.ArrayLayout(FP32, cfg.mac_rows), "end": unsigned(1)}
        )
        #: TileSoftmax input: one row of one attention tile, ``s`` = ``tile_tokens`` FP32
        #: scores (a masked token ``-inf``), the row's running max ``m`` and sum ``l``
        #: (``-inf`` and ``+0`` before its first tile), ``last`` passed through.
        self.tile_in = data.StructLayout(
            {
                "s": data.ArrayLayout(FP32, cfg.tile_tokens),
                "m": FP32,
                "l": FP32,
                "last": unsigned(1),
            }
        )
        #: TileSoftmax output: the row's new ``m`` and ``l``, the accumulator scale ``a`` and
        #: P's tile row ``p`` (``tile_tokens`` BF16), ``last`` of its input row.
        self.tile_out = data.StructLayout(
            {
                "m": FP32,
                "l": FP32,
                "a": FP32,
                "p": data.ArrayLayout(BF16, cfg.tile_tokens),
                "last": unsigned(1),
            }
        )
        #: TiledAttention inputs (``queries``, ``kv``): ``mac_cols`` BF16 elements of a query
        #: row or of a token's K then V vector, the row's or token's position ``pos``,
        #: ``end`` on every beat of the final row or token, ``pad`` (``kv`` only) on every
        #: beat of a final padding token.
        self.attn_in = data.StructLayout(
            {
                "x": data.ArrayLayout(BF16, cfg.mac_cols),
                "pos": unsigned(cfg.token_id_bits + 1),
                "end": unsigned(1),
                "pad": unsigned(1),
            }
        )
        #: TiledAttention output: ``mac_cols`` FP32 elements of a row's output; ``last`` on
        #: the row's final beat, ``end`` on the final row's.
        self.attn_out = data.StructLayout(
            {"o": data.ArrayLayout(FP32, cfg.mac_cols), "last": unsigned(1), "end": unsigned(1)}
        )
        #: RopeUnit input: one beat of ``mac_lanes`` BF16 elements of a ``head_dim`` vector
        #: (``head_dim / mac_lanes`` beats, ``last`` on the final one); ``position`` (the
        #: token position, ``token_id_bits + 1`` bits) is read on the first beat.
        self.rope_in = data.StructLayout(
            {
                "x": data.ArrayLayout(BF16, lanes),
                "position": unsigned(cfg.token_id_bits + 1),
                "last": unsigned(1),
            }
        )
        #: RopeUnit output: one beat of the rotated vector, same framing as ``rope_in``.
        self.rope_out = data.StructLayout({"x": data.ArrayLayout(BF16, lanes), "last": unsigned(1)})


@cache
def layouts(cfg: HWConfig) -> DatapathLayouts:
    """``DatapathLayouts`` of ``cfg`` (one instance per configuration)."""
    return DatapathLayouts(cfg)
