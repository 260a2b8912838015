"""Pieces every dataset's Trainer and Evaluator config share."""

import json
from typing import List, Sequence

import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from blindspot.pipelines.config import TrainingSettings


def skip_autograph_for_tf_keras() -> None:
    """Leaves tf_keras's own code unconverted by autograph, as TensorFlow does for `keras`.

    TF 2.16's autograph skips the `keras` package but not `tf_keras`, the Keras 2 that TFX
    runs (TF_USE_LEGACY_KERAS=1), so every tf.function over a Keras model first rewrote Keras'
    training and layer code from Python source: 30 of the 40 s of a 60-step taxi Trainer here,
    and part of the Evaluator's model loading. tf_keras is Keras 2.15 renamed, written to run
    unconverted. Idempotent; affects this process only."""
    from tensorflow.python.autograph.core import config

    if not any(rule.matches('tf_keras') for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = config.CONVERSION_RULES + (config.DoNotConvert('tf_keras'),)


def input_fn(
    file_pattern: List[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    label_key: str,
    batch_size: int = 64,
) -> tf.data.Dataset:
    """Transformed examples as (features, label) batches, repeated."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def blessing_accuracy(
    class_name: str, blessing: TrainingSettings, module: str = ''
) -> tfma.MetricConfig:
    """The accuracy metric that decides the blessing: at least min_accuracy and at most
    max_accuracy_drop below the latest blessed model, on the overall slice only (per-slice
    accuracy is for review; a threshold on every slice would fail on any tiny slice)."""
    return tfma.MetricConfig(
        class_name=class_name,
        module=module,
        per_slice_thresholds=[
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec()],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(
                        lower_bound={'value': blessing.min_accuracy}
                    ),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                        absolute={'value': -max(blessing.max_accuracy_drop, 1e-10)},
                    ),
                ),
            )
        ],
    )


def blessing_error(blessing: TrainingSettings, default_max_rmse: float) -> tfma.MetricConfig:
    """The error metric that decides a regressor's blessing: RMSE (Keras' metric) at most
    max_rmse, or TFMA's MAE at most max_mae, and at most max_error_increase (relative) above
    the latest blessed model's, on the overall slice only (see blessing_accuracy)."""
    if blessing.max_rmse is not None and blessing.max_mae is not None:
        raise ValueError('give at most one of --max-rmse and --max-mae')
    class_name, bound = (
        ('MeanAbsoluteError', blessing.max_mae)
        if blessing.max_mae is not None
        else (
            'RootMeanSquaredError',
            default_max_rmse if blessing.max_rmse is None else blessing.max_rmse,
        )
    )
    return tfma.MetricConfig(
        class_name=class_name,
        per_slice_thresholds=[
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec()],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(upper_bound={'value': bound}),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.LOWER_IS_BETTER,
                        relative={'value': max(blessing.max_error_increase, 1e-10)},
                    ),
                ),
            )
        ],
    )


def serving_model_spec(label_key: str) -> tfma.ModelSpec:
    """The model as served (serving_default on raw examples), the label read from the
    Transform's output (transform_features)."""
    return tfma.ModelSpec(
        signature_name='serving_default',
        label_key=label_key,
        preprocessing_function_names=['transform_features'],
    )


def eval_options() -> tfma.Options:
    """TFMA options for every dataset: only the configured metrics. By default TFMA also
    computes the loss and metrics the model was compiled with, loading the Keras model again
    in each metrics combiner and running it per example (on taxi, 6 extra model loads and
    half the Evaluator's time); they repeat the configured accuracy, and ErrorAnalysis
    reports the loss per example."""
    options = tfma.Options()
    options.include_default_metrics.value = False
    return options


def epoch_table(history: dict) -> str:
    """Per-epoch loss and accuracy (regressors: MAE and RMSE) as a fixed-width table."""
    names = ('loss', 'accuracy', 'mae', 'rmse')
    keys = [k for k in names + tuple('val_' + n for n in names) if k in history]
    lines = ['epoch ' + ' '.join(f'{k:>12s}' for k in keys)]
    for epoch in range(len(history[keys[0]])):
        lines.append(f'{epoch + 1:5d} ' + ' '.join(f'{history[k][epoch]:12.4f}' for k in keys))
    return '\n'.join(lines)


def train(
    model: keras.Model,
    fn_args: FnArgs,
    tf_transform_output: tft.TFTransformOutput,
    label_key: str,
    batch_size: int = 64,
    max_epochs: int = 5,
) -> keras.callbacks.History:
    """Fits `model` for fn_args.train_steps steps (split into at most max_epochs epochs),
    logs each epoch to TensorBoard under the model run folder and prints the epoch table."""
    skip_autograph_for_tf_keras()
    train_data = input_fn(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, label_key, batch_size
    )
    eval_data = input_fn(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, label_key, batch_size
    )
    steps = max(1, int(fn_args.train_steps))
    epochs = min(max_epochs, steps)
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=max(1, steps // epochs),
        validation_data=eval_data,
        validation_steps=max(1, int(fn_args.eval_steps)),
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq='epoch')],
        verbose=0,
    )
    print(
        f'Training (TensorBoard logs in {fn_args.model_run_dir}):\n{epoch_table(history.history)}',
        flush=True,
    )
    return history


def multiclass_eval_config(
    blessing: TrainingSettings,
    num_classes: int,
    label_key: str,
    slicing: Sequence[tfma.SlicingSpec],
) -> tfma.EvalConfig:
    """Accuracy (deciding the blessing), example count, the multiclass confusion matrix and
    per-class precision/recall, on the given slices, all from one pass
    (pipelines/classification_metrics.py)."""
    module = 'blindspot.pipelines.classification_metrics'
    return tfma.EvalConfig(
        model_specs=[serving_model_spec(label_key)],
        slicing_specs=list(slicing),
        options=eval_options(),
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    blessing_accuracy('ArgmaxAccuracy', blessing, module),
                    tfma.MetricConfig(
                        class_name='ClassificationSummary',
                        module=module,
                        config=json.dumps({'num_classes': num_classes}),
                    ),
                ]
            ),
        ],
    )


def regression_eval_config(
    blessing: TrainingSettings,
    label_key: str,
    slicing: Sequence[tfma.SlicingSpec],
    default_max_rmse: float,
) -> tfma.EvalConfig:
    """Example count, MAE, RMSE, mean prediction and mean label per slice, in the label's
    units (the model predicts them), with TFMA's own metrics; RMSE or MAE decides the
    blessing (blessing_error)."""
    deciding = blessing_error(blessing, default_max_rmse)
    others = [
        tfma.MetricConfig(class_name=name)
        for name in (
            'ExampleCount',
            'MeanAbsoluteError',
            'RootMeanSquaredError',
            'MeanPrediction',
            'MeanLabel',
        )
        if name != deciding.class_name
    ]
    return tfma.EvalConfig(
        model_specs=[serving_model_spec(label_key)],
        slicing_specs=list(slicing),
        options=eval_options(),
        metrics_specs=[tfma.MetricsSpec(metrics=[deciding, *others])],
    )
