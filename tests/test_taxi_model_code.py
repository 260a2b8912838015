"""The taxi preprocessing_fn and model builder on small in-memory data."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from blindspot.pipelines.taxi import features as F
from blindspot.pipelines.taxi.model import build_keras_model
from blindspot.pipelines.taxi.preprocessing import preprocessing_fn


def _raw_spec():
    spec = {}
    for key in F.DENSE_FLOAT_FEATURES + F.BUCKET_FEATURES + (F.TIPS,):
        spec[key] = tf.io.VarLenFeature(tf.float32)
    for key in F.CATEGORICAL_INT_FEATURES:
        spec[key] = tf.io.VarLenFeature(tf.int64)
    for key in F.VOCAB_FEATURES:
        spec[key] = tf.io.VarLenFeature(tf.string)
    return spec


def _row(i):
    row = {
        'trip_miles': [float(i % 7)],
        'fare': [10.0 + i],
        'trip_seconds': [60.0 * i],
        'tips': [3.0 if i % 2 else 0.0],
        'pickup_latitude': [41.8 + 0.01 * (i % 10)],
        'pickup_longitude': [-87.6],
        'dropoff_latitude': [] if i % 5 == 0 else [41.9],
        'dropoff_longitude': [-87.7],
        'trip_start_hour': [i % 24],
        'trip_start_day': [1 + i % 7],
        'trip_start_month': [1 + i % 12],
        'payment_type': [b'Cash' if i % 2 else b'Credit Card'],
        'company': [] if i % 4 == 0 else [b'Flash Cab'],
        'pickup_community_area': [8],
        'dropoff_community_area': [],
    }
    return row


@pytest.fixture(scope='module')
def transformed():
    rows = [_row(i) for i in range(40)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_raw_spec()))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (data, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    return rows, data


def test_label_is_tip_above_20_percent_of_fare(transformed):
    rows, data = transformed
    expected = [int(r['tips'][0] > 0.2 * r['fare'][0]) for r in rows]
    assert [int(d[F.LABEL_KEY]) for d in data] == expected
    assert 0 < sum(expected) < len(expected)


def test_numbers_are_z_scored_each_on_its_own(transformed):
    rows, data = transformed
    for key in F.DENSE_FLOAT_FEATURES:  # stacked into one analyzer, scaled per column
        z = np.array([d[F.transformed_name(key)] for d in data])
        raw = np.array([r[key][0] for r in rows])
        np.testing.assert_allclose(z, (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_coordinates_are_bucketed_by_their_own_quantiles(transformed):
    rows, data = transformed
    latitude = [(r['pickup_latitude'][0], int(d['pickup_latitude_xf'])) for r, d in zip(rows, data)]
    buckets = [b for _, b in sorted(latitude)]
    assert buckets == sorted(buckets) and len(set(buckets)) >= 5  # ordered, spread out
    assert len({int(d['pickup_longitude_xf']) for d in data}) == 1  # one value, one bucket


def test_missing_coordinates_get_their_own_bucket(transformed):
    rows, data = transformed
    for row, out in zip(rows, data):
        bucket = int(out['dropoff_latitude_xf'])
        if not row['dropoff_latitude']:
            assert bucket == F.NUM_BUCKETS
        else:
            assert 0 <= bucket < F.NUM_BUCKETS


def test_strings_map_to_vocabulary_ids(transformed):
    rows, data = transformed
    ids = {}
    for row, out in zip(rows, data):
        ids.setdefault(row['payment_type'][0], set()).add(int(out['payment_type_xf']))
    assert len(ids) == 2 and all(len(v) == 1 for v in ids.values())
    assert set.union(*ids.values()) == {0, 1}
    # Missing company becomes its own value, not an error.
    assert all(0 <= int(d['company_xf']) < F.VOCAB_SIZE + F.OOV_SIZE for d in data)


def _fake_transformed(n, rng):
    batch = {
        F.transformed_name(k): rng.normal(size=(n, 1)).astype('float32')
        for k in F.DENSE_FLOAT_FEATURES
    }
    for key in F.BUCKET_FEATURES + tuple(F.CATEGORICAL_INT_FEATURES) + F.VOCAB_FEATURES:
        batch[F.transformed_name(key)] = rng.integers(0, F.num_ids(key), size=(n, 1))
    return batch


def test_model_outputs_probabilities_and_learns_a_rule():
    rng = np.random.default_rng(0)
    model = build_keras_model(learning_rate=0.01)
    x = _fake_transformed(2000, rng)
    y = (x['payment_type_xf'][:, 0] == 1).astype('float32')  # learnable from one one-hot input
    before = model.evaluate(x, y, verbose=0)[1]
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2000, 1) and probs.min() >= 0 and probs.max() <= 1
    after = model.evaluate(x, y, verbose=0)[1]
    assert after > 0.97 and after > before


def test_tf_keras_code_is_left_to_run_unconverted_by_autograph():
    """In a fresh process: TF's autograph would rewrite tf_keras's training code (it only
    spares `keras`) until skip_autograph_for_tf_keras, which the Trainer and runner call."""
    import subprocess
    import sys

    script = (
        'import tf_keras\n'
        'from tensorflow.python.autograph.impl import conversion\n'
        'from blindspot.pipelines.training import skip_autograph_for_tf_keras\n'
        'step = tf_keras.Model.train_step\n'
        'print(conversion.is_allowlisted(step))\n'
        'skip_autograph_for_tf_keras()\n'
        'skip_autograph_for_tf_keras()\n'
        'print(conversion.is_allowlisted(step))\n'
        'from tensorflow.python.autograph.core import config\n'
        "print(sum(r.matches('tf_keras') for r in config.CONVERSION_RULES))\n"
    )
    done = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split() == ['False', 'True', '1']
