"""The csv pipeline's data step: the user's CSV file(s) copied into a folder named by a hash
of their content, the input of CsvExampleGen.

CsvExampleGen reads a folder (every file in it), and its cache sees file paths and times, not
contents: a folder per content lets a single file work, keeps stray files out, and makes the
cache follow the data."""

import hashlib
import shutil
from pathlib import Path
from typing import Sequence

_BOM = b'\xef\xbb\xbf'
_CHUNK = 1 << 20


def content_key(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b'\0')
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(_CHUNK), b''):
                digest.update(chunk)
        digest.update(b'\0')
    return digest.hexdigest()[:12]


def _copy_without_bom(source: Path, target: Path) -> None:
    """CsvExampleGen would read a UTF-8 byte-order mark as part of the first column's name."""
    with open(source, 'rb') as src, open(target, 'wb') as dst:
        head = src.read(len(_BOM))
        if head != _BOM:
            dst.write(head)
        shutil.copyfileobj(src, dst, _CHUNK)


def prepare(output_dir: str, files: Sequence[Path]) -> str:
    """OUTPUT_DIR/data/csv/<content hash>/ holding a copy of each file; written once."""
    folder = Path(output_dir) / 'data' / 'csv' / content_key(files)
    if not folder.is_dir():
        partial = folder.with_name(folder.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for path in files:
            _copy_without_bom(path, partial / path.name)
        partial.rename(folder)
    return str(folder)
