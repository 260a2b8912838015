"""`python local_runner.py review-sheet`: a spreadsheet of mistakes to tag by hand.

Label-noise suspects (confident learning's `label_suspect` flag, see docs/method.md) come
first, most suspicious (lowest probability of the given label) first: they are the examples
whose labels most need a look. Then mistakes sampled per confusion pair (true class, predicted
class), so rare confusions are not drowned by frequent ones, plus a sample of correct
predictions so that tags can also say how accurate the model is on a category. Each row's
`weight` is how many examples of its stratum it stands for; `--tags` uses it to estimate
shares and accuracies for the whole split. Each row's `finding` names the held finding it is
in (the first by rank), and the columns the label is computed from (taxi: tips) come first
among the features, to judge the label by.

`--finding N` (N: a finding's rank in the report, or its slice id) writes one finding's
mistakes instead, most confident first, with report.html's drill-down columns: Ng's "look at
the misclassified examples", one finding at a time.

Reads the report files only (Parquet, report.json, the run's encoders): no TensorFlow.
"""

import argparse
import csv
import glob
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

import blindspot.error_analysis as error_analysis
from blindspot.review.runs import PART_ENCODERS

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


def _read(report_uri: str):
    """(report.json, the predictions table) of one ErrorAnalysis report."""
    import pyarrow.parquet as pq

    with open(os.path.join(report_uri, error_analysis.files.REPORT_JSON)) as f:
        report = json.load(f)
    if report.get('regression'):
        raise LookupError(
            "review sheets sample a classifier's mistakes by class pair; this run's model is a "
            "regression: read its findings' largest errors in the report's page"
        )
    files = sorted(glob.glob(os.path.join(report_uri, report['files']['predictions'])))
    if not files:
        raise FileNotFoundError(f'no per-example predictions under {report_uri}')
    return report, pq.read_table(files)


def _encoders(report_uri: str) -> Dict:
    """Feature name -> the run's FeatureEncoder (saved beside the report), {} without them."""
    from blindspot.error_analysis.search import membership

    path = os.path.join(report_uri, PART_ENCODERS)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return membership.by_name(membership.encoders_from_json(json.load(f)))


def _features(table) -> Dict[str, np.ndarray]:
    """Raw feature columns by name (the predictions' `feature.` columns, prefix dropped)."""
    prefix = error_analysis.files.FEATURE_COLUMN_PREFIX
    return {
        name[len(prefix) :]: table.column(name).to_numpy()
        for name in table.column_names
        if name.startswith(prefix)
    }


def held_findings(report: Dict) -> List[Dict]:
    """The report's findings (slices that held on held-out data), in its order (rank)."""
    return [s for s in (report.get('slices') or {}).get('slices') or [] if s.get('held')]


def finding_name(finding: Dict) -> str:
    return f'#{finding["rank"]} {finding["slice"]}'


def finding_of_rows(
    report: Dict, columns: Dict[str, np.ndarray], encoders: Dict, rows: int
) -> List[str]:
    """Per row, the first held finding (in rank order) it is in, as '#rank slice', else '':
    the report counts a row for the first finding above it too ("adds")."""
    from blindspot.error_analysis.search import membership

    findings = held_findings(report)
    if not findings or not columns:
        return [''] * rows
    inside = membership.memberships([s['predicates'] for s in findings], columns, encoders)
    names = [finding_name(s) for s in findings] + ['']
    first = np.where(inside.any(axis=1), inside.argmax(axis=1), len(findings))
    return [names[j] for j in first]


def find_finding(report: Dict, ref: str) -> Dict:
    """A held finding by its rank in the report ('2') or its slice id (or a unique prefix)."""
    findings = held_findings(report)
    text = str(ref).strip()
    chosen = [s for s in findings if str(s['rank']) == text] or [
        s for s in findings if s.get('slice_id') and s['slice_id'].startswith(text)
    ]
    if len(chosen) == 1:
        return chosen[0]
    listing = '; '.join(f'{finding_name(s)} (id {s.get("slice_id")})' for s in findings)
    raise LookupError(
        f"no finding '{text}' in the report (a rank or a slice id); its findings: "
        + (listing or 'none held')
    )


def _context_columns(report: Dict, features: Sequence[str], encoders: Dict) -> List[str]:
    """The columns the label is computed from (taxi: tips), shown beside it as report.html
    does: report.json's `label_sources`; for a report without that key, the feature columns
    no slice reads (kept out of serving by the schema, so never sliced on)."""
    if 'label_sources' in report:
        named = list(report['label_sources'])
    else:
        read = {e.source_column for e in encoders.values()}
        named = [f for f in features if f not in read] if encoders else []
    return [c for c in named if c in features]


def _cell(value) -> str:
    from blindspot.error_analysis.search.binning import display_value

    return display_value(value)


def write_sheet(
    report_uri: str, out: str, per_pair: int, correct: int, seed: int, suspects: int = 20
) -> int:
    """Writes the sheet for one ErrorAnalysis report, with up to `suspects` label suspects
    first; returns the number of rows. Each row says which held finding it is in
    (finding_of_rows), and the columns the label is computed from follow that."""
    report, table = _read(report_uri)
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
    columns = _features(table)
    encoders = _encoders(report_uri)
    context = _context_columns(report, list(columns), encoders)
    features = context + [f for f in columns if f not in context]
    finding = finding_of_rows(report, columns, encoders, table.num_rows)
    ids = table.column('example_id').to_pylist()
    confidence = table.column('confidence').to_numpy()
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['example_id', 'weight', 'true', 'predicted', 'correct', 'confidence', 'label_suspect']
            + ['finding', *features, *TAG_COLUMNS]
        )
        for i in order:
            writer.writerow(
                [
                    ids[i],
                    f'{chosen[i]:.4g}',
                    names[labels[i]],
                    names[predicted[i]],
                    labels[i] == predicted[i],
                    f'{confidence[i]:.4f}',
                    bool(flagged[i]) if has_flag else '',
                    finding[i],
                ]
                + [_cell(columns[c][i]) for c in features]
                + [''] * len(TAG_COLUMNS)
            )
    return len(order)


def write_finding_sheet(report_uri: str, out: str, ref: str, max_rows: int = 100) -> Dict:
    """Writes one held finding's mistakes (rank or slice id `ref`), most confident first (the
    ones most likely to show a label error or a missing signal), at most `max_rows`, with
    report.html's drill-down columns: the finding's own columns, then label, prediction,
    confidence, suspect flag, the columns the label is computed from, the other features.
    Each row's weight is how many of the finding's mistakes it stands for. Returns
    {'finding', 'rows', 'mistakes'}."""
    from blindspot.error_analysis.search import membership

    report, table = _read(report_uri)
    finding = find_finding(report, ref)
    columns = _features(table)
    encoders = _encoders(report_uri)
    problem = membership.slice_problem(finding['predicates'], encoders, columns)
    if problem:
        raise LookupError(f'cannot place the rows of {finding_name(finding)}: {problem}')
    inside = membership.slice_mask(finding['predicates'], columns, encoders)
    labels = table.column('label').to_numpy()
    predicted = table.column('predicted').to_numpy()
    confidence = table.column('confidence').to_numpy()
    mistakes = np.flatnonzero(inside & (labels != predicted))
    shown = mistakes[np.argsort(-confidence[mistakes], kind='stable')][:max_rows]
    flagged = (
        table.column('label_suspect').to_numpy().astype(bool)
        if 'label_suspect' in table.column_names
        else None
    )
    own = [
        p['feature'] if p.get('is_range') else encoders[p['feature']].source_column
        for p in finding['predicates']
    ]
    own = [c for c in dict.fromkeys(own) if c in columns]
    context = [c for c in _context_columns(report, list(columns), encoders) if c not in own]
    rest = [c for c in columns if c not in own and c not in context]
    names = report['class_names']
    ids = table.column('example_id').to_pylist()
    weight = len(mistakes) / len(shown) if len(shown) else 0.0
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['example_id', 'weight', *own, 'true', 'predicted', 'confidence', 'label_suspect']
            + [*context, *rest, *TAG_COLUMNS]
        )
        for i in shown:
            writer.writerow(
                [ids[i], f'{weight:.4g}']
                + [_cell(columns[c][i]) for c in own]
                + [
                    names[labels[i]],
                    names[predicted[i]],
                    f'{confidence[i]:.4f}',
                    bool(flagged[i]) if flagged is not None else '',
                ]
                + [_cell(columns[c][i]) for c in context + rest]
                + [''] * len(TAG_COLUMNS)
            )
    return {'finding': finding, 'rows': len(shown), 'mistakes': len(mistakes)}


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
    p.add_argument(
        '--finding',
        default=None,
        metavar='N',
        help="only this finding's mistakes, most confident first: its rank in the report "
        '(the # column of report.html and `history`) or its slice id',
    )
    p.add_argument(
        '--max-rows',
        type=int,
        default=100,
        help='with --finding: most mistakes to write (default: %(default)s)',
    )
    a = p.parse_args(argv)
    from blindspot import review

    try:
        run = review.get_run(a.output_dir, None if a.run == 'latest' else a.run, a.pipeline)
        if run.report is None:
            raise LookupError(f'run {run.run_id} has no ErrorAnalysis report ({run.status})')
        if a.finding is not None:
            written = write_finding_sheet(run.report.uri, a.out, a.finding, a.max_rows)
        else:
            rows = write_sheet(run.report.uri, a.out, a.per_pair, a.correct, a.seed, a.suspects)
    except (FileNotFoundError, LookupError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if a.finding is not None:
        rows, mistakes = written['rows'], written['mistakes']
        print(
            f'{a.out}: {rows} of the {mistakes} mistakes of finding '
            f'{finding_name(written["finding"])} (run {run.run_id}), most confident first'
        )
    else:
        print(f'{a.out}: {rows} examples from run {run.run_id} to review')
    print("Fill the tags column (several tags separated by ';'), then pass it back with --tags")
    return 0
