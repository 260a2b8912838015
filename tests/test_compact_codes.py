"""Tests for search/compact.py: the per-row state the counting passes read, kept small."""

import numpy as np
import pytest

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.search import binning, compact, lattice, ranges, selection
from blindspot.error_analysis.settings import Settings

SETTINGS = Settings()


@pytest.mark.parametrize(
    'num_codes, dtype',
    [
        (1, np.uint8),
        (256, np.uint8),
        (257, np.uint16),
        (65_536, np.uint16),
        (65_537, np.uint32),
        (2**32 + 1, np.uint64),
    ],
)
def test_unsigned_dtype_is_the_smallest_that_holds_every_code(num_codes, dtype):
    assert compact.unsigned_dtype(num_codes) == np.dtype(dtype)


@pytest.mark.parametrize('num_codes, bits', [(1, 1), (2, 1), (3, 2), (256, 8), (257, 9)])
def test_bit_width(num_codes, bits):
    assert compact.bit_width(num_codes) == bits


@pytest.mark.parametrize(
    'widths, dtype, words',
    [
        ([8], np.uint8, 1),
        ([8, 1], np.uint16, 1),
        ([32, 32], np.uint64, 1),
        ([40, 30], np.uint64, 2),
    ],
)
def test_fields_fill_words_without_overlapping(widths, dtype, words):
    word_dtype, layout = compact.field_layout(widths)
    assert word_dtype == np.dtype(dtype)
    assert layout[:, 0].max() + 1 == words
    masks = [0] * words
    for (word, shift, bits), width in zip(layout.tolist(), widths):
        field = ((1 << bits) - 1) << shift
        assert bits == width and shift + bits <= 64 and not masks[word] & field
        masks[word] |= field


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


def _pack(columns, encoders, errors, holdout):
    return compact.EncodedBatch.pack(
        beam_slices.encode_columns(columns, encoders, fine=True), errors, holdout, encoders
    )


def _assert_round_trip(batch, columns, encoders, errors, holdout):
    np.testing.assert_array_equal(
        batch.fine(), beam_slices.encode_columns(columns, encoders, fine=True)
    )
    np.testing.assert_array_equal(batch.codes(), beam_slices.encode_columns(columns, encoders))
    np.testing.assert_array_equal(batch.errors, errors)
    np.testing.assert_array_equal(batch.holdout, holdout)


def test_a_row_takes_the_bits_of_its_codes_and_flags():
    """Two features of 8 categories and the two flags fill a byte; a third feature of two
    categories takes a ninth bit, and the row two bytes."""
    rng = np.random.default_rng(4)
    rows = 5_000
    names = ['a', 'b', 'c']
    columns = {n: np.array(list('abcdefgh'), dtype=object)[rng.integers(0, 8, rows)] for n in names}
    columns['c'] = np.where(columns['c'] < 'e', 'yes', 'no').astype(object)
    encoders = [binning.categorical_encoder(n, {v: 1 for v in set(columns[n])}) for n in names]
    errors, holdout = rng.integers(0, 2, rows), rng.random(rows) < 0.5
    for features, dtype in [(2, np.uint8), (3, np.uint16)]:
        batch = _pack(columns, encoders[:features], errors, holdout)
        assert batch.words.dtype == dtype and batch.words.shape == (rows, 1)
        _assert_round_trip(batch, columns, encoders[:features], errors, holdout)
    # Features left out of slicing (no code; encode gives 0) take a bit, even all of them.
    left_out = [binning.left_out_encoder(n, 'constant') for n in names]
    for chosen in (left_out, [encoders[0], left_out[1]]):
        _assert_round_trip(
            _pack(columns, chosen, errors, holdout), columns, chosen, errors, holdout
        )


def test_fine_codes_round_trip_across_words_and_the_byte_boundary_of_sub_bins():
    """Sixteen bins of sixteen sub-bins take a byte until a value is missing (257 codes);
    ten such features need two 64-bit words."""
    rng = np.random.default_rng(5)
    rows = 5_000
    columns = {f'x{i}': _values(rng, rows, 0.05 * (i % 2)) for i in range(10)}
    encoders = [_numeric(v, np.isnan(v).sum(), name=n) for n, v in columns.items()]
    assert [compact.num_fine_codes(e) for e in encoders[:2]] == [256, 257]
    errors, holdout = rng.integers(0, 2, rows), rng.random(rows) < 0.5
    assert _pack(columns, encoders[:1], errors, holdout).fine().dtype == np.uint8
    batch = _pack(columns, encoders, errors, holdout)
    assert batch.fine().dtype == np.uint16
    assert batch.words.dtype == np.uint64 and batch.words.shape == (rows, 2)
    _assert_round_trip(batch, columns, encoders, errors, holdout)


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
    assert batch.words.nbytes * 3 == fine.nbytes  # 18 bits a row, not three int32

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
        ranges.count_ranges(batch.codes(), batch.fine(), batch.errors, batch.holdout, jobs),
        ranges.count_ranges(codes, fine, errors, holdout, jobs),
    )
    conditions = ranges.refine(
        state, encoders, jobs, ranges.count_ranges(codes, fine, errors, holdout, jobs)
    )
    got = selection.PatternTable.count(batch.fine(), batch.errors, batch.holdout, conditions)
    expected = selection.PatternTable.count(fine, errors, holdout, conditions)
    np.testing.assert_array_equal(got.patterns, expected.patterns)
    np.testing.assert_array_equal(got.counts, expected.counts)
