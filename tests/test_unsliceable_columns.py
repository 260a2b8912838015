"""Columns that cannot make a slice (identifier-like text or integers, constant) are left out
of the search with a note, date and timestamp columns are sliced by their parts, and values
read from float32 features print as written."""

import datetime

import numpy as np

from blindspot.error_analysis.beam.predictions import as_written
from blindspot.error_analysis.search import binning, findings, lattice
from blindspot.error_analysis.settings import Settings


def test_identifier_like_and_constant_text_columns_are_named_with_why():
    ids = [f'id{i}' for i in range(50)]
    reason = binning.categorical_unsliceable(ids, 500, 500, max_values=50)
    assert reason.startswith('identifier-like (all distinct values in 500 rows)')
    assert binning.categorical_unsliceable(['x'], 1, 1000, 50).startswith('constant')
    # One value and missing cells: a slice (missing or not); no value at all: empty.
    assert binning.categorical_unsliceable(['x'], 1, 900, 50, missing=100) is None
    assert binning.categorical_unsliceable([], 0, 0, 50, missing=1000).startswith('empty')
    # Many values but far fewer than rows, or a few categories: sliceable.
    assert binning.categorical_unsliceable(ids, 120, 1000, 50) is None
    assert binning.categorical_unsliceable(['a', 'b'], 2, 2, 50) is None


def test_numeric_identifiers_need_integers_nearly_one_per_row_and_an_id_name_or_packed_range():
    rng = np.random.default_rng(0)
    rows = 1000

    def reason(name, values, integral=None):
        values = np.asarray(values, np.float64)
        return binning.numeric_unsliceable(
            name,
            values.min(),
            values.max(),
            len(np.unique(values)),
            len(values),
            integral=bool(np.all(values == np.round(values))) if integral is None else integral,
        )

    row_numbers = np.arange(rows)
    assert reason('Unnamed: 0', row_numbers).startswith(
        'identifier-like (integers, all distinct values in 1,000 rows'
    )
    # A third of a numbered file (the eval split of it) still spans < 10 x its rows.
    assert reason('n', np.sort(rng.choice(3 * rows, rows, replace=False))) is not None
    large_ids = rng.choice(10**12, rows, replace=False)
    assert reason('order_id', large_ids).startswith('identifier-like')
    assert reason('customerId', large_ids) is not None
    # Measures are not identifiers: unique integers spread wide without an id name, unique
    # floats (prices), integers with repeats, or a table too small to tell.
    assert reason('income', large_ids) is None
    assert reason('price', rng.uniform(1, 500, rows).round(2)) is None
    assert reason('row_id', rng.integers(0, 50, rows)) is None
    assert reason('id', np.arange(30)) is None
    assert not binning.id_like_name('valid') and not binning.id_like_name('idle_time')
    assert reason('x', [3.0] * 10).startswith('constant (one value, 3,')


def test_date_parts_of_iso_text_and_epoch_seconds_match_the_calendar():
    stamps = 1.36e9 + np.random.default_rng(2).integers(0, 10**8, 50).astype(np.float64)
    moments = [datetime.datetime.fromtimestamp(s, datetime.timezone.utc) for s in stamps]
    expected = {
        'year': [m.year for m in moments],
        'month': [m.month for m in moments],
        'weekday': [m.weekday() for m in moments],
        'hour': [m.hour for m in moments],
    }
    epoch = binning.date_parts(np.append(stamps, np.nan))
    text = np.array([m.strftime('%Y-%m-%dT%H:%M:%SZ') for m in moments] + [None], object)
    iso = binning.date_parts(text)
    for part, values in expected.items():
        assert epoch[part].tolist() == values + [-1]
        assert iso[part].tolist() == values + [-1]
    # A date without a time has no hour; text that is no date has no part.
    dates_only = binning.date_parts(np.array(['2024-03-09', 'soon', '2024/03/10'], object))
    assert dates_only['weekday'].tolist() == [5, -1, 6]  # 2024-03-09 was a Saturday
    assert dates_only['hour'].tolist() == [-1, -1, -1]


def test_date_part_encoders_keep_varying_parts_and_print_readably():
    days = np.array(['2024-03-09', '2024-03-10', '2024-04-13', None], object)  # Sat Sun Sat
    seen = {part: np.unique(values) for part, values in binning.date_parts(days).items()}
    encoders = binning.date_part_encoders('day', seen, epoch=False)
    assert [e.name for e in encoders] == ['day.month', 'day.weekday']  # one year, no times
    month, weekday = encoders
    assert weekday.labels == ['day.weekday = Sat', 'day.weekday = Sun', 'day.weekday is missing']
    assert month.labels[:2] == ['day.month = Mar', 'day.month = Apr']
    assert weekday.note == "'day' (dates or times) is sliced by its parts: day.month, day.weekday"
    assert weekday.encode(days).tolist() == [0, 1, 0, 2]
    # A value the encoder has not seen: an error, or no slice (-1) for other data.
    assert weekday.encode(np.array(['2024-03-11'], object), strict=False).tolist() == [-1]
    one_day = {part: np.unique(v) for part, v in binning.date_parts(days[:1]).items()}
    assert binning.date_part_encoders('day', one_day, epoch=False)[0].kind == binning.LEFT_OUT


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


def test_encoder_sketches_leave_out_ids_and_split_a_date_and_a_timestamp_column():
    from blindspot.error_analysis.beam import slices as beam_slices

    rows = 600
    rng = np.random.default_rng(1)
    stamps = 1.4e9 + rng.integers(0, 10**7, rows).astype(np.float64)  # 116 days of 2014
    columns = {
        'customer_id': np.array([f'c{i:05d}' for i in range(rows)], dtype=object),
        'row_number': np.arange(rows, dtype=np.float64),
        'day': np.array([f'2024-{1 + i % 12:02d}-{1 + i % 28:02d}' for i in range(rows)], object),
        'trip_start_timestamp': stamps,
        'country': np.array(['fr'] * rows, dtype=object),
        'city': rng.choice(np.array(['a', 'b', 'c'], dtype=object), rows),
        'price': rng.uniform(1, 100, rows).round(2),
    }
    fn = beam_slices._EncoderStatsFn(list(columns), num_bins=16, max_values=50)
    half = rows // 2  # two batches merged, as on a distributed runner
    accumulators = [
        fn.add_input(
            fn.create_accumulator(),
            lattice.ColumnBatch(
                {n: v[part] for n, v in columns.items()},
                np.zeros(half),
                np.arange(half).astype(str),
            ),
        )
        for part in (slice(0, half), slice(half, rows))
    ]
    encoders = fn.extract_output(fn.merge_accumulators(accumulators))
    kinds = {e.name: (e.kind, e.note.split(' (')[0]) for e in encoders}
    assert kinds == {
        'customer_id': (binning.LEFT_OUT, 'left out of slicing: identifier-like'),
        'row_number': (binning.LEFT_OUT, 'left out of slicing: identifier-like'),
        'day.month': (binning.DATE_PART, "'day'"),
        'day.weekday': (binning.DATE_PART, "'day'"),
        'trip_start_timestamp.month': (binning.DATE_PART, "'trip_start_timestamp'"),
        'trip_start_timestamp.weekday': (binning.DATE_PART, "'trip_start_timestamp'"),
        'trip_start_timestamp.hour': (binning.DATE_PART, "'trip_start_timestamp'"),
        'country': (binning.LEFT_OUT, 'left out of slicing: constant'),
        'city': (binning.CATEGORICAL, ''),
        'price': (binning.NUMERIC, ''),
    }
    hours = encoders[6]
    assert hours.cardinality == 24 and hours.labels[14] == 'trip_start_timestamp.hour = 14'
    codes = beam_slices.encode_columns(columns, encoders)
    assert codes.shape == (rows, len(encoders))


def test_a_failing_weekday_is_found_and_printed_as_a_part():
    from blindspot.error_analysis.beam import slices as beam_slices

    rng = np.random.default_rng(5)
    rows = 6000
    base = np.datetime64('2023-01-02')  # a Monday
    days = base + rng.integers(0, 700, rows).astype('timedelta64[D]')
    text = np.array([str(d) for d in days], dtype=object)
    saturday = (days - base).astype(np.int64) % 7 == 5
    errors = (rng.random(rows) < np.where(saturday, 0.5, 0.08)).astype(np.int64)
    columns = {'day': text}
    fn = beam_slices._EncoderStatsFn(['day'], num_bins=16, max_values=50)
    ids = np.arange(rows).astype(str)
    batch = lattice.ColumnBatch(columns, errors, ids)
    encoders = fn.extract_output(fn.add_input(fn.create_accumulator(), batch))
    assert [e.name for e in encoders] == ['day.year', 'day.month', 'day.weekday']
    codes = beam_slices.encode_columns(columns, encoders)
    config = lattice.SliceFinderConfig.from_settings(Settings(), max_predicates=2)
    result = findings.find_slices(codes, errors, lattice.holdout_mask(ids), encoders, config)
    assert result.significant_slices[0].text == 'day.weekday = Sat'
    assert set(result.feature_notes) == {'day.year', 'day.month', 'day.weekday'}
