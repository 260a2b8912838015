"""Numeric ranges chosen from the data: a candidate's fine bin widened to the run of adjacent
bins that fails most clearly, then each edge placed inside its bin.

The lattice search works on quantile bins (one code per bin), so a failing range that does not
line up with bin edges shows up as one or a few bins. For each numeric predicate of a kept
candidate, one counting pass gets the candidate's rows and errors in every *sub-bin* of that
feature (the other predicates fixed; binning.FeatureEncoder.fine_edges split each bin into
equal-width pieces). Summed per bin, that histogram picks the run of bins around the found bin
with the largest excess of errors over the slice's rate across all bins, in standard errors (a
binomial scan statistic: it grows over bins that fail like the range and stops at bins that
fail like the others). The same statistic then places each edge at sub-bin precision, the
lower edge anywhere in the bin below the run or its first bin, the upper edge anywhere in its
last bin or the one above: a failing range is found to within a sub-bin whatever its
alignment with the bins, and the clean rows of a partly failing edge bin stay out. The lattice
stays bounded: it has one predicate per bin, and ranges are only formed for the search_k
candidates it keeps.

A condition is (feature, low, high), inclusive, in *fine* codes (FeatureEncoder.encode_fine:
the codes themselves for every feature whose bins are not split); an equality predicate has
low == high. A slice's conditions are padded with NO_FEATURE rows.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from blindspot.error_analysis.search import binning
from blindspot.error_analysis.search.lattice import (
    SEARCH_ERRORS,
    SEARCH_SIZE,
    SearchState,
    split_predicates,
    to_search_holdout,
)

NO_FEATURE = -1


def _top_slices(state: SearchState) -> List[np.ndarray]:
    return [padded[padded >= 0] for padded in state.top_predicates]


@dataclasses.dataclass(frozen=True)
class RangeJobs:
    """The histograms to count: job j counts the fine bins of feature features[j] over the
    rows that satisfy the coarse predicates others[j] (feature, code), padded with
    NO_FEATURE."""

    others: np.ndarray  # (jobs, max_predicates - 1, 2)
    features: np.ndarray  # (jobs,)
    num_bins: int  # fine bins of the widest feature: the histograms' length

    @property
    def size(self) -> int:
        return len(self.features)

    def other_predicates(self, j: int) -> tuple:
        """Job j's fixed predicates as ((feature, code), ...), as _job_key writes them."""
        return tuple((int(f), int(c)) for f, c in self.others[j].tolist() if f != NO_FEATURE)


def _job_key(features: np.ndarray, codes: np.ndarray, position: int) -> tuple:
    others = tuple(
        (int(f), int(c)) for i, (f, c) in enumerate(zip(features, codes)) if i != position
    )
    return others, int(features[position])


def _numeric_positions(
    features: np.ndarray, codes: np.ndarray, encoders: Sequence[binning.FeatureEncoder]
) -> List[int]:
    """Positions of a slice's predicates that are a bin of ordered bins (not "missing")."""
    return [i for i, (f, c) in enumerate(zip(features, codes)) if c < encoders[f].num_ordered_bins]


def range_jobs(state: SearchState, encoders: Sequence[binning.FeatureEncoder]) -> RangeJobs:
    """One job per distinct (other predicates, numeric feature) among the kept slices."""
    keys = set()
    for predicates in _top_slices(state):
        features, codes = split_predicates(predicates, state.cardinalities)
        for position in _numeric_positions(features, codes, encoders):
            keys.add(_job_key(features, codes, position))
    keys = sorted(keys)
    width = max(state.config.max_predicates - 1, 1)
    others = np.full((len(keys), width, 2), NO_FEATURE, dtype=np.int64)
    for j, (pairs, _) in enumerate(keys):
        if pairs:
            others[j, : len(pairs)] = pairs
    features = np.array([feature for _, feature in keys], dtype=np.int64)
    num_bins = max((encoders[f].num_fine_bins for f in features.tolist()), default=0)
    return RangeJobs(others, features, num_bins)


def count_ranges(
    codes: np.ndarray,
    fine: np.ndarray,
    errors: np.ndarray,
    holdout: np.ndarray,
    jobs: RangeJobs,
) -> np.ndarray:
    """(jobs, num_bins, 4): per job and fine bin, search size, search errors, hold-out size,
    hold-out errors of the rows matching the job's other predicates. `codes` and `fine` are
    the batch's codes and fine codes (encode_columns)."""
    counts = np.zeros((jobs.size, jobs.num_bins * 4), dtype=np.int64)
    if not jobs.size or not len(codes):
        return counts.reshape(jobs.size, jobs.num_bins, 4)
    flags = 2 * np.asarray(holdout, np.int64) + np.asarray(errors, np.int64)
    masks: Dict[tuple, np.ndarray] = {}
    for j in range(jobs.size):
        pairs = jobs.other_predicates(j)
        mask = masks.get(pairs)
        if mask is None:
            mask = np.ones(len(codes), dtype=bool)
            for feature, code in pairs:
                mask &= codes[:, feature] == code
            masks[pairs] = mask
        bins = fine[mask, jobs.features[j]].astype(np.int64)
        ordered = (bins >= 0) & (bins < jobs.num_bins)
        counts[j] = np.bincount(
            4 * bins[ordered] + flags[mask][ordered], minlength=4 * jobs.num_bins
        )
    return to_search_holdout(counts.reshape(-1, 4)).reshape(jobs.size, jobs.num_bins, 4)


def refine(
    state: SearchState,
    encoders: Sequence[binning.FeatureEncoder],
    jobs: RangeJobs,
    counts: Optional[np.ndarray],
) -> np.ndarray:
    """(<= search_k, max_predicates, 3) conditions of the kept slices in fine codes, numeric
    bins widened to their best range with sub-bin edges. Slices that end up identical are kept
    once (first wins), so fewer rows than kept slices may come back."""
    if counts is None:
        counts = np.zeros((jobs.size, jobs.num_bins, 4), np.int64)
    index = {}
    for j in range(jobs.size):
        index[jobs.other_predicates(j), int(jobs.features[j])] = j
    width = state.config.max_predicates
    result, seen = [], set()
    for predicates in _top_slices(state):
        features, codes = split_predicates(predicates, state.cardinalities)
        conditions = [[int(f), *encoders[f].fine_span(int(c))] for f, c in zip(features, codes)]
        for position in _numeric_positions(features, codes, encoders):
            encoder = encoders[features[position]]
            histogram = counts[index[_job_key(features, codes, position)]]
            fine = histogram[: encoder.num_fine_bins][:, [SEARCH_SIZE, SEARCH_ERRORS]]
            conditions[position][1:] = range_edges(
                fine, encoder, int(codes[position]), state.min_support_rows
            )
        key = tuple(map(tuple, conditions))
        if key in seen:
            continue
        seen.add(key)
        padded = np.full((width, 3), NO_FEATURE, dtype=np.int64)
        padded[: len(conditions)] = conditions
        result.append(padded)
    return np.array(result, dtype=np.int64).reshape(-1, width, 3)


def range_edges(
    fine: np.ndarray, encoder: binning.FeatureEncoder, found_bin: int, min_size: int
) -> Tuple[int, int]:
    """Fine codes (low, high) of the best range around found_bin: best_range over the bins,
    then each edge moved within its bin and the next one out (fine: (fine bins, [rows,
    errors]) of the slice)."""
    spans = [encoder.fine_span(code) for code in range(encoder.num_ordered_bins)]
    coarse = np.array([fine[low : high + 1].sum(axis=0) for low, high in spans])
    low, high = best_range(coarse, found_bin, min_size)
    lows = np.arange(spans[max(low - 1, 0)][0], spans[low][1] + 1)
    highs = np.arange(spans[high][0], spans[min(high + 1, len(spans) - 1)][1] + 1)
    best = _best_run(fine, lows, highs, min_size)
    return best if best is not None else (spans[low][0], spans[high][1])


def _best_run(
    histogram: np.ndarray, lows: np.ndarray, highs: np.ndarray, min_size: int
) -> Optional[Tuple[int, int]]:
    """The run lows[i]..highs[j] (low <= high, not every bin) of histogram (bins, [rows,
    errors]) whose errors exceed the rate over all bins by the most standard errors; None if
    no run qualifies."""
    num_bins = len(histogram)
    sizes = np.concatenate([[0], np.cumsum(histogram[:, 0])])
    errors = np.concatenate([[0], np.cumsum(histogram[:, 1])])
    baseline = errors[-1] / max(sizes[-1], 1)
    low, high = np.meshgrid(lows, highs)
    low, high = low.ravel(), high.ravel()
    size = sizes[high + 1] - sizes[low]
    error = errors[high + 1] - errors[low]
    spread = np.sqrt(np.maximum(size, 0) * max(baseline * (1 - baseline), 1e-12))
    with np.errstate(divide='ignore', invalid='ignore'):
        z = (error - size * baseline) / spread
    allowed = (low <= high) & (size >= max(min_size, 1)) & ~((low == 0) & (high == num_bins - 1))
    z = np.where(allowed, z, -np.inf)
    if not np.isfinite(z).any():
        return None
    best = int(np.argmax(z))
    return int(low[best]), int(high[best])


def best_range(histogram: np.ndarray, found_bin: int, min_size: int) -> Tuple[int, int]:
    """The run of bins low..high containing found_bin whose errors exceed the slice's rate over
    all bins by the most standard errors (a binomial scan statistic); histogram is
    (bins, [rows, errors]) of the slice per bin. The whole feature range is not a range (it
    would drop the predicate): found_bin is kept then, as it is when nothing qualifies.
    """
    best = _best_run(
        histogram, np.arange(found_bin + 1), np.arange(found_bin, len(histogram)), min_size
    )
    return best if best is not None else (found_bin, found_bin)


def condition_labels(
    conditions: np.ndarray, encoders: Sequence[binning.FeatureEncoder]
) -> List[Tuple[str, str, Optional[tuple]]]:
    """(feature name, readable predicate, (lower, upper) of a numeric range or None) per real
    condition of one slice."""
    return [
        (
            encoders[f].name,
            encoders[f].fine_range_label(int(low), int(high)),
            encoders[f].fine_range_bounds(int(low), int(high)),
        )
        for f, low, high in conditions.tolist()
        if f != NO_FEATURE
    ]


def condition_text(conditions: np.ndarray, encoders: Sequence[binning.FeatureEncoder]) -> str:
    """One slice's conditions as the report writes them ('a = x AND 1 <= b < 2')."""
    return ' AND '.join(label for _, label, _ in condition_labels(conditions, encoders))
