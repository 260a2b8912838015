"""Findings benchmark: does ErrorAnalysis find every planted failure and nothing else?

Generated data with known answers (each row: 8 categorical features of 8 values, 4 numeric
features in [0, 1), a base error rate of 8%), run through the component's real Beam path
(BuildEncoders + DiscoverSlices, in-process DirectRunner unless --beam-mode says otherwise,
default Settings):

  categorical  c0 = a AND c1 = b        1.6% of rows, 55% errors  (findable)
  numeric      0.6 <= x0 < 0.7          10% of rows,  30% errors  (findable)
  tiny         c2 = c AND c3 = d AND c4 = e   0.2% of rows, 90% errors (below the 1% minimum
               slice size: not findable, and not an error to report)
  null         the same features, 8% errors everywhere: any held finding is a false positive

Printed per size: recall of the findable planted slices, precision of held findings (a finding
is correct if it is a planted slice, or for the numeric one a range whose edges are within one
fine bin of 0.6 and 0.7; refinements count too; a 2-predicate slice containing the region
below the minimum size counts as right and is counted apart as "coarser"), the worst numeric range edge error, seeds with
any finding on null data, time per run and peak memory of the worker process. The `sliceline`
package runs on the same data where it fits in memory (numeric features cut into the same
number of quantile bins, its top-10 as its findings).

A second table, "misaligned", plants ranges whose edges fall inside the 16 quantile bins
(as data nobody tuned for does), on a 4% base error rate:

  categorical  c0 = a AND c1 = b        1.6% of rows, 55% errors
  range x0     0.6 <= x0 < 0.7          10% of rows,  30% errors
  range x1     0.33 <= x1 < 0.41         8% of rows,  25% errors

and prints, per size, the seeds where each planted region came out as exactly one held
finding, precision (a finding is right if it is a planted region, ranges with both edges within
EDGE_TOLERANCE), the worst edge error and null false positives.

A third table, "scale", runs the first table's planted data (seed 0) at 1M, 10M and 30M rows,
once in-process and once with Beam's multi-process mode (the pipelines' --beam-mode and
--workers), and prints wall and CPU time, peak memory of the process tree, its growth per
million rows and whether the held findings match in_process's; then the flat-memory targets at
10M rows, met or MISSED.

    python bench/findings.py                     # make bench-findings (all three tables)
    python bench/findings.py --sizes 40000 --seeds 3 --null-seeds 5 --scale-sizes ''
    python bench/findings.py --scenario scale --scale-sizes 1000000,10000000
"""

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import memory  # noqa: E402
from blindspot.error_analysis.search import lattice  # noqa: E402
from blindspot.error_analysis.settings import Settings  # noqa: E402

SHARD_ROWS = 50_000
CATEGORICAL = [f'c{i}' for i in range(8)]
NUMERIC = [f'x{i}' for i in range(4)]
LETTERS = np.array(list('abcdefgh'), dtype=object)
BASE_ERROR_RATE = 0.08
CATEGORICAL_SLICE = {'c0': 'a', 'c1': 'b'}
CATEGORICAL_RATE = 0.55
NUMERIC_RANGE = ('x0', 0.6, 0.7)
NUMERIC_RATE = 0.30
TINY_SLICE = {'c2': 'c', 'c3': 'd', 'c4': 'e'}
TINY_RATE = 0.90
SETTINGS = Settings()
BIN_WIDTH = 1.0 / SETTINGS.num_bins  # numeric features are uniform on [0, 1)


# The misaligned scenario: ranges whose edges fall inside the quantile bins.
MISALIGNED_BASE_RATE = 0.04
MISALIGNED_RANGES = {'x0': (0.6, 0.7, 0.30), 'x1': (0.33, 0.41, 0.25)}
EDGE_TOLERANCE = 0.02
SCENARIOS = ('original', 'misaligned')

# The scale table: targets for flat memory (one planted seed per size).
BEAM_MODES = ('in_process', 'multi_process')
SCALE_TARGET_ROWS = 10_000_000
SCALE_TARGET_SECONDS = 60.0
SCALE_TARGET_PEAK_MB = 1536.0
SCALE_TARGET_GROWTH_MB = 50.0  # peak memory per million rows more


def generate_shard(
    seed: int, shard: int, rows: int, planted: bool, scenario: str = 'original'
) -> lattice.ColumnBatch:
    """Deterministic rows of one shard of one seed's data set."""
    rng = np.random.default_rng([seed, shard, int(planted)])
    columns: Dict[str, np.ndarray] = {
        name: LETTERS[rng.integers(0, len(LETTERS), rows)] for name in CATEGORICAL
    }
    columns.update({name: rng.random(rows) for name in NUMERIC})
    misaligned = scenario == 'misaligned'
    rates = np.full(rows, MISALIGNED_BASE_RATE if misaligned else BASE_ERROR_RATE)
    if planted:
        ranges = (
            MISALIGNED_RANGES
            if misaligned
            else {NUMERIC_RANGE[0]: (*NUMERIC_RANGE[1:], NUMERIC_RATE)}
        )
        for feature, (low, high, rate) in ranges.items():
            rates[(columns[feature] >= low) & (columns[feature] < high)] = rate
        categories = ((CATEGORICAL_SLICE, CATEGORICAL_RATE),)
        if not misaligned:
            categories += ((TINY_SLICE, TINY_RATE),)
        for predicates, rate in categories:
            inside = np.all([columns[f] == v for f, v in predicates.items()], axis=0)
            rates[inside] = np.maximum(rates[inside], rate)
    first = shard * SHARD_ROWS
    return lattice.ColumnBatch(
        columns=columns,
        errors=(rng.random(rows) < rates).astype(np.int8),
        example_ids=np.array([f'{seed}-{i}' for i in range(first, first + rows)]),
    )


def shards(rows: int) -> List[int]:
    full, rest = divmod(rows, SHARD_ROWS)
    return [SHARD_ROWS] * full + ([rest] if rest else [])


# ---------------------------------------------------------------------------------------------
# Judging findings against the planted answers.

_RANGE = re.compile(r'^(?:([-\d.e]+) <= )?x0(?: < ([-\d.e]+)| >= ([-\d.e]+))?$')


def numeric_range(label: str):
    """(low, high) of a range label on x0, None if the label is something else."""
    match = _RANGE.match(label)
    if not match or label == 'x0':
        return None
    low = float(match.group(1) or match.group(3) or 0.0)
    high = float(match.group(2)) if match.group(2) else 1.0
    return low, high


def judge(finding: Dict) -> Dict:
    """Which planted slice a finding is, if any, and the range error of a numeric one."""
    predicates = {p['feature']: p['label'] for p in finding['predicates']}
    as_values = {f: label.split(' = ', 1)[-1] for f, label in predicates.items()}
    if as_values == CATEGORICAL_SLICE:
        return {'planted': 'categorical'}
    if as_values == TINY_SLICE:
        return {'planted': 'tiny'}
    if len(as_values) > 1 and as_values.items() < TINY_SLICE.items():
        # The region below the minimum size, seen through a coarser slice that contains it:
        # the right place at the resolution the search allows (counted apart in the table).
        return {'planted': 'tiny (coarser)'}
    if list(predicates) == ['x0']:
        found = numeric_range(predicates['x0'])
        if found:
            error = max(abs(found[0] - NUMERIC_RANGE[1]), abs(found[1] - NUMERIC_RANGE[2]))
            if error <= BIN_WIDTH + 1e-9:
                return {'planted': 'numeric', 'range_error': error}
    return {'planted': None}


def judge_misaligned(finding: Dict) -> Dict:
    """Which planted region of the misaligned scenario a finding is ('categorical', 'x0',
    'x1', or None) and, for a range, its worst edge error; `exact` when it is the region
    (a range with both edges within EDGE_TOLERANCE)."""
    predicates = {p['feature']: p for p in finding['predicates']}
    values = {f: p['label'].split(' = ', 1)[-1] for f, p in predicates.items()}
    if values == CATEGORICAL_SLICE:
        return {'region': 'categorical', 'exact': True}
    if len(predicates) == 1:
        ((feature, predicate),) = predicates.items()
        if feature in MISALIGNED_RANGES and predicate.get('is_range'):
            low, high, _ = MISALIGNED_RANGES[feature]
            found_low = 0.0 if predicate['low'] is None else predicate['low']
            found_high = 1.0 if predicate['high'] is None else predicate['high']
            if found_low < high and low < found_high:
                error = max(abs(found_low - low), abs(found_high - high))
                return {'region': feature, 'edge_error': error, 'exact': error <= EDGE_TOLERANCE}
    return {'region': None, 'exact': False}


def score_misaligned(runs: List[Dict]) -> Dict:
    """Per planted region, the seeds where it is exactly one held finding; precision over all
    held findings; the worst edge error."""
    regions = ['categorical', *MISALIGNED_RANGES]
    exactly_one = {region: 0 for region in regions}
    right = total = 0
    edge_errors = []
    for run in runs:
        verdicts = [judge_misaligned(f) for f in run['held']]
        for region in regions:
            exactly_one[region] += sum(v['region'] == region for v in verdicts) == 1
        right += sum(v['exact'] for v in verdicts)
        total += len(verdicts)
        edge_errors += [v['edge_error'] for v in verdicts if 'edge_error' in v]
    return {
        'exactly_one': exactly_one,
        'precision': right / total if total else float('nan'),
        'findings': total,
        'edge_error': max(edge_errors) if edge_errors else float('nan'),
    }


# ---------------------------------------------------------------------------------------------
# Workers: one process per (method, size, kind), all its seeds, so peak memory is its own.


def _source(pipeline, label: str, rows: int, seed: int, planted: bool, scenario: str):
    """The generated rows as a PCollection of ColumnBatches, read from its own root.

    The encoders (BuildEncoders) and the search (DiscoverSlices) each get one such read, as
    they would two reads of files: a PCollection that the sketches and the encoding both
    read would be held whole in memory by the DirectRunner until the encoders exist (the
    encoding waits for them), about 80 bytes a row here and three times that while the
    encoding stage reads it."""
    import apache_beam as beam

    return (
        pipeline
        | f'Shards{label}' >> beam.Create(list(enumerate(shards(rows))))
        | f'Generate{label}'
        >> beam.MapTuple(lambda shard, n: generate_shard(seed, shard, n, planted, scenario))
    )


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (Beam's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _beam_worker(
    rows: int, seeds: List[int], planted: bool, scenario: str, beam_mode: str, workers: int
) -> Dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from blindspot.error_analysis.beam import slices as beam_slices
    from blindspot.pipelines.config import RunConfig

    config = lattice.SliceFinderConfig.from_settings(SETTINGS)
    # The runner set-up the pipelines use (pipelines/config.py), in the mode asked for.
    options = PipelineOptions(RunConfig(beam_mode=beam_mode, workers=workers).beam_pipeline_args())
    runs = []
    for seed in seeds:
        output_path = f'/tmp/findings_bench_{os.getpid()}_{seed}.json'

        def save(result, path=output_path) -> None:
            with open(path, 'w') as file:
                json.dump(result.to_dict(), file)

        start, cpu_start = time.perf_counter(), _cpu_seconds()
        with beam.Pipeline(options=options) as pipeline:
            encoders = _source(
                pipeline, 'ForEncoders', rows, seed, planted, scenario
            ) | beam_slices.BuildEncoders(
                CATEGORICAL + NUMERIC, SETTINGS.num_bins, SETTINGS.max_values_per_feature
            )
            result = _source(
                pipeline, 'ForSearch', rows, seed, planted, scenario
            ) | beam_slices.DiscoverSlices(encoders, config)
            _ = result | beam.Map(save)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        with open(output_path) as file:
            found = json.load(file)
        os.remove(output_path)
        held = [s for s in found['slices'] if s['held']]
        runs.append({'seconds': seconds, 'cpu': cpu, 'held': held, 'load': os.getloadavg()[0]})
    return {'runs': runs}


def _sliceline_worker(rows: int, seeds: List[int], planted: bool, memory_gb: float) -> Dict:
    """The sliceline package on the same rows (search half), numeric features in quantile
    bins, its top-10 slices as findings."""
    cap_memory(memory_gb)
    runs = []
    for seed in seeds:
        parts = [generate_shard(seed, shard, n, planted) for shard, n in enumerate(shards(rows))]
        columns = {
            name: np.concatenate([p.columns[name] for p in parts]) for name in CATEGORICAL + NUMERIC
        }
        errors = np.concatenate([p.errors for p in parts])
        ids = np.concatenate([p.example_ids for p in parts])
        try:
            runs.append(sliceline_findings(columns, errors.astype(float), ids))
        except MemoryError as error:
            return {'error': f'MemoryError: {error}'}
    return {'runs': runs}


def cap_memory(memory_gb: float) -> None:
    """This process first to go when memory runs out, and at most memory_gb (0: no cap)."""
    with open('/proc/self/oom_score_adj', 'w') as file:
        file.write('1000')
    if memory_gb > 0:
        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def sliceline_findings(columns: Dict[str, np.ndarray], errors: np.ndarray, ids) -> Dict:
    """{seconds, held}: the sliceline package's top-10 slices on the search half of these rows
    (per-row errors, 0/1 or any non-negative number), numeric features (NUMERIC, uniform on
    [0, 1)) in num_bins equal bins, as findings in the report's form."""
    from sliceline.slicefinder import Slicefinder

    config = lattice.SliceFinderConfig.from_settings(SETTINGS)
    search = ~lattice.holdout_mask(ids)
    edges = np.linspace(0, 1, SETTINGS.num_bins + 1)
    labels = []
    for name in NUMERIC:
        codes = np.clip(np.searchsorted(edges, columns[name], side='right') - 1, 0, None)
        labels.append(np.array([f'{edges[c]:.4g} <= {name} < {edges[c + 1]:.4g}' for c in codes]))
    x = np.stack([columns[name] for name in CATEGORICAL] + labels, axis=1)[search]
    start = time.perf_counter()
    model = Slicefinder(
        alpha=config.alpha,
        k=10,
        max_l=config.max_predicates,
        min_sup=config.min_support_rows(int(search.sum())),
        verbose=False,
    ).fit(x, errors[search])
    seconds = time.perf_counter() - start
    names = CATEGORICAL + NUMERIC
    held = []
    for row in model.top_slices_:
        predicates = []
        for j, value in enumerate(row):
            if value is None:
                continue
            label = value if names[j] in NUMERIC else f'{names[j]} = {value}'
            predicates.append({'feature': names[j], 'label': label})
        held.append({'predicates': predicates})
    return {'seconds': seconds, 'held': held}


def _run_worker(
    method: str,
    rows: int,
    seeds: List[int],
    planted: bool,
    args,
    scenario: str = 'original',
    beam_mode: str = 'in_process',
) -> Dict:
    """One worker process; its peak memory and CPU time (run_measured)."""
    command = [
        sys.executable,
        __file__,
        '--worker',
        method,
        '--scenario',
        scenario,
        '--rows',
        str(rows),
        '--seed-list',
        ','.join(map(str, seeds)),
        '--memory-gb',
        str(args.memory_gb),
        '--beam-mode',
        beam_mode,
        '--workers',
        str(args.workers),
    ] + (['--planted'] if planted else [])
    return run_measured(command)


def run_measured(command: List[str]) -> Dict:
    """A worker command's JSON result, with its peak memory and CPU time (_measure), or
    {'error'}."""
    completed = subprocess.run(
        [sys.executable, __file__, '--measure', json.dumps(command)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return {'error': completed.stderr.strip().splitlines()[-1][:200]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _measure(command: List[str]) -> Dict:
    """Runs command; peak memory: the larger of the kernel's peak of any one process and the
    sampled peak of the process tree's sum (Beam's worker processes at once)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = memory.TreePeak(process.pid)
    stdout, stderr = process.communicate()
    tree_peak = sampler.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        return {'error': f'exit {process.returncode}: {stderr[-300:]}'}
    return {
        **json.loads(stdout.strip().splitlines()[-1]),
        'peak_mb': max(usage.ru_maxrss / 1024, tree_peak),
        # CPU seconds of the whole worker (start-up included): wall time on a shared machine
        # says more about the other load than about the method.
        'cpu_s': usage.ru_utime + usage.ru_stime,
    }


# ---------------------------------------------------------------------------------------------
# The table.


def score_runs(planted_runs: List[Dict]) -> Dict:
    """Recall of the two findable slices, precision and worst range error over seeds."""
    found = correct = total = coarser = 0
    range_errors = []
    for run in planted_runs:
        verdicts = [judge(f) for f in run['held']]
        kinds = {v['planted'] for v in verdicts}
        found += ('categorical' in kinds) + ('numeric' in kinds)
        correct += sum(v['planted'] is not None for v in verdicts)
        coarser += sum(v['planted'] == 'tiny (coarser)' for v in verdicts)
        total += len(verdicts)
        range_errors += [v['range_error'] for v in verdicts if 'range_error' in v]
    return {
        'recall': found / (2 * len(planted_runs)) if planted_runs else float('nan'),
        'precision': correct / total if total else float('nan'),
        'findings': total,
        'coarser': coarser,
        'range_error': max(range_errors) if range_errors else float('nan'),
    }


def _row(name: str, rows: int, planted: Dict, null: Dict, seeds: int, null_seeds: int) -> str:
    if 'error' in planted:
        return f'{rows:>10,} | {name:<9} | {planted["error"]}'
    scores = score_runs(planted['runs'])
    seconds = np.mean([r['seconds'] for r in planted['runs']])
    null_text = '-'
    if null and 'error' not in null:
        null_text = f'{sum(bool(r["held"]) for r in null["runs"])}/{null_seeds}'
    return (
        f'{rows:>10,} | {name:<9} | {scores["recall"]:>6.0%} | {scores["precision"]:>9.0%} '
        f'({scores["findings"]:>3}, {scores["coarser"]} coarser) | '
        f'{scores["range_error"]:>11.3f} | {null_text:>9} | '
        f'{seconds:>7.1f} | {planted.get("peak_mb", float("nan")):>7,.0f}'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='10000,40000,100000,1000000')
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--null-seeds', type=int, default=20)
    parser.add_argument('--sliceline-max-rows', type=int, default=40_000)
    parser.add_argument('--memory-gb', type=float, default=16, help='cap for sliceline')
    parser.add_argument('--worker', choices=['beam', 'sliceline'])
    parser.add_argument('--measure')
    parser.add_argument('--rows', type=int)
    parser.add_argument('--seed-list')
    parser.add_argument('--planted', action='store_true')
    parser.add_argument(
        '--scenario',
        choices=SCENARIOS + ('scale',),
        help='worker: which data; else the one table to print (default: all three)',
    )
    parser.add_argument(
        '--misaligned-sizes', default='40000,100000', help='sizes of the misaligned table'
    )
    parser.add_argument(
        '--beam-mode',
        choices=BEAM_MODES,
        default='in_process',
        help="worker: how Beam runs (the pipelines' --beam-mode)",
    )
    parser.add_argument('--workers', type=int, default=2, help='worker processes for multi_process')
    parser.add_argument(
        '--scale-sizes',
        default='1000000,10000000,30000000',
        help='sizes of the scale table (one planted seed each); empty: no scale table',
    )
    parser.add_argument(
        '--scale-modes', default=','.join(BEAM_MODES), help='beam modes of the scale table'
    )
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(json.loads(args.measure))))
        return
    if args.worker:
        seeds = [int(s) for s in args.seed_list.split(',')]
        if args.worker == 'beam':
            result = _beam_worker(
                args.rows, seeds, args.planted, args.scenario, args.beam_mode, args.workers
            )
        else:
            result = _sliceline_worker(args.rows, seeds, args.planted, args.memory_gb)
        print(json.dumps(result))
        return

    if args.scenario == 'misaligned':
        _misaligned_table(args)
        return
    if args.scenario == 'scale':
        _scale_table(args)
        return
    print(
        f'planted: categorical {CATEGORICAL_SLICE} ({CATEGORICAL_RATE:.0%} errors), numeric '
        f'{NUMERIC_RANGE[1]} <= x0 < {NUMERIC_RANGE[2]} ({NUMERIC_RATE:.0%}), below support '
        f'{TINY_SLICE}; base {BASE_ERROR_RATE:.0%}; fine bin {BIN_WIDTH:.4f}; '
        f'{args.seeds} seeds, {args.null_seeds} null seeds'
    )
    print(
        f'{"rows":>10} | {"method":<9} | {"recall":>6} | {"precision":>9} (  n, coarser) | '
        f'{"range error":>11} | {"null FP":>9} | {"s/run":>7} | {"peak MB":>7}'
    )
    for rows in [int(size) for size in args.sizes.split(',')]:
        seeds = list(range(args.seeds))
        null_seeds = list(range(100, 100 + args.null_seeds))
        planted = _run_worker('beam', rows, seeds, True, args)
        null = _run_worker('beam', rows, null_seeds, False, args) if null_seeds else {}
        print(_row('blindspot', rows, planted, null, args.seeds, args.null_seeds), flush=True)
        if rows <= args.sliceline_max_rows:
            theirs = _run_worker('sliceline', rows, seeds, True, args)
            if 'error' not in theirs and 'error' not in planted:
                ours = np.mean([r['seconds'] for r in planted['runs']])
                mean = np.mean([r['seconds'] for r in theirs['runs']])
                theirs['ratio'] = mean / ours
            line = _row('sliceline', rows, theirs, {}, args.seeds, 0)
            if 'ratio' in theirs:
                line += f' | {theirs["ratio"]:.1f}x the time'
            print(line, flush=True)
    if args.scenario in (None, 'misaligned'):
        _misaligned_table(args)
    _scale_table(args)


def _misaligned_table(args) -> None:
    ranges = ', '.join(
        f'{lo} <= {f} < {hi} ({r:.0%})' for f, (lo, hi, r) in MISALIGNED_RANGES.items()
    )
    print(
        f'\nmisaligned: categorical {CATEGORICAL_SLICE} ({CATEGORICAL_RATE:.0%} errors), {ranges}; '
        f'base {MISALIGNED_BASE_RATE:.0%}; {SETTINGS.num_bins} bins; edge tolerance '
        f'{EDGE_TOLERANCE}; {args.seeds} seeds, {args.null_seeds} null seeds'
    )
    regions = ['categorical', *MISALIGNED_RANGES]
    print(
        f'{"rows":>10} | exactly one finding per region ({", ".join(regions)}) | '
        f'{"precision":>9} (  n) | {"edge error":>10} | {"null FP":>7} | {"s/run":>6}'
    )
    for rows in [int(size) for size in args.misaligned_sizes.split(',')]:
        seeds = list(range(args.seeds))
        planted = _run_worker('beam', rows, seeds, True, args, 'misaligned')
        null_seeds = list(range(100, 100 + args.null_seeds))
        null = (
            _run_worker('beam', rows, null_seeds, False, args, 'misaligned') if null_seeds else {}
        )
        if 'error' in planted:
            print(f'{rows:>10,} | {planted["error"]}', flush=True)
            continue
        scores = score_misaligned(planted['runs'])
        per_region = ', '.join(f'{scores["exactly_one"][r]}/{len(seeds)}' for r in regions)
        null_text = (
            '-'
            if not null or 'error' in null
            else (f'{sum(bool(r["held"]) for r in null["runs"])}/{len(null_seeds)}')
        )
        seconds = np.mean([r['seconds'] for r in planted['runs']])
        print(
            f'{rows:>10,} | {per_region:<54} | '
            f'{scores["precision"]:>9.0%} ({scores["findings"]:>3}) | '
            f'{scores["edge_error"]:>10.3f} | {null_text:>7} | {seconds:>6.1f}',
            flush=True,
        )


def _scale_table(args) -> None:
    """Time and peak memory of one planted seed per size and Beam mode, the growth of the peak
    per million rows, and whether each mode's held findings are in_process's."""
    sizes = [int(size) for size in args.scale_sizes.split(',') if size]
    modes = [mode for mode in args.scale_modes.split(',') if mode]
    if not sizes:
        return
    print(
        f'\nscale: planted data of the first table, seed 0; multi_process with {args.workers} '
        'workers; peak MB of the worker process tree; growth: MB of peak per million rows '
        f'over {sizes[0]:,} rows; CPU s: of the worker and its Beam processes (the wall time of a '
        'quiet machine, in_process); load: 1-minute load average at the end of the run'
    )
    print(
        f'{"rows":>11} | {"beam mode":<13} | {"recall":>6} | {"precision":>9} | '
        f'{"s/run":>6} | {"CPU s":>6} | {"peak MB":>7} | {"growth":>6} | same findings | '
        f'{"load":>4}'
    )
    first: Dict[str, Dict] = {}
    baseline: Dict[int, List] = {}
    targets = []
    for rows in sizes:
        for mode in modes:
            result = _run_worker('beam', rows, [0], True, args, beam_mode=mode)
            if 'error' in result:
                print(f'{rows:>11,} | {mode:<13} | {result["error"]}', flush=True)
                continue
            run = result['runs'][0]
            scores = score_runs(result['runs'])
            first.setdefault(mode, {'rows': rows, 'peak_mb': result['peak_mb']})
            extra_rows = (rows - first[mode]['rows']) / 1e6
            # Growth needs a smaller size of the same mode before it: NaN (no verdict) otherwise.
            growth = (
                (result['peak_mb'] - first[mode]['peak_mb']) / extra_rows
                if extra_rows
                else math.nan
            )
            same = baseline.setdefault(rows, run['held']) == run['held']
            print(
                f'{rows:>11,} | {mode:<13} | {scores["recall"]:>6.0%} | '
                f'{scores["precision"]:>9.0%} | {run["seconds"]:>6.1f} | {run["cpu"]:>6.1f} | '
                f'{result["peak_mb"]:>7,.0f} | {growth:>6.0f} | '
                f'{"yes" if same else "NO":<13} | {run["load"]:>4.1f}',
                flush=True,
            )
            if rows == SCALE_TARGET_ROWS:
                name = f'{rows / 1e6:.0f}M rows, {mode}'
                targets += [
                    (f'{name}: s', run['seconds'], SCALE_TARGET_SECONDS),
                    (f'{name}: peak MB', result['peak_mb'], SCALE_TARGET_PEAK_MB),
                    (f'{name}: MB per 1M rows', growth, SCALE_TARGET_GROWTH_MB),
                ]
    if targets:
        print('Targets (one quiet 2-core machine)')
        for name, value, limit in targets:
            verdict = (
                'needs a smaller size too'
                if math.isnan(value)
                else ('met' if value <= limit else 'MISSED')
            )
            print(f'  {name:<38} {value:>8.1f} (at most {limit:.0f}): {verdict}')


if __name__ == '__main__':
    main()
