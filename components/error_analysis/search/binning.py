"""Turns raw feature values into small integer codes with readable labels.

Slice search works on predicates "feature = code". Categorical features keep
their most frequent values (the rest becomes "(other)"), numeric features are
cut at quantiles, so users never have to bin anything by hand.
"""

import dataclasses
import itertools
import re
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CATEGORICAL = 'categorical'
NUMERIC = 'numeric'
DATE_PART = 'date part'  # one part (year, month, ...) of a date or timestamp column
LEFT_OUT = 'left out'  # a column that cannot make a slice: no codes, only a note
OTHER = '(other)'
MISSING = '(missing)'
_SIGNIFICANT_DIGITS = 3
# Equal-width pieces per quantile bin for a finding's range edges: with 16 bins, an edge is
# placed to 1/256 of the rows' range (0.004 on a uniform [0, 1) column).
SUB_BINS = 16


@dataclasses.dataclass(frozen=True)
class FeatureEncoder:
    """Maps one feature's raw values to codes 0..cardinality-1.

    Attributes:
      name: feature name; a date part's is '<column>.<part>', e.g. "day.weekday".
      kind: CATEGORICAL, NUMERIC, DATE_PART or LEFT_OUT.
      labels: readable predicate per code, e.g. "payment_type = Cash" or
        "0.9 <= trip_miles < 2.1".
      note: what was simplified (capping, binning), for the report.
      vocabulary: categorical only: the value of each kept code.
      edges: numeric only: increasing cut points; code i holds
        edges[i-1] <= x < edges[i].
      other_code: code of values outside the vocabulary, -1 if none.
      missing_code: code of missing values (None, '' or NaN), -1 if none.
      column: DATE_PART only: the raw column the part is read from.
      part: DATE_PART only: 'year', 'month', 'weekday' or 'hour'; vocabulary holds the
        part's values as numbers (month 1-12, weekday 0 = Monday, hour 0-23).
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
    column: str = ''
    part: str = ''
    # Quantile-binned numeric features only: sub-bin cut points, a superset of `edges` (each
    # bin split into equal-width pieces), so a finding's range edges can fall inside a bin.
    # Fine codes: 0..len(fine_edges) for the pieces, then one for "missing". Every other
    # encoder's fine codes are its codes.
    fine_edges: list[float] = dataclasses.field(default_factory=list)
    fine_edge_text: list[str] = dataclasses.field(default_factory=list)

    @property
    def source_column(self) -> str:
        """The raw column this encoder reads."""
        return self.column or self.name

    @property
    def num_ordered_bins(self) -> int:
        """Bins a range predicate can span (0 if the codes are not ordered bins)."""
        return len(self.edge_text) + 1 if self.edge_text else 0

    def range_bounds(self, low: int, high: int) -> Optional[tuple]:
        """(lower, upper) values of codes low..high of ordered bins (None: open end), or None
        when the codes are not ordered bins (a category, "missing")."""
        if high >= self.num_ordered_bins:
            return None
        return _between(self.edges, low, high)

    def range_label(self, low: int, high: int) -> str:
        """Readable predicate for codes low..high (inclusive), e.g. "0.6 <= z < 0.7"."""
        if low == high:
            return self.labels[low]
        return _range_text(self.name, *_between(self.edge_text, low, high))

    @property
    def cardinality(self) -> int:
        return len(self.labels)

    @property
    def num_fine_bins(self) -> int:
        """Ordered fine bins (num_ordered_bins when the bins are not split)."""
        return len(self.fine_edges) + 1 if self.fine_edges else self.num_ordered_bins

    def fine_span(self, code: int) -> tuple:
        """(low, high) fine codes, inclusive, that make up code `code`."""
        if not self.fine_edges:
            return code, code
        if code >= self.num_ordered_bins:  # "missing"
            return self.num_fine_bins, self.num_fine_bins
        fine = np.asarray(self.fine_edges)
        low = 0 if code == 0 else int(np.searchsorted(fine, self.edges[code - 1])) + 1
        high = (
            self.num_fine_bins - 1
            if code >= len(self.edges)
            else int(np.searchsorted(fine, self.edges[code]))
        )
        return low, high

    def encode_fine(self, values: np.ndarray, strict: bool = True) -> np.ndarray:
        """Fine codes of a batch of raw values (see fine_edges); codes when not split."""
        if not self.fine_edges:
            return self.encode(values, strict)
        values = np.asarray(values, dtype=np.float64)
        codes = np.searchsorted(
            np.asarray(self.fine_edges, dtype=np.float64), values, side='right'
        ).astype(np.int32)
        missing = np.isnan(values)
        if missing.any():
            if self.missing_code < 0 and strict:
                raise ValueError(
                    f'{self.name}: missing values, but none were seen when the encoder was built.'
                )
            codes[missing] = self.num_fine_bins if self.missing_code >= 0 else -1
        return codes

    def fine_range_bounds(self, low: int, high: int) -> Optional[tuple]:
        """range_bounds for fine codes low..high."""
        if not self.fine_edges:
            return self.range_bounds(low, high)
        if high >= self.num_fine_bins:
            return None
        return _between(self.fine_edges, low, high)

    def fine_range_label(self, low: int, high: int) -> str:
        """range_label for fine codes low..high."""
        if not self.fine_edges:
            return self.range_label(low, high)
        if high >= self.num_fine_bins:
            return self.labels[self.missing_code]
        return _range_text(self.name, *_between(self.fine_edge_text, low, high))

    def encode(self, values: np.ndarray, strict: bool = True) -> np.ndarray:
        """Codes (int32) of a batch of raw values of this feature (all 0 for a feature left
        out: no predicate reads them). A value the encoder has no code for (a category or a
        missing value not seen when it was built) is an error, or with strict=False the code
        -1, which no slice holds: for other data than the encoder was built from."""
        if self.kind == LEFT_OUT:
            return np.zeros(len(values), dtype=np.int32)
        if self.kind == NUMERIC:
            return self._encode_numeric(np.asarray(values, dtype=np.float64), strict)
        if self.kind == DATE_PART:
            return self._encode_part(date_parts(values)[self.part], strict)
        return self._encode_categorical(np.asarray(values, dtype=object), strict)

    def _encode_part(self, values: np.ndarray, strict: bool) -> np.ndarray:
        kept = np.array([int(v) for v in self.vocabulary], dtype=np.int64)  # increasing
        position = np.searchsorted(kept, values)
        found = (position < len(kept)) & (kept[np.minimum(position, len(kept) - 1)] == values)
        codes = np.where(found, position, -1).astype(np.int32)
        codes[values < 0] = self.missing_code  # missing or unreadable
        if strict and (codes < 0).any():
            raise ValueError(
                f'{self.name}: values not seen when the encoder was built, or missing ones.'
            )
        return codes

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


def _between(edges: Sequence, low: int, high: int) -> tuple:
    """(lower, upper) edge of bins low..high of the bins cut at `edges` (None: open end)."""
    return (edges[low - 1] if low > 0 else None, edges[high] if high < len(edges) else None)


def _range_text(name: str, lower: Optional[str], upper: Optional[str]) -> str:
    """'name < upper', 'name >= lower' or 'lower <= name < upper'."""
    if lower is None:
        return f'{name} < {upper}'
    if upper is None:
        return f'{name} >= {lower}'
    return f'{lower} <= {name} < {upper}'


def format_number(value: float, digits: int = _SIGNIFICANT_DIGITS) -> str:
    """Short, non-scientific rendering with `digits` significant digits."""
    if value == 0 or 1e-4 <= abs(value) < 1e9:
        return np.format_float_positional(
            value, precision=digits, unique=True, fractional=False, trim='-'
        )
    return f'{value:.{digits}g}'


def display_value(value) -> str:
    """A feature value as a person reads it: whole numbers without '.0' (ids, epoch seconds,
    counts), other numbers to 6 significant digits and at least one decimal (no float32 noise
    like 1.1111112), text
    as it is, None as empty."""
    if value is None:
        return ''
    if isinstance(value, str):
        return value
    value = float(value)
    if value != value:
        return ''
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    whole_digits = int(np.floor(np.log10(abs(value)))) + 1 if abs(value) >= 1 else 0
    return format_number(value, max(6, whole_digits + 1))


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
    sub_bins: int = 1,
    integral: bool = False,
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
      sub_bins: equal-width pieces each quantile bin is split into for range edges (1: none).
      integral: every value is a whole number (sub-bin edges are then whole numbers too).
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
    fine = _sub_bin_edges(quantiles, edges, sub_bins, integral) if edge_text else np.empty(0)
    return FeatureEncoder(
        name=name,
        kind=NUMERIC,
        labels=labels,
        note=note,
        edges=[float(edge) for edge in edges],
        missing_code=missing_code,
        edge_text=edge_text,
        fine_edges=[float(edge) for edge in fine],
        fine_edge_text=[format_number(float(edge), 17) for edge in fine],
    )


def _sub_bin_edges(
    quantiles: np.ndarray, edges: np.ndarray, sub_bins: int, integral: bool
) -> np.ndarray:
    """The bin edges plus equal-width cut points inside each bin (min..first edge, ...,
    last edge..max), rounded to the piece's decimal place (whole numbers for integral data), so
    labels state them exactly without float noise; empty
    when sub_bins is 1."""
    if sub_bins <= 1:
        return np.empty(0)
    bounds = np.concatenate([[quantiles[0]], edges, [quantiles[-1]]])
    points = [np.asarray(edges, np.float64)]
    for low, high in zip(bounds, bounds[1:]):
        if not high > low:
            continue
        inside = low + (high - low) * np.arange(1, sub_bins) / sub_bins
        if integral:
            inside = np.ceil(inside)
        else:
            inside = np.round(inside, int(-np.floor(np.log10((high - low) / sub_bins))))
        points.append(inside[(inside > low) & (inside < high)])
    return np.unique(np.concatenate(points))


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
# values kept; numbers also need integer values, see numeric_identifier) and constant
# columns. Dates or times (DATE_PATTERN), and epoch seconds (a name with 'time' or 'date' and values
# between these bounds: 2000-01-01 and 2100-01-01), are sliced by their parts instead.
ID_LIKE_SHARE = 0.9
ID_RANGE_PER_ROW = 10
EPOCH_SECONDS = (946_684_800, 4_102_444_800)
# ISO 8601 dates or date-times, and the same with '/' in the date (2012/01/31), year first.
DATE_PATTERN = (
    r'^\d{4}(-\d{2}-\d{2}|/\d{2}/\d{2})([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$'
)
_ID_WORDS = frozenset({'id', 'ids', 'uid', 'uuid', 'index', 'idx', 'key', 'row', 'no', 'number'})
DATE_PARTS = ('year', 'month', 'weekday', 'hour')
_PART_TEXT = {
    'month': ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'),
    'weekday': ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'),
}


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
            f'identifier-like ({_distinct_text(num_distinct, present_rows)} in '
            f'{present_rows:,} rows): a slice would be one row'
        )
    if num_distinct == 1 and not missing:
        return f'constant (one value, {values[0]!r}, in every row)'
    return None


def _distinct_text(num_distinct: int, present_rows: int) -> str:
    """The distinct-value count as the note states it: a sketch's estimate (counts above a
    thousand are estimated) is 'about', and never more than the rows."""
    if num_distinct >= present_rows:
        return (
            'a distinct value in nearly every row' if present_rows > 1000 else 'all distinct values'
        )
    return (
        f'about {num_distinct:,} distinct values'
        if num_distinct > 1000
        else f'{num_distinct:,} distinct values'
    )


def id_like_name(name: str) -> bool:
    """'order_id', 'customerId', 'row', 'index', 'id_code': the last word of the name (or
    its first, 'id') says it identifies a row."""
    words = [w.lower() for w in re.findall(r'[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+', name)]
    return bool(words) and (words[-1] in _ID_WORDS or words[0] == 'id')


def numeric_identifier(
    name: str,
    low: float,
    high: float,
    num_distinct: int,
    present_rows: int,
    integral: bool,
    max_values: int,
) -> bool:
    """A number column that names rows rather than measures them: integer values, nearly one
    per row (distinct in at least ID_LIKE_SHARE of the rows, and more than max_values), and
    either an id-like name (id_like_name) or values packed in a range of at most
    ID_RANGE_PER_ROW x the rows (row numbers 0..n-1, or a split of them: a third of a
    numbered file spans 3 x its rows). Continuous measures are not caught: floats fail the
    integer test, and integer measures that are all distinct (incomes in dollars, populations)
    spread over far wider ranges than their row count."""
    if not integral or num_distinct <= max_values or num_distinct < ID_LIKE_SHARE * present_rows:
        return False
    return id_like_name(name) or high - low + 1 <= ID_RANGE_PER_ROW * present_rows


def numeric_unsliceable(
    name: str,
    low: float,
    high: float,
    num_distinct: int,
    present_rows: int,
    integral: bool = False,
    max_values: int = 50,
    missing: int = 0,
) -> Optional[str]:
    """Why a numeric column cannot make a slice, or None; low and high: its range,
    num_distinct: its (estimated) distinct values among the present_rows with one."""
    if numeric_identifier(name, low, high, num_distinct, present_rows, integral, max_values):
        return (
            f'identifier-like (integers, {_distinct_text(num_distinct, present_rows)} in '
            f'{present_rows:,} rows): a slice would be one row'
        )
    if num_distinct == 1 and not missing:
        return f'constant (one value, {format_number(low)}, in every row)'
    return None


def timestamp_name(name: str) -> bool:
    """Numbers are read as epoch seconds only under a name with 'time' or 'date'."""
    lowered = name.lower()
    return 'time' in lowered or 'date' in lowered


def date_parts(values: np.ndarray) -> Dict[str, np.ndarray]:
    """Part -> (rows,) int64 values (year, month 1-12, weekday 0 = Monday, hour 0-23; -1 when
    missing or unreadable) of date/time text (DATE_PATTERN; the time as written, its zone
    ignored) or
    of epoch seconds (UTC, between EPOCH_SECONDS). Vectorised in Arrow, no per-row Python."""
    values = np.asarray(values)
    if values.dtype.kind in 'biuf':
        seconds = values.astype(np.float64)
        with np.errstate(invalid='ignore'):
            readable = (seconds >= EPOCH_SECONDS[0]) & (seconds < EPOCH_SECONDS[1])
        stamps = pa.array(
            np.where(readable, seconds, 0).astype(np.int64), mask=~readable, type=pa.timestamp('s')
        )
        hours = pc.hour(stamps)
    else:
        text = pa.array(values.astype(object), type=pa.string(), from_pandas=True)
        readable = pc.fill_null(pc.match_substring_regex(text, DATE_PATTERN), False)
        text = pc.if_else(readable, text, pa.scalar(None, pa.string()))
        day = pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 10), '/', '-')
        stamps = pc.strptime(day, format='%Y-%m-%d', unit='s', error_is_null=True)
        timed = pc.fill_null(pc.greater_equal(pc.utf8_length(text), 13), False)
        hour_text = pc.if_else(timed, pc.utf8_slice_codeunits(text, 11, 13), '0')
        hours = pc.if_else(timed, pc.cast(hour_text, pa.int64()), pa.scalar(None, pa.int64()))
    parts = {
        'year': pc.year(stamps),
        'month': pc.month(stamps),
        'weekday': pc.day_of_week(stamps),
        'hour': hours,
    }
    return {
        part: np.asarray(pc.fill_null(pc.cast(array, pa.int64()), -1).to_numpy(), np.int64)
        for part, array in parts.items()
    }


def part_text(part: str, value: int) -> str:
    """A part's value as the report prints it: 'Sat', 'Jan', '2012', '14'."""
    names = _PART_TEXT.get(part)
    return names[value - (part == 'month')] if names else str(value)


def date_part_encoders(
    name: str, part_values: Mapping[str, np.ndarray], epoch: bool
) -> List[FeatureEncoder]:
    """One DATE_PART encoder per part with more than one value, named '<name>.<part>', each
    noting the split (a constant column if no part varies). part_values: each part's
    distinct values seen, -1 for missing or unreadable."""
    seen = {part: np.unique(np.asarray(part_values[part], np.int64)) for part in DATE_PARTS}
    kept = [part for part in DATE_PARTS if (seen[part] >= 0).sum() > 1]
    if not kept:
        return [left_out_encoder(name, 'constant (one date or time in every row)')]
    form = 'epoch seconds, UTC' if epoch else 'dates or times'
    note = f"'{name}' ({form}) is sliced by its parts: " + ', '.join(
        f'{name}.{part}' for part in kept
    )
    encoders = []
    for part in kept:
        values = seen[part][seen[part] >= 0]
        labels = [f'{name}.{part} = {part_text(part, int(v))}' for v in values]
        missing_code = -1
        if (seen[part] < 0).any():
            missing_code = len(labels)
            labels.append(f'{name}.{part} is missing')
        encoders.append(
            FeatureEncoder(
                name=f'{name}.{part}',
                kind=DATE_PART,
                labels=labels,
                note=note,
                vocabulary=[str(int(v)) for v in values],
                missing_code=missing_code,
                column=name,
                part=part,
            )
        )
    return encoders
