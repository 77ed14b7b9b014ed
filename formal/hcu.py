"""Formal harness of ``HashClusterUnit`` (HCU).

``props="stream"`` (k-induction): the ``assign`` stream holds valid and payload until its
handshake, and (``hcu_batch`` 1) the ``forced`` counter saturates: it never goes down
except in the cycle after a ``clear`` token is accepted.

``props="model"`` (bounded): a reference model in the harness follows the outputs. Token
ids are assumed sequential (0, 1, 2, … modulo ``2**token_id_bits``), so in-order, one
result per token is ``assign.token_id`` = the number of results so far, with at most
``hcu_batch`` tokens accepted and not yet answered. The model keeps the signatures of the
clusters created since the last ``clear`` (token order), and at the first step of every
result beat checks it against the nearest table cluster (Hamming distance, lowest index on
ties): CREATED exactly when that distance exceeds ``threshold`` (or the table is empty) and
the table is not full, with the next id and distance 0; otherwise that cluster and its
distance, JOINED when within ``threshold``, FORCED when not (the table is full);
``occupancy`` equals the model's count, so every cluster id is below it; ``forced`` equals
the model's forced joins (saturating); and ``count_data`` equals the model's per-cluster
count, saturating at ``count_max``, for every occupied address. Covers: the table full,
a forced join and a saturated count.

``bug`` mutates a property on purpose (it must fail): ``"threshold"`` expects CREATED at
``distance >= threshold`` instead of ``>``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cover, Elaboratable, Module, Mux, Signal

from hw.config import HWConfig, preset
from hw.dre.hcu import HashClusterUnit
from hw.dre.layouts import Event

from .props import Env, popcount

__all__ = ["HCUHarness", "hcu_config"]

_PROPS = ("stream", "model")
_BUGS = (None, "threshold")


def hcu_config(batch: int = 1) -> HWConfig:
    """The ``tiny`` preset cut down: 3 clusters in 2 lanes (a full row and a partial one),
    4-bit signatures (T = 1), 2-bit counts (saturate at 3), 3-bit token ids (forced joins
    saturate at 7) and ``batch`` tokens per batch."""
    return preset("tiny").replace(
        hcu_lanes=2,
        hcu_batch=batch,
        topk_k=2,
        wtu_lanes=2,
        token_id_bits=3,
        resv={"max_clusters": 3, "hash_bits": 4, "threshold": 1, "count_bits": 2},
    )


class HCUHarness(Elaboratable):
    def __init__(self, cfg: HWConfig | None = None, *, props: str = "stream", bug=None):
        if props not in _PROPS:
            self._MustUse__silence = True
            raise ValueError(f"props must be one of {_PROPS}, not {props!r}")
        if bug not in _BUGS:
            self._MustUse__silence = True
            raise ValueError(f"bug must be one of {_BUGS}, not {bug!r}")
        self.cfg = cfg if cfg is not None else hcu_config()
        self.props = props
        self.bug = bug

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        env = Env(m)
        m.submodules.dut = dut = HashClusterUnit(cfg)
        env.drive_source(dut.tokens, name="tokens")
        env.drive_sink(dut.assign, name="assign")
        m.d.comb += dut.count_addr.eq(env.any(cfg.cluster_id_bits, name="count_addr"))
        held = env.assert_stable(dut.assign, name="assign")

        fmax = (1 << cfg.token_id_bits) - 1
        if cfg.hcu_batch == 1:
            self._forced_saturates(m, env, dut, fmax)
        if self.props == "model":
            self._model(m, env, dut, held)
        return m

    def _forced_saturates(self, m, env, dut, fmax):
        # With one-token batches a clear token empties the table in its acceptance cycle;
        # with larger batches only when its batch starts, which the ports do not show (the
        # model then checks ``forced`` at every result instead).
        accepted_clear = env.past(
            dut.tokens.valid & dut.tokens.ready & dut.tokens.payload.clear, name="clear_in"
        )
        past_forced = env.past(dut.forced, name="forced")
        with m.If(env.after_reset & (past_forced == fmax) & ~accepted_clear):
            m.d.comb += Assert(dut.forced == fmax, "forced: saturated counter moved")
        with m.If(env.after_reset & ~accepted_clear):
            m.d.comb += Assert(dut.forced >= past_forced, "forced: counter went down")

    def _model(self, m, env, dut, held):
        cfg, r = self.cfg, self.cfg.resv
        mc, hb, tb = cfg.max_clusters, r.hash_bits, cfg.token_id_bits
        far = hb + 1
        tok, asn = dut.tokens, dut.assign
        # Sequential token ids; the signature and clear flag of each token in flight.
        n_in = Signal(tb, name="m_n_in")
        n_out = Signal(tb, name="m_n_out")
        depth = 1 << max(1, (cfg.hcu_batch).bit_length())
        q_sig = Array(Signal(hb, name=f"m_q_sig{i}") for i in range(depth))
        q_clr = Array(Signal(name=f"m_q_clear{i}") for i in range(depth))
        m.d.comb += Assert((n_in - n_out)[:tb] <= cfg.hcu_batch, "more tokens in flight")
        m.d.comb += Assume(~tok.valid | (tok.payload.token_id == n_in))
        with m.If(tok.valid & tok.ready):
            m.d.sync += [
                n_in.eq(n_in + 1),
                q_sig[n_in[: depth.bit_length() - 1]].eq(tok.payload.signature),
                q_clr[n_in[: depth.bit_length() - 1]].eq(tok.payload.clear),
            ]

        # The table as the results tell it, since the last clear.
        occ = Signal(range(mc + 1), name="m_occupancy")
        table = [Signal(hb, name=f"m_sig{i}") for i in range(mc)]
        count = [Signal(r.count_bits, name=f"m_count{i}") for i in range(mc)]
        forced = Signal(tb, name="m_forced")

        first = asn.valid & ~held
        slot = n_out[: depth.bit_length() - 1]
        sig, clr = q_sig[slot], q_clr[slot]
        eff = Signal(range(mc + 1), name="m_eff_occupancy")
        m.d.comb += eff.eq(Mux(clr, 0, occ))
        best = Signal(range(far + 1), name="m_best_dist")
        best_i = Signal(range(mc), name="m_best_idx")
        dists = [Signal(range(hb + 1), name=f"m_dist{i}") for i in range(mc)]
        cand = [Signal(range(far + 1), name=f"m_cand{i}") for i in range(mc)]
        for i in range(mc):
            m.d.comb += [
                dists[i].eq(popcount(sig ^ table[i])),
                cand[i].eq(Mux(i < eff, dists[i], far)),
            ]
        # Lowest-index minimum as a chain: best over 0..i.
        chain_d, chain_i = far, 0
        for i in range(mc):
            take = cand[i] < chain_d
            chain_d = Mux(take, cand[i], chain_d)
            chain_i = Mux(take, i, chain_i)
        m.d.comb += [best.eq(chain_d), best_i.eq(chain_i)]
        over = (best >= r.threshold) if self.bug == "threshold" else (best > r.threshold)
        create = over & (eff < mc)
        p = asn.payload
        created = p.event == Event.CREATED
        new_occ = Mux(created, eff + 1, eff)
        new_forced = Mux(clr, 0, forced)
        with m.If(first):
            m.d.comb += [
                Assert(p.token_id == n_out, "assign: result out of order or for no token"),
                Assert((n_in - n_out)[:tb] != 0, "assign: result without a token"),
                Assert(created == create, "assign: CREATED not exactly when far and not full"),
                Assert(p.cluster < dut.occupancy, "assign: cluster id not below the occupancy"),
                Assert(dut.occupancy == new_occ, "occupancy: differs from the model"),
            ]
            with m.If(created):
                m.d.comb += [
                    Assert(p.cluster == eff, "assign: created cluster is not the next id"),
                    Assert(p.distance == 0, "assign: created with a non-zero distance"),
                ]
            with m.Else():
                m.d.comb += [
                    Assert(p.cluster == best_i, "assign: not the nearest (lowest) cluster"),
                    Assert(p.distance == best, "assign: wrong distance"),
                    Assert(
                        (p.event == Event.JOINED) == (best <= r.threshold),
                        "assign: JOINED not exactly when within the threshold",
                    ),
                    Assert(
                        (p.event == Event.FORCED) == (best > r.threshold),
                        "assign: FORCED not exactly when far and full",
                    ),
                ]
            nf = Mux(
                p.event == Event.FORCED,
                Mux(new_forced == (1 << tb) - 1, new_forced, new_forced + 1),
                new_forced,
            )
            m.d.comb += Assert(dut.forced == nf[:tb], "forced: differs from the model")
            m.d.sync += [n_out.eq(n_out + 1), occ.eq(new_occ), forced.eq(nf)]
            for i in range(mc):
                with m.If(p.cluster == i):
                    with m.If(created):
                        m.d.sync += [table[i].eq(sig), count[i].eq(1)]
                    with m.Elif(count[i] != r.count_max):
                        m.d.sync += count[i].eq(count[i] + 1)

        # count_data: the count of the previous step's address, every result that has been
        # valid for a step included (the model is updated at a result's first step).
        past_addr = env.past(dut.count_addr, name="count_addr")
        with m.If(env.after_reset & (past_addr < occ)):
            m.d.comb += Assert(
                dut.count_data == Array(count)[past_addr], "count_data: differs from the model"
            )
        m.d.comb += [
            Cover(occ == mc, "table full"),
            Cover(first & (p.event == Event.FORCED), "forced join"),
            Cover(
                env.after_reset & (past_addr < occ) & (dut.count_data == r.count_max),
                "count saturated",
            ),
        ]
