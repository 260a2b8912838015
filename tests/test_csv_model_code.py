"""The csv pipeline's preprocessing_fn and model builder on small in-memory data."""

import functools
import math
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from blindspot.pipelines.csv import features as F
from blindspot.pipelines.csv.model import build_keras_model
from blindspot.pipelines.csv.preprocessing import preprocessing_fn

# Columns as SchemaGen infers them with infer_feature_shape=False: variable length, so an
# empty CSV cell is a missing value.
SPEC = {
    'income': tf.io.VarLenFeature(tf.float32),
    'age': tf.io.VarLenFeature(tf.int64),
    'city': tf.io.VarLenFeature(tf.string),
    'street': tf.io.VarLenFeature(tf.string),
    'rooms': tf.io.VarLenFeature(tf.int64),
    'grade': tf.io.VarLenFeature(tf.string),
    'notes': tf.io.VarLenFeature(tf.string),
}
CONFIG = {
    'label': 'grade',
    'categorical': ['rooms'],
    # Values the scan saw in full ('kyiv' is in this batch only: out of vocabulary; rooms as
    # written in the file); 'street' has too many, so it gets a vocabulary pass.
    'vocabularies': {'city': ['rome', 'oslo', 'lima'], 'rooms': ['01', '2', '3']},
    'ignore': ['notes'],
    # 'top' is in the data (so the scan saw it) but not in this batch: it still gets an id.
    'label_classes': ['low', 'high', 'top'],
}


def _row(i):
    return {
        'income': [] if i % 5 == 0 else [float('nan')] if i == 7 else [10.0 * i],
        'age': [] if i % 6 == 1 else [1000 + i % 4],
        'city': [] if i % 4 == 0 else [b'kyiv'] if i == 9 else [[b'oslo', b'rome', b'lima'][i % 3]],
        'street': [] if i % 4 == 0 else [[b'main', b'high', b'mill'][i % 3]],
        'rooms': [1 + i % 3],
        'grade': [b'low' if i % 3 else b'high'],
        'notes': [],
    }


@pytest.fixture(scope='module')
def transformed():
    rows = [_row(i) for i in range(30)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
    output_dir = tempfile.mkdtemp()
    fn = functools.partial(preprocessing_fn, custom_config=CONFIG)
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return rows, data, tft.TFTransformOutput(output_dir)


def test_label_maps_to_class_ids_with_every_known_class(transformed):
    rows, data, output = transformed
    names = [v.decode() for v in output.vocabulary_by_name(F.LABEL_VOCAB)]
    # Most frequent first; a class seen by the scan but absent here still has an id.
    assert names == ['low', 'high', 'top']
    for row, out in zip(rows, data):
        assert names[int(out[F.LABEL_KEY])] == row['grade'][0].decode()


def test_numbers_are_z_scored_per_column_over_present_values_with_missing_indicator(
    transformed,
):
    rows, data, _ = transformed
    for name in ('income', 'age'):  # different scales and missing rows, one analyzer pair
        present = np.array([bool(r[name]) and not math.isnan(r[name][0]) for r in rows])
        z = np.array([d[f'{name}_xf'] for d in data])
        missing = np.array([d[f'{name}_missing_xf'] for d in data])
        assert list(missing) == [0.0 if p else 1.0 for p in present]  # NaN counts as missing
        assert np.all(z[~present] == 0)
        raw = np.array([r[name][0] for r, p in zip(rows, present) if p], dtype=float)
        np.testing.assert_allclose(z[present], (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_text_and_small_integers_with_known_values_get_ids_without_a_vocabulary_pass(
    transformed,
):
    rows, data, output = transformed
    city = ['rome', 'oslo', 'lima', F.MISSING]  # the scan's values, then an empty cell
    for row, out in zip(rows, data):
        value = row['city'][0].decode() if row['city'] else F.MISSING
        assert int(out['city_xf']) == (city.index(value) if value in city else len(city))
    assert output.num_buckets_for_transformed_feature('city_xf') == len(city) + F.NUM_OOV
    for row, out in zip(rows, data):
        assert int(out['rooms_xf']) == row['rooms'][0] - 1  # '01' is the integer 1
    assert output.num_buckets_for_transformed_feature('rooms_xf') == 3 + 1 + F.NUM_OOV
    assert 'rooms_missing_xf' not in data[0]  # a category, not a number
    # No analyzer pass wrote a vocabulary for them (street's is there).
    assert output.vocabulary_file_by_name(F.vocab_name('city')) is None
    assert tf.io.gfile.exists(output.vocabulary_file_by_name(F.vocab_name('street')))


def test_text_with_unknown_values_gets_a_vocabulary(transformed):
    rows, data, output = transformed
    street_vocab = [v.decode() for v in output.vocabulary_by_name(F.vocab_name('street'))]
    assert F.MISSING in street_vocab  # an empty cell is a value of its own
    for row, out in zip(rows, data):
        street = row['street'][0].decode() if row['street'] else F.MISSING
        assert street_vocab[int(out['street_xf'])] == street
    assert output.num_buckets_for_transformed_feature('street_xf') == len(street_vocab) + F.NUM_OOV
    assert not any(k.startswith('notes') for k in data[0])  # empty in every row: left out


def test_model_outputs_a_distribution_over_the_classes_and_learns():
    rng = np.random.default_rng(0)
    n = 2000
    x = {
        'income_xf': rng.normal(size=(n, 1)).astype('float32'),
        'income_missing_xf': (rng.random((n, 1)) < 0.1).astype('float32'),
        'city_xf': rng.integers(0, 7, size=(n, 1)),
    }
    y = np.where(x['city_xf'][:, 0] < 3, 0, np.where(x['income_xf'][:, 0] > 0, 1, 2))
    model = build_keras_model(
        {'income_xf': 0, 'income_missing_xf': 0, 'city_xf': 7}, num_classes=3, learning_rate=0.01
    )
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (n, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert model.evaluate(x, y, verbose=0)[1] > 0.95


def test_regressor_learns_and_predicts_in_the_label_units():
    from blindspot.pipelines.csv.model import build_keras_regressor, label_moments
    from blindspot.pipelines.training import skip_autograph_for_tf_keras

    skip_autograph_for_tf_keras()  # as the Trainer runs it
    rng = np.random.default_rng(0)
    n = 600
    x = {'x_xf': rng.normal(size=(n, 1)).astype('float32'), 'shop_xf': rng.integers(0, 3, (n, 1))}
    # Prices around 1,200 with a standard deviation near 230: far from a z-score's scale.
    y = (1000.0 + 150.0 * x['x_xf'][:, 0] + 200.0 * x['shop_xf'][:, 0]).astype('float32')
    mean, std = label_moments(tf.data.Dataset.from_tensor_slices((x, y)).batch(64))
    assert mean == pytest.approx(y.mean(), rel=1e-5) and std == pytest.approx(y.std(), rel=1e-4)
    model = build_keras_regressor({'x_xf': 0, 'shop_xf': 4}, mean, std, learning_rate=0.03)
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    predicted = model.predict(x, verbose=0)
    assert predicted.shape == (n, 1)
    assert np.abs(predicted[:, 0] - y).mean() < 0.1 * std
    huber = build_keras_regressor({'x_xf': 0, 'shop_xf': 4}, mean, std, loss='huber')
    assert huber.loss.get_config()['delta'] == pytest.approx(std)  # outliers past 1 std
