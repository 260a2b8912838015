"""Beam glue for regression models (search/regression.py holds the logic): the median error
and the residual view's bins from mergeable quantiles sketches in one aggregation, the search
flag per example, and one counting pass over the analysed and training rows per membership
pattern in the candidates and per feature value."""

import dataclasses
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx_bsl import sketches

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.beam.batch import PredictionBatch
from blindspot.error_analysis.search import binning, compact, regression, selection

_EPSILON = 0.001  # rank error of the quantiles sketch: the median is within 0.1% of the rows
_STREAMS = ('error', 'label', 'prediction')


class _QuantilesFn(beam.CombineFn):
    """Regression batches -> {median_error, label_cuts, prediction_cuts}: the median of the
    per-row errors and the inner cuts of VIEW_BINS quantile bins of labels and predictions."""

    def __init__(self, kind: str):
        self._kind = kind

    def create_accumulator(self) -> List[sketches.QuantilesSketch]:
        return [sketches.QuantilesSketch(_EPSILON, 1 << 32, 1) for _ in _STREAMS]

    def add_input(self, accumulator, batch: PredictionBatch):
        errors = regression.row_errors(batch.residual, self._kind)
        for sketch, values in zip(accumulator, (errors, batch.labels, batch.values)):
            sketch.AddValues(pa.array(np.asarray(values, np.float64)))
        return accumulator

    def merge_accumulators(self, accumulators):
        merged, *others = accumulators
        for other in others:
            for into, sketch in zip(merged, other):
                into.Merge(sketch)
        return merged

    def extract_output(self, accumulator) -> Dict:
        def quantiles(sketch, bins: int) -> np.ndarray:
            return sketch.GetQuantiles(bins).flatten().to_numpy()

        errors, labels, predictions = accumulator
        return {
            'median_error': float(quantiles(errors, 2)[1]),
            'label_cuts': np.unique(quantiles(labels, regression.VIEW_BINS)[1:-1]).tolist(),
            'prediction_cuts': np.unique(
                quantiles(predictions, regression.VIEW_BINS)[1:-1]
            ).tolist(),
        }


class FlagAboveMedian(beam.PTransform):
    """Regression PredictionBatches (not empty) -> (the batches with `above_median` set, the
    quantiles singleton of _QuantilesFn)."""

    def __init__(self, kind: str):
        super().__init__()
        self._kind = kind

    def expand(self, batches: beam.PCollection):
        quantiles = batches | 'ErrorQuantiles' >> beam_slices.combine_globally(
            _QuantilesFn(self._kind)
        )
        kind = self._kind
        flagged = batches | 'FlagAboveMedian' >> beam.Map(
            lambda b, q: dataclasses.replace(
                b,
                above_median=regression.above_median(
                    regression.row_errors(b.residual, kind), q['median_error']
                ),
            ),
            beam.pvalue.AsSingleton(quantiles),
        )
        return flagged, quantiles


@dataclasses.dataclass
class RegressionTable:
    """Summed regression.row_values per membership pattern in the candidates and per feature
    value (coarse codes), and the residual view's bins (mergeable)."""

    patterns: np.ndarray  # (m,) uint64, sorted
    sums: np.ndarray  # (m, COLUMNS)
    value_sums: Optional[List[np.ndarray]] = None  # per encoder: (fine codes, COLUMNS)
    heat: Optional[np.ndarray] = None  # (label bins, label bins): actual x predicted
    deciles: Optional[np.ndarray] = None  # (prediction bins, 3): rows, residual, |residual|

    @classmethod
    def merge(cls, tables: Sequence[Optional['RegressionTable']]) -> 'RegressionTable':
        tables = [t for t in tables if t is not None]
        present = [t for t in tables if len(t.patterns)]
        if present:
            patterns, sums = selection.sum_by_pattern(
                np.concatenate([t.patterns for t in present]),
                np.concatenate([t.sums for t in present]),
            )
        else:
            patterns, sums = np.zeros(0, np.uint64), np.zeros((0, regression.COLUMNS))

        def add(arrays):
            arrays = [a for a in arrays if a is not None]
            return sum(arrays[1:], arrays[0].copy()) if arrays else None

        values = [t.value_sums for t in tables if t.value_sums is not None]
        return cls(
            patterns,
            sums,
            [add(per_code) for per_code in zip(*values)] if values else None,
            add([t.heat for t in tables]),
            add([t.deciles for t in tables]),
        )


def _analysed(
    batch: PredictionBatch,
    slice_names: Sequence[str],
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
    quantiles: Dict,
) -> RegressionTable:
    columns = {n: batch.columns[n] for n in slice_names}
    fine = beam_slices.encode_columns(columns, encoders, fine=True)
    values = regression.row_values(batch.residual, batch.above_median, batch.labels)
    patterns, sums = selection.sum_by_pattern(selection.membership(fine, conditions), values)
    value_sums = [
        # (a column left out of slicing has no code)
        selection.sums_by_index(fine[:, j], values, compact.num_fine_codes(encoder))
        if encoder.cardinality
        else np.zeros((0, regression.COLUMNS))
        for j, encoder in enumerate(encoders)
    ]
    label_cuts, prediction_cuts = quantiles['label_cuts'], quantiles['prediction_cuts']
    side = len(label_cuts) + 1
    cells = regression.bin_codes(batch.labels, label_cuts) * side + regression.bin_codes(
        batch.values, label_cuts
    )
    heat = np.bincount(cells, minlength=side * side).reshape(side, side).astype(np.float64)
    deciles = selection.sums_by_index(
        regression.bin_codes(batch.values, prediction_cuts),
        values[:, [regression.ROWS, regression.RESIDUAL, regression.ABSOLUTE]],
        len(prediction_cuts) + 1,
    )
    return RegressionTable(patterns, sums, value_sums, heat, deciles)


def _train(
    columns: Dict[str, np.ndarray],
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
) -> RegressionTable:
    # Training rows may hold values the analysed split has not (then in no slice).
    codes = beam_slices.encode_columns(columns, encoders, strict=False, fine=True)
    values = regression.train_row_values(len(codes))
    return RegressionTable(
        *selection.sum_by_pattern(selection.membership(codes, conditions), values)
    )


class CountRegression(beam.PTransform):
    """Flagged regression batches (not empty) -> singleton RegressionTable, counting over
    these rows and the training rows' slicing columns (train_columns) the membership in the
    candidates (conditions, a singleton from DiscoverSlices), per feature value (encoders)
    and the residual view's bins (quantiles, from FlagAboveMedian)."""

    def __init__(
        self,
        slice_names: Sequence[str],
        encoders: beam.PCollection,
        conditions: beam.PCollection,
        quantiles: beam.PCollection,
        train_columns: beam.PCollection,
    ):
        super().__init__()
        self._slice_names = list(slice_names)
        self._encoders = encoders
        self._conditions = conditions
        self._quantiles = quantiles
        self._train_columns = train_columns

    def expand(self, flagged: beam.PCollection) -> beam.PCollection:
        encoders = beam.pvalue.AsSingleton(self._encoders)
        conditions = beam.pvalue.AsSingleton(self._conditions)
        analysed = flagged | 'CountAnalysed' >> beam.Map(
            _analysed,
            self._slice_names,
            encoders,
            conditions,
            beam.pvalue.AsSingleton(self._quantiles),
        )
        train = self._train_columns | 'CountTrain' >> beam.Map(_train, encoders, conditions)
        return (
            (analysed, train)
            | 'BothSplits' >> beam.Flatten()
            | 'SumRegression'
            >> beam_slices.combine_globally(beam_slices.MergePatternTablesFn(RegressionTable))
        )


def regression_parts(
    table: RegressionTable,
    result,
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    quantiles: Dict,
    kind: str,
) -> Dict:
    """{slices: the search result ranked in the label's units, diagnosis: per listed slice,
    regression: overall numbers and the residual view}."""
    slices = regression.rank_slices(
        result.to_dict(), table.patterns, table.sums, conditions, encoders, kind
    )
    total = table.sums.sum(axis=0) if len(table.sums) else np.zeros(regression.COLUMNS)
    if table.value_sums is not None:
        regression.value_errors(slices, table.value_sums, encoders, kind, total)
    found = regression.diagnose_slices(
        slices, table.patterns, table.sums, conditions, encoders, kind
    )
    view = None
    if table.heat is not None:
        view = regression.residual_view(
            table.heat, table.deciles, quantiles['label_cuts'], quantiles['prediction_cuts']
        )
    return {
        'slices': slices,
        'diagnosis': found,
        'regression': {
            **regression.overall(total, kind),
            'median_error': quantiles['median_error'],
            'residual_view': view,
        },
    }
