"""Slice identity across runs (search/identity.py) and the slice gate's verdict
(report/gate.py), on hand-made reports (compared by their own numbers; on both models'
predictions: test_measured_comparison.py)."""

import pytest

from blindspot.error_analysis.report import compare, gate
from blindspot.error_analysis.search import identity


def _range(feature, low, high):
    label = f'{low} <= {feature} < {high}'
    return {'feature': feature, 'label': label, 'low': low, 'high': high, 'is_range': True}


def _value(feature, value):
    return {'feature': feature, 'label': f'{feature} = {value}', 'is_range': False}


def test_slice_id_is_order_free_and_ranges_match_by_overlap():
    a = [_value('city', 'x'), _range('z', 0.6, 0.7)]
    b = [_range('z', 0.58, 0.7), _value('city', 'x')]
    assert identity.slice_id(a) == identity.slice_id(b)
    assert identity.same_slice(a, b)
    assert not identity.same_slice(a, [_value('city', 'x'), _range('z', 0.7, 0.9)])
    assert not identity.same_slice(a, [_value('city', 'y'), _range('z', 0.6, 0.7)])
    open_ended = [_value('city', 'x'), {**_range('z', None, 0.65), 'label': 'z < 0.65'}]
    assert identity.same_slice(a, open_ended)


def _slice(predicates, errors, size, held=True, parent=None):
    half = size // 2
    return {
        'slice': ' AND '.join(p['label'] for p in predicates),
        'slice_id': identity.slice_id(predicates),
        'predicates': predicates,
        'search_size': half,
        'holdout_size': size - half,
        'search_errors': errors // 2,
        'holdout_errors': errors - errors // 2,
        'size': size,
        'errors': errors,
        'error_rate': errors / size,
        'held': held,
        'parent': parent,
    }


def _report(*slices):
    return {'slices': {'slices': list(slices), 'feature_values': []}}


NIGHT = [_value('hour', 'night')]
RANGE = [_range('fare', 7.85, 12.4)]


def _gated(baseline, current, mode='new', max_rate=0.5):
    if baseline is not None:
        current = {**current, 'comparison': compare.compare_reports(baseline, current)}
    return gate.slice_gate(current, mode, max_rate, 0.05)


def test_new_mode_blocks_a_new_finding_and_names_it():
    verdict = _gated(
        _report(_slice(NIGHT, 40, 200)), _report(_slice(NIGHT, 40, 200), _slice(RANGE, 90, 200))
    )
    assert not verdict['passed']
    assert [b['slice'] for b in verdict['blocking']] == ['7.85 <= fare < 12.4']
    assert '7.85 <= fare < 12.4' in verdict['reason'] and '--slice-gate off' in verdict['reason']


def test_new_mode_matches_a_moved_range_and_blocks_only_a_real_worsening():
    moved = [_range('fare', 7.5, 12.4)]
    same = _gated(_report(_slice(RANGE, 90, 200)), _report(_slice(moved, 92, 200)))
    assert same['passed'], same
    worse = _gated(_report(_slice(RANGE, 60, 200)), _report(_slice(moved, 150, 200)))
    assert not worse['passed']
    assert worse['blocking'][0]['why'] == (
        "fails significantly more than under the last blessed model (the two reports' numbers "
        "(the baseline's predictions were not measured); adjusted p = 5.9e-20)"
    )


def test_new_mode_without_a_baseline_passes_and_says_why():
    verdict = _gated(None, _report(_slice(RANGE, 90, 200)))
    assert verdict['passed'] and 'no blessed model' in verdict['reason']


@pytest.mark.parametrize('rate,passed', [(0.45, True), (0.6, False)])
def test_any_mode_uses_the_error_rate_limit(rate, passed):
    current = _report(_slice(RANGE, int(rate * 200), 200), _slice(NIGHT, 150, 200, held=False))
    assert _gated(None, current, mode='any', max_rate=0.5)['passed'] is passed


def test_off_mode_always_passes():
    assert _gated(_report(), _report(_slice(RANGE, 190, 200)), mode='off')['passed']


def _regression_finding(predicates, mean_error, rest_mean_error, rows=100):
    """A held regression finding as report/build.py keeps it: its error rate is the share of
    its rows above the median error, its numbers under 'regression'."""
    found = _slice(predicates, errors=int(0.8 * rows), size=rows)
    found['regression'] = {
        'error': 'absolute',
        'mean_error': mean_error,
        'outside': {'mean_error': rest_mean_error},
    }
    return found


def test_any_mode_on_a_regression_reads_the_mean_error_against_the_rests():
    """80% of each finding's rows are above the median error (past the 50% limit a classifier
    is held to); a regression blocks on its MAE against the rest's instead."""
    report = {
        **_report(_regression_finding(NIGHT, 3.0, 1.0), _regression_finding(RANGE, 1.4, 1.0)),
        'regression': {'mae': 1.2},
    }
    verdict = gate.slice_gate(report, 'any', 0.5, 0.05, max_slice_error_ratio=2.0)
    assert [b['slice'] for b in verdict['blocking']] == ['hour = night']
    assert verdict['blocking'][0]['why'] == "3.0x the rest's 1, above the 2x limit"
    assert 'mean error 3' in verdict['reason'] and '80% errors' not in verdict['reason']
    assert gate.slice_gate(report, 'any', 0.5, 0.05, max_slice_error_ratio=3.5)['passed']
    passed = gate.slice_gate(report, 'any', 0.5, 0.05, max_slice_error_ratio=3.5)
    assert passed['reason'] == "no failing slice with more than 3.5x the rest's mean error"
    # A classifier's findings are still held to the error rate.
    classified = _report(_slice(NIGHT, 80, 100))
    assert not gate.slice_gate(classified, 'any', 0.5, 0.05, max_slice_error_ratio=99)['passed']
