"""WiCSumThresholdUnit (WTU): bucketed WiCSum selection, bit-exact with
``golden.resv.wicsum_select_bucketed``.

Interface
  ``cmd`` (in stream, ``DRELayouts.wtu_cmd``): ``coverage_q`` of the next row (1..2**cf).
  ``clusters`` (in stream, ``DRELayouts.cluster_score``): the row, clusters 0, 1, …, C-1 in
  order, ``last`` on cluster C-1 (C <= max_clusters). An id out of sequence or a row longer
  than ``max_clusters`` sets ``error`` in the summary.
  ``selected`` (out stream, ``DRELayouts.selected``): the selected cluster ids in bucket
  order, ascending id within a bucket, ``last`` on the final one (there is always one: the
  maximum's bucket 0 is never empty). Grid buckets with ``wtu_lanes = L > 1``:
  ``DRELayouts.selected_lanes``, up to L ids per beat (see "Lanes" below).
  ``summary`` (out stream, ``DRELayouts.wtu_summary``): after the last selected id: b*,
  buckets scanned (b*+1), clusters selected, total mass M, threshold θ, error.

Phases (one row at a time; cycle counts without stalls):
  IDLE      1      accept ``cmd``
  INGEST    C      1 cluster/cycle into the score and count memories, running maximum m
  BUCKET    C + 2  re-read both memories (the buckets need the final m), 2-stage pipeline:
                   b = (m - s) >> bucket_shift and count·L[b]; then per-bucket token count
                   cnt_b += count, M += count·L[b] and the cluster is appended to bucket b's
                   linked list (head/tail registers, ``next`` memory). Out-of-range clusters
                   (b >= n_buckets) are dropped here.
  THRESH    1      θ = ceil(coverage_q·M / 2**coverage_frac_bits)
  SCAN      b*+1   running += cnt_b·L[b] from b = 0; stop at the first running >= θ
                   (early exit: buckets past b* are never touched)
  EMIT      1 + k  walk the lists of the non-empty buckets <= b* (a priority encoder skips
                   empty buckets), 1 selected cluster/cycle
  SUMMARY   1      the done beat
so ``cycles(C, b*, k) = 2·C + b* + k + 7`` from the ``cmd`` handshake to the ``summary``
handshake, both included. Linking in arrival order gives ascending ids within a bucket.

``bucket_mode = "grid"`` (SPEC section 2 "Grid buckets"; ``golden.resv.bucket_of``) reads
the row once: a cluster's bucket is fixed by its own grid cell ``g = s >> bucket_shift``
and the top cell ``G`` seen so far, so it is histogrammed as it arrives into a circular set
of ``n_buckets`` bins (bin ``(base + b) mod n_buckets`` holds bucket ``b = G - g``). When a
cluster raises ``G`` by ``Δ``, the bins whose bucket becomes ``>= n_buckets`` are emptied in
that cycle and ``base`` moves back by ``Δ``; a cluster below the range is dropped. Phases:
  IDLE 1, INGEST C (histogram and lists, 1 cluster/cycle), MASS n_buckets (M = Σ cnt_b·L[b],
  one bucket per cycle), THRESH 1, SCAN b*+1, EMIT 1 + k, SUMMARY 1
so ``cycles(C, b*, k) = C + n_buckets + b* + k + 5``; the score and count memories are not
needed (the histogram and the lists hold everything the selection uses).

Lanes (issue 12): with ``bucket_mode = "grid"`` and ``wtu_lanes = L > 1`` the ``clusters``
stream is ``DRELayouts.cluster_lanes``: L clusters per beat (ids ``base .. base + n - 1``,
``base`` = L x the beat's index, ``n < L`` only on the ``last`` beat; ``base`` out of
sequence, ``n = 0``, ``n > L``, a short beat that is not the last or a row longer than
``max_clusters`` set ``error``). ``wtu_ingest_lanes(cfg)`` says which stream a config has.
  INGEST    ceil(C/L)  one beat per cycle. The beat's top cell (a max tree over its lanes)
                   moves the grid as a single cluster does above; every lane is then bucketed
                   against the new top cell and the histogram takes all L at once through an
                   adder network: bin j adds the counts of the lanes that fall in it (an
                   L-input masked sum per bin; no per-lane histogram banks). Per bin it keeps
                   the token count, a non-empty flag and its lowest and highest id (``head``,
                   ``tail``); there are no lists (no ``next`` memory). A bin is a
                   ``WTUBin`` (``hw/dre/wtu_bin.py``), one shared module. Each lane's grid cell
                   ``s >> bucket_shift`` (``score_bits - bucket_shift`` bits) is written to
                   its bank (cluster c in bank ``c mod L``, row ``c div L``).
  MASS      ceil(n_buckets/G)  G = ``wtu_scan_group(cfg)`` = min(L, n_buckets) buckets per
                   cycle, in bucket order (bucket ``g·G + j`` on lane j): M += Σ_j cnt·L[b]
                   over the group (each lane's product a shared ``WTUMass`` module,
                   ``hw/dre/wtu_mass.py``, unless ``G = n_buckets`` makes its weight a
                   constant or every weight is a power of two). The group is read from the
                   circular bins through a shifter (when G divides n_buckets: the two
                   aligned bin groups it straddles shifted by ``base mod G``; otherwise the
                   bins rotated by ``base``); lanes past bucket n_buckets - 1 read zero.
  THRESH    1      as above
  SCAN      b* div G + 1  the same group read; a prefix sum over the group's G masses
                   (depth log2 G) and G compares ``prefix_j >= θ - running`` (a register
                   of the threshold still to reach); the first lane that crosses is b* (early
                   exit: later groups are never read), else the next group. It also keeps
                   the lowest and highest id of the buckets <= b* (the first and the last
                   selected id; a min and a max tree over the group).
  EMIT      1 + E  reads the banks a row of L ids per cycle from the row of the first
                   selected id to that of the last, selects the lanes whose bucket ``top_cell -
                   cell <= b*`` and emits them in one ``selected`` beat
                   (``DRELayouts.selected_lanes``: ``base``, a mask of L lanes, ``last``); a
                   row holding none is read but sends no beat; ``E = last // L - first // L +
                   1`` (``golden.resv.BucketedSelection.emit_cycles``)
  SUMMARY   1
so ``cycles = ceil(C/L) + ceil(n_buckets/L) + b* div L + E + 5`` (``n_buckets`` and ``b*``
over ``G = min(L, n_buckets)`` give the same counts), the L = 1 formula with ``E = k``. The
emit order is ascending id, not bucket order: ``golden.resv.wicsum_select_bucketed(...,
lanes=L)`` and ``golden.resv.emit_beats`` define it (the set, b*, M and θ are those of one
lane). After an ingest error that misaligns the row (a short beat that is not the last) or
leaves it empty, the selection is undefined but the emit still ends: past the row's last id
it closes the stream with one beat (the highest id it expected, ``last``). ``relative`` buckets
stay single-lane whatever ``wtu_lanes`` (their second pass would need L-wide score and
count reads; not built): they keep ``DRELayouts.cluster_score``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.resv import bucket_lut

from ..config import HWConfig, ceil_log2, check_config
from ..shared import shared
from .bitops import lowest_set, popcount
from .layouts import lanes_beat_malformed, layouts
from .wtu_bin import WTUBin
from .wtu_mass import WTUMass

__all__ = [
    "WTU_GRID_LATENCY",
    "WTU_LATENCY",
    "WTU_TOPS",
    "WiCSumThresholdUnit",
    "grid_wtu",
    "relative_wtu",
    "wtu_cycles",
    "wtu_ingest_lanes",
    "wtu_scan_group",
    "wtu_unit_config",
]

#: Fixed cycles of a row: cmd, bucketing pipeline (2), threshold, emit start, summary.
WTU_LATENCY = 7
#: The same for ``bucket_mode = "grid"``: cmd, threshold, emit start, summary and the scan's
#: ``+1`` (it visits groups 0 .. b* div L), on top of ``ceil(C/L)`` ingest and
#: ``ceil(n_buckets/L)`` mass cycles.
WTU_GRID_LATENCY = 5


def wtu_ingest_lanes(cfg: HWConfig) -> int:
    """Clusters per ``clusters`` beat of the WTU of ``cfg``: ``wtu_lanes`` with ``grid``
    buckets, 1 with ``relative`` ones (single-lane whatever ``wtu_lanes``)."""
    return cfg.wtu_lanes if cfg.resv.bucket_mode == "grid" else 1


def wtu_scan_group(cfg: HWConfig) -> int:
    """Buckets the WTU of ``cfg`` adds up per ``MASS`` and ``SCAN`` cycle: ``min(L,
    n_buckets)`` with ``L = wtu_ingest_lanes(cfg)`` (1 with one lane and with ``relative``
    buckets)."""
    return min(wtu_ingest_lanes(cfg), cfg.resv.n_buckets)


def wtu_cycles(
    cfg: HWConfig,
    n_clusters: int,
    b_star: int,
    n_selected: int,
    *,
    emit_cycles: int | None = None,
) -> int:
    """Cycles from the ``cmd`` handshake to the ``summary`` handshake (both included)
    without stalls: ``2·C + b* + k + WTU_LATENCY`` (``relative`` buckets) or ``ceil(C/L) +
    ceil(n_buckets/G) + b* div G + E + WTU_GRID_LATENCY`` (``grid``, ``L = wtu_lanes``,
    ``G = wtu_scan_group(cfg) = min(L, n_buckets)`` buckets per mass and scan cycle), where
    ``E = k`` with one lane and, with more, ``emit_cycles`` (required then) is
    ``golden.resv.BucketedSelection.emit_cycles`` of the row at ``lanes = L``. At L = 1 this
    is ``C + n_buckets + b* + k + 5``."""
    if not 1 <= n_clusters <= cfg.max_clusters:
        raise ValueError(f"n_clusters must be in 1..{cfg.max_clusters}, not {n_clusters!r}")
    lanes = wtu_ingest_lanes(cfg)
    if cfg.resv.bucket_mode == "grid":
        if lanes == 1:
            emit = n_selected
        elif emit_cycles is None:
            raise ValueError(
                f"emit_cycles must be given with wtu_lanes={lanes} (grid buckets), not None"
            )
        else:
            emit = emit_cycles
        group = wtu_scan_group(cfg)
        beats = -(-n_clusters // lanes)
        mass = -(-cfg.resv.n_buckets // group)
        return beats + mass + b_star // group + emit + WTU_GRID_LATENCY
    return 2 * n_clusters + b_star + n_selected + WTU_LATENCY


def _shift_down(values: list, shift, n: int, zero) -> list:
    """``values[shift .. shift + n - 1]`` (``zero`` past the end): a barrel shifter, the
    largest step first so each stage keeps only the entries the smaller steps can reach."""
    for s in reversed(range(len(shift))):
        step = 1 << s
        keep = min(len(values), n + step - 1)
        values = [
            Mux(shift[s], values[i + step] if i + step < len(values) else zero, values[i])
            for i in range(keep)
        ]
    return values[:n]


class WiCSumThresholdUnit(wiring.Component):
    """Bucketed WiCSum with early exit; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        lanes = wtu_ingest_lanes(cfg)
        super().__init__(
            {
                "cmd": In(stream.Signature(lay.wtu_cmd)),
                "clusters": In(
                    stream.Signature(lay.cluster_lanes if lanes > 1 else lay.cluster_score)
                ),
                "selected": Out(
                    stream.Signature(lay.selected_lanes if lanes > 1 else lay.selected)
                ),
                "summary": Out(stream.Signature(lay.wtu_summary)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Fixed cycles of a row on top of ``2·C + b* + k`` (``relative``) or ``ceil(C/L) +
        ceil(n_buckets/L) + b* div L + E`` (``grid``); see ``cycles``."""
        return WTU_GRID_LATENCY if self._cfg.resv.bucket_mode == "grid" else WTU_LATENCY

    @property
    def lanes(self) -> int:
        """Clusters per ``clusters`` beat (``wtu_ingest_lanes``)."""
        return wtu_ingest_lanes(self._cfg)

    def cycles(
        self, n_clusters: int, b_star: int, n_selected: int, *, emit_cycles: int | None = None
    ) -> int:
        """Cycles from the ``cmd`` handshake to the ``summary`` handshake, without stalls."""
        return wtu_cycles(self._cfg, n_clusters, b_star, n_selected, emit_cycles=emit_cycles)

    def _histogram(self, m, p, ident, base, head, tail, cnt, nonempty, next_wr) -> None:
        """Grid mode: bin the arriving cluster ``p`` (id ``ident``) in the same cycle,
        emptying the bins a higher top cell pushes out of range (module docstring)."""
        r = self._cfg.resv
        nb = r.n_buckets
        cw = r.score_bits - r.bucket_shift + 1
        top_g = Signal(signed(cw), name="top_cell")
        g = Signal(signed(cw), name="cell")
        delta = Signal(signed(cw + 1), name="cell_rise")
        m.d.comb += [g.eq(p.score >> r.bucket_shift), delta.eq(g - top_g)]
        first = ident == 0
        rise = first | (delta > 0)
        # On a rise: by how much, capped at n_buckets (everything leaves the range).
        up = Signal(range(nb + 1), name="rise_capped")
        m.d.comb += up.eq(Mux(delta >= nb, nb, delta))
        new_base = Signal(range(nb), name="new_base")
        m.d.comb += new_base.eq(
            Mux(first | (up == nb), 0, Mux(base >= up, base - up, base + nb - up))
        )
        below = Signal(range(nb), name="cell_bucket")
        m.d.comb += below.eq(-delta)  # the bucket when not a rise and in range
        in_range = rise | (-delta < nb)
        target = Signal(range(nb), name="cell_bin")
        t = base + below
        m.d.comb += target.eq(Mux(rise, new_base, Mux(t >= nb, t - nb, t)))
        append = ~rise & nonempty.bit_select(target, 1)
        with m.If(in_range & append):
            m.d.comb += [next_wr.addr.eq(tail[target]), next_wr.data.eq(ident), next_wr.en.eq(1)]
        for j in range(nb):
            # (j - base) mod n_buckets; for the last bin base <= j always holds.
            old_bucket = j - base if j == nb - 1 else Mux(base <= j, j - base, j + nb - base)
            with m.If(first | (rise & (old_bucket + up >= nb))):
                m.d.sync += [cnt[j].eq(0), nonempty[j].eq(0)]
            with m.If(in_range & (target == j)):
                with m.If(append):
                    m.d.sync += [cnt[j].eq(cnt[j] + p.count), tail[j].eq(ident)]
                with m.Else():
                    m.d.sync += [
                        cnt[j].eq(p.count),
                        head[j].eq(ident),
                        tail[j].eq(ident),
                        nonempty[j].eq(1),
                    ]
        with m.If(rise):
            m.d.sync += [top_g.eq(g), base.eq(new_base)]

    def _bucket_group(self, m, base, grp, grp_bin, active, cnt, head, tail, nonempty):
        """Grid buckets, L lanes: the ``G = wtu_scan_group`` buckets ``g·G .. g·G + G - 1``
        of the scan's current group ``g = grp`` in bucket order, as ``(count, head, tail,
        non-empty)`` per lane (lanes past ``n_buckets - 1`` in the last group read zero).
        Bucket ``b`` lives in bin ``(base + b) mod n_buckets``. When ``G`` divides
        ``n_buckets``, with ``base = q·G + r`` the group's bins are the aligned bin groups
        ``grp_bin = (q + g) mod n_groups`` and the next one, shifted down by ``r`` (a ``log2
        G``-stage shifter over ``2·G`` bins); otherwise the whole histogram is rotated by
        ``base`` and the group picked from it. The bins enter gated by ``active`` (MASS
        and SCAN), so the shifter and the adders stay quiet while the histogram fills."""
        cfg, r = self._cfg, self._cfg.resv
        nb, cid = r.n_buckets, cfg.cluster_id_bits
        group = wtu_scan_group(cfg)
        n_groups = -(-nb // group)
        cw = cfg.bucket_count_bits
        width = cw + 2 * cid + 1
        bins = [Mux(active, Cat(cnt[k], head[k], tail[k], nonempty[k]), 0) for k in range(nb)]
        zero = Const(0, width)
        if nb % group:
            # Rotate all n_buckets bins by base (< n_buckets), pad to whole groups.
            flat = _shift_down(bins + bins, base, nb, zero) + [zero] * (n_groups * group - nb)
            picked = [
                Array(flat[g * group + j] for g in range(n_groups))[grp] for j in range(group)
            ]
            shift, low, high = Const(0, 0), picked, []
        elif n_groups == 1:
            shift = base  # base < n_buckets = G
            low, high = bins, bins
        else:
            gb = ceil_log2(group)
            shift = base[:gb]
            nxt = Signal(range(n_groups), name="scan_bin_group_next")
            m.d.comb += nxt.eq(Mux(grp_bin == n_groups - 1, 0, grp_bin + 1))
            low = [
                Array(bins[g * group + i] for g in range(n_groups))[grp_bin] for i in range(group)
            ]
            high = [Array(bins[g * group + i] for g in range(n_groups))[nxt] for i in range(group)]
        window = []
        for i, v in enumerate(low + high):
            w = Signal(width, name=f"scan_window{i}")
            m.d.comb += w.eq(v)
            window.append(w)
        window = _shift_down(window, shift, group, zero)
        lanes = []
        for j in range(group):
            v = Signal(width, name=f"scan_lane{j}")
            m.d.comb += v.eq(window[j])
            lanes.append((v[:cw], v[cw : cw + cid], v[cw + cid : cw + 2 * cid], v[-1]))
        return lanes

    def _elaborate_lanes(self) -> Module:
        """Grid buckets, ``wtu_lanes`` clusters per beat (module docstring, "Lanes")."""
        cfg, r = self._cfg, self._cfg.resv
        nb, cmax, cid = r.n_buckets, cfg.max_clusters, cfg.cluster_id_bits
        lanes = cfg.wtu_lanes
        lb = ceil_log2(lanes)
        rows = -(-cmax // lanes)
        cw = r.score_bits - r.bucket_shift  # width of a grid cell s >> bucket_shift (signed)
        m = Module()

        cell_wr, cell_rd = [], []
        for j in range(lanes):
            mem = Memory(shape=signed(cw), depth=rows, init=[])
            m.submodules[f"cell_mem{j}"] = mem
            cell_wr.append(mem.write_port())
            cell_rd.append(mem.read_port())
        lut = bucket_lut(r)

        n = Signal(range(cmax + 1), name="n_clusters")
        top_g = Signal(signed(cw), name="top_cell")
        base = Signal(range(nb), name="base")
        cov_q = Signal(cfg.coverage_q_bits, name="coverage_q")
        err = Signal(name="error")
        # The histogram: one shared module per bin (hw/dre/wtu_bin.py).
        bins = [shared(m, f"bin{k}", WTUBin(cfg), cfg) for k in range(nb)]
        mass = Signal(cfg.mass_bits, name="mass")
        theta = Signal(cfg.mass_bits, name="theta")
        # SCAN: θ less the mass of the groups before this one (what the group must reach).
        remaining = Signal(cfg.mass_bits, name="remaining")
        b_star = Signal(range(nb), name="b_star")
        first_sel = Signal(cid, name="first_selected")
        last_sel = Signal(cid, name="last_selected")
        emit_row = Signal(range(rows + 1), name="emit_row")
        n_sel = Signal(cfg.occupancy_bits, name="n_selected")
        # MASS and SCAN: G buckets per cycle (wtu_scan_group), groups in bucket order.
        group = wtu_scan_group(cfg)
        n_groups = -(-nb // group)
        grp = Signal(range(n_groups), name="scan_group")
        grp_bin = Signal(range(n_groups), name="scan_bin_group")
        scan_active = Signal(name="scan_active")  # MASS or SCAN: the group read is used
        lane_in = self._bucket_group(
            m,
            base,
            grp,
            grp_bin,
            scan_active,
            [b.count for b in bins],
            [b.head for b in bins],
            [b.tail for b in bins],
            Cat(*(b.nonempty for b in bins)),
        )

        def lut_at(b):
            return Const(int(lut[b]) if b < nb else 0, cfg.lut_bits)

        # A multiplier module only for real products: a constant weight (one group) costs a
        # few adders and power-of-two weights (tiny's whole-octave buckets) a shifter inline.
        shifts = all(int(x) & (int(x) - 1) == 0 for x in lut)
        weights = []
        for j, (c, _h, _t, _ne) in enumerate(lane_in):
            if n_groups == 1:
                weight = lut_at(j)
            else:
                weight = Array(lut_at(g * group + j) for g in range(n_groups))[grp]
            if n_groups == 1 or shifts:
                weights.append(c * weight)
                continue
            w = shared(m, f"scan_mass{j}", WTUMass(cfg), cfg)
            m.d.comb += [w.count.eq(c), w.weight.eq(weight)]
            weights.append(w.mass)
        # Prefix sums of the group's masses (Sklansky, depth log2 G).
        prefix = list(weights)
        span = 1
        while span < group:
            prefix = [
                prefix[i] + prefix[(i // (2 * span)) * 2 * span + span - 1]
                if (i // span) % 2
                else prefix[i]
                for i in range(group)
            ]
            span *= 2
        group_mass = Signal(cfg.mass_bits, name="scan_group_mass")
        m.d.comb += group_mass.eq(prefix[-1])
        # The aligned bin group holding bucket g·G: (base div G + g) mod n_groups.
        if n_groups > 1 and nb % group == 0:
            t = Signal(range(2 * n_groups), name="scan_bin_group_sum")
            m.d.comb += [
                t.eq((base >> ceil_log2(group)) + grp),
                grp_bin.eq(Mux(t >= n_groups, t - n_groups, t)),
            ]

        m.d.comb += [
            self.summary.payload.b_star.eq(b_star),
            self.summary.payload.buckets_scanned.eq(b_star + 1),
            self.summary.payload.n_selected.eq(n_sel),
            self.summary.payload.total_mass.eq(mass),
            self.summary.payload.threshold.eq(theta),
            self.summary.payload.error.eq(err),
        ]
        for j in range(lanes):
            m.d.comb += [cell_rd[j].en.eq(0), cell_rd[j].addr.eq(emit_row + 1)]

        # Ingest datapath: the beat's cells, its top cell, the moved grid and every lane's bin.
        p = self.clusters.payload
        take = self.clusters.valid & self.clusters.ready
        first = n == 0
        valid = Signal(lanes, name="lane_valid")
        m.d.comb += valid.eq(Cat(*((j < p.n) & (n + j < cmax) for j in range(lanes))))
        cells = []
        for j in range(lanes):
            g = Signal(signed(cw), name=f"cell{j}")
            m.d.comb += g.eq(p.score[j] >> r.bucket_shift)
            cells.append(g)
        floor = Const(-(1 << (cw - 1)), signed(cw))
        tops = [Mux(valid[j], cells[j], floor) for j in range(lanes)]
        while len(tops) > 1:
            tops = [
                Mux(tops[i] > tops[i + 1], tops[i], tops[i + 1]) if i + 1 < len(tops) else tops[i]
                for i in range(0, len(tops), 2)
            ]
        beat_top = Signal(signed(cw), name="beat_top")
        delta = Signal(signed(cw + 1), name="cell_rise")
        m.d.comb += [beat_top.eq(tops[0]), delta.eq(beat_top - top_g)]
        rise = Signal(name="rise")
        m.d.comb += rise.eq(valid.any() & (first | (delta > 0)))
        up = Signal(range(nb + 1), name="rise_capped")
        m.d.comb += up.eq(Mux(first | (delta >= nb), nb, delta))
        new_base = Signal(range(nb), name="new_base")
        new_top = Signal(signed(cw), name="new_top")
        m.d.comb += [
            new_base.eq(
                Mux(
                    rise,
                    Mux(up == nb, 0, Mux(base >= up, base - up, base + nb - up)),
                    base,
                )
            ),
            new_top.eq(Mux(rise, beat_top, top_g)),
        ]
        in_range, lane_bin = [], []
        for j in range(lanes):
            bucket = Signal(signed(cw + 1), name=f"lane_bucket{j}")  # >= 0 for a valid lane
            m.d.comb += bucket.eq(new_top - cells[j])
            ok = Signal(name=f"lane_in_range{j}")
            m.d.comb += ok.eq(valid[j] & (bucket < nb))
            bb = Signal(range(nb), name=f"lane_bucket_low{j}")
            t = Signal(range(2 * nb), name=f"lane_bin_sum{j}")
            k_bin = Signal(range(nb), name=f"lane_bin{j}")
            m.d.comb += [bb.eq(bucket), t.eq(new_base + bb), k_bin.eq(Mux(t >= nb, t - nb, t))]
            in_range.append(ok)
            lane_bin.append(k_bin)
        for k, b in enumerate(bins):
            # (k - base) mod n_buckets; for the last bin base <= k always holds.
            old_bucket = k - base if k == nb - 1 else Mux(base <= k, k - base, k + nb - base)
            m.d.comb += [
                b.hits.eq(Cat(*(in_range[j] & (lane_bin[j] == k) for j in range(lanes)))),
                b.counts.eq(p.count),
                b.n.eq(n),
                b.cleared.eq(first | (rise & (old_bucket + up >= nb))),
            ]

        with m.FSM(name="wtu_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cov_q.eq(self.cmd.payload.coverage_q), n.eq(0), err.eq(0)]
                    m.next = "INGEST"
            with m.State("INGEST"):
                m.d.comb += self.clusters.ready.eq(1)
                with m.If(take):
                    for j in range(lanes):
                        m.d.comb += [
                            cell_wr[j].addr.eq(n >> lb),
                            cell_wr[j].data.eq(cells[j]),
                            cell_wr[j].en.eq(valid[j]),
                        ]
                    m.d.comb += [b.update.eq(1) for b in bins]
                    with m.If(rise):
                        m.d.sync += [top_g.eq(beat_top), base.eq(new_base)]
                    m.d.sync += n.eq(n + popcount(valid))
                    with m.If(lanes_beat_malformed(p, n, lanes, cmax)):
                        m.d.sync += err.eq(1)
                    with m.If(p.last):
                        m.d.sync += [mass.eq(0), grp.eq(0)]
                        m.next = "MASS"
            with m.State("MASS"):
                # The final base: the grid moves no more once the row is in.
                m.d.comb += scan_active.eq(1)
                m.d.sync += mass.eq(mass + group_mass)
                with m.If(grp == n_groups - 1):
                    m.next = "THRESH"
                with m.Else():
                    m.d.sync += grp.eq(grp + 1)
            with m.State("THRESH"):
                one = (1 << r.coverage_frac_bits) - 1
                thr = Signal(cfg.mass_bits, name="theta_next")
                m.d.comb += thr.eq((cov_q * mass + one) >> r.coverage_frac_bits)
                m.d.sync += [
                    theta.eq(thr),
                    remaining.eq(thr),
                    grp.eq(0),
                    first_sel.eq(cmax - 1),
                    last_sel.eq(0),
                ]
                m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += scan_active.eq(1)
                # The first bucket of the group where the running mass reaches theta.
                cross = Signal(group, name="scan_cross")
                m.d.comb += cross.eq(Cat(*(prefix[j] >= remaining for j in range(group))))
                at, crossed = lowest_set(m, cross, name="scan_cross_lane")
                last_group = grp == n_groups - 1
                # Lanes up to the crossing (all of them without one) are scanned buckets.
                upto = Signal(group, name="scan_upto")
                m.d.comb += upto.eq(Cat(Const(1, 1), *(~cross[:j].any() for j in range(1, group))))
                heads, tails = [], []
                for j, (_c, h, t, ne) in enumerate(lane_in):
                    use = ne & upto[j]
                    heads.append(Mux(use, h, cmax - 1))
                    tails.append(Mux(use, t, 0))
                heads.append(first_sel)
                tails.append(last_sel)
                while len(heads) > 1:
                    heads = [
                        Mux(heads[i] < heads[i + 1], heads[i], heads[i + 1])
                        if i + 1 < len(heads)
                        else heads[i]
                        for i in range(0, len(heads), 2)
                    ]
                    tails = [
                        Mux(tails[i] > tails[i + 1], tails[i], tails[i + 1])
                        if i + 1 < len(tails)
                        else tails[i]
                        for i in range(0, len(tails), 2)
                    ]
                m.d.sync += [
                    first_sel.eq(heads[0]),
                    last_sel.eq(tails[0]),
                    remaining.eq(remaining - group_mass),  # >= 0 until a lane crosses
                ]
                # Without a crossing the scan ends at bucket n_buckets - 1 (last group).
                lane_star = Mux(crossed, at, nb - 1 - (n_groups - 1) * group)
                with m.If(crossed | last_group):
                    if n_groups > 1:
                        m.d.sync += b_star.eq(Cat(lane_star[: ceil_log2(group)], grp))
                    else:
                        m.d.sync += b_star.eq(lane_star)
                    with m.If(~crossed):
                        m.d.sync += err.eq(1)  # only with coverage_q > 2**coverage_frac_bits
                    m.next = "EMIT_FETCH"
                with m.Else():
                    m.d.sync += grp.eq(grp + 1)
            with m.State("EMIT_FETCH"):
                # Rows before that of the first selected id hold none: start there.
                for j in range(lanes):
                    m.d.comb += [cell_rd[j].addr.eq(first_sel >> lb), cell_rd[j].en.eq(1)]
                m.d.sync += [emit_row.eq(first_sel >> lb), n_sel.eq(0)]
                m.next = "EMIT"
            with m.State("EMIT"):
                # The row read last: its lanes in the buckets <= b*, all in one beat.
                sel_mask = Signal(lanes, name="sel_mask")
                m.d.comb += sel_mask.eq(
                    Cat(
                        *(
                            ((emit_row << lb) + j < n) & (top_g - cell_rd[j].data <= b_star)
                            for j in range(lanes)
                        )
                    )
                )
                row_last = Signal(name="emit_row_last")
                m.d.comb += row_last.eq(emit_row == (last_sel >> lb))
                advance = Signal(name="emit_advance")
                out = self.selected.payload
                with m.If((emit_row << lb) >= n):
                    # Past the row without meeting its last id: only after an ingest error
                    # (a short beat that was not the last, or no cluster at all). One beat
                    # closes the stream.
                    m.d.comb += [
                        self.selected.valid.eq(1),
                        out.base.eq((last_sel >> lb) << lb),
                        out.mask.eq(Const(1, lanes) << last_sel[:lb]),
                        out.last.eq(1),
                    ]
                    with m.If(self.selected.ready):
                        m.d.sync += n_sel.eq(n_sel + 1)
                        m.next = "SUMMARY"
                with m.Elif(sel_mask.any() | row_last):
                    m.d.comb += [
                        self.selected.valid.eq(1),
                        out.base.eq(emit_row << lb),
                        out.mask.eq(sel_mask),
                        out.last.eq(row_last),
                    ]
                    with m.If(self.selected.ready):
                        m.d.sync += n_sel.eq(n_sel + popcount(sel_mask))
                        with m.If(row_last):
                            m.next = "SUMMARY"
                        with m.Else():
                            m.d.comb += advance.eq(1)
                with m.Else():  # a row holding no selected id: no beat
                    m.d.comb += advance.eq(1)
                with m.If(advance):
                    for j in range(lanes):
                        m.d.comb += cell_rd[j].en.eq(1)
                    m.d.sync += emit_row.eq(emit_row + 1)
            with m.State("SUMMARY"):
                m.d.comb += self.summary.valid.eq(1)
                with m.If(self.summary.ready):
                    m.next = "IDLE"
        return m

    def elaborate(self, platform):
        if self.lanes > 1:
            return self._elaborate_lanes()
        cfg, r = self._cfg, self._cfg.resv
        nb, cmax = r.n_buckets, cfg.max_clusters
        cid = cfg.cluster_id_bits
        grid = r.bucket_mode == "grid"
        m = Module()

        if not grid:  # the grid histogram needs no second read of the row
            m.submodules.score_mem = score_mem = Memory(
                shape=signed(r.score_bits), depth=cmax, init=[]
            )
            m.submodules.count_mem = count_mem = Memory(
                shape=unsigned(r.count_bits), depth=cmax, init=[]
            )
            score_wr, score_rd = score_mem.write_port(), score_mem.read_port()
            count_wr, count_rd = count_mem.write_port(), count_mem.read_port()
        m.submodules.next_mem = next_mem = Memory(shape=unsigned(cid), depth=cmax, init=[])
        next_wr, next_rd = next_mem.write_port(), next_mem.read_port()
        lut = Array(Const(int(v), cfg.lut_bits) for v in bucket_lut(r))

        n = Signal(range(cmax + 1), name="n_clusters")
        top = Signal(signed(r.score_bits), name="max_score")
        cov_q = Signal(cfg.coverage_q_bits, name="coverage_q")
        err = Signal(name="error")
        nonempty = Signal(nb, name="nonempty")
        head = Array(Signal(cid, name=f"head{b}") for b in range(nb))
        tail = Array(Signal(cid, name=f"tail{b}") for b in range(nb))
        cnt_regs = [Signal(cfg.bucket_count_bits, name=f"cnt{b}") for b in range(nb)]
        cnt = Array(cnt_regs)
        mass = Signal(cfg.mass_bits, name="mass")
        theta = Signal(cfg.mass_bits, name="theta")
        running = Signal(cfg.mass_bits + 1, name="running")
        b = Signal(range(nb), name="scan_bucket")
        b_star = Signal(range(nb), name="b_star")
        i = Signal(range(cmax + 1), name="rd_index")
        s1_valid, s1_id = Signal(name="s1_valid"), Signal(cid, name="s1_id")
        s2_valid, s2_id = Signal(name="s2_valid"), Signal(cid, name="s2_id")
        s2_b, s2_in = Signal(range(nb), name="s2_bucket"), Signal(name="s2_in_range")
        s2_count = Signal(r.count_bits, name="s2_count")
        s2_w = Signal(r.count_bits + cfg.lut_bits, name="s2_weight")
        cur, cur_b = Signal(cid, name="cur"), Signal(range(nb), name="cur_bucket")
        n_sel = Signal(cfg.occupancy_bits, name="n_selected")

        # Bucket b lives in bin (base + b) mod n_buckets: base moves with the grid's top cell,
        # relative buckets are their own bins.
        base = Signal(range(nb), name="base") if grid else Const(0, 1)

        def bin_of(bucket):
            if not grid:
                return bucket
            t = base + bucket
            return Mux(t >= nb, t - nb, t)

        # Non-empty buckets in bucket order (bit b = bin (base + b) mod n_buckets).
        ne_bucket = Cat(nonempty, nonempty).bit_select(base, nb) if grid else nonempty

        m.d.comb += [
            next_rd.en.eq(0),
            self.summary.payload.b_star.eq(b_star),
            self.summary.payload.buckets_scanned.eq(b_star + 1),
            self.summary.payload.n_selected.eq(n_sel),
            self.summary.payload.total_mass.eq(mass),
            self.summary.payload.threshold.eq(theta),
            self.summary.payload.error.eq(err),
        ]

        if not grid:
            m.d.comb += [score_rd.addr.eq(i), count_rd.addr.eq(i)]
            # Bucketing pipeline, stage 1: the bucket of the cluster read last cycle.
            dist = Signal(r.score_bits + 1, name="s1_dist")
            m.d.comb += dist.eq(top - score_rd.data)
            far = dist >> r.bucket_shift
            s1_b = Signal(range(nb), name="s1_bucket")
            m.d.comb += s1_b.eq(far)
            m.d.sync += [
                s2_valid.eq(s1_valid),
                s2_id.eq(s1_id),
                s2_b.eq(s1_b),
                s2_in.eq(far < nb),
                s2_count.eq(count_rd.data),
                s2_w.eq(count_rd.data * lut[s1_b]),
            ]

        # Emit: the list walk and the next non-empty bucket up to b*.
        # Bucket 0 is never "later"; writing it as a constant keeps the lint clean.
        later = Cat(Const(0, 1), *((cur_b < j) & (b_star >= j) for j in range(1, nb)))
        next_b, has_next = lowest_set(m, ne_bucket & later, name="next_bucket")
        at_tail = cur == tail[bin_of(cur_b)]
        is_last = at_tail & ~has_next
        cur_next = Mux(at_tail, head[bin_of(next_b)], next_rd.data)

        with m.FSM(name="wtu_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cov_q.eq(self.cmd.payload.coverage_q), n.eq(0), err.eq(0)]
                    m.next = "INGEST"
            with m.State("INGEST"):
                m.d.comb += self.clusters.ready.eq(1)
                p = self.clusters.payload
                with m.If(self.clusters.valid):
                    with m.If(n < cmax):
                        if grid:
                            self._histogram(m, p, n, base, head, tail, cnt_regs, nonempty, next_wr)
                        else:
                            m.d.comb += [
                                score_wr.addr.eq(n),
                                score_wr.data.eq(p.score),
                                score_wr.en.eq(1),
                                count_wr.addr.eq(n),
                                count_wr.data.eq(p.count),
                                count_wr.en.eq(1),
                            ]
                        m.d.sync += n.eq(n + 1)
                    with m.If((n == cmax) | (p.cluster != n)):
                        m.d.sync += err.eq(1)
                    if not grid:
                        with m.If((n == 0) | (p.score > top)):
                            m.d.sync += top.eq(p.score)
                    with m.If(p.last):
                        m.d.sync += mass.eq(0)
                        if grid:
                            m.d.sync += b.eq(0)
                            m.next = "MASS"
                        else:
                            m.d.sync += [i.eq(0), s1_valid.eq(0), nonempty.eq(0)]
                            m.d.sync += [c.eq(0) for c in cnt_regs]
                            m.next = "BUCKET"
            if grid:
                with m.State("MASS"):
                    m.d.sync += mass.eq(mass + cnt[bin_of(b)] * lut[b])
                    with m.If(b == nb - 1):
                        m.next = "THRESH"
                    with m.Else():
                        m.d.sync += b.eq(b + 1)
            if not grid:
                with m.State("BUCKET"):
                    issue = i < n
                    m.d.sync += [s1_valid.eq(issue), s1_id.eq(i)]
                    with m.If(issue):
                        m.d.sync += i.eq(i + 1)
                    with m.If(s2_valid & s2_in):
                        # One adder and a decoder rather than one adder per bucket.
                        bumped = cnt[s2_b] + s2_count
                        m.d.sync += mass.eq(mass + s2_w)
                        with m.If(nonempty.bit_select(s2_b, 1)):
                            m.d.comb += [
                                next_wr.addr.eq(tail[s2_b]),
                                next_wr.data.eq(s2_id),
                                next_wr.en.eq(1),
                            ]
                        for j in range(nb):
                            with m.If(s2_b == j):
                                m.d.sync += [
                                    cnt[j].eq(bumped),
                                    tail[j].eq(s2_id),
                                    nonempty[j].eq(1),
                                ]
                                with m.If(~nonempty[j]):
                                    m.d.sync += head[j].eq(s2_id)
                    with m.If(~issue & ~s1_valid):
                        m.next = "THRESH"
            with m.State("THRESH"):
                one = (1 << r.coverage_frac_bits) - 1
                m.d.sync += [
                    theta.eq((cov_q * mass + one) >> r.coverage_frac_bits),
                    running.eq(0),
                    b.eq(0),
                ]
                m.next = "SCAN"
            with m.State("SCAN"):
                total = running + cnt[bin_of(b)] * lut[b]
                m.d.sync += running.eq(total)
                with m.If((total >= theta) | (b == nb - 1)):
                    m.d.sync += b_star.eq(b)
                    with m.If(total < theta):
                        m.d.sync += err.eq(1)  # only with coverage_q > 2**coverage_frac_bits
                    m.next = "EMIT_FIRST"
                with m.Else():
                    m.d.sync += b.eq(b + 1)
            with m.State("EMIT_FIRST"):
                # Bucket 0 holds the maximum, so it is never empty.
                m.d.comb += [next_rd.addr.eq(head[base]), next_rd.en.eq(1)]
                m.d.sync += [cur.eq(head[base]), cur_b.eq(0), n_sel.eq(0)]
                m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [
                    self.selected.valid.eq(1),
                    self.selected.payload.cluster.eq(cur),
                    self.selected.payload.last.eq(is_last),
                ]
                with m.If(self.selected.ready):
                    m.d.sync += n_sel.eq(n_sel + 1)
                    with m.If(is_last):
                        m.next = "SUMMARY"
                    with m.Else():
                        m.d.comb += [next_rd.addr.eq(cur_next), next_rd.en.eq(1)]
                        m.d.sync += cur.eq(cur_next)
                        with m.If(at_tail):
                            m.d.sync += cur_b.eq(next_b)
            with m.State("SUMMARY"):
                m.d.comb += self.summary.valid.eq(1)
                with m.If(self.summary.ready):
                    m.next = "IDLE"
        return m


#: The WTU tops of ``hw.gen`` and their bucket mode, whatever the config's.
WTU_TOPS = {"wtu": "relative", "wtu_grid": "grid"}


def wtu_unit_config(unit: str, cfg: HWConfig) -> HWConfig:
    """The config the unit ``unit`` is built at: a WTU top (``WTU_TOPS``) with its bucket
    mode, any other unit at ``cfg``."""
    if not isinstance(cfg, HWConfig):
        raise TypeError(f"cfg must be an HWConfig, not {cfg!r}")
    mode = WTU_TOPS.get(unit)
    return cfg if mode is None else cfg.replace(resv={"bucket_mode": mode})


def grid_wtu(cfg: HWConfig) -> WiCSumThresholdUnit:
    """The WTU of ``cfg`` with ``bucket_mode = "grid"`` (the ``wtu_grid`` top of ``hw.gen``)."""
    return WiCSumThresholdUnit(wtu_unit_config("wtu_grid", cfg))


def relative_wtu(cfg: HWConfig) -> WiCSumThresholdUnit:
    """The WTU of ``cfg`` with ``bucket_mode = "relative"`` (the SPEC's two-pass rule; the
    ``wtu`` top of ``hw.gen``, kept for comparison since the presets use grid buckets)."""
    return WiCSumThresholdUnit(wtu_unit_config("wtu", cfg))
