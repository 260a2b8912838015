"""ErrorAnalysis refuses inputs it cannot analyse, clearly and before writing a report."""

import gzip
import json
import os

import pytest
from tfx.utils import path_utils

from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.beam.predictions import InputError, Predictor
from blindspot.error_analysis.executor import Executor, slice_feature_types
from blindspot.review import metadata
from tests.conftest import EA_PROPS as PROPS
from tests.conftest import ea_inputs as _inputs


def _run(inputs, tmp_path, **props):
    report = ErrorAnalysisReport()
    report.uri = str(tmp_path / 'report')
    os.makedirs(report.uri)
    with pytest.raises(InputError) as raised:
        Executor().Do(inputs, {'report': [report]}, {**PROPS, **props})
    assert not os.path.exists(os.path.join(report.uri, 'report.json'))
    return str(raised.value)


def test_label_missing_from_examples(taxi_run, tmp_path):
    message = _run(_inputs(taxi_run), tmp_path, label_key='no_such_label')
    assert "label 'no_such_label' is missing" in message


def test_label_value_the_model_never_saw(taxi_run, tmp_path):
    # trip_start_hour goes up to 23; the taxi model has two output classes. (With the task
    # left to 'auto', one output value and labels not 0/1 read as a regression.)
    message = _run(_inputs(taxi_run), tmp_path, label_key='trip_start_hour', task='classification')
    assert 'never predicts' in message and '2 output classes' in message


def test_unknown_split(taxi_run, tmp_path):
    message = _run(_inputs(taxi_run), tmp_path, label_key='big_tipper', splits='["test"]')
    assert "split 'test' is not in the examples" in message and 'eval' in message


def test_empty_split(taxi_run, tmp_path):
    empty = tmp_path / 'examples'
    (empty / 'Split-eval').mkdir(parents=True)
    with gzip.open(empty / 'Split-eval' / 'data_tfrecord-00000-of-00001.gz', 'wb'):
        pass
    message = _run(_inputs(taxi_run, str(empty), splits=['eval']), tmp_path, label_key='big_tipper')
    assert "split 'eval' has no examples" in message


def test_unknown_slice_feature(taxi_run, tmp_path):
    message = _run(
        _inputs(taxi_run),
        tmp_path,
        label_key='big_tipper',
        slice_features=json.dumps(['payment_type', 'colour']),
    )
    assert "'colour'" in message and 'neither in the raw examples' in message


def test_default_slice_features_leave_out_label_source(taxi_run):
    from tfx.utils import io_utils

    schema_uri = metadata.output_artifact(taxi_run['first'], 'ImportSchemaGen', 'schema').uri
    schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
    kinds = slice_feature_types(schema, [], 'big_tipper', 50)
    assert 'tips' not in kinds  # not available at serving time: it would restate the label
    assert kinds['payment_type'] == 'string'
    assert kinds['trip_start_hour'] == 'int_category'
    assert kinds['pickup_community_area'] == 'int_category'
    assert kinds['trip_miles'] == 'float'


def test_predictor_matches_label_and_probabilities(taxi_run):
    import glob

    import tensorflow as tf

    first = taxi_run['first']
    model_dir = path_utils.serving_model_path(
        metadata.output_artifact(first, 'Trainer', 'model').uri
    )
    files = glob.glob(
        os.path.join(
            metadata.output_artifact(first, 'CsvExampleGen', 'examples').uri, 'Split-eval', '*'
        )
    )
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type='GZIP').take(50)]
    batch = Predictor(model_dir, 'big_tipper', {}).predict(records)
    assert batch.probabilities.shape == (50, 2)
    assert abs(batch.probabilities.sum(axis=1) - 1).max() < 1e-6
    for record, label in zip(records, batch.labels):
        example = tf.train.Example.FromString(record)
        tips = example.features.feature['tips'].float_list.value[0]
        fare = example.features.feature['fare'].float_list.value[0]
        assert label == int(tips > 0.2 * fare)
    # Ids are stable: the same bytes give the same id.
    assert (
        Predictor(model_dir, 'big_tipper', {}).predict(records).example_ids.tolist()
        == batch.example_ids.tolist()
    )
