"""`python local_runner.py history` and `python local_runner.py compare`, read from ML Metadata.

    python local_runner.py history [--output-dir D] [--pipeline P]
    python local_runner.py compare [RUN_A [RUN_B]] [--output-dir D] [--pipeline P] [--no-tfma]

Runs are named by their run id (as `history` prints it, or a unique prefix) or their number
(1 = oldest, -1 = latest). `compare` defaults to the latest run with a report against the run
whose report it was compared with by its ErrorAnalysis (that comparison is stored: nothing is
measured again); with one run, that run against the latest with a report. Both first cancel
the executions an ended process left RUNNING (review/interrupts.py). Exit status 2 with a
one-line error when the store, the pipeline or a run is not there.

Fast as `git log`: ML Metadata and the report files only. TensorFlow, TFMA and Beam are never
imported unless a comparison has to be measured afresh (Beam, a few seconds, said first on
stderr) or a report has no copy of its TFMA metrics (TFMA); tests/test_review_cli.py checks a
fresh process.
"""

import argparse
import sys
from typing import Dict, List, Optional

TOP_SLICE_WIDTH = 70
ACCURACY_ROWS = 10


def _pct(x: Optional[float]) -> str:
    return '-' if x is None else f'{100 * x:.1f}%'


def _num(x: Optional[float]) -> str:
    return '-' if x is None else f'{x:.3f}'


def _yes_no(x: Optional[bool]) -> str:
    return '-' if x is None else ('yes' if x else 'no')


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + '…'


def _parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        'history': 'One line per run of a pipeline, read from ML Metadata: time, run id, '
        'pipeline, outcome (pushed, gate blocked, blessed but not pushed, not blessed, '
        'cancelled, failed), accuracy, error rate, failing slices (held on held-out data), '
        'the top one.',
        'compare': 'Failing slices new, resolved and persisting between two runs (default: '
        'the latest with a report against the run it was compared with when it ran), error '
        "rates side by side, and per-slice accuracy changes from the two runs' evaluations.",
    }
    p = argparse.ArgumentParser(
        prog=f'local_runner.py {command}', description=descriptions[command]
    )
    p.add_argument(
        '--output-dir',
        default='outputs',
        help='the output folder holding metadata.sqlite (default: %(default)s)',
    )
    p.add_argument(
        '--pipeline',
        default=None,
        help="pipeline: 'taxi', 'blindspot-taxi', ... (default: the store's only "
        'pipeline, else blindspot-taxi)',
    )
    if command == 'compare':
        p.add_argument(
            'runs',
            nargs='*',
            metavar='RUN',
            help='RUN_A RUN_B: run ids or numbers from `history` (default: the latest run '
            'with a report against the run whose report it was compared with; one RUN: that '
            'run against the latest with one). A pair its ErrorAnalysis did not compare is '
            "measured on both runs' predictions in a local Beam pipeline (a few seconds)",
        )
        p.add_argument(
            '--no-tfma',
            action='store_true',
            help="per-slice accuracy only from the reports' copies of the TFMA metrics, never "
            'from an evaluation (by default an evaluation is read, importing TFMA, only for a '
            'report without a copy)',
        )
    return p


def print_history(rows: List[Dict], pipeline: str, where: str) -> None:
    """One line per run; `outcome` says what became of its model (Run.outcome)."""
    from blindspot.review.runs import error_text

    print(f'{pipeline}: {len(rows)} run(s) in {where}')
    header = (
        f'{"#":>3}  {"time":19s}  {"run id":26s}  {"pipeline":16s}  {"outcome":19s}  '
        f'{"accuracy":>8s}  {"error":>10s}  {"failing":>7s}  top slice'
    )
    print(header)
    for r in rows:
        if r['status'] != 'complete' and r['failing_slices'] is None:
            top = f'({r["status"]})'
        else:
            top = r['top_slice'] or ('-' if r['failing_slices'] is None else '(none held)')
        failing = '-' if r['failing_slices'] is None else str(r['failing_slices'])
        print(
            f'{r["number"]:>3}  {r["time"]:19s}  {r["run_id"]:26s}  {r["pipeline"]:16s}  '
            f'{r["outcome"]:19s}  {_num(r["accuracy"]):>8s}  '
            f'{error_text(r) or "-":>10s}  {failing:>7s}  {_clip(top, TOP_SLICE_WIDTH)}'
        )


def _value(x: Optional[float], metric: str) -> str:
    """An error rate, or a regression's MAE (the comparison's metric 'MAE')."""
    return ('-' if x is None else f'{x:.3g}') if metric == 'MAE' else _pct(x)


def _delta(change: Optional[float], metric: str) -> str:
    if change is None:
        return ''
    return f'{change:+.3g}' if metric == 'MAE' else f'{100 * change:+.1f} pts'


def _side(side: Optional[Dict], metric: str) -> str:
    if not side:
        return f'{"not measured":>22s}'
    held = '' if side.get('held') else '*'
    return f'{_value(side.get("error_rate"), metric) + held:>8s} (n={side.get("size") or 0:>5,})'


def _group(title: str, entries: List[Dict], metric: str) -> None:
    from blindspot.error_analysis.report.compare import measure_text

    print(f'{title} ({len(entries)}):')
    for e in entries:
        print(
            f'  {_clip(e["slice"], 64):64s}  {_side(e["baseline"], metric)}  →  '
            f'{_side(e["current"], metric)}  {_delta(e["error_rate_change"], metric)}'
        )
        print(f'    {"measured on " if e["measure"] else ""}{measure_text(e)}')


def _measured(measured: Dict) -> str:
    rows = measured.get('rows')
    if not rows:
        return f"Not measured on the runs' predictions: {measured['problem']}"
    return (
        f"Measured on both runs' predictions: {rows['matched']:,} of B's {rows['current']:,} "
        f"examples are among A's {rows['baseline']:,} (matched by id); new = failing in B and "
        f'significantly worse than under A (Bonferroni over {measured["tested"]["worse"]}, '
        f'level {measured["significance"]:g}), resolved = significantly better'
    )


def print_comparison(c: Dict) -> None:
    a, b = c['baseline_run'], c['current_run']
    print(
        f'{c["pipeline"]}: run #{b["number"]} {b["run_id"]} compared with '
        f'run #{a["number"]} {a["run_id"]}'
    )
    for label, ref in (('A', a), ('B', b)):
        outcome = ref.get('outcome') or f'blessed {_yes_no(ref.get("blessed"))}'
        print(f'  {label}  #{ref["number"]:<3} {outcome:19s}  report {ref["report_uri"]}')
    if c.get('same_report'):
        print('  (both runs point at the same report: ErrorAnalysis was served from the cache)')
    if c.get('source'):
        print(f'  comparison {c["source"]}')
    overall = c['overall']
    change = overall['error_rate_change']
    metric = c.get('metric', 'error rate')
    print(
        f'Overall {metric}: {_value(overall["baseline"]["error_rate"], metric)} → '
        f'{_value(overall["current"]["error_rate"], metric)}'
        + (f' ({_delta(change, metric)})' if change is not None else '')
    )
    print(_measured(c['measured']))
    print(f'Failing slices (held on held-out data), {metric} A → B; * = not failing there:')
    _group('New', c['new'], metric)
    _group('Resolved', c['resolved'], metric)
    _group('Persisting', c['persisting'], metric)
    accuracy = c['accuracy']
    rows = accuracy['rows']
    print(
        f'Accuracy by TFMA slice ({accuracy["metric"] or "no accuracy metric"}; slices with '
        f'at least {accuracy["min_examples"]} examples in both; largest changes first, '
        f'{min(len(rows), ACCURACY_ROWS)} of {len(rows)}):'
    )
    for r in rows[:ACCURACY_ROWS]:
        print(
            f'  {_clip(r["slice"], 64):64s}  {r["baseline"]:.3f} → {r["current"]:.3f}  '
            f'({r["change"]:+.3f})  n={r["baseline_examples"]:,}/{r["current_examples"]:,}'
        )


def cancel_orphans(output_dir: str) -> None:
    """Cancels (with a note) the executions a process that no longer exists left RUNNING, so
    they show as cancelled, not running for ever; not while a run holds the folder, whose
    RUNNING executions may be its own."""
    from blindspot.pipelines import run_lock
    from blindspot.review import interrupts

    with run_lock.when_idle(output_dir) as idle:
        if idle is not None:
            for line in interrupts.sweep_orphans(output_dir, idle.last_holder):
                print(f'note: {line}', file=sys.stderr)


def history(argv: List[str]) -> int:
    from blindspot import review

    a = _parser('history').parse_args(argv)
    try:
        r = review.Review(a.output_dir, a.pipeline)
        cancel_orphans(a.output_dir)
        rows = r.history(read_evaluation=False)  # accuracy from the reports: no TFMA
    except review.ReviewError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print_history(rows, r.pipeline, r.where)
    return 0


def _note(line: str) -> None:
    print(f'note: {line}', file=sys.stderr, flush=True)


def compare(argv: List[str]) -> int:
    from blindspot import review

    p = _parser('compare')
    a = p.parse_args(argv)
    if len(a.runs) > 2:
        p.error(f'give at most two runs, got {len(a.runs)}')
    refs = a.runs + [None] * (2 - len(a.runs))
    import logging

    # Only when a library is imported (a fresh measure: Beam; an evaluation: TFMA): their
    # warnings and per-slice plot messages stay off the console.
    for name in ('tensorflow', 'absl', 'apache_beam'):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        r = review.Review(a.output_dir, a.pipeline)
        cancel_orphans(a.output_dir)
        comparison = r.compare(
            refs[0], refs[1], tfma=False if a.no_tfma else None, on_measure=_note
        )
    except review.ReviewError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print_comparison(comparison)
    return 0


COMMANDS = {'history': history, 'compare': compare}


def main(argv: Optional[List[str]] = None) -> int:
    """argv: ['history', ...] or ['compare', ...]."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Reading, not training: keep TensorFlow's start-up chatter off the console.
    import os
    import warnings

    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
    warnings.filterwarnings('ignore', category=FutureWarning)
    if not argv or argv[0] not in COMMANDS:
        print(f'error: expected one of: {", ".join(COMMANDS)}', file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == '__main__':
    sys.exit(main())
