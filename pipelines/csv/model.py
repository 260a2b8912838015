"""A Keras (tf-keras) classifier for any CSV and the TFX Trainer entry point `run_fn`.

Its inputs are whatever the Transform made (pipelines/csv/preprocessing.py): floats go in as
they are, integer ids one-hot; one softmax output per class, binary problems included.
custom_config: label_column (the raw label column, kept out of the serving signature)."""

from typing import Dict, List, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from blindspot.pipelines import serving
from blindspot.pipelines.csv import features as F
from blindspot.pipelines.training import train

BATCH_SIZE = 64


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


def build_keras_model(
    sizes: Dict[str, int],
    num_classes: int,
    hidden_units: Sequence[int] = (64, 32),
    learning_rate: float = 1e-3,
) -> keras.Model:
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
    output = keras.layers.Dense(num_classes, activation='softmax')(x)
    model = keras.Model(inputs, output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss='sparse_categorical_crossentropy',
        metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
    )
    return model


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
    write_class_names(fn_args.serving_model_dir, names)
    # The report names the label as the user did, not as the transformed feature.
    _write_lines(fn_args.serving_model_dir, F.LABEL_NAME_FILE, [config['label_column']])
