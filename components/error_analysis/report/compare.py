"""Comparing two error-analysis reports: which failing slices are new, resolved or persisting,
judged on both models' predictions.

Pure logic (no TensorFlow, no Beam, no ML Metadata): two report.json dicts and, when there is
one, the measure of beam/comparison.py in; one comparison dict out. The ErrorAnalysis
component stores it as report.json's `comparison` key (against the report of the latest
blessed model, see baseline.py); `python local_runner.py compare` prints it for any two runs.

A failing slice is a slice a report found and that *held* on held-out data (a finding or one of
its refinements). The comparison covers the failing slices of either report, matched by
identity (search/identity.py: the same predicates, numeric ranges by overlap); a slice failing
in both is described by its current predicates.

Each is measured, best first, as:
  paired     both models on the same examples: the current analysis' rows joined with the
             baseline report's predictions by example_id (beam/comparison.py). Used when the
             matched rows are at least PAIRED_MIN_SHARE of the slice's rows in either run (the
             eval split holds the same examples). Test: exact one-sided McNemar on the
             discordant pairs (stats.paired_worse_p_value).
  unpaired   each model on its own examples, when the examples differ (new data, edited
             labels: an example's id is a hash of its bytes): the slice's rows in the current
             analysis and in the baseline's predictions. Test: one-sided Fisher exact.
  reports    without the baseline's predictions, or for a slice they cannot evaluate: the two
             reports' own numbers (the slice's entry in a slice list, or a single predicate's
             per-value row). Fisher exact.
  (none)     no measure: `not_measured` says why.

Status, judged on the measure with a Bonferroni bound over the slices tested (is_new,
is_resolved):
  new         failing now and significantly worse than under the baseline model: a new blind
              spot. A slice newly listed that failed as much before (a refinement inside a
              persisting finding, a slice the baseline's search ranked out) is not new.
              Without any measure: failing now and not listed by the baseline.
  resolved    failing before, not now, and significantly better now; without any measure:
              failing before and not listed now.
  persisting  the rest: failing now and not significantly worse, or no longer listed but not
              significantly better.

The comparison dict:
  baseline_created, current_created   the two reports' `created` times
  overall      {baseline: {examples, errors, error_rate, accuracy}, current: {...},
                error_rate_change: current - baseline}
  new, resolved, persisting
               lists of {slice, slice_id, predicates, listed: {baseline, current} (failing
               in that report), baseline, current: {error_rate, size, errors, held} on the rows
               measured (paired: the same matched examples) or None, error_rate_change,
               measure: {kind ('paired', 'unpaired' or 'reports'), note (what was measured,
               for people), rows_matched, worse and better (paired: the discordant pairs,
               wrong now and right before / the other way), test ('worse' for a slice failing
               now, else 'better'), p_value, adjusted_p_value (Bonferroni)} or None,
               not_measured: why there is no measure (None when there is one)}
  measured     {rows: {current, baseline, matched} (examples in each run's predictions and
                those matched by id) or None, problem (why the baseline's predictions were not
                measured, else None), paired_min_share, significance, tested: {worse, better}
                (slices in each Bonferroni family)}
  accuracy     per-slice accuracy from the Evaluator (TFMA) rows of the two reports:
               {metric, min_examples, rows: [{slice, features, baseline, current, change,
               baseline_examples, current_examples}] (largest change first, slices with at
               least min_examples in both), only_in_baseline, only_in_current}
"""

import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

from blindspot.error_analysis.search import identity, stats
from blindspot.error_analysis.search.identity import same_slice
from blindspot.error_analysis.search.regression import Z_95, greater_mean_p_value

ACCURACY_KEYS = ('binary_accuracy', 'sparse_categorical_accuracy', 'accuracy')
MIN_EXAMPLES = 30
# Matched rows needed, as a share of the slice's rows in the run where it has more, to call
# them the same examples (else each model is measured on its own rows).
PAIRED_MIN_SHARE = 0.9
SIGNIFICANCE = 0.05  # when neither the caller nor the current report's search config says


def _slices(report: Dict) -> List[Dict]:
    return list((report.get('slices') or {}).get('slices') or [])


def failing_slices(report: Dict) -> List[Dict]:
    """The report's held slices, in the report's rank order."""
    return [s for s in _slices(report) if s.get('held')]


def _find(slices: Sequence[Dict], predicates: Sequence[Dict]) -> Optional[Dict]:
    return next((s for s in slices if same_slice(s['predicates'], predicates)), None)


def _union(was: Sequence[Dict], now: Sequence[Dict]) -> List[Tuple[Dict, bool, bool]]:
    """(slice, failing before, failing now) for the failing slices of either side: those
    failing now first (their current predicates), then those only failing before."""
    return [(s, _find(was, s['predicates']) is not None, True) for s in now] + [
        (s, True, False) for s in was if _find(now, s['predicates']) is None
    ]


def slices_to_measure(
    baseline_failing: Sequence[Dict], current_slices: Sequence[Dict]
) -> List[Dict]:
    """[{slice, predicates}] a comparison measures on rows, from the baseline report's failing
    slices and the current search's slice list (SliceSearchResult.to_dict()['slices'])."""
    now = [s for s in current_slices if s.get('held')]
    return [
        {'slice': s['slice'], 'predicates': s['predicates']}
        for s, _, _ in _union(baseline_failing, now)
    ]


def predicates_key(predicates: Sequence[Dict]) -> str:
    """The exact predicates (ranges with their bounds), order-free: matches a slice to its
    measure."""
    return json.dumps(
        sorted(
            [p['feature'], p['label'], bool(p.get('is_range')), p.get('low'), p.get('high')]
            for p in predicates
        )
    )


def _measure(report: Dict, predicates: Sequence[Dict]) -> Optional[Dict]:
    """{error_rate, size, errors, held} of a slice in a report, or None when it has no number
    for it: from the slice list (held or not; matched by identity.same_slice), else, for one
    category predicate, from the per-value table."""
    s = _find(_slices(report), predicates)
    if report.get('regression'):
        return _regression_measure(s)
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


def _regression_measure(s: Optional[Dict]) -> Optional[Dict]:
    """A regression slice's MAE from its entry in a report (its search counts are of the
    median flag), with the summed absolute errors and squares a Welch test reads, rebuilt from
    the MAE's 95% interval; None without one (or with the squared error kind)."""
    numbers = (s or {}).get('regression') or {}
    rows, mae = numbers.get('rows') or 0, numbers.get('mean_error')
    low, high = numbers.get('mean_error_ci') or (None, None)
    if numbers.get('error') != 'absolute' or mae is None or low is None or rows < 2:
        return None
    sd = (high - low) / 2 / Z_95 * math.sqrt(rows)
    return {
        'error_rate': mae,
        'size': rows,
        'errors': mae * rows,
        'rows': rows,
        'squares': (sd * sd * (rows - 1) / rows + mae * mae) * rows,
        'held': bool(s.get('held')),
    }


def _side(errors: int, size: int, held: bool) -> Dict:
    return {
        'error_rate': errors / size if size else None,
        'size': size,
        'errors': errors,
        'held': held,
    }


def _fisher(after: Dict, before: Dict) -> Tuple[float, float]:
    """(p worse, p better): one-sided Fisher exact tests of two {errors, size}."""
    worse = stats.exact_greater_rate_p_value(
        after['errors'], after['size'], before['errors'], before['size']
    )
    better = stats.exact_greater_rate_p_value(
        before['errors'], before['size'], after['errors'], after['size']
    )
    return float(worse), float(better)


def _welch(after: Dict, before: Dict) -> Tuple[float, float]:
    """(p worse, p better): one-sided Welch tests of two mean absolute errors {rows, errors
    (summed), squares (summed)}, a regression's unpaired fallback."""
    worse = greater_mean_p_value(
        after['errors'],
        after['squares'],
        after['rows'],
        before['errors'],
        before['squares'],
        before['rows'],
    )
    better = greater_mean_p_value(
        before['errors'],
        before['squares'],
        before['rows'],
        after['errors'],
        after['squares'],
        after['rows'],
    )
    return worse, better


def _on_rows(
    measure: Dict, listed_before: bool, listed_now: bool, regression: bool = False
) -> Tuple[Optional[Dict], str]:
    """(the measure, '') from a slice's rows in both runs' predictions: paired when they are
    the same examples, else each run's own; or (None, why the rows do not measure it). A
    regression's errors are summed absolute errors (error_rate: the MAE), its paired test the
    sign test on which model's absolute error is larger, its unpaired one Welch's."""
    now, base, pair = measure['current'], measure['baseline'], measure['paired']
    largest = max(now['rows'], base['rows'] if base else 0)
    if pair['rows'] and pair['rows'] >= PAIRED_MIN_SHARE * largest:
        before = _side(pair['errors_before'], pair['rows'], listed_before)
        after = _side(pair['errors_now'], pair['rows'], listed_now)
        worse, better = pair['worse'], pair['better']
        p_values = (
            float(stats.paired_worse_p_value(worse, better)),
            float(stats.paired_worse_p_value(better, worse)),
        )
        note = f'the same {pair["rows"]:,} examples'
        if pair['rows'] < largest:
            of_before = f', {base["rows"]:,} before' if base else ''
            note += f' (of {now["rows"]:,} now{of_before})'
        return {
            'before': before,
            'after': after,
            'kind': 'paired',
            'note': note,
            'rows_matched': pair['rows'],
            'worse': worse,
            'better': better,
            'p_values': p_values,
        }, ''
    if base is None:
        return (
            None,
            f"the baseline's predictions cannot place their rows: {measure['baseline_problem']}",
        )
    if not base['rows']:
        return None, "no example of the baseline's predictions falls in it"
    if not now['rows']:
        return None, 'no example falls in it now'
    before = _side(base['errors'], base['rows'], listed_before)
    after = _side(now['errors'], now['rows'], listed_now)
    return {
        'before': before,
        'after': after,
        'kind': 'unpaired',
        'note': (
            f'different examples: {after["size"]:,} now, {before["size"]:,} before, '
            f'{pair["rows"]:,} of them matched by id'
        ),
        'rows_matched': pair['rows'],
        'worse': None,
        'better': None,
        'p_values': _welch(now, base) if regression else _fisher(after, before),
    }, ''


def _entry(
    source: Dict,
    listed_before: bool,
    listed_now: bool,
    baseline: Dict,
    current: Dict,
    measures: Dict[str, Dict],
    problem: str,
    regression: bool = False,
) -> Dict:
    """One slice of the comparison, measured as well as the inputs allow (module docstring)."""
    predicates = source['predicates']
    measure = measures.get(predicates_key(predicates))
    found, why = None, problem
    if measure is not None and measure.get('problem'):
        why = measure['problem']
    elif measure is not None:
        found, why = _on_rows(measure, listed_before, listed_now, regression)
    before, after = _measure(baseline, predicates), _measure(current, predicates)
    if found is None and before and after and before['size'] and after['size']:
        found = {
            'before': before,
            'after': after,
            'kind': 'reports',
            'note': f"the two reports' numbers ({why})",
            'rows_matched': None,
            'worse': None,
            'better': None,
            'p_values': _welch(after, before) if regression else _fisher(after, before),
        }
    if found is not None:
        before, after = found['before'], found['after']
    change = None
    if before and after and before['error_rate'] is not None and after['error_rate'] is not None:
        change = after['error_rate'] - before['error_rate']
    test = None
    if found is not None:
        test = {
            'kind': found['kind'],
            'note': found['note'],
            'rows_matched': found['rows_matched'],
            'worse': found['worse'],
            'better': found['better'],
            'test': 'worse' if listed_now else 'better',
            'p_value': found['p_values'][0 if listed_now else 1],
            'adjusted_p_value': None,  # set over the family (_adjust)
        }
    return {
        'slice': source['slice'],
        'slice_id': identity.slice_id(predicates),
        'predicates': predicates,
        'listed': {'baseline': listed_before, 'current': listed_now},
        'baseline': before,
        'current': after,
        'error_rate_change': change,
        'measure': test,
        'not_measured': None if test else why,
    }


def _adjust(entries: Sequence[Dict]) -> int:
    """Bonferroni over the entries that have a test; returns how many that is."""
    tested = [e['measure'] for e in entries if e['measure']]
    for measure, adjusted in zip(tested, stats.bonferroni([m['p_value'] for m in tested])):
        measure['adjusted_p_value'] = float(adjusted)
    return len(tested)


def is_new(entry: Dict, significance: float) -> bool:
    """A new blind spot: failing now and significantly worse than under the baseline model
    (Bonferroni-adjusted); without any measure, failing now and not listed by the baseline."""
    if not entry['listed']['current']:
        return False
    if entry['measure'] is None:
        return not entry['listed']['baseline']
    return entry['measure']['adjusted_p_value'] < significance


def is_resolved(entry: Dict, significance: float) -> bool:
    """Failing before, not listed now, and significantly better now; without any measure,
    no longer listed."""
    if entry['listed']['current']:
        return False
    return entry['measure'] is None or entry['measure']['adjusted_p_value'] < significance


def _overall(report: Dict) -> Dict:
    """The overall numbers compared: a regression's error_rate is its MAE."""
    overall = report.get('overall') or {}
    numbers = {k: overall.get(k) for k in ('examples', 'errors', 'error_rate', 'accuracy')}
    if report.get('regression'):
        numbers['error_rate'] = overall.get('mae')
    return numbers


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
    measured: Optional[Dict] = None,
    significance: Optional[float] = None,
    baseline_tfma: Optional[Sequence[Dict]] = None,
    current_tfma: Optional[Sequence[Dict]] = None,
    min_examples: int = MIN_EXAMPLES,
) -> Dict:
    """The comparison of `current` with `baseline` (see the module docstring).

    `measured`: the part beam/comparison.py wrote for these two reports, or {'problem': why
    there is none}; None: not measured. `significance`: the family-wise level of the tests
    (default: the current report's search significance). TFMA rows default to the ones each
    report carries (its `tfma` key)."""
    if significance is None:
        config = (current.get('slices') or {}).get('config') or {}
        significance = config.get('significance') or SIGNIFICANCE
    measured = measured or {}
    regression = bool(current.get('regression'))
    measures = {predicates_key(m['predicates']): m for m in measured.get('slices') or []}
    problem = measured.get('problem') or (
        "the baseline's predictions were not measured"
        if measured.get('slices') is None
        else 'not among the slices measured'
    )
    entries = [
        _entry(s, before, now, baseline, current, measures, problem, regression)
        for s, before, now in _union(failing_slices(baseline), failing_slices(current))
    ]
    tested = {
        'worse': _adjust([e for e in entries if e['listed']['current']]),
        'better': _adjust([e for e in entries if not e['listed']['current']]),
    }
    status = [
        'new' if is_new(e, significance) else 'resolved' if is_resolved(e, significance) else ''
        for e in entries
    ]
    new = [e for e, s in zip(entries, status) if s == 'new']
    resolved = [e for e, s in zip(entries, status) if s == 'resolved']
    persisting = [e for e, s in zip(entries, status) if not s]
    base_overall, cur_overall = _overall(baseline), _overall(current)
    change = (
        cur_overall['error_rate'] - base_overall['error_rate']
        if _is_number(cur_overall['error_rate']) and _is_number(base_overall['error_rate'])
        else None
    )
    return {
        'metric': 'MAE' if regression else 'error rate',
        'baseline_created': baseline.get('created'),
        'current_created': current.get('created'),
        'overall': {'baseline': base_overall, 'current': cur_overall, 'error_rate_change': change},
        'new': new,
        'resolved': resolved,
        'persisting': persisting,
        'measured': {
            'rows': measured.get('rows'),
            'problem': None if measured.get('rows') else problem,
            'paired_min_share': PAIRED_MIN_SHARE,
            'significance': significance,
            'tested': tested,
        },
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


def _short(x: Optional[float], metric: str) -> str:
    """value_text without the metric's name for an error rate ('20%')."""
    return value_text(x, metric) if metric == 'MAE' else _pct(x)


def value_text(x: Optional[float], metric: str = 'error rate') -> str:
    """A compared value as people read it: '12% error rate' or 'MAE 3.1'."""
    if metric == 'MAE':
        return 'MAE ?' if x is None else f'MAE {x:.3g}'
    return f'{_pct(x)} error rate'


def _rate(side: Optional[Dict]) -> Optional[float]:
    return side.get('error_rate') if side else None


def measure_text(entry: Dict) -> str:
    """How the entry was measured, for people: 'the same 344 examples; adjusted p = 0.003'
    (Bonferroni) or 'not measured: why'."""
    measure = entry['measure']
    if measure is None:
        return f'not measured: {entry["not_measured"]}'
    return f'{measure["note"]}; adjusted p = {measure["adjusted_p_value"]:.2g}'


def comparison_insights(
    comparison: Dict, since: str = 'the last blessed model', max_slices: int = 3
) -> List[str]:
    """Plain sentences about what changed, for the report's insights."""
    lines = []
    metric = comparison.get('metric', 'error rate')
    for entry in comparison['new'][:max_slices]:
        before, after = _rate(entry['baseline']), _rate(entry['current'])
        if entry['measure'] is None:
            lines.append(
                f'New failing slice since {since}: {entry["slice"]} ({value_text(after, metric)}, '
                f'not measured before: {entry["not_measured"]}).'
            )
            continue
        head = 'New failing slice' if not entry['listed']['baseline'] else 'Failing more'
        lines.append(
            f'{head} since {since}: {entry["slice"]} ({value_text(after, metric)}, was '
            f'{_short(before, metric)}; {measure_text(entry)}).'
        )
    if len(comparison['new']) > max_slices:
        lines.append(
            f'... and {len(comparison["new"]) - max_slices} more new failing '
            f'slice(s) since {since}.'
        )
    for entry in comparison['resolved'][:max_slices]:
        before, after = _rate(entry['baseline']), _rate(entry['current'])
        now = (
            f'no longer found ({entry["not_measured"]})'
            if entry['measure'] is None
            else f'now {_short(after, metric)}; {measure_text(entry)}'
        )
        lines.append(
            f'Fixed since {since}: {entry["slice"]} (was {value_text(before, metric)}, {now}).'
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
