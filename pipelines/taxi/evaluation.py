"""TFMA configuration for the taxi model: metrics, slices and blessing thresholds."""

import tensorflow_model_analysis as tfma

from blindspot.pipelines.config import TrainingSettings
from blindspot.pipelines.taxi import features as F
from blindspot.pipelines.training import blessing_accuracy, eval_options, serving_model_spec


def eval_config(blessing: TrainingSettings) -> tfma.EvalConfig:
    """Overall and sliced binary metrics; blessed as `blessing` says."""
    slicing = [tfma.SlicingSpec()]
    slicing += [tfma.SlicingSpec(feature_keys=[key]) for key in F.SLICE_FEATURES]
    accuracy = blessing_accuracy('BinaryAccuracy', blessing)
    metrics = [
        tfma.MetricConfig(class_name=name)
        for name in ('ExampleCount', 'AUC', 'Precision', 'Recall')
    ]
    # Plots at the resolution a chart shows, not TFMA's defaults (10,000 calibration buckets
    # and 1,000 thresholds, computed and written for every slice).
    metrics += [
        tfma.MetricConfig(class_name='CalibrationPlot', config='"num_buckets": 100'),
        tfma.MetricConfig(class_name='ConfusionMatrixPlot', config='"num_thresholds": 100'),
    ]
    return tfma.EvalConfig(
        model_specs=[serving_model_spec(F.LABEL_KEY)],
        slicing_specs=slicing,
        options=eval_options(),
        metrics_specs=[tfma.MetricsSpec(metrics=[accuracy] + metrics)],
    )
