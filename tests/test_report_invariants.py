"""The report agrees with itself (report/invariants.py): each rule holds on a report built from
a real slice search, and fires on a copy broken by hand in the way it guards against; and the
ErrorAnalysis executor writes a whole, consistent report for degenerate inputs (no errors,
every example one class, 20 rows) with the real taxi model and Beam."""

import copy
import json
import os

import numpy as np
import pytest

from blindspot.error_analysis.report import build as report_build
from blindspot.error_analysis.report import invariants
from blindspot.error_analysis.search import binning, findings, lattice
from blindspot.error_analysis.settings import Settings

PLANTED = {'x': [(0.6, 0.7, 0.4)], 'y': [(0.33, 0.41, 0.35)]}


def _search(rows: int = 20_000, seed: int = 0, planted=PLANTED):
    """Failing ranges planted on generated rows ({feature: [(low, high, error rate)]}),
    searched in memory with the default settings."""
    rng = np.random.default_rng(seed)
    columns = {'c': np.array(list('abcd'), dtype=object)[rng.integers(0, 4, rows)]}
    columns.update({name: rng.random(rows) for name in ('x', 'y')})
    rates = np.full(rows, 0.08)
    for name, ranges in planted.items():
        for low, high, rate in ranges:
            rates[(columns[name] >= low) & (columns[name] < high)] = rate
    errors = (rng.random(rows) < rates).astype(np.int8)
    ids = np.array([f'{seed}-{i}' for i in range(rows)])
    values, counts = np.unique(columns['c'], return_counts=True)
    encoders = [binning.categorical_encoder('c', dict(zip(values, counts)))] + [
        binning.numeric_encoder(
            name,
            np.quantile(columns[name], np.linspace(0, 1, 17)),
            num_bins=16,
            sub_bins=binning.SUB_BINS,
        )
        for name in ('x', 'y')
    ]
    codes = np.stack([e.encode(columns[e.name]) for e in encoders], axis=1)
    fine = np.stack([e.encode_fine(columns[e.name]) for e in encoders], axis=1)
    config = lattice.SliceFinderConfig.from_settings(Settings())
    result = findings.find_slices(codes, errors, lattice.holdout_mask(ids), encoders, config, fine)
    return result.to_dict(), int(errors.sum()), rows


@pytest.fixture(scope='module')
def report():
    slices, errors, rows = _search()
    hardest = [
        {
            'example_id': str(i),
            'label': 1,
            'predicted': 0,
            'confidence': 0.9 - i / 100,
            'loss': 1.0,
            'features': {'c': 'a', 'x': 0.65, 'y': 0.1},
        }
        for i in range(5)
    ]
    return report_build.build_report(
        label_key='label',
        splits=['eval'],
        class_names=['no', 'yes'],
        totals={'confusion': [[rows - errors, 0], [errors, 0]], 'loss_sum': 1.0},
        slices=slices,
        hardest=hardest,
        tfma_rows=[],
        files={},
        gate={'mode': 'any', 'max_slice_error_rate': 0.3, 'significance': 0.01},
    )


def _findings(report):
    return [s for s in report['slices']['slices'] if s['held'] and not s['parent']]


def test_a_real_report_keeps_every_rule(report):
    assert len(_findings(report)) == 2
    assert report['invariant_violations'] == []
    assert invariants.violations(report) == []
    assert report['highlights'], 'the held ranges mark their bins'
    added = sum(s['added_error_share'] for s in _findings(report))
    assert added <= 1 and added <= sum(s['error_share'] for s in _findings(report))


def test_ranges_off_the_bin_edges_are_one_finding_each_with_sub_bin_edges(report):
    """0.6-0.7 and 0.33-0.41 do not line up with 16 quantile bins (edges at multiples of
    1/16): each comes out once, its edges inside the bins, within 0.02 of the truth."""
    found = {s['predicates'][0]['feature']: s['predicates'][0] for s in _findings(report)}
    assert set(found) == {'x', 'y'}
    for feature, (low, high) in {'x': (0.6, 0.7), 'y': (0.33, 0.41)}.items():
        assert abs(found[feature]['low'] - low) <= 0.02, found[feature]
        assert abs(found[feature]['high'] - high) <= 0.02, found[feature]


def test_two_failing_ranges_on_one_feature_are_one_finding_and_its_variant():
    """Disjoint ranges of one feature share a slice identity: the second is listed with the
    first as its variant, never as a second finding with the same slice id."""
    slices, _, _ = _search(planted={'x': [(0.1, 0.2, 0.4), (0.7, 0.8, 0.4)]})
    held = [s for s in slices['slices'] if s['held'] and not s['parent']]
    on_x = [s for s in held if [p['feature'] for p in s['predicates']] == ['x']]
    assert len(on_x) == 1, [s['slice'] for s in held]
    assert any('x <' in v for v in on_x[0]['variants']), on_x[0]['variants']
    assert len({s['slice_id'] for s in held}) == len(held)


def _broken(report, edit):
    broken = copy.deepcopy(report)
    edit(broken)
    return invariants.violations(broken)


def test_two_held_findings_with_one_slice_id_are_caught(report):
    def twin(r):
        first = _findings(r)[0]
        r['slices']['slices'].insert(1, dict(first, slice=first['slice'] + ' (again)'))

    assert any('are one slice' in p for p in _broken(report, twin))


def test_added_shares_over_100_percent_are_caught(report):
    def inflate(r):
        for s in _findings(r):
            s['added_error_share'] = 0.6

    assert any('more than all' in p for p in _broken(report, inflate))


def test_a_table_out_of_its_stated_order_is_caught(report):
    def shuffle(r):
        r['hardest_examples'].reverse()

    assert any('hardest examples' in p for p in _broken(report, shuffle))

    def swap(r):
        slices = r['slices']['slices']
        slices[0], slices[1] = slices[1], slices[0]

    assert any('most added gain first' in p for p in _broken(report, swap))


def test_a_qualifier_that_contradicts_its_number_is_caught(report):
    def contradict(r):
        finding = _findings(r)[0]
        finding['diagnosis'] = {
            'inside': {
                'suspect_share_of_errors': 0.418,
                'suspect_rate': 0.2,
                'mistake_confidence': 0.6,
            },
            'outside': {'suspect_share_of_errors': 0.1, 'suspect_rate': 0.01},
            'coverage': None,
            'rule': 'ambiguous',
            'next_step': 'well covered in training, few label suspects and the mistakes are unsure',
        }

    assert any('"few label suspects"' in p for p in _broken(report, contradict))


def test_a_highlight_from_an_unconfirmed_slice_is_caught(report):
    def mark(r):
        r['highlights'].setdefault('c', []).append('c = b')

    assert any("'c = b' is highlighted" in p for p in _broken(report, mark))


def test_a_slice_on_the_label_is_caught(report):
    def on_label(r):
        r['label_name'] = 'c'  # as if the column c were the label

    assert any("the label 'c' is sliced on" in p for p in _broken(report, on_label))


def test_one_class_precision_under_a_slice_name_is_caught(report):
    def per_class(r):
        r['class_names'] = ['0', '1', '2']
        r['tfma'] = [{'slice': 'Overall', 'features': [], 'metrics': {'precision': 0.9474}}]

    assert any('shows precision' in p for p in _broken(report, per_class))


def test_a_gate_verdict_that_contradicts_its_blockers_is_caught(report):
    def contradict(r):
        r['gate']['passed'] = not r['gate']['passed']

    assert any('slice gate' in p for p in _broken(report, contradict))


def test_counts_that_disagree_are_caught(report):
    def miscount(r):
        r['overall']['errors'] += 1

    assert any('slice search saw' in p for p in _broken(report, miscount))


# --- Degenerate inputs through the real executor (taxi model, Beam) -----------------------


def _rewrite_eval(taxi_run, folder, rows=None, label=None):
    """The taxi run's eval examples, the first `rows` of them, with `tips` set so the label
    (tips > 20% of the fare) is label(i, predicted) for example i."""
    import tensorflow as tf
    from tfx.utils import path_utils

    from blindspot.error_analysis.beam.predictions import Predictor
    from blindspot.review import metadata

    first = taxi_run['first']
    source = os.path.join(
        metadata.output_artifact(first, 'CsvExampleGen', 'examples').uri, 'Split-eval'
    )
    files = sorted(tf.io.gfile.glob(os.path.join(source, '*')))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type='GZIP')]
    records = records[:rows] if rows else records
    if label is not None:
        model_dir = path_utils.serving_model_path(
            metadata.output_artifact(first, 'Trainer', 'model').uri
        )
        predicted = Predictor(model_dir, 'big_tipper', {}).predict(records).predicted
        edited = []
        for i, record in enumerate(records):
            example = tf.train.Example.FromString(record)
            fare = example.features.feature['fare'].float_list.value
            big = label(i, int(predicted[i]))
            tips = (max(fare[0] if fare else 0.0, 0.0) + 1.0) if big else 0.0
            example.features.feature['tips'].float_list.value[:] = [tips]
            edited.append(example.SerializeToString())
        records = edited
    (folder / 'Split-eval').mkdir(parents=True)
    path = str(folder / 'Split-eval' / 'data_tfrecord-00000-of-00001.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for record in records:
            writer.write(record)
    return str(folder)


def _analyse(taxi_run, tmp_path, examples_uri):
    from blindspot.error_analysis.artifact import ErrorAnalysisReport
    from blindspot.error_analysis.executor import Executor
    from tests.conftest import EA_PROPS, ea_inputs

    report = ErrorAnalysisReport()
    report.uri = str(tmp_path / 'report')
    os.makedirs(report.uri)
    inputs = ea_inputs(taxi_run, examples_uri, splits=['eval'])
    Executor().Do(inputs, {'report': [report]}, {**EA_PROPS, 'label_key': 'big_tipper'})
    with open(os.path.join(report.uri, 'report.json')) as f:
        return json.load(f), sorted(os.listdir(report.uri))


PARTS = ('totals.json', 'slices.json', 'hardest.json', 'suspects.json', 'diagnosis.json')


@pytest.mark.parametrize(
    'case, rows, label',
    [
        ('no errors', None, lambda i, predicted: predicted),
        ('every example one class', None, lambda i, predicted: 1),
        ('20 rows', 20, None),
    ],
)
def test_degenerate_inputs_get_a_whole_consistent_report(taxi_run, tmp_path, case, rows, label):
    examples = _rewrite_eval(taxi_run, tmp_path / 'examples', rows=rows, label=label)
    report, written = _analyse(taxi_run, tmp_path, examples)
    assert set(PARTS) <= set(written) and {'report.json', 'report.html'} <= set(written)
    assert report['invariant_violations'] == [] and invariants.violations(report) == []
    overall = report['overall']
    if case == 'no errors':
        assert overall['errors'] == 0 and report['hardest_examples'] == []
        assert report['diagnosis']['label_suspects'] == []
        assert not [s for s in report['slices']['slices'] if s['held']]
        assert 'made no errors' in ' '.join(report['insights'])
    elif case == 'every example one class':
        assert report['confusion']['matrix'][0] == [0, 0]  # no example of class 0
        assert report['classes'][0]['recall'] is None  # no examples of class 0
    else:
        assert overall['examples'] == 20
