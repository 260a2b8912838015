"""Both models on the same examples, in Beam: what report/compare.py judges new, resolved and
persisting slices on.

The current run's rows (example_id, its loss: 1 where the model was wrong, or a regression's
absolute error; raw slicing features) and the baseline report's predictions Parquet
(example_id, correct or abs_error, feature columns) are counted per comparison slice, each side
on its own rows (membership: search/membership.py, with the current run's encoders), then
joined by example_id (CoGroupByKey): for the matched examples, per slice, the pairs whose loss
is larger now (worse), smaller now (better) or the same, and the losses summed. The discordant
pairs feed the paired test: McNemar's for wrong/right, the sign test for absolute errors.
The row-level work is a join and per-key sums, so it runs on any Beam runner; the driver only
reads one Parquet footer for its column names.

The result (the part PART_COMPARISON):
  rows       {current, baseline, matched}: examples in each side and matched by id
  overall    all matched examples: {rows, errors_now, errors_before, worse, better}
  slices     per slice measured: {slice, predicates, problem (why the current rows cannot place
             it, else None), baseline_problem (same for the baseline's columns), current:
             {rows, errors, squares}, baseline: {rows, errors, squares} or None, paired: {rows,
             errors_now, errors_before, worse (wrong now, right before; or a larger absolute
             error now), better (the other way)}}; `errors` are summed losses (a regression's
             summed absolute errors) and `squares` their summed squares
  problem    None
"""

import dataclasses
import json
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.report import compare, files
from blindspot.error_analysis.search import membership
from blindspot.error_analysis.search.binning import FeatureEncoder

PART_COMPARISON = files.PART_COMPARISON
PART_ENCODERS = files.PART_ENCODERS  # the run's FeatureEncoders (membership.encoders_to_json)
_NOW, _BEFORE = 'now', 'before'
# A matched example's cell: its loss the same in both runs, smaller now, larger now.
_SAME, _BETTER, _WORSE = 0, 1, 2
# The predictions Parquet's column each run's loss is read from, first found: a regression's
# absolute error, else whether the class was wrong (not `correct`).
_LOSS_COLUMNS = ('abs_error', 'correct')


@dataclasses.dataclass(frozen=True)
class Rows:
    """A batch of one run's predictions, as far as the comparison reads them."""

    example_ids: np.ndarray  # str
    loss: np.ndarray  # float: 1.0 where the class was wrong, or a regression's absolute error
    columns: Dict[str, np.ndarray]  # raw feature values by column name


def rows_of_batch(batch) -> Rows:
    """The rows of a PredictionBatch (its columns are the raw slicing features)."""
    loss = np.abs(batch.residual) if batch.is_regression else (batch.errors > 0) * 1.0
    return Rows(np.asarray(batch.example_ids, dtype=object), loss, batch.columns)


def rows_of_table(table: pa.Table) -> Rows:
    """The rows of a predictions Parquet table (example_id, a _LOSS_COLUMNS column, feature
    columns)."""
    prefix = files.FEATURE_COLUMN_PREFIX
    if 'abs_error' in table.column_names:
        loss = np.asarray(table.column('abs_error').to_numpy(), dtype=np.float64)
    else:
        loss = 1.0 - np.asarray(table.column('correct').to_numpy(), dtype=np.float64)
    return Rows(
        np.asarray(table.column('example_id').to_pylist(), dtype=object),
        loss,
        {
            name[len(prefix) :]: table.column(name).to_numpy()
            for name in table.column_names
            if name.startswith(prefix)
        },
    )


def feature_types(schema: pa.Schema) -> Dict[str, str]:
    """Raw column name -> Arrow type name of a predictions schema's feature columns."""
    prefix = files.FEATURE_COLUMN_PREFIX
    return {f.name[len(prefix) :]: str(f.type) for f in schema if f.name.startswith(prefix)}


def comparable(baseline: Dict[str, str], current: Dict[str, str]) -> List[str]:
    """The baseline's feature columns that hold values of the same type as the current run's
    (a feature read as a category in one run and as a number in the other is not)."""
    return [name for name, kind in baseline.items() if current.get(name) == kind]


def predictions_of(report_uri: str, report: Dict) -> Tuple[Optional[str], Dict[str, str], str, str]:
    """(glob of a report's predictions Parquet files, their feature types (feature_types),
    the column of their loss (_LOSS_COLUMNS), '') or (None, {}, '', why they cannot be
    read)."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    relative = (report.get('files') or {}).get('predictions')
    if not relative:
        return None, {}, '', 'the report names no predictions files'
    pattern = FileSystems.join(report_uri, relative)
    found = FileSystems.match([pattern])[0].metadata_list
    if not found:
        return None, {}, '', f'no file matches {pattern}'
    with FileSystems.open(found[0].path) as f:
        schema = pq.read_schema(f)
    loss = next((name for name in _LOSS_COLUMNS if name in schema.names), None)
    if 'example_id' not in schema.names or loss is None:
        return None, {}, '', f'{found[0].path} has no column example_id, correct or abs_error'
    return pattern, feature_types(schema), loss, ''


def _memberships(rows: Rows, slices: Sequence[Dict], encoders: List[FeatureEncoder]) -> np.ndarray:
    """(rows, 1 + slices) bool: every row first (the overall counts), then each slice."""
    table = membership.memberships(
        [s['predicates'] for s in slices], rows.columns, membership.by_name(encoders)
    )
    return np.concatenate([np.ones((len(rows.loss), 1), dtype=bool), table], axis=1)


class _Count(beam.DoFn):
    """A batch of rows -> (side, (3, 1 + slices) rows, summed losses and their squares per
    slice), and each row keyed by example_id for the join (output 'keyed'): the current
    side's with its loss and its slices (packed bits), the baseline's with its loss."""

    def __init__(self, side: str):
        self._side = side

    def process(self, rows: Rows, slices: Sequence[Dict], encoders: List[FeatureEncoder]):
        member = _memberships(rows, slices, encoders)
        loss = rows.loss[:, None]
        yield (
            self._side,
            np.stack(
                [member.sum(axis=0), (member * loss).sum(axis=0), (member * loss**2).sum(axis=0)]
            ),
        )
        losses = rows.loss.tolist()
        if self._side == _NOW:
            bits = np.packbits(member, axis=1)
            for i, example_id in enumerate(rows.example_ids):
                yield beam.pvalue.TaggedOutput(
                    'keyed', (example_id, (losses[i], bits[i].tobytes()))
                )
        else:
            for example_id, loss_before in zip(rows.example_ids, losses):
                yield beam.pvalue.TaggedOutput('keyed', (example_id, loss_before))


def _cells(joined: Tuple[str, Dict[str, List]]):
    """((slice bits, cell), (1, loss now, loss before)) per matched example (a repeated example
    pairs with each of its copies once: the same bytes get the same predictions)."""
    _, sides = joined
    for (now, bits), before in zip(sides[_NOW], sides[_BEFORE]):
        cell = _WORSE if now > before else _BETTER if now < before else _SAME
        yield (bits, cell), np.array([1.0, now, before])


def _number(x: float):
    """A count as an int, a sum of absolute errors as a float."""
    return int(x) if float(x).is_integer() else float(x)


def _paired(counts: np.ndarray, losses: np.ndarray, j: int) -> Dict:
    return {
        'rows': int(counts[:, j].sum()),
        'errors_now': _number(losses[0, j]),
        'errors_before': _number(losses[1, j]),
        'worse': int(counts[_WORSE, j]),
        'better': int(counts[_BETTER, j]),
    }


def _side(sums: np.ndarray, j: int) -> Dict:
    return {'rows': int(sums[0, j]), 'errors': _number(sums[1, j]), 'squares': float(sums[2, j])}


def assemble(
    slices: Sequence[Dict],
    encoders: List[FeatureEncoder],
    sums: Dict[str, np.ndarray],
    cells: Sequence[Tuple[Tuple[bytes, int], np.ndarray]],
    current_columns: Sequence[str],
    baseline_columns: Sequence[str],
) -> Dict:
    """The part (module docstring) from each side's sums and the matched examples' cells."""
    n = 1 + len(slices)
    zero = np.zeros((3, n))
    now, before = sums.get(_NOW, zero), sums.get(_BEFORE, zero)
    counts = np.zeros((3, n), dtype=np.int64)
    losses = np.zeros((2, n))  # summed loss now, before
    for (bits, cell), (count, loss_now, loss_before) in cells:
        inside = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=n).astype(bool)
        counts[cell, inside] += int(count)
        losses[:, inside] += np.array([[loss_now], [loss_before]])
    named = membership.by_name(encoders)
    measured = []
    for j, s in enumerate(slices, 1):
        baseline_problem = membership.slice_problem(s['predicates'], named, baseline_columns)
        measured.append(
            {
                'slice': s['slice'],
                'predicates': s['predicates'],
                'problem': membership.slice_problem(s['predicates'], named, current_columns),
                'baseline_problem': baseline_problem,
                'current': _side(now, j),
                'baseline': None if baseline_problem else _side(before, j),
                'paired': _paired(counts, losses, j),
            }
        )
    return {
        'rows': {
            'current': int(now[0, 0]),
            'baseline': int(before[0, 0]),
            'matched': int(counts[:, 0].sum()),
        },
        'overall': _paired(counts, losses, 0),
        'slices': measured,
        'problem': None,
    }


class CompareWithBaseline(beam.PTransform):
    """PCollection[Rows] of the current run -> singleton: the part (module docstring).

    slices: singleton PCollection of the slices to measure ([{slice, predicates}],
    compare.slices_to_measure); encoders: singleton PCollection of the current run's
    FeatureEncoders; baseline_predictions: the baseline's Parquet glob and baseline_columns
    its feature columns (predictions_of); current_columns: the raw columns the rows carry."""

    def __init__(
        self,
        slices: beam.PCollection,
        encoders: beam.PCollection,
        baseline_predictions: str,
        baseline_columns: Sequence[str],
        current_columns: Sequence[str],
        baseline_loss: str = 'correct',
    ):
        super().__init__()
        self._slices = slices
        self._encoders = encoders
        self._pattern = baseline_predictions
        self._baseline_columns = list(baseline_columns)
        self._current_columns = list(current_columns)
        self._baseline_loss = baseline_loss

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        slices = beam.pvalue.AsSingleton(self._slices)
        encoders = beam.pvalue.AsSingleton(self._encoders)
        read = ['example_id', self._baseline_loss]
        read += [files.FEATURE_COLUMN_PREFIX + name for name in self._baseline_columns]
        now = rows | 'CountNow' >> beam.ParDo(_Count(_NOW), slices, encoders).with_outputs(
            'keyed', main='sums'
        )
        before = (
            rows.pipeline
            | 'ReadBaseline' >> beam.io.ReadFromParquetBatched(self._pattern, columns=read)
            | 'BaselineRows' >> beam.Map(rows_of_table)
            | 'CountBefore'
            >> beam.ParDo(_Count(_BEFORE), slices, encoders).with_outputs('keyed', main='sums')
        )
        sums = (
            (now.sums, before.sums)
            | 'BothSums' >> beam.Flatten()
            | 'SumPerSide' >> beam.CombinePerKey(sum)
            | 'Sums' >> beam_slices.combine_globally(beam.combiners.ToDictCombineFn())
        )
        cells = (
            {_NOW: now.keyed, _BEFORE: before.keyed}
            | 'JoinById' >> beam.CoGroupByKey()
            | 'Cells' >> beam.FlatMap(_cells)
            | 'CountCells' >> beam.CombinePerKey(sum)
            | 'AllCells' >> beam_slices.combine_globally(beam.combiners.ToListCombineFn())
        )
        return self._slices | 'Measure' >> beam.Map(
            lambda s, e, sums, cells, *columns: assemble(
                s, e, beam_slices.only(sums, {}), beam_slices.only(cells, []), *columns
            ),
            encoders,
            beam.pvalue.AsList(sums),
            beam.pvalue.AsList(cells),
            self._current_columns,
            self._baseline_columns,
        )


def measure_reports(
    baseline_uri: str,
    baseline: Dict,
    current_uri: str,
    current: Dict,
    beam_args: Sequence[str] = (),
) -> Dict:
    """The part for two reports read from their artifact folders, on a Beam pipeline of its
    own (`beam_args`: its options): for two runs the pipeline did not compare (`compare` of
    any two runs); {'problem': why} when their predictions or the current run's encoders
    cannot be read."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    now_pattern, now_types, now_loss, problem = predictions_of(current_uri, current)
    if problem:
        return {'problem': f"the newer run's predictions: {problem}"}
    base_pattern, base_types, base_loss, problem = predictions_of(baseline_uri, baseline)
    if problem:
        return {'problem': f"the older run's predictions: {problem}"}
    encoders_path = FileSystems.join(current_uri, PART_ENCODERS)
    if not FileSystems.exists(encoders_path):
        return {'problem': f'no {encoders_path} (its report was written before they were saved)'}
    with FileSystems.open(encoders_path) as f:
        encoders = membership.encoders_from_json(json.loads(f.read()))
    slices = compare.slices_to_measure(
        compare.failing_slices(baseline), (current.get('slices') or {}).get('slices') or []
    )
    if now_loss != base_loss:
        return {'problem': 'one run is a regression and the other a classification'}
    read = ['example_id', now_loss] + [files.FEATURE_COLUMN_PREFIX + n for n in now_types]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, PART_COMPARISON)
        with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
            measured = (
                pipeline
                | 'ReadCurrent' >> beam.io.ReadFromParquetBatched(now_pattern, columns=read)
                | 'CurrentRows' >> beam.Map(rows_of_table)
                | 'Compare'
                >> CompareWithBaseline(
                    pipeline | 'Slices' >> beam.Create([slices]),
                    pipeline | 'Encoders' >> beam.Create([encoders]),
                    base_pattern,
                    comparable(base_types, now_types),
                    list(now_types),
                    base_loss,
                )
            )
            _ = measured | 'Save' >> beam.Map(_save_json, path)
        with open(path) as f:
            return json.load(f)


def _save_json(value, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(value, f)


def analysis_parts(
    batches: beam.PCollection,
    slices: beam.PCollection,
    encoders: beam.PCollection,
    schema: pa.Schema,
    baseline: Optional[Dict],
) -> Dict[str, beam.PCollection]:
    """The analysis' parts for comparisons: its encoders (PART_ENCODERS, so `compare` can
    place its slices on rows later) and, with a baseline whose predictions can be read
    (baseline.read_baseline), the measure against them (PART_COMPARISON; else empty, and the
    part is written as its default). `slices`: the singleton search result
    (SliceSearchResult.to_dict()); `schema`: the batches' predictions schema."""
    parts = {PART_ENCODERS: encoders | 'EncodersToJson' >> beam.Map(membership.encoders_to_json)}
    regression = 'abs_error' in schema.names
    if (
        baseline
        and baseline.get('predictions')
        and baseline['predictions_loss'] != ('abs_error' if regression else 'correct')
    ):
        baseline = None  # a regression's baseline was a classifier, or the other way
    if not (baseline and baseline.get('predictions')):
        parts[PART_COMPARISON] = batches.pipeline | 'NotCompared' >> beam.Create([])
        return parts
    to_measure = slices | 'SlicesToMeasure' >> beam.Map(
        lambda result, was: compare.slices_to_measure(was, result['slices']),
        compare.failing_slices(baseline['report']),
    )
    parts[PART_COMPARISON] = (
        batches
        | 'ComparisonRows' >> beam.Map(rows_of_batch)
        | 'CompareWithBaseline'
        >> CompareWithBaseline(
            to_measure,
            encoders,
            baseline['predictions'],
            comparable(baseline['predictions_columns'], feature_types(schema)),
            list(feature_types(schema)),
            baseline['predictions_loss'],
        )
    )
    return parts
