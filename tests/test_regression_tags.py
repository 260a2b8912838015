"""A regression model's tags, pure logic (tags/prioritize.py prioritize_regression, the tag
diagnosis by search/regression.py's rules, the insight line) on hand-made numbers: the gain
in the label's units, the ranking, manual weights, and the next step per tag."""

import functools

import numpy as np
import pytest

from blindspot.error_analysis.report.regression_view import tags_sentence
from blindspot.error_analysis.search import diagnosis, regression
from blindspot.error_analysis.tags.prioritize import prioritize_regression


def _values(residuals):
    residuals = np.asarray(residuals, np.float64)
    return regression.row_values(residuals, np.zeros(len(residuals)), np.zeros(len(residuals)))


# 100 rows: 10 over-predicted by 3 ('late'), 30 off by 1 either way ('noisy'), 60 off by 0.5.
RESIDUALS = np.array([3.0] * 10 + [1.0, -1.0] * 15 + [0.5, -0.5] * 30)
VALUES = _values(RESIDUALS)
TOTAL = VALUES.sum(axis=0)


def _rule(rows):
    return {'source': 'rule', 'rows': len(rows), 'sums': VALUES[rows].sum(axis=0)}


def test_tags_are_ranked_by_share_times_excess_mae_over_the_rest():
    late, noisy, calm = np.arange(10), np.arange(10, 40), np.arange(40, 100)
    ranked = prioritize_regression(
        {'calm': _rule(calm), 'noisy': _rule(noisy), 'late': _rule(late)}, TOTAL, 'absolute'
    )
    assert [r['tag'] for r in ranked] == ['late', 'noisy', 'calm']
    first = ranked[0]
    # late: MAE 3 vs the rest's (30 x 1 + 60 x 0.5) / 90 = 2/3, on 10% of the rows.
    assert first['share'] == pytest.approx(0.1)
    assert first['mean_error'] == pytest.approx(3.0)
    assert first['rest_mean_error'] == pytest.approx(2 / 3)
    assert first['potential_gain'] == pytest.approx(0.1 * (3 - 2 / 3))
    assert first['mean_residual'] == pytest.approx(3.0)
    assert (first['rows'], first['examples'], first['error']) == (10, 10.0, 'absolute')
    # noisy: MAE 1 vs (30 + 30) / 70 on 30%.
    assert ranked[1]['potential_gain'] == pytest.approx(0.3 * (1 - 60 / 70))
    # calm errs less than the rest: nothing to gain, not a negative gain.
    assert ranked[2]['potential_gain'] == 0.0 and ranked[2]['excess'] == 0.0
    # The interval is the findings' (regression.mean_interval over the tag's errors).
    errors = np.abs(RESIDUALS[noisy])
    mean, low, high = regression.mean_interval(errors.sum(), (errors**2).sum(), len(errors))
    assert ranked[1]['mean_error_ci'] == [low, high] and ranked[1]['mean_error'] == mean


def test_squared_errors_rank_in_squared_units():
    ranked = prioritize_regression({'late': _rule(np.arange(10))}, TOTAL, 'squared')
    rest = (30 * 1 + 60 * 0.25) / 90
    assert ranked[0]['mean_error'] == pytest.approx(9.0)
    assert ranked[0]['potential_gain'] == pytest.approx(0.1 * (9 - rest))
    assert ranked[0]['mae'] == pytest.approx(3.0)


def test_manual_weights_scale_the_share_not_the_intervals_width():
    """5 reviewed rows of 'late', each standing for 2 examples: the tag stands for 10 examples
    with the same mean error as the 5 rows; its interval is as wide as 5 rows allow."""
    reviewed = np.array([0, 1, 2, 40, 41])  # 3 late rows (|3|) and 2 calm ones (|0.5|)
    weights = np.full(5, 2.0)
    weighted = (VALUES[reviewed] * weights[:, None]).sum(axis=0)
    (row,) = prioritize_regression(
        {'reviewed': {'source': 'manual', 'rows': 5, 'sums': weighted}}, TOTAL, 'absolute'
    )
    errors = np.abs(RESIDUALS[reviewed])
    assert (row['rows'], row['examples'], row['share']) == (5, 10.0, pytest.approx(0.1))
    assert row['mean_error'] == pytest.approx(errors.mean())
    _, low, high = regression.mean_interval(errors.sum(), (errors**2).sum(), 5)
    assert row['mean_error_ci'] == pytest.approx([low, high])
    rest = (np.abs(RESIDUALS).sum() - 2 * errors.sum()) / 90
    assert row['rest_mean_error'] == pytest.approx(rest)
    assert row['potential_gain'] == pytest.approx(0.1 * (errors.mean() - rest))
    # Unequal weights: the mean is the weighted one.
    weights = np.array([1.0, 1.0, 1.0, 7.0, 7.0])
    weighted = (VALUES[reviewed] * weights[:, None]).sum(axis=0)
    (row,) = prioritize_regression(
        {'reviewed': {'source': 'manual', 'rows': 5, 'sums': weighted}}, TOTAL, 'absolute'
    )
    assert row['examples'] == 17.0
    assert row['mean_error'] == pytest.approx((3 * 3 + 14 * 0.5) / 17)


def test_a_tag_on_every_row_has_no_rest_and_no_gain():
    (row,) = prioritize_regression({'all': _rule(np.arange(100))}, TOTAL, 'absolute')
    assert row['share'] == 1.0 and row['rest_mean_error'] is None
    assert row['potential_gain'] == 0.0
    # A tag on no analysed row is left out (nothing to measure).
    empty = {'source': 'manual', 'rows': 0, 'sums': np.zeros(regression.COLUMNS)}
    assert prioritize_regression({'none': empty}, TOTAL, 'absolute') == []


def _diagnose(sums, total, rule_tags):
    return diagnosis.diagnose_tags(
        sums,
        total,
        rule_tags,
        rules=functools.partial(regression.diagnose, kind='absolute'),
        train_rows=regression.TRAIN_ROWS,
    )


def test_each_tag_gets_the_findings_next_step_with_its_numbers():
    """Bias (with its sign and amount) and spread as for a finding; a rule tag rare in
    training is under-represented first; a manual tag's coverage is unknown."""
    total = TOTAL.copy()
    total[regression.TRAIN_ROWS] = 1000
    late = VALUES[:10].sum(axis=0)
    late[regression.TRAIN_ROWS] = 500  # half the training rows: well covered
    noisy = VALUES[10:40].sum(axis=0)
    noisy[regression.TRAIN_ROWS] = 300
    rare = VALUES[:10].sum(axis=0)
    rare[regression.TRAIN_ROWS] = 10  # 1% of training rows, 10% here
    found = _diagnose(
        {'late': late, 'noisy': noisy, 'rare': rare, 'reviewed': late},
        total,
        {'late', 'noisy', 'rare'},
    )
    assert found['late']['rule'] == 'bias' and found['late']['failure'] == 'over-predicts'
    assert 'over-predicts here by 3 on average (mean residual +3' in found['late']['next_step']
    assert found['noisy']['rule'] == 'spread'
    assert (
        'mean residual +0' in found['noisy']['next_step'] and 'MAE 1' in found['noisy']['next_step']
    )
    assert found['rare']['rule'] == 'under_represented'
    assert '(1% of train rows, 10, vs 10% here)' in found['rare']['next_step']
    assert found['reviewed']['coverage'] is None and found['reviewed']['rule'] == 'bias'
    for d in found.values():
        assert regression.qualifier_violations(d) == []


def test_the_insight_names_the_top_tag_its_gain_and_bias():
    rows = prioritize_regression(
        {'late': _rule(np.arange(10)), 'noisy': _rule(np.arange(10, 40))}, TOTAL, 'absolute'
    )
    rows[0]['diagnosis'] = {'failure': 'over-predicts'}
    line = tags_sentence(rows, 'MAE', "in y's units")
    assert line == (
        "Of the tags, fixing 'late' could cut the overall MAE by at most 0.233 in y's units "
        '(MAE 3 vs 0.667 on the rest, 10% of examples; the model over-predicts there by 3); '
        "'noisy' 0.0429."
    )
    assert tags_sentence([], 'MAE', '') is None
    calm = prioritize_regression({'calm': _rule(np.arange(40, 100))}, TOTAL, 'absolute')
    assert tags_sentence(calm, 'MAE', "in y's units") == (
        'No tag has a larger MAE than the rest of the examples: nothing to gain by fixing one '
        "('calm' 0.5 vs 1.5)."
    )
