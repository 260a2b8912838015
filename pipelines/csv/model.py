"""A Keras (tf-keras) classifier or regressor for any CSV and the TFX Trainer entry point
`run_fn`.

Its inputs are whatever the Transform made (pipelines/csv/preprocessing.py): floats go in as
they are, integer ids one-hot. A classifier has one softmax output per class, binary problems
included; a regressor one output, the prediction in the label's units.
custom_config: label_column (the raw label column, kept out of the serving signature), task
('classification' or 'regression'), loss (regression: 'mse' or 'huber')."""

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from blindspot.pipelines import serving
from blindspot.pipelines.csv import features as F
from blindspot.pipelines.training import input_fn, train

BATCH_SIZE = 64
LABEL_SAMPLE_BATCHES = 100  # training batches that give a regressor its label scale


def input_sizes(tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Transformed feature -> 0 for a float, or the number of ids of an integer feature."""
    sizes = {}
    for name, spec in sorted(tf_transform_output.transformed_feature_spec().items()):
        if name == F.LABEL_KEY:
            continue
        sizes[name] = (
            0
            if spec.dtype.is_floating
            else tf_transform_output.num_buckets_for_transformed_feature(name)
        )
    return sizes


def _hidden_layers(
    sizes: Dict[str, int], hidden_units: Sequence[int]
) -> Tuple[Dict[str, keras.Input], tf.Tensor]:
    """The model's inputs (see input_sizes) and its last hidden layer."""
    inputs, parts = {}, []
    for name, size in sorted(sizes.items()):
        if size:
            inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.int64)
            parts.append(
                keras.layers.CategoryEncoding(num_tokens=size, output_mode='one_hot')(inputs[name])
            )
        else:
            inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.float32)
            parts.append(inputs[name])
    x = keras.layers.concatenate(parts) if len(parts) > 1 else parts[0]
    for units in hidden_units:
        x = keras.layers.Dense(units, activation='relu')(x)
    return inputs, x


def build_keras_model(
    sizes: Dict[str, int],
    num_classes: int,
    hidden_units: Sequence[int] = (64, 32),
    learning_rate: float = 1e-3,
) -> keras.Model:
    inputs, x = _hidden_layers(sizes, hidden_units)
    output = keras.layers.Dense(num_classes, activation='softmax')(x)
    model = keras.Model(inputs, output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss='sparse_categorical_crossentropy',
        metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
    )
    return model


def build_keras_regressor(
    sizes: Dict[str, int],
    label_mean: float,
    label_std: float,
    loss: str = 'mse',
    hidden_units: Sequence[int] = (64, 32),
    learning_rate: float = 1e-3,
) -> keras.Model:
    """One linear output in the label's units: the network predicts a z-score, rescaled by
    the label's mean and standard deviation in the graph (so training starts at the right
    scale and the served value needs no conversion). Loss: 'mse', or 'huber' (quadratic
    within one standard deviation of the label, linear beyond: outliers weigh less)."""
    inputs, x = _hidden_layers(sizes, hidden_units)
    z = keras.layers.Dense(1)(x)
    output = keras.layers.Rescaling(scale=label_std, offset=label_mean, name='label_units')(z)
    model = keras.Model(inputs, output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.Huber(delta=label_std) if loss == 'huber' else 'mse',
        metrics=[
            keras.metrics.MeanAbsoluteError(name='mae'),
            keras.metrics.RootMeanSquaredError(name='rmse'),
        ],
    )
    return model


def label_moments(batches: tf.data.Dataset) -> Tuple[float, float]:
    """Mean and standard deviation (1 when it is 0) of the labels of (features, label) batches."""
    labels = np.concatenate([np.ravel(label) for _, label in batches.as_numpy_iterator()])
    return float(labels.mean()), float(labels.std()) or 1.0


def class_names(tf_transform_output: tft.TFTransformOutput) -> List[str]:
    """The label vocabulary: class names in class-id order."""
    return [
        v.decode('utf-8', 'replace') if isinstance(v, bytes) else str(v)
        for v in tf_transform_output.vocabulary_by_name(F.LABEL_VOCAB)
    ]


def write_class_names(serving_model_dir: str, names: Sequence[str]) -> str:
    return _write_lines(serving_model_dir, F.CLASS_NAMES_FILE, names)


def _write_lines(serving_model_dir: str, name: str, lines: Sequence[str]) -> str:
    """A text file beside the model (assets.extra), one line each, read by ErrorAnalysis."""
    path = f'{serving_model_dir.rstrip("/")}/{name}'
    tf.io.gfile.makedirs(path.rsplit('/', 1)[0])
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(''.join(f'{line}\n' for line in lines))
    return path


def run_fn(fn_args: FnArgs) -> None:
    config = fn_args.custom_config or {}
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    regression = config.get('task') == 'regression'
    if regression:
        sample = input_fn(
            fn_args.train_files, fn_args.data_accessor, tf_transform_output, F.LABEL_KEY, BATCH_SIZE
        ).take(LABEL_SAMPLE_BATCHES)
        mean, std = label_moments(sample)
        logging.info('Label scale from the training data: mean %g, std %g', mean, std)
        model = build_keras_regressor(
            input_sizes(tf_transform_output), mean, std, config.get('loss', 'mse')
        )
    else:
        names = class_names(tf_transform_output)
        model = build_keras_model(input_sizes(tf_transform_output), len(names))
    model.summary(print_fn=logging.info)
    train(model, fn_args, tf_transform_output, F.LABEL_KEY, BATCH_SIZE)
    serving.save_model(
        model,
        tf_transform_output,
        fn_args.serving_model_dir,
        label_columns=[config['label_column']],
    )
    if not regression:
        write_class_names(fn_args.serving_model_dir, names)
    # The report names the label as the user did, not as the transformed feature.
    _write_lines(fn_args.serving_model_dir, F.LABEL_NAME_FILE, [config['label_column']])
