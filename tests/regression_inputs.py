"""A small regression task for the ErrorAnalysis executor: examples whose label is 2x + noise,
and a Keras regressor (2x, fixed weights) exported like a TFX Trainer's model (serving_default
on serialized tf.Examples) that may add a planted bias in region = a AND day = sat: then it
over-predicts there by that much."""

import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

NOISE = 1.0
BIAS = 3.0 * NOISE  # +3 sigma
REGIONS = np.array(list('abcdef'), dtype=object)
DAYS = np.array(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], dtype=object)
PLANTED = {'region': 'a', 'day': 'sat'}


def rows(n: int, seed: int, label=None) -> List[Dict]:
    """n examples: region, day, x and y (`label(i, row)` may replace y)."""
    rng = np.random.default_rng(seed)
    region = REGIONS[rng.integers(0, len(REGIONS), n)]
    day = DAYS[rng.integers(0, len(DAYS), n)]
    x = rng.random(n) * 10
    y = 2 * x + rng.normal(0, NOISE, n)
    out = [
        {'source': 'web', 'region': str(r), 'day': str(d), 'x': float(v), 'y': float(t)}
        for r, d, v, t in zip(region, day, x, y)
    ]
    if label is not None:
        for i, row in enumerate(out):
            row['y'] = float(label(i, row))
    return out


def _example(row: Dict) -> bytes:
    features = {}
    for name, value in row.items():
        if isinstance(value, str):
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)  # the same id in every folder


def example_id(row: Dict) -> str:
    """Blindspot's stable id of the row's example (beam/predictions.py example_ids)."""
    from blindspot.error_analysis.beam.predictions import example_ids

    return str(example_ids([_example(row)])[0])


def predictions(rows: List[Dict], bias: float = 0.0) -> np.ndarray:
    """What save_model's model predicts for these rows (float32, as it computes)."""
    x = np.array([row['x'] for row in rows], np.float32)
    planted = np.array([all(row[k] == v for k, v in PLANTED.items()) for row in rows])
    return (np.float32(2.0) * x + np.float32(bias) * planted.astype(np.float32)).astype(np.float64)


def save_model(path: str, bias: float = 0.0, slope: float = 2.0) -> str:
    """A Keras regressor slope * x, plus `bias` in the planted region, with serving_default
    on tf.Examples."""
    import tf_keras as keras

    inputs = keras.Input(shape=(1,), name='x')
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[slope]], np.float32), np.array([0.0], np.float32)])
    spec = {
        'x': tf.io.FixedLenFeature([1], tf.float32),
        'region': tf.io.FixedLenFeature([1], tf.string),
        'day': tf.io.FixedLenFeature([1], tf.string),
    }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve(examples):
        parsed = tf.io.parse_example(examples, spec)
        planted = tf.logical_and(
            tf.equal(parsed['region'], PLANTED['region']), tf.equal(parsed['day'], PLANTED['day'])
        )
        return {'prediction': model(parsed['x']) + bias * tf.cast(planted, tf.float32)}

    model.serve = serve
    tf.saved_model.save(model, path, signatures={'serving_default': serve})
    return path


def inputs(
    folder: Path,
    eval_rows: List[Dict],
    train_rows: Optional[List[Dict]] = None,
    bias: float = 0.0,
) -> Dict:
    """ErrorAnalysis input artifacts (examples, model (save_model with `bias`), schema) for
    these rows in `folder`."""
    from tfx.types import artifact_utils, standard_artifacts

    splits = {'eval': eval_rows, **({'train': train_rows} if train_rows else {})}
    for split, split_rows in splits.items():
        os.makedirs(folder / 'examples' / f'Split-{split}', exist_ok=True)
        path = str(folder / 'examples' / f'Split-{split}' / 'data.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for row in split_rows:
                writer.write(_example(row))
    examples = standard_artifacts.Examples()
    examples.uri = str(folder / 'examples')
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    model = standard_artifacts.Model()
    model.uri = str(folder / 'model')
    save_model(str(folder / 'model' / 'Format-Serving'), bias)
    schema = standard_artifacts.Schema()
    schema.uri = str(folder / 'schema')
    os.makedirs(schema.uri, exist_ok=True)
    proto = schema_pb2.Schema()
    for name, kind in (
        ('source', schema_pb2.BYTES),  # constant: left out of slicing
        ('region', schema_pb2.BYTES),
        ('day', schema_pb2.BYTES),
        ('x', schema_pb2.FLOAT),
        ('y', schema_pb2.FLOAT),
    ):
        proto.feature.add(name=name, type=kind)
    with open(os.path.join(schema.uri, 'schema.pbtxt'), 'w') as f:
        from google.protobuf import text_format

        f.write(text_format.MessageToString(proto))
    return {'examples': [examples], 'model': [model], 'schema': [schema]}


def run(input_dict: Dict, out: Path, baseline: Optional[str] = None, **properties) -> Dict:
    """The executor on these inputs (`baseline`: the folder of a report to compare with); the
    report it wrote."""
    import json

    from blindspot.error_analysis.artifact import ErrorAnalysisReport
    from blindspot.error_analysis.executor import Executor
    from blindspot.error_analysis.settings import Settings

    report = ErrorAnalysisReport()
    report.uri = str(out)
    os.makedirs(report.uri, exist_ok=True)
    settings = {**Settings(slice_gate='off').to_exec_properties(), **properties}
    if baseline:
        before = ErrorAnalysisReport()
        before.uri = baseline
        input_dict = {**input_dict, 'baseline_report': [before]}
    Executor().Do(input_dict, {'report': [report]}, {'label_key': 'y', **settings})
    with open(os.path.join(report.uri, 'report.json')) as f:
        return json.load(f)
