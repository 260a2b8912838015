"""The slice gate end to end: a pipeline that will not ship a new blind spot.

Three real runs of the taxi pipeline into one output folder: clean data (blessed, pushed);
data whose Saturday labels are half flipped (conftest.flip_label_on_day), blessed by the
Evaluator (a 50-point accuracy drop is tolerated here on purpose) but not pushed, because
ErrorAnalysis finds the Saturday slice new since the last blessed model; the same data with
--slice-gate off, which pushes."""

import pytest


@pytest.fixture(scope='module')
def gated_runs(gated_taxi_runs):
    from blindspot import review

    out, summaries = gated_taxi_runs
    return review.list_runs(out), summaries


def test_clean_run_is_blessed_and_pushed(gated_runs):
    runs, _ = gated_runs
    assert runs[0].blessed is True and runs[0].model_pushed
    assert runs[0].report_json()['gate']['passed']


def test_new_blind_spot_blocks_the_push_of_a_blessed_model(gated_runs):
    runs, _ = gated_runs
    second = runs[1]
    assert second.blessed is True  # the Evaluator's thresholds let it through
    assert second.pushed is None and not second.model_pushed  # the slice gate did not
    gate = second.report_json()['gate']
    assert not gate['passed']
    assert any('trip_start_day = 7' in b['slice'] for b in gate['blocking']), gate
    first_insight = second.insights()[0]
    assert first_insight.startswith('Slice gate (new): push blocked by slice')
    assert '--slice-gate off' in first_insight
    from blindspot.review import metadata

    assert metadata.custom_value(second.report, 'slice_gate_passed') == 0
    assert 'trip_start_day = 7' in metadata.custom_value(second.report, 'slice_gate')


def test_gate_off_pushes_the_same_model(gated_runs):
    runs, _ = gated_runs
    third = runs[2]
    assert third.model.id == runs[1].model.id  # same data and code: the Trainer was cached
    assert third.report_json()['gate'] == {
        'mode': 'off',
        'passed': True,
        'reason': 'slice gate off',
        'blocking': [],
        'wired': True,  # the Pusher is under slice_gate_condition (pipelines/pipeline.py)
    }
    assert third.model_pushed


def test_summary_names_the_blocking_slice(gated_runs):
    _, summaries = gated_runs
    blocked = summaries[1]
    assert 'Slice gate (new): BLOCKED: push blocked by slice' in blocked
    assert 'trip_start_day = 7' in blocked and 'Model pushed: no' in blocked
    assert 'Model pushed: yes' in summaries[2]


def test_comparison_is_measured_on_both_models_predictions(gated_runs, gated_taxi_runs, capsys):
    """Run 2's comparison counts each slice on both models' predictions, joined by example
    id: the Saturday trips whose labels were flipped are other examples now (an id is a hash
    of the bytes), so the day is compared on each model's own rows, and every count of a
    failing slice on the current rows is the search's own count."""
    import json
    import os

    from blindspot.error_analysis.beam.comparison import PART_COMPARISON
    from blindspot.review import cli as review_cli

    runs, _ = gated_runs
    comparison = runs[1].report_json()['comparison']
    rows = comparison['measured']['rows']
    assert comparison['measured']['problem'] is None
    assert rows['baseline'] > 0 and 0.7 * rows['current'] < rows['matched'] < rows['current']
    day = [e for e in comparison['new'] if 'trip_start_day = 7' in e['slice']]
    assert day and day[0]['measure']['kind'] == 'unpaired'
    assert day[0]['baseline']['error_rate'] < day[0]['current']['error_rate']
    with open(os.path.join(runs[1].report.uri, PART_COMPARISON)) as f:
        measured = {m['slice']: m for m in json.load(f)['slices']}
    for s in runs[1].failing_slices():
        counted = measured[s['slice']]['current']
        assert (counted['rows'], counted['errors']) == (s['size'], s['errors']), s['slice']

    # `compare` of runs 1 and 2 shows the measured "before"; runs 2 and 3 (one model, the
    # same examples) are measured now, paired, and nothing differs.
    out_dir = gated_taxi_runs[0]
    assert review_cli.main(['compare', '1', '2', '--output-dir', out_dir, '--no-tfma']) == 0
    out = capsys.readouterr().out
    new_section = out.split('New (')[1].split('Resolved (')[0]
    assert 'measured on different examples' in new_section and 'not measured' not in out
    assert review_cli.main(['compare', '2', '3', '--output-dir', out_dir, '--no-tfma']) == 0
    out = capsys.readouterr().out
    assert 'New (0)' in out and 'Resolved (0)' in out and 'not measured' not in out
    persisting = out.split('Persisting (')[1]
    assert persisting.count('measured on the same') == int(persisting.split(')')[0])
