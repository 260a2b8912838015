"""Turns raw feature values into small integer codes with readable labels.

Slice search works on predicates "feature = code". Categorical features keep
their most frequent values (the rest becomes "(other)"), numeric features are
cut at quantiles, so users never have to bin anything by hand.
"""

import dataclasses
import itertools
import re
from typing import Mapping, Optional, Sequence

import numpy as np

CATEGORICAL = 'categorical'
NUMERIC = 'numeric'
LEFT_OUT = 'left out'  # a column that cannot make a slice: no codes, only a note
OTHER = '(other)'
MISSING = '(missing)'
_SIGNIFICANT_DIGITS = 3


@dataclasses.dataclass(frozen=True)
class FeatureEncoder:
    """Maps one feature's raw values to codes 0..cardinality-1.

    Attributes:
      name: feature name.
      kind: CATEGORICAL or NUMERIC.
      labels: readable predicate per code, e.g. "payment_type = Cash" or
        "0.9 <= trip_miles < 2.1".
      note: what was simplified (capping, binning), for the report.
      vocabulary: categorical only: the value of each kept code.
      edges: numeric only: increasing cut points; code i holds
        edges[i-1] <= x < edges[i].
      other_code: code of values outside the vocabulary, -1 if none.
      missing_code: code of missing values (None, '' or NaN), -1 if none.
    """

    name: str
    kind: str
    labels: list[str]
    note: str = ''
    vocabulary: list[str] = dataclasses.field(default_factory=list)
    edges: list[float] = dataclasses.field(default_factory=list)
    other_code: int = -1
    missing_code: int = -1
    # Quantile-binned numeric features only: the edges as the labels print them. Their bins
    # are ordered (codes 0..len(edge_text)), so adjacent bins can form a range predicate.
    edge_text: list[str] = dataclasses.field(default_factory=list)

    @property
    def num_ordered_bins(self) -> int:
        """Bins a range predicate can span (0 if the codes are not ordered bins)."""
        return len(self.edge_text) + 1 if self.edge_text else 0

    def range_bounds(self, low: int, high: int) -> Optional[tuple]:
        """(lower, upper) values of codes low..high of ordered bins (None: open end), or None
        when the codes are not ordered bins (a category, "missing")."""
        if high >= self.num_ordered_bins:
            return None
        return (
            self.edges[low - 1] if low > 0 else None,
            self.edges[high] if high < len(self.edges) else None,
        )

    def range_label(self, low: int, high: int) -> str:
        """Readable predicate for codes low..high (inclusive), e.g. "0.6 <= z < 0.7"."""
        if low == high:
            return self.labels[low]
        lower = self.edge_text[low - 1] if low > 0 else None
        upper = self.edge_text[high] if high < len(self.edge_text) else None
        if lower is None:
            return f'{self.name} < {upper}'
        if upper is None:
            return f'{self.name} >= {lower}'
        return f'{lower} <= {self.name} < {upper}'

    @property
    def cardinality(self) -> int:
        return len(self.labels)

    def encode(self, values: np.ndarray, strict: bool = True) -> np.ndarray:
        """Codes (int32) of a batch of raw values of this feature (all 0 for a feature left
        out: no predicate reads them). A value the encoder has no code for (a category or a
        missing value not seen when it was built) is an error, or with strict=False the code
        -1, which no slice holds: for other data than the encoder was built from."""
        if self.kind == LEFT_OUT:
            return np.zeros(len(values), dtype=np.int32)
        if self.kind == NUMERIC:
            return self._encode_numeric(np.asarray(values, dtype=np.float64), strict)
        return self._encode_categorical(np.asarray(values, dtype=object), strict)

    def _encode_numeric(self, values: np.ndarray, strict: bool) -> np.ndarray:
        codes = np.searchsorted(
            np.asarray(self.edges, dtype=np.float64), values, side='right'
        ).astype(np.int32)
        missing = np.isnan(values)
        if missing.any():
            if self.missing_code < 0 and not strict:
                codes[missing] = -1
            elif self.missing_code < 0:
                raise ValueError(
                    f'{self.name}: missing values, but none were seen when the encoder was built.'
                )
            codes[missing] = self.missing_code
        return codes

    def _encode_categorical(self, values: np.ndarray, strict: bool) -> np.ndarray:
        lookup = {value: code for code, value in enumerate(self.vocabulary)}
        if self.missing_code >= 0:
            lookup[None] = lookup[''] = self.missing_code
        codes = np.fromiter(
            map(lookup.get, values, itertools.repeat(self.other_code)),
            dtype=np.int32,
            count=len(values),
        )
        if strict and (codes < 0).any():
            raise ValueError(
                f'{self.name}: values not seen when the encoder was '
                'built and no "(other)" code to put them in.'
            )
        return codes


def format_number(value: float, digits: int = _SIGNIFICANT_DIGITS) -> str:
    """Short, non-scientific rendering with `digits` significant digits."""
    if value == 0 or 1e-4 <= abs(value) < 1e9:
        return np.format_float_positional(
            value, precision=digits, unique=True, fractional=False, trim='-'
        )
    return f'{value:.{digits}g}'


def round_significant(values: np.ndarray, digits: int = _SIGNIFICANT_DIGITS) -> np.ndarray:
    """Rounds to `digits` significant digits so labels state edges exactly."""
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.abs(np.where(values == 0, 1.0, values))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale


def categorical_encoder(
    name: str,
    value_counts: Mapping[str, float],
    missing_count: int = 0,
    max_values: int = 50,
    num_distinct: Optional[int] = None,
) -> FeatureEncoder:
    """Keeps the `max_values` most frequent values; the rest is "(other)".

    Args:
      name: feature name.
      value_counts: (estimated) count per non-missing value.
      missing_count: rows where the value is missing.
      max_values: cap on kept values, bounding the slice lattice.
      num_distinct: distinct values in the data when known better than
        len(value_counts) (e.g. a sketch that only tracks heavy hitters).
    """
    ranked = sorted(value_counts.items(), key=lambda item: (-item[1], item[0]))
    vocabulary = [value for value, _ in ranked[:max_values]]
    num_distinct = max(num_distinct or 0, len(value_counts))
    labels = [f'{name} = {value}' for value in vocabulary]
    note = ''
    other_code = -1
    if num_distinct > len(vocabulary):
        other_code = len(labels)
        labels.append(f'{name} = {OTHER}')
        note = (
            f'capped to the {len(vocabulary)} most frequent of '
            f'{num_distinct:,} values; the rest is {OTHER!r}'
        )
    missing_code = -1
    if missing_count > 0:
        missing_code = len(labels)
        labels.append(f'{name} = {MISSING}')
    return FeatureEncoder(
        name=name,
        kind=CATEGORICAL,
        labels=labels,
        note=note,
        vocabulary=vocabulary,
        other_code=other_code,
        missing_code=missing_code,
    )


def numeric_encoder(
    name: str,
    quantiles: Sequence[float],
    missing_count: int = 0,
    distinct_values: Optional[Sequence[float]] = None,
    num_bins: int = 4,
) -> FeatureEncoder:
    """Quantile bins of a numeric feature, plus "is missing" for NaN.

    Args:
      name: feature name.
      quantiles: num_bins + 1 increasing quantiles, min first and max last.
      missing_count: rows where the value is NaN.
      distinct_values: all distinct values if there are at most num_bins of
        them; each then gets its own "name = value" code. The labels are exact
        for the data the encoder was built from.
      num_bins: number of quantile bins wanted.
    """
    quantiles = np.asarray(quantiles, dtype=np.float64)
    note = ''
    if distinct_values is not None and len(distinct_values) <= num_bins:
        points = np.unique(np.asarray(distinct_values, dtype=np.float64))
        edges = points[1:]
        labels = [f'{name} = {value}' for value in _unique_texts(points)]
        edge_text = []
    elif quantiles.size:
        edges = np.unique(round_significant(quantiles[1:-1]))
        edges = edges[(edges > quantiles[0]) & (edges <= quantiles[-1])]
        edge_text = _unique_texts(edges)
        labels = _bin_labels(name, edge_text)
        if len(labels) < num_bins:
            note = f'{len(labels)} bins: some quantiles coincide'
    else:
        edges, labels, note, edge_text = np.empty(0), [], 'no values', []
    missing_code = -1
    if missing_count > 0:
        missing_code = len(labels)
        labels.append(f'{name} is missing')
    return FeatureEncoder(
        name=name,
        kind=NUMERIC,
        labels=labels,
        note=note,
        edges=[float(edge) for edge in edges],
        missing_code=missing_code,
        edge_text=edge_text,
    )


def _bin_labels(name: str, edges: Sequence[str]) -> list[str]:
    if not edges:
        return [f'{name} (any value)']
    labels = [f'{name} < {edges[0]}']
    labels += [f'{low} <= {name} < {high}' for low, high in zip(edges, edges[1:])]
    labels.append(f'{name} >= {edges[-1]}')
    return labels


def _unique_texts(numbers: np.ndarray) -> list[str]:
    """Formats with 3 significant digits, more only if numbers would collide."""
    for digits in (_SIGNIFICANT_DIGITS, 6, 17):
        text = [format_number(float(number), digits) for number in numbers]
        if len(set(text)) == len(text):
            break
    return text


# Columns that cannot make a slice (README, "The error-analysis report"): identifier-like
# (distinct values in at least this share of the rows that have one, and more than the
# values kept), ISO dates or times, epoch seconds (a name with 'time' or 'date' and values
# between these bounds: 2000-01-01 and 2100-01-01), and constant columns.
ID_LIKE_SHARE = 0.9
EPOCH_SECONDS = (946_684_800, 4_102_444_800)
_ISO_DATE = re.compile(
    r'^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$'
)


def left_out_encoder(name: str, reason: str) -> FeatureEncoder:
    """A column kept out of slicing; `reason` becomes its note in the report."""
    return FeatureEncoder(
        name=name, kind=LEFT_OUT, labels=[], note=f'left out of slicing: {reason}'
    )


def categorical_unsliceable(
    values: Sequence[str], num_distinct: int, present_rows: int, max_values: int, missing: int = 0
) -> Optional[str]:
    """Why a text column cannot make a slice, or None. `values`: its most frequent values;
    num_distinct and present_rows count the rows with a value, `missing` the others."""
    if not present_rows:
        return 'empty (missing in every row)'
    if num_distinct > max_values and num_distinct >= ID_LIKE_SHARE * present_rows:
        return (
            f'identifier-like ({num_distinct:,} distinct values in {present_rows:,} rows): a '
            'slice would be one row'
        )
    if values and all(_ISO_DATE.match(value) for value in values):
        return (
            'dates or times (ISO): add their parts (year, month, weekday, hour) as columns to '
            'slice by them'
        )
    if num_distinct == 1 and not missing:
        return f'constant (one value, {values[0]!r}, in every row)'
    return None


def numeric_unsliceable(
    name: str, low: float, high: float, num_distinct: Optional[int]
) -> Optional[str]:
    """Why a numeric column cannot make a slice, or None; low and high: its range."""
    lowered = name.lower()
    if (
        ('time' in lowered or 'date' in lowered)
        and EPOCH_SECONDS[0] <= low
        and high < EPOCH_SECONDS[1]
    ):
        return (
            'timestamps (epoch seconds): add their parts (year, month, weekday, hour) as '
            'columns to slice by them'
        )
    if num_distinct == 1:
        return f'constant (one value, {format_number(low)}, in every row)'
    return None
