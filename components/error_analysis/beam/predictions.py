"""Batched inference with a TFX-trained SavedModel, on raw serialized tf.Examples.

Runs the model as it is served (`serving_default` applies the Transform graph) and reads the
label through the `transform_features` signature when the label is a transformed feature, so
predictions match what the Evaluator sees.
"""

import hashlib
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from apache_beam.utils import shared
from tensorflow_metadata.proto.v0 import schema_pb2

from blindspot.error_analysis.beam.batch import PredictionBatch


class InputError(ValueError):
    """Examples, labels or model that cannot be analysed together; the message says why."""


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
        label_vocabulary: Sequence[str] = (),
        regression: bool = False,
    ):
        self._model = load_model(model_dir)
        self._regression = regression
        signatures = self._model.signatures
        if 'serving_default' not in signatures:
            have = ', '.join(sorted(signatures)) or 'none'
            raise InputError(
                f"model at {model_dir} has no 'serving_default' signature (it has: {have}); "
                "save it with tf.saved_model.save(model, path, signatures={'serving_default': "
                "f}) where f takes a batch of serialized tf.Examples, as the Trainer of TFX's "
                'examples does'
            )
        self._serve = signatures['serving_default']
        _check_serving_input(self._serve, model_dir)
        # Class names in class-id order, for a raw label that holds strings.
        self._vocabulary = {name: i for i, name in enumerate(label_vocabulary)}
        self._transform = signatures.get('transform_features')
        self._label_key = label_key
        self._feature_spec = feature_spec
        self._transformed_features = list(transformed_features)
        if self._transformed_features and self._transform is None:
            raise InputError(
                f'features {", ".join(self._transformed_features)} are not in the '
                "raw examples and the model has no 'transform_features' signature"
            )

    @property
    def label_key(self) -> str:
        return self._label_key

    @property
    def has_transform(self) -> bool:
        return self._transform is not None

    def transform(self, serialized: Sequence[bytes]) -> Dict[str, np.ndarray]:
        """The Transform outputs of a batch, as numpy values ({} without the signature)."""
        if self._transform is None:
            return {}
        outputs = self._transform(examples=tf.constant(list(serialized)))
        return {name: _comparable(value) for name, value in outputs.items()}

    def values_per_example(self, serialized: Sequence[bytes]) -> int:
        """How many numbers the serving signature's output gives per example."""
        outputs = self._serve(examples=tf.constant(list(serialized)))
        scores = np.asarray(next(iter(outputs.values())).numpy())
        return 1 if scores.ndim == 1 else int(np.prod(scores.shape[1:]))

    def numeric_labels(self, serialized: Sequence[bytes]) -> Optional[np.ndarray]:
        """The labels as float64 (None when they hold strings), for telling tasks apart."""
        values = self._label_values(tf.constant(list(serialized)))
        if values.dtype == object or values.dtype.kind in 'SU':
            return None
        return values.astype(np.float64)

    def num_classes(self, serialized: Sequence[bytes]) -> int:
        outputs = self._serve(examples=tf.constant(list(serialized)))
        return to_probabilities(next(iter(outputs.values())).numpy()).shape[1]

    def raw_label_values(self, serialized: tf.Tensor) -> np.ndarray:
        """The raw label column, first value per example: int64, float64 or object (str);
        an InputError if it is missing."""
        for dtype in (tf.int64, tf.float32, tf.string):
            try:
                raw = tf.io.parse_example(
                    serialized, {self._label_key: tf.io.VarLenFeature(dtype)}
                )[self._label_key]
                break
            except tf.errors.InvalidArgumentError:
                continue
        else:  # pragma: no cover (every tf.Example feature is one of the three)
            raise InputError(f"label '{self._label_key}' cannot be read from the examples")
        n = int(serialized.shape[0])
        if raw.dense_shape[1] == 0 or len(np.unique(raw.indices.numpy()[:, 0])) < n:
            raise InputError(f"label '{self._label_key}' is missing from some examples")
        return _first_values(raw, n) if dtype != tf.int64 else _first_ints(raw, n)

    def _label_values(self, serialized: tf.Tensor) -> np.ndarray:
        """The label per example: the Transform's output of that name, else the raw column."""
        label = None
        if self._transform is not None:
            label = self._transform(examples=serialized).get(self._label_key)
        if label is None:
            return self.raw_label_values(serialized)
        return np.asarray(label.numpy()).reshape(len(serialized.numpy()), -1)[:, 0]

    def _labels(self, serialized: tf.Tensor) -> np.ndarray:
        values = self._label_values(serialized)
        if self._regression:
            if values.dtype == object or values.dtype.kind in 'SU':
                raise InputError(
                    f"label '{self._label_key}' holds strings (e.g. {values[0]!r}): a "
                    'regression needs a numeric label; pick a numeric column or set the task '
                    'to classification'
                )
            return values.astype(np.float64)
        if values.dtype == object or values.dtype.kind in 'SU':
            text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
            if not self._vocabulary:
                raise InputError(
                    f"label '{self._label_key}' holds strings (e.g. {text[0]!r}): give "
                    "class_names (one per class id, in the order of the model's outputs) "
                    'or, as label_key, the Transform output that maps them to ids'
                )
            unknown = sorted({t for t in text if t not in self._vocabulary})
            if unknown:
                raise InputError(
                    f"label '{self._label_key}' has value {unknown[0]!r}, which is not among "
                    f'the class names ({", ".join(list(self._vocabulary)[:10])})'
                )
            return np.array([self._vocabulary[t] for t in text], dtype=np.int64)
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
        if self._regression:
            values = np.asarray(next(iter(outputs.values())).numpy(), np.float64)
            values = values.reshape(len(serialized), -1)
            if values.shape[1] != 1:
                raise InputError(
                    f'a regression model gives one value per example; this one gives '
                    f'{values.shape[1]} (a classifier? set the task to classification)'
                )
            labels = self._labels(batch)
            return PredictionBatch(
                example_ids(serialized),
                labels,
                np.zeros((len(labels), 0)),
                self._columns(batch, len(labels)),
                label_suspect=np.zeros(len(labels), dtype=bool),
                values=values[:, 0],
            )
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


def _first_ints(sparse: tf.sparse.SparseTensor, n: int) -> np.ndarray:
    """First int64 value per row (every row has one)."""
    indices = sparse.indices.numpy()
    first = np.unique(indices[:, 0], return_index=True)[1]
    out = np.zeros(n, dtype=np.int64)
    out[indices[first, 0]] = sparse.values.numpy()[first]
    return out


def _check_serving_input(serve, model_dir: str) -> None:
    """serving_default must take one batch of serialized tf.Examples, named `examples`."""
    _, kwargs = serve.structured_input_signature
    spec = kwargs.get('examples')
    if spec is None or spec.dtype != tf.string or len(kwargs) != 1:
        inputs = ', '.join(f'{k} ({v.dtype.name})' for k, v in sorted(kwargs.items())) or 'none'
        raise InputError(
            f"model at {model_dir}: its 'serving_default' signature takes {inputs}, not "
            "serialized tf.Examples as 'examples'; export one that parses them (as "
            "TFX's examples do: a tf.function with input_signature "
            "[tf.TensorSpec([None], tf.string, name='examples')])"
        )


def _comparable(value) -> np.ndarray:
    """A Transform output as numpy, one row per example (sparse and ragged rows as tuples)."""
    if isinstance(value, tf.sparse.SparseTensor):
        rows = [[] for _ in range(int(value.dense_shape[0]))]
        for index, item in zip(value.indices.numpy(), value.values.numpy()):
            rows[index[0]].append(item)
    elif isinstance(value, tf.RaggedTensor):
        rows = value.to_list()
    else:
        return np.asarray(value.numpy())
    out = np.empty(len(rows), dtype=object)
    out[:] = [tuple(np.ravel(r).tolist()) for r in rows]
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:
        return bool(np.array_equal(a, b))


def _perturbed(examples: List, name: str) -> List[List[bytes]]:
    """Copies of the serialized examples in which only feature `name` differs: its values
    rotated by one row, and shifted out of their range (numbers far off, strings unseen)."""
    values = [ex.features.feature[name] if name in ex.features.feature else None for ex in examples]
    present = [v for v in values if v is not None]
    if not present:
        return []

    def build(new_values) -> List[bytes]:
        out = []
        for ex, value in zip(examples, new_values):
            copy = tf.train.Example()
            copy.CopyFrom(ex)
            if value is None:
                if name in copy.features.feature:
                    del copy.features.feature[name]
            else:
                copy.features.feature[name].CopyFrom(value)
            out.append(copy.SerializeToString())
        return out

    def shifted(value, how: int):
        new = tf.train.Feature()
        kind = value.WhichOneof('kind')
        if kind == 'int64_list':
            new.int64_list.value.extend(
                [(v + 1) if how == 0 else (-v - 1) for v in value.int64_list.value]
            )
        elif kind == 'float_list':
            new.float_list.value.extend(
                [v * 10 + 100 if how == 0 else -(v * 10) - 100 for v in value.float_list.value]
            )
        elif kind == 'bytes_list':
            new.bytes_list.value.extend([v + b'~blindspot' for v in value.bytes_list.value])
        return new

    variants = [build(values[1:] + values[:1])]
    for how in (0, 1):
        variants.append(build([None if v is None else shifted(v, how) for v in values]))
    return variants


def transform_dependents(
    predictor: 'Predictor', serialized: Sequence[bytes], names: Sequence[str]
) -> Dict[str, set]:
    """raw feature -> the Transform outputs whose values change when only that feature
    changes, on these examples (perturbation: the graph is run, not read). Every variant goes
    through the Transform in one batch; one at a time only if that batch is refused."""
    if not predictor.has_transform or not serialized:
        return {}
    n = len(serialized)
    base = predictor.transform(serialized)
    examples = [tf.train.Example.FromString(s) for s in serialized]
    variants = [(name, v) for name in names for v in _perturbed(examples, name)]
    try:
        joined = predictor.transform([s for _, v in variants for s in v])
        outputs = [
            {k: _rows(value, i * n, n) for k, value in joined.items()} for i in range(len(variants))
        ]
        if any(o[k] is None for o in outputs for k in o):
            raise ValueError('an output is not one row per example')
    except (tf.errors.OpError, ValueError, TypeError):
        outputs = []
        for _, variant in variants:
            try:
                outputs.append(predictor.transform(variant))
            except (tf.errors.OpError, ValueError, TypeError):
                outputs.append({})  # a value the Transform refuses: this variant tells nothing
    result = {name: set() for name in names}
    for (name, _), output in zip(variants, outputs):
        result[name] |= {k for k, v in output.items() if k in base and not _same(base[k], v)}
    return result


def _rows(value: np.ndarray, start: int, n: int) -> Optional[np.ndarray]:
    """Rows start..start+n of a batched output (None for a scalar output)."""
    return value[start : start + n] if value.ndim >= 1 else None


def raw_label_for(label_key: str, dependents: Dict[str, set]) -> Optional[str]:
    """The raw column a transformed label is computed from: the one raw feature it depends
    on, or, among several, the one whose name the label's extends ('tips' for 'tips_xf').
    None when neither holds (a label computed from several columns, like taxi's big_tipper
    from tips and fare: they stay features)."""
    sources = sorted(name for name, outputs in dependents.items() if label_key in outputs)
    if len(sources) == 1:
        return sources[0]
    named = [s for s in sources if label_key.startswith(s) or label_key.endswith(s)]
    if len(named) == 1:
        return named[0]
    return None


def vocabulary_in_assets(
    model_dir: str, num_classes: int, raw: Sequence[str], ids: Optional[Sequence[int]] = None
) -> List[str]:
    """The Transform's vocabulary of a string label, among the model's assets: a file of
    `num_classes` lines holding every raw label seen (and, given the class ids of the same
    examples, line id = raw value). [] if no file, or more than one different file, fits."""
    import os

    folder = os.path.join(model_dir, 'assets')
    if not raw or not tf.io.gfile.isdir(folder):
        return []
    found = []
    for name in sorted(tf.io.gfile.listdir(folder)):
        path = os.path.join(folder, name)
        if tf.io.gfile.isdir(path) or tf.io.gfile.stat(path).length > 1 << 20:
            continue
        try:
            with tf.io.gfile.GFile(path, 'rb') as f:
                lines = f.read().decode('utf-8').splitlines()
        except (UnicodeDecodeError, tf.errors.OpError):
            continue
        if len(lines) != num_classes or not set(raw) <= set(lines):
            continue
        if ids is not None and any(
            not 0 <= i < len(lines) or lines[i] != r for i, r in zip(ids, raw)
        ):
            continue
        if lines not in found:
            found.append(lines)
    return found[0] if len(found) == 1 else []
