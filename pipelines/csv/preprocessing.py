"""tf.Transform for any CSV: numbers z-scored with a missing indicator, text and small integer
categories to ids, the label to class ids (regression: to a float, as it is).

custom_config (from the preflight scan, see pipelines/datasets.py):
  task           'classification' (default) or 'regression'
  label          the label column
  label_classes  every class name the scan saw, so a class that falls only in the eval split
                 still gets an id
  categorical    integer columns with few distinct values, treated as categories
  vocabularies   column -> every value the scan saw, when at most VOCAB_TOP_K: mapped to ids
                 in the graph, with no analyzer pass over the data (a vocabulary pass per
                 column was most of the Transform's time on wide files); other text columns
                 get a vocabulary of their VOCAB_TOP_K most frequent training values
  ignore         columns empty in every row (the scan notes that they are left out) and
                 columns the model must not read (--exclude-feature)
Columns and their types come from `inputs`: whatever the schema (inferred or curated) holds.
"""

from typing import Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from blindspot.pipelines.csv import features as F


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


def _static_ids(text: tf.Tensor, values: Sequence[str]) -> tf.Tensor:
    """Ids of rank-1 strings in `values` + [F.MISSING], in that order; anything else gets the
    next id (the out-of-vocabulary one, as with a vocabulary of NUM_OOV=1)."""
    vocabulary = list(dict.fromkeys([*values, F.MISSING]))
    match = tf.equal(tf.expand_dims(text, 1), tf.constant(vocabulary, tf.string)[tf.newaxis, :])
    oov = tf.constant(len(vocabulary), tf.int64)
    ids = tf.where(tf.reduce_any(match, 1), tf.argmax(tf.cast(match, tf.int32), 1), oov)
    # The id range is the transformed feature's schema, as tft.apply_vocabulary records it.
    tft.schema_inference.set_tensor_schema_override(
        ids, tf.constant(0, tf.int64), oov + F.NUM_OOV - 1
    )
    return ids


def _z_scores(inputs: Dict[str, tf.Tensor], names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """Z-score per column over the values that are there (NaN and inf count as missing);
    missing -> 0, plus a 0/1 missing indicator. The columns are stacked so one mean and one
    variance analyzer serve them all (a pair per column made a Beam graph of some 2,600 steps
    on a 27-column file, most of the Transform's time)."""
    values = tf.stack([tf.cast(_first(inputs[n], 0), tf.float32) for n in names], axis=1)
    present = tf.stack([_present(inputs[n]) for n in names], axis=1) & tf.math.is_finite(values)
    known = tf.where(present, values, float('nan'))  # TFT's mean and var skip NaN
    mean = tft.mean(known, reduce_instance_dims=False)
    std = tf.sqrt(tft.var(known, reduce_instance_dims=False))
    mean = tf.where(tf.math.is_finite(mean), mean, 0.0)  # a column with no values in training
    std = tf.where(tf.math.is_finite(std) & (std > 0), std, 1.0)
    z = tf.where(present, (values - mean) / std, 0.0)
    missing = tf.cast(tf.logical_not(present), tf.float32)
    outputs = {}
    for i, name in enumerate(names):
        outputs[F.transformed_name(name)] = z[:, i]
        outputs[F.missing_name(name)] = missing[:, i]
    return outputs


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict) -> Dict[str, tf.Tensor]:
    label = custom_config['label']
    categorical = set(custom_config.get('categorical', ()))
    vocabularies = custom_config.get('vocabularies', {})
    ignore = set(custom_config.get('ignore', ()))
    outputs, numbers = {}, []
    for name in sorted(inputs):
        if name == label or name in ignore:
            continue
        x = inputs[name]
        if x.dtype == tf.string or (x.dtype.is_integer and name in categorical):
            text = _as_text(x)
            if name in vocabularies:
                values = vocabularies[name]
                if x.dtype.is_integer:  # as _as_text spells them: '7', not '07'
                    values = [str(int(v)) for v in values]
                ids = _static_ids(text, values)
            else:
                ids = tft.compute_and_apply_vocabulary(
                    text,
                    top_k=F.VOCAB_TOP_K,
                    num_oov_buckets=F.NUM_OOV,
                    vocab_filename=F.vocab_name(name),
                )
            outputs[F.transformed_name(name)] = ids
        else:
            numbers.append(name)
    if numbers:
        outputs.update(_z_scores(inputs, numbers))
    if label in inputs and custom_config.get('task') == 'regression':
        # In the label's units: the model predicts them, so errors are in them too.
        outputs[F.LABEL_KEY] = tf.cast(_first(inputs[label], 0), tf.float32)
    elif label in inputs:
        text = _label_text(inputs[label])
        # Every class the preflight scan saw joins the vocabulary (once per batch, so the
        # order stays by frequency): the eval split cannot hold a class without an id.
        known = tf.constant([str(c) for c in custom_config.get('label_classes', ())], tf.string)
        vocabulary = tft.vocabulary(tf.concat([text, known], 0), vocab_filename=F.LABEL_VOCAB)
        outputs[F.LABEL_KEY] = tft.apply_vocabulary(text, vocabulary, default_value=-1)
    return outputs
