"""--pipeline csv with a label of numbers: the task decided from the label (or --task), the
refusals that remain, the blessing thresholds on RMSE / MAE, and one real regression run."""

import math

import pytest

import local_runner
from blindspot.pipelines import preflight
from blindspot.pipelines.config import RunConfig, TrainingSettings
from blindspot.pipelines.csv import features as F
from blindspot.pipelines.datasets import dataset_for
from blindspot.review import metadata
from tests.conftest import PLANTED_REGION


def _csv(tmp_path, label_values, name='data.csv'):
    """Columns a (row number), b (4 categories) and the label y."""
    path = tmp_path / name
    path.write_text('a,b,y\n' + ''.join(f'{i},{i % 4},{v}\n' for i, v in enumerate(label_values)))
    return str(path)


# --- which task: from the label, or --task ------------------------------------------------


def test_numbers_with_more_than_20_values_are_regression_fewer_are_classes(tmp_path):
    many = _csv(tmp_path, [f'{i * 0.37:.2f}' for i in range(F.NUMERIC_CLASS_LIMIT + 1)] * 2)
    scan = preflight.scan_csv(many, 'y')
    assert scan.task == 'regression' and scan.label_classes == {}
    values = [i * 0.37 for i in range(F.NUMERIC_CLASS_LIMIT + 1)] * 2
    mean = sum(values) / len(values)
    assert scan.label_stats.mean == pytest.approx(mean, abs=1e-6)
    assert scan.label_stats.std == pytest.approx(
        math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)), rel=1e-6
    )
    assert any('predicts it as a number' in note for note in scan.notes)
    few = _csv(tmp_path, [i % F.NUMERIC_CLASS_LIMIT for i in range(60)], 'few.csv')
    scan = preflight.scan_csv(few, 'y')
    assert scan.task == 'classification' and len(scan.label_classes) == F.NUMERIC_CLASS_LIMIT
    # Integer ids beyond 100 distinct values: a quantity, no longer refused.
    counts = _csv(tmp_path, range(300), 'counts.csv')
    assert preflight.scan_csv(counts, 'y').task == 'regression'


def test_task_flag_overrides_the_label(tmp_path):
    ids = _csv(tmp_path, [i % 30 for i in range(60)])
    assert preflight.scan_csv(ids, 'y').task == 'regression'
    forced = preflight.scan_csv(ids, 'y', 'classification')
    assert forced.task == 'classification' and len(forced.label_classes) == 30
    small = _csv(tmp_path, [i % 5 for i in range(40)], 'small.csv')
    scan = preflight.scan_csv(small, 'y', 'regression')
    assert scan.task == 'regression' and scan.label_stats.std > 0
    dataset = dataset_for(RunConfig(pipeline='csv', data_root=small, label='y', task='regression'))
    assert dataset.task == 'regression'
    assert dataset.transform_config['task'] == 'regression'
    assert dataset.trainer_config == {'label_column': 'y', 'task': 'regression', 'loss': 'mse'}
    # Regression never slices TFMA by the label, even one with few values.
    assert 'y' not in dataset.eval_config.keywords['slice_columns']


def test_excluded_features_stay_slices_but_are_no_model_inputs(tmp_path):
    data = _csv(tmp_path, [f'{i / 3:.3f}' for i in range(40)])
    dataset = dataset_for(
        RunConfig(
            pipeline='csv',
            data_root=data,
            label='y',
            training=TrainingSettings(exclude_features=('b',)),
        )
    )
    assert dataset.slice_features == ('a', 'b')
    assert 'b' in dataset.transform_config['ignore']
    assert not any(name.startswith('b_') for name in dataset.transformed_features)


def test_taxi_regression_is_the_csv_pipeline_on_the_packaged_trips():
    dataset = dataset_for(RunConfig(pipeline='taxi-regression'))
    assert dataset.name == 'csv' and dataset.task == 'regression'
    assert dataset.pipeline_name == 'blindspot-csv-taxi-tips'
    assert dataset.label_source_columns == ('tips',)
    assert dataset.default_data_root().name == 'data.csv'


# --- refusals: one line, before TFX ----------------------------------------------------------


def _refused(tmp_path, capsys, *args):
    out = tmp_path / 'out'
    status = local_runner.run(
        local_runner.parse_args(['--pipeline', 'csv', '--output-dir', str(out), *args])
    )
    err = capsys.readouterr().err.strip()
    assert status != 0 and not (out / 'metadata.sqlite').exists()
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err
    return lines[0]


def test_regression_on_a_text_label_is_refused(tmp_path, capsys):
    data = _csv(tmp_path, ['yes' if i % 3 else 'no' for i in range(30)])
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--task', 'regression')
    assert "--task regression predicts numbers, but the label 'y' holds text (e.g. 'no')" in err


def test_text_label_with_more_than_100_values_is_refused(tmp_path, capsys):
    data = _csv(tmp_path, [f'name{i}' for i in range(150)])
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert 'holds text with more than 100 distinct values' in err


def test_too_many_classes_for_forced_classification(tmp_path, capsys):
    data = _csv(tmp_path, range(150))
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--task', 'classification')
    assert 'too many classes for --task classification' in err


def test_missing_and_non_finite_numbers_are_refused(tmp_path, capsys):
    data = _csv(tmp_path, ['' if i == 7 else i * 1.5 for i in range(40)])
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert '1 row(s) have no value' in err and 'line 9' in err
    data = _csv(tmp_path, ['inf' if i == 3 else i * 1.5 for i in range(40)], 'inf.csv')
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert "the label 'y' holds inf" in err and 'finite' in err


def test_constant_number_is_refused_for_regression(tmp_path, capsys):
    data = _csv(tmp_path, ['2.5'] * 30)
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--task', 'regression')
    assert "'y' is 2.5 in all 30 rows: there is nothing to predict" in err


def test_regression_flags_on_a_classifier_are_refused(tmp_path, capsys):
    data = _csv(tmp_path, ['yes' if i % 3 else 'no' for i in range(30)])
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--loss', 'huber')
    assert '--loss applies to regression' in err
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--max-rmse', '2')
    assert '--max-rmse and --max-mae bless a regressor' in err
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', '--exclude-feature', 'c')
    assert "--exclude-feature 'c' is not a column of the data" in err
    both = ['--exclude-feature', 'a', '--exclude-feature', 'b']
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', *both)
    assert 'no column is left for the model to read' in err and 'excluded: a, b' in err


def test_blessing_flags_are_checked(capsys):
    for args, message in (
        (['--max-rmse', '-1'], '--max-rmse must be a positive number'),
        (['--max-mae', 'nan'], '--max-mae must be a positive number'),
        (['--max-rmse', '1', '--max-mae', '1'], '--max-rmse and --max-mae both given'),
        (['--max-error-increase', '-0.1'], '--max-error-increase must be 0 or more'),
    ):
        with pytest.raises(SystemExit):
            local_runner.parse_args(['--pipeline', 'csv', *args])
        assert message in capsys.readouterr().err


# --- blessing: TFMA's own validation on the eval config ------------------------------------


def _validated(blessing, metric, value, baseline=None):
    """TFMA's verdict on the csv regressor's eval config for one overall metric value (and
    the latest blessed model's), set up as TFX's Evaluator does."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types

    from blindspot.pipelines.csv.evaluation import eval_config

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config(blessing, 0, ['b'], label_std=2.0),
        has_baseline=baseline is not None,
        rubber_stamp=True,
    )
    names = {spec.is_baseline: spec.name for spec in config.model_specs}

    def key(model, diff=False):
        return metric_types.MetricKey(name=metric, model_name=model, is_diff=diff)

    metrics = {key(names[False]): value}
    if baseline is not None:
        metrics.update({key(names[True]): baseline, key(names[False], True): value - baseline})
    return metrics_validator.validate_metrics(((), metrics), config).validation_ok


def test_blessing_bounds_rmse_by_default_by_the_label_std():
    default = TrainingSettings()
    rmse = 'root_mean_squared_error'
    assert _validated(default, rmse, 1.9) and not _validated(default, rmse, 2.1)
    strict = TrainingSettings(max_rmse=1.5)
    assert not _validated(strict, rmse, 1.9) and _validated(strict, rmse, 1.4)
    on_mae = TrainingSettings(max_mae=0.5)
    mae = 'mean_absolute_error'
    assert _validated(on_mae, mae, 0.4) and not _validated(on_mae, mae, 0.6)


def test_blessing_needs_an_error_not_worse_than_the_latest_blessed():
    rmse = 'root_mean_squared_error'
    assert _validated(TrainingSettings(), rmse, 1.3, baseline=1.4)
    assert not _validated(TrainingSettings(), rmse, 1.5, baseline=1.4)
    tolerant = TrainingSettings(max_error_increase=0.1)  # 1.5 is 7% above 1.4
    assert _validated(tolerant, rmse, 1.5, baseline=1.4)
    assert not _validated(tolerant, rmse, 1.6, baseline=1.4)


# --- a real run ----------------------------------------------------------------------------

REGRESSION_METRICS = {
    'example_count',
    'mean_absolute_error',
    'root_mean_squared_error',
    'mean_prediction',
    'mean_label',
}


def test_regression_run_evaluates_errors_per_slice_in_label_units(regression_csv_run):
    from blindspot.error_analysis.beam.tfma_metrics import sliced_metrics

    runs = regression_csv_run['runs']
    evaluation = metadata.output_artifact(runs, 'Evaluator', 'evaluation')
    rows = {r['slice']: r['metrics'] for r in sliced_metrics(evaluation.uri)}
    # Overall and each column with few values; the excluded columns too (slices, not inputs).
    assert {name.split(' = ')[0] for name in rows} == {'Overall', 'colour', 'size', 'shop'}
    for name, metrics in rows.items():
        assert REGRESSION_METRICS <= set(metrics), name
        assert metrics['root_mean_squared_error'] >= metrics['mean_absolute_error'] > 0
    overall = rows['Overall']
    scan = preflight.scan_csv(str(regression_csv_run['data']), 'price')
    # Predictions are in the label's units: on average where the labels are.
    assert abs(overall['mean_prediction'] - overall['mean_label']) < 0.5 * scan.label_stats.std

    # The planted region, hidden from the model, is under-predicted: the values of its
    # columns have the highest errors, and labels above the predictions.
    def under(metrics):
        return metrics['mean_label'] - metrics['mean_prediction']

    for column, value in PLANTED_REGION.items():
        planted = rows[f'{column} = {value}']
        others = [m for n, m in rows.items() if n.startswith(f'{column} = ') and m is not planted]
        assert all(planted['mean_absolute_error'] > m['mean_absolute_error'] for m in others)
        assert all(under(planted) > under(m) for m in others)
        assert under(planted) > 0.25 * scan.label_stats.std


def test_regression_run_blessing_follows_the_rmse_bound(regression_csv_run):
    from blindspot.error_analysis.beam.tfma_metrics import sliced_metrics

    runs = regression_csv_run['runs']
    assert regression_csv_run['status'] == 0
    assert {r.state for name, r in runs.items() if 'resolver' not in name} == {'COMPLETE'}
    evaluation = metadata.output_artifact(runs, 'Evaluator', 'evaluation')
    overall = next(r['metrics'] for r in sliced_metrics(evaluation.uri) if not r['features'])
    std = preflight.scan_csv(str(regression_csv_run['data']), 'price').label_stats.std
    blessed = metadata.custom_value(
        metadata.output_artifact(runs, 'Evaluator', 'blessing'), 'blessed'
    )
    assert blessed == int(overall['root_mean_squared_error'] <= std)
    assert blessed == 1  # the model beats predicting the mean
    assert metadata.output_artifact(runs, 'Pusher', 'pushed_model') is not None


def test_served_regressor_reads_examples_without_the_label_and_predicts_in_its_units(
    regression_csv_run,
):
    import csv
    import os

    import numpy as np
    import tensorflow as tf

    model = metadata.output_artifact(regression_csv_run['runs'], 'Trainer', 'model')
    serve = tf.saved_model.load(os.path.join(model.uri, 'Format-Serving')).signatures[
        'serving_default'
    ]
    with open(regression_csv_run['data'], newline='') as f:
        rows = list(csv.DictReader(f))[:300]

    def example(row):
        floats = {k: [float(row[k])] for k in ('x1', 'x2')}
        feature = {
            k: tf.train.Feature(float_list=tf.train.FloatList(value=v)) for k, v in floats.items()
        }
        feature['shop'] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row['shop'])]))
        for k in ('colour', 'size'):
            feature[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row[k].encode()]))
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    (predicted,) = serve(examples=tf.constant([example(r) for r in rows])).values()
    assert predicted.shape == (len(rows), 1)
    outside = [
        abs(float(p) - float(r['price']))
        for p, r in zip(predicted.numpy()[:, 0], rows)
        if any(r[c] != v for c, v in PLANTED_REGION.items())
    ]
    std = preflight.scan_csv(str(regression_csv_run['data']), 'price').label_stats.std
    assert np.median(outside) < 0.5 * std


def test_a_tag_reference_on_a_regression_is_refused(tmp_path, capsys):
    """Tags of a regression are ranked against the rest's MAE: an accuracy to reach means
    nothing there, said before TFX runs."""
    data = _csv(tmp_path, [f'{i / 3:.3f}' for i in range(40)])
    rule = ['--tag-rule', 'low a: a < 3', '--tag-reference', 'low a=0.9']
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y', *rule)
    assert 'tag references are accuracies, for a classifier' in err and '(low a)' in err
