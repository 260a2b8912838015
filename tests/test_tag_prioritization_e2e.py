"""The review sheet and the tags loop on a real run: sheet -> tags -> prioritisation table."""

import csv
import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.executor import Executor
from blindspot.review import metadata
from blindspot.review import sheet as review_sheet
from tests.conftest import EA_PROPS as PROPS
from tests.conftest import ea_inputs as _inputs


@pytest.fixture(scope='module')
def report_uri(taxi_run):
    return metadata.output_artifact(taxi_run['first'], 'ErrorAnalysis', 'report').uri


def _predictions(uri):
    return pq.read_table(glob.glob(os.path.join(uri, 'predictions', '*.parquet'))).to_pandas()


def test_sampling_is_stratified_with_weights():
    labels = np.array([0] * 50 + [1] * 50)
    predicted = np.array([0] * 40 + [1] * 10 + [1] * 47 + [0] * 3)
    chosen = review_sheet.sample_rows(labels, predicted, per_pair=5, correct=4, seed=1)
    strata = {}
    for row, weight in chosen.items():
        key = 'correct' if labels[row] == predicted[row] else (labels[row], predicted[row])
        strata.setdefault(key, []).append(weight)
    # All 3 of the 1->0 mistakes, 5 of the 10 0->1 ones, 4 of the 87 correct predictions;
    # each stratum's weights add up to its size.
    assert {k: len(v) for k, v in strata.items()} == {(1, 0): 3, (0, 1): 5, 'correct': 4}
    assert sum(strata[(0, 1)]) == pytest.approx(10) and sum(strata[(1, 0)]) == pytest.approx(3)
    assert sum(strata['correct']) == pytest.approx(87)


def test_review_sheet_columns(report_uri, tmp_path):
    out = tmp_path / 'mistakes.csv'
    rows = review_sheet.write_sheet(report_uri, str(out), per_pair=7, correct=5, seed=0)
    with open(out) as f:
        sheet = list(csv.DictReader(f))
    assert len(sheet) == rows
    header = list(sheet[0])
    assert header[:7] == [
        'example_id',
        'weight',
        'true',
        'predicted',
        'correct',
        'confidence',
        'label_suspect',
    ]
    assert {r['label_suspect'] for r in sheet} <= {'True', 'False'}
    assert header[-2:] == ['tags', 'notes'] and 'payment_type' in header
    wrong = [r for r in sheet if r['correct'] == 'False']
    by_pair = {}  # the sample per pair; label suspects come on top, first
    for r in wrong:
        if r['label_suspect'] == 'False':
            by_pair.setdefault((r['true'], r['predicted']), []).append(r)
    suspects = [i for i, r in enumerate(sheet) if r['label_suspect'] == 'True']
    assert suspects == list(range(len(suspects)))
    assert by_pair and all(len(v) <= 7 for v in by_pair.values())
    assert {r['true'] for r in sheet} <= {'not big tipper', 'big tipper'}
    predictions = _predictions(report_uri)
    assert {r['example_id'] for r in sheet} <= set(predictions['example_id'])
    n_wrong = int((~predictions['correct']).sum())
    assert sum(float(r['weight']) for r in wrong) == pytest.approx(n_wrong, rel=1e-3)
    assert all(r['tags'] == '' for r in sheet)


def test_tags_and_rules_are_prioritized(taxi_run, report_uri, tmp_path):
    # Fill in the sheet as a reviewer would: tag every reviewed cash ride 'cash'.
    sheet = tmp_path / 'mistakes.csv'
    review_sheet.write_sheet(report_uri, str(sheet), per_pair=10, correct=10, seed=0)
    with open(sheet) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r['tags'] = 'cash; reviewed' if r['payment_type'] == 'Cash' else 'reviewed'
    with open(sheet, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    report = ErrorAnalysisReport()
    report.uri = str(tmp_path / 'report')
    os.makedirs(report.uri)
    Executor().Do(
        _inputs(taxi_run),
        {'report': [report]},
        {
            **PROPS,
            'label_key': 'big_tipper',
            'tags_file': str(sheet),
            'tag_rules': json.dumps(['night: trip_start_hour >= 22 or trip_start_hour < 5']),
            'tag_references': json.dumps({'night': 0.99}),
        },
    )
    with open(os.path.join(report.uri, 'report.json')) as f:
        data = json.load(f)
    table = {r['tag']: r for r in data['tags']['prioritization']}
    assert set(table) == {'night', 'cash', 'reviewed'}

    # The rule tag is exact over the split: check it against the per-example predictions.
    predictions = _predictions(report.uri)
    hour = predictions['feature.trip_start_hour'].astype(float)
    night = (hour >= 22) | (hour < 5)
    accuracy = predictions['correct'][night].mean()
    assert table['night']['rows'] == int(night.sum())
    assert table['night']['share'] == pytest.approx(night.mean())
    assert table['night']['accuracy'] == pytest.approx(accuracy)
    assert table['night']['potential_gain'] == pytest.approx(max(0.99 - accuracy, 0) * night.mean())

    # Manual tags are weighted by the sheet: 'reviewed' covers every reviewed stratum, so its
    # weighted count is the whole split and its accuracy the overall accuracy.
    n = len(predictions)
    assert table['reviewed']['share'] == pytest.approx(1.0, rel=1e-3)
    assert table['reviewed']['accuracy'] == pytest.approx(predictions['correct'].mean(), rel=1e-3)
    assert data['tags']['manual']['matched'] == len(rows)
    gains = [r['potential_gain'] for r in data['tags']['prioritization']]
    assert gains == sorted(gains, reverse=True)
    assert any(line.startswith('Fixing ') for line in data['insights'])
    with open(os.path.join(report.uri, 'report.html')) as f:
        assert 'tags ranked by potential gain' in f.read()
    assert n == data['overall']['examples']
