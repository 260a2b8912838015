"""`python local_runner.py review-sheet`: a spreadsheet of mistakes to tag by hand.

Label-noise suspects (confident learning's `label_suspect` flag, see README "What to do next")
come first, most suspicious (lowest probability of the given label) first: they are the
examples whose labels most need a look. Then mistakes sampled per confusion pair (true class,
predicted class), so rare confusions are not drowned by frequent ones, plus a sample of correct
predictions so that tags can also say how accurate the model is on a category. Each row's
`weight` is how many examples of its stratum it stands for; `--tags` uses it to estimate
shares and accuracies for the whole split.
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
    labels: np.ndarray,
    predicted: np.ndarray,
    per_pair: int,
    correct: int,
    seed: int = 0,
    label_probability: Optional[np.ndarray] = None,
    suspects: Optional[np.ndarray] = None,
    max_suspects: int = 0,
) -> Dict[int, float]:
    """Row index -> weight: up to `max_suspects` label suspects (rows where `suspects` is
    True), lowest `label_probability` first, then up to `per_pair` mistakes of each confusion
    pair and up to `correct` correct predictions among the other rows, at random (seeded).
    The suspects are a stratum of their own, so the weights still add up to the split (the
    suspects' weight, taken most suspicious first rather than at random, leans towards the
    clearest cases)."""
    rng = np.random.default_rng(seed)
    chosen: Dict[int, float] = {}
    others = np.ones(len(labels), dtype=bool)
    if suspects is not None and max_suspects > 0 and suspects.any():
        flagged = np.flatnonzero(suspects)
        picked = flagged[np.argsort(label_probability[flagged], kind='stable')][:max_suspects]
        chosen.update((int(row), len(flagged) / len(picked)) for row in picked)
        others = ~suspects
    wrong = (labels != predicted) & others
    strata = [
        np.flatnonzero(wrong & (labels == t) & (predicted == p))
        for t, p in sorted(set(zip(labels[wrong].tolist(), predicted[wrong].tolist())))
    ]
    strata = [(rows, per_pair) for rows in strata]
    strata.append((np.flatnonzero((labels == predicted) & others), correct))
    for rows, size in strata:
        if not len(rows) or size <= 0:
            continue
        picked = rng.choice(rows, size=min(size, len(rows)), replace=False)
        for row in picked:
            chosen[int(row)] = len(rows) / len(picked)
    return chosen


def write_sheet(
    report_uri: str, out: str, per_pair: int, correct: int, seed: int, suspects: int = 20
) -> int:
    """Writes the sheet for one ErrorAnalysis report, with up to `suspects` label suspects
    first; returns the number of rows."""
    import pyarrow.parquet as pq

    with open(os.path.join(report_uri, error_analysis.files.REPORT_JSON)) as f:
        report = json.load(f)
    files = sorted(glob.glob(os.path.join(report_uri, report['files']['predictions'])))
    if not files:
        raise FileNotFoundError(f'no per-example predictions under {report_uri}')
    table = pq.read_table(files)
    labels = table.column('label').to_numpy()
    predicted = table.column('predicted').to_numpy()
    # Confident-learning flag (reports before it have no such column: no suspects stratum).
    has_flag = 'label_suspect' in table.column_names
    flagged = np.zeros(len(labels), dtype=bool)
    given = np.zeros(len(labels))
    if has_flag:
        flagged = table.column('label_suspect').to_numpy().astype(bool)
        probabilities = np.stack(
            [table.column(f'prob_{c}').to_numpy() for c in range(len(report['class_names']))],
            axis=1,
        )
        given = probabilities[np.arange(len(labels)), labels]
    chosen = sample_rows(labels, predicted, per_pair, correct, seed, given, flagged, suspects)
    order = sorted(
        chosen,
        key=lambda i: (
            not flagged[i],
            given[i] if flagged[i] else 0.0,
            bool(labels[i] == predicted[i]),
            int(labels[i]),
            int(predicted[i]),
            i,
        ),
    )
    names = report['class_names']
    features = [
        c for c in table.column_names if c.startswith(error_analysis.files.FEATURE_COLUMN_PREFIX)
    ]
    columns = {c: table.column(c).to_pylist() for c in ['example_id', 'confidence'] + features}
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
                    bool(flagged[i]) if has_flag else '',
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
    p.add_argument(
        '--suspects', type=int, default=20, help='label suspects to include, most suspicious first'
    )
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    import review

    try:
        run = review.get_run(a.output_dir, None if a.run == 'latest' else a.run, a.pipeline)
        if run.report is None:
            raise LookupError(f'run {run.run_id} has no ErrorAnalysis report (did it fail?)')
        rows = write_sheet(run.report.uri, a.out, a.per_pair, a.correct, a.seed, a.suspects)
    except (FileNotFoundError, LookupError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(
        f'{a.out}: {rows} examples from run {run.run_id} to review; fill the tags column '
        "(several tags separated by ';'), then pass it back with --tags"
    )
    return 0
