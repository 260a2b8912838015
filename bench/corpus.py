"""Corpus benchmark: the csv pipeline on data nobody tuned it for. Every labelled table that
ships inside a package the project installs (scikit-learn's bundled sets, palmerpenguins,
vega_datasets' local tables), plus generated edge cases, each written to a CSV and run through
`local_runner.py --pipeline csv` in its own output folder. Printed: one row per table with its
accuracy, held findings and whether the report agrees with itself (report/invariants.py,
re-checked on the report.json read back through ML Metadata), then the details of every
table that crashed or broke a rule, with the command that reproduces it; the exit status is 1
when any did. Each run is in this process, one after another, with few training steps.

    python bench/corpus.py                        # make bench-corpus
    python bench/corpus.py --only wine,rows_20 --out /tmp/corpus   # keep the outputs
    python bench/corpus.py --list                 # the tables and where they come from

vega_datasets tables used, each with its class column (the rest have none, or one only by
contrivance: a time series, a two-column table, or fewer rows than the pipeline accepts):
iris/species (scikit-learn's iris with text labels and camelCase names), cars/Origin (an
identifier-like Name, missing numbers, a date), seattle_weather/weather (five imbalanced
classes, a date per row), stocks/symbol (a date and a price only: the date is sliced by its
parts), barley/site (120 rows, text columns), airports/state (56 classes, identifier-like
columns, a nearly constant country; its 12 rows without a state dropped, as the preflight
asks), la_riots/type (63 rows, names and addresses). Generated: no errors, one error, 99:1,
50 classes, categorical-only, numeric-only, constant columns, 20 rows. Regressions (a label of
numbers): scikit-learn's diabetes/target, vega cars/Miles_per_Gallon (both with tag rules on
real columns: their tags ranked in the label's units), and 20 generated rows.
"""

import argparse
import contextlib
import csv
import dataclasses
import glob
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import local_runner  # noqa: E402  (sets TensorFlow's environment before it is imported)
from blindspot.error_analysis import files  # noqa: E402
from blindspot.error_analysis.report.invariants import violations  # noqa: E402
from blindspot.pipelines.csv import features as F  # noqa: E402

TRAIN_STEPS = 200
EVAL_STEPS = 10
SHOWN = 4  # violations listed per table


@dataclasses.dataclass(frozen=True)
class Table:
    """A labelled table: `frame` builds it (deterministically), `label` is the class column."""

    name: str
    label: str
    frame: Callable[[], pd.DataFrame]
    source: str
    flags: Sequence[str] = ()  # more local_runner flags


# --- tables shipped in packages ----------------------------------------------------------


def _usable_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names the pipeline accepts, renamed as its preflight suggests ('mean radius' ->
    'mean_radius'): what a user does after the first refusal."""
    return frame.rename(columns=F.suggested_name)


def sklearn_table(loader: str) -> pd.DataFrame:
    """A scikit-learn bundled set as one table: its feature columns and `target` (class ids)."""
    import sklearn.datasets

    return _usable_names(getattr(sklearn.datasets, loader)(as_frame=True).frame)


def penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


def vega_table(name: str) -> pd.DataFrame:
    """A table vega_datasets ships in its package (local_data: no network)."""
    from vega_datasets import local_data

    return _usable_names(getattr(local_data, name)())


# --- generated edge cases ----------------------------------------------------------------


def separable(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two classes far apart on three numbers (and a text column of noise): a model of a few
    steps makes no mistake."""
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        label = rng.choice(['left', 'right'])
        sign = -1 if label == 'left' else 1
        data.append(
            {
                **{f'x{i}': round(sign * rng.uniform(5, 6), 3) for i in range(3)},
                'colour': rng.choice(['red', 'green', 'blue']),
                'side': label,
            }
        )
    return pd.DataFrame(data)


def eval_rows(path: Path) -> List[int]:
    """The rows of the CSV at `path` (0-based, header not counted) that CsvExampleGen puts in
    the eval split: the split is a hash of each row's serialized tf.Example (3 train buckets,
    1 eval, pipelines/pipeline.py), computed here on the same bytes the executor writes."""
    from tfx.components.example_gen import base_example_gen_executor as base
    from tfx.proto import example_gen_pb2

    from blindspot.csv_example_gen import column_kinds as K
    from blindspot.csv_example_gen.executor import encode_rows

    with open(path, newline='') as f:
        reader = csv.reader(f)
        names = next(reader)
        rows = [row for row in reader if row]
    kinds = K.widen([K.UNKNOWN] * len(names), rows)
    config = example_gen_pb2.SplitConfig()
    return [
        i
        for i, example in enumerate(encode_rows(rows, kinds, names))
        if base._PartitionFn(example, 2, [3, 4], config) == 1
    ]


def one_error(rows: int = 400) -> pd.DataFrame:
    """The separable table with one label flipped, on a row the eval split holds once flipped
    (the label is part of the bytes the split hashes): the model learns the rule from the
    rest, so the analysed split has exactly one mistake."""
    frame = separable(rows)
    flipped = {'left': 'right', 'right': 'left'}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'data.csv'
        for row in range(rows):
            frame.loc[row, 'side'] = flipped[frame.loc[row, 'side']]
            frame.to_csv(path, index=False)
            if row in eval_rows(path):
                return frame
            frame.loc[row, 'side'] = flipped[frame.loc[row, 'side']]
    raise AssertionError('no row lands in the eval split')  # 400 rows: never


def imbalanced(rows: int = 2000, seed: int = 2) -> pd.DataFrame:
    """99:1, the rare class somewhat apart on one number."""
    rng = random.Random(seed)
    data = []
    for i in range(rows):
        rare = i % 100 == 0
        data.append(
            {
                'a': round(rng.gauss(2.0 if rare else 0.0, 1), 3),
                'b': round(rng.gauss(0, 1), 3),
                'shop': rng.choice(['north', 'south', 'east']),
                'outcome': 'fraud' if rare else 'ok',
            }
        )
    return pd.DataFrame(data)


def many_classes(classes: int = 50, per_class: int = 40, seed: int = 3) -> pd.DataFrame:
    """50 classes, each a noisy point in three numbers, plus a text column that hints at it."""
    rng = random.Random(seed)
    centres = [[rng.uniform(-5, 5) for _ in range(3)] for _ in range(classes)]
    data = []
    for c in range(classes):
        for _ in range(per_class):
            data.append(
                {
                    **{f'x{i}': round(centres[c][i] + rng.gauss(0, 0.7), 3) for i in range(3)},
                    'band': f'b{c // 5}' if rng.random() < 0.8 else f'b{rng.randrange(10)}',
                    'kind': f'k{c:02d}',
                }
            )
    return pd.DataFrame(data)


def categorical_only(rows: int = 600, seed: int = 4) -> pd.DataFrame:
    """Text columns only; the label a noisy rule over two of them."""
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        colour = rng.choice(['red', 'green', 'blue', 'grey'])
        size = rng.choice(['S', 'M', 'L'])
        shape = rng.choice(['round', 'square'])
        liked = colour in ('red', 'blue') and size != 'S'
        if rng.random() < 0.1:
            liked = not liked
        data.append(
            {'colour': colour, 'size': size, 'shape': shape, 'liked': 'yes' if liked else 'no'}
        )
    return pd.DataFrame(data)


def numeric_only(rows: int = 600, seed: int = 5) -> pd.DataFrame:
    """Float columns only; three classes by a noisy score."""
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        x = [round(rng.gauss(0, 1), 4) for _ in range(4)]
        score = x[0] + 0.5 * x[1] + rng.gauss(0, 0.4)
        data.append(
            {
                **{f'x{i}': v for i, v in enumerate(x)},
                'grade': 0 if score < -0.5 else 1 if score < 0.5 else 2,
            }
        )
    return pd.DataFrame(data)


def constant_column(rows: int = 400, seed: int = 6) -> pd.DataFrame:
    """A number and a text column with one value in every row, beside useful ones."""
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        x = round(rng.gauss(0, 1), 3)
        data.append(
            {
                'x': x,
                'region': rng.choice(['a', 'b']),
                'version': 7,
                'source': 'import',
                'y': 'high' if x + rng.gauss(0, 0.5) > 0 else 'low',
            }
        )
    return pd.DataFrame(data)


def numbers_only(rows: int = 400, seed: int = 8) -> pd.DataFrame:
    """A number to predict from two numbers and a text column, every value distinct."""
    rng = random.Random(seed)
    x1 = [rng.gauss(0, 1) for _ in range(rows)]
    x2 = [rng.gauss(0, 1) for _ in range(rows)]
    group = [rng.choice('abc') for _ in range(rows)]
    y = [3 * a - b + rng.gauss(0, 0.5) for a, b in zip(x1, x2)]
    return pd.DataFrame({'x1': x1, 'x2': x2, 'group': group, 'y': y})


def twenty_rows() -> pd.DataFrame:
    """The fewest rows the csv preflight accepts (pipelines/csv/features.py MIN_ROWS)."""
    return separable(rows=F.MIN_ROWS, seed=7)


def _vega(name: str, table: str, label: str, why: str) -> Table:
    return Table(name, label, lambda: vega_table(table), f'vega_datasets {table}: {why}')


TABLES: Dict[str, Table] = {
    t.name: t
    for t in [
        Table('iris', 'target', lambda: sklearn_table('load_iris'), 'scikit-learn'),
        Table('wine', 'target', lambda: sklearn_table('load_wine'), 'scikit-learn'),
        Table(
            'breast_cancer', 'target', lambda: sklearn_table('load_breast_cancer'), 'scikit-learn'
        ),
        Table('digits', 'target', lambda: sklearn_table('load_digits'), 'scikit-learn: 8x8 pixels'),
        Table('penguins', 'species', penguins, 'palmerpenguins'),
        _vega('vega_iris', 'iris', 'species', 'text labels'),
        _vega('cars', 'cars', 'Origin', 'id-like Name, missing values, a date'),
        _vega('seattle_weather', 'seattle_weather', 'weather', 'imbalanced, dates'),
        _vega('stocks', 'stocks', 'symbol', 'a date and a price'),
        _vega('barley', 'barley', 'site', '120 rows'),
        Table(
            'airports',
            'state',
            lambda: vega_table('airports').dropna(subset=['state']),
            'vega_datasets airports: 56 classes; the 12 airports outside a state dropped, as '
            'the preflight asks',
        ),
        _vega('la_riots', 'la_riots', 'type', '63 rows, names and addresses'),
        Table('no_errors', 'side', separable, 'generated: perfectly separable'),
        Table('one_error', 'side', one_error, 'generated: one flipped label in eval'),
        Table('imbalance_99_1', 'outcome', imbalanced, 'generated: 99:1, 2,000 rows'),
        Table('classes_50', 'kind', many_classes, 'generated: 50 classes of 40 rows'),
        Table('categorical_only', 'liked', categorical_only, 'generated: text columns only'),
        Table('numeric_only', 'grade', numeric_only, 'generated: numbers only'),
        Table('constant_column', 'y', constant_column, 'generated: a constant number and text'),
        Table('rows_20', 'side', twenty_rows, 'generated: the fewest rows accepted'),
        # Regression: a label of numbers (more than 20 values) trains a regressor.
        Table(
            'diabetes',
            'target',
            lambda: sklearn_table('load_diabetes'),
            'scikit-learn: disease progression, a regression; tagged by rule (BMI, age: '
            'the columns are scaled, 0 is the mean)',
            flags=('--tag-rule', 'high bmi: bmi > 0.05', '--tag-rule', 'older: age > 0.04'),
        ),
        Table(
            'cars_mpg',
            'Miles_per_Gallon',
            lambda: vega_table('cars').dropna(subset=['Miles_per_Gallon']),
            'vega_datasets cars: miles per gallon, a regression (its 8 cars without one '
            'dropped, as the preflight asks); tagged by rule (weight, origin)',
            flags=(
                '--tag-rule',
                'light: Weight_in_lbs < 2300',
                '--tag-rule',
                'american: Origin == "USA"',
            ),
        ),
        Table(
            'rows_20_regression',
            'y',
            lambda: numbers_only(rows=F.MIN_ROWS),
            'generated: a regression on the fewest rows accepted (20 values: --task regression)',
            flags=('--task', 'regression'),
        ),
    ]
}


# --- running and reading back ------------------------------------------------------------


def expected_parts(regression: bool = False, tags: bool = False) -> List[str]:
    """What the ErrorAnalysis output folder of a csv run holds, whatever the data: the report,
    its page and every JSON part the Beam analysis writes (the gallery is for image data, so
    not expected here; the tags part for runs with tags; a regression's overall numbers are in
    its own part, not in the confusion counts)."""
    from blindspot.error_analysis.beam import analysis

    return [
        files.REPORT_JSON,
        files.REPORT_HTML,
        analysis.PART_REGRESSION if regression else analysis.PART_TOTALS,
        analysis.PART_HARDEST,
        analysis.PART_SLICES,
        analysis.PART_DIAGNOSIS,
        analysis.PART_SUSPECTS,
        *([analysis.PART_TAGS] if tags else []),
    ]


@dataclasses.dataclass
class Outcome:
    """One table's run: what the runner said, and the report it left (None when it failed)."""

    name: str
    rows: int
    classes: int
    seconds: float
    argv: List[str]
    error: Optional[str] = None  # the runner's one-line error, or the exception it raised
    report_dir: Optional[str] = None
    report: Optional[Dict] = None
    missing_parts: List[str] = dataclasses.field(default_factory=list)
    violations: List[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.report is not None
            and not self.missing_parts
            and not self.violations
        )

    @property
    def data(self) -> Path:
        """The CSV the pipeline read."""
        return Path(self.argv[self.argv.index('--data') + 1])

    @property
    def accuracy(self) -> Optional[float]:
        """Accuracy, or a regression's MAE."""
        if not self.report:
            return None
        overall = self.report['overall']
        return overall['mae'] if self.report.get('regression') else overall['accuracy']

    @property
    def held_findings(self) -> Optional[int]:
        """Top-level findings that held on the hold-out half (refinements not counted)."""
        if not self.report:
            return None
        return sum(1 for s in self.report['slices']['slices'] if s['held'] and not s['parent'])

    @property
    def problem(self) -> str:
        """The first thing wrong, in one line ('' when ok)."""
        if self.error:
            return self.error
        if self.report is None:
            return 'no ErrorAnalysis report in ML Metadata'
        if self.missing_parts:
            return f'missing in the report folder: {", ".join(self.missing_parts)}'
        return self.violations[0] if self.violations else ''


def runner_args(data: Path, label: str, output_dir: Path, train_steps: int) -> List[str]:
    """`local_runner.py` arguments for one table: the runner's defaults but for the steps."""
    return [
        '--pipeline',
        'csv',
        '--data',
        str(data),
        '--label',
        label,
        '--output-dir',
        str(output_dir),
        '--train-steps',
        str(train_steps),
        '--eval-steps',
        str(EVAL_STEPS),
    ]


def _first_error(text: str) -> Optional[str]:
    """The runner's own error line: 'error: ...' (refused before TFX) or '✗ X failed: ...'."""
    for line in text.splitlines():
        if line.startswith('error:') or line.startswith('✗'):
            return line.strip()
    return None


def read_report(output_dir: str, argv: Sequence[str]) -> Optional[str]:
    """The ErrorAnalysis report folder of the latest run in `output_dir`, from ML Metadata."""
    from blindspot.pipelines.datasets import dataset_for
    from blindspot.review import metadata

    config = local_runner.parse_args(list(argv))
    store = metadata.open_store(output_dir)
    runs = metadata.component_runs(
        store, metadata.latest_run(store, dataset_for(config).pipeline_name)
    )
    artifact = metadata.output_artifact(runs, 'ErrorAnalysis', 'report')
    return artifact.uri if artifact is not None else None


def run_table(table: Table, work: Path, train_steps: int = TRAIN_STEPS) -> Outcome:
    """Writes `table` to work/<name>/<name>.csv and runs the csv pipeline on it in this process
    (output: work/<name>/out, the runner's console output: work/<name>/runner.log), then reads
    the report back and re-checks its invariants."""
    folder = work / table.name
    folder.mkdir(parents=True, exist_ok=True)
    frame = table.frame()
    data = folder / f'{table.name}.csv'
    frame.to_csv(data, index=False)
    argv = runner_args(data, table.label, folder / 'out', train_steps) + list(table.flags)
    outcome = Outcome(table.name, len(frame), int(frame[table.label].nunique()), 0.0, argv)
    printed, errors = io.StringIO(), io.StringIO()
    start = time.time()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        try:
            status = local_runner.run(local_runner.parse_args(argv))
        except Exception as e:  # a crash the runner did not turn into a message: record it
            status = None
            print(f'✗ local_runner.run raised {type(e).__name__}: {e}', file=sys.stderr)
    outcome.seconds = time.time() - start
    (folder / 'runner.log').write_text(printed.getvalue() + errors.getvalue())
    if status != 0:
        outcome.error = _first_error(errors.getvalue()) or f'exit status {status}'
        return outcome
    outcome.report_dir = read_report(str(folder / 'out'), argv)
    if outcome.report_dir is None:
        return outcome
    from blindspot.error_analysis.beam.analysis import PART_REGRESSION

    regression = os.path.isfile(os.path.join(outcome.report_dir, PART_REGRESSION))
    outcome.missing_parts = [
        name
        for name in expected_parts(regression, tags='--tag-rule' in table.flags)
        if not os.path.isfile(os.path.join(outcome.report_dir, name))
    ]
    if not glob.glob(os.path.join(outcome.report_dir, files.PREDICTIONS_DIR, '*.parquet')):
        outcome.missing_parts.append(f'{files.PREDICTIONS_DIR}/*.parquet')
    path = os.path.join(outcome.report_dir, files.REPORT_JSON)
    if os.path.isfile(path):
        with open(path) as f:
            outcome.report = json.load(f)
        outcome.violations = violations(outcome.report)
    return outcome


def _cell(value, spec: str) -> str:
    return '—' if value is None else format(value, spec)


def table_lines(outcomes: Sequence[Outcome]) -> List[str]:
    """The corpus table: one row per table, the first problem of those not ok."""
    lines = [
        f'{"dataset":18s} {"rows":>6s} {"classes":>7s} {"acc|MAE":>8s} {"held":>4s} '
        f'{"invariants":10s} {"seconds":>7s}  problem'
    ]
    for o in outcomes:
        invariants = '—' if o.report is None else 'ok' if not o.violations else 'BROKEN'
        lines.append(
            f'{o.name:18s} {o.rows:6d} {o.classes:7d} {_cell(o.accuracy, ".3f"):>8s} '
            f'{_cell(o.held_findings, "d"):>4s} {invariants:10s} {o.seconds:7.1f}  {o.problem}'
        )
    return lines


def detail_lines(outcomes: Sequence[Outcome], kept: Optional[Path]) -> List[str]:
    """Every problem of the tables that are not ok, and how to reproduce each (the runner's
    own command names files that exist only when the outputs were kept, --out)."""
    lines = []
    for o in outcomes:
        if o.ok:
            continue
        problems = [o.error] if o.error else []
        problems += [f'missing: {p}' for p in o.missing_parts] + o.violations[:SHOWN]
        if len(o.violations) > SHOWN:
            problems.append(f'... {len(o.violations)} violations in all')
        if o.report is not None and o.report.get('invariant_violations') != o.violations:
            problems.append(
                f'report.json stores other violations: {o.report.get("invariant_violations")}'
            )
        lines += [f'\n{o.name}:', *(f'  {p}' for p in problems or [o.problem])]
        lines.append(f'  reproduce: python bench/corpus.py --only {o.name} --out {kept or "DIR"}')
        if kept:
            lines.append(f'         or: python local_runner.py {" ".join(o.argv)}')
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--only',
        metavar='NAMES',
        help=f'comma-separated tables (default: all): {", ".join(TABLES)}',
    )
    p.add_argument('--train-steps', type=int, default=TRAIN_STEPS, help='(default: %(default)s)')
    p.add_argument('--out', metavar='DIR', help='work here and keep the outputs')
    p.add_argument('--list', action='store_true', help='list the tables and exit')
    args = p.parse_args(argv)
    if args.list:
        print('\n'.join(f'{t.name:17s} label {t.label:9s} {t.source}' for t in TABLES.values()))
        return 0
    names = args.only.split(',') if args.only else list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        p.error(f'unknown table(s) {", ".join(unknown)}; known: {", ".join(TABLES)}')
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix='bench-corpus-'))
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    outcomes = []
    try:
        for name in names:
            outcomes.append(run_table(TABLES[name], work, args.train_steps))
            o = outcomes[-1]
            print(f'{name}: {"ok" if o.ok else "NOT OK"} in {o.seconds:.1f} s', flush=True)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print('\n'.join(table_lines(outcomes)))
    print(
        f'\n{len(outcomes)} tables in {time.time() - start:.0f} s, {args.train_steps} train steps'
    )
    print('\n'.join(detail_lines(outcomes, Path(args.out) if args.out else None)), flush=True)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == '__main__':
    sys.exit(main())
