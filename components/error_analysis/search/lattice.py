"""Exact SliceLine search for the data slices where a model fails most.

SliceLine (Sagadeeva & Boehm, SIGMOD 2021) scores a slice S (a conjunction of
predicates "feature = code", at most one per feature) by

  score(S) = alpha * ((e_S / |S|) / e_avg - 1) - (1 - alpha) * (n / |S| - 1)

and enumerates the lattice level by level (level = number of predicates),
pruning with minimum support and score upper bounds, which keeps the top-K
exact. This module is pure numpy and split into step functions so that the
in-memory driver `find_slices` and the Beam pipeline (beam_slices.py) run the
same logic:

  state = initial_state(cardinalities, config)
  for _ in range(config.max_predicates):
    candidates = generate_candidates(state)
    counts = sum(count_candidates(codes, errors, holdout, candidates)
                 for each batch of rows)
    state = next_level(state, candidates, counts)
  result = summarize(state, encoders)

Rows are split into a search half and a hold-out half by a hash of their
example id: slices are found on the search half and checked on the other.
"""

import dataclasses
import math
import zlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from blindspot.error_analysis.search import stats

# Columns of the count arrays: search half rows/errors, hold-out rows/errors.
SEARCH_SIZE, SEARCH_ERRORS, HOLDOUT_SIZE, HOLDOUT_ERRORS = range(4)
# Feature sets with more (cells x 4) than this are counted with np.unique
# instead of a dense np.bincount.
_MAX_DENSE_CELLS = 1 << 22
# Slack for comparing floating point upper bounds with scores: pruning a
# little less never changes the result.
_BOUND_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class SliceFinderConfig:
    """Search parameters; built from the component's Settings (settings.py holds the
    defaults and help of the user-facing ones).

    Attributes:
      max_predicates: most predicates per slice.
      min_slice_size: smallest slice, as a fraction of the search half if < 1,
        else a row count.
      num_slices: slices to report after removing redundant ones.
      significance: family-wise level of the hold-out check (Bonferroni) and the
        level of the dominance test.
      alpha: weight of the error-rate term vs the size term of the score.
    """

    max_predicates: int
    min_slice_size: float
    num_slices: int
    significance: float
    alpha: float = 0.95

    def __post_init__(self):
        if not 0 < self.alpha <= 1:
            raise ValueError(f'alpha must be in (0, 1], got {self.alpha}')
        if self.max_predicates < 1 or self.num_slices < 1 or self.min_slice_size <= 0:
            raise ValueError(f'invalid config {self}')

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> 'SliceFinderConfig':
        """From an object with the setting attributes (settings.Settings)."""
        values = {
            name: getattr(settings, name)
            for name in ('max_predicates', 'min_slice_size', 'num_slices', 'significance')
        }
        return cls(**{**values, **overrides})

    # Candidates kept by the search for selection, whatever num_slices is: dominated supersets
    # never take a place (see next_level), so a second failure is not crowded out.
    search_k = 64

    def min_support_rows(self, search_rows: int) -> int:
        if self.min_slice_size < 1:
            return max(1, math.ceil(self.min_slice_size * search_rows))
        return int(self.min_slice_size)


@dataclasses.dataclass(frozen=True)
class ColumnBatch:
    """A batch of rows to analyse.

    Attributes:
      columns: raw values per feature: float arrays (NaN = missing) or object
        arrays of str (None or '' = missing).
      errors: 1 where the model was wrong, else 0.
      example_ids: stable id per row; decides search vs hold-out half.
    """

    columns: Dict[str, np.ndarray]
    errors: np.ndarray
    example_ids: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.errors)


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Slices to count at one level, grouped by feature set.

    Candidates [group_starts[g], group_starts[g+1]) use the features
    feature_sets[g]; cells[i] is candidate i's mixed-radix cell in the joint
    table of its feature set (first feature most significant).
    """

    level: int
    predicates: np.ndarray  # (k, level) sorted predicate ids
    feature_sets: np.ndarray  # (g, level)
    group_starts: np.ndarray  # (g + 1,)
    cells: np.ndarray  # (k,)
    cardinalities: np.ndarray  # (num_features,)

    @property
    def size(self) -> int:
        return len(self.predicates)


@dataclasses.dataclass(frozen=True)
class SearchState:
    """Everything one level of the search hands to the next.

    Predicate ids number "feature = code" pairs: offsets[f] + code. Slices are
    rows of sorted predicate ids; top-K rows are padded with -1.
    """

    config: SliceFinderConfig
    cardinalities: np.ndarray  # (num_features,) codes per feature
    level: int  # last level counted
    min_support_rows: int
    totals: np.ndarray  # (4,) counts of all rows
    value_counts: np.ndarray  # (num_predicates, 4) level-1 counts
    frontier: np.ndarray  # (m, level) slices to expand, sorted
    frontier_counts: np.ndarray  # (m, 4)
    top_predicates: np.ndarray  # (<= search_k, max_predicates), best first
    top_counts: np.ndarray  # (<= search_k, 4)
    top_scores: np.ndarray  # (<= search_k,)
    # (candidates counted, slices kept for expansion) per level.
    level_sizes: tuple[tuple[int, int], ...]

    @property
    def num_predicates(self) -> int:
        return int(self.cardinalities.sum())

    @property
    def average_error(self) -> float:
        return float(self.totals[SEARCH_ERRORS] / max(self.totals[SEARCH_SIZE], 1))

    @property
    def threshold(self) -> float:
        """Score a slice's children must be able to beat to be searched: the K-th best once
        top-K is full, else 0 (SliceLine's floor). A counted slice below 0 can still be
        kept (see next_level); only the search for more of them stops there."""
        if len(self.top_scores) < self.config.search_k:
            return 0.0
        return float(self.top_scores[-1])


# ---------------------------------------------------------------------------
# Scores and bounds.


def slice_scores(
    sizes: np.ndarray, errors: np.ndarray, total_rows: int, average_error: float, alpha: float
) -> np.ndarray:
    """SliceLine score; -inf for empty slices."""
    sizes = np.asarray(sizes, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        scores = alpha * ((errors / sizes) / average_error - 1) - (1 - alpha) * (
            total_rows / sizes - 1
        )
    return np.where(sizes > 0, scores, -np.inf)


def score_upper_bounds(
    size_bounds: np.ndarray,
    error_bounds: np.ndarray,
    min_slice_size: int,
    total_rows: int,
    average_error: float,
    alpha: float,
) -> np.ndarray:
    """Largest score any slice of size <= size_bounds, errors <= error_bounds.

    Errors are 0/1, so a slice of size s has at most min(s, error_bound)
    errors. The score is monotone between the probe points min_slice_size,
    max(error_bound, min_slice_size) and size_bound (SliceLine's score_ub), so
    its maximum over [min_slice_size, size_bound] is at one of them.
    """
    size_bounds = np.asarray(size_bounds, dtype=np.float64)
    error_bounds = np.asarray(error_bounds, dtype=np.float64)
    probes = np.stack(
        [
            np.full_like(size_bounds, float(min_slice_size)),
            np.maximum(error_bounds, min_slice_size),
            size_bounds,
        ]
    )
    scores = slice_scores(
        probes, np.minimum(probes, error_bounds), total_rows, average_error, alpha
    )
    return scores.max(axis=0)


# ---------------------------------------------------------------------------
# Step functions shared by the in-memory driver and the Beam pipeline.


def initial_state(cardinalities: Sequence[int], config: SliceFinderConfig) -> SearchState:
    """State before level 1; cardinalities: codes per feature."""
    cardinalities = np.asarray(cardinalities, dtype=np.int64)
    num_predicates = int(cardinalities.sum())
    if max(num_predicates, 2) ** config.max_predicates >= 2**62:
        raise ValueError(
            f'{num_predicates} predicates are too many for max_predicates={config.max_predicates}'
        )
    no_counts = np.zeros((0, 4), dtype=np.int64)
    return SearchState(
        config=config,
        cardinalities=cardinalities,
        level=0,
        min_support_rows=0,
        totals=np.zeros(4, dtype=np.int64),
        value_counts=no_counts,
        frontier=np.zeros((0, 0), dtype=np.int32),
        frontier_counts=no_counts,
        top_predicates=np.zeros((0, config.max_predicates), np.int32),
        top_counts=no_counts,
        top_scores=np.zeros(0),
        level_sizes=(),
    )


def holdout_mask(example_ids: np.ndarray) -> np.ndarray:
    """True for rows in the hold-out half: parity of crc32 of the example id.

    Stable across runs, machines and batchings, unlike a random split.
    """
    example_ids = np.asarray(example_ids)
    if example_ids.dtype.kind == 'U':  # text: the common case, without a call per id
        as_bytes = map(str.encode, example_ids.tolist())
    else:
        as_bytes = map(_id_bytes, example_ids.tolist())
    hashes = np.fromiter(
        map(zlib.crc32, as_bytes),
        dtype=np.uint32,
        count=len(example_ids),
    )
    return (hashes & 1).astype(bool)


def _id_bytes(example_id: Any) -> bytes:
    if isinstance(example_id, bytes):
        return example_id
    return str(example_id).encode('utf-8')


def level_one_candidates(cardinalities: np.ndarray) -> Candidates:
    """Every single predicate "feature = code"."""
    num_predicates = int(np.sum(cardinalities))
    return make_candidates(np.arange(num_predicates, dtype=np.int32)[:, None], cardinalities)


def make_candidates(predicates: np.ndarray, cardinalities: np.ndarray) -> Candidates:
    """Groups slices (rows of sorted predicate ids) by feature set for counting."""
    cardinalities = np.asarray(cardinalities, dtype=np.int64)
    predicates = np.asarray(predicates, dtype=np.int32)
    level = predicates.shape[1]
    features, values = split_predicates(predicates, cardinalities)
    num_features = len(cardinalities)
    set_keys = _radix_keys(features, num_features)
    cells = np.zeros(len(predicates), dtype=np.int64)
    for column in range(level):
        cells = cells * cardinalities[features[:, column]] + values[:, column]
    order = np.lexsort((cells, set_keys))
    set_keys = set_keys[order]
    starts = np.flatnonzero(np.diff(set_keys, prepend=-1))
    return Candidates(
        level=level,
        predicates=predicates[order],
        feature_sets=features[order][starts].astype(np.int32),
        group_starts=np.r_[starts, len(order)].astype(np.int64),
        cells=cells[order],
        cardinalities=cardinalities,
    )


def generate_candidates(state: SearchState) -> Candidates:
    """Candidates of level state.level + 1.

    A candidate is generated only if all its parents (drop one predicate) are
    in the frontier (size >= min support, errors > 0, bound > threshold), and
    only if its own score bound (from the parents' minimum size and errors)
    beats the current threshold. Apriori join: two frontier slices that share
    all but their last predicate give one candidate.
    """
    if state.level == 0:
        return level_one_candidates(state.cardinalities)
    level = state.level + 1
    frontier = state.frontier
    if level > state.config.max_predicates or len(frontier) < 2:
        return make_candidates(np.zeros((0, level), np.int32), state.cardinalities)
    first, second = _prefix_join_pairs(frontier)
    last_features, _ = split_predicates(frontier[:, -1], state.cardinalities)
    distinct = last_features[first] != last_features[second]
    first, second = first[distinct], second[distinct]
    joined = np.concatenate([frontier[first], frontier[second, -1:]], axis=1)

    keys = _radix_keys(frontier, state.num_predicates)
    sizes = np.minimum(
        state.frontier_counts[first, SEARCH_SIZE], state.frontier_counts[second, SEARCH_SIZE]
    )
    errors = np.minimum(
        state.frontier_counts[first, SEARCH_ERRORS], state.frontier_counts[second, SEARCH_ERRORS]
    )
    has_all_parents = np.ones(len(joined), dtype=bool)
    for dropped in range(level - 2):
        parent_keys = _radix_keys(np.delete(joined, dropped, axis=1), state.num_predicates)
        position = np.minimum(np.searchsorted(keys, parent_keys), len(keys) - 1)
        has_all_parents &= keys[position] == parent_keys
        sizes = np.minimum(sizes, state.frontier_counts[position, SEARCH_SIZE])
        errors = np.minimum(errors, state.frontier_counts[position, SEARCH_ERRORS])
    bounds = _bounds(state, sizes, errors)
    keep = has_all_parents & (bounds > state.threshold - _BOUND_TOLERANCE)
    return make_candidates(joined[keep], state.cardinalities)


def count_candidates(
    codes: np.ndarray, errors: np.ndarray, holdout: np.ndarray, candidates: Candidates
) -> np.ndarray:
    """Counts rows and errors of each candidate in a batch, in both halves.

    For each feature set, every row gets one integer: the mixed-radix cell of
    its codes with the (hold-out, error) flags on top; one np.bincount then
    counts all cells and the candidates read theirs. Cost O(rows x feature
    sets), memory independent of the number of candidates.

    Args:
      codes: (rows, features) codes from the FeatureEncoders.
      errors: (rows,) 0/1.
      holdout: (rows,) True for hold-out rows.
      candidates: from generate_candidates.

    Returns:
      (candidates.size, 4) int64: search size, search errors, hold-out size,
      hold-out errors.
    """
    flag_counts = np.zeros((candidates.size, 4), dtype=np.int64)
    if candidates.size == 0 or len(codes) == 0:
        return flag_counts
    codes = np.asarray(codes)
    # Features are widened to int64 one at a time, when a feature set first reads them.
    columns: Dict[int, np.ndarray] = {}
    flags = 2 * np.asarray(holdout, np.int64) + np.asarray(errors, np.int64)
    cardinalities = candidates.cardinalities
    # Feature sets are sorted, so consecutive ones share prefixes: the code of
    # each prefix is kept (one array per depth) and reused.
    prefix_features: List[tuple] = [()] * candidates.level
    prefix_codes: List[np.ndarray] = [flags] * candidates.level
    for group, feature_set in enumerate(candidates.feature_sets.tolist()):
        combined = flags
        for depth, feature in enumerate(feature_set):
            prefix = tuple(feature_set[: depth + 1])
            if prefix_features[depth] != prefix:
                prefix_features[depth] = prefix
                prefix_codes[depth] = combined * cardinalities[feature]
                if feature not in columns:
                    columns[feature] = codes[:, feature].astype(np.int64)
                prefix_codes[depth] += columns[feature]
            combined = prefix_codes[depth]
        num_cells = int(np.prod(cardinalities[feature_set]))
        start, end = candidates.group_starts[group : group + 2]
        # Code of (flag, cell) is flag * num_cells + cell.
        targets = candidates.cells[start:end, None] + num_cells * np.arange(4)
        flag_counts[start:end] = _count_codes(combined, 4 * num_cells, targets)
    return to_search_holdout(flag_counts)


def _count_codes(combined: np.ndarray, num_codes: int, targets: np.ndarray) -> np.ndarray:
    """How many times each target code occurs in combined."""
    if num_codes <= _MAX_DENSE_CELLS:
        return np.bincount(combined, minlength=num_codes)[targets]
    distinct, occurrences = np.unique(combined, return_counts=True)
    position = np.minimum(np.searchsorted(distinct, targets), len(distinct) - 1)
    return np.where(distinct[position] == targets, occurrences[position], 0)


def to_search_holdout(flag_counts: np.ndarray) -> np.ndarray:
    """Per-flag counts (search ok, search error, hold-out ok, hold-out error)
    to (search size, search errors, hold-out size, hold-out errors)."""
    return np.stack(
        [
            flag_counts[:, 0] + flag_counts[:, 1],
            flag_counts[:, 1],
            flag_counts[:, 2] + flag_counts[:, 3],
            flag_counts[:, 3],
        ],
        axis=1,
    )


def next_level(
    state: SearchState, candidates: Candidates, counts: Optional[np.ndarray]
) -> SearchState:
    """Folds one level's counts into the state: top-K and the next frontier.

    counts may be None when there were no rows (an empty Beam combine).
    """
    if counts is None:
        counts = np.zeros((candidates.size, 4), dtype=np.int64)
    config = state.config
    if candidates.level == 1:
        features, _ = split_predicates(candidates.predicates[:, 0], state.cardinalities)
        # Every row has exactly one code per feature, so any feature's level-1
        # counts add up to the totals.
        totals = (
            counts[features == features[0]].sum(axis=0) if len(features) else np.zeros(4, np.int64)
        )
        state = dataclasses.replace(
            state,
            totals=totals,
            value_counts=counts,
            min_support_rows=config.min_support_rows(int(totals[SEARCH_SIZE])),
        )
    sizes = counts[:, SEARCH_SIZE]
    errors = counts[:, SEARCH_ERRORS]
    if state.totals[SEARCH_ERRORS] == 0:  # nothing to explain
        eligible = np.zeros(candidates.size, dtype=bool)
        scores = np.zeros(candidates.size)
    else:
        scores = slice_scores(
            sizes, errors, int(state.totals[SEARCH_SIZE]), state.average_error, config.alpha
        )
        # Any score: a small slice that fails significantly can score below 0 (SliceLine's
        # size penalty) and still be the finding; significance decides, the score ranks.
        eligible = (sizes >= state.min_support_rows) & ~_dominated(state, candidates, counts)
    state = dataclasses.replace(
        state,
        **_merge_top_k(state, candidates.predicates[eligible], counts[eligible], scores[eligible]),
    )

    expandable = (sizes >= state.min_support_rows) & (errors > 0)
    if candidates.level >= config.max_predicates or state.totals[SEARCH_ERRORS] == 0:
        expandable[:] = False
    else:
        expandable &= _bounds(state, sizes, errors) > (state.threshold - _BOUND_TOLERANCE)
    frontier = candidates.predicates[expandable]
    order = np.argsort(_radix_keys(frontier, state.num_predicates), kind='stable')
    return dataclasses.replace(
        state,
        level=candidates.level,
        frontier=frontier[order],
        frontier_counts=counts[expandable][order],
        level_sizes=state.level_sizes + ((candidates.size, int(expandable.sum())),),
    )


def _dominated(state: SearchState, candidates: Candidates, counts: np.ndarray) -> np.ndarray:
    """Slices whose error rate is not significantly above that of the other rows of one of
    their parents (drop one predicate; level 1: the whole search half), on the search half.

    Such a slice only picks a corner of its parent (a real failing slice plus an unrelated
    predicate): it stays in the frontier, so the lattice below it is searched as before, but
    it takes no place among the candidates for the report.
    """
    sizes, errors = counts[:, SEARCH_SIZE], counts[:, SEARCH_ERRORS]
    if candidates.level == 1:
        parents = np.broadcast_to(state.totals[[SEARCH_SIZE, SEARCH_ERRORS]], (len(sizes), 2))
        return _not_worse_than_rest(sizes, errors, parents, state.config.significance)
    keys = _radix_keys(state.frontier, state.num_predicates)
    dominated = np.zeros(candidates.size, dtype=bool)
    for dropped in range(candidates.level):
        parent_keys = _radix_keys(
            np.delete(candidates.predicates, dropped, axis=1), state.num_predicates
        )
        position = np.minimum(np.searchsorted(keys, parent_keys), len(keys) - 1)
        parents = state.frontier_counts[position][:, [SEARCH_SIZE, SEARCH_ERRORS]]
        dominated |= _not_worse_than_rest(sizes, errors, parents, state.config.significance)
    return dominated


def _not_worse_than_rest(
    sizes: np.ndarray, errors: np.ndarray, parents: np.ndarray, significance: float
) -> np.ndarray:
    """Whether each slice fails not significantly more than the rest of its parent."""
    rest_sizes = parents[:, 0] - sizes
    p_values = stats.greater_rate_p_value(errors, sizes, parents[:, 1] - errors, rest_sizes)
    return (rest_sizes <= 0) | ~(p_values < significance)


def _merge_top_k(
    state: SearchState, predicates: np.ndarray, counts: np.ndarray, scores: np.ndarray
) -> Dict[str, Any]:
    """Best search_k of the old top-K and the new slices; ties broken by
    level, then predicate ids, so results do not depend on batching."""
    width = state.config.max_predicates
    padded = np.full((len(predicates), width), -1, dtype=np.int32)
    padded[:, : predicates.shape[1]] = predicates
    all_predicates = np.concatenate([state.top_predicates, padded])
    all_counts = np.concatenate([state.top_counts, counts])
    all_scores = np.concatenate([state.top_scores, scores])
    levels = (all_predicates >= 0).sum(axis=1)
    order = np.lexsort(tuple(all_predicates.T[::-1]) + (levels, -all_scores))
    order = order[: state.config.search_k]
    return dict(
        top_predicates=all_predicates[order],
        top_counts=all_counts[order],
        top_scores=all_scores[order],
    )


def _bounds(state: SearchState, sizes: np.ndarray, errors: np.ndarray) -> np.ndarray:
    return score_upper_bounds(
        sizes,
        errors,
        state.min_support_rows,
        int(state.totals[SEARCH_SIZE]),
        state.average_error,
        state.config.alpha,
    )


def _prefix_join_pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs i < j of lexicographically sorted rows that agree on
    every column but the last."""
    num_rows = len(rows)
    if rows.shape[1] == 1:
        group_ends = np.full(num_rows, num_rows)
    else:
        prefix = rows[:, :-1]
        new_group = np.r_[True, (prefix[1:] != prefix[:-1]).any(axis=1)]
        starts = np.flatnonzero(new_group)
        ends = np.r_[starts[1:], num_rows]
        group_ends = np.repeat(ends, np.diff(np.r_[starts, num_rows]))
    partners = group_ends - np.arange(num_rows) - 1
    first = np.repeat(np.arange(num_rows), partners)
    run_starts = np.cumsum(partners) - partners
    second = first + 1 + np.arange(len(first)) - np.repeat(run_starts, partners)
    return first, second


def split_predicates(
    predicates: np.ndarray, cardinalities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Feature and code of each predicate id (= offset of feature + code)."""
    cardinalities = np.asarray(cardinalities)
    ends = np.cumsum(cardinalities)
    features = np.searchsorted(ends, predicates, side='right')
    return features, predicates - (ends - cardinalities)[features]


def _radix_keys(rows: np.ndarray, radix: int) -> np.ndarray:
    """One int64 per row, ordered like the rows lexicographically."""
    keys = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        keys = keys * radix + rows[:, column]
    return keys
