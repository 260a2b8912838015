"""Shared fixtures: a small slice of the taxi sample, and one real pipeline run on it that the
end-to-end tests read back through ML Metadata."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

SAMPLE_ROWS = 3000
E2E_TRAIN_STEPS = 60


def taxi_csv() -> Path:
    from blindspot.pipelines.datasets import get_dataset

    return get_dataset('taxi').default_data_root() / 'data.csv'


def write_sample(folder: Path, rows: int = SAMPLE_ROWS, edit=None) -> Path:
    """The first `rows` rows of the packaged taxi CSV, optionally edited row by row."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(taxi_csv(), newline='') as src, open(folder / 'data.csv', 'w', newline='') as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for i, row in enumerate(reader):
            if i >= rows:
                break
            writer.writerow(edit(i, row) if edit else row)
    return folder


HELD_RUN_ID = '2026-01-02T03:04:05.000001'


def hold_run_lock(out: Path) -> subprocess.Popen:
    """Another process holding `out`'s run lock, as a running pipeline does (run HELD_RUN_ID);
    returns once it holds it. The caller kills it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            '-c',
            'import time\n'
            'from blindspot.pipelines import run_lock\n'
            f"lock = run_lock.acquire({str(out)!r}, 'blindspot-taxi', {HELD_RUN_ID!r})\n"
            "print('locked', flush=True)\n"
            'time.sleep(120)\n',
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == 'locked'
    return holder


@pytest.fixture(scope='session')
def taxi_run(tmp_path_factory):
    """Runs the real taxi pipeline three times with the same inputs.

    Run 1 trains and blesses a model. Run 2 reuses everything up to the Trainer, but the
    Evaluator has a new input (run 1's model is now the latest blessed baseline), so it and
    its dependants run again. Run 3 has exactly run 2's inputs: all cache hits."""
    import local_runner
    from blindspot.pipelines.config import RunConfig, TrainingSettings
    from blindspot.pipelines.datasets import dataset_for
    from blindspot.review import metadata

    root = tmp_path_factory.mktemp('taxi_e2e')
    data = write_sample(root / 'data')
    config = RunConfig(
        output_dir=str(root / 'out'),
        data_root=str(data),
        training=TrainingSettings(train_steps=E2E_TRAIN_STEPS, eval_steps=10, min_accuracy=0.5),
    )
    assert local_runner.run(config) == 0
    store = metadata.open_store(config.output_dir)
    first = metadata.component_runs(
        store, metadata.latest_run(store, dataset_for(config).pipeline_name)
    )
    runs = [first]
    for _ in range(2):
        assert local_runner.run(config) == 0
        runs.append(
            metadata.component_runs(
                store, metadata.latest_run(store, dataset_for(config).pipeline_name)
            )
        )
    return {
        'config': config,
        'first': first,
        'second': runs[1],
        'third': runs[2],
        'store': store,
        'data': data,
    }


# The gated taxi runs (test_review.py, test_slice_gate_e2e.py): 2,000 rows each.
GATED_ROWS = 2000
GATED_TRAIN_STEPS = 300  # Trainer time is mostly fixed overhead; 40 steps only learns the majority
CORRUPT_DAY = '7'
# ~520 eval rows: below ~10% of them, slices that look bad on the search half by chance crowd
# the top 10 (SliceLine weighs error rate over size); the corrupted day is ~18% of the rows.
GATED_MIN_SLICE_SIZE = 0.1


def flip_label_on_day(i, row):
    """Every other trip of CORRUPT_DAY gets the other label (tip > 20% of the fare or not)."""
    if row['trip_start_day'] != CORRUPT_DAY or i % 2:
        return row
    fare = float(row['fare'] or 0)
    big_tipper = float(row['tips'] or 0) > 0.2 * fare
    return dict(row, tips='0.0' if big_tipper else f'{max(fare, 1.0) * 0.5:.2f}')


@pytest.fixture(scope='session')
def gated_taxi_runs(tmp_path_factory):
    """Three real taxi runs into one output folder, with the slice gate: clean data (blessed,
    pushed); data whose Saturday labels are half flipped, blessed by the Evaluator (a 50-point
    accuracy drop is tolerated here on purpose) but not pushed, as ErrorAnalysis finds the
    Saturday slice new since the last blessed model; the same data with --slice-gate off,
    which pushes (everything up to the Evaluator cached). Returns (output folder, what each
    run printed). The review tests read the same store."""
    import contextlib
    import io

    import local_runner
    from blindspot.pipelines.config import ErrorAnalysisSettings, RunConfig, TrainingSettings

    root = tmp_path_factory.mktemp('gated')
    out = str(root / 'out')
    clean = write_sample(root / 'clean', GATED_ROWS)
    corrupted = write_sample(root / 'corrupted', GATED_ROWS, edit=flip_label_on_day)
    summaries = []
    for data, gate in ((clean, 'new'), (corrupted, 'new'), (corrupted, 'off')):
        config = RunConfig(
            output_dir=out,
            data_root=str(data),
            training=TrainingSettings(
                train_steps=GATED_TRAIN_STEPS,
                eval_steps=10,
                min_accuracy=0.5,
                max_accuracy_drop=0.5,
            ),
            error_analysis=ErrorAnalysisSettings(
                min_slice_size=GATED_MIN_SLICE_SIZE, slice_gate=gate
            ),
        )
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert local_runner.run(config) == 0
        summaries.append(printed.getvalue())
    return out, summaries


# The regression csv run (regression_csv_run): a price from numbers and a shop, with a region
# the model cannot see where the price is PLANTED_OFFSET_SD standard deviations higher.
REGRESSION_ROWS = 2000
REGRESSION_TRAIN_STEPS = 100
PLANTED_REGION = {'colour': 'red', 'size': 'L'}
PLANTED_OFFSET_SD = 3.0
PRICE_NOISE_SD = 1.0


def write_regression_csv(path: Path, rows: int = REGRESSION_ROWS, seed: int = 0) -> Path:
    """`price` = 20 + 3·x1 - 2·x2 + a per-shop effect + noise (sd PRICE_NOISE_SD), plus
    PLANTED_OFFSET_SD standard deviations of that price where colour and size are
    PLANTED_REGION (1 row in 12). The run excludes colour and size from the model
    (--exclude-feature), as a column known for analysis but not at prediction time: the model
    cannot learn the offset and under-predicts the region by about that much, a bias
    ErrorAnalysis can find by slicing on those columns."""
    import random
    import statistics

    rng = random.Random(seed)
    shop_effect = {1: -1.0, 2: 0.0, 3: 0.5, 4: 1.0, 5: -0.5, 6: 2.0}
    records = []
    for _ in range(rows):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        shop = rng.randint(1, 6)
        colour = rng.choice(['red', 'green', 'blue', 'yellow'])
        size = rng.choice(['S', 'M', 'L'])
        price = 20 + 3 * x1 - 2 * x2 + shop_effect[shop] + rng.gauss(0, PRICE_NOISE_SD)
        records.append([x1, x2, shop, colour, size, price])
    offset = PLANTED_OFFSET_SD * statistics.pstdev(r[-1] for r in records)
    with open(path, 'w', newline='') as f:
        out = csv.writer(f)
        out.writerow(['x1', 'x2', 'shop', 'colour', 'size', 'price'])
        for x1, x2, shop, colour, size, price in records:
            planted = {'colour': colour, 'size': size} == PLANTED_REGION
            out.writerow(
                [f'{x1:.4f}', f'{x2:.4f}', shop, colour, size, f'{price + planted * offset:.3f}']
            )
    return path


@pytest.fixture(scope='session')
def regression_csv_run(tmp_path_factory):
    """One real csv pipeline run predicting `price` (write_regression_csv; regression, as the
    label holds more than 20 distinct numbers), colour and size excluded from the model.
    Returns the config, the exit status, the component runs of the run and the data path."""
    import local_runner
    from blindspot.pipelines.datasets import dataset_for
    from blindspot.review import metadata

    root = tmp_path_factory.mktemp('regression')
    data = write_regression_csv(root / 'prices.csv')
    config = local_runner.parse_args(
        [
            '--pipeline=csv',
            f'--data={data}',
            '--label=price',
            '--exclude-feature=colour',
            '--exclude-feature=size',
            f'--output-dir={root / "out"}',
            f'--train-steps={REGRESSION_TRAIN_STEPS}',
            '--eval-steps=10',
        ]
    )
    status = local_runner.run(config)
    store = metadata.open_store(config.output_dir)
    runs = metadata.component_runs(
        store, metadata.latest_run(store, dataset_for(config).pipeline_name)
    )
    return {'config': config, 'status': status, 'runs': runs, 'data': data}


# ErrorAnalysis executor parameters for direct calls in tests.
EA_PROPS = {
    'splits': '["eval"]',
    'slice_features': '[]',
    'num_bins': 4,
    'max_values_per_feature': 50,
    'max_predicates': 2,
    'min_slice_size': 0.05,
    'num_slices': 5,
    'significance': 0.05,
    'num_hardest_examples': 5,
}


def ea_inputs(taxi_run, examples_uri=None, splits=('train', 'eval')):
    """Real artifacts of the taxi run, to call the ErrorAnalysis executor directly."""
    from tfx.types import artifact_utils, standard_artifacts

    from blindspot.review import metadata

    first = taxi_run['first']
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri or metadata.output_artifact(first, 'CsvExampleGen', 'examples').uri
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    model = standard_artifacts.Model()
    model.uri = metadata.output_artifact(first, 'Trainer', 'model').uri
    schema = standard_artifacts.Schema()
    schema.uri = metadata.output_artifact(first, 'ImportSchemaGen', 'schema').uri
    return {'examples': [examples], 'model': [model], 'schema': [schema]}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`make test` runs two pytest-xdist workers (--dist loadgroup). A module's tests stay on
    one worker, so each module-scoped pipeline run happens once; the tests that read a
    session's runs (taxi_run, gated_taxi_runs, regression_csv_run) share one worker, so they
    run once too. (xdist 3.8 groups by a suffix it adds to `item._nodeid`, which pytest 9 no
    longer reads: requirements.lock pins 8.4.)"""
    for item in items:
        shared = [
            f
            for f in ('taxi_run', 'gated_taxi_runs', 'regression_csv_run')
            if f in item.fixturenames
        ]
        group = shared[0] if shared else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
