"""Comparing two error-analysis reports: which failing slices are new, resolved or persisting.

Pure logic (no TensorFlow, no ML Metadata): two report.json dicts in, one comparison dict out.
The ErrorAnalysis component stores it as report.json's `comparison` key (against the report of
the latest blessed model, see report.py); `python local_runner.py compare` prints it for any
two runs.

A failing slice is a slice the report found and that *held* on held-out data. Slices are
matched by their predicates, as a set of (feature, label) pairs, e.g.
{('payment_type', 'payment_type = Cash'), ('trip_start_hour', 'trip_start_hour = 19')}.
Numeric predicates carry their bin edges in the label ('7.85 <= fare < 12.4'): when the data
moves, the edges move and the slice counts as a different one.

The comparison dict:
  baseline_created, current_created   the two reports' `created` times
  overall      {baseline: {examples, errors, error_rate, accuracy}, current: {...},
                error_rate_change: current - baseline}
  new          failing in `current`, not in `baseline`
  resolved     failing in `baseline`, not in `current`
  persisting   failing in both
               each a list of {slice, predicates, baseline, current, error_rate_change}, where
               baseline/current are {error_rate, size, held} measured in that report (a slice
               found but not held, or a single-predicate slice's feature value), or None when
               the report has no number for that slice
  accuracy     per-slice accuracy from the Evaluator (TFMA) rows of the two reports:
               {metric, min_examples, rows: [{slice, features, baseline, current, change,
               baseline_examples, current_examples}] (largest change first, slices with at
               least min_examples in both), only_in_baseline, only_in_current}
"""

from typing import Dict, List, Optional, Sequence

from components.error_analysis.search import identity
from components.error_analysis.search.identity import same_slice

ACCURACY_KEYS = ('binary_accuracy', 'sparse_categorical_accuracy', 'accuracy')
MIN_EXAMPLES = 30


def _slices(report: Dict) -> List[Dict]:
    return list((report.get('slices') or {}).get('slices') or [])


def failing_slices(report: Dict) -> List[Dict]:
    """The report's held slices, in the report's rank order."""
    return [s for s in _slices(report) if s.get('held')]


def _find(slices: Sequence[Dict], predicates: Sequence[Dict]) -> Optional[Dict]:
    return next((s for s in slices if same_slice(s['predicates'], predicates)), None)


def _measure(report: Dict, predicates: Sequence[Dict]) -> Optional[Dict]:
    """{error_rate, size, errors, held} of a slice in a report, or None when it has no number
    for it: from the slice list (held or not; matched by identity.same_slice), else, for one
    category predicate, from the per-value table."""
    s = _find(_slices(report), predicates)
    if s is not None:
        size = s['search_size'] + s['holdout_size']
        errors = s['search_errors'] + s['holdout_errors']
        return {
            'error_rate': errors / size if size else None,
            'size': size,
            'errors': errors,
            'held': bool(s.get('held')),
        }
    if len(predicates) == 1:
        feature, label = predicates[0]['feature'], predicates[0]['label']
        for value in (report.get('slices') or {}).get('feature_values') or []:
            if value.get('feature') == feature and value.get('label') == label:
                return {
                    'error_rate': value.get('error_rate'),
                    'size': value.get('size'),
                    'errors': value.get('errors'),
                    'held': False,
                }
    return None


def _entry(source: Dict, baseline: Dict, current: Dict) -> Dict:
    before = _measure(baseline, source['predicates'])
    after = _measure(current, source['predicates'])
    change = None
    if before and after and before['error_rate'] is not None and after['error_rate'] is not None:
        change = after['error_rate'] - before['error_rate']
    return {
        'slice': source['slice'],
        'slice_id': identity.slice_id(source['predicates']),
        'predicates': source['predicates'],
        'baseline': before,
        'current': after,
        'error_rate_change': change,
    }


def _overall(report: Dict) -> Dict:
    overall = report.get('overall') or {}
    return {k: overall.get(k) for k in ('examples', 'errors', 'error_rate', 'accuracy')}


def accuracy_metric(rows: Sequence[Dict]) -> Optional[str]:
    """The accuracy metric the TFMA rows carry (binary, sparse categorical or plain)."""
    for name in ACCURACY_KEYS:
        if any(name in r.get('metrics', {}) for r in rows):
            return name
    return None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and x == x


def compare_accuracy(
    baseline_rows: Sequence[Dict], current_rows: Sequence[Dict], min_examples: int = MIN_EXAMPLES
) -> Dict:
    """Per-slice accuracy of two TFMA evaluations (rows of tfma_metrics.sliced_metrics),
    matched by slice name; largest change first."""
    metric = accuracy_metric(current_rows) or accuracy_metric(baseline_rows)
    before = {r['slice']: r for r in baseline_rows}
    after = {r['slice']: r for r in current_rows}
    rows = []
    for name in after.keys() & before.keys():
        a, b = before[name]['metrics'], after[name]['metrics']
        if not (_is_number(a.get(metric)) and _is_number(b.get(metric))):
            continue
        n_a, n_b = a.get('example_count'), b.get('example_count')
        if min(n_a or 0, n_b or 0) < min_examples:
            continue
        rows.append(
            {
                'slice': name,
                'features': list(after[name].get('features', [])),
                'baseline': a[metric],
                'current': b[metric],
                'change': b[metric] - a[metric],
                'baseline_examples': int(n_a),
                'current_examples': int(n_b),
            }
        )
    rows.sort(key=lambda r: (-abs(r['change']), r['slice']))
    return {
        'metric': metric,
        'min_examples': min_examples,
        'rows': rows,
        'only_in_baseline': len(before.keys() - after.keys()),
        'only_in_current': len(after.keys() - before.keys()),
    }


def compare_reports(
    baseline: Dict,
    current: Dict,
    *,
    baseline_tfma: Optional[Sequence[Dict]] = None,
    current_tfma: Optional[Sequence[Dict]] = None,
    min_examples: int = MIN_EXAMPLES,
) -> Dict:
    """The comparison of `current` with `baseline` (see the module docstring).

    TFMA rows default to the ones each report carries (its `tfma` key)."""
    was, now = failing_slices(baseline), failing_slices(current)
    new = [_entry(s, baseline, current) for s in now if _find(was, s['predicates']) is None]
    persisting = [_entry(s, baseline, current) for s in now if _find(was, s['predicates'])]
    resolved = [_entry(s, baseline, current) for s in was if _find(now, s['predicates']) is None]
    base_overall, cur_overall = _overall(baseline), _overall(current)
    change = (
        cur_overall['error_rate'] - base_overall['error_rate']
        if _is_number(cur_overall['error_rate']) and _is_number(base_overall['error_rate'])
        else None
    )
    return {
        'baseline_created': baseline.get('created'),
        'current_created': current.get('created'),
        'overall': {'baseline': base_overall, 'current': cur_overall, 'error_rate_change': change},
        'new': new,
        'resolved': resolved,
        'persisting': persisting,
        'accuracy': compare_accuracy(
            baseline.get('tfma') or [] if baseline_tfma is None else baseline_tfma,
            current.get('tfma') or [] if current_tfma is None else current_tfma,
            min_examples,
        ),
    }


def _pct(x: Optional[float]) -> str:
    if x is None:
        return '?'
    return f'{100 * x:.0f}%' if x >= 0.01 or x == 0 else f'{100 * x:.1f}%'


def _rate(side: Optional[Dict]) -> Optional[float]:
    return side.get('error_rate') if side else None


def comparison_insights(
    comparison: Dict, since: str = 'the last blessed model', max_slices: int = 3
) -> List[str]:
    """Plain sentences about what changed, for the report's insights."""
    lines = []
    for entry in comparison['new'][:max_slices]:
        before = _rate(entry['baseline'])
        was = f'was {_pct(before)}' if before is not None else 'not measured before'
        lines.append(
            f'New failing slice since {since}: {entry["slice"]} '
            f'({_pct(_rate(entry["current"]))} error rate, {was}).'
        )
    if len(comparison['new']) > max_slices:
        lines.append(
            f'... and {len(comparison["new"]) - max_slices} more new failing '
            f'slice(s) since {since}.'
        )
    for entry in comparison['resolved'][:max_slices]:
        after = _rate(entry['current'])
        now = f'now {_pct(after)}' if after is not None else 'no longer found'
        lines.append(
            f'Fixed since {since}: {entry["slice"]} '
            f'(was {_pct(_rate(entry["baseline"]))} error rate, {now}).'
        )
    if len(comparison['resolved']) > max_slices:
        lines.append(
            f'... and {len(comparison["resolved"]) - max_slices} more slice(s) fixed since {since}.'
        )
    persisting = comparison['persisting']
    if persisting:
        lines.append(
            f'Still failing since {since}: {len(persisting)} slice(s), e.g. '
            f'{persisting[0]["slice"]}.'
        )
    if not lines:
        lines.append(f'No failing slice before or now: nothing changed since {since}.')
    return lines
