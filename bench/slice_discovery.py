"""Benchmark: failing-slice discovery, Beam path vs the `sliceline` package.

Synthetic data: 20 categorical features of 8 values (Zipf-like frequencies;
--values uniform for equal ones), 10% base error rate and planted failing
slices of 1, 2 and 3 predicates.
Search settings: alpha 0.95, max level 3, min support 1% of the search half,
K = 10.

* blindspot: BuildEncoders + DiscoverSlices in one Beam pipeline on the
  in-process DirectRunner (--direct_running_mode=in_memory,
  --direct_num_workers=1), fed 10,000-row batches generated inside the
  pipeline (the time includes generating them: see the "gen" column).
* sliceline: `Slicefinder(alpha, k, max_l, min_sup).fit` on the search half
  rows only (the rows Blindspot searches; the hold-out half is never given
  to it), with the same absolute min_sup. Only the fit is timed.

Each run is a separate process; its peak memory is
getrusage(RUSAGE_CHILDREN).ru_maxrss read by a small parent that runs only
that one child. The package runs under an address-space cap
(--sliceline_memory_gb): when it hits it, the time until the MemoryError is a
lower bound of its run time. "Agree" compares the package's top-K with
Blindspot's exact top-K (before the redundancy filter) on scores and
predicates, computed in memory on the same rows.

Usage: python bench/slice_discovery.py [--sizes 10000,100000,1000000]
       [--sliceline_max_rows 100000] [--sliceline_memory_gb 16]
       [--values skewed|uniform]
"""

import argparse
import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.error_analysis.search import (
    binning,
    findings,
    lattice,
)

NUM_FEATURES = 20
NUM_VALUES = 8
SHARD_ROWS = 10_000
BASE_ERROR_RATE = 0.1
# ({feature: value}, error rate inside the slice).
PLANTED_SLICES = [({1: 3}, 0.3), ({3: 1, 7: 2}, 0.6), ({4: 0, 9: 1, 12: 0}, 0.7)]
FEATURES = [f'f{feature}' for feature in range(NUM_FEATURES)]
VALUES = np.array([f'v{value}' for value in range(NUM_VALUES)], dtype=object)
# Value frequencies. 'skewed' (Zipf-like) lets 3-predicate slices pass 1%
# support; with 'uniform' every 3-predicate slice has 0.2% of the rows.
VALUE_PROBABILITIES = {
    'skewed': 1.0 / np.arange(1, NUM_VALUES + 1) / np.sum(1.0 / np.arange(1, NUM_VALUES + 1)),
    'uniform': np.full(NUM_VALUES, 1.0 / NUM_VALUES),
}
CONFIG = lattice.SliceFinderConfig(
    alpha=0.95, max_predicates=3, min_slice_size=0.01, num_slices=10, significance=0.05
)


def generate_shard(shard: int, values: str) -> lattice.ColumnBatch:
    """Rows [shard * SHARD_ROWS, (shard + 1) * SHARD_ROWS), deterministic."""
    rng = np.random.default_rng(shard)
    codes = rng.choice(NUM_VALUES, size=(SHARD_ROWS, NUM_FEATURES), p=VALUE_PROBABILITIES[values])
    rates = np.full(SHARD_ROWS, BASE_ERROR_RATE)
    for predicates, rate in PLANTED_SLICES:
        inside = np.all([codes[:, f] == v for f, v in predicates.items()], axis=0)
        rates[inside] = np.maximum(rates[inside], rate)
    first = shard * SHARD_ROWS
    return lattice.ColumnBatch(
        columns={name: VALUES[codes[:, j]] for j, name in enumerate(FEATURES)},
        errors=(rng.random(SHARD_ROWS) < rates).astype(np.int8),
        example_ids=np.array([f'row-{i}' for i in range(first, first + SHARD_ROWS)]),
    )


def _num_shards(rows: int) -> int:
    if rows % SHARD_ROWS:
        raise ValueError(f'rows must be a multiple of {SHARD_ROWS}')
    return rows // SHARD_ROWS


def _beam_worker(rows: int, values: str) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.error_analysis.beam import slices as beam_slices

    start = time.perf_counter()
    for shard in range(_num_shards(rows)):
        generate_shard(shard, values)
    generation_seconds = time.perf_counter() - start

    output_path = f'/tmp/slice_discovery_bench_{os.getpid()}.json'

    def save(result: findings.SliceSearchResult) -> None:
        with open(output_path, 'w') as file:
            json.dump(result.to_dict(), file)

    options = PipelineOptions(['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        batches = (
            pipeline
            | beam.Create(list(range(_num_shards(rows))))
            | beam.Map(generate_shard, values)
        )
        encoders = batches | beam_slices.BuildEncoders(FEATURES)
        result = batches | beam_slices.DiscoverSlices(encoders, CONFIG)
        _ = result | beam.Map(save)
    seconds = time.perf_counter() - start
    with open(output_path) as file:
        result = json.load(file)
    os.remove(output_path)
    return {
        'seconds': seconds,
        'generation_seconds': generation_seconds,
        'slices': result['slices'],
        'levels': result['levels'],
    }


def _all_rows(rows: int, values: str) -> lattice.ColumnBatch:
    shards = [generate_shard(shard, values) for shard in range(_num_shards(rows))]
    return lattice.ColumnBatch(
        columns={
            name: np.concatenate([shard.columns[name] for shard in shards]) for name in FEATURES
        },
        errors=np.concatenate([shard.errors for shard in shards]),
        example_ids=np.concatenate([shard.example_ids for shard in shards]),
    )


def _sliceline_worker(rows: int, values: str, memory_gb: float) -> dict:
    """Runs the package, then Blindspot in memory on the same data to compare.

    If memory_gb > 0 the address space is capped so that the package fails
    with a MemoryError instead of waking the kernel's OOM killer on a shared
    machine; either way this process is the OOM killer's first choice.
    """
    from sliceline.slicefinder import Slicefinder

    with open('/proc/self/oom_score_adj', 'w') as file:
        file.write('1000')
    if memory_gb > 0:
        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    data = _all_rows(rows, values)
    holdout = lattice.holdout_mask(data.example_ids)
    search = ~holdout
    min_support_rows = CONFIG.min_support_rows(int(search.sum()))
    x_search = np.stack([data.columns[name][search] for name in FEATURES], axis=1)
    start = time.perf_counter()
    try:
        # Float errors: with int8 errors the package's sparse products overflow.
        package = Slicefinder(
            alpha=CONFIG.alpha,
            k=CONFIG.num_slices,
            max_l=CONFIG.max_predicates,
            min_sup=min_support_rows,
            verbose=False,
        ).fit(x_search, data.errors[search].astype(float))
    except MemoryError as error:
        return {'error': f'MemoryError: {str(error)[:70]}', 'seconds': time.perf_counter() - start}
    seconds = time.perf_counter() - start
    package_slices = [
        sorted((FEATURES[j], value) for j, value in enumerate(row) if value is not None)
        for row in package.top_slices_
    ]
    package_scores = [stats['slice_score'] for stats in package.top_slices_statistics_]

    encoders = [
        binning.categorical_encoder(
            name, dict(zip(*np.unique(data.columns[name], return_counts=True)))
        )
        for name in FEATURES
    ]
    codes = np.stack([encoder.encode(data.columns[encoder.name]) for encoder in encoders], axis=1)
    state = lattice.initial_state([encoder.cardinality for encoder in encoders], CONFIG)
    for _ in range(CONFIG.max_predicates):
        candidates = lattice.generate_candidates(state)
        state = lattice.next_level(
            state, candidates, lattice.count_candidates(codes, data.errors, holdout, candidates)
        )
    top = len(package_scores)
    own_slices = [
        sorted(
            (FEATURES[feature], encoders[feature].vocabulary[code])
            for feature, code in zip(*lattice.split_predicates(row[row >= 0], state.cardinalities))
        )
        for row in state.top_predicates[:top]
    ]
    scores_agree = bool(
        np.allclose(sorted(package_scores), sorted(state.top_scores[:top]), rtol=1e-9)
    )
    return {
        'seconds': seconds,
        'version': importlib.metadata.version('sliceline'),
        'min_support_rows': min_support_rows,
        'returned': top,
        'scores_agree': scores_agree,
        'same_slices': sum(s in own_slices for s in package_slices),
        'in_memory_slices': findings.summarize(state, encoders).to_dict()['slices'],
        'top_score': package_scores[0] if package_scores else None,
    }


def _forwarded_flags(rows: int, args: argparse.Namespace) -> list:
    return [
        '--rows',
        str(rows),
        '--values',
        args.values,
        '--timeout',
        str(args.timeout),
        '--sliceline_memory_gb',
        str(args.sliceline_memory_gb),
    ]


def _measure(method: str, rows: int, args: argparse.Namespace) -> dict:
    """Runs one worker as this process's only child; adds its peak memory."""
    try:
        completed = subprocess.run(
            [sys.executable, __file__, '--worker', method] + _forwarded_flags(rows, args),
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {'error': f'timed out after {args.timeout:.0f} s'}
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if completed.returncode != 0:
        return {
            'error': f'exit {completed.returncode}: ' + completed.stderr[-500:],
            'peak_mb': peak_mb,
        }
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), 'peak_mb': peak_mb}


def _run_isolated(method: str, rows: int, args: argparse.Namespace) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, '--measure', method] + _forwarded_flags(rows, args),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='10000,100000,1000000')
    parser.add_argument('--sliceline_max_rows', type=int, default=100_000)
    parser.add_argument('--timeout', type=float, default=3600)
    parser.add_argument('--values', choices=sorted(VALUE_PROBABILITIES), default='skewed')
    parser.add_argument(
        '--sliceline_memory_gb',
        type=float,
        default=16,
        help='address-space cap for the package; 0: none',
    )
    parser.add_argument('--worker', choices=['beam', 'sliceline'])
    parser.add_argument('--measure', choices=['beam', 'sliceline'])
    parser.add_argument('--rows', type=int)
    args = parser.parse_args()
    if args.worker == 'beam':
        print(json.dumps(_beam_worker(args.rows, args.values)))
        return
    if args.worker == 'sliceline':
        print(json.dumps(_sliceline_worker(args.rows, args.values, args.sliceline_memory_gb)))
        return
    if args.measure:
        print(json.dumps(_measure(args.measure, args.rows, args)))
        return

    print(
        f'{"rows":>9} | {"blindspot s":>11} {"gen s":>6} {"peak MB":>8} | '
        f'{"sliceline s":>11} {"peak MB":>8} | {"speed-up":>8} | agree'
    )
    for rows in [int(size) for size in args.sizes.split(',')]:
        ours = _run_isolated('beam', rows, args)
        line = (
            f'{rows:>9,} | {ours["seconds"]:>11.1f} '
            f'{ours["generation_seconds"]:>6.1f} {ours["peak_mb"]:>8,.0f} | '
        )
        if rows <= args.sliceline_max_rows:
            theirs = _run_isolated('sliceline', rows, args)
            if 'error' in theirs and 'seconds' in theirs:  # ran out of memory
                line += (
                    f'{theirs["error"]} after {theirs["seconds"]:.0f} s | '
                    f'>{theirs["seconds"] / ours["seconds"]:.0f}x'
                )
            elif 'error' in theirs:
                line += theirs['error'][:80]
            else:
                same_report = theirs['in_memory_slices'] == ours['slices']
                line += (
                    f'{theirs["seconds"]:>11.1f} {theirs["peak_mb"]:>8,.0f} | '
                    f'{theirs["seconds"] / ours["seconds"]:>7.1f}x | '
                    f'scores {"yes" if theirs["scores_agree"] else "NO"}, '
                    f'{theirs["same_slices"]}/{theirs["returned"]} same slices; '
                    f'beam == in-memory: {"yes" if same_report else "NO"} '
                    f'(sliceline {theirs["version"]})'
                )
        else:
            line += f'{"not run":>11} {"":>8} | {"":>8} |'
        print(line, flush=True)
        print(
            '    levels (candidates, expanded): '
            + ', '.join(
                f'{level["candidates"]:,}/{level["expanded"]:,}' for level in ours['levels']
            )
        )
        print(
            '    reported: '
            + '; '.join(
                f'{s["slice"]} ({s["holdout_error_rate"]:.2f}{", held" if s["held"] else ""})'
                for s in ours['slices'][:5]
            ),
            flush=True,
        )


if __name__ == '__main__':
    main()
