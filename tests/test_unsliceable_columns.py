"""Columns that cannot make a slice (identifier-like, dates, epoch timestamps, constant) are
left out of the search with a note, and values read from float32 features print as written."""

import numpy as np

from components.error_analysis.beam.predictions import as_written
from components.error_analysis.search import binning, findings, lattice
from components.error_analysis.settings import Settings


def test_identifier_like_date_and_constant_text_columns_are_named_with_why():
    ids = [f'id{i}' for i in range(50)]
    reason = binning.categorical_unsliceable(ids, 500, 500, max_values=50)
    assert reason.startswith('identifier-like (500 distinct values in 500 rows)')
    dates = ['2024-01-03', '2024-01-04', '2023-12-31T08:15:00Z']
    assert binning.categorical_unsliceable(dates, 343, 1000, 50).startswith('dates or times')
    assert binning.categorical_unsliceable(['x'], 1, 1000, 50).startswith('constant')
    # One value and missing cells: a slice (missing or not); no value at all: empty.
    assert binning.categorical_unsliceable(['x'], 1, 900, 50, missing=100) is None
    assert binning.categorical_unsliceable([], 0, 0, 50, missing=1000).startswith('empty')
    # Many values but far fewer than rows, or a few categories: sliceable.
    assert binning.categorical_unsliceable(ids, 120, 1000, 50) is None
    assert binning.categorical_unsliceable(['a', 'b'], 2, 2, 50) is None


def test_epoch_seconds_need_a_time_like_name_and_a_plausible_range():
    assert binning.numeric_unsliceable('trip_start_timestamp', 1.36e9, 1.48e9, None).startswith(
        'timestamps (epoch seconds)'
    )
    assert binning.numeric_unsliceable('income', 1.36e9, 1.48e9, None) is None
    assert binning.numeric_unsliceable('start_time', 0.0, 86400.0, None) is None
    assert binning.numeric_unsliceable('x', 3.0, 3.0, 1).startswith('constant (one value, 3,')


def test_search_runs_with_a_left_out_column_and_keeps_its_note():
    rng = np.random.default_rng(0)
    rows = 4000
    zone = rng.choice(np.array(list('abcd'), dtype=object), rows)
    errors = (rng.random(rows) < np.where(zone == 'a', 0.5, 0.1)).astype(np.int64)
    encoders = [
        binning.left_out_encoder('row_id', 'identifier-like'),
        binning.categorical_encoder('zone', {z: rows / 4 for z in 'abcd'}),
    ]
    ids = np.array([f'r{i}' for i in range(rows)], dtype=object)
    codes = np.stack([e.encode(c) for e, c in zip(encoders, [ids, zone])], axis=1)
    config = lattice.SliceFinderConfig.from_settings(Settings(), max_predicates=2)
    result = findings.find_slices(codes, errors, lattice.holdout_mask(ids), encoders, config)
    assert [s.text for s in result.significant_slices] == ['zone = a']
    assert result.feature_notes == {'row_id': 'left out of slicing: identifier-like'}
    assert {v.feature for v in result.feature_values} == {'zone'}


def test_float32_values_print_as_written():
    assert as_written(np.array([24.4, np.nan], np.float32)).tolist()[0] == 24.4
    assert np.isnan(as_written(np.array([24.4, np.nan], np.float32))[1])
    assert float(np.float32(24.4)) != 24.4  # what the report showed before


def test_encoder_sketches_leave_out_an_id_a_date_and_a_timestamp_column():
    from components.error_analysis.beam import slices as beam_slices

    rows = 600
    rng = np.random.default_rng(1)
    columns = {
        'customer_id': np.array([f'c{i:05d}' for i in range(rows)], dtype=object),
        'day': np.array([f'2024-{1 + i % 12:02d}-{1 + i % 28:02d}' for i in range(rows)], object),
        'trip_start_timestamp': 1.4e9 + rng.integers(0, 10**7, rows).astype(np.float64),
        'country': np.array(['fr'] * rows, dtype=object),
        'city': rng.choice(np.array(['a', 'b', 'c'], dtype=object), rows),
    }
    fn = beam_slices._EncoderStatsFn(list(columns), num_bins=16, max_values=50)
    batch = lattice.ColumnBatch(columns, np.zeros(rows), np.arange(rows).astype(str))
    encoders = fn.extract_output(fn.add_input(fn.create_accumulator(), batch))
    kinds = {e.name: (e.kind, e.note.split(' (')[0]) for e in encoders}
    assert kinds == {
        'customer_id': (binning.LEFT_OUT, 'left out of slicing: identifier-like'),
        'day': (binning.LEFT_OUT, 'left out of slicing: dates or times'),
        'trip_start_timestamp': (binning.LEFT_OUT, 'left out of slicing: timestamps'),
        'country': (binning.LEFT_OUT, 'left out of slicing: constant'),
        'city': (binning.CATEGORICAL, ''),
    }
