"""Tests of golden.quickselect: exact WiCSum on fixed-point inputs and the weighted
quick-select that finds it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import SPEC_RULE, preset
from golden.quickselect import exact_weights, exp2_lut, quickselect, wicsum_select_exact_q
from golden.resv import quantize_scores, wicsum_select

TINY = preset("tiny").replace(**SPEC_RULE)
PAPER = preset("paper").replace(**SPEC_RULE)


def test_exp2_lut_and_weights_by_hand():
    lut = exp2_lut(TINY)  # 4 fractional bits, 12 LUT bits
    assert lut.size == 16 and lut[0] == 1 << 12 and lut[8] == round(2**-0.5 * 4096)
    # d = 0, 8 (half a log2 unit), 16 (one unit), 40 (2.5 units)
    w = exact_weights(np.array([40, 32, 24, 0]), np.array([3, 2, 5, 7]), TINY)
    assert w.tolist() == [3 * 4096, (2 * lut[8]) >> 0, 5 * 4096 >> 1, (7 * lut[8]) >> 2]


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(st.integers(-2048, 2047), min_size=1, max_size=16),
    seed=st.integers(0, 2**16),
    coverage_q=st.integers(1, 4096),
    lanes=st.sampled_from([1, 2, 4, 8]),
)
def test_quickselect_is_the_exact_selection(scores, seed, coverage_q, lanes):
    counts = np.random.default_rng(seed).integers(0, 256, len(scores))
    s = np.array(scores)
    q = quickselect(s, counts, TINY, lanes=lanes, id_bits=4, coverage_q=coverage_q)
    exact = wicsum_select_exact_q(s, counts, TINY, coverage_q=coverage_q)
    assert q.selected.tolist() == sorted(exact.tolist())
    # the prefix is the shortest: without its last cluster it falls short of theta
    w = exact_weights(s, counts, TINY)
    assert w[exact].sum() >= q.threshold
    assert exact.size == 1 or w[exact[:-1]].sum() < q.threshold
    assert q.total_mass == w.sum()
    assert 1 <= len(q.pass_reads) <= TINY.score_bits + 4 + 1
    assert q.pass_reads[0] == s.size


def test_exact_q_equals_float_wicsum_when_weights_are_exact():
    # Scores on whole log2 units (multiples of 2**score_frac_bits) within lut_frac_bits of
    # the maximum: every weight is count * 2**-j exactly, so only the order and the prefix
    # rule remain, and they must agree with the float golden.resv.wicsum_select.
    cfg = PAPER
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        s = rng.integers(-12, 4, n) << cfg.score_frac_bits
        c = rng.integers(0, 100, n)
        cq = int(rng.integers(1, (1 << cfg.coverage_frac_bits) + 1))
        fixed = wicsum_select_exact_q(s, c, cfg, coverage_q=cq)
        flt = wicsum_select(
            s * np.log(2) / (1 << cfg.score_frac_bits),
            c,
            coverage=cq / (1 << cfg.coverage_frac_bits),
        )
        if c.sum():  # with no mass the float rule selects the top cluster too
            assert fixed.tolist() == flt.tolist()


def test_exact_q_close_to_float_on_random_rows():
    rng = np.random.default_rng(6)
    same = 0
    for _ in range(100):
        raw = rng.normal(0, 2.5, 500)
        c = rng.integers(1, 40, 500)
        fixed = wicsum_select_exact_q(quantize_scores(raw, PAPER), c, PAPER)
        s = quantize_scores(raw, PAPER) * np.log(2) / (1 << PAPER.score_frac_bits)
        flt = wicsum_select(s, c, coverage=PAPER.coverage_q / (1 << PAPER.coverage_frac_bits))
        assert abs(fixed.size - flt.size) <= 1
        same += fixed.tolist() == flt.tolist()
    assert same >= 95


def test_quickselect_passes_shrink_on_a_big_row():
    rng = np.random.default_rng(7)
    s = quantize_scores(rng.normal(0, 2.5, 4096), PAPER)
    q = quickselect(s, rng.integers(1, 50, 4096), PAPER, lanes=16, id_bits=12)
    assert q.pass_reads[:2] == (4096, 4096)
    assert all(a >= b for a, b in zip(q.pass_reads[1:], q.pass_reads[2:], strict=False))
    assert sum(q.pass_reads) < 4 * 4096  # about 3 row reads in all, not log2(C) of them
    assert q.emit_rows == q.emit_row_cycles == q.selected[-1] // 16 - q.selected[0] // 16 + 1


def test_quickselect_errors():
    s, c = np.array([1, 2]), np.array([1, 1])
    with pytest.raises(ValueError, match=r"^lanes must be a positive integer, not 0$"):
        quickselect(s, c, TINY, lanes=0, id_bits=4)
    with pytest.raises(ValueError, match=r"^id_bits must hold 2 cluster ids, not 0$"):
        quickselect(s, c, TINY, lanes=1, id_bits=0)
    with pytest.raises(ValueError, match=r"^coverage_q must be an integer in 1\.\.4096, not 0$"):
        wicsum_select_exact_q(s, c, TINY, coverage_q=0)
    with pytest.raises(ValueError, match=r"^scores_q must be integers"):
        wicsum_select_exact_q(np.array([0.5]), np.array([1]), TINY)
    with pytest.raises(ValueError, match=r"^scores_q must hold at most max_clusters=16"):
        wicsum_select_exact_q(np.zeros(17, np.int64), np.ones(17, np.int64), TINY)
