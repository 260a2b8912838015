"""The csv pipeline's data where it lies (gs://, or a local path for a local Kubeflow run), read
through TFX's file system layer (tf.io.gfile), never copied: what the Kubeflow compiler samples
and the compiled pipeline's CsvPreflight step reads in full.

Locally the data is copied into a folder named by its content (pipelines/csv/data.py), so the
cache follows the content. Here the compiled spec carries a fingerprint of the files instead
(their names, sizes and modification times, what TFX's own ExampleGen driver fingerprints):
CsvExampleGen's parameters hold it, so open-source KFP's cache key (parameters, input artifact
ids, image, args) changes with the data; the CsvPreflight step, never cached, computes it again
at run time and refuses to go on when the files changed after compiling."""

import contextlib
import dataclasses
import hashlib
import io
import os
import posixpath
from typing import Any, BinaryIO, Dict, Iterator, List, Mapping, Optional, Tuple

from blindspot.pipelines import preflight
from blindspot.pipelines.preflight import PreflightError

# Which files of a folder CsvExampleGen reads: the same pattern is listed here and compiled
# into its input_config, so the preflight reads exactly the files ExampleGen will.
FOLDER_PATTERN = '*.csv'


@dataclasses.dataclass(frozen=True)
class CsvSource:
    """CSV file(s) at a URI, as CsvExampleGen reads them: a folder and a file pattern in it."""

    uri: str  # as given: a file or a folder
    input_base: str  # the folder
    pattern: str  # the file name, or FOLDER_PATTERN
    files: Tuple[str, ...]  # sorted

    @property
    def name(self) -> str:
        """The file's name without extension, or the folder's name: names the pipeline."""
        if self.pattern == FOLDER_PATTERN:
            return posixpath.basename(self.input_base.rstrip('/'))
        return posixpath.splitext(self.pattern)[0]

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the files (no content is read)."""
        digest = hashlib.sha256()
        for path in self.files:
            size, mtime_ns = _size_and_mtime(path)
            digest.update(f'{posixpath.basename(path)}\0{size}\0{mtime_ns}\0'.encode())
        return digest.hexdigest()[:16]

    def scan(
        self, label: str, task: Optional[str] = None, max_rows: Optional[int] = None
    ) -> preflight.CsvScan:
        """The preflight scan of the files (the first `max_rows` rows only, if given); `task`
        as preflight.scan_csv takes it."""
        return preflight.scan_csv_files(
            self.files, label, task, open_binary=open_binary, max_rows=max_rows
        )

    def header(self) -> List[str]:
        """The first file's header (for messages before a scan)."""
        import csv

        with io.TextIOWrapper(open_binary(self.files[0]), encoding='utf-8-sig', newline='') as f:
            return next(csv.reader(f), [])


def _size_and_mtime(path: str) -> Tuple[int, int]:
    """A file's size and modification time in ns. tf.io.gfile's local stat keeps whole
    seconds only, so an edit within the second of the last one would go unseen: local paths
    use os.stat's nanoseconds, other file systems gfile's."""
    if '://' not in path:
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    from tfx.dsl.io import fileio

    stat = fileio.stat(path)
    return stat.length, stat.mtime_nsec


class _GFileReader(io.RawIOBase):
    """A tf.io.gfile file as the raw stream io.TextIOWrapper and csv need (GFile has no
    readable() or readinto())."""

    def __init__(self, gfile: Any):
        self._gfile = gfile

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._gfile.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gfile.close()
        super().close()


def open_binary(path: str) -> BinaryIO:
    from tfx.dsl.io import fileio

    return io.BufferedReader(_GFileReader(fileio.open(path, 'rb')), buffer_size=1 << 20)


def locate(uri: str, input_base: Optional[str] = None, pattern: Optional[str] = None) -> CsvSource:
    """The CSV file, or the .csv files of a folder, at `uri`; or (input_base and pattern given,
    as compiled into the spec) the files matching them. PreflightError if there are none."""
    from tfx.dsl.io import fileio

    uri = uri.rstrip('/')
    if input_base is None:
        if fileio.isdir(uri):
            input_base, pattern = uri, FOLDER_PATTERN
        elif fileio.exists(uri):
            input_base, pattern = posixpath.split(uri)
            if any(c in pattern for c in '*?['):
                raise PreflightError(
                    f"data file {uri}: its name has one of '*?[', which CsvExampleGen would read "
                    'as a pattern: rename it'
                )
        else:
            raise PreflightError(
                f'data path {uri} does not exist: pass --data with a CSV file or a folder of CSV '
                'files (check the bucket, the path, and that this machine may read them)'
            )
    files = tuple(sorted(fileio.glob(posixpath.join(input_base, pattern))))
    if not files:
        raise PreflightError(
            f'no {pattern} files in {input_base}: pass --data with a CSV file or a folder of .csv '
            'files with a header row'
        )
    return CsvSource(uri=uri, input_base=input_base, pattern=pattern, files=files)


def expectations(scan: preflight.CsvScan) -> Dict[str, Any]:
    """What the compiled pipeline assumes about the data (its Transform, Trainer and slices
    are built from it), for the CsvPreflight step to check against the full data."""
    return {
        'task': scan.task,  # the full data is scanned for the same task
        'columns': list(scan.columns),
        'types': dict(scan.types),
        'label_classes': sorted(scan.label_classes),
        'missing_tokens': {c: sorted(t) for c, t in scan.missing_tokens.items()},
        'sample_rows': scan.rows,
    }


def check_expectations(scan: preflight.CsvScan, expected: Mapping[str, Any]) -> None:
    """PreflightError when the full data contradicts the sample the spec was compiled from:
    other columns, a column of another type, cells like 'NA' that CsvExampleGen is not told to
    read as missing, or label classes the sample did not have."""
    fix = (
        f'the spec was compiled from the first {expected["sample_rows"]} rows: compile again '
        '(python -m blindspot.kubeflow.runner ... --sample-rows N with N covering them, or 0 for '
        'every row)'
    )
    if list(scan.columns) != list(expected['columns']):
        raise PreflightError(
            f'the columns are {", ".join(scan.columns)}, not those the spec was compiled with '
            f'({", ".join(expected["columns"])}): compile it again for this data'
        )
    changed = [
        f"'{c}' is {scan.types[c]} (in the sample: {t})"
        for c, t in expected['types'].items()
        if scan.types[c] != t
    ]
    if changed:
        raise PreflightError(f'column {"; ".join(changed)} over all rows: {fix}')
    tokens = [
        f'{", ".join(map(repr, sorted(set(t) - set(expected["missing_tokens"].get(c, ())))))} '
        f"in column '{c}'"
        for c, t in scan.missing_tokens.items()
        if set(t) - set(expected['missing_tokens'].get(c, ()))
    ]
    if tokens:
        raise PreflightError(f'{"; ".join(tokens)} (missing values) past the sample: {fix}')
    new = sorted(set(scan.label_classes) - set(expected['label_classes']))
    if new:
        shown = ', '.join(f"'{c}' ({scan.label_classes[c]} rows)" for c in new[:5])
        raise PreflightError(
            f"the label '{scan.label}' has classes the sample did not have: {shown}; {fix}"
        )


@contextlib.contextmanager
def read_errors(uri: str) -> Iterator[None]:
    """File system errors (no such bucket, no permission, no network) as one PreflightError
    line naming the data."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.OpError, OSError) as e:
        message = ' '.join(
            str(getattr(e, 'message', None) or getattr(e, 'strerror', None) or e).split()
        )
        raise PreflightError(
            f'cannot read the data at {uri}: {message[:300]} (check the path and that this '
            'machine, and the pipeline pods, may read it)'
        ) from None
