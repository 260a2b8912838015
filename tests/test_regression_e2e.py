"""A regression model through the ErrorAnalysis executor (real Keras SavedModel, real Beam):
a planted biased region is the first finding, with the bias's sign and size in the label's
units, and the top tag when given as a tag rule; the report keeps its invariants, also on
degenerate input; the slice gate blocks a model whose MAE got worse in a slice."""

import copy
import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from blindspot.error_analysis.report import invariants
from tests import regression_inputs as data


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The same eval examples (with train rows) under an unbiased model, then a model that
    over-predicts by data.BIAS in the planted region, compared with the first."""
    folder = tmp_path_factory.mktemp('regression')
    eval_rows, train_rows = data.rows(3000, 1), data.rows(1500, 2)
    before = data.run(data.inputs(folder / 'before', eval_rows, train_rows), folder / 'r0')
    # Tags on the second run: the planted region as a rule among others, and a manual tag on
    # every 10th example, each reviewed row standing for MANUAL_WEIGHT examples.
    tags_file = folder / 'tags.csv'
    tags_file.write_text(
        'example_id,tags,weight\n'
        + ''.join(f'{data.example_id(r)},tenth,{MANUAL_WEIGHT}\n' for r in eval_rows[::10])
    )
    after = data.run(
        data.inputs(folder / 'after', eval_rows, train_rows, bias=data.BIAS),
        folder / 'r1',
        baseline=str(folder / 'r0'),
        slice_gate='new',
        tag_rules=json.dumps(list(TAG_RULES)),
        tags_file=str(tags_file),
    )
    return {
        'before': before,
        'after': after,
        'uri': str(folder / 'r1'),
        'eval_rows': eval_rows,
        'train_rows': train_rows,
    }


MANUAL_WEIGHT = 5
TAG_RULES = (
    'planted: region == "a" and day == "sat"',
    'sunday: day == "sun"',
    'high x: x >= 8',
)


def test_the_planted_region_as_a_rule_tag_is_the_top_tag_with_its_sign_and_gain(runs):
    """Measured from the data directly: the tag's share x its MAE's excess over the rest's;
    counted over the training rows for coverage; the manual tag weighted."""
    report = runs['after']
    eval_rows = runs['eval_rows']
    residual = data.predictions(eval_rows, data.BIAS) - np.array([r['y'] for r in eval_rows])
    planted = np.array([r['region'] == 'a' and r['day'] == 'sat' for r in eval_rows])
    tags = report['tags']
    assert tags['error'] == 'absolute' and report['invariant_violations'] == []
    assert [t['tag'] for t in tags['prioritization']][0] == 'planted'
    top = tags['prioritization'][0]
    errors = np.abs(residual)
    share = planted.mean()
    gain = share * (errors[planted].mean() - errors[~planted].mean())
    assert top['rows'] == planted.sum() and top['share'] == pytest.approx(share)
    assert top['mean_error'] == pytest.approx(errors[planted].mean(), rel=1e-4)
    assert top['potential_gain'] == pytest.approx(gain, rel=1e-3)
    assert top['mean_residual'] == pytest.approx(residual[planted].mean(), rel=1e-4)
    assert top['mean_residual'] > 2  # the bias's sign: over-predicts
    diagnosis = top['diagnosis']
    assert (diagnosis['rule'], diagnosis['failure']) == ('bias', 'over-predicts')
    train_planted = sum(r['region'] == 'a' and r['day'] == 'sat' for r in runs['train_rows'])
    assert diagnosis['coverage']['train_rows'] == train_planted
    line = next(t for t in report['insights'] if t.startswith('Of the tags, '))
    assert line.startswith(
        f"Of the tags, fixing 'planted' could cut the overall MAE by at most {gain:.3g} "
    )
    assert 'over-predicts there by' in line
    # The manual tag: every 10th row, each for MANUAL_WEIGHT examples; coverage unknown.
    tenth = next(t for t in tags['prioritization'] if t['tag'] == 'tenth')
    assert (tenth['source'], tenth['rows']) == ('manual', len(eval_rows[::10]))
    assert tenth['examples'] == MANUAL_WEIGHT * tenth['rows']
    assert tenth['mean_error'] == pytest.approx(errors[::10].mean(), rel=1e-4)
    assert tenth['diagnosis']['coverage'] is None
    assert (tags['manual']['ids'], tags['manual']['matched']) == (300, 300)
    with open(os.path.join(runs['uri'], 'report.html')) as f:
        page = f.read()
    assert 'What to work on: tags ranked by potential gain' in page
    # The invariants catch a tag gain that is not share x excess, or a tag MAE and the rest's
    # that do not average to the overall MAE.
    broken = copy.deepcopy(report)
    broken['tags']['prioritization'][0]['potential_gain'] *= 2
    assert any("tag 'planted': gain" in v for v in invariants.violations(broken))
    broken = copy.deepcopy(report)
    broken['tags']['prioritization'][1]['rest_mean_error'] += 0.1
    assert any('average to' in v for v in invariants.violations(broken))
    # ... and a rule tag with more rows than there are examples, or a negative gain.
    broken = copy.deepcopy(report)
    broken['tags']['prioritization'][0]['rows'] = report['overall']['examples'] + 1
    broken['tags']['prioritization'][-1]['potential_gain'] = -0.1
    found = invariants.violations(broken)
    assert any("rule tag 'planted' has 3001 rows of 3000" in v for v in found), found
    assert any('negative potential gain' in v for v in found), found


def test_the_biased_region_is_the_first_finding_with_its_sign_and_size(runs):
    report = runs['after']
    assert report['invariant_violations'] == []
    assert 'left out of slicing' in report['slices']['feature_notes']['source']
    first = report['slices']['slices'][0]
    assert first['held'] and {p['label'] for p in first['predicates']} == {
        'region = a',
        'day = sat',
    }
    numbers = first['regression']
    assert numbers['mean_residual'] == pytest.approx(data.BIAS, abs=0.3)
    assert numbers['mean_error'] > 2 * numbers['outside']['mean_error']
    assert first['diagnosis']['failure'] == 'over-predicts'
    # First after the gate's verdict.
    assert report['insights'][1].startswith('region = a AND day = sat: the model over-predicts')
    assert f'by {numbers["mean_residual"]:.3g}' in report['insights'][1]
    # Gain in the label's units: share of rows x excess MAE.
    share = first['size'] / report['overall']['examples']
    excess = numbers['mean_error'] - numbers['outside']['mean_error']
    assert first['potential_gain'] == pytest.approx(share * excess)
    # Per example: the residual's sign and the errors beside the slicing columns.
    table = pq.read_table(glob.glob(os.path.join(runs['uri'], 'predictions', '*.parquet')))
    row = table.slice(0, 1).to_pylist()[0]
    assert row['residual'] == pytest.approx(row['predicted'] - row['label'])
    assert row['abs_error'] == pytest.approx(abs(row['residual']))
    assert table.column('above_median').to_pylist().count(True) == report['overall']['errors']
    assert 'feature.region' in table.column_names
    with open(os.path.join(runs['uri'], 'report.html')) as f:
        page = f.read()
    for section in (
        'Residuals: predicted vs actual',
        'Largest errors per finding',
        'over-predicts',
    ):
        assert section in page


def test_review_sheets_refuse_a_regression_in_one_line(runs, tmp_path):
    from blindspot.review import sheet

    with pytest.raises(LookupError, match='regression'):
        sheet.write_sheet(runs['uri'], str(tmp_path / 'sheet.csv'), 5, 5, 0)


def test_an_unbiased_model_has_no_finding(runs):
    report = runs['before']
    assert report['invariant_violations'] == []
    assert not [s for s in report['slices']['slices'] if s['held']]
    assert report['overall']['mae'] == pytest.approx(0.8, abs=0.1)  # E|N(0, 1)|


def test_perfect_predictions_on_20_rows(tmp_path):
    """The model's float32 arithmetic leaves errors of ~1e-7: nothing holds up on them."""
    rows = data.rows(20, 3, label=lambda i, row: 2 * row['x'])
    report = data.run(data.inputs(tmp_path / 'in', rows), tmp_path / 'out', task='regression')
    assert report['invariant_violations'] == []
    assert report['overall']['mae'] == pytest.approx(0.0, abs=1e-5)
    assert not [s for s in report['slices']['slices'] if s['held']]


def test_the_gate_blocks_a_model_whose_mae_got_worse_in_a_slice(runs):
    """Measured on both models' predictions of the same examples: the sign test on which
    model's absolute error is larger."""
    gate = runs['after']['gate']
    assert not gate['passed'] and gate['blocking'][0]['slice'] == 'region = a AND day = sat'
    entry = runs['after']['comparison']['new'][0]
    measure = entry['measure']
    assert measure['kind'] == 'paired' and measure['rows_matched'] == entry['current']['size']
    # +3 makes nearly every error larger (a row that was 2+ below its label gets closer).
    assert measure['worse'] + measure['better'] == entry['current']['size']
    assert measure['better'] < measure['worse'] / 10
    assert entry['current']['error_rate'] > entry['baseline']['error_rate'] + 2  # MAE, units
    assert 'MAE' in gate['reason']


def test_any_mode_holds_a_real_regression_finding_to_its_mae_ratio(runs):
    """--slice-gate any on the planted run's report: the biased region (its MAE several times
    the rest's) blocks at a 2x limit and passes at a limit above its own ratio."""
    from blindspot.error_analysis.report import gate

    report = runs['after']
    first = report['slices']['slices'][0]
    ratio = first['regression']['mean_error'] / first['regression']['outside']['mean_error']
    assert ratio > 2
    blocked = gate.slice_gate(report, 'any', 0.5, 0.05, max_slice_error_ratio=2.0)
    assert first['slice'] in [b['slice'] for b in blocked['blocking']]
    above = gate.slice_gate(report, 'any', 0.5, 0.05, max_slice_error_ratio=ratio * 1.01)
    assert first['slice'] not in [b['slice'] for b in above['blocking']]


def test_the_csv_pipelines_regression_report_names_the_planted_region_first(
    regression_csv_run,
):
    """The csv pipeline's own run (conftest: price, a region the model cannot see where the
    price is 3 standard deviations higher): its report leads with that region, under-predicted
    by about that much, in the price's units."""
    import json

    from blindspot.pipelines import preflight
    from blindspot.review import metadata
    from tests.conftest import PLANTED_OFFSET_SD, PLANTED_REGION

    runs = regression_csv_run['runs']
    assert runs['ErrorAnalysis'].state == 'COMPLETE'
    artifact = metadata.output_artifact(runs, 'ErrorAnalysis', 'report')
    with open(os.path.join(artifact.uri, 'report.json')) as f:
        report = json.load(f)
    assert report['invariant_violations'] == []
    assert metadata.custom_value(artifact, 'mae') == pytest.approx(report['overall']['mae'])
    first = report['slices']['slices'][0]
    assert first['held']
    assert {p['label'] for p in first['predicates']} == {
        f'{column} = {value}' for column, value in PLANTED_REGION.items()
    }
    assert first['diagnosis']['failure'] == 'under-predicts'
    # The model cannot see the region: it misses nearly all of the offset there (the label's
    # std here includes the planted rows: a little larger than the std it was planted with).
    std = preflight.scan_csv(str(regression_csv_run['data']), 'price').label_stats.std
    missed = -first['regression']['mean_residual'] / (PLANTED_OFFSET_SD * std)
    assert 0.6 < missed < 1.1, missed
    lead = report['insights'][1]  # after the gate's verdict
    assert lead.startswith(f'{first["slice"]}: the model under-predicts by ')
    assert f'(mean residual {first["regression"]["mean_residual"]:+.3g})' in lead


def test_what_a_regression_cannot_take_is_refused_before_any_beam_work(tmp_path):
    from blindspot.error_analysis.beam.predictions import InputError

    inputs = data.inputs(tmp_path / 'in', data.rows(40, 4))
    out = tmp_path / 'out'
    with pytest.raises(InputError, match='tag references are accuracies, for a classifier'):
        data.run(
            inputs,
            out,
            task='regression',
            tag_rules='["weekend: day == \\"sat\\""]',
            tag_references='{"weekend": 0.9}',
        )
    assert not os.path.exists(out / 'report.json') and not os.listdir(out)
    # A classifier's label (strings) cannot be a regression's.
    with pytest.raises(InputError, match="label 'region' holds strings"):
        data.run(inputs, out, task='regression', label_key='region', slice_features='["day"]')
