"""Tests of golden.resv: the ReSV contract of shared/SPEC.md sections 2 and 7."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import SPEC_RULE, preset
from golden.resv import (
    ClusterEvent,
    ClusterTable,
    attention,
    bucket_lut,
    cluster_online,
    emit_beats,
    hamming,
    quantize_scores,
    representative_keys,
    signatures,
    wicsum_select,
    wicsum_select_bucketed,
)

PAPER = preset("paper").replace(**SPEC_RULE)
TINY = preset("tiny").replace(**SPEC_RULE)


# --------------------------------------------------------------------------- references
# Straight transcriptions of SPEC section 2, one token / one cluster at a time.


def ref_cluster(sigs, threshold, max_clusters):
    table, counts, assign, dist, event, forced = [], [], [], [], [], 0
    for s in (int(x) for x in sigs):
        ds = [bin(s ^ c).count("1") for c in table]
        best = min(range(len(ds)), key=lambda i: (ds[i], i)) if ds else None
        if best is not None and ds[best] <= threshold:
            counts[best] += 1
            assign.append(best), dist.append(ds[best]), event.append(ClusterEvent.JOINED)
        elif len(table) < max_clusters:
            table.append(s), counts.append(1)
            assign.append(len(table) - 1), dist.append(0), event.append(ClusterEvent.CREATED)
        else:
            counts[best] += 1
            forced += 1
            assign.append(best), dist.append(ds[best]), event.append(ClusterEvent.FORCED)
    return table, counts, assign, dist, event, forced


def ref_bucketed(scores_q, counts, cfg, coverage_q):
    m, sh = max(scores_q), cfg.bucket_shift
    if cfg.bucket_mode == "grid":
        buckets = [(m >> sh) - (s >> sh) for s in scores_q]
    else:
        buckets = [(m - s) >> sh for s in scores_q]
    lut = [
        round(2 ** (-b * 2**cfg.bucket_shift / 2**cfg.score_frac_bits) * 2**cfg.lut_frac_bits)
        for b in range(cfg.n_buckets)
    ]
    mass = [0] * cfg.n_buckets
    for b, c in zip(buckets, counts, strict=True):
        if b < cfg.n_buckets:
            mass[b] += int(c) * lut[b]
    total = sum(mass)
    theta = -(-coverage_q * total // 2**cfg.coverage_frac_bits)
    acc = 0
    for b_star in range(cfg.n_buckets):
        acc += mass[b_star]
        if acc >= theta:
            break
    sel = [i for b in range(b_star + 1) for i in range(len(scores_q)) if buckets[i] == b]
    return sel, b_star, total, theta


# --------------------------------------------------------------------------- signatures


def test_signature_bits_follow_planes():
    planes = np.eye(4, 3, dtype=np.float32)  # plane j picks coordinate j
    keys = np.array([[1, -1, 0, 5], [-1, 2, -3, 0]], np.float32)
    # bit j = 1 iff k[j] >= 0; bit 0 is the LSB
    assert signatures(keys, planes).tolist() == [0b101, 0b010]


def test_signatures_64_bits_and_dtype():
    rng = np.random.default_rng(0)
    planes = rng.standard_normal((8, 64)).astype(np.float32)
    keys = rng.standard_normal((50, 8)).astype(np.float32)
    s = signatures(keys, planes)
    assert s.dtype == np.uint64
    expect = [sum(1 << j for j in range(64) if keys[i] @ planes[:, j] >= 0) for i in range(50)]
    assert [int(x) for x in s] == expect
    assert (s >> np.uint64(63)).any()  # the top bit is used


def test_all_zero_keys_hash_to_all_ones():
    assert signatures(np.zeros((3, 16)), PAPER.planes[:16, :]).tolist() == [2**32 - 1] * 3


def test_hamming():
    assert hamming(np.uint64(0b1011), np.uint64(0b0001)) == 2
    assert hamming(np.uint64(2**64 - 1), np.uint64(0)) == 64


@pytest.mark.parametrize(
    ("keys", "planes", "msg"),
    [
        (np.zeros(4), np.zeros((4, 2)), r"^keys must be a 2-D array, not shape \(4,\)$"),
        (np.zeros((2, 4)), np.zeros((3, 2)), r"^keys and planes must agree on d: .*$"),
        (np.zeros((2, 4)), np.zeros((4, 65)), r"^planes must have 1\.\.64 columns .*, not 65$"),
        (np.full((1, 2), np.nan), np.zeros((2, 2)), r"^keys must be finite .*$"),
    ],
)
def test_signatures_bad_input(keys, planes, msg):
    with pytest.raises(ValueError, match=msg):
        signatures(keys, planes)


# --------------------------------------------------------------------------- clustering


def _check_against_ref(sigs, threshold, max_clusters):
    r = cluster_online(sigs, threshold=threshold, max_clusters=max_clusters)
    table, counts, assign, dist, event, forced = ref_cluster(sigs, threshold, max_clusters)
    assert r.signatures.tolist() == table
    assert r.counts.tolist() == counts
    assert r.assign.tolist() == assign
    assert r.distance.tolist() == dist
    assert r.event.tolist() == [int(e) for e in event]
    assert r.forced == forced
    return r


def test_join_create_and_tie_to_oldest():
    # 0b0000 founds 0; 0b1111 founds 1 (distance 4 > T=1); 0b0011 is 2 from both: tie -> 0
    # but 2 > T so it founds 2; 0b0001 is 1 from 0 and from 2: ties go to the oldest (0).
    r = cluster_online(np.array([0b0000, 0b1111, 0b0011, 0b0001]), threshold=1, max_clusters=8)
    assert r.assign.tolist() == [0, 1, 2, 0]
    assert r.event.tolist() == [1, 1, 1, 0]
    assert r.distance.tolist() == [0, 0, 0, 1]
    assert r.counts.tolist() == [2, 1, 1]


def test_signature_stays_the_founders():
    r = cluster_online(np.array([0b000, 0b001, 0b011, 0b111]), threshold=1, max_clusters=8)
    # 0b011 is 2 from the founder 0b000 although it is 1 from the member 0b001
    assert r.assign.tolist() == [0, 0, 1, 1]


def test_full_table_forces_joins_to_nearest():
    sigs = np.array([0b0000_0000, 0b1111_0000, 0b0000_1111, 0b1110_0000, 0b1111_1111])
    r = _check_against_ref(sigs, 0, 2)
    assert r.forced == 3
    assert r.event.tolist() == [1, 1, 2, 2, 2]
    # 0b0000_1111 is 4 from both clusters: the oldest wins
    assert r.assign.tolist() == [0, 1, 0, 1, 1]  # 0b1111_1111 is 8 from 0, 4 from 1
    assert r.distance.tolist() == [0, 0, 4, 1, 4]


def test_one_cluster_table_and_count_saturation():
    r = cluster_online(np.arange(10, dtype=np.uint64), threshold=0, max_clusters=1, count_max=7)
    assert r.counts.tolist() == [7]
    assert r.forced == 9


def test_threshold_at_hash_bits_joins_everything():
    sigs = np.random.default_rng(0).integers(0, 2**16, 100).astype(np.uint64)
    r = cluster_online(sigs, threshold=16, max_clusters=4)
    assert r.signatures.size == 1 and r.counts.tolist() == [100]


def test_chunked_table_matches_reference_across_chunks():
    # more tokens than one vectorised chunk, clusters founded in every chunk
    sigs = np.random.default_rng(1).integers(0, 2**12, 1500).astype(np.uint64)
    _check_against_ref(sigs, 3, 64)


def test_incremental_table_equals_one_shot():
    sigs = np.random.default_rng(2).integers(0, 2**10, 300).astype(np.uint64)
    whole = cluster_online(sigs, threshold=2, max_clusters=40)
    t = ClusterTable(threshold=2, max_clusters=40)
    parts = [t.add(sigs[i : i + 37]) for i in range(0, 300, 37)]
    assert np.concatenate([p.assign for p in parts]).tolist() == whole.assign.tolist()
    assert t.counts.tolist() == whole.counts.tolist() and t.forced == whole.forced
    t.clear()
    assert t.size == 0 and t.add(sigs[:1]).assign.tolist() == [0]


@settings(max_examples=60, deadline=None)
@given(
    sigs=st.lists(st.integers(0, 2**8 - 1), min_size=0, max_size=120),
    threshold=st.integers(0, 8),
    max_clusters=st.integers(1, 12),
)
def test_cluster_online_property(sigs, threshold, max_clusters):
    sigs = np.array(sigs, np.uint64)
    r = _check_against_ref(sigs, threshold, max_clusters)
    # every token assigned exactly once, counts sum to tokens, table never over-full
    assert r.assign.size == sigs.size
    assert int(r.counts.sum()) == sigs.size
    assert np.bincount(r.assign, minlength=r.counts.size).tolist() == r.counts.tolist()
    assert r.signatures.size <= max_clusters
    joined = r.event == ClusterEvent.JOINED
    assert (r.distance[joined] <= threshold).all()
    assert (r.distance[r.event == ClusterEvent.FORCED] > threshold).all()


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"threshold": -1, "max_clusters": 4}, r"^threshold must be a non-negative integer, "),
        ({"threshold": 1, "max_clusters": 0}, r"^max_clusters must be a positive integer, not 0$"),
        ({"threshold": 1.5, "max_clusters": 4}, r"^threshold must be a non-negative integer, "),
    ],
)
def test_cluster_online_bad_args(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        cluster_online(np.zeros(3, np.uint64), **kwargs)


def test_cluster_online_bad_sigs():
    with pytest.raises(ValueError, match=r"^sigs must be a 1-D array, not shape \(2, 2\)$"):
        cluster_online(np.zeros((2, 2), np.uint64), threshold=1, max_clusters=2)
    with pytest.raises(ValueError, match=r"^sigs must be non-negative$"):
        cluster_online(np.array([-1]), threshold=1, max_clusters=2)
    with pytest.raises(ValueError, match=r"^sigs must be unsigned integers, not dtype float64$"):
        cluster_online(np.array([0.5]), threshold=1, max_clusters=2)


def test_representative_keys_are_member_means():
    keysum = np.array([[2.0, 4.0], [3.0, 3.0]])
    assert representative_keys(keysum, np.array([2, 3])).tolist() == [[1, 2], [1, 1]]
    with pytest.raises(ValueError, match=r"^keysum must be \(C, d\) and counts \(C,\)"):
        representative_keys(keysum, np.array([1]))


# --------------------------------------------------------------------------- WiCSum exact


def test_wicsum_exact_prefix_of_score_order():
    s = np.array([0.0, 2.0, 1.0, 2.0])
    c = np.array([1, 1, 1, 1])
    # ties: cluster 1 before cluster 3
    assert wicsum_select(s, c, coverage=1.0).tolist() == [1, 3, 2, 0]
    w = np.exp(s - 2)
    share = (w[1] + w[3]) / w.sum()
    assert wicsum_select(s, c, coverage=share - 1e-9).tolist() == [1, 3]
    assert wicsum_select(s, c, coverage=share + 1e-9).tolist() == [1, 3, 2]


def test_wicsum_exact_counts_weigh():
    # a big low-scoring cluster outweighs a small high-scoring one
    s = np.array([1.0, 0.0])
    assert wicsum_select(s, np.array([1, 100]), coverage=0.5).tolist() == [0, 1]
    assert wicsum_select(s, np.array([100, 1]), coverage=0.5).tolist() == [0]


@settings(max_examples=80, deadline=None)
@given(
    scores=st.lists(st.floats(-20, 20), min_size=1, max_size=40),
    seed=st.integers(0, 2**16),
    coverage=st.floats(0.01, 1.0),
)
def test_wicsum_exact_property(scores, seed, coverage):
    s = np.array(scores)
    c = np.random.default_rng(seed).integers(1, 50, s.size)
    sel = wicsum_select(s, c, coverage=coverage)
    order = np.argsort(-s, kind="stable")
    assert sel.tolist() == order[: sel.size].tolist()  # a prefix of the score order
    w = c * np.exp(s - s.max())
    cum = np.cumsum(w[order])
    assert cum[sel.size - 1] >= coverage * cum[-1] * (1 - 1e-12)
    if sel.size > 1:  # shortest such prefix
        assert cum[sel.size - 2] < coverage * cum[-1]


@pytest.mark.parametrize(
    ("scores", "counts", "coverage", "msg"),
    [
        ([], [], 0.5, r"^scores must be a non-empty 1-D array, not shape \(0,\)$"),
        ([1.0], [1, 2], 0.5, r"^counts must have the shape of scores \(1,\), not \(2,\)$"),
        ([1.0], [1], 0.0, r"^coverage must be in \(0, 1\], not 0\.0$"),
        ([1.0], [1], 1.5, r"^coverage must be in \(0, 1\], not 1\.5$"),
        ([1.0], [-1], 0.5, r"^counts must be non-negative$"),
        ([np.nan], [1], 0.5, r"^scores must be finite numbers$"),
    ],
)
def test_wicsum_exact_bad_input(scores, counts, coverage, msg):
    with pytest.raises(ValueError, match=msg):
        wicsum_select(np.array(scores), np.array(counts), coverage=coverage)


# --------------------------------------------------------------------------- WiCSum bucketed


def test_quantize_scores_rounds_half_even_and_saturates():
    cfg = TINY  # 4 fractional bits, 12-bit signed scores
    lsb = 1 / (math.log2(math.e) * 16)  # one LSB in natural-log units
    # keep only the exact ties of float64 arithmetic, so the test checks the rounding rule
    ties = [
        k + 0.5 for k in range(-20, 20) if (k + 0.5) * lsb * (math.log2(math.e) * 16) == k + 0.5
    ]
    assert len(ties) > 10
    q = quantize_scores(np.array([t * lsb for t in ties]), cfg)
    assert q.tolist() == [round(t) for t in ties]  # Python's round() is half-to-even
    assert quantize_scores(np.array([1e9, -1e9, 0.3 * lsb]), cfg).tolist() == [
        cfg.score_max,
        cfg.score_min,
        0,
    ]


def test_bucket_lut_values():
    lut = bucket_lut(PAPER)  # bucket width 64/256 = 0.25 log2 units
    assert lut[0] == 1 << 16
    assert lut[4] == 1 << 15
    assert lut[1] == round(2**-0.25 * 2**16)
    assert lut.size == 64


def test_bucketed_example_by_hand():
    cfg = TINY.replace(coverage=0.5)  # buckets 16 LSB = 1 log2 unit wide, 16 buckets
    scores = np.array([100, 90, 84, 70, 100 - 16 * 16])  # last one is out of range
    counts = np.array([1, 2, 1, 4, 50])
    r = wicsum_select_bucketed(scores, counts, cfg)
    assert r.bucket.tolist() == [0, 0, 1, 1, 16]
    lut = bucket_lut(cfg)
    assert r.bucket_mass[:2].tolist() == [3 * lut[0], 5 * lut[1]]
    assert r.total_mass == 3 * lut[0] + 5 * lut[1]
    # 3 * 4096 = 12288 of 22528: coverage 0.5 -> theta 11264 reached in bucket 0
    assert r.threshold == 11264 and r.b_star == 0 and r.buckets_scanned == 1
    assert r.selected.tolist() == [0, 1] and r.clusters_emitted == 2


def test_bucketed_coverage_one_takes_every_in_range_cluster():
    cfg = TINY.replace(coverage=1.0)
    scores = np.array([0, -40, -400, 30])
    r = wicsum_select_bucketed(scores, np.array([1, 1, 1, 1]), cfg)
    assert r.selected.tolist() == [3, 0, 1]  # 2 is out of range, emitted in bucket order


def test_grid_buckets_by_hand():
    # 16-LSB buckets on the score grid: 100 and 96 share grid cell 6 with the maximum,
    # 95 is one cell down although it is only 5 LSB below it (relative: bucket 0).
    cfg = TINY.replace(bucket_mode="grid")
    scores = np.array([100, 96, 95, 80, -17, 100 - 16 * 16])
    r = wicsum_select_bucketed(scores, np.ones(6, np.int64), cfg)
    assert r.bucket.tolist() == [0, 0, 1, 1, 8, 16]
    rel = wicsum_select_bucketed(scores, np.ones(6, np.int64), TINY)
    assert rel.bucket.tolist() == [0, 0, 0, 1, 7, 16]
    with pytest.raises(ValueError, match=r"^bucket_mode must be one of"):
        TINY.replace(bucket_mode="log")


def test_bucketed_all_in_one_bucket_emits_in_id_order():
    r = wicsum_select_bucketed(np.array([5, 7, 6, 5]), np.array([3, 1, 2, 9]), TINY)
    assert r.selected.tolist() == [0, 1, 2, 3] and r.b_star == 0


@settings(max_examples=150, deadline=None)
@given(
    scores=st.lists(st.integers(-2048, 2047), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
    coverage_q=st.integers(1, 4096),
    mode=st.sampled_from(["relative", "grid"]),
)
def test_bucketed_matches_reference(scores, seed, coverage_q, mode):
    cfg = TINY.replace(bucket_mode=mode)
    counts = np.random.default_rng(seed).integers(0, 256, len(scores))
    counts[np.argmax(scores)] = max(1, counts[np.argmax(scores)])
    r = wicsum_select_bucketed(np.array(scores), counts, cfg, coverage_q=coverage_q)
    sel, b_star, total, theta = ref_bucketed(scores, counts, cfg, coverage_q)
    assert r.selected.tolist() == sel
    assert (r.b_star, r.total_mass, r.threshold) == (b_star, total, theta)
    # whole buckets in score order: every selected score >= every in-range unselected score
    # of a later bucket
    if r.selected.size < len(scores):
        unsel = np.setdiff1d(np.arange(len(scores)), r.selected)
        assert r.bucket[unsel].min() > r.b_star


def test_bucketed_converges_to_exact_as_buckets_shrink():
    rng = np.random.default_rng(3)
    extra = []
    for shift in (8, 4, 0):  # bucket width 2**shift LSB of 2**-12 log2 units; range 16 log2
        cfg = PAPER.replace(
            score_frac_bits=12, score_bits=24, bucket_shift=shift, n_buckets=1 << (16 - shift)
        )
        diffs = []
        for _ in range(20):
            s = rng.standard_normal(200) * 2
            c = rng.integers(1, 40, 200)
            exact = wicsum_select(s, c, coverage=0.9)
            b = wicsum_select_bucketed(quantize_scores(s, cfg), c, cfg).selected
            diffs.append(abs(b.size - exact.size))
        extra.append(max(diffs))
    assert extra[0] > extra[2]  # coarse buckets take whole buckets: more extra clusters
    assert extra[2] <= 1  # 2**-12-wide buckets: the exact set up to one boundary cluster


def test_bucketed_paper_defaults_cover_the_true_mass():
    rng = np.random.default_rng(4)
    for n in (50, 500, 4000):
        s = rng.standard_normal(n) * 3
        c = rng.integers(1, 64, n)
        r = wicsum_select_bucketed(quantize_scores(s, PAPER), c, PAPER)
        w = c * np.exp(s - s.max())
        assert w[r.selected].sum() / w.sum() >= PAPER.coverage - 0.002
        assert r.buckets_scanned < PAPER.n_buckets


@pytest.mark.parametrize(
    ("scores", "counts", "kw", "msg"),
    [
        ([1.5], [1], {}, r"^scores_q must be integers \(fixed point\), not dtype float64$"),
        ([4096], [1], {}, r"^scores_q must fit in score_bits=12 signed bits \(-2048\.\.2047\)"),
        ([1], [256], {}, r"^counts must fit in count_bits=8, found 256$"),
        ([1], [1], {"coverage_q": 0}, r"^coverage_q must be an integer in 1\.\.4096, not 0$"),
        ([1], [1], {"coverage_q": 4097}, r"^coverage_q must be an integer in 1\.\.4096, not 4097$"),
    ],
)
def test_bucketed_bad_input(scores, counts, kw, msg):
    with pytest.raises(ValueError, match=msg):
        wicsum_select_bucketed(np.array(scores), np.array(counts), TINY, **kw)


# --------------------------------------------------------------------------- attention


def test_attention_matches_direct_softmax():
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal(8), rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    out, p = attention(q, k, v, return_weights=True)
    z = np.exp(k @ q / math.sqrt(8))
    assert np.allclose(p, z / z.sum())
    assert np.allclose(out, (z / z.sum()) @ v)


def test_attention_bad_input():
    with pytest.raises(ValueError, match=r"^keys must hold at least one token$"):
        attention(np.zeros(4), np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"^q must end in d=4, not shape \(3,\)$"):
        attention(np.zeros(3), np.zeros((2, 4)), np.zeros((2, 4)))


def test_free_mass_counts_towards_the_coverage():
    """Scope 'attended': the free tokens' mass is credited first; exact and bucketed agree."""
    s = np.array([1.0, 0.5, -1.0, -2.0])
    c = np.array([2, 1, 3, 1])
    plain = wicsum_select(s, c, coverage=0.9)
    assert wicsum_select(s, c, coverage=0.9, free_scores=np.array([])).tolist() == plain.tolist()
    # A free token far above every cluster holds nearly all the mass: nothing is needed.
    assert wicsum_select(s, c, coverage=0.9, free_scores=np.array([8.0])).size == 0
    # A free token above the clusters shortens the prefix (m is then the free score, 3).
    some = wicsum_select(s, c, coverage=0.9, free_scores=np.array([3.0]))
    w = c * np.exp(s - 3.0)
    total = 1.0 + w.sum()
    k = some.size
    assert 1.0 + w[:k].sum() >= 0.9 * total > 1.0 + w[: k - 1].sum()
    assert 0 < k < plain.size
    q = quantize_scores(s, PAPER)
    none = wicsum_select_bucketed(q, c, PAPER, free_q=quantize_scores(np.array([8.0]), PAPER))
    assert none.b_star == -1 and none.selected.size == 0 and none.buckets_scanned == 0
    same = wicsum_select_bucketed(q, c, PAPER, free_q=np.zeros(0, np.int64))
    assert same.selected.tolist() == wicsum_select_bucketed(q, c, PAPER).selected.tolist()


def test_page_fallback_groups_unmatched_tokens_by_page():
    t = ClusterTable(threshold=0, max_clusters=8, page_tokens=4)
    sigs = np.array([1, 2, 4, 1, 8, 16, 2, 32], np.uint64)  # distinct but for repeats
    r = t.add(sigs, np.arange(8))
    # Token 0 founds page 0's cluster; 1, 2 join it (PAGED); 3 equals token 0 (JOINED);
    # token 4 founds page 1's cluster and 5-7 join it (PAGED: token 6's twin founded nothing).
    assert r.assign.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert r.event.tolist() == [1, 3, 3, 0, 1, 3, 3, 3]
    assert r.counts.tolist() == [4, 4]
    # A later token close to a founder joins it across pages.
    assert t.add(np.array([8], np.uint64), np.array([9])).assign.tolist() == [1]
    with pytest.raises(ValueError, match=r"^positions must increase across add calls$"):
        t.add(np.array([1], np.uint64), np.array([9]))
    with pytest.raises(ValueError, match=r"^positions must be given with page_tokens"):
        t.add(np.array([1], np.uint64))
    with pytest.raises(ValueError, match=r"^page_tokens must be a positive integer or None"):
        ClusterTable(threshold=0, max_clusters=8, page_tokens=0)


@settings(max_examples=80, deadline=None)
@given(
    scores=st.lists(st.integers(-2048, 2047), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
    lanes=st.sampled_from([2, 4, 16]),
)
def test_bucketed_lanes_emit_in_id_order(scores, seed, lanes):
    """More lanes: the same selection in ascending id; ``emit_cycles`` counts the rows of
    ``lanes`` ids from the first selected one to the last, one cycle each, and
    ``emit_beats`` packs each row's selected ids in one beat."""
    cfg = TINY.replace(bucket_mode="grid")
    counts = np.random.default_rng(seed).integers(0, 256, len(scores))
    one = wicsum_select_bucketed(np.array(scores), counts, cfg)
    r = wicsum_select_bucketed(np.array(scores), counts, cfg, lanes=lanes)
    assert r.selected.tolist() == sorted(one.selected.tolist())
    assert (r.b_star, r.total_mass, r.threshold) == (one.b_star, one.total_mass, one.threshold)
    assert one.emit_cycles == one.clusters_emitted
    rows = range(r.selected[0] // lanes, r.selected[-1] // lanes + 1)
    assert r.emit_cycles == len(rows)
    beats = emit_beats(r.selected, lanes)
    assert [b // lanes for b, _ in beats] == sorted({c // lanes for c in r.selected})
    unpacked = [b + j for b, mask in beats for j in range(lanes) if mask >> j & 1]
    assert unpacked == r.selected.tolist()
    assert all(0 < mask < 1 << lanes for _, mask in beats)


def test_bucketed_lanes_by_hand():
    cfg = TINY.replace(bucket_mode="grid")
    # Ascending scores: bucket order is descending id with one lane, ascending with four.
    scores = np.arange(10) * 20
    one = wicsum_select_bucketed(scores, np.ones(10, np.int64), cfg, coverage_q=4000)
    four = wicsum_select_bucketed(scores, np.ones(10, np.int64), cfg, coverage_q=4000, lanes=4)
    assert one.selected.tolist()[:3] == [9, 8, 7]
    assert four.selected.tolist() == sorted(one.selected.tolist())
    assert emit_beats(four.selected, 4) == [
        (b, sum(1 << (c - b) for c in four.selected if b <= c < b + 4))
        for b in sorted({c - c % 4 for c in four.selected.tolist()})
    ]
    assert emit_beats(np.array([1, 2, 9]), 4) == [(0, 0b0110), (8, 0b0010)]
    with pytest.raises(ValueError, match=r"^selected must be ascending and unique$"):
        emit_beats(np.array([3, 3]), 4)
    with pytest.raises(ValueError, match=r"^lanes must be an integer in 1\.\.256, not 0$"):
        wicsum_select_bucketed(scores, np.ones(10, np.int64), cfg, lanes=0)
