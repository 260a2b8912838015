"""TFMA configuration for the digit classifier."""
import tensorflow_model_analysis as tfma

from pipelines.training import blessing_accuracy
from pipelines.mnist import features as F


def eval_config(min_accuracy: float, num_classes: int) -> tfma.EvalConfig:
    """Accuracy, per-class precision/recall, the multiclass confusion matrix; slices by label
    and by each shape feature's bucket."""
    slicing = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.LABEL_KEY])]
    slicing += [tfma.SlicingSpec(feature_keys=[F.bucket_name(k)]) for k in F.SHAPE_FEATURES]
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
