"""tf.Transform for any CSV: numbers z-scored with a missing indicator, text and small integer
categories through vocabularies, the label to class ids.

custom_config (from the preflight scan, see pipelines/datasets.py):
  label          the label column
  label_classes  every class name the scan saw, so a class that falls only in the eval split
                 still gets an id
  categorical    integer columns with few distinct values, treated as categories
  ignore         columns empty in every row (the scan notes that they are left out)
Columns and their types come from `inputs`: whatever the schema (inferred or curated) holds.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from pipelines.csv import features as F


def _first(x: tf.Tensor, default) -> tf.Tensor:
    """The value per row as a rank-1 dense tensor, `default` where missing (a CSV cell holds
    at most one value; a dense feature of several values gives its first)."""
    if isinstance(x, tf.sparse.SparseTensor):
        single = tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1])
        return tf.sparse.to_dense(single, default)[:, 0]
    if x.shape.rank == 1:
        return x
    return tf.reshape(x, [tf.shape(x)[0], -1])[:, 0]


def _present(x: tf.Tensor) -> tf.Tensor:
    """True where a row has a value."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return tf.ones([tf.shape(x)[0]], tf.bool)
    counts = tf.math.bincount(
        tf.cast(x.indices[:, 0], tf.int32), minlength=tf.cast(x.dense_shape[0], tf.int32)
    )
    return counts > 0


def _as_text(x: tf.Tensor) -> tf.Tensor:
    """Rank-1 strings; missing -> F.MISSING (TFT's vocabulary would drop empty strings)."""
    value = _first(x, '' if x.dtype == tf.string else 0)
    if value.dtype != tf.string:
        value = tf.strings.as_string(value)
    return tf.where(_present(x) & tf.not_equal(value, ''), value, F.MISSING)


def _label_text(x: tf.Tensor) -> tf.Tensor:
    """The class name: text as is, numbers as integers ('1', not '1.000000')."""
    value = _first(x, '' if x.dtype == tf.string else 0)
    if value.dtype.is_floating:
        value = tf.cast(tf.round(value), tf.int64)
    return value if value.dtype == tf.string else tf.strings.as_string(value)


def _z_score(x: tf.Tensor, name: str) -> Dict[str, tf.Tensor]:
    """Z-score over the values that are there (NaN and inf count as missing); missing -> 0,
    plus a 0/1 missing indicator."""
    value = tf.cast(_first(x, 0), tf.float32)
    present = _present(x) & tf.math.is_finite(value)
    value = tf.where(present, value, 0.0)
    known = tf.boolean_mask(value, present)
    mean = tft.mean(known)
    std = tf.sqrt(tft.var(known))
    mean = tf.where(tf.math.is_finite(mean), mean, 0.0)
    std = tf.where(tf.math.is_finite(std) & (std > 0), std, 1.0)
    return {
        F.transformed_name(name): tf.where(present, (value - mean) / std, 0.0),
        F.missing_name(name): tf.cast(tf.logical_not(present), tf.float32),
    }


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict) -> Dict[str, tf.Tensor]:
    label = custom_config['label']
    categorical = set(custom_config.get('categorical', ()))
    ignore = set(custom_config.get('ignore', ()))
    outputs = {}
    for name in sorted(inputs):
        if name == label or name in ignore:
            continue
        x = inputs[name]
        if x.dtype == tf.string or (x.dtype.is_integer and name in categorical):
            outputs[F.transformed_name(name)] = tft.compute_and_apply_vocabulary(
                _as_text(x),
                top_k=F.VOCAB_TOP_K,
                num_oov_buckets=F.NUM_OOV,
                vocab_filename=F.vocab_name(name),
            )
        else:
            outputs.update(_z_score(x, name))
    if label in inputs:
        text = _label_text(inputs[label])
        # Every class the preflight scan saw joins the vocabulary (once per batch, so the
        # order stays by frequency): the eval split cannot hold a class without an id.
        known = tf.constant([str(c) for c in custom_config.get('label_classes', ())], tf.string)
        vocabulary = tft.vocabulary(tf.concat([text, known], 0), vocab_filename=F.LABEL_VOCAB)
        outputs[F.LABEL_KEY] = tft.apply_vocabulary(text, vocabulary, default_value=-1)
    return outputs
