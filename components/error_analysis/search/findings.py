"""From the lattice search to the report's findings: refined numeric ranges (ranges.py),
overlap-aware selection re-tested on the hold-out half (selection.py), impact numbers and
per-value statistics. The in-memory driver find_slices runs the same steps as the Beam
pipeline (beam/slices.py):

    state = initial_state(...); for each level: generate, count, next_level
    jobs = ranges.range_jobs(state, encoders)                     # one counting pass
    conditions = ranges.refine(state, encoders, jobs, counts)     # in fine codes
    table = selection.PatternTable.count(fine codes, ...)         # one counting pass
    result = summarize(state, encoders, conditions, table)
"""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from blindspot.error_analysis.search import binning, identity, lattice, ranges, selection, stats
from blindspot.error_analysis.search.lattice import (
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


@dataclasses.dataclass(frozen=True)
class Predicate:
    feature: str
    label: str
    # A numeric range's bounds (None: open end); both None for a category or "missing".
    low: Optional[float] = None
    high: Optional[float] = None
    is_range: bool = False


@dataclasses.dataclass(frozen=True)
class FailingSlice:
    """A reported slice: found on the search half, checked on the hold-out half.

    size, errors and the rates are over all analysed rows; error_rate_outside is the rate of
    every other row. potential_gain = (error_rate - error_rate_outside) x size / all rows: the
    accuracy gained if the slice failed like the rest. The p-value is the hold-out test that
    kept it (its rows outside earlier findings vs the rows outside all of them; a refinement:
    vs the rest of its parent); q_value is that p-value Bonferroni-adjusted. The added_*
    numbers count a top-level finding only on the rows it adds beyond the findings above it.
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
    error_rate_outside: float
    error_share: float
    potential_gain: float
    parent: Optional[str] = None
    # Top-level findings only: what it adds beyond the findings listed above it (its rows not
    # in them), gain counted against the rows outside every finding, so the added shares and
    # gains of all findings sum to those of their union.
    added_size: Optional[int] = None
    added_errors: Optional[int] = None
    added_error_share: Optional[float] = None
    added_potential_gain: Optional[float] = None
    # The same slice found again with other edges (a finding only): listed with it.
    variants: List[str] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        return ' AND '.join(predicate.label for predicate in self.predicates)

    @property
    def size(self) -> int:
        return self.search_size + self.holdout_size

    @property
    def errors(self) -> int:
        return self.search_errors + self.holdout_errors

    @property
    def search_error_rate(self) -> float:
        return self.search_errors / self.search_size if self.search_size else float('nan')


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
    bounds: Optional[tuple] = None  # (low, high) of a numeric bin (None: open end), else None


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
            'config': {**dataclasses.asdict(self.config), 'search_k': self.config.search_k},
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
                    'slice_id': identity.slice_id(
                        [dataclasses.asdict(p) for p in failing.predicates]
                    ),
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
                    'size': failing.size,
                    'errors': failing.errors,
                    'error_rate': _json_float(failing.errors / max(failing.size, 1)),
                    'error_rate_outside': _json_float(failing.error_rate_outside),
                    'error_share': _json_float(failing.error_share),
                    'potential_gain': _json_float(failing.potential_gain),
                    'parent': failing.parent,
                    'added_size': failing.added_size,
                    'added_errors': failing.added_errors,
                    'added_error_share': _optional_float(failing.added_error_share),
                    'added_potential_gain': _optional_float(failing.added_potential_gain),
                    'variants': list(failing.variants),
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


def summarize(
    state: SearchState,
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
    table: selection.PatternTable,
) -> SliceSearchResult:
    """Findings chosen from the refined candidates (selection.py), with per-value stats."""
    config = state.config
    totals = state.totals
    search_rows, search_errors, holdout_rows, holdout_errors = (int(t) for t in totals)
    rows, errors = search_rows + holdout_rows, search_errors + holdout_errors
    chosen = selection.select(
        table,
        conditions,
        totals,
        config.significance,
        config.num_slices,
        ordered_bins=[encoder.num_fine_bins for encoder in encoders],
    )
    texts = [ranges.condition_text(c, encoders) for c in conditions]
    holdout_rate = holdout_errors / max(holdout_rows, 1)
    added = _added_impact(table, chosen, rows, errors)
    duplicates = _duplicate_date_parts(state, encoders)
    slices = []
    for entry in _listing_order(chosen, list(added)):
        counts = entry.counts
        size = int(counts[SEARCH_SIZE] + counts[HOLDOUT_SIZE])
        slice_errors = int(counts[SEARCH_ERRORS] + counts[HOLDOUT_ERRORS])
        holdout_error_rate = float(stats.error_rate(counts[HOLDOUT_ERRORS], counts[HOLDOUT_SIZE]))
        low, high = stats.wilson_interval(counts[HOLDOUT_ERRORS], counts[HOLDOUT_SIZE])
        rest = rows - size
        slices.append(
            FailingSlice(
                predicates=[
                    Predicate(
                        feature=name,
                        label=label,
                        low=bounds[0] if bounds else None,
                        high=bounds[1] if bounds else None,
                        is_range=bounds is not None,
                    )
                    for name, label, bounds in ranges.condition_labels(
                        conditions[entry.index], encoders
                    )
                ],
                score=float(
                    lattice.slice_scores(
                        counts[SEARCH_SIZE],
                        counts[SEARCH_ERRORS],
                        search_rows,
                        state.average_error,
                        config.alpha,
                    )
                ),
                search_size=int(counts[SEARCH_SIZE]),
                search_errors=int(counts[SEARCH_ERRORS]),
                holdout_size=int(counts[HOLDOUT_SIZE]),
                holdout_errors=int(counts[HOLDOUT_ERRORS]),
                holdout_error_rate=holdout_error_rate,
                holdout_error_rate_ci=(float(low), float(high)),
                holdout_lift=float(stats.lift(holdout_error_rate, holdout_rate)),
                p_value=entry.p_value,
                q_value=entry.adjusted_p_value,
                held=entry.held,
                error_rate_outside=(errors - slice_errors) / rest if rest else float('nan'),
                error_share=slice_errors / errors if errors else 0.0,
                potential_gain=float(selection.potential_gain(size, slice_errors, rows, errors)),
                parent=texts[entry.parent] if entry.parent is not None else None,
                variants=[texts[i] for i in entry.variants],
                **added.get(entry.index, {}),
            )
        )
    return SliceSearchResult(
        config=config,
        slices=slices,
        rows=rows,
        errors=errors,
        search_rows=search_rows,
        search_errors=search_errors,
        holdout_rows=holdout_rows,
        holdout_errors=holdout_errors,
        min_support_rows=state.min_support_rows,
        level_sizes=list(state.level_sizes),
        feature_values=[
            value
            for value in _feature_value_stats(state, encoders)
            if value.feature not in duplicates
        ],
        feature_notes={
            **{encoder.name: encoder.note for encoder in encoders if encoder.note},
            **{
                part: f'not listed: its values hold the same rows as those of {column}'
                for part, column in duplicates.items()
            },
        },
    )


def _added_impact(
    table: selection.PatternTable, chosen: Sequence[selection.Selected], rows: int, errors: int
) -> Dict[int, Dict[str, Any]]:
    """Candidate index -> added_* fields of each top-level finding, in the order they are
    listed (added_gains, on the errors)."""
    findings = [entry.index for entry in chosen if entry.held and entry.parent is None]
    if not findings:
        return {}
    sizes = table.counts[:, SEARCH_SIZE] + table.counts[:, HOLDOUT_SIZE]
    failed = table.counts[:, SEARCH_ERRORS] + table.counts[:, HOLDOUT_ERRORS]
    bits = table.bits(max(findings) + 1)
    return {
        index: {
            'added_size': int(sizes[mask].sum()),
            'added_errors': int(failed[mask].sum()),
            'added_error_share': float(failed[mask].sum() / errors) if errors else 0.0,
            'added_potential_gain': gain,
        }
        for index, mask, gain in added_gains(bits, findings, sizes, failed, rows)
    }


def added_gains(
    bits: np.ndarray, findings: Sequence[int], sizes: np.ndarray, losses: np.ndarray, rows: int
) -> List[tuple]:
    """[(finding, its added patterns (mask over the pattern table), added gain)] in listing
    order: greedily, the finding that adds the most gain beyond those above it first. A row
    counts for the first finding that holds it; gain is against the mean loss outside every
    finding, so the added gains sum to the union's (mean inside - mean outside) x share.
    `losses`: per pattern, the summed per-row loss (errors, or a regression's errors)."""
    union = np.any(bits[:, list(findings)], axis=1)
    outside = float(sizes[~union].sum())
    base = losses[~union].sum() / outside if outside else 0.0
    covered = np.zeros(len(sizes), dtype=bool)
    remaining = list(findings)
    listed = []
    while remaining:
        new = [bits[:, index] & ~covered for index in remaining]
        gains = [(losses[m].sum() - base * sizes[m].sum()) / max(rows, 1) for m in new]
        best = int(np.argmax(gains))
        index, mask = remaining.pop(best), new[best]
        listed.append((index, mask, float(gains[best])))
        covered |= bits[:, index]
    return listed


def _listing_order(
    chosen: Sequence[selection.Selected], order: Sequence[int]
) -> List[selection.Selected]:
    """Findings in `order` (candidate indices), each followed by its refinements; unconfirmed
    candidates last."""
    children: Dict[int, List[selection.Selected]] = {}
    for entry in chosen:
        if entry.held and entry.parent is not None:
            children.setdefault(entry.parent, []).append(entry)
    by_index = {entry.index: entry for entry in chosen if entry.held and entry.parent is None}
    listed = [e for index in order for e in [by_index[index], *children.get(index, [])]]
    return listed + [entry for entry in chosen if not entry.held]


def _duplicate_date_parts(
    state: SearchState, encoders: Sequence[binning.FeatureEncoder]
) -> Dict[str, str]:
    """Date part -> the column whose values hold the same rows (e.g. a weekday part beside a
    day-of-week column): their values' counts in both halves match one to one. Listing both
    would show one slice twice."""
    offsets = np.cumsum([0] + [encoder.cardinality for encoder in encoders])

    def signature(f: int) -> tuple:
        counts = state.value_counts[offsets[f] : offsets[f + 1]]
        return tuple(
            sorted(
                map(tuple, counts[counts[:, SEARCH_SIZE] + counts[:, HOLDOUT_SIZE] > 0].tolist())
            )
        )

    if state.value_counts.size == 0:
        return {}
    signatures = [signature(f) for f in range(len(encoders))]
    duplicates = {}
    for f, encoder in enumerate(encoders):
        if encoder.kind != binning.DATE_PART or len(signatures[f]) < 2:
            continue
        for g, other in enumerate(encoders):
            if g != f and other.name not in duplicates and signatures[g] == signatures[f]:
                duplicates[encoder.name] = other.name
                break
    return duplicates


def _feature_value_stats(
    state: SearchState, encoders: Sequence[binning.FeatureEncoder]
) -> List[FeatureValueStats]:
    """Every observed feature value over all rows, vs the other rows."""
    if state.value_counts.size == 0:
        return []
    names = [encoder.name for encoder in encoders for _ in encoder.labels]
    labels = [label for encoder in encoders for label in encoder.labels]
    bounds = [
        encoder.range_bounds(code, code)
        for encoder in encoders
        for code in range(len(encoder.labels))
    ]
    sizes = state.value_counts[:, SEARCH_SIZE] + state.value_counts[:, HOLDOUT_SIZE]
    errors = state.value_counts[:, SEARCH_ERRORS] + state.value_counts[:, HOLDOUT_ERRORS]
    total_size = int(state.totals[SEARCH_SIZE] + state.totals[HOLDOUT_SIZE])
    total_errors = int(state.totals[SEARCH_ERRORS] + state.totals[HOLDOUT_ERRORS])
    observed = np.flatnonzero(sizes > 0)
    sizes, errors = sizes[observed], errors[observed]
    rates = stats.error_rate(errors, sizes)
    low, high = stats.wilson_interval(errors, sizes)
    lifts = stats.lift(rates, total_errors / max(total_size, 1))
    # Exact (Fisher), as for findings: the normal approximation is far too eager on a value
    # with a handful of rows (2 errors in 7 rows looked like q = 0.001).
    p_values = stats.exact_greater_rate_p_value(
        errors, sizes, total_errors - errors, total_size - sizes
    )
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
            bounds=bounds[p],
        )
        for i, p in enumerate(observed.tolist())
    ]


def _optional_float(value: Optional[float]) -> Optional[float]:
    return None if value is None else _json_float(value)


def _json_float(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def find_slices(
    codes: np.ndarray,
    errors: np.ndarray,
    holdout: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    config: SliceFinderConfig,
    fine_codes: Optional[np.ndarray] = None,
) -> SliceSearchResult:
    """In-memory search over encoded rows with the same steps as Beam.

    Args:
      codes: (rows, features) codes, column j from encoders[j].
      errors: (rows,) 0/1.
      holdout: (rows,) True for hold-out rows (see holdout_mask).
      encoders: one per column of codes, for cardinalities and labels.
      config: search parameters.
      fine_codes: the rows' fine codes (encode_columns(..., fine=True)); default: codes, right
        when no encoder splits its bins.
    """
    state = initial_state([encoder.cardinality for encoder in encoders], config)
    for _ in range(config.max_predicates):
        candidates = generate_candidates(state)
        state = next_level(state, candidates, count_candidates(codes, errors, holdout, candidates))
    fine = codes if fine_codes is None else fine_codes
    jobs = ranges.range_jobs(state, encoders)
    conditions = ranges.refine(
        state, encoders, jobs, ranges.count_ranges(codes, fine, errors, holdout, jobs)
    )
    table = selection.PatternTable.count(fine, errors, holdout, conditions)
    return summarize(state, encoders, conditions, table)
