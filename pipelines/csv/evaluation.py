"""TFMA configuration for the csv pipeline's classifier."""
from typing import Sequence

import tensorflow_model_analysis as tfma

from pipelines.csv import features as F


def eval_config(min_accuracy: float, num_classes: int, slice_columns: Sequence[str]
                ) -> tfma.EvalConfig:
    """Accuracy (blessing on the overall slice only), example count, the confusion matrix and
    per-class precision and recall; sliced by every low-cardinality column and overall."""
    slicing = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in slice_columns]
    accuracy = tfma.MetricConfig(
        class_name='SparseCategoricalAccuracy',
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={'value': min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={'value': -1e-10})))])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name='serving_default', label_key=F.LABEL_KEY,
                                    preprocessing_function_names=['transform_features'])],
        slicing_specs=slicing,
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                accuracy, tfma.MetricConfig(class_name='ExampleCount'),
                tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot')]),
            tfma.MetricsSpec(
                binarize=tfma.BinarizationOptions(class_ids={'values': list(range(num_classes))}),
                metrics=[tfma.MetricConfig(class_name='Precision'),
                         tfma.MetricConfig(class_name='Recall')]),
        ])
