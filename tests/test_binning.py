"""Tests for blindspot.error_analysis.binning."""

import collections

import numpy as np
import pytest

from blindspot.error_analysis.search import binning


def test_categorical_encoder_caps_high_cardinality_with_a_note():
    rng = np.random.default_rng(0)
    values = np.array([f'v{i}' for i in rng.zipf(1.5, 20_000) % 300], dtype=object)
    values[:100] = None
    values[100:150] = ''
    present = values[(values != None) & (values != '')]  # noqa: E711 (element-wise on an object array)
    counts = collections.Counter(present.tolist())
    encoder = binning.categorical_encoder('company', counts, missing_count=150, max_values=50)

    assert encoder.cardinality == 52
    assert encoder.labels[-2:] == ['company = (other)', 'company = (missing)']
    assert encoder.note == (
        f"capped to the 50 most frequent of {len(counts):,} values; the rest is '(other)'"
    )
    most_frequent = {value for value, _ in counts.most_common(50)}
    assert set(encoder.vocabulary) == most_frequent

    codes = encoder.encode(values)
    assert codes.dtype == np.int32
    assert (codes[:150] == encoder.missing_code).all()
    expected = [
        encoder.vocabulary.index(value) if value in most_frequent else encoder.other_code
        for value in values[150:]
    ]
    np.testing.assert_array_equal(codes[150:], expected)


def test_categorical_encoder_without_capping_or_missing():
    encoder = binning.categorical_encoder('payment_type', {'Cash': 10, 'Card': 30})
    assert encoder.labels == ['payment_type = Card', 'payment_type = Cash']
    assert encoder.note == ''
    np.testing.assert_array_equal(encoder.encode(np.array(['Cash', 'Card'], dtype=object)), [1, 0])
    with pytest.raises(ValueError, match='not seen'):
        encoder.encode(np.array(['Dispute'], dtype=object))


def test_numeric_encoder_quantile_bins_labels_and_codes():
    encoder = binning.numeric_encoder('trip_miles', [0.1, 0.9, 2.1, 5.3, 40.0], missing_count=3)
    assert encoder.edges == [0.9, 2.1, 5.3]
    assert encoder.labels == [
        'trip_miles < 0.9',
        '0.9 <= trip_miles < 2.1',
        '2.1 <= trip_miles < 5.3',
        'trip_miles >= 5.3',
        'trip_miles is missing',
    ]
    values = np.array([0.1, 0.9, 1.0, 2.1, 5.29, 5.3, 40.0, np.nan])
    np.testing.assert_array_equal(encoder.encode(values), [0, 1, 1, 2, 2, 3, 3, 4])


def test_numeric_encoder_from_data_quantiles():
    values = np.random.default_rng(0).exponential(size=1000)
    quantiles = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
    encoder = binning.numeric_encoder('x', quantiles)
    assert encoder.cardinality == 4
    # Rounded edges: every bin still holds about a quarter of the rows.
    np.testing.assert_allclose(np.bincount(encoder.encode(values)) / 1000, 0.25, atol=0.01)


def test_numeric_encoder_rounds_edges_so_labels_are_exact():
    encoder = binning.numeric_encoder('fare', [0.01, 0.873412, 2.14159, 5.34567, 90.0])
    assert encoder.edges == [0.873, 2.14, 5.35]
    assert encoder.labels[0] == 'fare < 0.873'
    assert encoder.labels[-1] == 'fare >= 5.35'
    np.testing.assert_array_equal(
        encoder.encode(np.array([0.8729, 0.873, 5.35, 5.3499])), [0, 1, 3, 2]
    )


def test_numeric_encoder_collapses_duplicate_edges():
    values = np.r_[np.zeros(700), np.linspace(1, 10, 300)]
    encoder = binning.numeric_encoder('tips', np.quantile(values, [0, 0.25, 0.5, 0.75, 1]))
    # Quantiles 0, 0, 0, 2.48: the first two edges are the minimum.
    assert encoder.labels == ['tips < 2.48', 'tips >= 2.48']
    assert encoder.note == '2 bins: some quantiles coincide'


def test_numeric_feature_with_few_values_is_treated_as_categorical():
    values = np.array([1.0, 2.0, 4.0, 2.0, np.nan])
    encoder = binning.numeric_encoder(
        'passengers',
        np.quantile(values[:4], [0, 0.5, 1]),
        missing_count=1,
        distinct_values=[1.0, 2.0, 4.0],
        num_bins=4,
    )
    assert encoder.labels == [
        'passengers = 1',
        'passengers = 2',
        'passengers = 4',
        'passengers is missing',
    ]
    np.testing.assert_array_equal(encoder.encode(values), [0, 1, 2, 1, 3])


def test_numeric_encoder_without_missing_values_rejects_nan():
    encoder = binning.numeric_encoder('x', [0.0, 1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match='missing'):
        encoder.encode(np.array([np.nan]))


@pytest.mark.parametrize(
    'value,text',
    [
        (0.9, '0.9'),
        (2.125, '2.12'),
        (5.3, '5.3'),
        (1234.5, '1230'),
        (-0.000123456, '-0.000123'),
        (0.0, '0'),
        (3e-7, '3e-07'),
        (2.5e12, '2.5e+12'),
    ],
)
def test_format_number_three_significant_digits(value, text):
    assert binning.format_number(value) == text


def test_labels_get_more_digits_only_when_numbers_collide():
    encoder = binning.numeric_encoder('x', [0, 1.0001, 1.0002, 1.0003, 2], num_bins=4)
    # Rounded to 3 digits all edges are 1: a single edge remains.
    assert encoder.labels == ['x < 1', 'x >= 1']
