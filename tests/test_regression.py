"""Regression error analysis, pure logic (search/regression.py): the median flag, the mean
error's interval, the potential gain, the bias/spread rules and the ranking of findings in the
label's units, on hand-made numbers."""

import math

import numpy as np
import pytest
from scipy import stats

from blindspot.error_analysis.search import binning, regression, selection


def test_the_flag_is_an_error_strictly_above_the_median():
    errors = regression.row_errors(np.array([-3.0, 0.0, 0.0, 1.0, 2.0]), 'absolute')
    assert errors.tolist() == [3.0, 0.0, 0.0, 1.0, 2.0]
    assert regression.above_median(errors, 1.0).tolist() == [True, False, False, False, True]
    # Exact predictions everywhere: nothing is above a median of 0.
    assert not regression.above_median(np.zeros(4), 0.0).any()
    assert regression.row_errors(np.array([-3.0, 2.0]), 'squared').tolist() == [9.0, 4.0]


def test_mean_interval_matches_the_t_free_normal_interval():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, low, high = regression.mean_interval(values.sum(), (values**2).sum(), len(values))
    half = 1.959963984540054 * values.std(ddof=1) / 2
    assert mean == 2.5 and low == pytest.approx(2.5 - half) and high == pytest.approx(2.5 + half)
    assert regression.mean_interval(5.0, 25.0, 1) == (5.0, None, None)
    assert regression.mean_interval(0.0, 0.0, 0) == (None, None, None)


def test_potential_gain_is_share_of_rows_times_excess_mean_error():
    # 10 of 100 rows with MAE 3, the other 90 with MAE 1: 0.1 x (3 - 1) = 0.2.
    assert regression.potential_gain(30.0, 10, 30.0 + 90.0, 100) == pytest.approx(0.2)
    # The slice already as good as the rest: no gain.
    assert regression.potential_gain(10.0, 10, 100.0, 100) == pytest.approx(0.0)


def _sums(residuals, above=None, train_rows=0):
    residuals = np.asarray(residuals, np.float64)
    above = np.zeros(len(residuals)) if above is None else above
    values = regression.row_values(residuals, above, np.zeros(len(residuals)))
    total = values.sum(axis=0)
    total[regression.TRAIN_ROWS] = train_rows
    return total


def test_a_systematic_offset_is_bias_with_its_sign_and_size():
    rng = np.random.default_rng(0)
    inside = _sums(3.0 + rng.normal(0, 0.5, 200))
    total = inside + _sums(rng.normal(0, 1.0, 2000))
    found = regression.diagnose(inside, total, 'absolute')
    assert found['failure'] == 'over-predicts' and found['rule'] == 'bias'
    assert found['inside']['mean_residual'] == pytest.approx(3.0, abs=0.1)
    assert 'over-predicts here by 3' in found['next_step']
    under = regression.diagnose(_sums(-(3.0 + rng.normal(0, 0.5, 200))), total, 'absolute')
    assert under['failure'] == 'under-predicts' and 'under-predicts here by 3' in under['next_step']
    assert regression.qualifier_violations(found) == []


def test_large_errors_both_ways_are_spread_not_bias():
    rng = np.random.default_rng(1)
    inside = _sums(rng.normal(0, 4.0, 300))
    total = inside + _sums(rng.normal(0, 1.0, 3000))
    found = regression.diagnose(inside, total, 'absolute')
    assert found['failure'] == 'spread' and found['rule'] == 'spread'
    assert 'large both ways' in found['next_step']
    # A small but certain offset beside a large MAE is still spread (below BIAS_SHARE).
    shifted = _sums(rng.normal(0.8, 4.0, 5000))
    assert regression.diagnose(shifted, total + shifted, 'absolute')['failure'] == 'spread'


def test_under_represented_in_training_comes_first():
    inside = _sums(3.0 + np.zeros(100), train_rows=5)
    total = inside + _sums(np.zeros(900), train_rows=1000)
    found = regression.diagnose(inside, total, 'absolute')
    assert found['rule'] == 'under_represented' and found['failure'] == 'over-predicts'
    assert 'collect more examples' in found['next_step']


def test_a_diagnosis_whose_words_contradict_its_numbers_is_caught():
    rng = np.random.default_rng(2)
    inside = _sums(3.0 + rng.normal(0, 0.5, 100))
    found = regression.diagnose(inside, inside + _sums(rng.normal(0, 1, 900)), 'absolute')
    found['next_step'] = found['next_step'].replace('over-predicts', 'under-predicts')
    assert regression.qualifier_violations(found)


def _ranked(kind='absolute'):
    """Two planted findings on a categorical and a second feature, ranked from a pattern
    table built by hand (what CountRegression sums)."""
    rng = np.random.default_rng(3)
    n = 20_000
    a = np.array(list('abcd'), dtype=object)[rng.integers(0, 4, n)]
    b = np.array(list('xyz'), dtype=object)[rng.integers(0, 3, n)]
    residual = rng.normal(0, 1, n)
    residual[a == 'a'] += 1.0  # 25% of rows, +1
    residual[(b == 'z') & (a != 'a')] *= 4  # spread elsewhere
    encoders = [
        binning.categorical_encoder('a', dict(zip(*np.unique(a, return_counts=True)))),
        binning.categorical_encoder('b', dict(zip(*np.unique(b, return_counts=True)))),
    ]
    codes = np.stack([e.encode(col) for e, col in zip(encoders, (a, b))], axis=1)
    conditions = np.array(
        [[[0, 0, 0]], [[1, 2, 2]]], dtype=np.int64
    )  # a = a; b = z (feature, low code, high code)
    errors = np.abs(residual) if kind == 'absolute' else residual**2
    above = errors > np.median(errors)
    values = regression.row_values(residual, above, np.zeros(n))
    patterns, sums = selection.sum_by_pattern(selection.membership(codes, conditions), values)
    texts = [f'a = {encoders[0].vocabulary[0]}', f'b = {encoders[1].vocabulary[2]}']
    result = {
        'slices': [
            {'slice': text, 'held': True, 'parent': None, 'size': 0, 'rank': i + 1}
            for i, text in enumerate(texts)
        ]
    }
    for s, column in zip(result['slices'], range(2)):
        s['size'] = int(sums[selection.pattern_bits(patterns, 2)[:, column], 0].sum())
    ranked = regression.rank_slices(result, patterns, sums, conditions, encoders, kind)
    return ranked, residual, errors, (a, b)


def test_findings_are_ranked_by_added_gain_in_the_labels_units():
    ranked, residual, errors, (a, b) = _ranked()
    by_text = {s['slice']: s for s in ranked['slices']}
    first = ranked['slices'][0]
    assert [s['rank'] for s in ranked['slices']] == [1, 2]
    gains = [s['added_potential_gain'] for s in ranked['slices']]
    assert gains == sorted(gains, reverse=True)
    assert sum(gains) == pytest.approx(ranked['regression']['union_gain'])
    # Each slice's own numbers, checked against the rows directly.
    for text, mask in (('a = a', a == 'a'), ('b = z', b == 'z')):
        numbers = by_text[text]['regression']
        assert numbers['rows'] == mask.sum()
        assert numbers['mean_error'] == pytest.approx(errors[mask].mean())
        assert numbers['mean_residual'] == pytest.approx(residual[mask].mean())
        own = (errors[mask].mean() - errors[~mask].mean()) * mask.mean()
        assert by_text[text]['potential_gain'] == pytest.approx(own)
    assert first['added_size'] == by_text[first['slice']]['size']


def test_squared_errors_rank_in_squared_units():
    ranked, residual, errors, (a, b) = _ranked('squared')
    z = b == 'z'
    numbers = {s['slice']: s for s in ranked['slices']}['b = z']['regression']
    assert numbers['error'] == 'squared'
    assert numbers['mean_error'] == pytest.approx((residual[z] ** 2).mean())
    assert numbers['mae'] == pytest.approx(np.abs(residual[z]).mean())
    assert math.isclose(numbers['rmse'], math.sqrt((residual[z] ** 2).mean()))


def _regression_report(mae: float) -> dict:
    region = {'feature': 'region', 'label': 'region = a', 'low': None, 'high': None,
              'is_range': False}  # fmt: skip
    return {
        'created': str(mae),
        'regression': {'error': 'absolute'},
        'overall': {
            'examples': 100,
            'errors': 50,
            'error_rate': 0.5,
            'accuracy': None,
            'mae': mae,
        },  # fmt: skip
        'slices': {
            'slices': [{'slice': 'region = a', 'predicates': [region], 'held': True}],
            'config': {'significance': 0.05},
        },
    }


def test_a_regressions_comparison_is_on_mae_with_the_paired_sign_test(capsys):
    from blindspot.error_analysis.report import compare
    from blindspot.review.cli import print_comparison

    before, after = _regression_report(1.0), _regression_report(1.5)
    predicates = after['slices']['slices'][0]['predicates']
    measured = {
        'rows': {'current': 100, 'baseline': 100, 'matched': 100},
        'slices': [
            {
                'slice': 'region = a',
                'predicates': predicates,
                'problem': None,
                'baseline_problem': None,
                'current': {'rows': 20, 'errors': 60.0, 'squares': 200.0},
                'baseline': {'rows': 20, 'errors': 20.0, 'squares': 25.0},
                # 18 examples with a larger absolute error now, 2 smaller: sign test.
                'paired': {
                    'rows': 20,
                    'errors_now': 60.0,
                    'errors_before': 20.0,
                    'worse': 18,
                    'better': 2,
                },  # fmt: skip
            }
        ],
    }
    c = compare.compare_reports(before, after, measured=measured)
    assert c['metric'] == 'MAE' and c['overall']['error_rate_change'] == pytest.approx(0.5)
    (entry,) = c['new']
    assert entry['current']['error_rate'] == pytest.approx(3.0)  # MAE 60 / 20
    assert entry['measure']['p_value'] == pytest.approx(
        float(stats.binom.sf(17, 20, 0.5))  # at least 18 of 20 the bad way
    )
    assert 'MAE 3, was MAE 1' in compare.comparison_insights(c)[0]
    c.update(
        pipeline='p',
        baseline_run={'number': 1, 'run_id': 'a', 'report_uri': 'u'},
        current_run={'number': 2, 'run_id': 'b', 'report_uri': 'v'},
    )
    print_comparison(c)
    printed = capsys.readouterr().out
    assert 'Overall MAE: 1 → 1.5 (+0.5)' in printed and '%' not in printed.split('Accuracy')[0]


def test_without_predictions_a_regressions_own_maes_are_compared_by_welch():
    from blindspot.error_analysis.report import compare

    def report(mae, half):
        r = _regression_report(mae)
        r['slices']['slices'][0]['regression'] = {
            'error': 'absolute', 'rows': 100, 'mean_error': mae,
            'mean_error_ci': [mae - half, mae + half],
        }  # fmt: skip
        return r

    c = compare.compare_reports(report(1.0, 0.2), report(2.0, 0.2))
    (entry,) = c['new']
    assert entry['measure']['kind'] == 'reports'
    assert entry['current']['error_rate'] == 2.0 and entry['baseline']['error_rate'] == 1.0
    # Each mean's standard error is 0.2 / 1.96 (its interval's half-width): the difference
    # of 1 is 1 / (sqrt 2 x that) standard errors.
    se = 0.2 / regression.Z_95
    expected = stats.norm.sf(1.0 / (math.sqrt(2) * se))
    assert entry['measure']['p_value'] == pytest.approx(expected, rel=1e-3)
