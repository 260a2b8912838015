"""Tests for blindspot.error_analysis.beam_slices (in-process DirectRunner)."""

import collections
import pickle

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.search import findings
from blindspot.error_analysis.search import lattice as sf
from blindspot.error_analysis.settings import Settings


def _config(**overrides):
    """The search config of the default settings, with overrides."""
    return sf.SliceFinderConfig.from_settings(Settings(), **overrides)


FEATURES = ['company', 'payment_type', 'trip_miles', 'passengers', 'hour']


def _columns(rows, seed=0):
    rng = np.random.default_rng(seed)
    company = np.array([f'c{i}' for i in rng.zipf(1.3, rows) % 120], dtype=object)
    company[rng.random(rows) < 0.05] = None
    payment = rng.choice(
        np.array(['Cash', 'Card', 'Mobile', ''], dtype=object), rows, p=[0.4, 0.4, 0.15, 0.05]
    )
    miles = rng.exponential(3.0, rows)
    miles[rng.random(rows) < 0.03] = np.nan
    passengers = rng.integers(1, 4, rows).astype(np.float64)
    hour = rng.integers(0, 24, rows)
    rates = np.where((payment == 'Cash') & (miles > 6), 0.5, 0.1)
    errors = (rng.random(rows) < rates).astype(np.int64)
    columns = dict(zip(FEATURES, [company, payment, miles, passengers, hour]))
    return columns, errors, np.array([f'trip-{seed}-{i}' for i in range(rows)])


def _batches(columns, errors, ids, rows_per_batch):
    return [
        sf.ColumnBatch(
            {name: values[start : start + rows_per_batch] for name, values in columns.items()},
            errors[start : start + rows_per_batch],
            ids[start : start + rows_per_batch],
        )
        for start in range(0, len(errors), rows_per_batch)
    ]


def _run(batches, config, tmp_path, rows_per_batch=3000):
    """Runs BuildEncoders + DiscoverSlices; returns (encoders, result)."""
    outputs = {}

    def save(value, name):
        with open(tmp_path / name, 'wb') as file:
            pickle.dump(value, file)

    options = PipelineOptions(['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    with beam.Pipeline(options=options) as pipeline:
        inputs = pipeline | beam.Create(batches, reshuffle=False)
        encoders = inputs | beam_slices.BuildEncoders(FEATURES, max_values=50)
        result = inputs | beam_slices.DiscoverSlices(encoders, config, rows_per_batch)
        _ = encoders | 'SaveEncoders' >> beam.Map(save, 'encoders')
        _ = result | 'SaveResult' >> beam.Map(save, 'result')
    for name in ('encoders', 'result'):
        with open(tmp_path / name, 'rb') as file:
            outputs[name] = pickle.load(file)
    return outputs['encoders'], outputs['result']


def test_beam_result_equals_in_memory_driver(tmp_path):
    columns, errors, ids = _columns(12_000)
    config = _config(alpha=0.95, max_predicates=3, min_slice_size=0.01)
    encoders, result = _run(_batches(columns, errors, ids, 500), config, tmp_path)

    codes = np.stack([encoder.encode(columns[encoder.name]) for encoder in encoders], axis=1)
    fine = np.stack([encoder.encode_fine(columns[encoder.name]) for encoder in encoders], axis=1)
    expected = findings.find_slices(codes, errors, sf.holdout_mask(ids), encoders, config, fine)
    assert result.to_dict() == expected.to_dict()
    assert result.rows == 12_000
    assert 'payment_type = Cash' in result.slices[0].text
    assert result.slices[0].held


def test_build_encoders_sketches(tmp_path):
    columns, errors, ids = _columns(12_000, seed=1)
    encoders, _ = _run(_batches(columns, errors, ids, 2000), _config(max_predicates=1), tmp_path)
    company, payment, miles, passengers, hour = encoders

    distinct = {value for value in columns['company'] if value is not None}
    assert company.kind == 'categorical' and company.cardinality == 52
    assert company.note == (
        f"capped to the 50 most frequent of {len(distinct)} values; the rest is '(other)'"
    )
    counts = collections.Counter(value for value in columns['company'] if value is not None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert company.vocabulary == [value for value, _ in ranked[:50]]
    assert sorted(payment.labels[:3]) == [
        'payment_type = Card',
        'payment_type = Cash',
        'payment_type = Mobile',
    ]
    assert payment.labels[3] == 'payment_type = (missing)'
    assert miles.kind == 'numeric'
    assert miles.labels[0].startswith('trip_miles < ')
    assert miles.labels[-1] == 'trip_miles is missing'
    shares = np.bincount(miles.encode(columns['trip_miles'])) / 12_000
    np.testing.assert_allclose(shares[:4], 0.97 / 4, atol=0.02)
    assert passengers.labels == ['passengers = 1', 'passengers = 2', 'passengers = 3']
    assert hour.kind == 'numeric' and hour.cardinality == 4


def test_empty_input_gives_an_empty_result(tmp_path):
    columns, errors, ids = _columns(10)
    batches = _batches(columns, errors, ids, 10)
    options = PipelineOptions(['--direct_running_mode=in_memory'])
    with beam.Pipeline(options=options) as pipeline:
        inputs = pipeline | beam.Create(batches) | beam.Filter(lambda batch: False)
        encoders = inputs | beam_slices.BuildEncoders(FEATURES)
        result = inputs | beam_slices.DiscoverSlices(encoders, _config())
        _ = result | beam.Map(lambda r: (tmp_path / 'empty').write_text(str(r.to_dict())))
    text = (tmp_path / 'empty').read_text()
    assert "'rows': 0" in text and "'slices': []" in text


def test_rebatch_concatenates_small_batches():
    columns, errors, ids = _columns(1000)
    rebatch = beam_slices._Rebatch(rows_per_batch=300)
    rebatch.start_bundle()
    emitted = []
    for batch in _batches(columns, errors, ids, 100):
        emitted.extend(rebatch.process(batch))
    emitted.extend(value.value for value in rebatch.finish_bundle())
    assert [batch.num_rows for batch in emitted] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([batch.example_ids for batch in emitted]), ids)
    np.testing.assert_array_equal(
        np.concatenate([batch.columns['trip_miles'] for batch in emitted]), columns['trip_miles']
    )
