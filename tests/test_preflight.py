"""Bad input is refused before TFX starts, with one clear line and nothing in ML Metadata."""

import os

import pytest

import local_runner
from tests.conftest import write_sample


def _run(capsys, *args):
    status = local_runner.run(local_runner.parse_args(list(args)))
    return status, capsys.readouterr().err


def test_missing_data_path(tmp_path, capsys):
    status, err = _run(
        capsys, '--data-root', str(tmp_path / 'nope'), '--output-dir', str(tmp_path / 'out')
    )
    assert status != 0
    assert 'does not exist' in err and '--data-root' in err
    assert not os.path.exists(tmp_path / 'out' / 'metadata.sqlite')


def test_csv_without_label_columns(tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'rides.csv').write_text('fare,trip_miles\n12.5,3.1\n')
    status, err = _run(capsys, '--data-root', str(data), '--output-dir', str(tmp_path / 'out'))
    assert status != 0
    assert 'tips' in err and 'lacks the column' in err
    assert not os.path.exists(tmp_path / 'out' / 'metadata.sqlite')


def test_folder_without_csv(tmp_path, capsys):
    (tmp_path / 'data').mkdir()
    status, err = _run(
        capsys, '--data-root', str(tmp_path / 'data'), '--output-dir', str(tmp_path / 'out')
    )
    assert status != 0 and 'no .csv files' in err


def test_output_dir_not_writable(tmp_path, capsys):
    data = write_sample(tmp_path / 'data', rows=10)
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    status, err = _run(capsys, '--data-root', str(data), '--output-dir', str(blocker / 'out'))
    assert status != 0
    assert 'cannot write to output folder' in err and '--output-dir' in err


def test_flags_are_checked(capsys):
    with pytest.raises(SystemExit):
        local_runner.parse_args(['--train-steps', '0'])
    assert '--train-steps' in capsys.readouterr().err


def test_split_names_are_the_examples_splits():
    from blindspot.pipelines import preflight

    preflight.check_splits(['eval', 'train'])
    with pytest.raises(preflight.PreflightError, match="did you mean 'train'"):
        preflight.check_splits(['eval', 'trian'])


def test_slice_feature_may_be_raw_or_a_transform_output():
    from blindspot.pipelines import preflight

    preflight.check_slice_features(['hour', 'miles_xf'], ['hour', 'miles'], ['miles_xf'], 'x')
    with pytest.raises(preflight.PreflightError, match="'hours'.*did you mean 'hour'.*CSV"):
        preflight.check_slice_features(['hours'], ['hour', 'miles'], [], 'the CSV header')


def test_beam_args_are_parsed_by_beams_own_options():
    """Options of any of Beam's option groups pass (the --runner X form too); an unknown
    option or a bad value is refused, where Beam would only log and drop it."""
    from blindspot.pipelines import preflight

    preflight.check_beam_args(
        ['--runner', 'FlinkRunner', '--flink_master=host:8081', '--direct_num_workers=3']
    )
    with pytest.raises(preflight.PreflightError, match='did you mean --flink_master'):
        preflight.check_beam_args(['--flink_mastr=host:8081'])
    with pytest.raises(preflight.PreflightError, match="invalid int value: 'two'"):
        preflight.check_beam_args(['--direct_num_workers=two'])


def test_sweep_removes_staging_and_incomplete_versions(tmp_path):
    """What a killed push leaves: a staging folder, a version without saved_model.pb (the stock
    Pusher copies it last); a complete version stays."""
    from blindspot.pipelines import push

    complete, partial, staging = tmp_path / '100', tmp_path / '200', tmp_path / '.pushing-ab'
    for folder in (complete, partial, staging):
        (folder / 'variables').mkdir(parents=True)
    (complete / 'saved_model.pb').write_bytes(b'model')
    assert push.sweep(str(tmp_path)) == [str(staging), str(partial)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['100']
