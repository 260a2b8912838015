"""The pure logic that turns candidates into findings: numeric ranges from fine bins
(ranges.py) and overlap-aware, impact-ranked selection (selection.py), on small hand-made data
whose answers are known."""

import numpy as np
import pytest

from blindspot.error_analysis.search import binning, ranges, selection
from blindspot.error_analysis.search.lattice import HOLDOUT_SIZE, SEARCH_SIZE

SIGNIFICANCE = 0.05


def test_best_range_grows_over_failing_bins_and_stops_at_clean_ones():
    # 16 bins of 1,000 rows; bins 9-11 fail at 30%, the rest at 5%.
    histogram = np.array([[1000, 300 if 9 <= b <= 11 else 50] for b in range(16)])
    for found in (9, 10, 11):
        assert ranges.best_range(histogram, found, min_size=10) == (9, 11)


def test_best_range_never_spans_the_whole_feature_and_respects_min_size():
    histogram = np.array([[100, 90]] * 4)  # every bin fails alike
    low, high = ranges.best_range(histogram, 1, min_size=10)
    assert (low, high) != (0, 3) and low <= 1 <= high
    assert ranges.best_range(np.array([[5, 5], [5, 0]]), 0, min_size=50) == (0, 0)


def test_range_labels_read_like_the_data():
    encoder = binning.numeric_encoder('z', [0.0, 0.25, 0.5, 0.75, 1.0], num_bins=4)
    assert encoder.num_ordered_bins == 4
    assert encoder.range_label(1, 2) == '0.25 <= z < 0.75'
    assert encoder.range_label(0, 1) == 'z < 0.5'
    assert encoder.range_label(2, 3) == 'z >= 0.5'
    assert encoder.range_label(1, 1) == encoder.labels[1]
    few = binning.numeric_encoder('k', [0, 2], distinct_values=[0, 1, 2], num_bins=4)
    assert few.num_ordered_bins == 0  # distinct values, not bins: no ranges over them


def _rows(blocks):
    """blocks: (codes tuple, rows, error rate) -> codes, errors, holdout (alternating rows)."""
    rng = np.random.default_rng(0)
    codes, errors = [], []
    for block_codes, count, rate in blocks:
        codes += [block_codes] * count
        block = np.zeros(count, dtype=np.int8)
        block[rng.permutation(count)[: int(round(count * rate))]] = 1  # exactly count x rate
        errors += block.tolist()
    codes = np.array(codes, dtype=np.int64)
    holdout = np.arange(len(codes)) % 2 == 1
    return codes, np.array(errors, dtype=np.int8), holdout


def _conditions(*slices):
    """Each slice: {feature: (low, high)}; padded to 3 conditions."""
    out = np.full((len(slices), 3, 3), ranges.NO_FEATURE, dtype=np.int64)
    for i, conditions in enumerate(slices):
        for j, (feature, (low, high)) in enumerate(sorted(conditions.items())):
            out[i, j] = (feature, low, high)
    return out


def _select(blocks, *slices, max_findings=10):
    codes, errors, holdout = _rows(blocks)
    conditions = _conditions(*slices)
    table = selection.PatternTable.count(codes, errors, holdout, conditions)
    totals = np.array(
        [
            (~holdout).sum(),
            errors[~holdout].sum(),
            holdout.sum(),
            errors[holdout].sum(),
        ]
    )
    return selection.select(table, conditions, totals, SIGNIFICANCE, max_findings)


# Features: 0 = A (0/1), 1 = B (0/1), 2 = an unrelated feature W (0..3).
# The failure is A=1 AND B=1 (60%); everything else fails at 5%.
PLANTED = [
    ((a, b, w), 1000, 0.6 if (a, b) == (1, 1) else 0.05)
    for a in (0, 1)
    for b in (0, 1)
    for w in range(4)
]
REAL = {0: (1, 1), 1: (1, 1)}
MIXTURE = {0: (1, 1), 2: (0, 0)}  # A=1 AND W=0: worse only through A=1 AND B=1
DILUTED = {0: (1, 1)}  # A=1: the failure plus clean rows


def test_mixture_and_dilution_are_not_findings():
    chosen = _select(PLANTED, MIXTURE, DILUTED, REAL)
    held = [c.index for c in chosen if c.held]
    assert held == [2]


def test_refinement_is_shown_as_a_child_not_a_rival():
    # A=1 fails at 30% throughout, and A=1 AND B=1 at 60%: both real, one inside the other.
    blocks = [
        ((a, b, w), 1000, (0.6 if b else 0.3) if a else 0.05)
        for a in (0, 1)
        for b in (0, 1)
        for w in range(4)
    ]
    chosen = _select(blocks, REAL, DILUTED)
    assert [(c.index, c.parent, c.held) for c in chosen] == [(1, None, True), (0, 1, True)]


def test_variant_mostly_inside_a_finding_is_not_listed_again():
    # Same features, a slightly wider slice: A=1 AND B=1 AND W in 0..3 vs A=1 AND B=1 AND W<3.
    narrower = {0: (1, 1), 1: (1, 1), 2: (0, 2)}
    chosen = _select(PLANTED, REAL, narrower)
    assert [c.index for c in chosen if c.held] == [0]


def test_independent_failures_are_both_found_whatever_the_order():
    blocks = [
        ((a, b, w), 1000, 0.6 if (a, b) == (1, 1) else (0.4 if w == 3 else 0.05))
        for a in (0, 1)
        for b in (0, 1)
        for w in range(4)
    ]
    second = {2: (3, 3)}
    for slices, expected in (((REAL, second), {0, 1}), ((second, REAL), {0, 1})):
        assert {c.index for c in _select(blocks, *slices) if c.held} == expected


def test_no_finding_on_null_data_and_ranking_by_potential_gain():
    null = [((a, b, w), 1000, 0.05) for a in (0, 1) for b in (0, 1) for w in range(4)]
    assert not [c for c in _select(null, REAL, MIXTURE, DILUTED) if c.held]
    gains = selection.potential_gain([100, 1000], [60, 200], 10_000, 1_000)
    # (0.6 - 940/9900) x 1% and (0.2 - 800/9000) x 10%.
    np.testing.assert_allclose(gains, [(0.6 - 940 / 9900) * 0.01, (0.2 - 800 / 9000) * 0.1])


def test_pattern_tables_merge_like_one_count():
    codes, errors, holdout = _rows(PLANTED)
    conditions = _conditions(REAL, MIXTURE, DILUTED)
    whole = selection.PatternTable.count(codes, errors, holdout, conditions)
    halves = selection.PatternTable.merge(
        [
            selection.PatternTable.count(codes[s], errors[s], holdout[s], conditions)
            for s in (slice(0, 7000), slice(7000, None))
        ]
    )
    np.testing.assert_array_equal(whole.patterns, halves.patterns)
    np.testing.assert_array_equal(whole.counts, halves.counts)
    assert whole.counts[:, SEARCH_SIZE].sum() + whole.counts[:, HOLDOUT_SIZE].sum() == len(codes)


@pytest.mark.parametrize('count', [1, 64])
def test_membership_bits(count):
    codes = np.array([[0], [1], [2]])
    conditions = _conditions(*([{0: (1, 2)}] * count))
    patterns = selection.membership(codes, conditions)
    full = np.uint64((1 << count) - 1) if count < 64 else np.uint64(2**64 - 1)
    np.testing.assert_array_equal(patterns, np.array([0, full, full], dtype=np.uint64))


def test_a_stray_error_among_error_free_rows_is_not_a_finding():
    # A near-perfect model: one error in each half, both in A=0 AND B=0 AND W=3; none elsewhere.
    # The rest's rate (0) is an estimate, not the null rate: the hold-out half's one error
    # falls in these 125 of its 2,000 rows by chance with probability 1/16.
    blocks = [
        ((a, b, w), 250, 0.008 if (a, b, w) == (0, 0, 3) else 0.0)
        for a in (0, 1)
        for b in (0, 1)
        for w in range(4)
    ]
    codes, errors, holdout = _rows(blocks)
    assert errors[holdout].sum() == 1 and errors[~holdout].sum() == 1
    assert not [c for c in _select(blocks, {0: (0, 0), 1: (0, 0), 2: (3, 3)}) if c.held]
