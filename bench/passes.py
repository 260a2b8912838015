"""Per-pass costs of slice discovery, for sizing a cluster (docs/cost.md).

Generates ROWS x COLUMNS (half categorical of 3 to 200 values, half numeric, some with missing
values; a failing slice planted) in batches of 50k rows and runs, batch by batch, the functions
each pass of DiscoverSlices applies to a batch (beam/slices.py), without a runner: so the numbers
are the work per row of each pass, not the runner's overhead (bench/findings.py measures the
whole pipeline). Per pass it prints the CPU seconds per million rows, the bytes each worker
bundle sends to the shuffle (its partial combine: a pickled accumulator), the memory the work on
one batch allocates (tracemalloc's peak: numpy arrays and Python objects), and the bytes per row
of the raw slicing columns and of the encoded batches the passes after the encoding read.

    python bench/passes.py                    # 1M rows x 30 columns
    python bench/passes.py --rows 200000 --columns 12
"""

import argparse
import os
import pickle
import sys
import time
import tracemalloc
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blindspot.error_analysis.beam import slices as beam_slices  # noqa: E402
from blindspot.error_analysis.search import findings, lattice, ranges  # noqa: E402
from blindspot.error_analysis.settings import Settings  # noqa: E402

BATCH_ROWS = beam_slices.DEFAULT_ROWS_PER_BATCH
CARDINALITIES = (3, 8, 20, 50, 200)


def generate(seed: int, rows: int, columns: int) -> lattice.ColumnBatch:
    rng = np.random.default_rng(seed)
    data: Dict[str, np.ndarray] = {}
    for i in range(columns // 2):
        values = np.array([f'v{j}' for j in range(CARDINALITIES[i % len(CARDINALITIES)])])
        data[f'c{i}'] = values.astype(object)[rng.zipf(1.5, rows) % len(values)]
    for i in range(columns - columns // 2):
        numbers = rng.normal(size=rows)
        if i % 3 == 0:
            numbers[rng.random(rows) < 0.05] = np.nan
        data[f'n{i}'] = numbers
    rates = np.where((data['c0'] == 'v1') & (data['n0'] > 0.5), 0.4, 0.08)
    return lattice.ColumnBatch(
        columns=data,
        errors=(rng.random(rows) < rates).astype(np.int8),
        example_ids=np.array([f'{seed}-{i}' for i in range(rows)]),
    )


class Pass:
    """CPU seconds, the largest pickled partial result and the memory one batch takes, of one
    pass over the batches."""

    def __init__(self, name: str):
        self.name, self.cpu, self.partial_bytes, self.batch_bytes = name, 0.0, 0, 0

    def run(self, function, *args):
        if not self.batch_bytes:  # the first batch again, traced: the memory its work takes
            tracemalloc.start()
            function(*args)
            self.batch_bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        start = time.process_time()
        result = function(*args)
        self.cpu += time.process_time() - start
        return result

    def partial(self, value) -> None:
        self.partial_bytes = max(self.partial_bytes, len(pickle.dumps(value)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--columns', type=int, default=30)
    args = parser.parse_args()
    settings = Settings()
    batches = [
        generate(seed, min(BATCH_ROWS, args.rows - start), args.columns)
        for seed, start in enumerate(range(0, args.rows, BATCH_ROWS))
    ]
    names = list(batches[0].columns)
    passes: List[Pass] = []

    sketch = Pass('encoder sketches')
    stats_fn = beam_slices.BuildEncoders(
        names, settings.num_bins, settings.max_values_per_feature
    )._combine_fn
    accumulators = []
    for batch in batches:
        accumulator = sketch.run(stats_fn.add_input, stats_fn.create_accumulator(), batch)
        sketch.partial(accumulator)
        accumulators.append(accumulator)
    encoders = stats_fn.extract_output(stats_fn.merge_accumulators(accumulators))
    passes.append(sketch)

    encode = Pass('encode (+ level 1 on a runner)')
    encoded = [encode.run(beam_slices._encode, batch, encoders) for batch in batches]
    passes.append(encode)
    encoded_bytes = sum(len(pickle.dumps(batch)) for batch in encoded) / args.rows
    raw_bytes = sum(len(pickle.dumps(batch)) for batch in batches) / args.rows

    config = lattice.SliceFinderConfig.from_settings(settings)
    state = beam_slices._initial_state(encoders, config)
    for level in range(1, config.max_predicates + 1):
        count = Pass(f'level {level}')
        candidates = lattice.generate_candidates(state)
        totals = None
        for batch in encoded:
            counts = count.run(beam_slices._count, batch, candidates)
            count.partial(counts)
            totals = counts if totals is None else totals + counts
        state = lattice.next_level(state, candidates, totals)
        count.name += f' ({candidates.size:,} candidates)'
        passes.append(count)

    range_pass = Pass('ranges')
    jobs = ranges.range_jobs(state, encoders)
    totals = None
    for batch in encoded:
        counts = range_pass.run(beam_slices._count_ranges, batch, jobs)
        range_pass.partial(counts)
        totals = counts if totals is None else totals + counts
    range_pass.name += f' ({jobs.size} histograms)'
    passes.append(range_pass)
    conditions = ranges.refine(state, encoders, jobs, totals)

    pattern_pass = Pass('membership patterns')
    tables = []
    for batch in encoded:
        table = pattern_pass.run(beam_slices._count_patterns, batch, conditions)
        pattern_pass.partial(table)
        tables.append(table)
    pattern_pass.name += f' ({len(conditions)} candidates)'
    passes.append(pattern_pass)
    result = findings.summarize(
        state, encoders, conditions, beam_slices.MergePatternTablesFn().extract_output(tables)
    )

    print(
        f'{args.rows:,} rows x {args.columns} columns ({len(encoders)} features), batches of '
        f'{BATCH_ROWS:,}; pickled, {raw_bytes:.0f} bytes a row raw, {encoded_bytes:.1f} '
        'encoded; '
        f'{sum(s.held for s in result.slices)} held findings'
    )
    print(
        f'{"pass":<40} | {"CPU s per 1M rows":>17} | {"partial per bundle":>18} | '
        f'{"memory per batch":>16}'
    )
    for one in passes:
        per_million = one.cpu / args.rows * 1e6
        print(
            f'{one.name:<40} | {per_million:>17.2f} | {one.partial_bytes:>12,} bytes | '
            f'{one.batch_bytes / 2**20:>13.1f} MB'
        )


if __name__ == '__main__':
    main()
