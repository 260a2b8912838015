"""Slice membership from report predicates (search/membership.py): ranges by their bounds,
everything else by the encoder's label of the row's code; slices that cannot be evaluated say
why instead of counting no rows."""

import json

import numpy as np

from blindspot.error_analysis.search import binning, membership

PAYMENT = binning.categorical_encoder(
    'payment_type', {'Cash': 30, 'Credit Card': 50, 'Dispute': 1}, missing_count=2, max_values=2
)
FARE = binning.numeric_encoder('fare', [1.0, 5.0, 9.45, 21.8, 90.0], missing_count=1)
DAY = binning.numeric_encoder('trip_start_day', [1, 7], distinct_values=[1, 2, 7], num_bins=4)
(WEEKDAY,) = [
    e
    for e in binning.date_part_encoders(
        'pickup',
        {
            'year': np.array([2020]),
            'month': np.array([1]),
            'weekday': np.array([0, 5, 6]),
            'hour': np.array([3]),
        },
        epoch=False,
    )
    if e.part == 'weekday'
]
ENCODERS = membership.by_name([PAYMENT, FARE, DAY, WEEKDAY])
COLUMNS = {
    'payment_type': np.array(['Cash', 'Credit Card', 'Dispute', None, 'Credit Card'], object),
    'fare': np.array([9.45, 21.8, 10.0, np.nan, 3.0]),
    'trip_start_day': np.array([7.0, 1.0, 7.0, 2.0, 7.0]),
    'pickup': np.array(
        ['2020-01-04', '2020-01-05 10:00', '2020-01-06', None, '2020-01-04'], dtype=object
    ),
}


def _value(feature, label):
    return {'feature': feature, 'label': label, 'low': None, 'high': None, 'is_range': False}


def _range(feature, low, high):
    return {'feature': feature, 'label': f'{low} <= {feature} < {high}', 'low': low,
            'high': high, 'is_range': True}  # fmt: skip


def _mask(*predicates):
    return membership.slice_mask(predicates, COLUMNS, ENCODERS).tolist()


def test_ranges_by_bounds_low_inclusive_high_exclusive_missing_outside():
    assert _mask(_range('fare', 9.45, 21.8)) == [True, False, True, False, False]
    # Bounds from another run's bins (not this encoder's edges) are read exactly; open ends.
    assert _mask(_range('fare', 9.5, None)) == [False, True, True, False, False]
    assert _mask(_range('fare', None, 9.45)) == [False, False, False, False, True]


def test_categories_by_the_label_of_the_rows_code():
    card = _value('payment_type', 'payment_type = Credit Card')
    assert _mask(card) == [False, True, False, False, True]
    # 'Dispute' was not kept: it is '(other)' under this encoder.
    assert _mask(_value('payment_type', 'payment_type = (other)')) == [0, 0, 1, 0, 0]
    assert _mask(_value('payment_type', 'payment_type = (missing)')) == [0, 0, 0, 1, 0]
    assert _mask(_value('fare', 'fare is missing')) == [0, 0, 0, 1, 0]
    assert _mask(_value('trip_start_day', 'trip_start_day = 7')) == [1, 0, 1, 0, 1]
    # A date part reads its source column ('pickup'): 2020-01-04 is a Saturday.
    assert _mask(_value('pickup.weekday', 'pickup.weekday = Sat')) == [1, 0, 0, 0, 1]
    # Predicates combine with AND.
    day = _value('trip_start_day', 'trip_start_day = 7')
    assert _mask(card, _range('fare', 0.0, 5.0), day) == [0, 0, 0, 0, 1]
    assert _mask(card, _range('fare', 9.45, 21.8)) == [False] * 5


def test_unevaluable_slices_say_why_and_hold_no_rows():
    columns = set(COLUMNS)
    assert membership.slice_problem([_range('fare', 1, 2)], ENCODERS, columns) is None
    problems = {
        'tips': membership.slice_problem([_range('tips', 1, 2)], ENCODERS, columns),
        'company': membership.slice_problem([_value('company', 'company = A')], ENCODERS, columns),
        'unknown value': membership.slice_problem(
            [_value('payment_type', 'payment_type = Prcard')], ENCODERS, columns
        ),
        'no column': membership.slice_problem(
            [_value('payment_type', 'payment_type = Cash')], ENCODERS, columns - {'payment_type'}
        ),
    }
    assert problems == {
        'tips': "no column 'tips' to read the range '1 <= tips < 2' from",
        'company': "'company' is not sliced in the run that measures it",
        'unknown value': "'payment_type = Prcard' is not a value 'payment_type' is sliced by there",
        'no column': "no column 'payment_type' to read 'payment_type = Cash' from",
    }
    table = membership.memberships(
        [[_value('company', 'company = A')], [_range('fare', 9.45, 21.8)]], COLUMNS, ENCODERS
    )
    assert table.shape == (5, 2)
    assert not table[:, 0].any() and table[:, 1].tolist() == [1, 0, 1, 0, 0]


def test_encoders_survive_json():
    saved = json.loads(json.dumps(membership.encoders_to_json(list(ENCODERS.values()))))
    again = membership.by_name(membership.encoders_from_json(saved))
    assert again == ENCODERS
    predicates = [_value('pickup.weekday', 'pickup.weekday = Sat'), _range('fare', 0, 5)]
    assert (
        membership.slice_mask(predicates, COLUMNS, again).tolist()
        == membership.slice_mask(predicates, COLUMNS, ENCODERS).tolist()
    )
