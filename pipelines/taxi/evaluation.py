"""TFMA configuration for the taxi model: metrics, slices and blessing thresholds."""

import tensorflow_model_analysis as tfma

from pipelines.taxi import features as F
from pipelines.training import Blessing, blessing_accuracy


def eval_config(blessing: Blessing) -> tfma.EvalConfig:
    """Overall and sliced binary metrics; blessed as `blessing` says."""
    slicing = [tfma.SlicingSpec()]
    slicing += [tfma.SlicingSpec(feature_keys=[key]) for key in F.SLICE_FEATURES]
    slicing.append(tfma.SlicingSpec(feature_keys=list(F.CROSS_SLICE)))
    accuracy = blessing_accuracy('BinaryAccuracy', blessing)
    metrics = [
        tfma.MetricConfig(class_name=name)
        for name in (
            'ExampleCount',
            'AUC',
            'Precision',
            'Recall',
            'CalibrationPlot',
            'ConfusionMatrixPlot',
        )
    ]
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name='serving_default',
                label_key=F.LABEL_KEY,
                preprocessing_function_names=['transform_features'],
            )
        ],
        slicing_specs=slicing,
        metrics_specs=[tfma.MetricsSpec(metrics=[accuracy] + metrics)],
    )
