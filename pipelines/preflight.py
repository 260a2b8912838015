"""Checks that run before TFX starts, so bad input fails fast and writes nothing."""
import csv
import os
import tempfile
from pathlib import Path
from typing import Iterable, List


class PreflightError(ValueError):
    """A one-line problem with the run's input, naming the fix."""


def check_data_root(data_root: str, required_columns: Iterable[str]) -> List[Path]:
    """The CSV files under `data_root`; an error if there are none or a file lacks a column."""
    root = Path(data_root)
    if not root.exists():
        raise PreflightError(f'data path {root} does not exist: pass --data-root with a folder '
                             'of CSV files (or leave it out to use the packaged sample)')
    if not root.is_dir():
        raise PreflightError(f'data path {root} is a file: CsvExampleGen reads a folder; '
                             'move the CSV into its own folder and pass that folder')
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == '.csv')
    if not files:
        raise PreflightError(f'no .csv files in {root}: put the data there as CSV with a header')
    required = list(required_columns)
    for path in files:
        with open(path, newline='', encoding='utf-8', errors='replace') as f:
            header = next(csv.reader(f), [])
            has_row = next(f, None) is not None
        missing = [c for c in required if c not in header]
        if missing:
            raise PreflightError(
                f"{path} lacks the column(s) {', '.join(missing)} the label is computed from; "
                f"its header has: {', '.join(header[:20]) or '(nothing)'}")
        if not has_row:
            raise PreflightError(f'{path} has a header but no rows: add data or remove the file')
    return files


def check_tfrecord_root(data_root: str) -> str:
    """A folder of TFRecord files of tf.Examples, as ImportExampleGen reads."""
    root = Path(data_root)
    if not root.is_dir():
        raise PreflightError(f'data path {root} is not a folder: pass --data-root with a folder '
                             'of TFRecord files (or leave it out to use the packaged data)')
    if not any(p.is_file() and p.stat().st_size > 0 for p in root.iterdir()):
        raise PreflightError(f'no data files in {root}: write TFRecords of tf.Examples there')
    return str(root)


def check_output_dir(output_dir: str) -> None:
    """The output folder exists (or can be made) and is writable."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise PreflightError(f'cannot write to output folder {path} ({e.strerror}): '
                             'choose another with --output-dir') from None
    if not os.access(path, os.W_OK):
        raise PreflightError(f'output folder {path} is not writable: '
                             'choose another with --output-dir')
