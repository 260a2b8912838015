"""The csv pipeline's data step: the user's CSV file(s) copied into a folder named by a hash
of their content, the input of CsvExampleGen.

CsvExampleGen reads a folder (every file in it), and its cache sees file paths and times, not
contents: a folder per content lets a single file work, keeps stray files out, and makes the
cache follow the data. Cells like 'NA' in numeric columns (preflight.MISSING_TOKENS) are
written as empty cells, so CsvExampleGen reads those columns as numbers with missing values."""

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from blindspot.csv_example_gen import column_kinds

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


def _copy_without_tokens(
    source: Path, target: Path, missing_tokens: Dict[str, Tuple[str, ...]]
) -> None:
    """A copy with the given tokens of the given columns as empty cells (and no BOM)."""
    with open(source, newline='', encoding='utf-8-sig') as src:
        with open(target, 'w', newline='', encoding='utf-8') as dst:
            reader, writer = csv.reader(src), csv.writer(dst, lineterminator='\n')
            header = next(reader)
            writer.writerow(header)
            blank = column_kinds.token_blanker(header, missing_tokens)
            for row in reader:
                writer.writerow(blank(row))


def prepare(
    output_dir: str,
    files: Sequence[Path],
    missing_tokens: Optional[Dict[str, Tuple[str, ...]]] = None,
) -> str:
    """OUTPUT_DIR/data/csv/<content hash>/ holding a copy of each file; written once.
    `missing_tokens`: column -> cells to write as empty (the folder's name covers them)."""
    key = content_key(files)
    if missing_tokens:
        rewrite = json.dumps(sorted((c, sorted(t)) for c, t in missing_tokens.items()))
        key += '-' + hashlib.sha256(rewrite.encode()).hexdigest()[:8]
    folder = Path(output_dir) / 'data' / 'csv' / key
    if not folder.is_dir():
        partial = folder.with_name(folder.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for path in files:
            if missing_tokens:
                _copy_without_tokens(path, partial / path.name, missing_tokens)
            else:
                _copy_without_bom(path, partial / path.name)
        partial.rename(folder)
    return str(folder)
