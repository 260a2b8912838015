"""tf.Transform preprocessing for the taxi data."""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from blindspot.pipelines.taxi import features as F


def _dense(x: tf.Tensor, default) -> tf.Tensor:
    """A rank-1 dense tensor from an optional (sparse) feature, `default` where missing."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return tf.reshape(x, [-1])
    return tf.squeeze(
        tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default),
        axis=1,
    )


def _present(x: tf.Tensor) -> tf.Tensor:
    """True where an optional feature has a value."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return tf.ones_like(tf.reshape(x, [-1]), dtype=tf.bool)
    counts = tf.math.bincount(
        tf.cast(x.indices[:, 0], tf.int32), minlength=tf.cast(x.dense_shape[0], tf.int32)
    )
    return counts > 0


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Scales numbers, buckets coordinates, maps categories to ids and derives the label."""
    outputs = {}
    # Columns are stacked so that one analyzer serves each group (mean and variance for the
    # numbers, quantiles for the coordinates): every analyzer adds its own Beam sub-pipeline,
    # a fixed cost that dominated the Transform on small data.
    numbers = tf.stack(
        [tf.cast(_dense(inputs[key], 0), tf.float32) for key in F.DENSE_FLOAT_FEATURES], axis=1
    )
    z_scores = tft.scale_to_z_score(numbers, elementwise=True)
    for i, key in enumerate(F.DENSE_FLOAT_FEATURES):
        outputs[F.transformed_name(key)] = z_scores[:, i]

    present = tf.stack([_present(inputs[key]) for key in F.BUCKET_FEATURES], axis=1)
    coordinates = tf.stack(
        [tf.cast(_dense(inputs[key], 0.0), tf.float32) for key in F.BUCKET_FEATURES], axis=1
    )
    # Quantile boundaries per column from the values that are there (NaN is skipped);
    # missing gets bucket NUM_BUCKETS.
    boundaries = tft.quantiles(
        tf.where(present, coordinates, float('nan')),
        F.NUM_BUCKETS,
        epsilon=0.01,
        reduce_instance_dims=False,
    )
    for i, key in enumerate(F.BUCKET_FEATURES):
        buckets = tft.apply_buckets(coordinates[:, i], boundaries[i : i + 1])
        outputs[F.transformed_name(key)] = tf.where(
            present[:, i], buckets, tf.constant(F.NUM_BUCKETS, tf.int64)
        )

    for key, size in F.CATEGORICAL_INT_FEATURES.items():
        ids = tf.cast(_dense(inputs[key], 0), tf.int64)
        outputs[F.transformed_name(key)] = tf.clip_by_value(ids, 0, size - 1)

    for key in F.VOCAB_FEATURES:
        value = _dense(inputs[key], '' if inputs[key].dtype == tf.string else 0)
        if value.dtype != tf.string:
            value = tf.strings.as_string(value)
        outputs[F.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            value, top_k=F.VOCAB_SIZE, num_oov_buckets=F.OOV_SIZE, vocab_filename=key
        )

    fare = tf.cast(_dense(inputs[F.FARE], 0.0), tf.float32)
    tips = tf.cast(_dense(inputs[F.TIPS], 0.0), tf.float32)
    outputs[F.LABEL_KEY] = tf.cast(tips > fare * F.TIP_FRACTION_THRESHOLD, tf.int64)
    return outputs
