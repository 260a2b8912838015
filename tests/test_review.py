"""Run history and report comparison, read from ML Metadata.

The gated taxi runs (tests/conftest.py: gated_taxi_runs) on 2,000 rows: run 2 has the label
flipped on every other trip that started on a Saturday (trip_start_day = 7), so no model can be
right on more than about half of them: a clear new failing slice. Run 1's model is blessed (low
accuracy threshold), so run 2's ErrorAnalysis compares itself with run 1's report."""

import json
import os

import pytest

from tests.conftest import CORRUPT_DAY

DAY_PREDICATE = ('trip_start_day', f'trip_start_day = {CORRUPT_DAY}')


def _has_day(entries):
    return [
        e for e in entries if DAY_PREDICATE in {(p['feature'], p['label']) for p in e['predicates']}
    ]


@pytest.fixture(scope='module')
def two_runs(gated_taxi_runs):
    """The output folder of the gated runs: runs 1 (clean) and 2 (Saturday labels flipped) are
    the pair these tests compare; run 3 repeats run 2 with the slice gate off."""
    return gated_taxi_runs[0]


def test_api_lists_runs_and_their_artifacts(two_runs):
    from blindspot import review

    r = review.Review(two_runs, 'taxi')
    assert r.pipeline == 'blindspot-taxi'
    first, second, third = r.runs()
    assert [first.number, second.number, third.number] == [1, 2, 3]
    assert r.run().run_id == third.run_id == r.run(-1).run_id == r.run(3).run_id
    assert r.run(2).run_id == second.run_id and r.run(first.run_id) is first
    assert first.blessed is True  # accuracy threshold 0.5
    for run in (first, second):
        assert run.status == 'complete'
        for artifact in (run.model, run.evaluation, run.blessing, run.report):
            assert artifact is not None and os.path.isdir(artifact.uri)
        with open(os.path.join(run.report.uri, 'report.json')) as f:
            assert run.report_json() == json.load(f)
        assert 0 < run.accuracy() <= 1
    # New data: nothing served from the cache, every artifact is new.
    assert first.report.id != second.report.id and first.model.id != second.model.id
    assert second.error_rate() > first.error_rate()


def test_component_compares_with_the_blessed_report(two_runs):
    import blindspot.error_analysis as error_analysis
    from blindspot import review
    from blindspot.review import metadata

    first, second, _ = review.list_runs(two_runs)
    assert 'comparison' not in first.report_json()  # no blessed model before run 1
    comparison = second.report_json()['comparison']
    assert comparison['baseline_artifact_id'] == first.report.id
    assert comparison['baseline_uri'] == first.report.uri
    new = _has_day(comparison['new'])
    assert new, comparison['new']
    assert new[0]['current']['error_rate'] > 0.35 and new[0]['current']['held']
    assert not _has_day(first.failing_slices())
    assert any(
        line.startswith(f'New failing slice since the last blessed model: {new[0]["slice"]}')
        for line in second.insights()
    )
    assert metadata.custom_value(second.report, error_analysis.files.NEW_FAILING_SLICES) == len(
        comparison['new']
    )
    assert metadata.custom_value(second.report, error_analysis.files.BASELINE_REPORT_ID) == (
        first.report.id
    )
    with open(second.report_html_path()) as f:
        page = f.read()
    assert new[0]['slice'].replace('>', '&gt;').replace('<', '&lt;') in page


def test_history_cli(two_runs, capsys):
    from blindspot import review
    from blindspot.review import cli as review_cli

    assert review_cli.main(['history', '--output-dir', two_runs, '--pipeline', 'taxi']) == 0
    out = capsys.readouterr().out
    runs = review.list_runs(two_runs)
    lines = [line for line in out.splitlines() if any(r.run_id in line for r in runs)]
    assert len(lines) == 3
    for line, run in zip(lines, runs):
        assert run.run_id in line and 'blindspot-taxi' in line
        assert f'{100 * run.error_rate():.1f}%' in line
        assert f'{run.accuracy():.3f}' in line
        assert f' {len(run.failing_slices())} ' in line
    # Run 1 pushed; run 2 blessed by the Evaluator but blocked by the slice gate (its Pusher
    # never ran); run 3, the same model with the gate off, pushed.
    assert ' pushed ' in lines[0] and ' gate blocked ' in lines[1] and ' pushed ' in lines[2]
    assert runs[1].failing_slices()[0]['slice'][:60] in lines[1]


def test_compare_cli_new_and_resolved(two_runs, capsys):
    from blindspot import review
    from blindspot.review import cli as review_cli

    # Run 1 against run 2: the corrupted day is a new failing slice.
    assert review_cli.main(['compare', '1', '2', '--output-dir', two_runs]) == 0
    out = capsys.readouterr().out
    new_section = out.split('New (')[1].split('Resolved (')[0]
    assert f'trip_start_day = {CORRUPT_DAY}' in new_section
    assert 'Accuracy by TFMA slice (binary_accuracy' in out
    # Default: the latest run (3) against the run whose report its ErrorAnalysis compared
    # itself with (1, the last blessed model whose report passed the gate), stored.
    assert review_cli.main(['compare', '--output-dir', two_runs]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(
        f'compared with run #1 {review.Review(two_runs).run(1).run_id}'
    )
    assert "comparison stored in run #3's report" in out
    assert f'trip_start_day = {CORRUPT_DAY}' in out.split('New (')[1].split('Resolved (')[0]
    # Runs 2 and 3 (the same data and model), measured now: the day persists.
    assert review_cli.main(['compare', '2', '3', '--output-dir', two_runs, '--no-tfma']) == 0
    out = capsys.readouterr().out
    assert f'trip_start_day = {CORRUPT_DAY}' in out.split('Persisting (')[1]
    assert f'trip_start_day = {CORRUPT_DAY}' not in out.split('New (')[1].split('Resolved (')[0]
    # The other way round it is resolved.
    assert review_cli.main(['compare', '2', '1', '--output-dir', two_runs, '--no-tfma']) == 0
    out = capsys.readouterr().out
    resolved_section = out.split('Resolved (')[1].split('Persisting (')[0]
    assert f'trip_start_day = {CORRUPT_DAY}' in resolved_section


def test_compare_api_accuracy_changes(two_runs):
    from blindspot import review

    comparison = review.compare_runs(two_runs, 1, 2)
    assert comparison['accuracy']['metric'] == 'binary_accuracy'
    overall = next(r for r in comparison['accuracy']['rows'] if r['slice'] == 'Overall')
    assert overall['change'] < 0
    assert _has_day(comparison['new'])
    assert comparison['baseline_run']['number'] == 1 and comparison['current_run']['number'] == 2
    # By default the reports' copies of the Evaluator's metrics (no TFMA import); read from the
    # two evaluations with TFMA they are the same numbers.
    from_evaluations = review.compare_runs(two_runs, 1, 2, tfma=True)
    assert from_evaluations['accuracy'] == comparison['accuracy']
    assert from_evaluations['new'] == comparison['new']


def test_unknown_run_and_pipeline(two_runs, capsys):
    from blindspot.review import cli as review_cli

    assert review_cli.main(['compare', 'no-such-run', '--output-dir', two_runs]) == 2
    err = capsys.readouterr().err
    assert "no run 'no-such-run' of pipeline 'blindspot-taxi'" in err and '3 run(s)' in err
    assert review_cli.main(['compare', '5', '1', '--output-dir', two_runs]) == 2
    assert "no run '5'" in capsys.readouterr().err
    assert review_cli.main(['history', '--output-dir', two_runs, '--pipeline', 'mnist']) == 2
    err = capsys.readouterr().err
    assert "no pipeline 'mnist'" in err and 'blindspot-taxi' in err


# Bad input, on stores built here (no pipeline run needed).


def _store(folder, pipelines=(), runs=0):
    """An ML Metadata SQLite store at folder/metadata.sqlite with pipeline contexts and, for
    the first pipeline, `runs` pipeline_run contexts holding one execution each."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    folder.mkdir(parents=True, exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(folder / 'metadata.sqlite')
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    store = metadata_store.MetadataStore(config)
    type_ids = {
        name: store.put_context_type(metadata_store_pb2.ContextType(name=name))
        for name in ('pipeline', 'pipeline_run', 'node')
    }
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name='Trainer'))
    contexts = store.put_contexts(
        [metadata_store_pb2.Context(type_id=type_ids['pipeline'], name=name) for name in pipelines]
    )
    for i in range(runs):
        (run,) = store.put_contexts(
            [
                metadata_store_pb2.Context(
                    type_id=type_ids['pipeline_run'], name=f'2026-01-0{i + 1}T00:00:00'
                )
            ]
        )
        execution = metadata_store_pb2.Execution(
            type_id=execution_type, last_known_state=metadata_store_pb2.Execution.COMPLETE
        )
        (execution_id,) = store.put_executions([execution])
        store.put_attributions_and_associations(
            [],
            [
                metadata_store_pb2.Association(execution_id=execution_id, context_id=context_id)
                for context_id in (contexts[0], run)
            ],
        )
    return str(folder)


def test_no_store(tmp_path, capsys):
    from blindspot import review
    from blindspot.review import cli as review_cli

    (tmp_path / 'logs').mkdir()
    assert review_cli.main(['history', '--output-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / 'metadata.sqlite') in err and 'the folder has: logs' in err
    missing = str(tmp_path / 'nowhere')
    assert review_cli.main(['compare', '--output-dir', missing]) == 2
    assert f"no output folder '{missing}'" in capsys.readouterr().err
    with pytest.raises(review.ReviewError, match='no ML Metadata store'):
        review.list_runs(str(tmp_path))


def test_store_of_another_pipeline(tmp_path, capsys):
    from blindspot.review import cli as review_cli

    out = _store(tmp_path / 'mnist', pipelines=['blindspot-mnist'], runs=1)
    assert review_cli.main(['history', '--output-dir', out, '--pipeline', 'taxi']) == 2
    err = capsys.readouterr().err
    assert "no pipeline 'taxi'" in err and 'it has: blindspot-mnist' in err
    empty = _store(tmp_path / 'empty')
    assert review_cli.main(['history', '--output-dir', empty]) == 2
    assert 'no pipelines' in capsys.readouterr().err


def test_compare_needs_two_runs_with_reports(tmp_path, capsys):
    from blindspot.review import cli as review_cli

    one = _store(tmp_path / 'one', pipelines=['blindspot-taxi'], runs=1)
    assert review_cli.main(['compare', '--output-dir', one]) == 2
    err = capsys.readouterr().err
    assert '1 run(s): #1 2026-01-01T00:00:00' in err and 'need two runs' in err
    two = _store(tmp_path / 'two', pipelines=['blindspot-taxi'], runs=2)
    assert review_cli.main(['compare', '--output-dir', two]) == 2
    assert 'has no ErrorAnalysis report' in capsys.readouterr().err
    assert review_cli.main(['history', '--output-dir', two]) == 0
    assert '2026-01-02T00:00:00' in capsys.readouterr().out
