"""Pipeline benchmark: Blindspot's taxi pipeline beside the stock TFX taxi template, and the
csv pipeline on generated CSVs, each run as its own process in a fresh output folder.

Taxi: the template from the installed tfx package (tfx/experimental/templates/taxi), patched
only to run: its commented-out `components.append(...)` lines are uncommented, its module paths
point into the installed package, it reads the same taxi CSV and trains the same number of
steps; like the template's own runner it passes no Beam options. Template and Blindspot alternate, `--rounds` times. Printed:
seconds per component from each run's ML Metadata (execution start to publish), the whole
process's wall time and peak memory (RSS), and Blindspot / template as a ratio of medians.

Csv: generated CSVs of ROWSxCOLUMNS (half numbers, half categories of at most 12 values, a label
learnable from both), per component, with ErrorAnalysis's share of the wall time; the sizes of
--csv-multi-process (default 400k x 8) again with Beam's multi-process mode (two worker
processes), beside. Peak memory is that of the process tree (Beam's workers included).

Last, each target the run measured (taxi ratio, ErrorAnalysis's share of every run, the two csv
sizes' wall time) with its limit, met or MISSED.

    python bench/pipeline.py                      # make bench-pipeline
    python bench/pipeline.py --rounds 1 --csv     # taxi only, one round
    python bench/pipeline.py --no-taxi --csv 40000x27
"""

import argparse
import csv
import dataclasses
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import memory  # noqa: E402

# Both pipelines' processes inherit it (Keras 2 for tf.Transform and TFMA, as the local runs);
# importing blindspot sets nothing.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

TEMPLATE_NAME = 'taxi-template'
COMPONENT_ORDER = [
    'CsvExampleGen',
    'StatisticsGen',
    'SchemaGen',
    'ExampleValidator',
    'Transform',
    'Trainer',
    'Evaluator',
    'ErrorAnalysis',
    'Pusher',
]

# The targets, checked at the end of a run: Blindspot's taxi wall time at most this
# ratio of the template's, ErrorAnalysis at most this share of every run, and these csv sizes
# within these seconds.
MAX_TAXI_RATIO = 1.0
MAX_ERROR_ANALYSIS_SHARE = 0.10
MAX_CSV_SECONDS = {(40_000, 27): 150.0, (400_000, 8): 300.0}
# Beam's multi-process mode, measured beside the default in-process one (--csv-multi-process).
MULTI_PROCESS_WORKERS = 2

# Runs the template's own create_pipeline (patched copy beside this script) the way its
# local_runner.py does (no Beam options), with the data and train steps the benchmark passes.
TEMPLATE_DRIVER = """\
import os, sys
from absl import logging
from tfx import v1 as tfx
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import template_pipeline
from tfx.experimental.templates.taxi.pipeline import configs

out, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
logging.set_verbosity(logging.INFO)
package = 'tfx.experimental.templates.taxi.'
root = os.path.join(out, 'tfx_pipeline_output', {name!r})
tfx.orchestration.LocalDagRunner().run(
    template_pipeline.create_pipeline(
        pipeline_name={name!r},
        pipeline_root=root,
        data_path=data,
        preprocessing_fn=package + configs.PREPROCESSING_FN,
        run_fn=package + configs.RUN_FN,
        train_args=tfx.proto.TrainArgs(num_steps=steps),
        eval_args=tfx.proto.EvalArgs(num_steps=configs.EVAL_NUM_STEPS),
        eval_accuracy_threshold=configs.EVAL_ACCURACY_THRESHOLD,
        serving_model_dir=os.path.join(root, 'serving_model'),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(out, 'metadata.db')),
    )
)
"""


def prepare_template(work: Path) -> Path:
    """A driver script for the installed taxi template, its pipeline.py with every component
    uncommented; returns the driver's path."""
    import tfx.experimental.templates.taxi.pipeline.pipeline as template

    source = Path(template.__file__).read_text()
    patched, count = re.subn(r'^(\s*)# (components\.append\(\w+\))', r'\1\2', source, flags=re.M)
    if count < 8:
        raise SystemExit(f'error: the taxi template changed: only {count} components to enable')
    folder = work / 'template'
    folder.mkdir(parents=True)
    (folder / 'template_pipeline.py').write_text(patched)
    driver = folder / 'driver.py'
    driver.write_text(TEMPLATE_DRIVER.format(name=TEMPLATE_NAME))
    return driver


def run_process(argv: List[str], log: Path, cwd: Path = ROOT) -> Tuple[float, float]:
    """Runs argv to completion; (wall seconds, peak RSS in MB of the process and its
    descendants). Fails loudly with the log."""
    start = time.monotonic()
    with open(log, 'w') as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = memory.TreePeak(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        tree_peak = sampler.stop()
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-30:]
        raise SystemExit(
            f'error: {argv[:3]} exited {proc.returncode}; log {log}:\n' + '\n'.join(tail)
        )
    # The larger of one process's peak and the sampled sum over the tree (Beam's workers).
    return wall, max(usage.ru_maxrss / 1024, tree_peak)


def component_seconds(sqlite: Path) -> Dict[str, float]:
    """Seconds per component of the one run in an ML Metadata SQLite file (execution created
    to last update), keyed by component id."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from blindspot.review import metadata

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(sqlite)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    seconds = {}
    for execution in store.get_executions():
        name = metadata.node_id(store, execution)
        if 'resolver' in name:
            continue
        elapsed = execution.last_update_time_since_epoch - execution.create_time_since_epoch
        seconds[name] = seconds.get(name, 0.0) + elapsed / 1000
    return seconds


@dataclasses.dataclass
class Measurement:
    """One pipeline process: wall seconds, peak RSS in MB, seconds per component."""

    wall: float
    peak_mb: float
    components: Dict[str, float]


def run_template(driver: Path, out: Path, data: str, steps: int) -> Measurement:
    out.mkdir(parents=True)
    wall, peak = run_process(
        [sys.executable, str(driver), str(out), data, str(steps)],
        out / 'run.log',
        cwd=driver.parent,
    )
    return Measurement(wall, peak, component_seconds(out / 'metadata.db'))


def run_blindspot(out: Path, steps: int, *args: str) -> Measurement:
    out.mkdir(parents=True)
    argv = [
        sys.executable,
        'local_runner.py',
        '--output-dir',
        str(out),
        '--train-steps',
        str(steps),
    ]
    wall, peak = run_process([*argv, *args], out.parent / f'{out.name}.log')
    return Measurement(wall, peak, component_seconds(out / 'metadata.sqlite'))


def write_csv(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """ROWS rows of `columns` columns: numbers n0.., categories c0.. (up to 12 values), and the
    label y, a noisy function of two numbers and one category."""
    rng = random.Random(seed)
    numeric = [f'n{i}' for i in range(columns // 2)]
    categorical = [f'c{i}' for i in range(columns - 1 - len(numeric))]
    sizes = [3 + (i * 5) % 10 for i in range(len(categorical))]
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow([*numeric, *categorical, 'y'])
        for _ in range(rows):
            nums = [round(rng.gauss(0, 1), 3) for _ in numeric]
            cats = [f'v{rng.randrange(n)}' for n in sizes]
            score = nums[0] - 0.5 * nums[-1] + (0.8 if cats and cats[0] == 'v0' else 0.0)
            label = 'yes' if score + rng.gauss(0, 0.5) > 0 else 'no'
            writer.writerow([*nums, *cats, label])


def _cell(value: Optional[float]) -> str:
    return '—' if value is None else f'{value:.1f}'


def taxi_table(template: List[Measurement], blindspot: List[Measurement]) -> str:
    def median(runs: List[Measurement], name: str) -> Optional[float]:
        values = [r.components[name] for r in runs if name in r.components]
        return statistics.median(values) if values else None

    names = [n for n in COMPONENT_ORDER if any(n in r.components for r in template + blindspot)]
    lines = [
        f'Taxi, median of {len(blindspot)} round(s): seconds',
        f'{"":24s} {"template":>9s} {"blindspot":>9s} {"ratio":>6s}',
    ]
    for name in names:
        t, b = median(template, name), median(blindspot, name)
        ratio = f'{b / t:.2f}' if t and b else ''
        lines.append(f'{name:24s} {_cell(t):>9s} {_cell(b):>9s} {ratio:>6s}')
    t_wall = statistics.median(r.wall for r in template)
    b_wall = statistics.median(r.wall for r in blindspot)
    lines.append(f'{"whole process (wall)":24s} {t_wall:9.1f} {b_wall:9.1f} {b_wall / t_wall:6.2f}')
    t_mem = max(r.peak_mb for r in template)
    b_mem = max(r.peak_mb for r in blindspot)
    lines.append(f'{"peak memory (MB)":24s} {t_mem:9.0f} {b_mem:9.0f} {b_mem / t_mem:6.2f}')
    lines.append(
        'rounds (wall s): '
        + ', '.join(f'{t.wall:.0f}/{b.wall:.0f}' for t, b in zip(template, blindspot))
    )
    return '\n'.join(lines)


def csv_name(size: Tuple[int, int]) -> str:
    """(40000, 27) -> '40k x 27'."""
    return f'{size[0] // 1000}k x {size[1]}'


def csv_table(runs: List[Tuple[str, Measurement]]) -> str:
    """Per component, one column per named run."""
    width = max([12] + [len(name) for name, _ in runs])
    lines = [
        'Csv pipeline: seconds',
        f'{"":24s} ' + ' '.join(f'{name:>{width}s}' for name, _ in runs),
    ]
    for name in COMPONENT_ORDER:
        if any(name in m.components for _, m in runs):
            lines.append(
                f'{name:24s} '
                + ' '.join(f'{_cell(m.components.get(name)):>{width}s}' for _, m in runs)
            )
    lines.append(
        f'{"whole process (wall)":24s} ' + ' '.join(f'{m.wall:{width}.1f}' for _, m in runs)
    )
    lines.append(
        f'{"peak memory (MB)":24s} ' + ' '.join(f'{m.peak_mb:{width}.0f}' for _, m in runs)
    )
    share = [100 * m.components.get('ErrorAnalysis', 0.0) / m.wall for _, m in runs]
    lines.append(f'{"ErrorAnalysis share":24s} ' + ' '.join(f'{s:{width - 1}.1f}%' for s in share))
    return '\n'.join(lines)


def _show(value: float, unit: str) -> str:
    return {'x': f'{value:.2f}x', '%': f'{100 * value:.1f}%', 's': f'{value:.1f} s'}[unit]


def target_lines(
    taxi: Optional[Tuple[List[Measurement], List[Measurement]]],
    csv_runs: List[Tuple[Tuple[int, int], Measurement]],
) -> List[str]:
    """One line per target the run measured: the value, the limit, met or MISSED."""

    def share(run: Measurement) -> Tuple[float, float, str]:
        return run.components.get('ErrorAnalysis', 0.0) / run.wall, MAX_ERROR_ANALYSIS_SHARE, '%'

    checks = []  # (what, (value, limit, unit))
    if taxi:
        template, blindspot = taxi
        walls = [statistics.median(r.wall for r in runs) for runs in (blindspot, template)]
        checks.append(('taxi wall / template', (walls[0] / walls[1], MAX_TAXI_RATIO, 'x')))
        checks += [
            (f'ErrorAnalysis share, taxi round {i + 1}', share(run))
            for i, run in enumerate(blindspot)
        ]
    for size, run in csv_runs:
        name = f'csv {csv_name(size)}'
        checks.append((f'ErrorAnalysis share, {name}', share(run)))
        if size in MAX_CSV_SECONDS:
            checks.append((f'{name} wall', (run.wall, MAX_CSV_SECONDS[size], 's')))
    lines = ['Targets']
    for what, (value, limit, unit) in checks:
        verdict = 'met' if value <= limit else 'MISSED'
        lines.append(
            f'  {what:38s} {_show(value, unit):>8s} (at most {_show(limit, unit)}): {verdict}'
        )
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rounds', type=int, default=2, help='taxi rounds (default: %(default)s)')
    p.add_argument(
        '--train-steps', type=int, default=1000, help='both pipelines (default: %(default)s)'
    )
    p.add_argument('--no-taxi', action='store_true', help='skip the taxi comparison')
    p.add_argument(
        '--csv',
        nargs='*',
        default=['40000x27', '400000x8'],
        metavar='ROWSxCOLUMNS',
        help='generated CSVs for the csv pipeline (default: %(default)s; none: skip)',
    )
    p.add_argument(
        '--csv-multi-process',
        nargs='*',
        default=['400000x8'],
        metavar='ROWSxCOLUMNS',
        help=f'of the --csv sizes, those also run with --beam-mode multi_process --workers '
        f'{MULTI_PROCESS_WORKERS} (default: %(default)s)',
    )
    p.add_argument('--keep', metavar='DIR', help='work here and keep the outputs')
    args = p.parse_args(argv)
    sizes = []
    for size in args.csv:
        match = re.fullmatch(r'(\d+)x(\d+)', size)
        if not match or int(match.group(2)) < 3:
            p.error(f'--csv {size}: expected ROWSxCOLUMNS with at least 3 columns, e.g. 40000x27')
        sizes.append((int(match.group(1)), int(match.group(2))))

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='bench-pipeline-'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not args.no_taxi:
            from blindspot.pipelines.datasets import get_dataset

            data = str(get_dataset('taxi').default_data_root())
            driver = prepare_template(work)
            template, blindspot = [], []
            for i in range(args.rounds):
                template.append(
                    run_template(driver, work / f'template-{i}', data, args.train_steps)
                )
                print(f'round {i + 1}: template {template[-1].wall:.1f} s', flush=True)
                blindspot.append(run_blindspot(work / f'taxi-{i}', args.train_steps))
                print(f'round {i + 1}: blindspot {blindspot[-1].wall:.1f} s', flush=True)
            print(taxi_table(template, blindspot), flush=True)
        runs, columns_of_table = [], []
        for rows, columns in sizes:
            data = work / f'csv-{rows}x{columns}' / 'data.csv'
            data.parent.mkdir(parents=True)
            write_csv(data, rows, columns)
            csv_args = ['--pipeline', 'csv', '--data', str(data), '--label', 'y']
            out = work / f'csv-{rows}x{columns}-out'
            runs.append(((rows, columns), run_blindspot(out, args.train_steps, *csv_args)))
            name = csv_name((rows, columns))
            columns_of_table.append((name, runs[-1][1]))
            print(f'csv {name}: {runs[-1][1].wall:.1f} s', flush=True)
            if f'{rows}x{columns}' in args.csv_multi_process:
                multi = run_blindspot(
                    work / f'csv-{rows}x{columns}-multi-process-out',
                    args.train_steps,
                    *csv_args,
                    '--beam-mode',
                    'multi_process',
                    '--workers',
                    str(MULTI_PROCESS_WORKERS),
                )
                name = f'{name}, {MULTI_PROCESS_WORKERS} procs'
                columns_of_table.append((name, multi))
                print(f'csv {name}: {multi.wall:.1f} s', flush=True)
        if runs:
            print(csv_table(columns_of_table), flush=True)
        taxi = None if args.no_taxi else (template, blindspot)
        print('\n'.join(target_lines(taxi, runs)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
