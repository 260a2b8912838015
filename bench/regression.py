"""Regression benchmark: does ErrorAnalysis find every planted region where a numeric
prediction goes wrong, and nothing else?

Generated data with known answers, the features of bench/findings.py (8 categorical of 8
values, 4 numeric uniform on [0, 1)), a numeric target y = 3 x1 + effect(c5) + noise (sigma
NOISE) and a model's prediction 3 x1 + effect(c5), so the residual is the noise, except:

  categorical  c0 = a AND c1 = b        1.6% of rows: the prediction +3 sigma (biased; findable)
  numeric      0.6 <= x0 < 0.7          10% of rows: noise 4 sigma (spread; findable)
  tiny         c2 = c AND c3 = d AND c4 = e   0.2% of rows, +3 sigma (below the 1% minimum
               slice size: not findable, and not an error to report)
  null         the same features, no region: any held finding is a false positive

Each run goes through the component's real Beam path for a regression model (FlagAboveMedian,
BuildEncoders, DiscoverSlices, CountRegression and regression_parts: beam/regression.py;
in-process DirectRunner, default Settings). Printed per size, as bench/findings.py prints it
(its judging: recall of the two findable regions, precision of held findings, a numeric
finding right if its edges are within one fine bin of 0.6 and 0.7), plus the seeds where the
biased region's finding gives its bias (mean residual within 0.5 sigma of +3 sigma). The `sliceline`
package runs on the same per-row absolute errors where it fits in memory. Last, time and peak
memory at the largest size beside a classifier's analysis on bench/findings.py's data of the
same size, each with its flag, the search and its per-finding counting pass (target: within
1.5x), and beside bench/findings.py's search alone; CPU seconds too, since on a shared machine
wall time mostly measures the other load.

    python bench/regression.py                        # make bench-regression
    python bench/regression.py --sizes 10000 --seeds 2 --null-seeds 2
    python bench/regression.py --sizes 1000000 --seeds 0 --compare-seeds 2   # time and memory
"""

import argparse
import json
import os
import sys
import time
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import findings as planted  # noqa: E402

NOISE = 1.0
BIAS = 3.0 * NOISE
SPREAD = 4.0
EFFECTS = np.linspace(-2, 2, len(planted.LETTERS))
NAMES = planted.CATEGORICAL + planted.NUMERIC


def generate_shard(seed: int, shard: int, rows: int, regions: bool):
    """Deterministic rows of one shard: a PredictionBatch of a regression model."""
    from blindspot.error_analysis.beam.batch import PredictionBatch

    rng = np.random.default_rng([seed, shard, int(regions), 7])
    columns: Dict[str, np.ndarray] = {
        name: planted.LETTERS[rng.integers(0, len(planted.LETTERS), rows)]
        for name in planted.CATEGORICAL
    }
    columns.update({name: rng.random(rows) for name in planted.NUMERIC})
    signal = 3 * columns['x1'] + EFFECTS[np.searchsorted(planted.LETTERS, columns['c5'])]
    noise = np.full(rows, NOISE)
    prediction = signal.copy()
    if regions:
        feature, low, high = planted.NUMERIC_RANGE
        noise[(columns[feature] >= low) & (columns[feature] < high)] *= SPREAD
        for predicates in (planted.CATEGORICAL_SLICE, planted.TINY_SLICE):
            inside = np.all([columns[f] == v for f, v in predicates.items()], axis=0)
            prediction[inside] += BIAS
    label = signal + rng.normal(0, 1, rows) * noise
    first = shard * planted.SHARD_ROWS
    return PredictionBatch(
        example_ids=np.array([f'{seed}-{i}' for i in range(first, first + rows)], dtype=object),
        labels=label,
        probabilities=np.zeros((rows, 0)),
        columns=columns,
        label_suspect=np.zeros(rows, dtype=bool),
        values=prediction,
    )


def _search(flagged):
    """(encoders, the DiscoverSlices step, its result) of flagged PredictionBatches: the
    component's search with the default settings."""
    import apache_beam as beam

    from blindspot.error_analysis.beam import slices as beam_slices
    from blindspot.error_analysis.search import lattice

    columns = flagged | 'ToColumns' >> beam.Map(
        lambda b: lattice.ColumnBatch(b.columns, b.errors, b.example_ids)
    )
    encoders = columns | beam_slices.BuildEncoders(
        NAMES, planted.SETTINGS.num_bins, planted.SETTINGS.max_values_per_feature
    )
    discover = beam_slices.DiscoverSlices(
        encoders, lattice.SliceFinderConfig.from_settings(planted.SETTINGS)
    )
    return encoders, discover, columns | discover


def _in_process_pipeline():
    """The in-process DirectRunner both workers time."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    return beam.Pipeline(options=options)


def _shard_batches(pipeline, rows: int, make_batch):
    """The generated rows as PredictionBatches, one per planted shard: make_batch(shard, n)."""
    import apache_beam as beam

    return pipeline | beam.Create(list(enumerate(planted.shards(rows)))) | beam.MapTuple(make_batch)


def _beam_worker(rows: int, seeds: List[int], regions: bool) -> Dict:
    import apache_beam as beam

    from blindspot.error_analysis.beam import regression as beam_regression

    runs = []
    for seed in seeds:
        output_path = f'/tmp/regression_bench_{os.getpid()}_{seed}.json'

        def save(part, path=output_path) -> None:
            with open(path, 'w') as file:
                json.dump(part['slices'], file)

        start = time.perf_counter()
        with _in_process_pipeline() as pipeline:
            batches = _shard_batches(
                pipeline, rows, lambda shard, n, s=seed: generate_shard(s, shard, n, regions)
            )
            flagged, quantiles = batches | beam_regression.FlagAboveMedian('absolute')
            encoders, discover, found = _search(flagged)
            table = flagged | beam_regression.CountRegression(
                NAMES,
                encoders,
                discover.conditions,
                quantiles,
                pipeline | 'NoTrainRows' >> beam.Create([]),
            )
            _ = (
                table
                | beam.Map(
                    beam_regression.regression_parts,
                    beam.pvalue.AsSingleton(found),
                    beam.pvalue.AsSingleton(discover.conditions),
                    beam.pvalue.AsSingleton(encoders),
                    beam.pvalue.AsSingleton(quantiles),
                    'absolute',
                )
                | beam.Map(save)
            )
        seconds = time.perf_counter() - start
        with open(output_path) as file:
            slices = json.load(file)
        os.remove(output_path)
        held = [s for s in slices['slices'] if s['held']]
        runs.append({'seconds': seconds, 'held': held})
    return {'runs': runs}


def _classification_worker(rows: int, seeds: List[int]) -> Dict:
    """bench/findings.py's classification data through the same steps a classifier's analysis
    takes for its findings: the label-suspect flag, the search and the per-finding counting
    pass (DiagnoseCandidates), the like of a regression's FlagAboveMedian, search and
    CountRegression. Its predictions: the right class with probability 0.8, or the wrong one."""
    import apache_beam as beam

    from blindspot.error_analysis.beam import diagnosis as beam_diagnosis
    from blindspot.error_analysis.beam.batch import PredictionBatch

    def batch(seed: int, shard: int, n: int) -> PredictionBatch:
        found = planted.generate_shard(seed, shard, n, True)
        labels = np.zeros(n, dtype=np.int64)
        predicted = found.errors.astype(np.int64)  # wrong where the row is an error
        probabilities = np.full((n, 2), 0.2)
        probabilities[np.arange(n), predicted] = 0.8
        return PredictionBatch(found.example_ids, labels, probabilities, found.columns)

    runs = []
    for seed in seeds:
        start = time.perf_counter()
        with _in_process_pipeline() as pipeline:
            batches = _shard_batches(pipeline, rows, lambda shard, n, s=seed: batch(s, shard, n))
            flagged, thresholds = batches | beam_diagnosis.FlagLabelSuspects(2)
            encoders, discover, _ = _search(flagged)
            _ = flagged | beam_diagnosis.DiagnoseCandidates(
                NAMES,
                encoders,
                discover.conditions,
                thresholds,
                pipeline | 'NoTrainRows' >> beam.Create([]),
            )
        runs.append({'seconds': time.perf_counter() - start, 'held': []})
    return {'runs': runs}


def _sliceline_worker(rows: int, seeds: List[int], memory_gb: float) -> Dict:
    """The sliceline package on the same rows' absolute errors (bench/findings.py's runner)."""
    planted.cap_memory(memory_gb)
    runs = []
    for seed in seeds:
        parts = [generate_shard(seed, s, n, True) for s, n in enumerate(planted.shards(rows))]
        columns = {name: np.concatenate([p.columns[name] for p in parts]) for name in NAMES}
        errors = np.abs(np.concatenate([p.residual for p in parts]))
        ids = np.concatenate([p.example_ids for p in parts])
        try:
            runs.append(planted.sliceline_findings(columns, errors, ids))
        except MemoryError as error:
            return {'error': f'MemoryError: {error}'}
    return {'runs': runs}


def _run(method: str, rows: int, seeds: List[int], regions: bool, memory_gb: float) -> Dict:
    """One worker process (this file's, or bench/findings.py's for 'search-only'); its
    peak memory and CPU time from the kernel's accounting (bench/findings.run_measured)."""
    if method == 'search-only':
        command = [sys.executable, planted.__file__, '--worker', 'beam', '--scenario', 'original']
    else:
        command = [sys.executable, __file__, '--worker', method]
    command += ['--rows', str(rows), '--seed-list', ','.join(map(str, seeds))]
    command += ['--memory-gb', str(memory_gb)] + (['--planted'] if regions else [])
    return planted.run_measured(command)


def _bias_named(runs: List[Dict]) -> str:
    """Seeds where a held finding is the biased region and gives its bias: a mean residual
    within 0.5 sigma of +BIAS."""
    good = 0
    for run in runs:
        good += any(
            planted.judge(s)['planted'] == 'categorical'
            and abs(s['regression']['mean_residual'] - BIAS) <= 0.5 * NOISE
            for s in run['held']
        )
    return f'{good}/{len(runs)}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='10000,100000,1000000')
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--null-seeds', type=int, default=20)
    parser.add_argument('--sliceline-max-rows', type=int, default=10_000)
    parser.add_argument('--memory-gb', type=float, default=16, help='cap for sliceline')
    parser.add_argument('--compare-seeds', type=int, default=2, help='classification vs regression')
    parser.add_argument('--worker', choices=['beam', 'sliceline', 'classification'])
    parser.add_argument('--rows', type=int)
    parser.add_argument('--seed-list')
    parser.add_argument('--planted', action='store_true')
    args = parser.parse_args()
    if args.worker:
        seeds = [int(s) for s in args.seed_list.split(',')]
        if args.worker == 'beam':
            result = _beam_worker(args.rows, seeds, args.planted)
        elif args.worker == 'classification':
            result = _classification_worker(args.rows, seeds)
        else:
            result = _sliceline_worker(args.rows, seeds, args.memory_gb)
        print(json.dumps(result))
        return

    print(
        f'planted: {planted.CATEGORICAL_SLICE} prediction +{BIAS:g} sigma, '
        f'{planted.NUMERIC_RANGE[1]} <= x0 < {planted.NUMERIC_RANGE[2]} noise x{SPREAD:g}, '
        f'{planted.TINY_SLICE} +{BIAS:g} sigma (below support); fine bin '
        f'{planted.BIN_WIDTH:.4f}; {args.seeds} seeds, {args.null_seeds} null seeds'
    )
    print(
        f'{"rows":>10} | {"method":<9} | {"recall":>6} | {"precision":>9} (  n, coarser) | '
        f'{"range error":>11} | {"null FP":>9} | {"s/run":>7} | {"peak MB":>7} | bias +3 sigma'
    )
    sizes = [int(size) for size in args.sizes.split(',')]
    for rows in sizes if args.seeds else ():
        seeds = list(range(args.seeds))
        null_seeds = list(range(100, 100 + args.null_seeds))
        ours = _run('beam', rows, seeds, True, args.memory_gb)
        null = _run('beam', rows, null_seeds, False, args.memory_gb) if null_seeds else {}
        line = planted._row('blindspot', rows, ours, null, args.seeds, args.null_seeds)
        if 'runs' in ours:
            line += f' | {_bias_named(ours["runs"])}'
        print(line, flush=True)
        if rows <= args.sliceline_max_rows:
            theirs = _run('sliceline', rows, seeds, True, args.memory_gb)
            print(planted._row('sliceline', rows, theirs, {}, args.seeds, 0), flush=True)
    rows, seeds = sizes[-1], list(range(args.compare_seeds))
    if not seeds:
        return
    print(f'\n{rows:,} rows, {len(seeds)} seeds, one process each: regression vs classification')
    names = {
        'beam': 'regression: median flag, search, CountRegression',
        'classification': 'classification: suspect flag, search, DiagnoseCandidates',
        'search-only': 'classification search only (bench/findings.py)',
    }
    for method, name in names.items():
        result = _run(method, rows, seeds, True, args.memory_gb)
        if 'error' in result:
            print(f'{name:<58} | {result["error"]}')
            continue
        seconds = np.mean([r['seconds'] for r in result['runs']])
        print(
            f'{name:<58} | {seconds:>6.1f} s/run | {result["cpu_s"] / len(seeds):>6.1f} CPU '
            f's/run (worker) | {result["peak_mb"]:>6,.0f} MB peak',
            flush=True,
        )


if __name__ == '__main__':
    main()
