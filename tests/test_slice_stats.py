"""Tests for blindspot.error_analysis.slice_stats."""

import numpy as np
import pytest
from scipy import stats

from blindspot.error_analysis.search import stats as slice_stats


@pytest.mark.parametrize(
    'successes,trials', [(0, 10), (3, 10), (10, 10), (1, 1), (57, 1000), (499, 500)]
)
def test_wilson_interval_matches_scipy(successes, trials):
    expected = stats.binomtest(successes, trials).proportion_ci(method='wilson')
    low, high = slice_stats.wilson_interval(successes, trials)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_is_vectorised_and_nan_for_empty():
    low, high = slice_stats.wilson_interval(np.array([3, 0]), np.array([10, 0]))
    assert low[0] == pytest.approx(0.10779126740630102)
    assert high[0] == pytest.approx(0.6032218525388546)
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_greater_rate_p_value_hand_computed():
    # 30/100 vs 10/100: pooled 0.2, se = sqrt(0.2 * 0.8 * 2 / 100), z = 3.5355.
    p_value = slice_stats.greater_rate_p_value(30, 100, 10, 100)
    assert p_value == pytest.approx(stats.norm.sf(0.2 / np.sqrt(0.0032)))
    assert p_value == pytest.approx(2.0346e-4, rel=1e-3)


@pytest.mark.parametrize(
    'errors_in,size_in,errors_out,size_out',
    [(30, 100, 10, 100), (12, 80, 95, 900), (5, 400, 40, 600)],
)
def test_greater_rate_p_value_is_half_the_chi_square_test(errors_in, size_in, errors_out, size_out):
    table = [[errors_in, size_in - errors_in], [errors_out, size_out - errors_out]]
    two_sided = stats.chi2_contingency(table, correction=False).pvalue
    p_value = slice_stats.greater_rate_p_value(errors_in, size_in, errors_out, size_out)
    if errors_in / size_in > errors_out / size_out:
        assert p_value == pytest.approx(two_sided / 2)
    else:
        assert p_value == pytest.approx(1 - two_sided / 2)


def test_greater_rate_p_value_undefined_cases_give_no_evidence():
    p_values = slice_stats.greater_rate_p_value(
        np.array([0, 5, 0, 10]),
        np.array([0, 10, 10, 10]),
        np.array([5, 0, 0, 10]),
        np.array([10, 0, 10, 10]),
    )
    np.testing.assert_array_equal(p_values, [1.0, 1.0, 1.0, 1.0])


def test_benjamini_hochberg_hand_computed_and_scipy():
    p_values = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(
        slice_stats.benjamini_hochberg(p_values), [0.04, 0.16 / 3, 0.16 / 3, 0.5]
    )
    random_p = np.random.default_rng(0).random(200) ** 3
    np.testing.assert_allclose(
        slice_stats.benjamini_hochberg(random_p), stats.false_discovery_control(random_p)
    )
    assert slice_stats.benjamini_hochberg(np.array([])).size == 0


def test_lift_and_error_rate():
    np.testing.assert_allclose(slice_stats.lift([0.3, 0.05], 0.1), [3.0, 0.5])
    assert np.isnan(slice_stats.lift(0.3, 0.0))
    rates = slice_stats.error_rate(np.array([1, 0]), np.array([4, 0]))
    assert rates[0] == 0.25 and np.isnan(rates[1])
