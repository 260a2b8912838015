"""Checks that run before TFX starts, so bad input fails fast and writes nothing."""

import contextlib
import csv
import dataclasses
import difflib
import functools
import io
import math
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import (
    Any,
    BinaryIO,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NoReturn,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import blindspot.error_analysis as error_analysis
from blindspot.csv_example_gen import column_kinds as K
from blindspot.pipelines import layout

_NAMES_SHOWN = 30


class PreflightError(ValueError):
    """A one-line problem with the run's input, naming the fix."""


def check_data_root(data_root: str, required_columns: Iterable[str]) -> List[Path]:
    """The CSV files under `data_root`; an error if there are none or a file lacks a column."""
    root = Path(data_root)
    if not root.exists():
        raise PreflightError(
            f'data path {root} does not exist: pass --data-root with a folder '
            'of CSV files (or leave it out to use the packaged sample)'
        )
    if not root.is_dir():
        raise PreflightError(
            f'data path {root} is a file: CsvExampleGen reads a folder; '
            'move the CSV into its own folder and pass that folder'
        )
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
                f'{path} lacks the column(s) {", ".join(missing)} the label is computed from; '
                f'its header has: {", ".join(header[:20]) or "(nothing)"}'
            )
        if not has_row:
            raise PreflightError(f'{path} has a header but no rows: add data or remove the file')
    return files


def check_tfrecord_root(data_root: str) -> str:
    """A folder of TFRecord files of tf.Examples, as ImportExampleGen reads."""
    root = Path(data_root)
    if not root.is_dir():
        raise PreflightError(
            f'data path {root} is not a folder: pass --data-root with a folder '
            'of TFRecord files (or leave it out to use the packaged data)'
        )
    if not any(p.is_file() and p.stat().st_size > 0 for p in root.iterdir()):
        raise PreflightError(f'no data files in {root}: write TFRecords of tf.Examples there')
    return str(root)


def check_tags_file(tags_file: str) -> Set[str]:
    """The tags in the tags file (if any), which must exist and parse; the tag rules' syntax
    was checked with the settings."""
    if not tags_file:
        return set()
    path = Path(tags_file)
    if not path.is_file():
        raise PreflightError(
            f'tags file {path} does not exist: pass --tags with the '
            'filled-in review sheet (or another CSV of tags)'
        )
    try:
        tags = error_analysis.parse_tags_csv(
            path.read_text(encoding='utf-8', errors='replace'), str(path)
        )
    except error_analysis.TagsFileError as e:
        raise PreflightError(str(e)) from None
    return {tag for example_tags, _ in tags.values() for tag in example_tags}


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    shown = ', '.join(names[:_NAMES_SHOWN])
    return shown + (f' ... ({len(names)} in all)' if len(names) > _NAMES_SHOWN else '')


def check_tag_rules(
    rules: Sequence[str], features: Sequence[str], transformed: Sequence[str], source: str
) -> None:
    """Every feature a tag rule reads is a raw feature (`features`, from `source`: the schema
    or the CSV header) or one the Transform outputs (`transformed`): else the run would fail
    in ErrorAnalysis, after training."""
    known = set(features) | set(transformed)
    for rule in error_analysis.parse_rules(rules):
        unknown = sorted(rule.features - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise PreflightError(
                f"tag rule '{rule.name}' reads unknown feature(s) {', '.join(unknown)}{hint}; "
                f'the features in {source} are: {_listing(sorted(features))}'
                + (f'; Transform outputs: {_listing(sorted(transformed))}' if transformed else '')
            )


def check_slice_features(
    requested: Sequence[str], features: Sequence[str], transformed: Sequence[str], source: str
) -> None:
    """Every --slice-feature is a raw feature (`features`, from `source`) or a Transform
    output, as ErrorAnalysis reads them: else the run would fail there, after training."""
    known = set(features) | set(transformed)
    for name in requested:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise PreflightError(
            f"--slice-feature '{name}' is not a feature{hint}; the features in {source} are: "
            f'{_listing(sorted(features))}'
            + (f'; Transform outputs: {_listing(sorted(transformed))}' if transformed else '')
        )


def check_splits(splits: Sequence[str]) -> None:
    """Every --split is a split ExampleGen makes (else ErrorAnalysis fails after training)."""
    from blindspot.pipelines.config import SPLITS

    for split in splits:
        if split not in SPLITS:
            close = difflib.get_close_matches(split, SPLITS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ''
            raise PreflightError(
                f"--split '{split}' is not a split of the examples: {hint}they are split "
                f'into {" and ".join(SPLITS)}'
            )


class _BeamOptionError(Exception):
    pass


def check_beam_args(beam_args: Sequence[str]) -> None:
    """Every --beam-arg is an option Beam knows, with a value it accepts, parsed the way
    Beam's PipelineOptions parses them (every PipelineOptions subclass's flags): Beam itself
    only logs unknown options and runs without them."""
    for i, arg in enumerate(beam_args):
        follows_option = i > 0 and beam_args[i - 1].startswith('--') and '=' not in beam_args[i - 1]
        if not arg.startswith('--') and not follows_option:
            raise PreflightError(
                f"--beam-arg '{arg}' is not a Beam option: give one option per --beam-arg, "
                'as --beam-arg=--name=value'
            )
    if not beam_args:
        return
    import warnings

    with warnings.catch_warnings():  # google-api-core's Python-version notices, at import
        warnings.simplefilter('ignore', FutureWarning)
        from apache_beam.options import pipeline_options

    class Parser(pipeline_options._BeamArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise _BeamOptionError(message)

    parser = Parser(allow_abbrev=False)
    for options in {str(c): c for c in pipeline_options.PipelineOptions.__subclasses__()}.values():
        options._add_argparse_args(parser)
    try:
        _, unknown = parser.parse_known_args(list(beam_args))
    except _BeamOptionError as e:
        raise PreflightError(f'--beam-arg: Beam refuses the options given: {e}') from None
    unknown = [a for a in unknown if a.startswith('--')]
    if unknown:
        name = unknown[0].split('=', 1)[0]
        known = list(parser._option_string_actions)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f'did you mean {close[0]}?' if close else 'fix or remove it'
        raise PreflightError(
            f'--beam-arg {unknown[0]}: Beam has no option {name} (it would ignore it without '
            f'a word): {hint}'
        )


def check_tag_references(
    references: Mapping[str, float], rules: Sequence[str], file_tags: Set[str], tags_file: str
) -> None:
    """Every --tag-reference names a tag that exists: a rule's name or a tag in the tags file
    (a misspelt tag would otherwise be ignored without a word)."""
    rule_names = {r.name for r in error_analysis.parse_rules(rules)}
    known = rule_names | file_tags
    for tag in references:
        if tag in known:
            continue
        close = difflib.get_close_matches(tag, sorted(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ''
        where = ['the --tag-rule names'] + ([f'the tags in {tags_file}'] if tags_file else [])
        raise PreflightError(
            f"--tag-reference names tag '{tag}', which is not among {' or '.join(where)}: "
            f'{hint}known tags: {_listing(sorted(known)) or "none (give --tag-rule or --tags)"}'
        )


def schema_feature_names(schema_file: Path) -> List[str]:
    """The feature names of a schema.pbtxt (TFMD's text format; protobuf only, no TensorFlow)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = Path(schema_file)
    if not path.is_file():
        raise PreflightError(
            f'schema file {path} does not exist: pass --schema with a '
            'schema.pbtxt, or leave it out to infer the schema from the data'
        )
    try:
        schema = text_format.Parse(path.read_text(encoding='utf-8'), schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise PreflightError(f'{path} is not a TFMD schema in text format ({e})') from None
    return [f.name for f in schema.feature]


_SQLITE_MAGIC = b'SQLite format 3\x00'
_MLMD_TABLE = 'MLMDEnv'  # ML Metadata's table of its schema version


def check_metadata_store(output_dir: str) -> None:
    """The output folder's metadata.sqlite, if there is one, is an ML Metadata store that
    SQLite can read: a damaged or foreign file gets one line, not an SQL error mid-run."""
    path = Path(output_dir) / layout.METADATA_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return  # none yet (or empty): ML Metadata creates it
    fix = (
        f'move it away (e.g. to {path.name}.bad) to start a new store, or pass another --output-dir'
    )
    with open(path, 'rb') as f:
        if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise PreflightError(
                f'{path} is not an SQLite database (damaged, or not an ML Metadata store): {fix}'
            )
    try:
        with sqlite3.connect(f'file:{path}?mode=ro', uri=True) as connection:
            tables = sorted(
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            )
            check = connection.execute('PRAGMA quick_check').fetchone()[0]
    except sqlite3.OperationalError as e:
        if 'locked' in str(e) or 'busy' in str(e):
            return  # a run is writing it (the run lock then refuses a second run)
        raise PreflightError(f'{path} is a damaged SQLite database ({e}): {fix}') from None
    except sqlite3.DatabaseError as e:
        raise PreflightError(f'{path} is a damaged SQLite database ({e}): {fix}') from None
    if tables and _MLMD_TABLE not in tables:
        raise PreflightError(
            f'{path} is an SQLite database but not an ML Metadata store (its tables: '
            f'{_listing(tables)}): {fix}'
        )
    if check != 'ok':
        raise PreflightError(f'{path} is a damaged SQLite database ({check}): {fix}')


def check_output_dir(output_dir: str) -> None:
    """The output folder exists (or can be made) and is writable."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise PreflightError(
            f'cannot write to output folder {path} ({e.strerror}): choose another with --output-dir'
        ) from None
    if not os.access(path, os.W_OK):
        raise PreflightError(
            f'output folder {path} is not writable: choose another with --output-dir'
        )


# ---------------------------------------------------------------------------------------------
# --pipeline csv: the user's CSV file(s), read once as a stream before anything else runs.

_KIND_NAMES = {K.UNKNOWN: 'empty', K.INT: 'int', K.FLOAT: 'float', K.STRING: 'string'}
_NA_TOKENS_SHOWN = 3  # a numeric column read as text because of at most this many tokens
# Cells that mean "no value" in a column of numbers (compared in lower case): read as missing.
MISSING_TOKENS = frozenset({'na', 'n/a', '#n/a', 'null', 'none', 'missing', '-', '--', '?', '.'})
# A class with fewer training rows than this gets a note: the model can hardly learn it, and
# the evaluation split holds almost none of it to show the failure.
RARE_CLASS_ROWS = 10


@dataclasses.dataclass(frozen=True)
class LabelStats:
    """A numeric label over every row: what a regressor's blessing defaults to (an RMSE no
    better than this standard deviation is no better than predicting the mean)."""

    mean: float
    std: float


@dataclasses.dataclass(frozen=True)
class CsvScan:
    """What one pass over the CSV file(s) found: enough to build the csv pipeline."""

    files: Tuple[Any, ...]  # Paths; for the Kubeflow compiler, URIs (str)
    columns: Tuple[str, ...]
    rows: int
    types: Dict[str, str]  # 'int', 'float', 'string' as CsvExampleGen infers, or 'empty'
    distinct: Dict[str, int]  # distinct values, counted up to VOCAB_TOP_K + 1
    missing: Dict[str, int]  # empty cells
    label: str
    label_classes: Dict[str, int]  # class name, as Transform spells it -> rows ({}: regression)
    notes: Tuple[str, ...]  # things worth a warning, not an error
    # Numeric columns with cells like 'NA' (MISSING_TOKENS): column -> those tokens, read as
    # missing values (rewritten as empty cells when the data is copied for CsvExampleGen).
    missing_tokens: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # Every value of a column with at most VOCAB_TOP_K of them, most rows first (ties by
    # value), as written in the file: the Transform maps them to ids without a vocabulary pass.
    values: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    task: str = 'classification'  # or 'regression': the label is a number to predict
    label_stats: Optional[LabelStats] = None  # regression only

    def feature_columns(self) -> List[str]:
        """Every column but the label, leaving out columns that are empty in every row."""
        return [c for c in self.columns if c != self.label and self.types[c] != 'empty']

    def low_cardinality_columns(self, limit: int) -> List[str]:
        """Columns (label included) with 2..limit distinct values."""
        return [c for c in self.columns if 2 <= self.distinct[c] <= limit]


def _is_float(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def csv_files(data: str) -> List[Path]:
    """The CSV file, or the .csv files of a folder (other files are ignored)."""
    path = Path(data)
    if not path.exists():
        raise PreflightError(
            f'data path {path} does not exist: pass --data with a CSV file or a folder of CSV files'
        )
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == '.csv')
    if not files:
        raise PreflightError(
            f'no .csv files in {path}: pass --data with a CSV file or a folder '
            'of .csv files with a header row'
        )
    return files


def _open_local(path: Path) -> BinaryIO:
    return open(path, 'rb')


def _check_text_file(path: Path, open_binary: Callable[[Any], BinaryIO] = _open_local) -> None:
    with open_binary(path) as f:
        head = f.read(4096)
    if not head.strip():
        raise PreflightError(f'{path} is empty: a CSV needs a header row and data rows')
    if head[:2] == b'\x1f\x8b' or head[:4] == b'PK\x03\x04':
        raise PreflightError(
            f'{path} is compressed (gzip or zip): decompress it and pass the .csv file'
        )
    if b'\x00' in head:
        raise PreflightError(
            f'{path} is not a CSV file: it holds binary data (NUL bytes), not comma-separated text'
        )


def _check_header(path: Path, header: List[str], label: Optional[str]) -> None:
    from blindspot.pipelines.csv import features as F

    if len(header) == 1:
        other = next((d for d in (';', '\t', '|') if d in header[0]), None)
        raise PreflightError(
            f"{path} has a single column ('{header[0][:40]}'): "
            + (
                f'it looks separated by {other!r}, but CsvExampleGen reads comma-separated '
                'values: save it with commas'
                if other
                else 'a CSV needs the label and at least one feature column, separated by commas'
            )
        )
    unnamed = [str(i + 1) for i, c in enumerate(header) if not c.strip()]
    if unnamed:
        raise PreflightError(
            f'{path}: column {", ".join(unnamed)} has no name in the header: '
            'name every column (an unnamed first column is often a saved row '
            'index: drop it)'
        )
    seen, twice = set(), []
    for c in header:
        if c in seen and c not in twice:
            twice.append(c)
        seen.add(c)
    if twice:
        raise PreflightError(
            f'{path}: the header names {", ".join(map(repr, twice))} more than '
            'once: column names must be unique'
        )
    bad = [c for c in header if not F.NAME_PATTERN.match(c)]
    if bad:
        shown = ', '.join(f'{c!r} → {F.suggested_name(c)!r}' for c in bad[:5])
        raise PreflightError(
            f'{path}: {len(bad)} column name(s) cannot be TensorFlow feature names (use only '
            f'letters, digits and _, not starting with a digit): rename them in the header, '
            f'e.g. {shown}{" ..." if len(bad) > 5 else ""}'
        )
    if label is not None and label not in header:
        raise PreflightError(
            f"no column '{label}' (--label) in {path}; its columns are: "
            f'{", ".join(header[:30])}{" ..." if len(header) > 30 else ""}'
        )
    names = F.output_names(header, label)
    taken = {n for n in names if names.count(n) > 1} | (set(names) & set(header))
    clashing = [
        c
        for c in header
        if c in taken
        or (c != label and (F.transformed_name(c) in taken or F.missing_name(c) in taken))
    ]
    if clashing:
        raise PreflightError(
            f'{path}: column(s) {", ".join(map(repr, clashing))} clash with '
            f'names the Transform makes ({", ".join(sorted(taken))}): rename '
            'them'
        )


def read_csv_header(data: str) -> List[str]:
    """The header of the (first) CSV file, checked; for messages before a full scan."""
    path = csv_files(data)[0]
    _check_text_file(path)
    with open(path, newline='', encoding='utf-8-sig', errors='replace') as f:
        return next(csv.reader(f), [])


def scan_csv(data: str, label: str, task: Optional[str] = None) -> CsvScan:
    """Checks the CSV file(s) at `data` for the csv pipeline in one streaming pass (cached
    while the files are unchanged): a one-line PreflightError for anything the pipeline could
    not use. `task` (--task): 'classification', 'regression', or None to decide from the label
    (label_task)."""
    files = csv_files(data)
    stamp = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _scan_csv(stamp, label, task)


@functools.lru_cache(maxsize=8)
def _scan_csv(stamp: Tuple[Tuple[str, int, int], ...], label: str, task: Optional[str]) -> CsvScan:
    return scan_csv_files(tuple(Path(s[0]) for s in stamp), label, task)


def scan_csv_files(
    files: Sequence[Any],
    label: str,
    task: Optional[str] = None,
    open_binary: Callable[[Any], BinaryIO] = _open_local,
    max_rows: Optional[int] = None,
) -> CsvScan:
    """scan_csv over files opened with `open_binary` (any file system: the Kubeflow compiler
    and the compiled pipeline's CsvPreflight step pass tf.io.gfile's). `max_rows`: stop after
    that many data rows (a bounded sample; later files are then not read)."""
    files = tuple(files)
    counts = CsvCounts.start(files[0], label, open_binary)
    for n_file, path in enumerate(files):
        if max_rows is not None and counts.rows >= max_rows:
            files = files[:n_file]
            break
        counts.add_file(path, files[0], task, open_binary, max_rows)
    return counts.finish(files, task)


@dataclasses.dataclass
class CsvCounts:
    """What a pass over CSV rows counted, per column and for the label: one accumulator
    over all files (scan_csv_files), or one per file merged in file order (the Kubeflow
    CsvPreflight step reads files in parallel). Bounded in size: values and classes stop
    being counted past their caps."""

    header: List[str]
    label: str
    rows: int = 0
    kinds: List[int] = dataclasses.field(default_factory=list)
    missing: List[int] = dataclasses.field(default_factory=list)
    values: List[Optional[Dict[str, int]]] = dataclasses.field(default_factory=list)
    numeric: List[int] = dataclasses.field(default_factory=list)
    tokens: List[Optional[Dict[str, int]]] = dataclasses.field(default_factory=list)
    number_kinds: List[int] = dataclasses.field(default_factory=list)  # kind of the numbers
    # Label values -> rows; None past MAX_CLASSES (numbers: a quantity), with the first three.
    classes: Optional[Dict[str, int]] = dataclasses.field(default_factory=dict)
    class_examples: List[str] = dataclasses.field(default_factory=list)  # sorted, first three
    no_label: int = 0
    # (file, line) of the first row without a label, and of the first label that is text
    # (with it): the lowest in file order, so that any merge order finds the same.
    first_no_label: Optional[Tuple[str, int]] = None
    first_text: Optional[Tuple[str, int, str]] = None
    numbers: '_Moments' = dataclasses.field(default_factory=lambda: _Moments())

    @classmethod
    def start(
        cls, first_file: Any, label: str, open_binary: Callable[[Any], BinaryIO] = _open_local
    ) -> 'CsvCounts':
        """Empty counts for files with the first file's header, which is checked here."""
        return cls.empty(_first_header(first_file, label, open_binary), label)

    @classmethod
    def empty(cls, header: List[str], label: str) -> 'CsvCounts':
        """Empty counts for files with this (checked) header."""
        n = len(header)
        return cls(
            header=header,
            label=label,
            kinds=[K.UNKNOWN] * n,
            missing=[0] * n,
            values=[{} for _ in range(n)],
            numeric=[0] * n,
            tokens=[{} for _ in range(n)],
            number_kinds=[K.UNKNOWN] * n,
        )

    def add_file(
        self,
        path: Any,
        first_file: Any,
        task: Optional[str] = None,
        open_binary: Callable[[Any], BinaryIO] = _open_local,
        max_rows: Optional[int] = None,
    ) -> None:
        """Counts the rows of one file (up to `max_rows` rows in all); PreflightError for a
        file that is not a CSV with the first file's header and data rows."""
        from blindspot.pipelines.csv import features as F

        _check_text_file(path, open_binary)
        n, li = len(self.header), self.header.index(self.label)
        kinds, missing, values = self.kinds, self.missing, self.values
        numeric, tokens, number_kinds = self.numeric, self.tokens, self.number_kinds
        with _csv_rows(path, open_binary) as reader:
            this_header = next(reader, None)
            if not this_header or not any(c.strip() for c in this_header):
                raise PreflightError(
                    f'{path} has no header row: the first line must name the columns'
                )
            if this_header != self.header:
                raise PreflightError(
                    f'the header of {path} differs from that of {first_file}: every CSV in '
                    'the folder needs the same columns in the same order'
                )
            file_rows = 0
            for row in reader:
                if not row:
                    continue  # blank line: CsvExampleGen skips it too
                if len(row) != n:
                    raise PreflightError(
                        f'{path}, line {reader.line_num}: {len(row)} values but the header '
                        f'has {n} columns: not a well-formed CSV (check the delimiter, and '
                        'quote values that contain commas)'
                    )
                file_rows += 1
                if max_rows is not None and self.rows + file_rows > max_rows:
                    file_rows -= 1
                    break
                for i, cell in enumerate(row):
                    if not cell:
                        missing[i] += 1
                        continue
                    if kinds[i] != K.STRING or tokens[i] is not None:
                        kind = (
                            K.cell_kind(cell)
                            if kinds[i] != K.FLOAT
                            else K.FLOAT
                            if _is_float(cell)
                            else K.STRING
                        )
                        if kind > kinds[i]:
                            kinds[i] = kind
                        if kind == K.STRING:
                            if tokens[i] is not None:
                                tokens[i][cell] = tokens[i].get(cell, 0) + 1
                                if len(tokens[i]) > _NA_TOKENS_SHOWN:
                                    tokens[i] = None  # a text column, not numbers + NA
                        else:
                            numeric[i] += 1
                            number_kinds[i] = max(number_kinds[i], kind)
                    counts = values[i]
                    if counts is not None:
                        counts[cell] = counts.get(cell, 0) + 1
                        if len(counts) > F.VOCAB_TOP_K:
                            values[i] = None
                cell = row[li]
                if not cell:
                    self.no_label += 1
                    here = (str(path), reader.line_num)
                    self.first_no_label = min(self.first_no_label or here, here)
                    continue
                if kinds[li] == K.STRING:
                    here = (str(path), reader.line_num, cell)
                    self.first_text = min(self.first_text or here, here)
                else:
                    self.numbers.add(float(cell))
                if self.classes is not None:
                    self.classes[cell] = self.classes.get(cell, 0) + 1
                    self._cap_classes(task)
            self.rows += file_rows
        if file_rows == 0:
            raise PreflightError(f'{path} has a header but no rows: add data or remove the file')

    def _cap_classes(self, task: Optional[str]) -> None:
        """Past MAX_CLASSES label values: refused for text (or --task classification), else a
        quantity (classes None)."""
        from blindspot.pipelines.csv import features as F

        if self.classes is not None and len(self.classes) > F.MAX_CLASSES:
            self.class_examples = sorted(self.classes)[:3]
            li = self.header.index(self.label)
            if task == 'classification' or self.kinds[li] == K.STRING:
                raise _too_many_classes(self.label, self.class_examples, task)
            self.classes = None

    def merge(self, later: 'CsvCounts', task: Optional[str] = None) -> None:
        """Adds the counts of files that come after these (what add_file on them would)."""
        from blindspot.pipelines.csv import features as F

        if later.header != self.header:
            raise ValueError('counts of files with different headers')
        self.rows += later.rows
        for i in range(len(self.header)):
            self.kinds[i] = max(self.kinds[i], later.kinds[i])
            self.missing[i] += later.missing[i]
            self.numeric[i] += later.numeric[i]
            self.number_kinds[i] = max(self.number_kinds[i], later.number_kinds[i])
            self.values[i] = _merge_capped(self.values[i], later.values[i], F.VOCAB_TOP_K)
            self.tokens[i] = _merge_capped(self.tokens[i], later.tokens[i], _NA_TOKENS_SHOWN)
        self.no_label += later.no_label
        self.first_no_label = min(
            filter(None, (self.first_no_label, later.first_no_label)), default=None
        )
        self.first_text = min(filter(None, (self.first_text, later.first_text)), default=None)
        self.numbers.merge(later.numbers)
        if self.classes is None or later.classes is None:
            self.class_examples = sorted({*self.class_examples, *later.class_examples})[:3]
            self.classes = None
        else:
            for name, rows in later.classes.items():
                self.classes[name] = self.classes.get(name, 0) + rows
        self._cap_classes(task)

    def finish(self, files: Sequence[Any], task: Optional[str] = None) -> CsvScan:
        """The scan of all the files counted: the checks that need every row."""
        from blindspot.pipelines.csv import features as F

        header, label, rows = self.header, self.label, self.rows
        li = header.index(label)
        kinds, missing, values = list(self.kinds), list(self.missing), list(self.values)
        tokens, numeric = self.tokens, self.numeric
        if rows < F.MIN_ROWS:
            raise PreflightError(
                f'only {rows} row(s) of data: the pipeline needs at least '
                f'{F.MIN_ROWS} (a quarter of them are held out for evaluation)'
            )
        if self.no_label:
            raise PreflightError(
                f"{self.no_label} row(s) have no value in the label column '{label}' "
                f'(first on line {self.first_no_label[1]} of {self.first_no_label[0]}): fill '
                'them in or drop those rows'
            )
        classes = self.classes
        if classes is None and kinds[li] == K.STRING:  # numbers at first, text later
            raise _too_many_classes(label, self.class_examples, task)
        distinct = F.MAX_CLASSES + 1 if classes is None else len(classes)
        first_text = self.first_text[2] if self.first_text else ''
        requested, task = task, label_task(label, task, kinds[li], distinct, first_text)
        notes: List[str] = []
        label_stats = None
        if task == 'regression':
            label_stats = _regression_label(label, self.numbers, rows)
            if requested is None:
                notes.append(
                    f"the label '{label}' holds {_distinct_text(distinct)} numbers: the model "
                    'predicts it as a number (regression; --task classification makes them '
                    'classes)'
                )
            classes = {}
        else:
            classes = _label_classes(label, classes, kinds[li])
            if len(classes) == 1:
                only = next(iter(classes))
                raise PreflightError(
                    f"the label '{label}' has one value only, '{only}', in all {rows} "
                    'rows: a classifier needs at least two classes'
                )
            notes += _rare_class_notes(label, classes, rows)
        missing_tokens: Dict[str, Tuple[str, ...]] = {}
        for i, column in enumerate(header):
            if kinds[i] == K.UNKNOWN:
                notes.append(f"column '{column}' is empty in every row: it is left out")
            elif (
                kinds[i] == K.STRING
                and tokens[i]
                and column != label
                and numeric[i] >= sum(tokens[i].values())
            ):
                # Most rows first, then by name: the same whatever order files were read in.
                found = sorted(tokens[i], key=lambda t, n=tokens[i]: (-n[t], t))
                shown = ', '.join(repr(t) for t in found)
                if all(token.lower() in MISSING_TOKENS for token in found):
                    missing_tokens[column] = tuple(found)
                    kinds[i] = self.number_kinds[i]
                    missing[i] += sum(tokens[i].values())
                    if values[i] is not None:
                        values[i] = {v: c for v, c in values[i].items() if v not in tokens[i]}
                    notes.append(
                        f"column '{column}' has {shown} in {sum(tokens[i].values())} row(s) "
                        f'among {numeric[i]} numbers: read as missing values, so it stays a '
                        'number'
                    )
                    continue
                notes.append(
                    f"column '{column}' is read as text because of {shown} in "
                    f'{sum(tokens[i].values())} row(s) (its {numeric[i]} other values are '
                    'numbers): write missing values as empty cells to keep it a number'
                )
        return CsvScan(
            files=tuple(files),
            columns=tuple(header),
            rows=rows,
            types={c: _KIND_NAMES[k] for c, k in zip(header, kinds)},
            distinct={
                c: F.VOCAB_TOP_K + 1 if v is None else len(v) for c, v in zip(header, values)
            },
            missing=dict(zip(header, missing)),
            label=label,
            label_classes=classes,
            task=task,
            label_stats=label_stats,
            notes=tuple(notes),
            missing_tokens=missing_tokens,
            values={
                c: tuple(sorted(v, key=lambda value: (-v[value], value)))
                for c, v in zip(header, values)
                if v is not None
            },
        )


def _first_header(path: Any, label: str, open_binary: Callable[[Any], BinaryIO]) -> List[str]:
    """The first file's header, checked (names, the label among them)."""
    _check_text_file(path, open_binary)
    with _csv_rows(path, open_binary) as reader:
        header = next(reader, None)
    if not header or not any(c.strip() for c in header):
        raise PreflightError(f'{path} has no header row: the first line must name the columns')
    _check_header(path, header, label)
    return header


@contextlib.contextmanager
def _csv_rows(path: Any, open_binary: Callable[[Any], BinaryIO]) -> Iterator[Any]:
    """A csv.reader over the file; text that is not UTF-8 or not CSV as one PreflightError."""
    try:
        with io.TextIOWrapper(open_binary(path), encoding='utf-8-sig', newline='') as f:
            yield csv.reader(f)
    except UnicodeDecodeError as e:
        raise PreflightError(
            f'{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x}): save it as a UTF-8 CSV'
        ) from None
    except csv.Error as e:
        raise PreflightError(f'{path} is not a readable CSV ({e})') from None


def _merge_capped(
    first: Optional[Dict[str, int]], later: Optional[Dict[str, int]], cap: int
) -> Optional[Dict[str, int]]:
    """Two counts of values, None (too many to count) past `cap` distinct values."""
    if first is None or later is None:
        return None
    merged = dict(first)
    for value, count in later.items():
        merged[value] = merged.get(value, 0) + count
    return None if len(merged) > cap else merged


def label_task(
    label: str, requested: Optional[str], kind: int, distinct: int, text_example: str
) -> str:
    """'classification' or 'regression': as --task says (`requested`), else regression for a
    label of numbers with more than NUMERIC_CLASS_LIMIT distinct values. `kind`: the label
    column's cell kind; `distinct`: its distinct values (capped); `text_example`: its first
    cell that is not a number."""
    from blindspot.pipelines.csv import features as F

    if requested == 'regression':
        if kind == K.STRING:
            raise PreflightError(
                f"--task regression predicts numbers, but the label '{label}' holds text "
                f'(e.g. {text_example!r}): pick a column of numbers, or leave --task out to '
                'classify by its values'
            )
        return 'regression'
    if requested == 'classification':
        return 'classification'
    numeric = kind in (K.INT, K.FLOAT)
    return 'regression' if numeric and distinct > F.NUMERIC_CLASS_LIMIT else 'classification'


def _too_many_classes(label: str, examples: Sequence[str], task: Optional[str]) -> PreflightError:
    from blindspot.pipelines.csv import features as F

    shown = ', '.join(examples)
    if task == 'classification':
        return PreflightError(
            f"the label '{label}' has more than {F.MAX_CLASSES} distinct values (e.g. {shown}): "
            f'too many classes for --task classification; leave --task out to predict a '
            'column of numbers as a number'
        )
    return PreflightError(
        f"the label '{label}' holds text with more than {F.MAX_CLASSES} distinct values "
        f'(e.g. {shown}): too many classes; pick a column of class names or ids, or of '
        'numbers to predict'
    )


def _distinct_text(distinct: int) -> str:
    from blindspot.pipelines.csv import features as F

    return f'more than {F.MAX_CLASSES}' if distinct > F.MAX_CLASSES else str(distinct)


class _Moments:
    """Count, mean and sum of squared deviations of a stream of numbers (Welford), with the
    first value that is not finite."""

    def __init__(self):
        self.count, self.mean, self.squares = 0, 0.0, 0.0
        self.non_finite: Optional[float] = None

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            self.non_finite = x if self.non_finite is None else self.non_finite
            return
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.squares += delta * (x - self.mean)

    def merge(self, later: '_Moments') -> None:
        """Adds another stream's moments (Chan et al.'s parallel update)."""
        if self.non_finite is None:
            self.non_finite = later.non_finite
        if later.count == 0:
            return
        count = self.count + later.count
        delta = later.mean - self.mean
        self.squares += later.squares + delta * delta * self.count * later.count / count
        self.mean += delta * later.count / count
        self.count = count


def _regression_label(label: str, numbers: _Moments, rows: int) -> LabelStats:
    """The label's mean and standard deviation; refused when a value is not finite or every
    row holds the same number."""
    if numbers.non_finite is not None:
        raise PreflightError(
            f"the label '{label}' holds {numbers.non_finite} in some row(s): a regressor needs "
            'finite numbers; fix or drop those rows'
        )
    std = math.sqrt(numbers.squares / numbers.count)
    if std == 0:
        raise PreflightError(
            f"the label '{label}' is {numbers.mean:g} in all {rows} rows: there is nothing "
            'to predict; pick a column whose values vary'
        )
    return LabelStats(mean=numbers.mean, std=std)


def _rare_class_notes(label: str, classes: Dict[str, int], rows: int) -> List[str]:
    """A note for the classes of the label with fewer than RARE_CLASS_ROWS rows."""
    rare = sorted((count, name) for name, count in classes.items() if count < RARE_CLASS_ROWS)
    if not rare:
        return []
    listed = ', '.join(f"'{name}' ({count} row{'s' if count > 1 else ''})" for count, name in rare)
    return [
        f"the label '{label}' has classes with fewer than {RARE_CLASS_ROWS} of the {rows} rows: "
        f'{listed}; the model can hardly learn them and the evaluation will hold few of them '
        '(add examples, or merge or drop those classes)'
    ]


def _label_classes(label: str, raw: Dict[str, int], kind: int) -> Dict[str, int]:
    """Class name -> rows, with numbers spelled as Transform spells them (tf.strings.as_string
    of the integer: '01' and '1' are one class)."""
    if kind == K.STRING:
        bad = next((c for c in raw if '\n' in c or '\r' in c), None)
        if bad is not None:
            raise PreflightError(
                f"the label '{label}' has a value with a line break "
                f'({bad[:30]!r}): class names must be on one line'
            )
        return dict(raw)
    classes: Dict[str, int] = {}
    for value, count in raw.items():
        if kind == K.INT:
            name = str(int(value))
        else:
            number = float(value)
            if not math.isfinite(number) or number != int(number):
                raise PreflightError(
                    f"the label '{label}' holds non-integer numbers (e.g. {value}): classes "
                    'must be names or integer ids; pass --task regression to predict it as '
                    'a number'
                )
            name = str(int(number))
        classes[name] = classes.get(name, 0) + count
    return classes


def check_excluded_features(
    excluded: Sequence[str], columns: Sequence[str], label: str
) -> Set[str]:
    """The --exclude-feature columns, each a column of the CSV other than the label."""
    for name in excluded:
        if name == label:
            raise PreflightError(
                f"--exclude-feature '{name}' is the label: the model never reads the label; "
                'drop that --exclude-feature'
            )
        if name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise PreflightError(
                f"--exclude-feature '{name}' is not a column of the data{hint}; its columns "
                f'are: {_listing(columns)}'
            )
    return set(excluded)


def check_csv_schema(schema_file: str, label: str) -> List[str]:
    """The feature names of a curated schema (--schema) for the csv pipeline."""
    path = Path(schema_file)
    names = schema_feature_names(path)
    if label not in names:
        raise PreflightError(f"the schema {path} has no feature '{label}' (--label)")
    return names
