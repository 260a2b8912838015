"""`history`, `compare` and `review-sheet` as a user runs them: each in a fresh process, reading
the gated taxi runs (tests/conftest.py: gated_taxi_runs; run 1 clean and pushed, run 2 with
Saturday labels half flipped and blocked by the slice gate, run 3 the same data with the gate
off, pushed). They read ML Metadata and the report files only: no TensorFlow, TFX, TFMA or
Beam in the process (Beam only for a pair that must be measured afresh), and nothing on
stderr but their own lines.

Outcomes that the gated runs do not have (not blessed, blessed but never pushed, cancelled,
failed) are checked on ML Metadata stores built here with the same types and events TFX
records."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import CORRUPT_DAY

REPO = Path(__file__).resolve().parent.parent
# Top-level packages that the review commands must not import (each costs seconds).
HEAVY = ('tensorflow', 'tfx', 'tensorflow_model_analysis', 'tfx_bsl', 'keras', 'tf_keras')

# Runs local_runner.py as `python local_runner.py ARGS` does, then writes which of the heavy
# packages (and Beam) the process imported to the file named by the environment.
_WRAPPER = """
import json, os, runpy, sys
sys.argv = ['local_runner.py'] + json.loads(sys.argv[1])
code = 0
try:
    runpy.run_path('local_runner.py', run_name='__main__')
except SystemExit as e:
    code = e.code
with open(os.environ['REVIEW_CLI_MODULES'], 'w') as f:
    json.dump({'code': code, 'modules': sorted({m.split('.')[0] for m in sys.modules})}, f)
"""


def run_cli(args: List[str], tmp_path: Path) -> Dict:
    """One command in a fresh interpreter: {'code', 'out', 'err', 'modules', 'seconds'}."""
    modules = tmp_path / f'modules-{time.monotonic_ns()}.json'
    started = time.time()
    done = subprocess.run(
        [sys.executable, '-c', _WRAPPER, json.dumps(args)],
        cwd=REPO,
        env={**os.environ, 'REVIEW_CLI_MODULES': str(modules)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.time() - started
    result = json.loads(modules.read_text())
    print(f'{" ".join(args[:2])}: {seconds:.1f} s')
    return {**result, 'out': done.stdout, 'err': done.stderr, 'seconds': seconds}


def _heavy(modules: List[str]) -> List[str]:
    return [m for m in modules if m in HEAVY]


@pytest.fixture(scope='module')
def gated(gated_taxi_runs):
    from blindspot import review

    out = gated_taxi_runs[0]
    return out, review.Review(out)


def test_history_is_light_and_tells_outcomes(gated, tmp_path):
    out, r = gated
    result = run_cli(['history', '--output-dir', out], tmp_path)
    assert result['code'] == 0 and result['err'] == ''
    assert _heavy(result['modules']) == [] and 'apache_beam' not in result['modules']
    lines = {
        run.number: next(line for line in result['out'].splitlines() if run.run_id in line)
        for run in r.runs()
    }
    # Run 2: blessed by the Evaluator, its Pusher never ran: the slice gate blocked it.
    assert '  pushed  ' in lines[1] and '  gate blocked  ' in lines[2]
    assert '  pushed  ' in lines[3] and 'yes' not in result['out']
    first = r.run(1)
    assert f'{first.accuracy():.3f}' in lines[1] and f'{100 * first.error_rate():.1f}%' in lines[1]


def test_compare_default_reuses_the_stored_comparison(gated, tmp_path):
    out, r = gated
    result = run_cli(['compare', '--output-dir', out], tmp_path)
    assert result['code'] == 0 and result['err'] == ''
    assert _heavy(result['modules']) == [] and 'apache_beam' not in result['modules']
    # Run 3 (the gate off) compared itself with run 1's report, the last blessed model whose
    # report passed the gate: that comparison is the default, read back, not measured again.
    text = result['out']
    assert text.splitlines()[0].startswith(f'blindspot-taxi: run #3 {r.run(3).run_id} compared')
    assert f'run #1 {r.run(1).run_id}' in text.splitlines()[0]
    assert "comparison stored in run #3's report" in text
    stored = r.run(3).report_json()['comparison']
    new_section = text.split('New (')[1].split('Resolved (')[0]
    assert new_section.startswith(f'{len(stored["new"])}):')
    assert f'trip_start_day = {CORRUPT_DAY}' in new_section


def test_compare_of_another_pair_measures_it_in_beam_without_tensorflow(gated, tmp_path):
    out, _ = gated
    result = run_cli(['compare', '2', '3', '--output-dir', out], tmp_path)
    assert result['code'] == 0
    # Beam, and the C++ sketches of tfx_bsl that the Beam step imports: no TensorFlow.
    assert 'apache_beam' in result['modules']
    assert [m for m in _heavy(result['modules']) if m != 'tfx_bsl'] == []
    # The one line on stderr says what costs time, before it does.
    assert result['err'].splitlines() == [
        "note: measuring run #2 and run #3 on both runs' predictions (a local Beam pipeline: "
        'a few seconds)'
    ]
    assert (
        "comparison measured now on both runs' predictions (a local Beam pipeline"
        in (result['out'])
    )
    assert 'New (0)' in result['out'] and 'not measured' not in result['out']


def _predicate_holds(predicate: Dict, cell: str) -> bool:
    if predicate.get('is_range'):
        value = float(cell)
        low, high = predicate.get('low'), predicate.get('high')
        return (low is None or value >= low) and (high is None or value < high)
    return predicate['label'] == f'{predicate["feature"]} = {cell}'


def test_review_sheet_names_each_rows_finding(gated, tmp_path):
    out, r = gated
    sheet = tmp_path / 'mistakes.csv'
    result = run_cli(
        ['review-sheet', '--output-dir', out, '--run', '2', '--out', str(sheet)], tmp_path
    )
    assert result['code'] == 0 and result['err'] == '' and _heavy(result['modules']) == []
    with open(sheet) as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:8] == [
        'example_id',
        'weight',
        'true',
        'predicted',
        'correct',
        'confidence',
        'label_suspect',
        'finding',
    ]
    # The label is computed from the tip (and the fare): the tip comes first among features.
    assert header[8] == 'tips' and 'fare' in header
    findings = {f'#{s["rank"]} {s["slice"]}': s for s in r.run(2).failing_slices()}
    named = [row for row in rows if row['finding']]
    assert named and {row['finding'] for row in named} <= set(findings)
    ranks = list(findings)
    # Findings on the sheet's own columns are checked here on the row's values (one on a
    # derived feature, such as a date part, only by its rank).
    checkable = {
        name: s
        for name, s in findings.items()
        if all(p['feature'] in header for p in s['predicates'])
    }
    assert checkable
    for row in rows:
        inside = [
            name
            for name, s in checkable.items()
            if all(_predicate_holds(p, row[p['feature']]) for p in s['predicates'])
        ]
        first = min(inside, key=ranks.index) if inside else None
        if not row['finding'] or row['finding'] in checkable:
            # The first finding by rank that holds the row, or none.
            assert row['finding'] == (first or ''), row
        else:
            assert first is None or ranks.index(first) > ranks.index(row['finding']), row
    # Label suspects stay their own stratum, first.
    suspects = [i for i, row in enumerate(rows) if row['label_suspect'] == 'True']
    assert suspects == list(range(len(suspects)))


def test_review_sheet_of_one_finding(gated, tmp_path):
    out, r = gated
    report = r.run(2).report_json()
    finding = next(
        s
        for s in report['slices']['slices']
        if s['held'] and s.get('examples') and all('.' not in p['feature'] for p in s['predicates'])
    )  # a finding on raw columns (not a date part), to check its rows' values below
    sheet = tmp_path / 'finding.csv'
    args = ['review-sheet', '--output-dir', out, '--run', '2', '--out', str(sheet)]
    result = run_cli([*args, '--finding', str(finding['rank'])], tmp_path)
    assert result['code'] == 0 and result['err'] == '' and _heavy(result['modules']) == []
    with open(sheet) as f:
        rows = list(csv.DictReader(f))
    own = list(dict.fromkeys(p['feature'] for p in finding['predicates']))
    header = list(rows[0])
    assert header[: 2 + len(own) + 4] == [
        'example_id',
        'weight',
        *own,
        'true',
        'predicted',
        'confidence',
        'label_suspect',
    ]
    assert header[2 + len(own) + 4] == 'tips' and header[-2:] == ['tags', 'notes']
    # Every mistake of the finding, as ErrorAnalysis counted them in Beam, most confident first.
    mistakes = finding['examples']['mistakes']
    assert len(rows) == min(mistakes, 100)
    assert f'{len(rows)} of the {mistakes} mistakes of finding #{finding["rank"]}' in result['out']
    assert all(row['true'] != row['predicted'] for row in rows)
    for row in rows:
        assert all(_predicate_holds(p, row[p['feature']]) for p in finding['predicates'])
    confidence = [float(row['confidence']) for row in rows]
    assert confidence == sorted(confidence, reverse=True)
    listed = finding['examples']['rows']
    assert {row['example_id'] for row in rows[: len(listed) - 1]} <= {
        x['example_id'] for x in listed
    }
    # The same finding by its slice id; an unknown one is refused with the findings listed.
    by_id = tmp_path / 'by-id.csv'
    result = run_cli([*args[:-1], str(by_id), '--finding', finding['slice_id']], tmp_path)
    assert result['code'] == 0 and by_id.read_text() == sheet.read_text()
    result = run_cli([*args, '--finding', '99'], tmp_path)
    assert result['code'] == 2
    assert result['err'].startswith("error: no finding '99' in the report")
    assert f'#{finding["rank"]} {finding["slice"]} (id {finding["slice_id"]})' in result['err']


# Outcomes on stores built here: the types, contexts and events a TFX run records.


def _outcome_store(folder: Path, runs: List[Dict]) -> str:
    """An ML Metadata store at folder/metadata.sqlite with one pipeline run per entry of
    `runs`: {'states': {component: state name}, 'blessed': 0/1, 'gate': 0/1, 'pushed': 0/1}
    (a missing key: no such artifact; a component not in 'states': no execution). Each report
    is a minimal report.json under folder/reports."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    folder.mkdir(parents=True, exist_ok=True)
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(folder / 'metadata.sqlite')
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    context_types = {
        name: store.put_context_type(pb.ContextType(name=name))
        for name in ('pipeline', 'pipeline_run', 'node')
    }
    artifact_types = {
        name: store.put_artifact_type(pb.ArtifactType(name=name))
        for name in ('ModelBlessing', 'ErrorAnalysisReport', 'PushedModel')
    }
    outputs = {
        'Evaluator': ('blessing', 'ModelBlessing', 'blessed'),
        'ErrorAnalysis': ('report', 'ErrorAnalysisReport', 'gate'),
        'Pusher': ('pushed_model', 'PushedModel', 'pushed'),
    }
    (pipeline,) = store.put_contexts(
        [pb.Context(type_id=context_types['pipeline'], name='blindspot-taxi')]
    )
    nodes = {}
    for i, spec in enumerate(runs):
        (run,) = store.put_contexts(
            [pb.Context(type_id=context_types['pipeline_run'], name=f'2026-01-0{i + 1}T00:00:00')]
        )
        for component, state in spec['states'].items():
            if component not in nodes:
                (nodes[component],) = store.put_contexts(
                    [pb.Context(type_id=context_types['node'], name=f'blindspot-taxi.{component}')]
                )
            execution_type = store.put_execution_type(pb.ExecutionType(name=component))
            execution = pb.Execution(
                type_id=execution_type, last_known_state=pb.Execution.State.Value(state)
            )
            artifacts, events = [], []
            if component in outputs and outputs[component][2] in spec:
                key, type_name, flag = outputs[component]
                artifact = pb.Artifact(type_id=artifact_types[type_name])
                if component == 'ErrorAnalysis':
                    uri = folder / 'reports' / str(i)
                    uri.mkdir(parents=True)
                    (uri / 'report.json').write_text(
                        json.dumps({'overall': {'error_rate': 0.2}, 'slices': {'slices': []}})
                    )
                    artifact.uri = str(uri)
                    artifact.custom_properties['slice_gate_passed'].int_value = spec[flag]
                else:
                    artifact.custom_properties[flag].int_value = spec[flag]
                event = pb.Event(type=pb.Event.OUTPUT)
                event.path.steps.add().key = key
                artifacts, events = [artifact], [event]
            store.put_execution(
                execution,
                list(zip(artifacts, events)),
                store.get_contexts_by_id([pipeline, run, nodes[component]]),
            )
    return str(folder)


def test_outcomes(tmp_path, capsys):
    from blindspot import review
    from blindspot.review import cli as review_cli

    done = {'Trainer': 'COMPLETE', 'Evaluator': 'COMPLETE', 'ErrorAnalysis': 'COMPLETE'}
    out = _outcome_store(
        tmp_path / 'out',
        [
            {'states': {**done, 'Pusher': 'COMPLETE'}, 'blessed': 1, 'gate': 1, 'pushed': 1},
            {'states': done, 'blessed': 1, 'gate': 0},
            # Blessed, the gate passed, and yet no Pusher ran (the case `history` called
            # "blessed yes" before).
            {'states': done, 'blessed': 1, 'gate': 1},
            {'states': {**done, 'Pusher': 'COMPLETE'}, 'blessed': 0, 'gate': 1, 'pushed': 0},
            {'states': {'Trainer': 'CANCELED'}},
            {'states': {'Trainer': 'COMPLETE', 'Evaluator': 'FAILED'}},
        ],
    )
    expected = [
        'pushed',
        'gate blocked',
        'blessed, not pushed',
        'not blessed',
        'cancelled',
        'failed',
    ]
    assert [run.outcome for run in review.Review(out).runs()] == expected
    assert review_cli.main(['history', '--output-dir', out]) == 0
    header, *lines = capsys.readouterr().out.splitlines()[1:]
    column = header.index('outcome')
    assert [line[column : column + 19].strip() for line in lines] == expected
    assert lines[4].endswith('(cancelled at Trainer)') and lines[5].endswith(
        '(failed at Evaluator)'
    )


def test_history_shows_a_regressions_mean_error_not_its_above_median_share(tmp_path, capsys):
    """A regression's report keeps `error_rate` = the share of rows above the median error
    (about 50% by construction): history prints its MAE instead, and a classifier's rate as
    before."""
    from blindspot import review
    from blindspot.review import cli as review_cli

    done = {'Trainer': 'COMPLETE', 'Evaluator': 'COMPLETE', 'ErrorAnalysis': 'COMPLETE'}
    run = {'states': {**done, 'Pusher': 'COMPLETE'}, 'blessed': 1, 'gate': 1, 'pushed': 1}
    out = _outcome_store(tmp_path / 'out', [run, run])
    (tmp_path / 'out' / 'reports' / '1' / 'report.json').write_text(
        json.dumps(
            {
                'overall': {'error_rate': 0.5, 'mean_error': 0.4487},
                'regression': {'error': 'absolute'},
                'slices': {'slices': []},
            }
        )
    )
    classifier, regressor = review.Review(out).runs()
    assert classifier.error_rate() == 0.2 and classifier.mean_error() is None
    assert regressor.error_rate() is None
    assert regressor.mean_error() == {'metric': 'MAE', 'value': 0.4487}
    assert review_cli.main(['history', '--output-dir', out]) == 0
    header, *lines = capsys.readouterr().out.splitlines()[1:]
    column = header.index('error')
    assert [line[column - 4 : column + 6].strip() for line in lines] == ['20.0%', 'MAE 0.449']
