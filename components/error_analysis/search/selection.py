"""Which candidate slices become findings: overlap-aware, ranked by impact, re-tested on the
hold-out half.

One counting pass gives, for every distinct pattern of membership in the candidates (a bit per
candidate), the rows and errors in each half. Any union, intersection or residual of
candidates is a sum over that table, so the selection below is exact and needs no further pass
over examples:

1. Dilutions go: a candidate T that contains a smaller candidate S, where T's rows outside S
   do not fail more than the rows outside T (search half, at the strict DILUTION_LEVEL), is
   S plus clean rows.
2. The rest, by potential gain on the search half, are accepted one at a time if their rows
   outside the slices already accepted still fail significantly more than the rows outside all
   of them, tested on the hold-out half with a Bonferroni bound over the candidates tested (so
   on data without a failure, any finding at all appears with probability <= significance).
   A candidate whose rows are mostly inside accepted slices is a variant of them, not tested,
   and so is one that is the same slice as an accepted one (same features and categories,
   overlapping ranges: search/identity.py): one failure is never two findings.
3. A candidate nested in an accepted finding that fails significantly more than the rest of
   that finding (hold-out half, Bonferroni over these tests) is shown as its refinement
   (child), never as a rival.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from blindspot.error_analysis.search import stats
from blindspot.error_analysis.search.lattice import (
    HOLDOUT_ERRORS,
    HOLDOUT_SIZE,
    SEARCH_ERRORS,
    SEARCH_SIZE,
)
from blindspot.error_analysis.search.ranges import NO_FEATURE

# A candidate with less than this share of its rows outside accepted findings is a variant.
MIN_NEW_ROWS = 0.5
# A candidate with at least this share of its rows inside a finding may be its refinement.
NESTED = 0.9
# A dilution's inner slice must lie (almost) inside it.
INSIDE = 0.95
MAX_CHILDREN = 3
MAX_UNCONFIRMED = 3
MAX_CANDIDATES = 64  # one bit each in a uint64 pattern
# A broader slice is kept beside a smaller one inside it only if its other rows fail more at
# this level (search half): strict, because a dilution kept by chance would be reported.
DILUTION_LEVEL = 0.001


def membership(codes: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """(rows,) uint64: bit i set where the row is in slice i (conditions[i])."""
    patterns = np.zeros(len(codes), dtype=np.uint64)
    for index, slice_conditions in enumerate(conditions[:MAX_CANDIDATES]):
        inside = np.ones(len(codes), dtype=bool)
        for feature, low, high in slice_conditions.tolist():
            if feature != NO_FEATURE:
                column = codes[:, feature]
                inside &= (column >= low) & (column <= high)
        patterns |= inside.astype(np.uint64) << np.uint64(index)
    return patterns


def sum_by_pattern(patterns: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct patterns sorted, per-pattern column sums of values (rows, k))."""
    distinct, inverse = np.unique(patterns, return_inverse=True)
    return distinct, sums_by_index(inverse.reshape(-1), values, len(distinct))


def sums_by_index(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """(size, k) column sums of values (rows, k) grouped by index (rows,) in 0..size-1: one
    bincount per column, many times faster than np.add.at on large batches."""
    sums = np.zeros((size, values.shape[1]), dtype=values.dtype)
    for column in range(values.shape[1]):
        sums[:, column] = np.bincount(index, weights=values[:, column], minlength=size)[:size]
    return sums


def pattern_bits(patterns: np.ndarray, num_candidates: int) -> np.ndarray:
    """(m, num_candidates) bool: bit i of each membership pattern."""
    shifts = np.arange(num_candidates, dtype=np.uint64)
    return ((patterns[:, None] >> shifts) & np.uint64(1)).astype(bool)


@dataclasses.dataclass
class PatternTable:
    """Rows and errors per half for each distinct membership pattern (mergeable)."""

    patterns: np.ndarray  # (m,) uint64, sorted
    counts: np.ndarray  # (m, 4) search size, search errors, hold-out size, hold-out errors

    @classmethod
    def count(
        cls, codes: np.ndarray, errors: np.ndarray, holdout: np.ndarray, conditions: np.ndarray
    ) -> 'PatternTable':
        patterns = membership(codes, conditions)
        column = 2 * np.asarray(holdout, np.int64) + np.asarray(errors, np.int64)
        distinct, inverse = np.unique(patterns, return_inverse=True)
        flags = np.zeros((len(distinct), 4), dtype=np.int64)
        np.add.at(flags, (inverse, column), 1)
        # (ok, error) per half -> (size, errors) per half.
        counts = np.stack(
            [flags[:, 0] + flags[:, 1], flags[:, 1], flags[:, 2] + flags[:, 3], flags[:, 3]],
            axis=1,
        )
        return cls(distinct, counts)

    @classmethod
    def merge(cls, tables: List['PatternTable']) -> 'PatternTable':
        tables = [t for t in tables if t is not None and len(t.patterns)]
        if not tables:
            return cls(np.zeros(0, np.uint64), np.zeros((0, 4), np.int64))
        return cls(
            *sum_by_pattern(
                np.concatenate([t.patterns for t in tables]),
                np.concatenate([t.counts for t in tables]),
            )
        )

    def bits(self, num_candidates: int) -> np.ndarray:
        """(m, num_candidates) bool membership."""
        return pattern_bits(self.patterns, num_candidates)


@dataclasses.dataclass(frozen=True)
class Selected:
    """A candidate the report lists, with the test that put it there."""

    index: int  # candidate index
    counts: np.ndarray  # (4,) the candidate's rows and errors per half
    p_value: float  # hold-out test (residual, or vs the rest of the parent)
    adjusted_p_value: float  # Bonferroni over the tests of its kind
    held: bool
    parent: Optional[int] = None  # candidate index of the finding it refines
    # Candidates with the same identity (search/identity.py) as this finding: its variants,
    # listed with it, never as findings of their own.
    variants: Tuple[int, ...] = ()


def _sum(counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return counts[mask].sum(axis=0)


def _all_rows(counts: np.ndarray) -> np.ndarray:
    return counts[..., SEARCH_SIZE] + counts[..., HOLDOUT_SIZE]


def search_gains(candidate_counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Potential gain of each candidate on the search half (see potential_gain)."""
    return potential_gain(
        candidate_counts[:, SEARCH_SIZE],
        candidate_counts[:, SEARCH_ERRORS],
        totals[SEARCH_SIZE],
        totals[SEARCH_ERRORS],
    )


def potential_gain(size, errors, total_size, total_errors) -> np.ndarray:
    """Accuracy gained (fraction of all rows) if the slice failed like the rest:
    (rate inside - rate outside) x share of rows."""
    size = np.asarray(size, np.float64)
    errors = np.asarray(errors, np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        inside = np.where(size > 0, errors / np.maximum(size, 1), 0.0)
        rest = total_size - size
        outside = np.where(rest > 0, (total_errors - errors) / np.maximum(rest, 1), 0.0)
    return (inside - outside) * size / max(float(total_size), 1.0)


def identity(slice_conditions: np.ndarray, ordered_bins: Sequence[int]) -> tuple:
    """A candidate's identity, as search/identity.py's slice_id sees it: a range predicate
    (codes below ordered_bins[feature]) counts by its feature, any other by its code."""
    key = []
    for feature, low, high in slice_conditions.tolist():
        if feature == NO_FEATURE:
            continue
        ranged = low < ordered_bins[feature]
        key.append((feature, None) if ranged else (feature, low, high))
    return tuple(sorted(key))


def select(
    table: PatternTable,
    conditions: np.ndarray,
    totals: np.ndarray,
    significance: float,
    max_findings: int,
    ordered_bins: Optional[Sequence[int]] = None,
) -> List[Selected]:
    """Findings (held), their refinements (held, with a parent) and a few unconfirmed
    candidates (not held), findings by potential gain, each followed by its refinements.
    ordered_bins[f]: feature f's ordered (fine) bins, whose codes make ranges (None: no
    feature has any). A candidate with the identity of a listed one is its variant."""
    num_candidates = min(len(conditions), MAX_CANDIDATES)
    if num_candidates == 0 or not len(table.patterns):
        return []
    bits = table.bits(num_candidates)
    counts = table.counts
    per_candidate = np.stack([_sum(counts, bits[:, i]) for i in range(num_candidates)])
    gains = search_gains(per_candidate, totals)
    diluted = _dilutions(bits, counts, per_candidate, totals)
    order = [i for i in np.argsort(-gains, kind='stable') if not diluted[i] and gains[i] > 0]

    if ordered_bins is None:
        ordered_bins = [0] * (int(conditions[..., 0].max(initial=0)) + 1)
    identities = [identity(conditions[i], ordered_bins) for i in range(num_candidates)]
    accepted: List[Selected] = []
    unconfirmed: List[Selected] = []
    variants: Dict[int, List[int]] = {}
    covered = np.zeros(len(counts), dtype=bool)
    tests = max(len(order), 1)
    for index in order:
        if len(accepted) == max_findings:
            break
        twin = next(
            (
                e
                for e in accepted + unconfirmed
                if identities[index] == identities[e.index]
                or np.array_equal(bits[:, index], bits[:, e.index])
            ),
            None,
        )
        if twin is not None:  # the same slice (or rows) as one listed: one failure, one entry
            if twin.held:
                variants.setdefault(twin.index, []).append(index)
            continue
        inside = bits[:, index]
        residual = _sum(counts, inside & ~covered)
        if _all_rows(residual) < MIN_NEW_ROWS * _all_rows(per_candidate[index]):
            continue  # mostly inside accepted findings: a variant, or a refinement (below)
        rest = _sum(counts, ~(inside | covered))
        p_value = float(
            stats.exact_greater_rate_p_value(
                residual[HOLDOUT_ERRORS],
                residual[HOLDOUT_SIZE],
                rest[HOLDOUT_ERRORS],
                rest[HOLDOUT_SIZE],
            )
        )
        adjusted = min(1.0, p_value * tests)
        entry = Selected(index, per_candidate[index], p_value, adjusted, adjusted < significance)
        if entry.held:
            accepted.append(entry)
            covered |= inside
        elif len(unconfirmed) < MAX_UNCONFIRMED:
            unconfirmed.append(entry)

    feature_sets = [
        frozenset(int(f) for f in c[:, 0] if f != NO_FEATURE) for c in conditions[:num_candidates]
    ]
    accepted = [dataclasses.replace(e, variants=tuple(variants.get(e.index, ()))) for e in accepted]
    children = _refinements(
        bits, counts, per_candidate, gains, accepted, significance, feature_sets, identities
    )
    result: List[Selected] = []
    for finding in accepted:
        result.append(finding)
        result += children.get(finding.index, [])
    return result + unconfirmed


def _dilutions(
    bits: np.ndarray, counts: np.ndarray, per_candidate: np.ndarray, totals: np.ndarray
) -> np.ndarray:
    """Candidates that are a smaller candidate plus rows failing like the rest."""
    num_candidates = bits.shape[1]
    diluted = np.zeros(num_candidates, dtype=bool)
    sizes = _all_rows(per_candidate)
    for outer in range(num_candidates):
        outside = totals - per_candidate[outer]
        for inner in range(num_candidates):
            if inner == outer or sizes[inner] >= sizes[outer]:
                continue
            if (
                _all_rows(_sum(counts, bits[:, inner] & ~bits[:, outer]))
                > (1 - INSIDE) * sizes[inner]
            ):
                continue
            extra = _sum(counts, bits[:, outer] & ~bits[:, inner])
            # Search half only (the hold-out half must stay untouched for the tests that keep
            # a finding), at a strict level: a clean remainder passes 1 time in 1,000.
            p_value = stats.greater_rate_p_value(
                extra[SEARCH_ERRORS],
                extra[SEARCH_SIZE],
                outside[SEARCH_ERRORS],
                outside[SEARCH_SIZE],
            )
            if not p_value < DILUTION_LEVEL:
                diluted[outer] = True
                break
    return diluted


def _refinements(
    bits: np.ndarray,
    counts: np.ndarray,
    per_candidate: np.ndarray,
    gains: np.ndarray,
    accepted: List[Selected],
    significance: float,
    feature_sets: List[frozenset],
    identities: List[tuple],
) -> Dict[int, List[Selected]]:
    """Candidates nested in a finding, on more features than it, that fail significantly more
    than the rest of it (a narrower range on the same features is a variant, not news)."""
    chosen = {finding.index for finding in accepted}
    tests: List[Tuple[int, int, float]] = []  # (parent, child, p)
    sizes = _all_rows(per_candidate)
    for finding in accepted:
        parent = finding.index
        for child in range(bits.shape[1]):
            if child in chosen or sizes[child] >= sizes[parent]:
                continue
            if not feature_sets[child] > feature_sets[parent]:
                continue
            inside = bits[:, child] & bits[:, parent]
            if _all_rows(_sum(counts, inside)) < NESTED * sizes[child]:
                continue
            rest = _sum(counts, bits[:, parent] & ~bits[:, child])
            within = _sum(counts, inside)
            p_value = float(
                stats.exact_greater_rate_p_value(
                    within[HOLDOUT_ERRORS],
                    within[HOLDOUT_SIZE],
                    rest[HOLDOUT_ERRORS],
                    rest[HOLDOUT_SIZE],
                )
            )
            tests.append((parent, child, p_value))
    children: Dict[int, List[Selected]] = {}
    used = set()
    held_ids = {identities[finding.index] for finding in accepted}
    shown = {finding.index: np.zeros(len(counts), dtype=bool) for finding in accepted}
    for parent, child, p_value in sorted(tests, key=lambda t: -gains[t[1]]):
        adjusted = min(1.0, p_value * len(tests))
        if adjusted >= significance or child in used or identities[child] in held_ids:
            continue
        if len(children.get(parent, [])) == MAX_CHILDREN:
            continue
        overlap = _all_rows(_sum(counts, bits[:, child] & shown[parent]))
        if overlap >= MIN_NEW_ROWS * sizes[child]:
            continue  # a variant of a refinement already shown
        shown[parent] |= bits[:, child]
        used.add(child)
        held_ids.add(identities[child])
        children.setdefault(parent, []).append(
            Selected(child, per_candidate[child], p_value, adjusted, True, parent=parent)
        )
    return children
