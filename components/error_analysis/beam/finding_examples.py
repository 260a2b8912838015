"""The mistakes under each finding, for a person to read (Ng's "look at the misclassified
examples", one finding at a time): per candidate slice, its most confident mistakes, in one
pass over the prediction batches with the candidates' membership as the selection counts it
(fine codes, search/selection.membership)."""

from typing import Callable, Dict, List, Sequence, Tuple

import apache_beam as beam
import numpy as np

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.beam.batch import PredictionBatch
from blindspot.error_analysis.search import binning, ranges, selection
from blindspot.error_analysis.search.regression import row_severity


def _most_confident_mistakes(
    batch: PredictionBatch,
    slice_names: Sequence[str],
    encoders: Sequence[binning.FeatureEncoder],
    conditions: np.ndarray,
    limit: int,
    example_row: Callable[[PredictionBatch, int], Dict],
) -> List[Tuple[int, Dict]]:
    """(candidate index, example row) for up to `limit` most confident mistakes of this batch
    in each candidate."""
    wrong = np.flatnonzero(batch.errors > 0)
    if not len(wrong) or not len(conditions):
        return []
    columns = {name: batch.columns[name][wrong] for name in slice_names}
    codes = beam_slices.encode_columns(columns, encoders, fine=True)
    count = min(len(conditions), selection.MAX_CANDIDATES)
    bits = selection.pattern_bits(selection.membership(codes, conditions), count)
    order = np.argsort(-batch.severity[wrong], kind='stable')
    found = []
    for candidate in range(count):
        inside = order[bits[order, candidate]][:limit]
        found += [(candidate, _row(batch, int(wrong[i]), example_row)) for i in inside]
    return found


def _row(batch: PredictionBatch, i: int, example_row) -> Dict:
    row = example_row(batch, i)
    row['label_suspect'] = (
        bool(batch.label_suspect[i]) if batch.label_suspect is not None else False
    )
    return row


def _by_text(
    top: Dict[int, List[Dict]],
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
) -> Dict[str, List[Dict]]:
    return {ranges.condition_text(conditions[i], encoders): rows for i, rows in top.items()}


class FindingExamples(beam.PTransform):
    """Flagged PredictionBatches -> singleton {slice text: its `limit` most confident mistakes
    (report rows, most confident first)} for every candidate (conditions: a singleton from
    DiscoverSlices; encoders: from BuildEncoders)."""

    def __init__(
        self,
        slice_names: Sequence[str],
        encoders: beam.PCollection,
        conditions: beam.PCollection,
        limit: int,
        example_row: Callable[[PredictionBatch, int], Dict],
    ):
        super().__init__()
        self._slice_names = list(slice_names)
        self._encoders = encoders
        self._conditions = conditions
        self._limit = limit
        self._example_row = example_row

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        encoders = beam.pvalue.AsSingleton(self._encoders)
        conditions = beam.pvalue.AsSingleton(self._conditions)
        return (
            batches
            | 'MistakesPerCandidate'
            >> beam.FlatMap(
                _most_confident_mistakes,
                self._slice_names,
                encoders,
                conditions,
                self._limit,
                self._example_row,
            )
            | 'MostConfident' >> beam.combiners.Top.PerKey(self._limit, key=row_severity)
            | 'PerCandidate' >> beam.combiners.ToDict()
            | 'ByText' >> beam.Map(_by_text, conditions, encoders)
        )
