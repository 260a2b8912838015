"""--pipeline csv: any CSV with a label column, end to end on two differently shaped data sets
the test writes itself, and every kind of bad input refused before TFX starts."""

import csv
import json
import os
import random
from pathlib import Path

import pytest

import local_runner
from blindspot.pipelines import preflight
from blindspot.pipelines.config import RunConfig
from blindspot.pipelines.csv import features as F
from blindspot.pipelines.datasets import dataset_for
from blindspot.review import metadata

TRAIN_STEPS = 100


def write_customers(path: Path, rows: int = 1200, seed: int = 0) -> Path:
    """Three string classes (low/mid/high spend) from a noisy rule over numbers and text,
    with missing values in three columns, a column that is always empty and one of numbers
    with 'NA' for missing (read as missing values)."""
    rng = random.Random(seed)
    effect = {'berlin': 0.5, 'paris': 0.0, 'rome': -0.5, 'oslo': 1.0, 'lima': -1.0}
    with open(path, 'w', newline='') as f:
        out = csv.writer(f)
        out.writerow(['age', 'income', 'city', 'plan', 'visits', 'notes', 'rating', 'spend'])
        for i in range(rows):
            age, income = rng.randint(18, 80), rng.gauss(50000, 15000)
            city, plan, visits = (
                rng.choice(list(effect)),
                rng.choice(['basic', 'pro']),
                rng.randint(0, 6),
            )
            score = (
                (age - 50) / 15
                + (income - 50000) / 15000
                + effect[city]
                + 0.3 * visits
                - 0.9
                + rng.gauss(0, 0.5)
            )
            spend = 'low' if score < -0.7 else 'high' if score > 0.7 else 'mid'
            out.writerow(
                [
                    '' if i % 11 == 0 else age,
                    '' if i % 7 == 0 else f'{income:.2f}',
                    '' if i % 13 == 0 else city,
                    plan,
                    visits,
                    '',
                    'NA' if i % 9 == 0 else rng.randint(1, 5),
                    spend,
                ]
            )
    return path


def write_sensors(folder: Path, rows: int = 400, seed: int = 1) -> Path:
    """A binary 0/1 label over mostly numeric columns, split over two CSV files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    header = ['x1', 'x2', 'x3', 'x4', 'count', 'site', 'failed']
    for part in range(2):
        with open(folder / f'part{part}.csv', 'w', newline='') as f:
            out = csv.writer(f)
            out.writerow(header)
            for _ in range(rows // 2):
                x = [rng.gauss(0, 1) for _ in range(4)]
                count, site = rng.randint(0, 500), rng.choice(['a', 'b'])
                failed = int(
                    x[0] + 0.5 * x[1] + (0.5 if site == 'b' else 0) + rng.gauss(0, 0.3) > 0.3
                )
                out.writerow([f'{v:.4f}' for v in x] + [count, site, failed])
    return folder


# A curated schema for the sensors (--schema): ImportSchemaGen instead of SchemaGen.
SENSORS_SCHEMA = ''.join(
    f'feature {{ name: "{name}" type: {kind} }}\n'
    for name, kind in [
        ('x1', 'FLOAT'),
        ('x2', 'FLOAT'),
        ('x3', 'FLOAT'),
        ('x4', 'FLOAT'),
        ('count', 'INT'),
        ('site', 'BYTES'),
        ('failed', 'INT'),
    ]
)


def _run_pipeline(tmp_path_factory, name, data, label, *extra):
    out = tmp_path_factory.mktemp(name)
    args = [
        '--pipeline',
        'csv',
        '--data',
        str(data),
        '--label',
        label,
        '--output-dir',
        str(out / 'out'),
        '--train-steps',
        str(TRAIN_STEPS),
        '--eval-steps',
        '10',
        '--min-accuracy',
        '0.5',
        *extra,
    ]
    config = local_runner.parse_args(args)
    assert local_runner.run(config) == 0
    store = metadata.open_store(config.output_dir)
    runs = metadata.component_runs(
        store, metadata.latest_run(store, dataset_for(config).pipeline_name)
    )
    return config, runs


@pytest.fixture(scope='module')
def customers_run(tmp_path_factory):
    data = write_customers(tmp_path_factory.mktemp('customers') / 'customers.csv')
    return _run_pipeline(tmp_path_factory, 'customers_out', data, 'spend')


@pytest.fixture(scope='module')
def sensors_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('sensors')
    data = write_sensors(root / 'data')
    (root / 'schema.pbtxt').write_text(SENSORS_SCHEMA)
    return _run_pipeline(
        tmp_path_factory, 'sensors_out', data, 'failed', '--schema', str(root / 'schema.pbtxt')
    )


COMPONENTS = {
    'CsvExampleGen',
    'StatisticsGen',
    'ExampleValidator',
    'Transform',
    'Trainer',
    'Evaluator',
    'ErrorAnalysis',
    'Pusher',
}


def _report(runs):
    report = metadata.output_artifact(runs, 'ErrorAnalysis', 'report')
    assert report is not None
    with open(os.path.join(report.uri, 'report.json')) as f:
        return report, json.load(f)


def _class_names(runs):
    model = metadata.output_artifact(runs, 'Trainer', 'model')
    with open(os.path.join(model.uri, 'Format-Serving', F.CLASS_NAMES_FILE)) as f:
        return f.read().splitlines()


def test_string_label_csv_runs_every_component_and_reports(customers_run):
    config, runs = customers_run
    assert dataset_for(config).pipeline_name == 'blindspot-csv-customers-spend'
    executed = {name: r.state for name, r in runs.items() if 'resolver' not in name}
    assert set(executed) == COMPONENTS | {'SchemaGen'}  # the schema was inferred
    assert set(executed.values()) == {'COMPLETE'}
    assert (
        metadata.custom_value(metadata.output_artifact(runs, 'Evaluator', 'blessing'), 'blessed')
        == 1
    )
    assert metadata.output_artifact(runs, 'Pusher', 'pushed_model') is not None
    # Class names are the label's values, written beside the model for the report.
    assert sorted(_class_names(runs)) == ['high', 'low', 'mid']
    report, data = _report(runs)
    assert os.path.isfile(os.path.join(report.uri, 'report.html'))
    matrix = data['confusion']['matrix']
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == data['overall']['examples'] > 0
    # ErrorAnalysis sliced on the columns, never on the label.
    features = {v['feature'] for v in data['slices']['feature_values']}
    assert features <= {'age', 'income', 'city', 'plan', 'visits', 'rating'}
    assert 'city' in features


def test_string_label_csv_is_sliced_by_low_cardinality_columns(customers_run):
    from blindspot.error_analysis.beam.tfma_metrics import sliced_metrics

    _, runs = customers_run
    rows = sliced_metrics(metadata.output_artifact(runs, 'Evaluator', 'evaluation').uri)
    sliced_on = {tuple(r['features']) for r in rows}
    # The label, then the columns with the fewest values: plan (2), city and rating (5 each);
    # visits (0..6) is left to ErrorAnalysis, and numbers (age, income) are not sliced.
    assert F.MAX_TFMA_SLICE_COLUMNS == 4
    assert {('city',), ('plan',), ('rating',), ('spend',), ()} == sliced_on


def test_tfma_slices_the_label_then_the_columns_with_fewest_values():
    distinct = {'a': 9, 'b': 2, 'y': 3, 'c': 9, 'd': 4, 'e': 20}
    assert F.tfma_slice_columns(list(distinct), distinct, 'y') == ['y', 'b', 'd', 'a']
    assert F.tfma_slice_columns(['a', 'b'], distinct, 'y') == ['b', 'a']


def test_binary_csv_folder_with_curated_schema(sensors_run):
    config, runs = sensors_run
    assert dataset_for(config).pipeline_name == 'blindspot-csv-data-failed'
    executed = {name: r.state for name, r in runs.items() if 'resolver' not in name}
    assert set(executed) == COMPONENTS | {'ImportSchemaGen'}
    assert set(executed.values()) == {'COMPLETE'}
    assert sorted(_class_names(runs)) == ['0', '1']
    _, data = _report(runs)
    assert len(data['confusion']['matrix']) == 2
    assert data['overall']['accuracy'] > 0.6


# --- bad input: refused before TFX starts, one line, nothing in ML Metadata ---------------


def _refused(tmp_path, capsys, *args):
    out = tmp_path / 'out'
    status = local_runner.run(
        local_runner.parse_args(['--pipeline', 'csv', '--output-dir', str(out), *args])
    )
    err = capsys.readouterr().err.strip()
    assert status != 0
    assert not (out / 'metadata.sqlite').exists()
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err
    return lines[0]


def _csv(tmp_path, text, name='data.csv'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _rows(n=30, label=lambda i: 'yes' if i % 3 else 'no'):
    return ''.join(f'{i},{i % 4},{label(i)}\n' for i in range(n))


def test_label_flag_is_required(tmp_path, capsys):
    data = _csv(tmp_path, 'a,b,y\n' + _rows())
    err = _refused(tmp_path, capsys, '--data', data)
    assert '--label' in err and 'a, b, y' in err


def test_data_flag_is_required(tmp_path, capsys):
    assert '--data' in _refused(tmp_path, capsys, '--label', 'y')


def test_unknown_label_lists_the_columns(tmp_path, capsys):
    data = _csv(tmp_path, 'a,b,y\n' + _rows())
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'target')
    assert "no column 'target'" in err and 'a, b, y' in err


def test_label_with_one_class_names_it(tmp_path, capsys):
    data = _csv(tmp_path, 'a,b,y\n' + _rows(label=lambda i: 'yes'))
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert "one value only, 'yes'" in err


def test_empty_file(tmp_path, capsys):
    assert 'is empty' in _refused(tmp_path, capsys, '--data', _csv(tmp_path, ''), '--label', 'y')


def test_header_without_rows(tmp_path, capsys):
    assert 'no rows' in _refused(
        tmp_path, capsys, '--data', _csv(tmp_path, 'a,b,y\n'), '--label', 'y'
    )


def test_binary_file_is_not_csv(tmp_path, capsys):
    path = tmp_path / 'image.csv'
    path.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR' + bytes(range(256)))
    assert 'not a CSV file' in _refused(tmp_path, capsys, '--data', str(path), '--label', 'y')


def test_rows_with_other_column_counts(tmp_path, capsys):
    data = _csv(tmp_path, 'a,b,y\n' + _rows(5) + '1,2,3,yes\n' + _rows(30))
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert 'line 7' in err and '4 values but the header has 3 columns' in err


def test_semicolon_separated_file(tmp_path, capsys):
    data = _csv(tmp_path, 'a;b;y\n' + _rows().replace(',', ';'))
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert "separated by ';'" in err and 'commas' in err


def test_unusable_column_names_say_how_to_fix(tmp_path, capsys):
    data = _csv(tmp_path, 'total amount,2nd,y\n' + _rows())
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert "'total amount' → 'total_amount'" in err and "'2nd' → '_2nd'" in err
    data = _csv(tmp_path, 'label,b,y\n' + _rows(), 'clash.csv')
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert "'label' clash with names the Transform makes (label_xf)" in err


def test_missing_labels_are_refused(tmp_path, capsys):
    data = _csv(
        tmp_path, 'a,b,y\n' + _rows(label=lambda i: '' if i == 4 else 'yes' if i % 2 else 'no')
    )
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert '1 row(s) have no value' in err and 'line 6' in err


def test_few_non_integer_numbers_are_not_classes(tmp_path, capsys):
    # 10 distinct values: classes by default (more than 20 would be a number to predict).
    data = _csv(tmp_path, 'a,b,y\n' + _rows(label=lambda i: f'{i % 10 / 7:.3f}'))
    err = _refused(tmp_path, capsys, '--data', data, '--label', 'y')
    assert 'non-integer numbers' in err and '--task regression' in err


def test_folder_with_differing_headers(tmp_path, capsys):
    (tmp_path / 'd').mkdir()
    _csv(tmp_path / 'd', 'a,b,y\n' + _rows(), 'one.csv')
    _csv(tmp_path / 'd', 'a,c,y\n' + _rows(), 'two.csv')
    err = _refused(tmp_path, capsys, '--data', str(tmp_path / 'd'), '--label', 'y')
    assert 'differs' in err


def test_too_few_rows_and_missing_schema(tmp_path, capsys):
    assert 'at least' in _refused(
        tmp_path, capsys, '--data', _csv(tmp_path, 'a,b,y\n' + _rows(5)), '--label', 'y'
    )
    data = _csv(tmp_path, 'a,b,y\n' + _rows(), 'ok.csv')
    err = _refused(
        tmp_path, capsys, '--data', data, '--label', 'y', '--schema', str(tmp_path / 'nope.pbtxt')
    )
    assert 'schema file' in err and 'does not exist' in err


def test_csv_options_apply_to_the_csv_pipeline_only(tmp_path, capsys):
    status = local_runner.run(
        local_runner.parse_args(['--label', 'y', '--output-dir', str(tmp_path / 'out')])
    )
    assert status != 0 and '--label applies to the csv pipeline only' in capsys.readouterr().err


# --- the scan itself --------------------------------------------------------------------


def test_scan_infers_types_like_csv_example_gen_and_reads_na_tokens_as_missing(tmp_path):
    text = 'n,x,t,na,word,empty,y\n' + ''.join(
        f'{i},{i / 2},{"abc"[i % 3]},{"NA" if i % 5 == 0 else i},'
        f'{"big" if i % 5 == 0 else i},,{i % 3}\n'
        for i in range(40)
    )
    scan = preflight.scan_csv(_csv(tmp_path, '\ufeff' + text), 'y')
    assert scan.columns[0] == 'n'  # a byte-order mark is not part of the name
    assert scan.types == {
        'n': 'int',
        'x': 'float',
        't': 'string',
        'na': 'int',  # 'NA' is a missing value
        'word': 'string',  # 'big' is not
        'empty': 'empty',
        'y': 'int',
    }
    assert scan.rows == 40 and scan.missing['empty'] == 40 and scan.missing['na'] == 8
    assert scan.missing_tokens == {'na': ('NA',)}
    assert scan.label_classes == {'0': 14, '1': 13, '2': 13}
    assert scan.feature_columns() == ['n', 'x', 't', 'na', 'word']
    assert scan.low_cardinality_columns(F.LOW_CARDINALITY) == ['t', 'y']
    # Every value, most rows first, for the Transform to map without a vocabulary pass.
    assert scan.values['t'] == ('a', 'b', 'c') and scan.values['y'] == ('0', '1', '2')
    assert 'NA' not in scan.values['na'] and len(scan.values['na']) == 32
    assert (
        "column 'na' has 'NA' in 8 row(s) among 32 numbers: read as missing values, so it "
        'stays a number'
    ) in scan.notes
    assert any("'word' is read as text because of 'big'" in note for note in scan.notes)
    assert any("'empty' is empty in every row" in note for note in scan.notes)


def test_scan_keeps_the_values_of_columns_with_at_most_vocab_top_k_of_them(tmp_path):
    rows = F.VOCAB_TOP_K + 50
    text = 'wide,narrow,y\n' + ''.join(f'w{i},{"pq"[i % 7 == 0]},{i % 2}\n' for i in range(rows))
    scan = preflight.scan_csv(_csv(tmp_path, text), 'y')
    assert 'wide' not in scan.values and scan.distinct['wide'] == F.VOCAB_TOP_K + 1
    assert scan.values['narrow'] == ('p', 'q') and scan.distinct['narrow'] == 2


def test_data_is_copied_to_a_folder_named_by_its_content(tmp_path):
    from blindspot.pipelines.csv import data

    source = Path(_csv(tmp_path, '\ufeffa,y\n1,2\n'))
    first = data.prepare(str(tmp_path / 'out'), [source])
    assert data.prepare(str(tmp_path / 'out'), [source]) == first
    assert (Path(first) / 'data.csv').read_bytes() == b'a,y\n1,2\n'  # without the BOM
    source.write_text('a,y\n1,3\n')
    assert data.prepare(str(tmp_path / 'out'), [source]) != first
    source.write_text('a,y\nNA,3\n4,"x,y"\n')
    blanked = data.prepare(str(tmp_path / 'out'), [source], {'a': ('NA',)})
    assert (Path(blanked) / 'data.csv').read_text() == 'a,y\n,3\n4,"x,y"\n'
    assert data.prepare(str(tmp_path / 'out'), [source]) != blanked


def test_run_config_builds_the_csv_dataset(tmp_path):
    data = write_customers(tmp_path / 'c.csv', rows=100)
    dataset = dataset_for(RunConfig(pipeline='csv', data_root=str(data), label='spend'))
    assert dataset.schema_path is None and dataset.label_key == F.LABEL_KEY
    assert dataset.slice_features == ('age', 'income', 'city', 'plan', 'visits', 'rating')
    *column_notes, tfma_note = dataset.notes
    assert [n.split("'")[1] for n in column_notes] == ['notes', 'rating']
    assert tfma_note == (
        'TFMA slices by spend, plan, city, rating; other columns with few values (visits) are '
        'left to ErrorAnalysis, which searches every column'
    )
    # rating: integers 1..5 with 'NA' read as missing, so a small integer category.
    assert dataset.transform_config['categorical'] == ['visits', 'rating']
    assert dataset.transform_config['ignore'] == ['notes']
    vocabularies = dataset.transform_config['vocabularies']  # categories the scan saw in full
    assert sorted(vocabularies) == ['city', 'plan', 'rating', 'visits']
    assert 'NA' not in vocabularies['rating'] and len(vocabularies['rating']) <= 5
    assert sorted(dataset.transform_config['label_classes']) == ['high', 'low', 'mid']


def test_scan_notes_classes_with_very_few_rows(tmp_path):
    classes = ['a'] * 30 + ['b'] * 10 + ['c'] * 2
    text = 'x,y\n' + ''.join(f'{i},{label}\n' for i, label in enumerate(classes))
    scan = preflight.scan_csv(_csv(tmp_path, text), 'y')
    rare = [note for note in scan.notes if 'fewer than' in note]
    assert rare == [
        f"the label 'y' has classes with fewer than {preflight.RARE_CLASS_ROWS} of the 42 rows: "
        "'c' (2 rows); the model can hardly learn them and the evaluation will hold few of "
        'them (add examples, or merge or drop those classes)'
    ]
