"""TFMA configuration for the csv pipeline's classifier."""
from typing import Sequence

import tensorflow_model_analysis as tfma

from pipelines.csv import features as F
from pipelines.training import blessing_accuracy


def eval_config(min_accuracy: float, num_classes: int, slice_columns: Sequence[str]
                ) -> tfma.EvalConfig:
    """Accuracy (blessing on the overall slice only), example count, the confusion matrix and
    per-class precision and recall; sliced by every low-cardinality column and overall."""
    slicing = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in slice_columns]
    accuracy = blessing_accuracy('SparseCategoricalAccuracy', min_accuracy)
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
