"""What every report must satisfy, whatever the data: checked when the report is built (the
violations are stored in it and shown at the top of the page) and asserted by the tests. A
report that contradicts its own numbers is worse than none, so each rule here is one a reader
would otherwise catch by hand."""

import math
from typing import Callable, Dict, List, Sequence

from blindspot.error_analysis.search import identity, regression
from blindspot.error_analysis.search.regression import row_severity

_TOLERANCE = 1e-9


def _descending(values: Sequence[float]) -> bool:
    return all(a >= b - _TOLERANCE for a, b in zip(values, values[1:]))


def _number(x) -> float:
    return -math.inf if x is None else float(x)


def _held(report: Dict) -> List[Dict]:
    return [s for s in report['slices']['slices'] if s['held']]


def _findings(report: Dict) -> List[Dict]:
    return [s for s in _held(report) if not s.get('parent')]


def _unique_held_ids(report: Dict) -> List[str]:
    seen: Dict[str, str] = {}
    problems = []
    for s in _held(report):
        key = s.get('slice_id') or identity.slice_id(s['predicates'])
        if key in seen:
            problems.append(f'held findings {seen[key]!r} and {s["slice"]!r} are one slice ({key})')
        seen[key] = s['slice']
    return problems


def _shares_add_up(report: Dict) -> List[str]:
    """Findings' added shares of errors sum to at most 100%, and none adds more than it
    holds."""
    findings = _findings(report)
    problems = []
    total = sum(s.get('added_error_share') or 0 for s in findings)
    if total > 1 + _TOLERANCE:
        problems.append(f'top-level findings add {100 * total:.1f}% of the errors (more than all)')
    for s in findings:
        if s.get('added_errors') is None or s['added_errors'] > s['errors']:
            problems.append(
                f'{s["slice"]!r} adds {s.get("added_errors")} of its {s["errors"]} errors'
            )
    return problems


def _counts_agree(report: Dict) -> List[str]:
    overall = report['overall']
    problems = []
    searched = report['slices']['overall']
    if searched['rows'] != overall['examples'] or searched['errors'] != overall['errors']:
        problems.append(
            f'slice search saw {searched["rows"]} rows / {searched["errors"]} errors, the report '
            f'{overall["examples"]} / {overall["errors"]}'
        )
    for s in report['slices']['slices']:
        if not 0 <= s['errors'] <= s['size'] <= overall['examples']:
            problems.append(f'{s["slice"]!r}: {s["errors"]} errors in {s["size"]} rows')
    return problems


# (what the caption says, the rows, the key they are sorted by, descending)
_SORTED: Sequence[Callable[[Dict], tuple]] = (
    lambda r: (
        'findings, the most added gain first',
        _findings(r),
        lambda s: s.get('added_potential_gain'),
        True,
    ),
    lambda r: (
        'hardest examples, most confident first',
        r['hardest_examples'],
        row_severity,
        True,
    ),
    lambda r: (
        'label suspects, most suspicious first',
        (r.get('diagnosis') or {}).get('label_suspects') or [],
        lambda e: e['label_probability'],
        False,
    ),
    lambda r: (
        'most frequent confusions',
        (r['confusion'] or {}).get('top_pairs') or [],
        lambda p: p['count'],
        True,
    ),
    lambda r: (
        'tags ranked by potential gain',
        (r.get('tags') or {}).get('prioritization') or [],
        lambda t: t['potential_gain'],
        True,
    ),
    lambda r: (
        'misclassified images, most frequent pair first',
        r['gallery'],
        lambda g: g['count'],
        True,
    ),
)


def _tables_sorted(report: Dict) -> List[str]:
    problems = []
    for table in _SORTED:
        caption, rows, key, descending = table(report)
        values = [_number(key(row)) for row in rows]
        if not _descending(values if descending else [-v for v in values]):
            problems.append(f'"{caption}" is not in that order: {values}')
    return problems


def _highlights_held(report: Dict) -> List[str]:
    """Values marked as used by a failing slice come from held findings only: their feature
    is in one, and a category is one a held finding names."""
    held = [p for s in _held(report) for p in s['predicates']]
    bins = {
        (v['feature'], v['label']) for v in report['slices']['feature_values'] if v.get('bounds')
    }
    problems = []
    for feature, labels in report.get('highlights', {}).items():
        for label in labels:
            on_feature = [p for p in held if p['feature'] == feature]
            named = any(p['label'] == label for p in on_feature)
            in_range = (feature, label) in bins and any(p.get('is_range') for p in on_feature)
            if not (named or in_range):
                problems.append(f'{label!r} is highlighted but no held finding uses it')
    return problems


def _label_not_sliced(report: Dict) -> List[str]:
    """No slice or per-value row is on the label itself: it would restate the label."""
    labels = {report['label_key'], report.get('label_name')}
    used = {p['feature'] for s in report['slices']['slices'] for p in s['predicates']}
    used |= {v['feature'] for v in report['slices']['feature_values']}
    return [f'the label {name!r} is sliced on' for name in sorted(used & labels)]


def _tfma_per_class(report: Dict) -> List[str]:
    """With more than two classes, an unqualified precision/recall would be one class's value
    shown under the slice's name: only macro (or per-class) values may be shown."""
    if len(report['class_names']) <= 2:
        return []
    return [
        f'TFMA slice {row["slice"]!r} shows {name} for a {len(report["class_names"])}-class model'
        for row in report['tfma']
        for name in ('precision', 'recall')
        if name in row['metrics']
    ]


def _gate_consistent(report: Dict) -> List[str]:
    gate = report['gate']
    if gate['passed'] == bool(gate['blocking']):
        return [f'slice gate passed={gate["passed"]} with {len(gate["blocking"])} blocking slices']
    return []


def _qualifiers(report: Dict) -> List[str]:
    """Every qualifier a diagnosis sentence uses is the one its number gives."""
    from blindspot.error_analysis.search.diagnosis import qualifier_violations

    problems = []
    entries = [(s['slice'], s.get('diagnosis')) for s in report['slices']['slices']]
    entries += [
        (t['tag'], t.get('diagnosis'))
        for t in ((report.get('tags') or {}).get('prioritization') or [])
    ]
    for name, diagnosis in entries:
        if diagnosis:
            check = (
                regression.qualifier_violations
                if diagnosis.get('task') == 'regression'
                else qualifier_violations
            )
            problems += [f'{name!r}: {p}' for p in check(diagnosis)]
    return problems


def _regression_numbers_agree(report: Dict) -> List[str]:
    """A regression report: the findings' added gains sum to their union's; each slice's and
    each feature value's numbers cover its rows, and per feature the values' mean errors
    average (weighted by rows) to the overall one."""
    if not report.get('regression'):
        return []
    problems = []
    union = report['slices']['regression']['union_gain']
    added = sum(s.get('added_potential_gain') or 0 for s in _findings(report))
    if abs(added - union) > 1e-6 * max(1.0, abs(union)):
        problems.append(f'added gains sum to {added:.6g}, the findings together gain {union:.6g}')
    for s in report['slices']['slices']:
        if s['regression']['rows'] != s['size']:
            problems.append(
                f'{s["slice"]!r}: mean error over {s["regression"]["rows"]} rows of {s["size"]}'
            )
    overall = report['overall']
    by_feature: Dict[str, List] = {}
    for value in report['slices']['feature_values']:
        by_feature.setdefault(value['feature'], []).append(value)
    for feature, values in by_feature.items():
        rows = sum(v['size'] for v in values)
        total = sum(v['size'] * (v['regression']['mean_error'] or 0) for v in values)
        if rows != overall['examples'] or abs(total / max(rows, 1) - overall['mean_error']) > (
            1e-6 * max(1.0, abs(overall['mean_error']))
        ):
            problems.append(
                f'{feature}: its values hold {rows} rows with mean error '
                f'{total / max(rows, 1):.6g}, the report {overall["examples"]} and '
                f'{overall["mean_error"]:.6g}'
            )
    return problems


def _tag_counts(report: Dict) -> List[str]:
    """Every tag's potential gain is at least 0, and a rule tag (counted over the analysed
    rows) has at most as many rows as there are examples."""
    problems = []
    examples = report['overall']['examples']
    for t in (report.get('tags') or {}).get('prioritization') or []:
        if t['potential_gain'] < -_TOLERANCE:
            problems.append(f'tag {t["tag"]!r} has a negative potential gain')
        if t['source'] == 'rule' and not 0 <= t['rows'] <= examples:
            problems.append(f'rule tag {t["tag"]!r} has {t["rows"]} rows of {examples}')
    return problems


def _regression_tags_agree(report: Dict) -> List[str]:
    """A regression's tags: the tag's and the rest's mean errors average, weighted by their
    shares, to the overall one; the gain is share x the tag's excess over the rest; the mean
    error lies within its interval."""
    tags = report.get('tags') or {}
    if not report.get('regression') or not tags:
        return []
    problems = []
    overall = report['overall']['mean_error']
    for t in tags['prioritization']:
        name, share, mean, rest = t['tag'], t['share'], t['mean_error'], t['rest_mean_error']
        gain = share * max(mean - rest, 0.0) if rest is not None else 0.0
        if abs(gain - t['potential_gain']) > 1e-9 * max(1.0, abs(gain)):
            problems.append(
                f'tag {name!r}: gain {t["potential_gain"]:.6g}, share x excess {gain:.6g}'
            )
        if rest is not None:
            together = share * mean + (1 - share) * rest
            if abs(together - overall) > 1e-6 * max(1.0, abs(overall)):
                problems.append(
                    f"tag {name!r}: its mean error and the rest's average to {together:.6g}, "
                    f'the report says {overall:.6g}'
                )
        low, high = t['mean_error_ci']
        if low is not None and not low - _TOLERANCE <= mean <= high + _TOLERANCE:
            problems.append(f'tag {name!r}: mean error {mean:.6g} outside {low:.6g}..{high:.6g}')
    return problems


def _reachable_gain(report: Dict) -> List[str]:
    """A finding's reachable gain is part of its potential gain (0 <= reachable <= potential),
    and the insights promise findings in order of reachable gain, so a region the model cannot
    fit even in training is not the top promise."""
    from blindspot.error_analysis.report.insights import reachable_gain

    findings = _findings(report)
    problems = []
    for s in findings:
        for reachable, potential in (
            (s.get('reachable_gain'), s['potential_gain']),
            (s.get('added_reachable_gain'), s.get('added_potential_gain')),
        ):
            if reachable is not None and not -_TOLERANCE <= reachable <= potential + _TOLERANCE:
                problems.append(
                    f'{s["slice"]!r}: reachable gain {reachable} outside 0..{potential}'
                )
    by_text = {s['slice']: s for s in findings}
    promised = [
        by_text[line[len('Fixing ') :].split(' could gain up to ')[0]]
        for line in report.get('insights', [])
        if line.startswith('Fixing ')
        and ' could gain up to ' in line
        and line[len('Fixing ') :].split(' could gain up to ')[0] in by_text
    ]
    gains = [reachable_gain(s) for s in promised]
    if not _descending(gains):
        problems.append(f'the insights promise findings out of reachable-gain order: {gains}')
    return problems


CHECKS = (
    _unique_held_ids,
    _shares_add_up,
    _counts_agree,
    _tables_sorted,
    _highlights_held,
    _label_not_sliced,
    _tfma_per_class,
    _gate_consistent,
    _qualifiers,
    _regression_numbers_agree,
    _tag_counts,
    _regression_tags_agree,
    _reachable_gain,
)


def violations(report: Dict) -> List[str]:
    """Every rule the report breaks, as sentences (empty: it agrees with itself)."""
    return [problem for check in CHECKS for problem in check(report)]
