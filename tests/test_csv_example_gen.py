"""The batched CSV executor writes the examples TFX's stock CsvExampleGen writes, as the bytes
that decide each row's split, on a CSV with the cases that differ: types widened late,
overflowing integers, empty cells and columns, quoted commas and line breaks, blank lines,
several files and batches."""

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as stock

from blindspot.csv_example_gen import column_kinds as K
from blindspot.csv_example_gen import executor as batched

HEADER = 'id,price,count,code,note,blank,big\n'
ROWS = [
    '1,2,3,a,plain,,5',
    '2,2.5,,b,"with, comma",,6',
    '3,,7,c,"two\nlines",,9223372036854775808',  # past int64: the column becomes text
    '',  # a blank line is skipped
    '4,1e3,8,,"say ""hi""",,7',
    '5,-0.5,9,d,é ü,,8',
]


def _examples(transform, exec_properties, out):
    """What the transform makes, as the bytes the base executor hashes to pick a row's split
    (a stock tf.Example serialized deterministically; the batched executor's bytes as they
    are), sorted."""
    with beam.Pipeline() as p:
        _ = (
            p
            | transform(exec_properties=exec_properties, split_pattern='*.csv')
            | beam.Map(
                lambda e: e if isinstance(e, bytes) else e.SerializeToString(deterministic=True)
            )
            | beam.io.WriteToTFRecord(str(out), shard_name_template='')
        )
    return sorted(r.numpy() for r in tf.data.TFRecordDataset(str(out)))


@pytest.fixture
def csv_folder(tmp_path):
    folder = tmp_path / 'data'
    folder.mkdir()
    (folder / 'a.csv').write_text(HEADER + '\n'.join(ROWS[:3]) + '\n', encoding='utf-8')
    (folder / 'b.csv').write_text(HEADER + '\n'.join(ROWS[3:]) + '\n', encoding='utf-8')
    return {'input_base': str(folder)}


def test_batched_examples_equal_the_stock_executors(csv_folder, monkeypatch, tmp_path):
    monkeypatch.setattr(batched, 'BATCH_ROWS', 2)  # types widen across batches and files
    out = tmp_path / 'out'
    expected = _examples(stock._CsvToExample, csv_folder, out / 'stock')
    got = _examples(batched._CsvToSerializedExamples, csv_folder, out / 'batched')
    assert len(got) == 5 and got == expected
    by_id = {int(e.features.feature['id'].int64_list.value[0]): e for e in map(_parse, got)}
    features = by_id[3].features.feature
    assert features['note'].bytes_list.value == [b'two\nlines']
    assert features['big'].bytes_list.value == [b'9223372036854775808']
    assert list(features['price'].float_list.value) == []  # empty cell, typed empty list
    assert not features['blank'].HasField('kind')  # a column empty everywhere: no list


def _parse(serialized):
    return tf.train.Example.FromString(serialized)


def test_column_kinds_widen_like_tfx_bsl():
    kinds = K.widen([K.UNKNOWN] * 4, [['1', '', '1', 'x'], ['2', '', '1.5', '3']])
    assert kinds == [K.INT, K.UNKNOWN, K.FLOAT, K.STRING]
    assert K.cell_kind(str(2**63)) == K.STRING and K.cell_kind(str(-(2**63))) == K.INT
    assert K.cell_kind('1e3') == K.FLOAT and K.cell_kind('nan') == K.FLOAT


def test_a_row_with_another_number_of_values_is_refused(tmp_path):
    (tmp_path / 'a.csv').write_text(HEADER + '1,2,3\n')
    with pytest.raises(Exception, match='3 values but the header has 7 columns'):
        _examples(batched._CsvToSerializedExamples, {'input_base': str(tmp_path)}, tmp_path / 'o')


def test_data_read_in_place_drops_a_bom_and_reads_tokens_as_missing(tmp_path):
    """For data read where it lies (Kubeflow's csv pipeline, no cleaned copy): a UTF-8 BOM is
    not part of the first column's name, and the custom_config's missing-value tokens of a
    numeric column are read as empty cells, so the column stays int64."""
    (tmp_path / 'a.csv').write_bytes(b'\xef\xbb\xbfid,score\n1,5\n2,NA\n3,?\n4,NA\n')
    options = {batched.MISSING_TOKENS_KEY: {'score': ['NA']}}
    properties = {'input_base': str(tmp_path), 'custom_config': batched.csv_config(options)}
    assert batched.csv_options(properties) == options
    got = [
        _parse(e) for e in _examples(batched._CsvToSerializedExamples, properties, tmp_path / 'o')
    ]
    assert all('id' in e.features.feature for e in got)  # not '\ufeffid'
    scores = {
        e.features.feature['id'].int64_list.value[0]: e.features.feature['score'] for e in got
    }
    assert scores[2].bytes_list.value == [] and scores[2].WhichOneof('kind') == 'bytes_list'
    assert scores[3].bytes_list.value == [b'?']  # '?' was not given: the column is text
    properties['custom_config'] = batched.csv_config(
        {batched.MISSING_TOKENS_KEY: {'score': ['NA', '?']}}
    )
    got = [
        _parse(e) for e in _examples(batched._CsvToSerializedExamples, properties, tmp_path / 'p')
    ]
    kinds = {e.features.feature['score'].WhichOneof('kind') for e in got}
    assert kinds == {'int64_list'}
    assert sorted(len(e.features.feature['score'].int64_list.value) for e in got) == [0, 0, 0, 1]
