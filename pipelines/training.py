"""Pieces every dataset's Trainer and Evaluator config share."""
from typing import List

import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio


def input_fn(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
             tf_transform_output: tft.TFTransformOutput, label_key: str,
             batch_size: int = 64) -> tf.data.Dataset:
    """Transformed examples as (features, label) batches, repeated."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key),
        tf_transform_output.transformed_metadata.schema).repeat()


def blessing_accuracy(class_name: str, min_accuracy: float) -> tfma.MetricConfig:
    """The accuracy metric that decides the blessing: at least min_accuracy and not worse than
    the latest blessed model, on the overall slice only (per-slice accuracy is for review; a
    threshold on every slice would fail on any tiny slice)."""
    return tfma.MetricConfig(
        class_name=class_name,
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={'value': min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={'value': -1e-10})))])
