"""Numeric ranges chosen from the data: a candidate's fine bin widened to the run of adjacent
bins that fails most clearly.

The lattice search works on fine quantile bins (one code per bin), so a failing range that
does not line up with bin edges shows up as one or a few bins. For each numeric predicate of a
candidate, one counting pass gets the candidate's rows and errors in every bin of that feature
(the other predicates fixed); the run of bins around the found bin with the largest excess of
errors over the slice's rate across all bins, in standard errors, replaces the bin. That is the choice of a binomial
scan statistic: it grows over bins that fail like the range and stops at bins that fail like
the others, so the reported range is within about one fine bin of a true failing range. The
lattice stays bounded: it has one predicate per bin, and ranges are only formed for the
search_k candidates it keeps.

A condition is (feature, low code, high code), inclusive; an equality predicate has
low == high. A slice's conditions are padded with NO_FEATURE rows.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.error_analysis.search import binning
from components.error_analysis.search.lattice import (
    SEARCH_ERRORS,
    SEARCH_SIZE,
    Candidates,
    SearchState,
    count_candidates,
    make_candidates,
    split_predicates,
)

NO_FEATURE = -1


def _offsets(cardinalities: np.ndarray) -> np.ndarray:
    """Predicate id of code 0 of each feature."""
    return np.cumsum(cardinalities) - cardinalities


def _top_slices(state: SearchState) -> List[np.ndarray]:
    return [padded[padded >= 0] for padded in state.top_predicates]


def histogram_slices(
    state: SearchState, encoders: Sequence[binning.FeatureEncoder]
) -> List[Candidates]:
    """The slices to count for range refinement, one Candidates per level.

    For every kept slice and every predicate on a binned numeric feature (other than its
    missing code): one slice per bin of that feature, the other predicates kept.
    """
    offsets = _offsets(state.cardinalities)
    by_level: Dict[int, set] = {}
    for predicates in _top_slices(state):
        features, codes = split_predicates(predicates, state.cardinalities)
        for position, (feature, code) in enumerate(zip(features.tolist(), codes.tolist())):
            num_bins = encoders[feature].num_ordered_bins
            if code >= num_bins:
                continue
            for bin_code in range(num_bins):
                row = predicates.copy()
                row[position] = offsets[feature] + bin_code
                by_level.setdefault(len(row), set()).add(tuple(row.tolist()))
    return [
        make_candidates(np.array(sorted(rows), dtype=np.int32), state.cardinalities)
        for _, rows in sorted(by_level.items())
    ]


def count_histograms(
    codes: np.ndarray, errors: np.ndarray, holdout: np.ndarray, candidates: List[Candidates]
) -> np.ndarray:
    """count_candidates for each level, concatenated: (total candidates, 4)."""
    counts = [count_candidates(codes, errors, holdout, level) for level in candidates]
    return np.concatenate(counts) if counts else np.zeros((0, 4), np.int64)


def refine(
    state: SearchState,
    encoders: Sequence[binning.FeatureEncoder],
    candidates: List[Candidates],
    counts: np.ndarray,
) -> np.ndarray:
    """(search_k, max_predicates, 3) conditions of the kept slices, numeric bins widened to
    their best range. Slices that end up identical are kept once (first wins), so fewer rows
    than kept slices may come back."""
    if counts is None:
        counts = np.zeros((sum(c.size for c in candidates), 4), np.int64)
    counted: Dict[tuple, np.ndarray] = {}
    start = 0
    for level in candidates:
        for row, count in zip(level.predicates.tolist(), counts[start : start + level.size]):
            counted[tuple(row)] = count
        start += level.size
    offsets = _offsets(state.cardinalities)
    width = state.config.max_predicates
    result, seen = [], set()
    for predicates in _top_slices(state):
        features, codes = split_predicates(predicates, state.cardinalities)
        conditions = [[int(f), int(c), int(c)] for f, c in zip(features, codes)]
        for position, (feature, code) in enumerate(zip(features.tolist(), codes.tolist())):
            num_bins = encoders[feature].num_ordered_bins
            if code >= num_bins:
                continue
            histogram = np.zeros((num_bins, 2), dtype=np.int64)
            for bin_code in range(num_bins):
                row = predicates.copy()
                row[position] = offsets[feature] + bin_code
                count = counted.get(tuple(row.tolist()))
                if count is not None:
                    histogram[bin_code] = count[[SEARCH_SIZE, SEARCH_ERRORS]]
            low, high = best_range(histogram, int(code), state.min_support_rows)
            conditions[position][1:] = [low, high]
        key = tuple(map(tuple, conditions))
        if key in seen:
            continue
        seen.add(key)
        padded = np.full((width, 3), NO_FEATURE, dtype=np.int64)
        padded[: len(conditions)] = conditions
        result.append(padded)
    return np.array(result, dtype=np.int64).reshape(-1, width, 3)


def best_range(histogram: np.ndarray, found_bin: int, min_size: int) -> Tuple[int, int]:
    """The run of bins low..high containing found_bin whose errors exceed the slice's rate over
    all bins by the most standard errors (a binomial scan statistic); histogram is
    (bins, [rows, errors]) of the slice per bin. The whole feature range is not a range (it
    would drop the predicate): found_bin is kept then, as it is when nothing qualifies.
    """
    num_bins = len(histogram)
    sizes = np.concatenate([[0], np.cumsum(histogram[:, 0])])
    errors = np.concatenate([[0], np.cumsum(histogram[:, 1])])
    baseline = errors[-1] / max(sizes[-1], 1)
    lows, highs = np.meshgrid(np.arange(found_bin + 1), np.arange(found_bin, num_bins))
    lows, highs = lows.ravel(), highs.ravel()
    size = sizes[highs + 1] - sizes[lows]
    error = errors[highs + 1] - errors[lows]
    spread = np.sqrt(size * max(baseline * (1 - baseline), 1e-12))
    with np.errstate(divide='ignore', invalid='ignore'):
        z = (error - size * baseline) / spread
    allowed = (size >= max(min_size, 1)) & ~((lows == 0) & (highs == num_bins - 1))
    z = np.where(allowed, z, -np.inf)
    if not np.isfinite(z).any():
        return found_bin, found_bin
    best = int(np.argmax(z))
    return int(lows[best]), int(highs[best])


def condition_labels(
    conditions: np.ndarray, encoders: Sequence[binning.FeatureEncoder]
) -> List[Tuple[str, str, Optional[tuple]]]:
    """(feature name, readable predicate, (lower, upper) of a numeric range or None) per real
    condition of one slice."""
    return [
        (
            encoders[f].name,
            encoders[f].range_label(int(low), int(high)),
            encoders[f].range_bounds(int(low), int(high)),
        )
        for f, low, high in conditions.tolist()
        if f != NO_FEATURE
    ]


def condition_text(conditions: np.ndarray, encoders: Sequence[binning.FeatureEncoder]) -> str:
    """One slice's conditions as the report writes them ('a = x AND 1 <= b < 2')."""
    return ' AND '.join(label for _, label, _ in condition_labels(conditions, encoders))
