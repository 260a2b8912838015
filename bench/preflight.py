"""The Kubeflow csv pipeline's CsvPreflight read of every row: one pass in one process (what
the step did before, and what the local runner does) against the step's Beam scan, one file per
element, on the same rows written as one file and as a folder of shards. The Beam scan's result
must equal the one pass's; its speed-up comes from the runner's workers, one file each.

    python bench/preflight.py                       # 1M rows x 8 columns, 8 shards
    python bench/preflight.py --rows 200000 --shards 4
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blindspot.pipelines import preflight  # noqa: E402
from blindspot.pipelines.config import RunConfig  # noqa: E402
from blindspot.pipelines.csv import preflight_step  # noqa: E402


def write_shards(folder: Path, rows: int, shards: int, seed: int = 0) -> List[str]:
    """ROWS rows of 8 columns (ints, floats, text, 'NA' in a numeric column, a 3-class label)
    as SHARDS files of equal size."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    per_file = -(-rows // shards)
    for k in range(shards):
        n = min(per_file, rows - k * per_file)
        ints = rng.integers(0, 50, n)
        floats = rng.normal(0, 3, n).round(3)
        colours = rng.choice(['red', 'green', 'blue', 'grey'], n)
        scores = np.where(rng.random(n) < 0.05, 'NA', rng.integers(0, 100, n).astype(str))
        labels = rng.choice(['no', 'yes', 'maybe'], n)
        path = folder / f'part-{k:03d}.csv'
        with open(path, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['a', 'b', 'colour', 'score', 'c', 'd', 'e', 'y'])
            writer.writerows(
                zip(ints, floats, colours, scores, ints % 7, floats * 2, colours, labels)
            )
        paths.append(str(path))
    return paths


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=1_000_000)
    p.add_argument('--shards', type=int, default=8)
    p.add_argument('--workers', type=int, default=2, help='multi-process DirectRunner workers')
    args = p.parse_args()
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    def pipeline(mode: str):
        config = RunConfig(beam_mode=mode, workers=args.workers)
        return lambda: beam.Pipeline(options=PipelineOptions(config.beam_pipeline_args()))

    with tempfile.TemporaryDirectory() as work:
        shards = write_shards(Path(work) / 'shards', args.rows, args.shards)
        one, _ = timed(preflight.scan_csv_files, shards, 'y')  # warm the page cache
        lines = [('one pass, one process', *timed(preflight.scan_csv_files, shards, 'y'))]
        for mode in ('in_process', 'multi_process'):
            lines.append(
                (
                    f'Beam {mode}' + (f' ({args.workers} workers)' if mode != 'in_process' else ''),
                    *timed(
                        preflight_step.scan_in_parallel, shards, 'y', None, pipeline(mode), work
                    ),
                )
            )
    base = lines[0][2]
    print(f'\nCsvPreflight over {args.rows:,} rows x 8 columns in {args.shards} files')
    print(f'{"read":34s} {"s":>7s} {"rows/s":>10s} {"vs one pass":>12s} {"same scan":>10s}')
    for name, scan, seconds in lines:
        same = scan == one
        print(
            f'{name:34s} {seconds:7.1f} {args.rows / seconds:10,.0f} {base / seconds:11.2f}x '
            f'{"yes" if same else "NO":>10s}'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
