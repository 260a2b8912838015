"""Refusals come before TensorFlow is imported, in one line, in under 3 s; a second run on a
busy output folder is refused naming the run that holds it."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import hold_run_lock, write_sample

REPO = Path(__file__).resolve().parent.parent
REFUSAL_SECONDS = 3.0
# Runs the local runner in a fresh interpreter and fails if the refusal imported TensorFlow.
_PROBE = (
    'import sys, local_runner\n'
    'status = local_runner.run(local_runner.parse_args(sys.argv[1:]))\n'
    "heavy = [m for m in ('tensorflow', 'tfx', 'tensorflow_model_analysis', 'apache_beam')"
    ' if m in sys.modules]\n'
    "assert not heavy, f'imported before refusing: {heavy}'\n"
    'sys.exit(status)\n'
)


def refuse(*args: str):
    """(exit status, stderr, seconds) of a local run in its own process."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, '-c', _PROBE, *args], cwd=REPO, capture_output=True, text=True
    )
    return done.returncode, done.stderr.strip(), time.monotonic() - start


def assert_refused(status: int, err: str, seconds: float, *words: str) -> None:
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    for word in words:
        assert word in err, err
    assert seconds < REFUSAL_SECONDS, f'refusal took {seconds:.1f} s: {err}'


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    return write_sample(tmp_path_factory.mktemp('refusals') / 'data', rows=50)


def test_missing_data_path(tmp_path):
    status, err, seconds = refuse(
        '--data-root', str(tmp_path / 'nope'), '--output-dir', str(tmp_path / 'out')
    )
    assert_refused(status, err, seconds, 'does not exist', '--data-root')
    assert not (tmp_path / 'out' / 'metadata.sqlite').exists()


def test_tag_rule_on_unknown_feature(tmp_path, data):
    status, err, seconds = refuse(
        '--data-root', str(data), '--output-dir', str(tmp_path / 'out'),
        '--tag-rule', 'night: hour >= 22',
    )  # fmt: skip
    assert_refused(status, err, seconds, "tag rule 'night'", 'hour', 'trip_start_hour')
    assert not (tmp_path / 'out' / 'metadata.sqlite').exists()


def test_tag_rule_on_transformed_feature_passes_the_checks(tmp_path, data):
    """A Transform output is a feature a rule may read (ErrorAnalysis computes it); with an
    unknown reference after it, the run still stops before TensorFlow, at the reference."""
    status, err, seconds = refuse(
        '--data-root', str(data), '--output-dir', str(tmp_path / 'out'),
        '--tag-rule', 'far: trip_miles_xf > 1', '--tag-reference', 'near=0.9',
    )  # fmt: skip
    assert_refused(status, err, seconds, "'near'", 'known tags: far')


def test_csv_tag_rule_checked_against_the_header(tmp_path):
    csv = tmp_path / 'rides.csv'
    rows = [f'{i % 7},{i % 3 * 1.5},{"yes" if i % 2 else "no"}' for i in range(40)]
    csv.write_text('hour,miles,tipped\n' + '\n'.join(rows) + '\n')
    status, err, seconds = refuse(
        '--pipeline', 'csv', '--data', str(csv), '--label', 'tipped',
        '--output-dir', str(tmp_path / 'out'), '--tag-rule', 'long: mile > 2',
    )  # fmt: skip
    assert_refused(status, err, seconds, 'mile', 'CSV header', 'hour, miles, tipped')


def test_unknown_tag_reference(tmp_path, data):
    tags = tmp_path / 'tags.csv'
    tags.write_text('example_id,tags\ntaxi-1,rain\ntaxi-2,night;rain\n')
    status, err, seconds = refuse(
        '--data-root', str(data), '--output-dir', str(tmp_path / 'out'), '--tags', str(tags),
        '--tag-rule', 'airport: pickup_community_area == 76', '--tag-reference', 'nite=0.9',
    )  # fmt: skip
    assert_refused(status, err, seconds, "'nite'", "did you mean 'night'", str(tags))


def _write_foreign_store(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / 'metadata.sqlite') as connection:
        connection.execute('CREATE TABLE customers (id INTEGER)')
    return folder / 'metadata.sqlite'


def test_foreign_metadata_store(tmp_path, data):
    store = _write_foreign_store(tmp_path / 'out')
    status, err, seconds = refuse('--data-root', str(data), '--output-dir', str(tmp_path / 'out'))
    assert_refused(status, err, seconds, str(store), 'not an ML Metadata store', 'customers')
    assert 'move it away' in err


def test_corrupted_metadata_store(tmp_path, data):
    (tmp_path / 'out').mkdir()
    store = tmp_path / 'out' / 'metadata.sqlite'
    store.write_bytes(os.urandom(4096))
    status, err, seconds = refuse('--data-root', str(data), '--output-dir', str(tmp_path / 'out'))
    assert_refused(status, err, seconds, str(store), 'not an SQLite database', '--output-dir')


def test_history_names_a_foreign_store(tmp_path):
    store = _write_foreign_store(tmp_path / 'out')
    done = subprocess.run(
        [sys.executable, 'local_runner.py', 'history', '--output-dir', str(tmp_path / 'out')],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    err = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and str(store) in err and 'not an ML Metadata store' in err


def test_busy_output_folder_is_refused(tmp_path, data):
    """A process holding the folder's run lock (as a running pipeline does) makes a second run
    refuse at once, naming the holder's PID and start time."""
    out = tmp_path / 'out'
    holder = hold_run_lock(out)
    try:
        status, err, seconds = refuse('--data-root', str(data), '--output-dir', str(out))
        assert_refused(
            status, err, seconds, f'PID {holder.pid}', 'run 2026-01-02T03:04:05.000001',
            'started 2026-', 'another --output-dir',
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
