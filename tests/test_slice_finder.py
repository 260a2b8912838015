"""Tests for blindspot.error_analysis.lattice."""

import itertools
import json

import numpy as np
import pytest

from blindspot.error_analysis.search import binning, findings, stats
from blindspot.error_analysis.search import lattice as sf
from blindspot.error_analysis.settings import Settings


def _config(**overrides):
    """The search config of the default settings, with overrides."""
    return sf.SliceFinderConfig.from_settings(Settings(), **overrides)


def _encoders(cardinalities):
    return [
        binning.FeatureEncoder(
            name=f'f{feature}',
            kind=binning.CATEGORICAL,
            labels=[f'f{feature} = {v}' for v in range(card)],
            vocabulary=[str(v) for v in range(card)],
        )
        for feature, card in enumerate(cardinalities)
    ]


def _random_data(seed, rows, cardinalities, base_rate=0.1, planted=()):
    """Random codes and errors; planted: ({feature: code}, error rate)."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, card, rows) for card in cardinalities], axis=1).astype(
        np.int32
    )
    rates = np.full(rows, base_rate)
    for predicates, rate in planted:
        inside = np.all([codes[:, f] == v for f, v in predicates.items()], axis=0)
        rates[inside] = rate
    errors = (rng.random(rows) < rates).astype(np.int8)
    holdout = sf.holdout_mask(np.array([f'{seed}-{i}' for i in range(rows)]))
    return codes, errors, holdout


def _brute_force(codes, errors, holdout, config):
    """Every slice with <= max_predicates predicates, counted on the search half.

    Returns {frozenset of (feature, code): (score, size, errors)} for the slices the
    search may keep: size >= min support, and failing significantly more than the other
    rows of each parent (drop one predicate; for one predicate, all rows).
    """
    search = ~holdout
    codes, errors = codes[search], errors[search]
    rows = len(errors)
    min_slice_size = config.min_support_rows(rows)
    counted = {frozenset(): (rows, errors.sum())}
    for level in range(1, config.max_predicates + 1):
        for features in itertools.combinations(range(codes.shape[1]), level):
            cells, inverse = np.unique(codes[:, features], axis=0, return_inverse=True)
            inverse = inverse.ravel()
            sizes = np.bincount(inverse, minlength=len(cells))
            slice_errors = np.bincount(inverse, weights=errors, minlength=len(cells))
            for cell in range(len(cells)):
                key = frozenset(zip(features, cells[cell].tolist()))
                counted[key] = (sizes[cell], slice_errors[cell])
    eligible = {}
    for key, (size, slice_errors) in counted.items():
        if not key or size < min_slice_size:
            continue
        dominated = False
        for dropped in key:
            parent_size, parent_errors = counted[key - {dropped}]
            rest = parent_size - size
            p_value = stats.greater_rate_p_value(
                slice_errors, size, parent_errors - slice_errors, rest
            )
            dominated |= rest <= 0 or not p_value < config.significance
        if not dominated:
            score = sf.slice_scores(size, slice_errors, rows, errors.mean(), config.alpha)
            eligible[key] = (float(score), size, slice_errors)
    return eligible


def _search(codes, errors, holdout, cardinalities, config):
    state = sf.initial_state(cardinalities, config)
    for _ in range(config.max_predicates):
        candidates = sf.generate_candidates(state)
        counts = sf.count_candidates(codes, errors, holdout, candidates)
        state = sf.next_level(state, candidates, counts)
    return state


def _as_feature_codes(predicate_ids, cardinalities):
    offsets = np.cumsum(cardinalities) - cardinalities
    features = np.searchsorted(np.cumsum(cardinalities), predicate_ids, 'right')
    return frozenset(zip(features.tolist(), (predicate_ids - offsets[features]).tolist()))


# (seed, rows, cardinalities, alpha, min_slice_size, max_predicates). Small rows and
# cardinalities with many equal counts give ties; high alpha fills top-K so
# that the score threshold prunes.
SEARCH_CASES = [
    (0, 3000, [4, 3, 5, 4, 2, 3], 0.95, 0.01, 3),
    (1, 2000, [3, 3, 3, 3, 3, 3, 3], 0.99, 8, 3),
    (2, 400, [2, 2, 2, 2, 2, 2], 0.99, 5, 3),  # many ties
    (3, 5000, [6, 5, 4, 3, 6], 0.9, 0.005, 2),
    (4, 1500, [3, 4, 3, 4, 3, 4, 3, 4], 0.98, 10, 1),
    (5, 4000, [5, 5, 5, 5, 5, 5], 0.995, 0.002, 3),
    (6, 600, [3, 2, 3, 2, 3, 2, 3], 0.999, 3, 3),  # ties, top-K full early
]


@pytest.mark.parametrize(
    'seed,rows,cardinalities,alpha,min_slice_size,max_predicates', SEARCH_CASES
)
def test_search_matches_brute_force(
    seed, rows, cardinalities, alpha, min_slice_size, max_predicates
):
    config = _config(alpha=alpha, max_predicates=max_predicates, min_slice_size=min_slice_size)
    codes, errors, holdout = _random_data(
        seed, rows, cardinalities, planted=[({0: 1, 2: 1}, 0.4), ({1: 0}, 0.2)]
    )
    state = _search(codes, errors, holdout, cardinalities, config)
    expected = _brute_force(codes, errors, holdout, config)

    # Exact among slices scoring above 0 (below, children are not searched for).
    expected_scores = sorted((s for s, _, _ in expected.values() if s > 0), reverse=True)[
        : config.search_k
    ]
    found = state.top_scores[state.top_scores > 0]
    np.testing.assert_allclose(found, expected_scores, rtol=1e-12)
    for predicate_ids, counts, score in zip(
        state.top_predicates, state.top_counts, state.top_scores
    ):
        key = _as_feature_codes(predicate_ids[predicate_ids >= 0], cardinalities)
        expected_score, size, slice_errors = expected[key]
        assert score == pytest.approx(expected_score, rel=1e-12)
        assert counts[sf.SEARCH_SIZE] == size
        assert counts[sf.SEARCH_ERRORS] == slice_errors


def test_search_prunes_the_lattice():
    cardinalities = [5] * 8
    config = _config(alpha=0.95, max_predicates=3, min_slice_size=0.01)
    codes, errors, holdout = _random_data(7, 20_000, cardinalities, planted=[({0: 1, 2: 1}, 0.5)])
    state = _search(codes, errors, holdout, cardinalities, config)
    level_three_slices = 56 * 5**3
    assert state.level_sizes[2][0] < level_three_slices / 10


def test_count_candidates_matches_masks_including_sparse_fallback():
    rng = np.random.default_rng(3)
    # 3 features of 300 codes: 4 * 300**3 cells is above the dense limit.
    cardinalities = np.array([300, 300, 300, 4])
    rows = 5000
    used_codes = np.minimum(cardinalities, 10)  # keep the counts non-trivial
    codes = np.stack([rng.integers(0, c, rows) for c in used_codes], axis=1).astype(np.int32)
    errors = rng.integers(0, 2, rows)
    holdout = rng.random(rows) < 0.5
    offsets = np.cumsum(cardinalities) - cardinalities
    for level in (1, 2, 3):
        predicates = set()
        while len(predicates) < 30:
            features = np.sort(rng.choice(4, level, replace=False))
            values = [rng.integers(0, c) for c in used_codes[features]]
            predicates.add(tuple(offsets[features] + values))
        candidates = sf.make_candidates(np.array(sorted(predicates)), cardinalities)
        if level == 3:
            assert any(
                4 * np.prod(cardinalities[feature_set]) > sf._MAX_DENSE_CELLS
                for feature_set in candidates.feature_sets
            )
        counts = sf.count_candidates(codes, errors, holdout, candidates)
        for row, predicate_ids in enumerate(candidates.predicates):
            features = np.searchsorted(np.cumsum(cardinalities), predicate_ids, 'right')
            inside = np.all(codes[:, features] == predicate_ids - offsets[features], axis=1)
            np.testing.assert_array_equal(
                counts[row],
                [
                    (inside & ~holdout).sum(),
                    (inside & ~holdout & (errors == 1)).sum(),
                    (inside & holdout).sum(),
                    (inside & holdout & (errors == 1)).sum(),
                ],
            )


def test_candidates_have_one_predicate_per_feature_and_all_parents():
    cardinalities = [3, 3, 3, 3, 3]
    config = _config(alpha=0.999, max_predicates=3, min_slice_size=2)
    codes, errors, holdout = _random_data(11, 800, cardinalities)
    state = sf.initial_state(cardinalities, config)
    for _ in range(2):
        candidates = sf.generate_candidates(state)
        state = sf.next_level(
            state, candidates, sf.count_candidates(codes, errors, holdout, candidates)
        )
    candidates = sf.generate_candidates(state)
    assert candidates.size > 0
    frontier = {tuple(row) for row in state.frontier.tolist()}
    for row in candidates.predicates.tolist():
        assert row == sorted(row)
        features = [p // 3 for p in row]
        assert len(set(features)) == 3
        assert all(parent in frontier for parent in itertools.combinations(row, 2))


def test_holdout_mask_is_stable_and_splits_in_half():
    ids = np.array([f'trip-{i}' for i in range(20_000)])
    mask = sf.holdout_mask(ids)
    assert mask.mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(mask, sf.holdout_mask(ids))
    np.testing.assert_array_equal(
        mask, sf.holdout_mask(np.array([i.encode() for i in ids], dtype=object))
    )
    np.testing.assert_array_equal(sf.holdout_mask(ids[5:10]), mask[5:10])


def test_planted_failing_slices_are_found_first_and_hold():
    cardinalities = [8] * 10
    codes, errors, holdout = _random_data(
        21, 60_000, cardinalities, planted=[({3: 2, 7: 5}, 0.6), ({1: 4}, 0.3)]
    )
    result = findings.find_slices(
        codes, errors, holdout, _encoders(cardinalities), _config(alpha=0.98)
    )
    held = [failing.text for failing in result.significant_slices]
    # Exactly the two planted slices, ranked by potential gain: the broad 30% slice holds more
    # excess errors than the small 60% one.
    assert held == ['f1 = 4', 'f3 = 2 AND f7 = 5']
    gains = [failing.potential_gain for failing in result.significant_slices]
    assert gains == sorted(gains, reverse=True)
    for failing in result.significant_slices:
        assert failing.q_value < 1e-6
    planted = result.significant_slices[1]
    assert planted.holdout_error_rate == pytest.approx(0.6, abs=0.06)
    assert planted.search_size + planted.holdout_size == np.sum(
        (codes[:, 3] == 2) & (codes[:, 7] == 5)
    )


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_nothing_holds_without_a_planted_slice(seed):
    cardinalities = [4] * 8
    codes, errors, holdout = _random_data(100 + seed, 4000, cardinalities)
    result = findings.find_slices(
        codes,
        errors,
        holdout,
        _encoders(cardinalities),
        _config(alpha=0.99, min_slice_size=20, num_slices=10),
    )
    assert result.slices  # noise does yield candidates ...
    assert not result.significant_slices  # ... but none holds up.


def test_reported_slices_are_not_supersets_of_each_other():
    cardinalities = [6] * 8
    codes, errors, holdout = _random_data(5, 30_000, cardinalities, planted=[({0: 1, 4: 2}, 0.7)])
    config = _config(alpha=0.99, min_slice_size=0.002, num_slices=10)
    # SliceLine's exact top-K would be mostly narrower copies of the planted slice; they are
    # dominated (no worse than the rest of the planted slice), so they take no place ...
    state = _search(codes, errors, holdout, cardinalities, config)
    planted = {0 * 6 + 1, 4 * 6 + 2}
    assert sum(planted < set(row[row >= 0].tolist()) for row in state.top_predicates) <= 3
    # ... and the report leads with the planted slice, with no copy of it beside it.
    result = findings.find_slices(codes, errors, holdout, _encoders(cardinalities), config)
    label_sets = [{p.label for p in failing.predicates} for failing in result.slices]
    assert label_sets[0] == {'f0 = 1', 'f4 = 2'}
    for first, second in itertools.permutations(label_sets, 2):
        assert not first < second


def test_result_to_dict_is_json_and_has_feature_value_stats():
    cardinalities = [3, 4]
    codes, errors, holdout = _random_data(8, 3000, cardinalities, planted=[({1: 2}, 0.5)])
    result = findings.find_slices(
        codes, errors, holdout, _encoders(cardinalities), _config(max_predicates=2)
    )
    as_dict = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert as_dict['overall']['rows'] == 3000
    assert as_dict['overall']['errors'] == errors.sum()
    assert [level['level'] for level in as_dict['levels']] == [1, 2]
    top = as_dict['slices'][0]
    assert top['slice'] == 'f1 = 2'
    assert top['predicates'] == [
        {'feature': 'f1', 'label': 'f1 = 2', 'low': None, 'high': None, 'is_range': False}
    ]
    assert top['slice_id'] and top['potential_gain'] > 0 and top['parent'] is None
    values = {value['label']: value for value in as_dict['feature_values']}
    assert len(values) == 7
    assert values['f1 = 2']['size'] == np.sum(codes[:, 1] == 2)
    assert values['f1 = 2']['q_value'] < 1e-6
    assert values['f1 = 2']['lift'] > 2
    assert values['f0 = 0']['q_value'] > 0.05


def test_no_errors_means_no_slices():
    cardinalities = [3, 3]
    codes, _, holdout = _random_data(9, 500, cardinalities)
    result = findings.find_slices(
        codes, np.zeros(500, np.int8), holdout, _encoders(cardinalities), _config()
    )
    assert result.slices == [] and result.errors == 0
