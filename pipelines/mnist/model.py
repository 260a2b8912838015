"""Keras (tf-keras) digit classifiers and the TFX Trainer entry point `run_fn`.

custom_config: num_classes, model ('dense': one hidden layer, the baseline; 'cnn': a small
convolutional network)."""

import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from blindspot.pipelines import serving
from blindspot.pipelines.mnist import features as F
from blindspot.pipelines.training import train

BATCH_SIZE = 64
MODELS = ('dense', 'cnn')


def build_keras_model(
    num_classes: int, kind: str = 'dense', learning_rate: float = 1e-3
) -> keras.Model:
    if kind not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got '{kind}'")
    pixels = keras.Input(shape=(F.HEIGHT * F.WIDTH,), name=F.PIXELS_KEY)
    if kind == 'dense':
        x = keras.layers.Dense(128, activation='relu')(pixels)
    else:
        x = keras.layers.Reshape((F.HEIGHT, F.WIDTH, 1))(pixels)
        for filters in (16, 32):
            x = keras.layers.Conv2D(filters, 3, activation='relu', padding='same')(x)
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(64, activation='relu')(x)
    output = keras.layers.Dense(num_classes, activation='softmax')(x)
    model = keras.Model({F.PIXELS_KEY: pixels}, output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss='sparse_categorical_crossentropy',
        metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
    )
    return model


def run_fn(fn_args: FnArgs) -> None:
    config = fn_args.custom_config or {}
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = build_keras_model(int(config['num_classes']), config.get('model', 'dense'))
    train(model, fn_args, tf_transform_output, F.LABEL_KEY, BATCH_SIZE, max_epochs=10)
    serving.save_model(
        model, tf_transform_output, fn_args.serving_model_dir, label_columns=[F.LABEL_KEY]
    )
