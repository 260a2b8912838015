"""What the lattice search hands the report: non-redundant failing slices, re-tested on the
hold-out half, and per-value statistics."""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from components.error_analysis.search import binning, stats
from components.error_analysis.search.lattice import (
    HOLDOUT_ERRORS,
    HOLDOUT_SIZE,
    SEARCH_ERRORS,
    SEARCH_SIZE,
    SearchState,
    SliceFinderConfig,
    count_candidates,
    generate_candidates,
    initial_state,
    next_level,
)


def select_non_redundant(
    predicates: Sequence[frozenset],
    counts: np.ndarray,
    total_size: int,
    total_errors: int,
    num_slices: int,
    significance: float,
) -> List[int]:
    """Picks up to num_slices slices from a score-ordered list, skipping repeats.

    A slice that adds predicates to an accepted one is a narrower copy of a
    better slice and is dropped. So is a narrower slice S of any listed slice T
    whose error rate is not significantly above that of T's other rows: the
    extra predicates only pick a lucky corner of T. A slice with fewer
    predicates than an accepted one T is kept only if its rows outside T still
    fail significantly more than the rest of the data; otherwise it is T plus
    dilution.

    Args:
      predicates: predicate ids of each slice, best score first.
      counts: (len(predicates), 2+) search-half size and errors per slice.
      total_size: search-half rows.
      total_errors: search-half errors.
      num_slices: most slices to return.
      significance: level of the one-sided test for the broader slices.

    Returns:
      Indices of the selected slices, best first.
    """
    accepted: List[int] = []
    for index, slice_predicates in enumerate(predicates):
        if len(accepted) == num_slices:
            break
        redundant = any(
            _no_worse_than_rest_of(counts[index], counts[broader], significance)
            for broader, broader_predicates in enumerate(predicates)
            if broader_predicates < slice_predicates
        )
        for kept in accepted:
            if predicates[kept] <= slice_predicates:
                redundant = True
            elif slice_predicates < predicates[kept]:
                rest_size = counts[index, SEARCH_SIZE] - counts[kept, SEARCH_SIZE]
                rest_errors = counts[index, SEARCH_ERRORS] - counts[kept, SEARCH_ERRORS]
                p_value = stats.greater_rate_p_value(
                    rest_errors, rest_size, total_errors - rest_errors, total_size - rest_size
                )
                redundant = p_value >= significance
            if redundant:
                break
        if not redundant:
            accepted.append(index)
    return accepted


def _no_worse_than_rest_of(narrow: np.ndarray, broad: np.ndarray, significance: float) -> bool:
    """Whether the narrow slice's error rate is not significantly above the rate
    in the rest of the broad slice that contains it (search-half counts)."""
    rest_size = broad[SEARCH_SIZE] - narrow[SEARCH_SIZE]
    if rest_size <= 0:
        return True
    p_value = stats.greater_rate_p_value(
        narrow[SEARCH_ERRORS],
        narrow[SEARCH_SIZE],
        broad[SEARCH_ERRORS] - narrow[SEARCH_ERRORS],
        rest_size,
    )
    return p_value >= significance


@dataclasses.dataclass(frozen=True)
class Predicate:
    feature: str
    label: str


@dataclasses.dataclass(frozen=True)
class FailingSlice:
    """A reported slice: found on the search half, checked on the hold-out.

    The p-value tests hold-out error rate in the slice > in the rest of the
    hold-out half; the q-value is BH-adjusted across reported slices.
    """

    predicates: List[Predicate]
    score: float
    search_size: int
    search_errors: int
    holdout_size: int
    holdout_errors: int
    holdout_error_rate: float
    holdout_error_rate_ci: tuple[float, float]
    holdout_lift: float
    p_value: float
    q_value: float
    held: bool

    @property
    def text(self) -> str:
        return ' AND '.join(predicate.label for predicate in self.predicates)

    @property
    def search_error_rate(self) -> float:
        return self.search_errors / self.search_size


@dataclasses.dataclass(frozen=True)
class FeatureValueStats:
    """One "feature = value" over all rows, tested against the other rows."""

    feature: str
    label: str
    size: int
    errors: int
    error_rate: float
    error_rate_ci: tuple[float, float]
    lift: float
    p_value: float
    q_value: float


@dataclasses.dataclass(frozen=True)
class SliceSearchResult:
    """What the search found, with the numbers needed to trust it."""

    config: SliceFinderConfig
    rows: int
    errors: int
    search_rows: int
    search_errors: int
    holdout_rows: int
    holdout_errors: int
    min_support_rows: int
    level_sizes: List[tuple[int, int]]
    slices: List[FailingSlice]
    feature_values: List[FeatureValueStats]
    feature_notes: Dict[str, str]

    @property
    def significant_slices(self) -> List[FailingSlice]:
        return [failing for failing in self.slices if failing.held]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable form (NaN becomes None)."""
        return {
            'config': dataclasses.asdict(self.config),
            'overall': {
                'rows': self.rows,
                'errors': self.errors,
                'error_rate': _json_float(self.errors / max(self.rows, 1)),
                'search_rows': self.search_rows,
                'search_errors': self.search_errors,
                'holdout_rows': self.holdout_rows,
                'holdout_errors': self.holdout_errors,
                'min_support_rows': self.min_support_rows,
            },
            'levels': [
                {'level': level, 'candidates': candidates, 'expanded': expanded}
                for level, (candidates, expanded) in enumerate(self.level_sizes, 1)
            ],
            'num_significant_slices': len(self.significant_slices),
            'slices': [
                {
                    'rank': rank,
                    'slice': failing.text,
                    'predicates': [dataclasses.asdict(p) for p in failing.predicates],
                    'score': _json_float(failing.score),
                    'search_size': failing.search_size,
                    'search_errors': failing.search_errors,
                    'search_error_rate': _json_float(failing.search_error_rate),
                    'holdout_size': failing.holdout_size,
                    'holdout_errors': failing.holdout_errors,
                    'holdout_error_rate': _json_float(failing.holdout_error_rate),
                    'holdout_error_rate_ci': [
                        _json_float(bound) for bound in failing.holdout_error_rate_ci
                    ],
                    'holdout_lift': _json_float(failing.holdout_lift),
                    'p_value': _json_float(failing.p_value),
                    'q_value': _json_float(failing.q_value),
                    'held': failing.held,
                }
                for rank, failing in enumerate(self.slices, 1)
            ],
            'feature_values': [
                {
                    **dataclasses.asdict(value),
                    'error_rate': _json_float(value.error_rate),
                    'error_rate_ci': [_json_float(bound) for bound in value.error_rate_ci],
                    'lift': _json_float(value.lift),
                    'p_value': _json_float(value.p_value),
                    'q_value': _json_float(value.q_value),
                }
                for value in self.feature_values
            ],
            'feature_notes': dict(self.feature_notes),
        }


def summarize(state: SearchState, encoders: Sequence[binning.FeatureEncoder]) -> SliceSearchResult:
    """Non-redundant top slices with hold-out checks, and per-value stats."""
    config = state.config
    names = [encoder.name for encoder in encoders for _ in encoder.labels]
    labels = [label for encoder in encoders for label in encoder.labels]
    search_rows, search_errors, holdout_rows, holdout_errors = (
        int(total) for total in state.totals
    )

    top_sets = [frozenset(row[row >= 0].tolist()) for row in state.top_predicates]
    selected = select_non_redundant(
        top_sets,
        state.top_counts,
        search_rows,
        search_errors,
        config.num_slices,
        config.significance,
    )
    counts = state.top_counts[selected]
    holdout_rates = stats.error_rate(counts[:, HOLDOUT_ERRORS], counts[:, HOLDOUT_SIZE])
    holdout_rate = holdout_errors / max(holdout_rows, 1)
    p_values = stats.greater_rate_p_value(
        counts[:, HOLDOUT_ERRORS],
        counts[:, HOLDOUT_SIZE],
        holdout_errors - counts[:, HOLDOUT_ERRORS],
        holdout_rows - counts[:, HOLDOUT_SIZE],
    )
    q_values = stats.benjamini_hochberg(p_values)
    low, high = stats.wilson_interval(counts[:, HOLDOUT_ERRORS], counts[:, HOLDOUT_SIZE])
    lifts = stats.lift(holdout_rates, holdout_rate)
    slices = []
    for row, index in enumerate(selected):
        predicate_ids = state.top_predicates[index]
        slices.append(
            FailingSlice(
                predicates=[
                    Predicate(feature=names[p], label=labels[p])
                    for p in predicate_ids[predicate_ids >= 0].tolist()
                ],
                score=float(state.top_scores[index]),
                search_size=int(counts[row, SEARCH_SIZE]),
                search_errors=int(counts[row, SEARCH_ERRORS]),
                holdout_size=int(counts[row, HOLDOUT_SIZE]),
                holdout_errors=int(counts[row, HOLDOUT_ERRORS]),
                holdout_error_rate=float(holdout_rates[row]),
                holdout_error_rate_ci=(float(low[row]), float(high[row])),
                holdout_lift=float(lifts[row]),
                p_value=float(p_values[row]),
                q_value=float(q_values[row]),
                held=bool(
                    q_values[row] < config.significance and holdout_rates[row] > holdout_rate
                ),
            )
        )
    return SliceSearchResult(
        config=config,
        rows=search_rows + holdout_rows,
        errors=search_errors + holdout_errors,
        search_rows=search_rows,
        search_errors=search_errors,
        holdout_rows=holdout_rows,
        holdout_errors=holdout_errors,
        min_support_rows=state.min_support_rows,
        level_sizes=list(state.level_sizes),
        slices=slices,
        feature_values=_feature_value_stats(state, names, labels),
        feature_notes={encoder.name: encoder.note for encoder in encoders if encoder.note},
    )


def _feature_value_stats(
    state: SearchState, names: Sequence[str], labels: Sequence[str]
) -> List[FeatureValueStats]:
    """Every observed feature value over all rows, vs the other rows."""
    if state.value_counts.size == 0:
        return []
    sizes = state.value_counts[:, SEARCH_SIZE] + state.value_counts[:, HOLDOUT_SIZE]
    errors = state.value_counts[:, SEARCH_ERRORS] + state.value_counts[:, HOLDOUT_ERRORS]
    total_size = int(state.totals[SEARCH_SIZE] + state.totals[HOLDOUT_SIZE])
    total_errors = int(state.totals[SEARCH_ERRORS] + state.totals[HOLDOUT_ERRORS])
    observed = np.flatnonzero(sizes > 0)
    sizes, errors = sizes[observed], errors[observed]
    rates = stats.error_rate(errors, sizes)
    low, high = stats.wilson_interval(errors, sizes)
    lifts = stats.lift(rates, total_errors / max(total_size, 1))
    p_values = stats.greater_rate_p_value(errors, sizes, total_errors - errors, total_size - sizes)
    q_values = stats.benjamini_hochberg(p_values)
    return [
        FeatureValueStats(
            feature=names[p],
            label=labels[p],
            size=int(sizes[i]),
            errors=int(errors[i]),
            error_rate=float(rates[i]),
            error_rate_ci=(float(low[i]), float(high[i])),
            lift=float(lifts[i]),
            p_value=float(p_values[i]),
            q_value=float(q_values[i]),
        )
        for i, p in enumerate(observed.tolist())
    ]


def _json_float(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def find_slices(
    codes: np.ndarray,
    errors: np.ndarray,
    holdout: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    config: SliceFinderConfig,
) -> SliceSearchResult:
    """In-memory search over encoded rows with the same steps as Beam.

    Args:
      codes: (rows, features) codes, column j from encoders[j].
      errors: (rows,) 0/1.
      holdout: (rows,) True for hold-out rows (see holdout_mask).
      encoders: one per column of codes, for cardinalities and labels.
      config: search parameters.
    """
    state = initial_state([encoder.cardinality for encoder in encoders], config)
    for _ in range(config.max_predicates):
        candidates = generate_candidates(state)
        state = next_level(state, candidates, count_candidates(codes, errors, holdout, candidates))
    return summarize(state, encoders)
