"""The ErrorAnalysis Beam pipeline: one inference pass, then aggregations that each end in a
small JSON part file. Per-example work happens in batches inside Beam, so the same pipeline
runs on the DirectRunner, Dataflow, Flink or Spark."""

import base64
import dataclasses
import functools
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from blindspot.error_analysis.beam import comparison as beam_comparison
from blindspot.error_analysis.beam import diagnosis as beam_diagnosis
from blindspot.error_analysis.beam import regression as beam_regression
from blindspot.error_analysis.beam import slices as beam_slices
from blindspot.error_analysis.beam.finding_examples import FindingExamples
from blindspot.error_analysis.beam.predictions import PredictionBatch
from blindspot.error_analysis.report.files import FEATURE_COLUMN_PREFIX, PREDICTIONS_DIR
from blindspot.error_analysis.search import confusion, diagnosis, lattice
from blindspot.error_analysis.search import regression as regression_rules
from blindspot.error_analysis.search.regression import row_severity
from blindspot.error_analysis.tags.tag_rules import TagRule

PART_TOTALS = 'totals.json'
PART_HARDEST = 'hardest.json'
PART_SLICES = 'slices.json'
PART_GALLERY = 'gallery.json'
PART_TAGS = 'tags.json'
PART_DIAGNOSIS = 'diagnosis.json'
PART_SUSPECTS = 'suspects.json'
PART_FINDING_EXAMPLES = 'finding_examples.json'
PART_REGRESSION = 'regression.json'  # regression models: overall numbers, residual view
GALLERY_PER_PAIR = 12


@dataclasses.dataclass(frozen=True)
class AnalysisParams:
    model_dir: str
    label_key: str
    num_classes: int
    slice_features: Dict[str, str]  # name -> 'int' | 'float' | 'string' | 'int_category'
    num_bins: int
    max_values_per_feature: int
    finder: lattice.SliceFinderConfig
    num_hardest: int
    transformed_features: Tuple[str, ...] = ()  # slice features read from Transform
    image: Optional[Tuple[str, int, int]] = None  # (raw bytes feature, height, width)
    tag_rules: Tuple[TagRule, ...] = ()  # parsed once by the executor
    # Read, not sliced on: features the tag rules use, and those the label is computed from
    # (kept out of serving by the schema), shown beside each finding's mistakes.
    unsliced_features: Tuple[str, ...] = ()
    mistakes_per_finding: int = 50
    label_vocabulary: Tuple[str, ...] = ()  # class names, for a raw label holding strings
    # A regression model: the per-example error its findings are measured in ('absolute' or
    # 'squared', search/regression.py); None for a classifier.
    regression_error: Optional[str] = None
    train_sample: int = 100_000  # most training rows the model is run on (train error)


class _Predict(beam.DoFn):
    """Runs the model on batches of serialized examples; the model loads once per worker."""

    def __init__(self, params: AnalysisParams):
        self._params = params
        self._predictor = None

    def setup(self):
        import tensorflow as tf

        from blindspot.error_analysis.beam.predictions import Predictor

        dtypes = {
            'int': tf.int64,
            'int_category': tf.int64,
            'float': tf.float32,
            'string': tf.string,
        }
        transformed = self._params.transformed_features
        spec = {
            name: tf.io.VarLenFeature(dtypes[kind])
            for name, kind in self._params.slice_features.items()
            if name not in transformed
        }
        self._predictor = Predictor(
            self._params.model_dir,
            self._params.label_key,
            spec,
            transformed,
            self._params.label_vocabulary,
            regression=self._params.regression_error is not None,
        )

    def process(self, serialized: List[bytes]):
        batch = self._predictor.predict(serialized)
        _ids_to_categories(batch.columns, self._params.slice_features)
        if self._params.image:
            batch = dataclasses.replace(batch, images=_images(serialized, self._params.image[0]))
            yield beam.pvalue.TaggedOutput('gallery', _mistaken_images(batch))
        yield batch


class _TrainRows(_Predict):
    """Batches of serialized training examples -> TrainRows: the slicing features (and those
    tag rules read) of every row, for coverage, and the model's mistakes on the rows in the
    inference sample (cutoff: beam_diagnosis.SampleCutoffFn's, through AsList), for train
    error."""

    def __init__(self, params: AnalysisParams, names: Sequence[str]):
        super().__init__(params)
        self._names = list(names)

    def process(self, serialized: List[bytes], cutoff: List):
        from blindspot.error_analysis.beam.predictions import example_ids

        columns = self._predictor.columns(serialized)
        _ids_to_categories(columns, self._params.slice_features)
        errors = np.full(len(serialized), np.nan)
        chosen = beam_diagnosis.in_sample(example_ids(serialized), beam_slices.only(cutoff))
        if len(chosen):
            errors[chosen] = self._predictor.predict([serialized[i] for i in chosen]).errors
        yield beam_diagnosis.TrainRows({name: columns[name] for name in self._names}, errors)


def _sample_keys(serialized: List[bytes]) -> np.ndarray:
    from blindspot.error_analysis.beam.predictions import example_ids

    return beam_diagnosis.sample_keys(example_ids(serialized))


def _ids_to_categories(columns: Dict[str, np.ndarray], slice_features: Dict[str, str]) -> None:
    for name, kind in slice_features.items():
        if kind == 'int_category':
            columns[name] = _ids_as_text(columns[name])


def _images(serialized: List[bytes], image_key: str) -> np.ndarray:
    """Each example's raw image bytes (an object array)."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, {image_key: tf.io.FixedLenFeature([], tf.string)})
    return np.array(list(parsed[image_key].numpy()), dtype=object)


def _mistaken_images(batch: PredictionBatch) -> List[Tuple[Tuple[int, int], Dict]]:
    """((true, predicted), record with the raw image) for each mistake of the batch."""
    return [
        (
            (int(batch.labels[i]), int(batch.predicted[i])),
            {
                'example_id': str(batch.example_ids[i]),
                'confidence': float(batch.confidence[i]),
                'image': base64.b64encode(batch.images[i]).decode(),
            },
        )
        for i in np.flatnonzero(batch.errors > 0)
    ]


def _ids_as_text(values: np.ndarray) -> np.ndarray:
    """Integer ids (NaN = missing) as category strings, so they are sliced by value."""
    out = np.full(len(values), None, dtype=object)
    present = ~np.isnan(values)
    out[present] = values[present].astype(np.int64).astype(str)
    return out


def _totals(batch: PredictionBatch, num_classes: int) -> np.ndarray:
    """Flattened confusion counts plus the summed loss, so one sum combines both."""
    counts = confusion.confusion_counts(batch.labels, batch.predicted, num_classes)
    return np.append(counts.ravel().astype(np.float64), batch.loss.sum())


def _worst_errors(batch: PredictionBatch, n: int) -> List[Dict]:
    """This batch's n worst mistakes (PredictionBatch.severity), with their feature values."""
    wrong = np.flatnonzero(batch.errors > 0)
    wrong = wrong[np.argsort(-batch.severity[wrong], kind='stable')[:n]]
    return [example_row(batch, int(i)) for i in wrong]


def example_row(batch: PredictionBatch, i: int) -> Dict:
    """One example as the report lists it, with its feature values."""
    features = {}
    for name, values in batch.columns.items():
        value = values[i]
        features[name] = (
            None
            if value is None or (isinstance(value, float) and np.isnan(value))
            else (value if isinstance(value, str) else float(value))
        )
    if batch.is_regression:
        row = {
            'example_id': str(batch.example_ids[i]),
            'label': float(batch.labels[i]),
            'predicted': float(batch.values[i]),
            'residual': float(batch.residual[i]),
            'abs_error': float(abs(batch.residual[i])),
            'features': features,
        }
        return row
    row = {
        'example_id': str(batch.example_ids[i]),
        'label': int(batch.labels[i]),
        'predicted': int(batch.predicted[i]),
        'confidence': float(batch.confidence[i]),
        'loss': float(batch.loss[i]),
        'features': features,
    }
    if batch.images is not None:
        row['image'] = base64.b64encode(batch.images[i]).decode()
    return row


def predictions_schema(
    slice_features: Dict[str, str], num_classes: int, regression: bool = False
) -> pa.Schema:
    """Columns of the predictions Parquet: per example its label, prediction and how wrong
    (a regression's residual = prediction - label, absolute and squared error, and the search
    flag above_median; a classifier's class probabilities), then the slicing features."""
    fields = [
        ('example_id', pa.string()),
        ('label', pa.float64()),
        ('predicted', pa.float64()),
        ('residual', pa.float64()),
        ('abs_error', pa.float64()),
        ('squared_error', pa.float64()),
        ('above_median', pa.bool_()),
    ]
    if not regression:
        fields = _classification_fields(num_classes)
    fields += [
        (
            FEATURE_COLUMN_PREFIX + name,
            pa.string() if kind in ('string', 'int_category') else pa.float64(),
        )
        for name, kind in slice_features.items()
    ]
    return pa.schema(fields)


def _classification_fields(num_classes: int) -> List[Tuple[str, pa.DataType]]:
    fields = [
        ('example_id', pa.string()),
        ('label', pa.int64()),
        ('predicted', pa.int64()),
        ('correct', pa.bool_()),
        ('confidence', pa.float64()),
        ('loss', pa.float64()),
        ('label_suspect', pa.bool_()),
    ]
    return fields + [(f'prob_{c}', pa.float64()) for c in range(num_classes)]


def _to_table(batch: PredictionBatch, schema: pa.Schema) -> pa.Table:
    if batch.is_regression:
        data = {
            'example_id': batch.example_ids.astype(str),
            'label': batch.labels,
            'predicted': batch.values,
            'residual': batch.residual,
            'abs_error': np.abs(batch.residual),
            'squared_error': batch.residual**2,
            'above_median': batch.above_median,
        }
        data.update({FEATURE_COLUMN_PREFIX + n: v for n, v in batch.columns.items()})
        return pa.Table.from_pydict({f.name: data[f.name] for f in schema}, schema=schema)
    data = {
        'example_id': batch.example_ids.astype(str),
        'label': batch.labels,
        'predicted': batch.predicted,
        'correct': batch.errors == 0,
        'confidence': batch.confidence,
        'loss': batch.loss,
        'label_suspect': batch.label_suspect,
    }
    for c in range(batch.probabilities.shape[1]):
        data[f'prob_{c}'] = batch.probabilities[:, c]
    for name, values in batch.columns.items():
        data[FEATURE_COLUMN_PREFIX + name] = values
    return pa.Table.from_pydict({f.name: data[f.name] for f in schema}, schema=schema)


# Parts that can have no value (no mistakes, no label suspects, no tags): written as these, so
# every part a report reads exists whatever the data.
PART_DEFAULTS = {
    PART_HARDEST: [],
    PART_SUSPECTS: [],
    PART_GALLERY: [],
    beam_comparison.PART_COMPARISON: None,  # no baseline predictions measured
}


class _WriteParts(beam.DoFn):
    """[(part name, value)] -> each value as JSON in output_dir/name, written under a
    temporary name and renamed, so a retried or killed worker leaves no truncated part; a part
    in `defaults` that got no value is written with its default. One step writes every part:
    a WriteToText per part was a dozen Beam stages each, most of the analysis's fixed cost on
    small data."""

    def __init__(self, output_dir: str, defaults: Dict[str, object]):
        self._output_dir = output_dir
        self._defaults = defaults

    def process(self, parts: List[Tuple[str, object]]) -> None:
        for name, value in {**self._defaults, **dict(parts)}.items():
            path = FileSystems.join(self._output_dir, name)
            partial = path + '.partial'
            with FileSystems.create(partial) as f:
                f.write(json.dumps(value).encode('utf-8'))
            FileSystems.rename([partial], [path])


def _write_parts(parts: Dict[str, beam.PCollection], output_dir: str) -> None:
    """Writes each singleton PCollection in `parts` (part name -> PCollection) as one file, and
    the defaults of those among PART_DEFAULTS that hold no value."""
    named = [
        pcoll | f'Name{name.split(".")[0].title()}' >> beam.Map(lambda value, n=name: (n, value))
        for name, pcoll in parts.items()
    ]
    defaults = {name: value for name, value in PART_DEFAULTS.items() if name in parts}
    _ = (
        named
        | 'AllParts' >> beam.Flatten()
        | 'GatherParts' >> beam_slices.combine_globally(beam.combiners.ToListCombineFn())
        | 'WriteParts' >> beam.ParDo(_WriteParts(output_dir, defaults))
    )


def build_analysis(
    pipeline: beam.Pipeline,
    file_patterns: Sequence[str],
    params: AnalysisParams,
    output_dir: str,
    train_patterns: Sequence[str] = (),
    manual: Optional[Dict] = None,
    baseline: Optional[Dict] = None,
) -> beam.PCollection:
    """Adds the analysis to `pipeline`; parts land in output_dir when it runs. Returns the
    prediction batches for further aggregations. `train_patterns`: the training split's
    files, read for each finding's and rule tag's coverage in training (none: coverage
    unknown). With tag rules (params) or manual tags (example id -> (tags, weight)), the tags
    part counts and diagnoses each tag. The files must hold at least one example (the executor
    checks first): the global aggregations give no value for empty input (combine_globally).
    `baseline` (baseline.read_baseline): the report to measure the slices on both models'
    predictions against (beam/comparison.py)."""
    serialized = (
        pipeline
        | 'Patterns' >> beam.Create(list(file_patterns))
        | 'Read'
        >> beam.io.ReadAllFromTFRecord(compression_type=beam.io.filesystem.CompressionTypes.AUTO)
    )
    parts: Dict[str, beam.PCollection] = {}
    predicted = (
        serialized
        | 'Batch' >> beam.BatchElements(min_batch_size=256, max_batch_size=1024)
        | 'Predict' >> beam.ParDo(_Predict(params)).with_outputs('gallery', main='batches')
    )
    regression = params.regression_error
    if regression:
        batches, quantiles = predicted.batches | 'MedianError' >> (
            beam_regression.FlagAboveMedian(regression)
        )
    else:
        batches, thresholds = predicted.batches | 'LabelSuspects' >> (
            beam_diagnosis.FlagLabelSuspects(params.num_classes)
        )
    if params.image:
        gallery = (
            predicted.gallery
            | 'FlattenGallery' >> beam.FlatMap(lambda records: records)
            | 'MostConfidentPerPair'
            >> beam.combiners.Top.PerKey(GALLERY_PER_PAIR, key=lambda r: r['confidence'])
            | 'GalleryToDict' >> beam.combiners.ToDict()
            | 'GalleryPairs'
            >> beam.Map(
                lambda pairs: [
                    {'true': t, 'predicted': p, 'examples': records}
                    for (t, p), records in pairs.items()
                ]
            )
        )
        parts[PART_GALLERY] = gallery

    schema = predictions_schema(params.slice_features, params.num_classes, bool(regression))
    _ = (
        batches
        | 'ToArrow' >> beam.Map(_to_table, schema)
        | 'WritePredictions'
        >> beam.io.WriteToParquetBatched(
            os.path.join(output_dir, PREDICTIONS_DIR, 'predictions'),
            schema,
            file_name_suffix='.parquet',
        )
    )

    hardest = (
        batches
        | 'WorstPerBatch' >> beam.FlatMap(_worst_errors, params.num_hardest)
        | 'Hardest'
        >> beam_slices.combine_globally(
            beam.combiners.TopCombineFn(params.num_hardest, key=row_severity)
        )
    )
    parts[PART_HARDEST] = hardest
    if regression:
        parts[PART_SUSPECTS] = pipeline | 'NoLabelSuspects' >> beam.Create([])
    else:
        parts.update(_classification_parts(batches, params))

    slice_names = [n for n in params.slice_features if n not in params.unsliced_features]
    columns = batches | 'ToColumns' >> beam.Map(
        lambda b: lattice.ColumnBatch(
            {n: b.columns[n] for n in slice_names}, b.errors, b.example_ids
        )
    )
    encoders = columns | 'BuildEncoders' >> beam_slices.BuildEncoders(
        slice_names, params.num_bins, params.max_values_per_feature
    )
    discover = beam_slices.DiscoverSlices(encoders, params.finder)
    found = columns | 'DiscoverSlices' >> discover

    train_serialized = (
        pipeline
        | 'TrainPatterns' >> beam.Create(list(train_patterns))
        | 'ReadTrain'
        >> beam.io.ReadAllFromTFRecord(compression_type=beam.io.filesystem.CompressionTypes.AUTO)
        | 'BatchTrain' >> beam.BatchElements(min_batch_size=256, max_batch_size=1024)
    )
    # A classifier runs on a uniform sample of the training rows too (train error per
    # finding); a regressor's training rows count for coverage only.
    train_sample = 0 if regression else params.train_sample
    train_cutoff = (
        train_serialized
        | 'TrainSampleKeys' >> beam.Map(_sample_keys)
        | 'TrainSampleCutoff'
        >> beam_slices.combine_globally(beam_diagnosis.SampleCutoffFn(train_sample))
    )
    train_columns = train_serialized | 'TrainRows' >> beam.ParDo(
        _TrainRows(params, list(params.slice_features)), beam.pvalue.AsList(train_cutoff)
    )
    if regression:
        table = batches | 'CountRegression' >> beam_regression.CountRegression(
            slice_names,
            encoders,
            discover.conditions,
            quantiles,
            train_columns | 'TrainColumns' >> beam.Map(lambda rows: rows.columns),
        )
        measured = table | 'RegressionParts' >> beam.Map(
            beam_regression.regression_parts,
            beam.pvalue.AsSingleton(found),
            beam.pvalue.AsSingleton(discover.conditions),
            beam.pvalue.AsSingleton(encoders),
            beam.pvalue.AsSingleton(quantiles),
            regression,
        )
        slices = measured | 'RankedSlices' >> beam.Map(lambda part: part['slices'])
        parts[PART_DIAGNOSIS] = measured | 'RegressionDiagnosis' >> beam.Map(
            lambda part: part['diagnosis']
        )
        parts[PART_REGRESSION] = measured | 'RegressionNumbers' >> beam.Map(
            lambda part: part['regression']
        )
    else:
        slices = found | 'SlicesToDict' >> beam.Map(lambda result: result.to_dict())
        parts[PART_DIAGNOSIS] = batches | 'DiagnoseCandidates' >> (
            beam_diagnosis.DiagnoseCandidates(
                slice_names, encoders, discover.conditions, thresholds, train_columns, train_sample
            )
        )
    parts[PART_SLICES] = slices
    parts[PART_FINDING_EXAMPLES] = batches | 'FindingExamples' >> FindingExamples(
        slice_names, encoders, discover.conditions, params.mistakes_per_finding, example_row
    )
    if params.tag_rules or manual:
        tags = batches | 'CountTags' >> CountTags(
            params.tag_rules, manual or {}, train_columns, regression
        )
        parts[PART_TAGS] = tags
    parts.update(beam_comparison.analysis_parts(batches, slices, encoders, schema, baseline))
    _write_parts(parts, output_dir)
    return batches


def _classification_parts(
    batches: beam.PCollection, params: AnalysisParams
) -> Dict[str, beam.PCollection]:
    """The confusion counts and summed loss (PART_TOTALS) and the label suspects."""
    size = params.num_classes**2 + 1
    totals = (
        batches
        | 'Totals' >> beam.Map(_totals, params.num_classes)
        | 'SumTotals' >> beam_slices.combine_globally(beam_slices.sum_arrays, shape=size)
        | 'TotalsToDict'
        >> beam.Map(
            lambda t: {
                'confusion': t[:-1].reshape(params.num_classes, -1).astype(int).tolist(),
                'loss_sum': float(t[-1]),
            }
        )
    )
    suspects = (
        batches
        | 'SuspectsPerBatch'
        >> beam.FlatMap(beam_diagnosis.suspect_rows, params.num_hardest, example_row)
        | 'MostSuspicious'
        >> beam_slices.combine_globally(
            beam.combiners.TopCombineFn(params.num_hardest, key=lambda r: -r['label_probability'])
        )
    )
    return {PART_TOTALS: totals, PART_SUSPECTS: suspects}


def _tag_values(batch: PredictionBatch) -> np.ndarray:
    """Per-row values a tag sums: a finding's diagnostic values, or a regression's
    (search/regression.py row_values)."""
    if batch.is_regression:
        return regression_rules.row_values(batch.residual, batch.above_median, batch.labels)
    return diagnosis.row_values(batch.errors, batch.label_suspect, batch.confidence)


def _tag_sums(batch: PredictionBatch, rules: Sequence[TagRule], manual: Dict) -> Dict:
    """One batch's tag counts: {'tags': tag -> {source, weight (examples with the tag,
    weighted), correct (weighted), rows, sums (_tag_values summed over its rows), weighted
    (the same, each row times its weight)}, 'manual_matched': rows whose id is in the manual
    tags, 'total': values summed over all}."""
    values = _tag_values(batch)
    width = values.shape[1]
    correct = batch.errors == 0
    tags: Dict[str, Dict] = {}
    for rule in rules:
        mask = rule.evaluate(batch.columns)
        tags[rule.name] = _tag_entry(
            'rule', width, float(mask.sum()), float((mask & correct).sum())
        )
        sums = values[mask].sum(axis=0)
        tags[rule.name].update(rows=int(mask.sum()), sums=sums, weighted=sums)
    rows_by_tag: Dict[str, List[int]] = {}
    for i, example_id in enumerate(batch.example_ids if manual else ()):
        entry = manual.get(example_id)
        if entry is None:
            continue
        names, weight = entry
        for tag in (*names, _MATCHED):
            row = tags.setdefault(tag, _tag_entry('manual', width))
            row['weight'] += weight
            row['correct'] += weight * bool(correct[i])
            row['weighted'] = row['weighted'] + weight * values[i]
            rows_by_tag.setdefault(tag, []).append(i)
    for tag, rows in rows_by_tag.items():
        tags[tag]['rows'] += len(rows)
        tags[tag]['sums'] = tags[tag]['sums'] + values[rows].sum(axis=0)
    matched = tags.pop(_MATCHED, {'rows': 0})['rows']
    return {'tags': tags, 'manual_matched': matched, 'total': values.sum(axis=0)}


_MATCHED = '\x00matched'  # counts the rows found in the manual tags; no tag has this name
_SUMMED = ('weight', 'correct', 'rows', 'sums', 'weighted')


def _tag_entry(source: str, width: int, weight: float = 0.0, correct: float = 0.0) -> Dict:
    return {
        'source': source,
        'weight': weight,
        'correct': correct,
        'rows': 0,
        'sums': np.zeros(width),
        'weighted': np.zeros(width),
    }


def _train_tag_sums(
    rows: beam_diagnosis.TrainRows, rules: Sequence[TagRule], regression_error: Optional[str]
) -> Dict:
    """Training rows (and, for a classifier, the mistakes on those with predictions) per rule
    tag (manual tags name analysed examples: not counted here)."""
    if regression_error:
        values = regression_rules.train_row_values(len(rows.errors))
    else:
        values = diagnosis.train_row_values(len(rows.errors), rows.errors)
    tags = {}
    for rule in rules:
        tags[rule.name] = _tag_entry('rule', values.shape[1])
        tags[rule.name]['sums'] = values[rule.evaluate(rows.columns)].sum(axis=0)
    return {'tags': tags, 'manual_matched': 0, 'total': values.sum(axis=0)}


def _merge_tag_sums(parts) -> Dict:
    merged = {'tags': {}, 'manual_matched': 0, 'total': 0.0}
    for part in parts:
        merged['manual_matched'] += part['manual_matched']
        merged['total'] = merged['total'] + part['total']
        for tag, entry in part['tags'].items():
            row = merged['tags'].setdefault(tag, _tag_entry(entry['source'], len(entry['sums'])))
            for key in _SUMMED:
                row[key] = row[key] + entry[key]
    return merged


def _diagnosed_tags(merged: Dict, regression_error: Optional[str]) -> Dict:
    """The part written: tag -> {source, weight, correct, rows, diagnosis}, manual_matched;
    for a regression each tag's weighted sums instead of correct, the sums over all rows
    (`total`) and the error kind, which tags/prioritize.py's prioritize_regression ranks."""
    entries = merged['tags']
    rules = diagnosis.diagnose
    train_rows = diagnosis.TRAIN_ROWS
    if regression_error:
        rules = functools.partial(regression_rules.diagnose, kind=regression_error)
        train_rows = regression_rules.TRAIN_ROWS
    diagnoses = diagnosis.diagnose_tags(
        {tag: e['sums'] for tag, e in entries.items()},
        merged['total'],
        counted_in_train={tag for tag, e in entries.items() if e['source'] == 'rule'},
        rules=rules,
        train_rows=train_rows,
    )
    counts = {
        tag: {
            'source': e['source'],
            'weight': float(e['weight']),
            'rows': int(e['rows']),
            'diagnosis': diagnoses[tag],
            **(
                {'sums': e['weighted'].tolist()}
                if regression_error
                else {'correct': float(e['correct'])}
            ),
        }
        for tag, e in entries.items()
    }
    part = {'counts': counts, 'manual_matched': int(merged['manual_matched'])}
    if regression_error:
        part.update(total=np.asarray(merged['total']).tolist(), error=regression_error)
    return part


class CountTags(beam.PTransform):
    """Flagged PredictionBatches -> singleton: per tag (rules and manual tags) weighted counts,
    correct predictions (a regression: summed errors) and the diagnosis of
    search/diagnosis.py (a regression: search/regression.py's); rule tags are also counted
    over the training rows (TrainRows; None or empty: coverage and train error unknown)."""

    def __init__(
        self,
        rules: Sequence[TagRule],
        manual: Dict,
        train_columns: Optional[beam.PCollection] = None,
        regression_error: Optional[str] = None,
    ):
        super().__init__()
        self._rules = list(rules)
        self._manual = manual
        self._train_columns = train_columns
        self._regression_error = regression_error

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        manual = beam.pvalue.AsSingleton(
            batches.pipeline | 'ManualTags' >> beam.Create([self._manual])
        )
        parts = [batches | 'TagSums' >> beam.Map(_tag_sums, self._rules, manual)]
        if self._train_columns is not None:
            parts.append(
                self._train_columns
                | 'TrainTagSums' >> beam.Map(_train_tag_sums, self._rules, self._regression_error)
            )
        return (
            parts
            | 'BothSplits' >> beam.Flatten()
            | 'SumTags' >> beam_slices.combine_globally(_merge_tag_sums)
            | 'DiagnoseTags' >> beam.Map(_diagnosed_tags, self._regression_error)
        )


def read_part(output_dir: str, name: str):
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(output_dir, name)) as f:
        return json.loads(f.read())
