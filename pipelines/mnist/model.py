"""Keras (tf-keras) digit classifiers and the TFX Trainer entry point `run_fn`.

custom_config: num_classes, model ('dense': one hidden layer, the baseline; 'cnn': a small
convolutional network)."""

import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from pipelines import serving
from pipelines.training import input_fn
from pipelines.mnist import features as F

BATCH_SIZE = 64
MODELS = ('dense', 'cnn')


def build_keras_model(num_classes: int, kind: str = 'dense', learning_rate: float = 1e-3
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
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss='sparse_categorical_crossentropy',
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')])
    return model


def epoch_table(history: dict) -> str:
    """Per-epoch loss and accuracy as a fixed-width table."""
    keys = [k for k in ('loss', 'accuracy', 'val_loss', 'val_accuracy') if k in history]
    lines = ['epoch ' + ' '.join(f'{k:>12s}' for k in keys)]
    for epoch in range(len(history[keys[0]])):
        lines.append(f'{epoch + 1:5d} ' + ' '.join(f'{history[k][epoch]:12.4f}' for k in keys))
    return '\n'.join(lines)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = fn_args.custom_config or {}
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                     F.LABEL_KEY, BATCH_SIZE)
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                          F.LABEL_KEY, BATCH_SIZE)
    model = build_keras_model(int(config['num_classes']), config.get('model', 'dense'))
    steps = max(1, int(fn_args.train_steps))
    epochs = min(10, steps)
    history = model.fit(
        train, epochs=epochs, steps_per_epoch=max(1, steps // epochs),
        validation_data=evaluation, validation_steps=max(1, int(fn_args.eval_steps)),
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                               update_freq='epoch')],
        verbose=0)
    print(f'Training ({config.get("model", "dense")} model, TensorBoard logs in '
          f'{fn_args.model_run_dir}):\n{epoch_table(history.history)}', flush=True)
    serving.save_model(model, tf_transform_output, fn_args.serving_model_dir,
                       label_columns=[F.LABEL_KEY])
