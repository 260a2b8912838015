"""The HTML fragment for report.json's `comparison` (see report/compare.py): a section meant
for report.html right after "Failing slices found automatically". Empty when the report has no
comparison (no blessed model yet, or run without the report resolver)."""

from typing import Dict, List, Optional

from blindspot.error_analysis.report.compare import measure_text
from blindspot.error_analysis.report.markup import escape

MAX_ACCURACY_ROWS = 15


def _pct(x: Optional[float], metric: str = 'error rate') -> str:
    """An error rate, or a regression's MAE (metric 'MAE')."""
    if x is None:
        return '–'
    return f'{x:.3g}' if metric == 'MAE' else f'{100 * x:.1f}%'


def _pts(x: Optional[float], metric: str = 'error rate') -> str:
    if x is None:
        return ''
    return f'{x:+.3g}' if metric == 'MAE' else f'{100 * x:+.1f} pts'


def _side(side: Optional[Dict], metric: str) -> str:
    if not side:
        return '<td class="n muted">not measured</td>'  # the reason is in the last column
    held = '' if side.get('held') else ' <span class=muted>(not failing)</span>'
    size = f' <span class=muted>n={side["size"]:,}</span>' if side.get('size') else ''
    return f'<td class="n">{_pct(side.get("error_rate"), metric)}{size}{held}</td>'


def _group(title: str, css: str, entries: List[Dict], metric: str) -> str:
    if not entries:
        return f'<h3>{escape(title)} (0)</h3>'
    rows = ''.join(
        f'<tr><td>{escape(e["slice"])}</td>{_side(e["baseline"], metric)}'
        f'{_side(e["current"], metric)}<td class="n">{_pts(e["error_rate_change"], metric)}</td>'
        f'<td class=muted>{escape(measure_text(e))}</td></tr>'
        for e in entries
    )
    return (
        f'<h3 class="{css}">{escape(title)} ({len(entries)})</h3><table>'
        f'<tr><th>slice</th><th>{metric} before</th><th>{metric} now</th>'
        f'<th>change</th><th>measured on</th></tr>{rows}</table>'
    )


def _measured(measured: Dict) -> str:
    """Which rows the before/after numbers come from."""
    rows = measured.get('rows')
    if not rows:
        return (
            f"Not measured on the baseline's predictions ({escape(measured.get('problem'))}): "
            "the numbers are the two reports' own where they have them."
        )
    return (
        f"Measured on both models' predictions: {rows['matched']:,} of the {rows['current']:,} "
        f"examples analysed now are in the baseline's {rows['baseline']:,} (matched by id). "
        'A slice is compared on the same examples when they hold at least '
        f'{measured["paired_min_share"]:.0%} of its rows (exact McNemar test), else on each '
        "model's own (Fisher's exact test). New: failing now and significantly worse "
        f'(Bonferroni over {measured["tested"]["worse"]} slices, level '
        f'{measured["significance"]:g}); fixed: significantly better.'
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
    metric = comparison.get('metric', 'error rate')
    source = comparison.get('baseline_uri')
    label = comparison.get('baseline_label', 'the baseline')
    note = (
        f'<p class=muted>Compared with the report of {escape(label)}'
        f' written {escape(comparison.get("baseline_created"))}'
        + (f' (<code>{escape(source)}</code>)' if source else '')
        + '. Slices are matched by '
        'their predicates; "failing" means held on held-out data. '
        + _measured(comparison.get('measured') or {})
        + '</p>'
    )
    summary = (
        f'<p>{metric.capitalize() if metric != "MAE" else metric} '
        f'{_pct(before.get("error_rate"), metric)} → {_pct(now.get("error_rate"), metric)}'
        f' ({_pts(overall.get("error_rate_change"), metric)}); {len(comparison["new"])} new, '
        f'{len(comparison["resolved"])} fixed, {len(comparison["persisting"])} still '
        'failing.</p>'
    )
    return (
        f'<h2>{escape(title)}</h2>'
        + note
        + summary
        + _group('New blind spots (failing significantly more)', 'no', comparison['new'], metric)
        + _group('Fixed', 'ok', comparison['resolved'], metric)
        + _group('Still failing', '', comparison['persisting'], metric)
        + _accuracy(comparison.get('accuracy') or {})
    )
