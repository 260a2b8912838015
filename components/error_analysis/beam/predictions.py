"""Batched inference with a TFX-trained SavedModel, on raw serialized tf.Examples.

Runs the model as it is served (`serving_default` applies the Transform graph) and reads the
label through the `transform_features` signature when the label is a transformed feature, so
predictions match what the Evaluator sees.
"""

import dataclasses
import hashlib
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
from apache_beam.utils import shared
from tensorflow_metadata.proto.v0 import schema_pb2

_PROB_EPS = 1e-7


class InputError(ValueError):
    """Examples, labels or model that cannot be analysed together; the message says why."""


@dataclasses.dataclass
class PredictionBatch:
    """Per-example results for one batch; `columns` are the raw slicing features."""

    example_ids: np.ndarray  # str
    labels: np.ndarray  # int class ids
    probabilities: np.ndarray  # (n, num_classes)
    columns: Dict[str, np.ndarray]
    # Confident-learning label-issue flag per example, once the class thresholds are known.
    label_suspect: Optional[np.ndarray] = None
    # Image data only: each example's raw image bytes, so any example the report lists can
    # be shown as a picture.
    images: Optional[np.ndarray] = None

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def errors(self) -> np.ndarray:
        return (self.predicted != self.labels).astype(np.float64)

    @property
    def confidence(self) -> np.ndarray:
        """Probability the model gave its predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def loss(self) -> np.ndarray:
        """Cross-entropy of the true class."""
        true_prob = self.probabilities[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(true_prob, _PROB_EPS, 1.0))

    def __len__(self) -> int:
        return len(self.labels)


def example_ids(serialized: Sequence[bytes]) -> np.ndarray:
    """Stable ids: a hash of each example's bytes, the same in every run on the same data."""
    return np.array([hashlib.sha1(s).hexdigest()[:16] for s in serialized], dtype=object)


def slicing_feature_spec(schema: schema_pb2.Schema, features: Sequence[str]) -> Dict:
    """VarLen parse specs for the slicing features, so missing values stay visible."""
    dtypes = {schema_pb2.INT: tf.int64, schema_pb2.FLOAT: tf.float32, schema_pb2.BYTES: tf.string}
    types = {f.name: f.type for f in schema.feature}
    return {name: tf.io.VarLenFeature(dtypes[types[name]]) for name in features}


def _first_values(sparse: tf.sparse.SparseTensor, n: int) -> np.ndarray:
    """First value per row; NaN (numbers) or None (strings) where missing."""
    indices = sparse.indices.numpy()
    values = sparse.values.numpy()
    first = np.unique(indices[:, 0], return_index=True)[1] if len(indices) else np.array([], int)
    rows = indices[first, 0] if len(indices) else np.array([], int)
    if sparse.dtype == tf.string:
        out = np.full(n, None, dtype=object)
        out[rows] = [v.decode('utf-8', 'replace') for v in values[first]]
    else:
        out = np.full(n, np.nan)
        out[rows] = as_written(values[first])
    return out


def as_written(values: np.ndarray) -> np.ndarray:
    """float64 values; float32 ones as their shortest decimal (24.4, not the float32 noise
    24.399999618530273), so the report shows values as in the data."""
    values = np.asarray(values)
    if values.dtype == np.float32:
        return values.astype(str).astype(np.float64)
    return values.astype(np.float64)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """(n, num_classes) probabilities from a sigmoid (n, 1) or softmax (n, C) output; logits
    (values outside 0..1 or rows not summing to 1) are squashed first."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.shape[1] == 1:
        p = scores[:, 0]
        if p.min(initial=0.0) < 0 or p.max(initial=1.0) > 1:
            p = 1.0 / (1.0 + np.exp(-p))
        return np.column_stack([1.0 - p, p])
    if scores.min() < 0 or scores.max() > 1 or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return scores


# One loaded model per process, shared by the executor's fail-fast check and every Beam DoFn
# instance in it (loading takes seconds; the in-process DirectRunner makes several instances).
_MODELS = shared.Shared()


def load_model(model_dir: str):
    """The SavedModel at model_dir, loaded once per process while in use."""
    return _MODELS.acquire(lambda: tf.saved_model.load(model_dir), tag=model_dir)


class Predictor:
    """The serving model (see load_model); `predict` runs one batch of serialized examples."""

    def __init__(
        self,
        model_dir: str,
        label_key: str,
        feature_spec: Dict,
        transformed_features: Sequence[str] = (),
    ):
        self._model = load_model(model_dir)
        signatures = self._model.signatures
        if 'serving_default' not in signatures:
            raise InputError(
                f"model at {model_dir} has no 'serving_default' signature; "
                'save it with a signature that takes serialized tf.Examples'
            )
        self._serve = signatures['serving_default']
        self._transform = signatures.get('transform_features')
        self._label_key = label_key
        self._feature_spec = feature_spec
        self._transformed_features = list(transformed_features)
        if self._transformed_features and self._transform is None:
            raise InputError(
                f'features {", ".join(self._transformed_features)} are not in the '
                "raw examples and the model has no 'transform_features' signature"
            )

    def _labels(self, serialized: tf.Tensor) -> np.ndarray:
        label = None
        if self._transform is not None:
            label = self._transform(examples=serialized).get(self._label_key)
        if label is None:
            try:
                raw = tf.io.parse_example(
                    serialized, {self._label_key: tf.io.VarLenFeature(tf.int64)}
                )
            except tf.errors.InvalidArgumentError:
                raise InputError(
                    f"label '{self._label_key}' in the examples is not an integer "
                    'class id; map it to ids in Transform and give the '
                    'transformed label key'
                ) from None
            label = tf.sparse.to_dense(raw[self._label_key], default_value=-1)
            if label.shape[1] == 0 or label.shape[1] is None:
                raise InputError(f"label '{self._label_key}' is missing from the examples")
            label = label[:, 0]
        values = np.asarray(label.numpy()).reshape(-1)
        if values.dtype.kind not in 'iu':
            if values.dtype.kind == 'f' and np.all(values == np.round(values)):
                values = values.astype(np.int64)
            else:
                raise InputError(
                    f"label '{self._label_key}' has non-integer values (e.g. "
                    f'{values[:3].tolist()}); give class ids or a label vocabulary'
                )
        return values.astype(np.int64)

    def predict(self, serialized: Sequence[bytes]) -> PredictionBatch:
        batch = tf.constant(list(serialized))
        outputs = self._serve(examples=batch)
        probabilities = to_probabilities(next(iter(outputs.values())).numpy())
        labels = self._labels(batch)
        num_classes = probabilities.shape[1]
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            raise InputError(
                f"label '{self._label_key}' has value {int(labels[bad][0])}, which the model "
                f'never predicts: it has {num_classes} output classes (0..{num_classes - 1}). '
                'Check that the label key and the model belong together.'
            )
        return PredictionBatch(
            example_ids(serialized), labels, probabilities, self._columns(batch, len(labels))
        )

    def columns(self, serialized: Sequence[bytes]) -> Dict[str, np.ndarray]:
        """The slicing features alone, without running the model (e.g. for training rows)."""
        return self._columns(tf.constant(list(serialized)), len(serialized))

    def _columns(self, batch: tf.Tensor, num_rows: int) -> Dict[str, np.ndarray]:
        parsed = tf.io.parse_example(batch, self._feature_spec) if self._feature_spec else {}
        columns = {name: _first_values(value, num_rows) for name, value in parsed.items()}
        columns.update(self.transformed_columns(batch))
        return columns

    def transformed_columns(self, batch: tf.Tensor) -> Dict[str, np.ndarray]:
        """Requested outputs of the Transform graph, one scalar per example: floats for
        numbers, str for strings."""
        if not self._transformed_features:
            return {}
        outputs = self._transform(examples=batch)
        columns = {}
        for name in self._transformed_features:
            if name not in outputs:
                raise InputError(
                    f"feature '{name}' is neither in the raw examples nor in the "
                    f'Transform output (which has: {", ".join(sorted(outputs))})'
                )
            values = np.asarray(outputs[name].numpy()).reshape(len(batch.numpy()), -1)[:, 0]
            columns[name] = (
                np.array([v.decode('utf-8', 'replace') for v in values], dtype=object)
                if values.dtype.kind in 'OSU'
                else as_written(values)
            )
        return columns
