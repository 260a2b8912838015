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
