"""The HTML fragment for report.json's `comparison` (see report_compare.py): a section meant
for report.html right after "Failing slices found automatically". Empty when the report has no
comparison (no blessed model yet, or run without the report resolver)."""

from typing import Dict, List, Optional

from components.error_analysis.report.markup import escape

MAX_ACCURACY_ROWS = 15


def _pct(x: Optional[float]) -> str:
    return '–' if x is None else f'{100 * x:.1f}%'


def _pts(x: Optional[float]) -> str:
    return '' if x is None else f'{100 * x:+.1f} pts'


def _side(side: Optional[Dict]) -> str:
    if not side:
        return '<td class="n muted">not measured</td>'
    held = '' if side.get('held') else ' <span class=muted>(not held)</span>'
    size = f' <span class=muted>n={side["size"]:,}</span>' if side.get('size') else ''
    return f'<td class="n">{_pct(side.get("error_rate"))}{size}{held}</td>'


def _group(title: str, css: str, entries: List[Dict]) -> str:
    if not entries:
        return f'<h3>{escape(title)} (0)</h3>'
    rows = ''.join(
        f'<tr><td>{escape(e["slice"])}</td>{_side(e["baseline"])}{_side(e["current"])}'
        f'<td class="n">{_pts(e["error_rate_change"])}</td></tr>'
        for e in entries
    )
    return (
        f'<h3 class="{css}">{escape(title)} ({len(entries)})</h3><table>'
        '<tr><th>slice</th><th>error rate before</th><th>error rate now</th>'
        f'<th>change</th></tr>{rows}</table>'
    )


def _accuracy(accuracy: Dict) -> str:
    rows = accuracy.get('rows') or []
    if not rows:
        return ''
    body = ''.join(
        f'<tr><td>{escape(r["slice"])}</td><td class="n">{r["baseline"]:.3f}</td>'
        f'<td class="n">{r["current"]:.3f}</td><td class="n">{r["change"]:+.3f}</td>'
        f'<td class="n">{r["baseline_examples"]:,} / {r["current_examples"]:,}</td></tr>'
        for r in rows[:MAX_ACCURACY_ROWS]
    )
    return (
        f'<details><summary>{escape(accuracy["metric"])} by TFMA slice, largest changes first '
        f'({min(len(rows), MAX_ACCURACY_ROWS)} of {len(rows)} slices with at least '
        f'{accuracy["min_examples"]} examples in both)</summary><table><tr><th>slice</th>'
        '<th>before</th><th>now</th><th>change</th><th>examples</th></tr>'
        f'{body}</table></details>'
    )


def render_comparison(report: Dict, title: str = 'Since the last blessed model') -> str:
    """`<h2>` section comparing this report with its baseline; '' without a comparison."""
    comparison = report.get('comparison')
    if not comparison:
        return ''
    overall = comparison['overall']
    before, now = overall['baseline'], overall['current']
    source = comparison.get('baseline_uri')
    label = comparison.get('baseline_label', 'the baseline')
    note = (
        f'<p class=muted>Compared with the report of {escape(label)}'
        f' written {escape(comparison.get("baseline_created"))}'
        + (f' (<code>{escape(source)}</code>)' if source else '')
        + '. Slices are matched by '
        'their predicates; "failing" means held on held-out data.</p>'
    )
    summary = (
        f'<p>Error rate {_pct(before.get("error_rate"))} → {_pct(now.get("error_rate"))}'
        f' ({_pts(overall.get("error_rate_change"))}); {len(comparison["new"])} new, '
        f'{len(comparison["resolved"])} fixed, {len(comparison["persisting"])} still '
        'failing.</p>'
    )
    return (
        f'<h2>{escape(title)}</h2>'
        + note
        + summary
        + _group('New failing slices', 'no', comparison['new'])
        + _group('Fixed', 'ok', comparison['resolved'])
        + _group('Still failing', '', comparison['persisting'])
        + _accuracy(comparison.get('accuracy') or {})
    )
