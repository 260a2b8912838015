"""Serving signatures shared by every dataset's Trainer.

`serving_default` takes serialized raw tf.Examples (no label needed) and applies the Transform
graph, as a deployed model would. `transform_features` returns the transformed features, label
included, for the Evaluator and ErrorAnalysis.
"""

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras


def save_model(
    model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    serving_model_dir: str,
    label_columns: Sequence[str],
) -> None:
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k not in set(label_columns)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve_tf_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {'outputs': model(transformed)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    model.save(
        serving_model_dir,
        save_format='tf',
        signatures={
            'serving_default': serve_tf_examples,
            'transform_features': transform_features,
        },
    )
