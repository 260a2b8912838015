"""`python local_runner.py review-sheet`: a spreadsheet of mistakes to tag by hand.

Mistakes are sampled per confusion pair (true class, predicted class), so rare confusions are
not drowned by frequent ones, plus a sample of correct predictions so that tags can also say
how accurate the model is on a category. Each row's `weight` is how many examples of its
stratum it stands for; `--tags` uses it to estimate shares and accuracies for the whole split.
"""

import argparse
import csv
import glob
import json
import os
import sys
from typing import Dict, Optional, Sequence

import numpy as np

import components.error_analysis as error_analysis

TAG_COLUMNS = ('tags', 'notes')


def sample_rows(
    labels: np.ndarray, predicted: np.ndarray, per_pair: int, correct: int, seed: int = 0
) -> Dict[int, float]:
    """Row index -> weight: up to `per_pair` mistakes of each confusion pair and up to
    `correct` correct predictions, at random (seeded)."""
    rng = np.random.default_rng(seed)
    chosen: Dict[int, float] = {}
    wrong = labels != predicted
    strata = [
        np.flatnonzero(wrong & (labels == t) & (predicted == p))
        for t, p in sorted(set(zip(labels[wrong].tolist(), predicted[wrong].tolist())))
    ]
    strata = [(rows, per_pair) for rows in strata] + [(np.flatnonzero(~wrong), correct)]
    for rows, size in strata:
        if not len(rows) or size <= 0:
            continue
        picked = rng.choice(rows, size=min(size, len(rows)), replace=False)
        for row in picked:
            chosen[int(row)] = len(rows) / len(picked)
    return chosen


def write_sheet(report_uri: str, out: str, per_pair: int, correct: int, seed: int) -> int:
    """Writes the sheet for one ErrorAnalysis report; returns the number of rows."""
    import pyarrow.parquet as pq

    with open(os.path.join(report_uri, error_analysis.files.REPORT_JSON)) as f:
        report = json.load(f)
    files = sorted(glob.glob(os.path.join(report_uri, report['files']['predictions'])))
    if not files:
        raise FileNotFoundError(f'no per-example predictions under {report_uri}')
    table = pq.read_table(files)
    labels = table.column('label').to_numpy()
    predicted = table.column('predicted').to_numpy()
    chosen = sample_rows(labels, predicted, per_pair, correct, seed)
    order = sorted(
        chosen,
        key=lambda i: (bool(labels[i] == predicted[i]), int(labels[i]), int(predicted[i]), i),
    )
    names = report['class_names']
    features = [
        c for c in table.column_names if c.startswith(error_analysis.files.FEATURE_COLUMN_PREFIX)
    ]
    columns = {c: table.column(c).to_pylist() for c in ['example_id', 'confidence'] + features}
    # Confident-learning flag (reports before it have no such column: left empty).
    suspects = (
        table.column('label_suspect').to_pylist()
        if 'label_suspect' in table.column_names
        else [None] * table.num_rows
    )
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['example_id', 'weight', 'true', 'predicted', 'correct', 'confidence', 'label_suspect']
            + [c[len(error_analysis.files.FEATURE_COLUMN_PREFIX) :] for c in features]
            + list(TAG_COLUMNS)
        )
        for i in order:
            writer.writerow(
                [
                    columns['example_id'][i],
                    f'{chosen[i]:.4g}',
                    names[labels[i]],
                    names[predicted[i]],
                    labels[i] == predicted[i],
                    f'{columns["confidence"][i]:.4f}',
                    '' if suspects[i] is None else suspects[i],
                ]
                + [columns[c][i] for c in features]
                + [''] * len(TAG_COLUMNS)
            )
    return len(order)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='local_runner.py review-sheet', description=__doc__)
    p.add_argument('--output-dir', default='outputs')
    p.add_argument(
        '--pipeline',
        default=None,
        help='pipeline name in ML Metadata (default: the only one, or blindspot-taxi)',
    )
    p.add_argument(
        '--run',
        default='latest',
        help="'latest' (default), a run id, or a run number from `history`",
    )
    p.add_argument('--out', default='mistakes.csv')
    p.add_argument('--per-pair', type=int, default=20, help='mistakes per confusion pair')
    p.add_argument('--correct', type=int, default=20, help='correct predictions to include')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    import review

    try:
        run = review.get_run(a.output_dir, None if a.run == 'latest' else a.run, a.pipeline)
        if run.report is None:
            raise LookupError(f'run {run.run_id} has no ErrorAnalysis report (did it fail?)')
        rows = write_sheet(run.report.uri, a.out, a.per_pair, a.correct, a.seed)
    except (FileNotFoundError, LookupError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(
        f'{a.out}: {rows} examples from run {run.run_id} to review; fill the tags column '
        "(several tags separated by ';'), then pass it back with --tags"
    )
    return 0
