"""Apache Beam glue for failing-slice discovery.

All search logic lives in lattice.py (pure numpy); this module only
distributes it: mergeable sketches build the FeatureEncoders, and each level
of the SliceLine lattice is one pass over the encoded batches whose partial
counts are summed by a CombineGlobally. The pipeline shape depends only on
config.max_predicates, so it runs unchanged on a distributed runner.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms import window
from tfx_bsl import sketches

from blindspot.error_analysis.search import (
    binning,
    compact,
    findings,
    lattice,
    ranges,
    selection,
)

# Large batches make per-element overhead negligible in the counting passes.
DEFAULT_ROWS_PER_BATCH = 50_000
# Misra-Gries counts are exact while a feature has at most this many distinct
# values (and approximate heavy hitters beyond).
_MIN_TRACKED_VALUES = 1000
_KMV_BUCKETS = 1024
_QUANTILES_EPSILON = 0.01


@dataclasses.dataclass
class _FeatureSketch:
    """Mergeable summary of one feature; the kind is set by the first batch."""

    kind: Optional[str] = None
    missing: int = 0
    present: int = 0
    values: Optional[sketches.MisraGriesSketch] = None
    distinct: Optional[sketches.KmvSketch] = None
    quantiles: Optional[sketches.QuantilesSketch] = None
    # Numeric only: the distinct values while there are at most num_bins of
    # them, None once there are more.
    few_values: Optional[np.ndarray] = dataclasses.field(default_factory=lambda: np.empty(0))
    integral: bool = True  # numeric only: every value is a whole number
    # While every value reads as a date or time (text, binning.DATE_PATTERN; epoch seconds under a time-like
    # name): each part's distinct values (binning.date_parts); None once one does not.
    parts: Optional[Dict[str, np.ndarray]] = None


class _EncoderStatsFn(beam.CombineFn):
    """ColumnBatches -> one FeatureEncoder per feature, via sketches."""

    def __init__(self, feature_names: Sequence[str], num_bins: int, max_values: int):
        self._feature_names = list(feature_names)
        self._num_bins = num_bins
        self._max_values = max_values

    def create_accumulator(self) -> Dict[str, _FeatureSketch]:
        return {name: _FeatureSketch() for name in self._feature_names}

    def add_input(
        self, accumulator: Dict[str, _FeatureSketch], batch: lattice.ColumnBatch
    ) -> Dict[str, _FeatureSketch]:
        for name in self._feature_names:
            self._add_values(name, accumulator[name], batch.columns[name])
        return accumulator

    def _add_values(self, name: str, sketch: _FeatureSketch, values: np.ndarray) -> None:
        numeric = values.dtype.kind in 'biuf'  # bool, int, unsigned, float
        if sketch.kind is None:
            self._start(name, sketch, binning.NUMERIC if numeric else binning.CATEGORICAL)
        elif numeric != (sketch.kind == binning.NUMERIC):
            raise ValueError(f'{name}: numeric in some batches, not in others')
        if numeric:
            values = values.astype(np.float64)
            missing = np.isnan(values)
            present = values[~missing]
            sketch.quantiles.AddValues(pa.array(present))
            sketch.distinct.AddValues(pa.array(present))
            sketch.integral = sketch.integral and bool(np.all(present == np.round(present)))
            if sketch.few_values is not None:
                sketch.few_values = self._capped_union(sketch.few_values, np.unique(present))
        else:
            missing = (values == None) | (values == '')  # noqa: E711 (element-wise on an object array)
            strings = pa.array(values, mask=missing, type=pa.large_string())
            sketch.values.AddValues(strings)
            sketch.distinct.AddValues(strings)
        if sketch.parts is not None:
            sketch.parts = _union_parts(sketch.parts, _batch_parts(values[~missing]))
        sketch.missing += int(missing.sum())
        sketch.present += int((~missing).sum())

    def _start(self, name: str, sketch: _FeatureSketch, kind: str) -> None:
        sketch.kind = kind
        sketch.distinct = sketches.KmvSketch(_KMV_BUCKETS)
        if kind == binning.NUMERIC:
            sketch.quantiles = sketches.QuantilesSketch(_QUANTILES_EPSILON, 1 << 32, 1)
        else:
            sketch.values = sketches.MisraGriesSketch(
                max(_MIN_TRACKED_VALUES, 10 * self._max_values)
            )
        if kind == binning.CATEGORICAL or binning.timestamp_name(name):
            sketch.parts = {part: np.empty(0, np.int64) for part in binning.DATE_PARTS}

    def _capped_union(
        self, left: Optional[np.ndarray], right: Optional[np.ndarray]
    ) -> Optional[np.ndarray]:
        if left is None or right is None:
            return None
        union = np.union1d(left, right)
        return union if len(union) <= self._num_bins else None

    def merge_accumulators(
        self, accumulators: List[Dict[str, _FeatureSketch]]
    ) -> Dict[str, _FeatureSketch]:
        merged, *others = accumulators
        for other in others:
            for name in self._feature_names:
                self._merge(name, merged[name], other[name])
        return merged

    def _merge(self, name: str, into: _FeatureSketch, other: _FeatureSketch) -> None:
        if other.kind is None:
            return
        if into.kind is None:
            self._start(name, into, other.kind)
        elif into.kind != other.kind:
            raise ValueError(f'{name}: numeric in some batches, not in others')
        into.missing += other.missing
        into.present += other.present
        into.distinct.Merge(other.distinct)
        into.parts = _union_parts(into.parts, other.parts)
        if into.kind == binning.NUMERIC:
            into.quantiles.Merge(other.quantiles)
            into.few_values = self._capped_union(into.few_values, other.few_values)
            into.integral = into.integral and other.integral
        else:
            into.values.Merge(other.values)

    def extract_output(
        self, accumulator: Dict[str, _FeatureSketch]
    ) -> List[binning.FeatureEncoder]:
        return [
            encoder
            for name in self._feature_names
            for encoder in self._encoders(name, accumulator[name])
        ]

    def _encoders(self, name: str, sketch: _FeatureSketch) -> List[binning.FeatureEncoder]:
        """The column's encoder, or one per date part for a date or timestamp column."""
        if sketch.present and sketch.parts is not None:
            return binning.date_part_encoders(
                name, sketch.parts, epoch=sketch.kind == binning.NUMERIC
            )
        return [self._encoder(name, sketch)]

    def _encoder(self, name: str, sketch: _FeatureSketch) -> binning.FeatureEncoder:
        if sketch.kind == binning.NUMERIC:
            quantiles = sketch.quantiles.GetQuantiles(self._num_bins).flatten().to_numpy()
            reason = None
            if sketch.present:
                few = None if sketch.few_values is None else len(sketch.few_values)
                reason = binning.numeric_unsliceable(
                    name,
                    float(quantiles[0]),
                    float(quantiles[-1]),
                    few or int(round(sketch.distinct.Estimate())),
                    sketch.present,
                    integral=sketch.integral,
                    max_values=self._max_values,
                    missing=sketch.missing,
                )
            if reason:
                return binning.left_out_encoder(name, reason)
            return binning.numeric_encoder(
                name,
                quantiles,
                missing_count=sketch.missing,
                distinct_values=sketch.few_values,
                num_bins=self._num_bins,
                sub_bins=binning.SUB_BINS,
                integral=sketch.integral,
            )
        value_counts = {}
        num_distinct = 0
        if sketch.kind == binning.CATEGORICAL:
            value_counts = {
                item['values'].decode('utf-8'): item['counts']
                for item in sketch.values.Estimate().to_pylist()
            }
            num_distinct = int(round(sketch.distinct.Estimate()))
            ranked = sorted(value_counts, key=lambda value: -value_counts[value])
            reason = binning.categorical_unsliceable(
                ranked[: self._max_values],
                max(num_distinct, len(value_counts)),
                sketch.present,
                self._max_values,
                sketch.missing,
            )
            if reason:
                return binning.left_out_encoder(name, reason)
        return binning.categorical_encoder(
            name,
            value_counts,
            missing_count=sketch.missing,
            max_values=self._max_values,
            num_distinct=num_distinct,
        )


def _batch_parts(present: np.ndarray) -> Optional[Dict[str, np.ndarray]]:
    """The distinct date parts of a batch's present values, or None if one is not a date
    (text matching binning.DATE_PATTERN; numbers: epoch seconds in binning.EPOCH_SECONDS)."""
    parts = binning.date_parts(present)
    if (parts['year'] < 0).any():
        return None
    return {part: np.unique(values) for part, values in parts.items()}


def _union_parts(
    left: Optional[Dict[str, np.ndarray]], right: Optional[Dict[str, np.ndarray]]
) -> Optional[Dict[str, np.ndarray]]:
    if left is None or right is None:
        return None
    return {part: np.union1d(left[part], right[part]) for part in binning.DATE_PARTS}


class BuildEncoders(beam.PTransform):
    """PCollection[ColumnBatch] -> singleton list[FeatureEncoder].

    Numeric columns (bool, int or float dtype) are cut into num_bins quantile
    bins (one code per value if they have at most num_bins distinct values);
    other (str) columns keep their max_values most frequent values.
    """

    def __init__(self, feature_names: Sequence[str], num_bins: int = 4, max_values: int = 50):
        super().__init__()
        self._combine_fn = _EncoderStatsFn(feature_names, num_bins, max_values)

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | 'Sketch' >> beam.CombineGlobally(self._combine_fn)


class _Rebatch(beam.DoFn):
    """Concatenates small ColumnBatches into ones of >= rows_per_batch rows."""

    def __init__(self, rows_per_batch: int):
        self._rows_per_batch = rows_per_batch
        self._pending: List[lattice.ColumnBatch] = []
        self._pending_rows = 0

    def start_bundle(self):
        self._pending, self._pending_rows = [], 0

    def process(self, batch: lattice.ColumnBatch):
        if batch.num_rows >= self._rows_per_batch:
            yield batch
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._rows_per_batch:
            yield self._flush()

    def finish_bundle(self):
        if self._pending:
            yield window.GlobalWindows.windowed_value(self._flush())

    def _flush(self) -> lattice.ColumnBatch:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if len(pending) == 1:
            return pending[0]
        return lattice.ColumnBatch(
            columns={
                name: np.concatenate([batch.columns[name] for batch in pending])
                for name in pending[0].columns
            },
            errors=np.concatenate([batch.errors for batch in pending]),
            example_ids=np.concatenate([batch.example_ids for batch in pending]),
        )


def encode_columns(
    columns: Dict[str, np.ndarray],
    encoders: Sequence[binning.FeatureEncoder],
    strict: bool = True,
    fine: bool = False,
) -> np.ndarray:
    """(rows, features) int32 codes, column j from encoders[j] (strict: see
    FeatureEncoder.encode); fine: the fine codes that findings' conditions are written in."""
    rows = len(next(iter(columns.values()))) if columns else 0
    codes = np.empty((rows, len(encoders)), dtype=np.int32)
    for column, encoder in enumerate(encoders):
        encode = encoder.encode_fine if fine else encoder.encode
        codes[:, column] = encode(columns[encoder.source_column], strict)
    return codes


def _encode(
    batch: lattice.ColumnBatch, encoders: Sequence[binning.FeatureEncoder]
) -> compact.EncodedBatch:
    return compact.EncodedBatch.pack(
        encode_columns(batch.columns, encoders, fine=True),
        batch.errors,
        lattice.holdout_mask(batch.example_ids),
        encoders,
    )


def _count(batch: compact.EncodedBatch, candidates: lattice.Candidates) -> np.ndarray:
    return lattice.count_candidates(batch.codes(), batch.errors, batch.holdout, candidates)


def _count_ranges(batch: compact.EncodedBatch, jobs: ranges.RangeJobs) -> np.ndarray:
    return ranges.count_ranges(batch.codes(), batch.fine(), batch.errors, batch.holdout, jobs)


def _count_patterns(batch: compact.EncodedBatch, conditions: np.ndarray) -> selection.PatternTable:
    return selection.PatternTable.count(batch.fine(), batch.errors, batch.holdout, conditions)


class MergePatternTablesFn(beam.CombineFn):
    """Merges per-batch tables keyed by membership pattern (a class with a `merge` of a list,
    like selection.PatternTable)."""

    def __init__(self, table_class=selection.PatternTable):
        self._table_class = table_class

    def create_accumulator(self) -> List:
        return []

    def add_input(self, tables, table):
        return [self._table_class.merge(tables + [table])]

    def merge_accumulators(self, accumulators):
        return [self._table_class.merge([t for tables in accumulators for t in tables])]

    def extract_output(self, tables):
        return self._table_class.merge(tables)


def _initial_state(
    encoders: Sequence[binning.FeatureEncoder], config: lattice.SliceFinderConfig
) -> lattice.SearchState:
    return lattice.initial_state([encoder.cardinality for encoder in encoders], config)


class _SumCountsFn(beam.CombineFn):
    """Sums per-batch (candidates, 4) count arrays; None if no batches."""

    def create_accumulator(self) -> Optional[np.ndarray]:
        return None

    def add_input(self, total: Optional[np.ndarray], counts: np.ndarray) -> np.ndarray:
        if total is None:
            return np.array(counts, dtype=np.int64)
        total += counts
        return total

    def merge_accumulators(self, totals: List[Optional[np.ndarray]]) -> Optional[np.ndarray]:
        merged = None
        for total in totals:
            if total is not None:
                merged = self.add_input(merged, total)
        return merged

    def extract_output(self, total: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return total


def combine_globally(fn, *args, **kwargs) -> beam.PTransform:
    """CombineGlobally without Beam's default-value steps: those add four transforms and two
    stages per combine, a large share of the analysis's fixed cost on small data. On empty
    input the result is empty, not fn's value for no input: read it as a side input with
    `beam.pvalue.AsList` and `only`, or only where the input cannot be empty."""
    return beam.CombineGlobally(fn, *args, **kwargs).without_defaults()


def only(values: List, default=None):
    """The value of a `combine_globally` read through AsList; `default` when there was no input."""
    return values[0] if values else default


def sum_arrays(arrays, shape) -> np.ndarray:
    """Sum of numpy arrays of one shape (a CombineGlobally function; zeros if none)."""
    total = np.zeros(shape)
    for array in arrays:
        total += array
    return total


class DiscoverSlices(beam.PTransform):
    """PCollection[ColumnBatch] -> singleton SliceSearchResult.

    Encodes the batches with the encoders (a singleton PCollection from
    BuildEncoders), then runs one counting pass per lattice level: candidates
    come from the previous level's state as a side input, per-batch counts
    are summed globally and folded into the next state.

    Once applied, `conditions` is the singleton PCollection of the refined candidates'
    conditions, so later passes can count membership in the findings.
    """

    def __init__(
        self,
        encoders: beam.PCollection,
        config: lattice.SliceFinderConfig,
        rows_per_batch: int = DEFAULT_ROWS_PER_BATCH,
    ):
        super().__init__()
        self._encoders = encoders
        self._config = config
        self._rows_per_batch = rows_per_batch
        self.conditions: Optional[beam.PCollection] = None

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        encoders = beam.pvalue.AsSingleton(self._encoders)
        encoded = (
            batches
            | 'Rebatch' >> beam.ParDo(_Rebatch(self._rows_per_batch))
            | 'Encode' >> beam.Map(_encode, encoders)
        )
        state = self._encoders | 'InitialState' >> beam.Map(_initial_state, self._config)
        for level in range(1, self._config.max_predicates + 1):
            candidates = beam.pvalue.AsSingleton(
                state | f'Candidates{level}' >> beam.Map(lattice.generate_candidates)
            )
            counts = (
                encoded
                | f'Count{level}' >> beam.Map(_count, candidates)
                | f'Sum{level}' >> combine_globally(_SumCountsFn())
            )
            state = state | f'Update{level}' >> beam.Map(
                lambda s, c, totals: lattice.next_level(s, c, only(totals)),
                candidates,
                beam.pvalue.AsList(counts),
            )
        jobs = beam.pvalue.AsSingleton(state | 'RangeJobs' >> beam.Map(ranges.range_jobs, encoders))
        range_counts = (
            encoded
            | 'CountRanges' >> beam.Map(_count_ranges, jobs)
            | 'SumRanges' >> combine_globally(_SumCountsFn())
        )
        self.conditions = state | 'RefineRanges' >> beam.Map(
            lambda s, e, j, totals: ranges.refine(s, e, j, only(totals)),
            encoders,
            jobs,
            beam.pvalue.AsList(range_counts),
        )
        conditions = beam.pvalue.AsSingleton(self.conditions)
        table = (
            encoded
            | 'CountPatterns' >> beam.Map(_count_patterns, conditions)
            | 'SumPatterns' >> combine_globally(MergePatternTablesFn())
        )
        return state | 'Summarize' >> beam.Map(
            lambda s, e, c, tables: findings.summarize(
                s, e, c, only(tables, selection.PatternTable.merge([]))
            ),
            encoders,
            conditions,
            beam.pvalue.AsList(table),
        )
