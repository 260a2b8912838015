"""Tests for search/compact.py: the per-row state the counting passes read, kept small."""

import numpy as np
import pytest

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.search import binning, compact, lattice, ranges, selection
from blindspot.error_analysis.settings import Settings

SETTINGS = Settings()


@pytest.mark.parametrize(
    'num_codes, dtype',
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65_536, np.uint16), (65_537, np.uint32)],
)
def test_unsigned_dtype_is_the_smallest_that_holds_every_code(num_codes, dtype):
    assert compact.unsigned_dtype(num_codes) == np.dtype(dtype)
    assert np.array(num_codes - 1).astype(dtype) == num_codes - 1


def _numeric(values, missing, num_bins=SETTINGS.num_bins, sub_bins=binning.SUB_BINS, name='x'):
    present = values[~np.isnan(values)]
    quantiles = np.quantile(present, np.linspace(0, 1, num_bins + 1))
    return binning.numeric_encoder(
        name, quantiles, missing_count=int(missing), num_bins=num_bins, sub_bins=sub_bins
    )


def _values(rng, rows, missing_share):
    values = rng.normal(size=rows) * 10
    values[rng.random(rows) < missing_share] = np.nan
    return values


@pytest.mark.parametrize('missing_share', [0.0, 0.05])
def test_coarse_codes_read_through_the_lookup_equal_encode(missing_share):
    rng = np.random.default_rng(3)
    values = _values(rng, 20_000, missing_share)
    encoder = _numeric(values, np.isnan(values).sum())
    # Every value that sits exactly on a bin or sub-bin edge, where an off-by-one would show.
    probes = np.concatenate([values, encoder.edges, encoder.fine_edges])
    lookup = compact.coarse_of_fine(encoder)
    assert len(lookup) == compact.num_fine_codes(encoder)
    np.testing.assert_array_equal(lookup[encoder.encode_fine(probes)], encoder.encode(probes))


def test_fine_codes_of_sixteen_by_sixteen_bins_fit_a_byte_until_a_value_is_missing():
    rng = np.random.default_rng(4)
    whole, gappy = _values(rng, 20_000, 0.0), _values(rng, 20_000, 0.05)
    letters = np.array(list('abcdefgh'), dtype=object)[rng.integers(0, 8, 20_000)]
    category = binning.categorical_encoder('c', {v: 1 for v in 'abcdefgh'})
    errors, holdout = rng.integers(0, 2, 20_000), rng.random(20_000) < 0.5
    for values, dtype in [(whole, np.uint8), (gappy, np.uint16)]:
        encoders = [category, _numeric(values, np.isnan(values).sum())]
        columns = {'c': letters, 'x': values}
        batch = compact.EncodedBatch.pack(
            beam_slices.encode_columns(columns, encoders, fine=True), errors, holdout, encoders
        )
        assert batch.fine.dtype == dtype
        np.testing.assert_array_equal(batch.codes(), beam_slices.encode_columns(columns, encoders))
        np.testing.assert_array_equal(batch.errors, errors)
        np.testing.assert_array_equal(batch.holdout, holdout)
    assert compact.num_fine_codes(encoders[1]) == 16 * 16 + 1  # the sub-bins and "missing"


def test_pack_refuses_codes_of_values_the_encoders_do_not_know():
    encoders = [binning.categorical_encoder('c', {'a': 1})]
    with pytest.raises(ValueError, match='fine codes must be >= 0'):
        compact.EncodedBatch.pack(np.array([[0], [-1]]), [0, 1], [False, True], encoders)


def test_counts_from_the_compact_batch_equal_those_of_int32_codes():
    """Every counting pass (lattice levels, range histograms, membership patterns) gives the
    same counts from a compact batch as from the int32 codes it replaces."""
    rng = np.random.default_rng(5)
    rows = 30_000
    columns = {
        'c': np.array(list('abcdef'), dtype=object)[rng.integers(0, 6, rows)],
        'x': _values(rng, rows, 0.03),
        'y': _values(rng, rows, 0.0),
    }
    encoders = [
        binning.categorical_encoder('c', {v: 1 for v in 'abcdef'}),
        _numeric(columns['x'], np.isnan(columns['x']).sum(), num_bins=4, sub_bins=4),
        _numeric(columns['y'], 0, name='y'),
    ]
    errors = (rng.random(rows) < np.where(columns['y'] > 5, 0.4, 0.1)).astype(np.int64)
    holdout = rng.random(rows) < 0.5
    codes = beam_slices.encode_columns(columns, encoders)
    fine = beam_slices.encode_columns(columns, encoders, fine=True)
    batch = compact.EncodedBatch.pack(fine, errors, holdout, encoders)

    config = lattice.SliceFinderConfig.from_settings(SETTINGS, max_predicates=2)
    state = lattice.initial_state([e.cardinality for e in encoders], config)
    for _ in range(config.max_predicates):
        candidates = lattice.generate_candidates(state)
        expected = lattice.count_candidates(codes, errors, holdout, candidates)
        got = lattice.count_candidates(batch.codes(), batch.errors, batch.holdout, candidates)
        np.testing.assert_array_equal(got, expected)
        state = lattice.next_level(state, candidates, expected)
    jobs = ranges.range_jobs(state, encoders)
    assert jobs.size
    np.testing.assert_array_equal(
        ranges.count_ranges(batch.codes(), batch.fine, batch.errors, batch.holdout, jobs),
        ranges.count_ranges(codes, fine, errors, holdout, jobs),
    )
    conditions = ranges.refine(
        state, encoders, jobs, ranges.count_ranges(codes, fine, errors, holdout, jobs)
    )
    got = selection.PatternTable.count(batch.fine, batch.errors, batch.holdout, conditions)
    expected = selection.PatternTable.count(fine, errors, holdout, conditions)
    np.testing.assert_array_equal(got.patterns, expected.patterns)
    np.testing.assert_array_equal(got.counts, expected.counts)
