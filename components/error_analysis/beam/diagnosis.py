"""Beam glue for the per-finding diagnosis (search/diagnosis.py holds the logic): class
thresholds for confident learning in one aggregation pass, the suspect flag per example, the
uniform sample of training rows the model is run on (by example id, so the same rows in
every run), and one counting pass over the analysed and training rows per membership
pattern."""

import dataclasses
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
import numpy as np

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.beam.batch import PredictionBatch
from blindspot.error_analysis.search import binning, diagnosis


class FlagLabelSuspects(beam.PTransform):
    """PCollection[PredictionBatch] (not empty) -> the same batches with `label_suspect` set,
    and the per-class thresholds (a singleton) that decided it."""

    def __init__(self, num_classes: int):
        super().__init__()
        self._num_classes = num_classes

    def expand(self, batches: beam.PCollection):
        num_classes = self._num_classes
        thresholds = (
            batches
            | 'ClassProbabilitySums'
            >> beam.Map(
                lambda b: diagnosis.class_probability_sums(b.probabilities, b.labels, num_classes)
            )
            | 'SumClassProbabilities'
            >> beam_slices.combine_globally(beam_slices.sum_arrays, shape=(2, num_classes))
            | 'Thresholds' >> beam.Map(diagnosis.class_thresholds)
        )
        flagged = batches | 'FlagSuspects' >> beam.Map(_flag, beam.pvalue.AsSingleton(thresholds))
        return flagged, thresholds


@dataclasses.dataclass
class TrainRows:
    """A batch of training rows: the slicing columns of every row, and the model's mistakes
    (1/0) on those in the inference sample, NaN on the others."""

    columns: Dict[str, np.ndarray]
    errors: np.ndarray


_NO_ROW = np.iinfo(np.uint64).max


def sample_keys(example_ids: Sequence[str]) -> np.ndarray:
    """uint64 per example from its id (a hash of its bytes): uniform, and the same in every
    run, so the rows with the smallest keys are a reproducible uniform sample."""
    return np.array([int(i, 16) for i in example_ids], dtype=np.uint64)


class SampleCutoffFn(beam.CombineFn):
    """Sample keys (arrays) -> the largest key of the `size` smallest: rows with a key up to it
    form the sample (every row when there are fewer; None when size is 0)."""

    def __init__(self, size: int):
        self._size = size

    def _smallest(self, keys: np.ndarray) -> np.ndarray:
        if len(keys) <= self._size:
            return keys
        return np.partition(keys, self._size - 1)[: self._size]

    def create_accumulator(self) -> np.ndarray:
        return np.zeros(0, np.uint64)

    def add_input(self, smallest: np.ndarray, keys: np.ndarray) -> np.ndarray:
        return self._smallest(np.concatenate([smallest, keys]))

    def merge_accumulators(self, accumulators) -> np.ndarray:
        return self._smallest(np.concatenate(list(accumulators)))

    def extract_output(self, smallest: np.ndarray) -> Optional[int]:
        if not self._size:
            return None
        return int(smallest.max()) if len(smallest) >= self._size else int(_NO_ROW)


def in_sample(example_ids: Sequence[str], cutoff: Optional[int]) -> np.ndarray:
    """Positions of the rows in the sample that `cutoff` (SampleCutoffFn) bounds."""
    if cutoff is None:
        return np.zeros(0, np.int64)
    return np.flatnonzero(sample_keys(example_ids) <= np.uint64(cutoff))


def _flag(batch: PredictionBatch, thresholds: np.ndarray) -> PredictionBatch:
    suspects = diagnosis.label_suspects(batch.probabilities, batch.labels, thresholds)
    return dataclasses.replace(batch, label_suspect=suspects)


def _analysed_sums(
    batch: PredictionBatch,
    slice_names: Sequence[str],
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
) -> diagnosis.PatternSums:
    codes = beam_slices.encode_columns(
        {n: batch.columns[n] for n in slice_names}, encoders, fine=True
    )
    values = diagnosis.row_values(batch.errors, batch.label_suspect, batch.confidence)
    return diagnosis.PatternSums.count(codes, conditions, values)


def _train_sums(
    rows: TrainRows,
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
) -> diagnosis.PatternSums:
    # Training rows may hold values the analysed split has not (then in no slice).
    codes = beam_slices.encode_columns(rows.columns, encoders, strict=False, fine=True)
    return diagnosis.PatternSums.count(
        codes, conditions, diagnosis.train_row_values(len(codes), rows.errors)
    )


def _diagnoses(
    table: diagnosis.PatternSums,
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    thresholds: np.ndarray,
    train_sample: int,
) -> Dict:
    return {
        'overall': diagnosis.overall(table),
        'train_sample': train_sample,
        'thresholds': [None if np.isnan(t) else float(t) for t in thresholds],
        'candidates': diagnosis.diagnose_candidates(table, conditions, encoders),
    }


class DiagnoseCandidates(beam.PTransform):
    """Flagged PredictionBatches (not empty) -> singleton {overall, thresholds, candidates:
    slice text -> diagnosis}, counting membership in the candidates (conditions, a singleton
    from DiscoverSlices) over these rows and over the training rows (TrainRows; the model was
    run on a uniform sample of at most train_sample of them)."""

    def __init__(
        self,
        slice_names: Sequence[str],
        encoders: beam.PCollection,
        conditions: beam.PCollection,
        thresholds: beam.PCollection,
        train_columns: beam.PCollection,
        train_sample: int = 0,
    ):
        super().__init__()
        self._train_sample = train_sample
        self._slice_names = list(slice_names)
        self._encoders = encoders
        self._conditions = conditions
        self._thresholds = thresholds
        self._train_columns = train_columns

    def expand(self, flagged: beam.PCollection) -> beam.PCollection:
        encoders = beam.pvalue.AsSingleton(self._encoders)
        conditions = beam.pvalue.AsSingleton(self._conditions)
        analysed = flagged | 'CountAnalysed' >> beam.Map(
            _analysed_sums, self._slice_names, encoders, conditions
        )
        train = self._train_columns | 'CountTrain' >> beam.Map(_train_sums, encoders, conditions)
        table = (
            (analysed, train)
            | 'BothSplits' >> beam.Flatten()
            | 'SumDiagnostics'
            >> beam_slices.combine_globally(beam_slices.MergePatternTablesFn(diagnosis.PatternSums))
        )
        return table | 'Diagnose' >> beam.Map(
            _diagnoses,
            conditions,
            encoders,
            beam.pvalue.AsSingleton(self._thresholds),
            self._train_sample,
        )


def suspect_rows(batch: PredictionBatch, n: int, example_row) -> List[Dict]:
    """This batch's n suspects with the lowest probability of their given label, as report
    rows (example_row(batch, i) builds one) with that probability."""
    suspects = np.flatnonzero(batch.label_suspect)
    given = batch.probabilities[suspects, batch.labels[suspects]]
    order = np.argsort(given, kind='stable')[:n]
    return [
        {**example_row(batch, int(suspects[i])), 'label_probability': float(given[i])}
        for i in order
    ]
