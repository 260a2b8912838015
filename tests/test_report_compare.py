"""The pure report comparison (report/compare.py) from the two reports' own numbers (the
fallback without the baseline's predictions; measured comparisons: test_measured_comparison.py),
its insights and HTML, and the resolver strategy that finds the latest blessed model's report
(on an in-memory ML Metadata store)."""

import pytest

from blindspot.error_analysis.report import compare as rc
from blindspot.error_analysis.report.compare_html import render_comparison


def _slice(*predicates, size=100, errors=40, held=True):
    half = size // 2
    return {
        'slice': ' AND '.join(label for _, label in predicates),
        'predicates': [{'feature': f, 'label': label} for f, label in predicates],
        'search_size': half,
        'search_errors': errors // 2,
        'holdout_size': size - half,
        'holdout_errors': errors - errors // 2,
        'held': held,
        'size': size,
        'errors': errors,
        'error_rate': errors / size,
        'error_rate_outside': 0.1,
        'error_share': errors / 100,
        'potential_gain': (errors / size - 0.1) * size / 1000,
        'added_potential_gain': (errors / size - 0.1) * size / 1000,
        'parent': None,
    }


def _report(slices, feature_values=(), error_rate=0.1, tfma=(), created='t'):
    return {
        'created': created,
        'overall': {
            'examples': 1000,
            'errors': int(1000 * error_rate),
            'error_rate': error_rate,
            'accuracy': 1 - error_rate,
        },
        'slices': {'slices': list(slices), 'feature_values': list(feature_values)},
        'tfma': list(tfma),
    }


CASH = ('payment_type', 'payment_type = Cash')
CARD = ('payment_type', 'payment_type = Credit Card')
HOUR = ('trip_start_hour', 'trip_start_hour = 19')
DAY = ('trip_start_day', 'trip_start_day = 7')


def test_new_resolved_persisting_matched_by_predicate_sets():
    before = _report([_slice(CARD, HOUR, errors=50), _slice(CASH, errors=30)])
    # Same predicates in another order: the same slice. DAY is new; CASH no longer held.
    after = _report(
        [
            _slice(HOUR, CARD, errors=45),
            _slice(DAY, errors=60),
            _slice(CASH, errors=12, held=False),
        ],
        error_rate=0.2,
        created='u',
    )
    c = rc.compare_reports(before, after)
    assert [e['slice'] for e in c['new']] == ['trip_start_day = 7']
    assert [e['slice'] for e in c['persisting']] == [
        'trip_start_hour = 19 AND payment_type = Credit Card'
    ]
    assert [e['slice'] for e in c['resolved']] == ['payment_type = Cash']
    persisting = c['persisting'][0]
    assert persisting['baseline']['error_rate'] == 0.5
    assert persisting['current']['error_rate'] == 0.45
    assert persisting['error_rate_change'] == pytest.approx(-0.05)
    resolved = c['resolved'][0]
    assert resolved['current'] == {'error_rate': 0.12, 'size': 100, 'errors': 12, 'held': False}
    assert c['new'][0]['baseline'] is None  # not measured before: new by the listing rule
    assert c['new'][0]['not_measured'] == "the baseline's predictions were not measured"
    # Measured by the reports' numbers: 50% -> 45% is not worse, 30% -> 12% is better.
    assert persisting['measure']['kind'] == 'reports'
    assert resolved['measure']['test'] == 'better' and resolved['measure']['p_value'] < 0.01
    assert c['overall']['error_rate_change'] == pytest.approx(0.1)
    assert (c['baseline_created'], c['current_created']) == ('t', 'u')


def test_single_predicate_measured_from_feature_values():
    day_value = {
        'feature': 'trip_start_day',
        'label': 'trip_start_day = 7',
        'size': 150,
        'errors': 15,
        'error_rate': 0.1,
    }
    c = rc.compare_reports(_report([], [day_value]), _report([_slice(DAY, errors=55)]))
    assert c['new'][0]['baseline'] == {'error_rate': 0.1, 'size': 150, 'errors': 15, 'held': False}
    assert c['new'][0]['error_rate_change'] == pytest.approx(0.45)


def test_identical_reports_change_nothing():
    report = _report([_slice(CARD)])
    c = rc.compare_reports(report, report)
    assert c['new'] == c['resolved'] == [] and len(c['persisting']) == 1
    assert rc.comparison_insights(c) == [
        'Still failing since the last blessed model: 1 slice(s), e.g. payment_type = Credit Card.'
    ]
    empty = rc.compare_reports(_report([]), _report([]))
    assert rc.comparison_insights(empty) == [
        'No failing slice before or now: nothing changed since the last blessed model.'
    ]


def _row(name, accuracy, n, features=None, metric='binary_accuracy'):
    return {
        'slice': name,
        'features': features
        if features is not None
        else ([] if name == 'Overall' else [name.split(' = ')[0]]),
        'metrics': {metric: accuracy, 'example_count': n},
    }


def test_accuracy_changes_by_tfma_slice():
    before = [
        _row('Overall', 0.9, 1000),
        _row('payment_type = Cash', 0.95, 400),
        _row('payment_type = Dispute', 0.5, 3),
        _row('company = A', 0.8, 50),
        _row('company = B', float('nan'), 50),
    ]
    after = [
        _row('Overall', 0.85, 1000),
        _row('payment_type = Cash', 0.7, 420),
        _row('payment_type = Dispute', 1.0, 4),
        _row('company = B', 0.9, 60),
        _row('company = C', 0.9, 60),
    ]
    acc = rc.compare_accuracy(before, after)
    assert acc['metric'] == 'binary_accuracy'
    # Largest change first; too small (Dispute) and NaN (company = B) left out.
    assert [r['slice'] for r in acc['rows']] == ['payment_type = Cash', 'Overall']
    assert acc['rows'][0]['change'] == pytest.approx(-0.25)
    assert (acc['rows'][0]['baseline_examples'], acc['rows'][0]['current_examples']) == (400, 420)
    assert (acc['only_in_baseline'], acc['only_in_current']) == (1, 1)
    # The reports' own TFMA rows are used unless others are given.
    c = rc.compare_reports(_report([], tfma=before), _report([], tfma=after))
    assert c['accuracy']['rows'] == acc['rows']
    c = rc.compare_reports(
        _report([], tfma=before), _report([], tfma=after), baseline_tfma=after, current_tfma=after
    )
    assert all(r['change'] == 0 for r in c['accuracy']['rows'])
    multiclass = [_row('Overall', 0.7, 100, metric='sparse_categorical_accuracy')]
    assert rc.compare_accuracy(multiclass, multiclass)['metric'] == 'sparse_categorical_accuracy'


def test_insights_name_new_and_fixed_slices():
    before = _report([_slice(CARD, errors=50)])
    after = _report([_slice(DAY, errors=60)], error_rate=0.2)
    lines = rc.comparison_insights(rc.compare_reports(before, after))
    assert lines == [
        'New failing slice since the last blessed model: trip_start_day = 7 '
        "(60% error rate, not measured before: the baseline's predictions were not measured).",
        'Fixed since the last blessed model: payment_type = Credit Card '
        "(was 50% error rate, no longer found (the baseline's predictions were not measured)).",
    ]
    # Measured on the reports' numbers: a rate that went up is worse, as the sentence says.
    day_before = _report([_slice(CARD, errors=50), _slice(DAY, errors=20, held=False)])
    lines = rc.comparison_insights(rc.compare_reports(day_before, after))
    assert lines[0] == (
        'New failing slice since the last blessed model: trip_start_day = 7 (60% error rate, '
        "was 20%; the two reports' numbers (the baseline's predictions were not measured); "
        'adjusted p = 5.3e-09).'
    )
    many = _report([_slice((f'f{i}', f'f{i} = x'), errors=60) for i in range(5)])
    lines = rc.comparison_insights(rc.compare_reports(_report([]), many), since='run 1')
    assert lines[-1] == '... and 2 more new failing slice(s) since run 1.'


def test_report_insights_include_the_comparison():
    from blindspot.error_analysis.report import insights

    report = _report([_slice(DAY, errors=60)], error_rate=0.2)
    report['confusion'] = {'top_pairs': []}
    assert not any('blessed' in line for line in insights.insights(report))
    report['comparison'] = rc.compare_reports(_report([]), report)
    assert insights.insights(report)[-1].startswith(
        'New failing slice since the last blessed model: trip_start_day = 7'
    )


def test_html_fragment():
    assert render_comparison({'insights': []}) == ''
    before = _report([_slice(CARD, errors=50)], tfma=[_row('Overall', 0.9, 1000)])
    after = _report(
        [_slice(('fare', '7.85 <= fare < 12.4'), errors=60)], tfma=[_row('Overall', 0.8, 1000)]
    )
    comparison = rc.compare_reports(before, after)
    comparison.update(baseline_label='the latest blessed model', baseline_uri='/x/report/3')
    page = render_comparison({'comparison': comparison})
    assert page.startswith('<h2>Since the last blessed model</h2>')
    assert '7.85 &lt;= fare &lt; 12.4' in page and '<fare' not in page
    assert 'New blind spots (failing significantly more) (1)' in page and 'Fixed (1)' in page
    assert "Not measured on the baseline's predictions" in page
    assert 'not measured: the baseline&#x27;s predictions were not measured' in page
    assert '/x/report/3' in page and '-0.100' in page


# The resolver strategy, on an in-memory store with the events TFX would record.


@pytest.fixture
def fake_store():
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.fake_database.SetInParent()
    return metadata_store.MetadataStore(config)


def _record(store, name, inputs, outputs):
    """An execution of component `name` reading {key: artifact_id} and writing {key: [ids]}."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    type_id = store.put_execution_type(pb.ExecutionType(name=name))
    (execution_id,) = store.put_executions([pb.Execution(type_id=type_id)])
    events = []
    for kind, mapping in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs)):
        for key, ids in mapping.items():
            for artifact_id in [ids] if isinstance(ids, int) else ids:
                event = pb.Event(type=kind, execution_id=execution_id, artifact_id=artifact_id)
                event.path.steps.add().key = key
                events.append(event)
    store.put_events(events)


def _artifacts(store, cls, n, **custom):
    type_id = store.put_artifact_type(cls._get_artifact_type())
    result = []
    for _ in range(n):
        a = cls()
        a.mlmd_artifact.type_id = type_id
        for key, value in custom.items():
            a.set_int_custom_property(key, value)
        result.append(a)
    ids = store.put_artifacts([a.mlmd_artifact for a in result])
    for a, artifact_id in zip(result, ids):
        a.id = artifact_id
    return result


def test_strategy_picks_first_report_of_latest_blessed_model(fake_store):
    from tfx.types import standard_artifacts

    from blindspot.error_analysis.artifact import ErrorAnalysisReport
    from blindspot.error_analysis.baseline import LatestBlessedModelReportStrategy

    m1, m2, m3 = _artifacts(fake_store, standard_artifacts.Model, 3)
    r1, r2a, r2b, r3 = _artifacts(fake_store, ErrorAnalysisReport, 4)
    for model, report in ((m1, r1), (m2, r2a), (m2, r2b), (m3, r3)):
        _record(fake_store, 'ErrorAnalysis', {'model': model.id}, {'report': [report.id]})
    # A cached execution re-points at r2a: still one report.
    _record(fake_store, 'ErrorAnalysis', {'model': m2.id}, {'report': [r2a.id]})
    blessings = []
    for model, blessed in ((m1, 1), (m2, 1), (m2, 1), (m3, 0)):
        (b,) = _artifacts(
            fake_store,
            standard_artifacts.ModelBlessing,
            1,
            blessed=blessed,
            current_model_id=model.id,
        )
        blessings.append(b)
    strategy = LatestBlessedModelReportStrategy()
    result = strategy.resolve_artifacts(
        fake_store, {'model_blessing': blessings, 'report': [r1, r2a, r2b, r3]}
    )
    assert [a.id for a in result['report']] == [r2a.id]
    assert [a.id for a in result['model_blessing']] == [blessings[1].id]
    # No blessed model yet, or no report of it: nothing, and ErrorAnalysis runs without.
    assert strategy.resolve_artifacts(
        fake_store, {'model_blessing': blessings[3:], 'report': [r3]}
    ) == {'model_blessing': [], 'report': []}
    assert (
        strategy.resolve_artifacts(fake_store, {'model_blessing': blessings[:1], 'report': [r3]})[
            'report'
        ]
        == []
    )
    assert strategy.resolve_artifacts(fake_store, {'model_blessing': [], 'report': []}) == {
        'model_blessing': [],
        'report': [],
    }
