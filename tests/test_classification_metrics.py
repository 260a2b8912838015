"""The one-pass multiclass metrics against TFMA's own classes, both run by TFMA on the same
examples (predictions stored in the examples, so no model is needed)."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from blindspot.pipelines.classification_metrics import ACCURACY

NUM_CLASSES = 3
MODULE = 'blindspot.pipelines.classification_metrics'


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
    """600 rows: a label, 3 class probabilities (right about 60% of the time), a group."""
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.integers(0, NUM_CLASSES, n)
    probs = rng.dirichlet(np.ones(NUM_CLASSES), n)
    hit = rng.random(n) < 0.5
    probs[hit, labels[hit]] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    groups = np.where(rng.random(n) < 0.3, b'a', b'b')
    path = str(tmp_path_factory.mktemp('examples') / 'data.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
        for label, p, group in zip(labels, probs, groups):
            feature = {
                'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                'probs': tf.train.Feature(float_list=tf.train.FloatList(value=p)),
                'group': tf.train.Feature(bytes_list=tf.train.BytesList(value=[group])),
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    return path, labels, probs, groups


def _evaluate(path, out, metrics):
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key='label', prediction_key='probs')],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=['group'])],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
    tfma.run_model_analysis(eval_config=config, data_location=path, output_path=str(out))
    metrics_by_slice, plots_by_slice = {}, {}
    for proto in tfma.load_metrics(str(out)):
        metrics_by_slice[proto.slice_key.SerializeToString()] = {
            (k.key.name, k.key.sub_key.class_id.value if k.key.HasField('sub_key') else None): (
                k.value.double_value.value
            )
            for k in proto.metric_keys_and_values
        }
    for proto in tfma.load_plots(str(out)):
        for k in proto.plot_keys_and_values:
            plots_by_slice[(proto.slice_key.SerializeToString(), k.key.name)] = k.value
    return metrics_by_slice, plots_by_slice, tfma.load_validation_result(str(out))


@pytest.fixture(scope='module')
def both(examples, tmp_path_factory):
    path = examples[0]
    ours = _evaluate(
        path,
        tmp_path_factory.mktemp('ours'),
        [
            tfma.MetricConfig(
                class_name='ArgmaxAccuracy',
                module=MODULE,
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={'value': 0.9})
                ),
            ),
            tfma.MetricConfig(
                class_name='ClassificationSummary',
                module=MODULE,
                config=json.dumps({'num_classes': NUM_CLASSES}),
            ),
        ],
    )
    tfmas = _evaluate(
        path,
        tmp_path_factory.mktemp('tfma'),
        [
            tfma.MetricConfig(class_name='SparseCategoricalAccuracy'),
            tfma.MetricConfig(class_name='ExampleCount'),
            tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
        ],
    )
    return ours, tfmas


def test_accuracy_count_and_confusion_plot_equal_tfmas_own_on_every_slice(both):
    (ours, our_plots, _), (theirs, their_plots, _) = both
    assert set(ours) == set(theirs) and len(ours) == 3  # overall, group a, group b
    for slice_key in ours:
        assert ours[slice_key][(ACCURACY, None)] == pytest.approx(
            theirs[slice_key][(ACCURACY, None)], abs=1e-6
        )
        assert (
            ours[slice_key][('example_count', None)] == theirs[slice_key][('example_count', None)]
        )
    assert set(our_plots) == set(their_plots) and len(our_plots) == 3
    for key, plot in our_plots.items():
        assert plot == their_plots[key]


def test_per_class_precision_and_recall_are_at_the_predicted_class(examples, both):
    _, labels, probs, groups = examples
    (ours, _, _), _ = both
    predicted = probs.argmax(axis=1)
    overall = next(m for m in ours.values() if m[('example_count', None)] == len(labels))
    for k in range(NUM_CLASSES):
        assert overall[('precision', k)] == pytest.approx(np.mean(labels[predicted == k] == k))
        assert overall[('recall', k)] == pytest.approx(np.mean(predicted[labels == k] == k))
    group_a = next(m for m in ours.values() if m[('example_count', None)] == np.sum(groups == b'a'))
    in_a = groups == b'a'
    assert group_a[('recall', 0)] == pytest.approx(np.mean(predicted[in_a & (labels == 0)] == 0))


def test_blessing_threshold_applies_to_the_one_pass_accuracy(both):
    (ours, _, validation), _ = both
    accuracy = next(iter(ours.values()))[(ACCURACY, None)]
    assert accuracy < 0.9  # the fixture's threshold
    assert not validation.validation_ok
    failed = {
        failure.metric_key.name
        for per_slice in validation.metric_validations_per_slice
        for failure in per_slice.failures
    }
    assert failed == {ACCURACY}


def test_tfma_rows_show_per_class_metrics_as_macro_averages_only():
    """A multi-class Precision is one value per class: the row shows their mean as
    macro_precision, never one class's value as the slice's precision."""
    from blindspot.error_analysis.beam.tfma_metrics import _flatten

    nan = float('nan')
    metrics = _flatten(
        {
            '': {
                '': {'sparse_categorical_accuracy': 0.9, 'example_count': 30.0},
                'classId:0': {'precision': 1.0, 'recall': 0.5},
                'classId:1': {'precision': 0.5, 'recall': nan},
                'classId:2': {'precision': 0.9474, 'recall': 0.9618},
            }
        }
    )
    assert 'precision' not in metrics and 'recall' not in metrics
    assert metrics['macro_precision'] == pytest.approx((1.0 + 0.5 + 0.9474) / 3)
    assert metrics['macro_recall'] == pytest.approx((0.5 + 0.9618) / 2)  # NaN: no examples
    assert metrics['sparse_categorical_accuracy'] == 0.9
