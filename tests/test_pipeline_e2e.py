"""The real taxi pipeline on a small sample, checked through ML Metadata."""

import glob
import itertools
import json
import os
from html.parser import HTMLParser

import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from blindspot.error_analysis import files as keys
from blindspot.pipelines.taxi import features
from blindspot.review import metadata

COMPONENTS = {
    'CsvExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'Transform',
    'Trainer',
    'latest_blessed_model_resolver',
    'Evaluator',
    'latest_blessed_report_resolver',
    'ErrorAnalysis',
    'Pusher',
}
RESOLVERS = {'latest_blessed_model_resolver', 'latest_blessed_report_resolver'}


def _eval_examples(run) -> int:
    examples = metadata.output_artifact(run, 'CsvExampleGen', 'examples')
    files = glob.glob(os.path.join(examples.uri, 'Split-eval', '*'))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type='GZIP'))


def test_every_component_executed(taxi_run):
    first = taxi_run['first']
    assert set(first) == COMPONENTS
    executed = {name for name, run in first.items() if name not in RESOLVERS}
    assert {first[name].state for name in executed} == {'COMPLETE'}
    assert metadata.output_artifact(first, 'Trainer', 'model') is not None
    assert os.path.isdir(
        os.path.join(metadata.output_artifact(first, 'Trainer', 'model').uri, 'Format-Serving')
    )


def test_reruns_are_served_from_cache(taxi_run):
    def cached(run):
        return {name for name, r in run.items() if r.state == 'CACHED'}

    upstream = {
        'CsvExampleGen',
        'StatisticsGen',
        'ImportSchemaGen',
        'ExampleValidator',
        'Transform',
        'Trainer',
    }
    # Run 1 blessed its model, so run 2's Evaluator gets it as a new baseline input.
    assert (
        metadata.custom_value(
            metadata.output_artifact(taxi_run['first'], 'Evaluator', 'blessing'), 'blessed'
        )
        == 1
    )
    assert cached(taxi_run['second']) == upstream
    assert taxi_run['second']['Evaluator'].state == 'COMPLETE'
    assert cached(taxi_run['third']) == COMPONENTS - RESOLVERS
    # Run 2's report is compared with run 1's (the blessed model's); run 3 reuses run 2's.
    second_report = metadata.output_artifact(taxi_run['second'], 'ErrorAnalysis', 'report')
    assert metadata.custom_value(second_report, 'baseline_report_id') == (
        metadata.output_artifact(taxi_run['first'], 'ErrorAnalysis', 'report').id
    )
    # Cached executions point at the first run's artifacts.
    assert (
        metadata.output_artifact(taxi_run['third'], 'Trainer', 'model').id
        == metadata.output_artifact(taxi_run['first'], 'Trainer', 'model').id
    )


def test_evaluation_has_declared_slices(taxi_run):
    from blindspot.error_analysis.beam.tfma_metrics import sliced_metrics

    evaluation = metadata.output_artifact(taxi_run['first'], 'Evaluator', 'evaluation')
    rows = sliced_metrics(evaluation.uri)
    sliced_on = {tuple(r['features']) for r in rows}
    assert sliced_on == {()} | {(key,) for key in features.SLICE_FEATURES}
    overall = next(r for r in rows if r['slice'] == 'Overall')
    for metric in ('binary_accuracy', 'auc', 'precision', 'recall', 'example_count'):
        assert metric in overall['metrics'], metric
    assert overall['metrics']['example_count'] == _eval_examples(taxi_run['first'])


def test_pusher_follows_blessing(taxi_run):
    first = taxi_run['first']
    blessing = metadata.output_artifact(first, 'Evaluator', 'blessing')
    pushed = metadata.output_artifact(first, 'Pusher', 'pushed_model')
    assert bool(metadata.custom_value(blessing, 'blessed')) == bool(
        metadata.custom_value(pushed, 'pushed')
    )


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self.tables, self._in_h2 = [], 0, False

    def handle_starttag(self, tag, attrs):
        self._in_h2 = tag == 'h2'
        self.tables += tag == 'table'

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data.strip())
            self._in_h2 = False


def test_error_analysis_report_in_metadata(taxi_run):
    first = taxi_run['first']
    report = metadata.output_artifact(first, 'ErrorAnalysis', 'report')
    assert report is not None
    artifact_type = taxi_run['store'].get_artifact_types_by_id([report.type_id])[0]
    assert artifact_type.name == 'blindspot.ErrorAnalysisReport'
    n_eval = _eval_examples(first)
    assert metadata.custom_value(report, keys.NUM_EXAMPLES) == n_eval

    with open(os.path.join(report.uri, 'report.json')) as f:
        data = json.load(f)
    assert data['version'] == 4
    assert sum(map(sum, data['confusion']['matrix'])) == n_eval
    assert metadata.custom_value(report, keys.NUM_ERRORS) == data['overall']['errors']
    assert (
        abs(metadata.custom_value(report, keys.ERROR_RATE) - data['overall']['errors'] / n_eval)
        < 1e-6
    )  # MLMD keeps ~6 digits
    held = [s for s in data['slices']['slices'] if s['held']]
    assert metadata.custom_value(report, keys.NUM_SIGNIFICANT_SLICES) == len(held)
    if data['slices']['slices']:
        top = held[0] if held else data['slices']['slices'][0]
        assert metadata.custom_value(report, keys.TOP_SLICE) == top['slice']
    # The slice gate's verdict leads (default mode 'new'; no blessed model before run 1).
    assert data['insights'][0].startswith('Slice gate (new) passed: no blessed model')
    insights = data['insights'][1:]
    assert insights and 'error rate' in insights[0]
    findings = [s for s in held if not s['parent']]
    if findings:
        # The headline names the finding holding the most errors, with its share of them.
        most = max(findings, key=lambda s: s['errors'])
        assert insights[0].startswith(most['slice'])
        assert f'{most["errors"]:,} of the {data["overall"]["errors"]:,} errors' in (insights[0])
        # Variations of one cause are parent and child, never two findings.
        predicate_sets = [frozenset(p['label'] for p in s['predicates']) for s in findings]
        for first, second in itertools.permutations(predicate_sets, 2):
            assert not first < second
        gains = [s['added_potential_gain'] for s in findings]
        assert gains == sorted(gains, reverse=True)
        assert sum(s['added_error_share'] for s in findings) <= 1 + 1e-9
        # Under each finding, its mistakes with the columns the label is computed from.
        rows = findings[0]['examples']['rows']
        assert 0 < len(rows) <= min(findings[0]['errors'], 50)
        assert all('tips' in r['features'] and r['label'] != r['predicted'] for r in rows)
    assert data['invariant_violations'] == []
    # The model also ran on the training rows (fewer than --train-sample: all of them), and
    # each finding has its train error beside its error here, with intervals.
    overall = data['diagnosis']['overall']
    assert overall['train_predicted'] == overall['train_rows'] > 0
    assert 0 <= overall['train_errors'] <= overall['train_predicted']
    for s in findings:
        fit = s['diagnosis']['fit']
        assert 0 < fit['train_rows'] <= s['diagnosis']['coverage']['train_rows']
        for side in ('train', 'here'):
            low, high = fit[side]['interval']
            assert low <= fit[side]['rate'] <= high
        assert fit['here']['rate'] == pytest.approx(s['error_rate'])
    # TFMA's sliced metrics are carried into the report.
    assert any(r['slice'] == 'Overall' for r in data['tfma'])

    # Per-example predictions agree with the confusion matrix.
    table = pq.read_table(glob.glob(os.path.join(report.uri, 'predictions', '*.parquet')))
    assert table.num_rows == n_eval
    assert int((~table.column('correct').to_numpy()).sum()) == data['overall']['errors']

    parser = _Sections()
    with open(os.path.join(report.uri, 'report.html')) as f:
        parser.feed(f.read())
    # The sections a reader needs first, in this order (diagnosis and mistakes sit between).
    order = ['Insights', 'Failing slices found automatically', 'Charts', 'Confusion matrix']
    assert [h for h in parser.headings if h in order] == order
    assert 'TFMA sliced metrics (Evaluator)' in parser.headings
    assert parser.tables >= 3
    if findings:
        with open(os.path.join(report.uri, 'report.html')) as f:
            assert f'Train error from all {overall["train_rows"]:,} training rows' in f.read()
