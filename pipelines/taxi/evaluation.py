"""TFMA configuration for the taxi model: metrics, slices and blessing thresholds."""
import tensorflow_model_analysis as tfma

from pipelines.taxi import features as F


def eval_config(min_accuracy: float) -> tfma.EvalConfig:
    """Overall and sliced binary metrics; blessed when accuracy >= min_accuracy and not worse
    than the latest blessed model."""
    slicing = [tfma.SlicingSpec()]
    slicing += [tfma.SlicingSpec(feature_keys=[key]) for key in F.SLICE_FEATURES]
    slicing.append(tfma.SlicingSpec(feature_keys=list(F.CROSS_SLICE)))
    # Blessing looks at the overall slice only: per-slice accuracy is for review, and a
    # threshold on every slice would fail on any tiny slice.
    accuracy = tfma.MetricConfig(
        class_name='BinaryAccuracy',
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={'value': min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={'value': -1e-10})))])
    metrics = [tfma.MetricConfig(class_name=name) for name in (
        'ExampleCount', 'AUC', 'Precision', 'Recall', 'CalibrationPlot', 'ConfusionMatrixPlot')]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name='serving_default', label_key=F.LABEL_KEY,
                                    preprocessing_function_names=['transform_features'])],
        slicing_specs=slicing,
        metrics_specs=[tfma.MetricsSpec(metrics=[accuracy] + metrics)])
