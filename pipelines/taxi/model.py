"""Keras (tf-keras) model for the taxi data and the TFX Trainer entry point `run_fn`."""

from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from blindspot.pipelines import serving
from blindspot.pipelines.taxi import features as F
from blindspot.pipelines.training import train

BATCH_SIZE = 64


def build_keras_model(
    hidden_units: List[int] = (64, 32), learning_rate: float = 1e-3
) -> keras.Model:
    """A DNN over z-scored numbers and one-hot categories, with a sigmoid output."""
    inputs: Dict[str, keras.Input] = {}
    parts = []
    for key in F.DENSE_FLOAT_FEATURES:
        name = F.transformed_name(key)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.float32)
        parts.append(inputs[name])
    for key in F.BUCKET_FEATURES + tuple(F.CATEGORICAL_INT_FEATURES) + F.VOCAB_FEATURES:
        name = F.transformed_name(key)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.int64)
        parts.append(
            keras.layers.CategoryEncoding(num_tokens=F.num_ids(key), output_mode='one_hot')(
                inputs[name]
            )
        )
    x = keras.layers.concatenate(parts)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation='relu')(x)
    output = keras.layers.Dense(1, activation='sigmoid')(x)
    model = keras.Model(inputs, output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss='binary_crossentropy',
        metrics=[keras.metrics.BinaryAccuracy(name='accuracy')],
    )
    return model


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point: trains, logs to TensorBoard, saves serving signatures."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = build_keras_model()
    model.summary(print_fn=logging.info)
    train(model, fn_args, tf_transform_output, F.LABEL_KEY, BATCH_SIZE)
    serving.save_model(
        model, tf_transform_output, fn_args.serving_model_dir, label_columns=[F.TIPS]
    )
