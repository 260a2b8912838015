"""Charts for report.html that need no network: inline SVG strings drawn here.

Pure: a report dict (report.json, see build.py) in, SVG markup out. The two chart kinds (a
rate per row with its interval, a heat map) are drawn directly as SVG elements: text stays
text, so the page is small and searchable, and a report's ten charts take milliseconds (drawing
them with matplotlib took over a second, most of ErrorAnalysis's report time). Element ids are
prefixed by a hash of the chart's name, so several SVGs in one page never share an id.
"""

import hashlib
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from blindspot.error_analysis.report.compare import accuracy_metric
from blindspot.error_analysis.report.markup import escape
from blindspot.error_analysis.search import stats

MAX_BARS = 20  # slices or feature values per chart: the largest ones
MAX_ANNOTATED_CLASSES = 12  # beyond this the heat map's cells are too small for numbers
CONFIDENCE = 0.95
_FAILING = '#d9534f'
_NEUTRAL = '#7a8793'
_OVERALL = '#2a7a2a'
_INK = '#222'
_GRID = '#e6e6e6'
_FONT = 'font-family="system-ui,sans-serif"'
_CHAR_WIDTH = 6.2  # px per character of 11 px text, a little generous: labels are measured by count
_MAX_LABEL_CHARS = 70  # longer labels are cut (the full text is the element's tooltip)
# Matplotlib's 'Blues' colour map at 0, 1/8, ..., 1: a cell's colour is interpolated.
_BLUES = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
]


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = 'start', **attrs) -> str:
    """One <text> element; long text is cut with its whole value as the tooltip."""
    shown = text if len(text) <= _MAX_LABEL_CHARS else text[: _MAX_LABEL_CHARS - 1] + '…'
    extra = ''.join(f' {k}="{escape(v)}"' for k, v in attrs.items())
    tip = f'<title>{escape(text)}</title>' if shown != text else ''
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{_INK}"{extra}>{tip}{escape(shown)}</text>'
    )


def _label_width(labels: Sequence[str]) -> float:
    return min(max((len(label) for label in labels), default=0), _MAX_LABEL_CHARS) * _CHAR_WIDTH


def _svg(width: float, height: float, body: Sequence[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}" '
        f'{_FONT} style="max-width:100%;height:auto">{"".join(body)}</svg>'
    )


def _id_prefix(name: str) -> str:
    return 'c' + hashlib.sha1(name.encode()).hexdigest()[:8] + '-'


def _interval_chart(
    labels: Sequence[str],
    rates: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    colors: Sequence[str],
    reference: Optional[float],
    reference_label: str,
    xlabel: str,
    title: str,
) -> str:
    """One row per label: a point at its rate with its confidence interval, plus a reference
    line (the overall rate). The x axis is 0-100%."""
    row_height, top, bottom, plot_width = 22, 30, 46, 440
    left = _label_width(labels) + 16
    height = top + max(len(labels), 2) * row_height + bottom
    width = left + plot_width + 20

    def x(value: float) -> float:  # -2% .. 102%, like the drawn domain
        return left + (min(max(value, -0.02), 1.02) + 0.02) / 1.04 * plot_width

    plot_bottom = height - bottom
    body = []
    for tick in np.linspace(0, 1, 6):
        body.append(
            f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{plot_bottom}" '
            f'stroke="{_GRID}"/>'
        )
        body.append(_text(x(tick), plot_bottom + 15, f'{100 * tick:.0f}%', 10, 'middle'))
    body.append(
        f'<line x1="{left}" y1="{plot_bottom}" x2="{left + plot_width}" y2="{plot_bottom}" '
        f'stroke="{_INK}"/>'
    )
    body.append(_text(left + plot_width / 2, height - 8, xlabel, 11, 'middle'))
    # Clipped: a rate on the edge of its interval may differ from it by rounding.
    low, high = np.minimum(low, rates), np.maximum(high, rates)
    for i, (label, rate, lo, hi, color) in enumerate(zip(labels, rates, low, high, colors)):
        y = top + (i + 0.5) * row_height
        body.append(_text(left - 8, y + 4, label, 11, 'end'))
        body.append(
            f'<g stroke="{color}" stroke-width="2"><title>{escape(label)}: {100 * rate:.1f}% '
            f'({100 * lo:.1f}-{100 * hi:.1f}%)</title>'
            f'<line x1="{x(lo):.1f}" y1="{y:.1f}" x2="{x(hi):.1f}" y2="{y:.1f}"/>'
            f'<line x1="{x(lo):.1f}" y1="{y - 4:.1f}" x2="{x(lo):.1f}" y2="{y + 4:.1f}"/>'
            f'<line x1="{x(hi):.1f}" y1="{y - 4:.1f}" x2="{x(hi):.1f}" y2="{y + 4:.1f}"/>'
            f'<circle cx="{x(rate):.1f}" cy="{y:.1f}" r="4" fill="{color}"/></g>'
        )
    if reference is not None:
        body.append(
            f'<line x1="{x(reference):.1f}" y1="{top}" x2="{x(reference):.1f}" '
            f'y2="{plot_bottom}" stroke="{_OVERALL}" stroke-dasharray="5 3"/>'
        )
        legend_x = left + plot_width - 10
        sample_end = legend_x - 6 - _label_width([reference_label])  # a dashed sample, then text
        body.append(
            f'<line x1="{sample_end - 18:.1f}" y1="12" x2="{sample_end:.1f}" y2="12" '
            f'stroke="{_OVERALL}" stroke-dasharray="5 3"/>'
        )
        body.append(_text(legend_x, 16, reference_label, 10, 'end'))
    return _svg(width, height, body, title)


def _blues(share: float) -> str:
    position = min(max(share, 0.0), 1.0) * (len(_BLUES) - 1)
    i = min(int(position), len(_BLUES) - 2)
    t = position - i
    r, g, b = (round(a + (c - a) * t) for a, c in zip(_BLUES[i], _BLUES[i + 1]))
    return f'#{r:02x}{g:02x}{b:02x}'


def _value_label(label: str, features: Sequence[str]) -> str:
    """The slice's values alone, as the chart names its features: 'payment_type = Cash AND
    trip_start_hour = 18' -> 'Cash × 18'; other predicates (numeric ranges) stay whole."""
    parts = label.split(' AND ')
    if len(parts) != len(features):
        return label
    return ' × '.join(
        part[len(feature) + 3 :] if part.startswith(f'{feature} = ') else part
        for part, feature in zip(parts, features)
    )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)


def tfma_slice_accuracy(report: Dict) -> List[Tuple[str, str]]:
    """Per declared TFMA slicing spec: (title, SVG) of accuracy per slice with its 95% Wilson
    interval (from the slice's example count), the largest slices, against overall accuracy."""
    rows = report.get('tfma') or []
    metric = accuracy_metric(rows)
    if metric is None:
        return []
    overall = next((r['metrics'].get(metric) for r in rows if not r['features']), None)
    groups: Dict[Tuple[str, ...], List[Dict]] = {}
    for row in rows:
        value, count = row['metrics'].get(metric), row['metrics'].get('example_count')
        if row['features'] and _is_number(value) and _is_number(count) and count > 0:
            groups.setdefault(tuple(row['features']), []).append(row)
    charts = []
    for features, group in groups.items():
        shown = sorted(group, key=lambda r: -r['metrics']['example_count'])[:MAX_BARS]
        counts = np.array([round(r['metrics']['example_count']) for r in shown], dtype=float)
        accuracy = np.array([r['metrics'][metric] for r in shown])
        low, high = stats.wilson_interval(np.round(accuracy * counts), counts, CONFIDENCE)
        labels = [
            f'{_value_label(r["slice"], features)} (n={c:,.0f})' for r, c in zip(shown, counts)
        ]
        name = ' × '.join(features)
        title = f'{metric} by {name}' + (
            f' ({len(shown)} largest of {len(group)} slices)' if len(group) > len(shown) else ''
        )
        charts.append(
            (
                title,
                _interval_chart(
                    labels,
                    accuracy,
                    low,
                    high,
                    [_NEUTRAL] * len(shown),
                    overall if _is_number(overall) else None,
                    f'overall {metric}',
                    f'{metric} (95% interval)',
                    title,
                ),
            )
        )
    return charts


def confusion_heatmap(report: Dict) -> str:
    """The confusion matrix as a heat map: colour is the share of the true class (rows sum to
    100%), cells show the count and that share while the classes are few enough to read."""
    names = [str(n) for n in report['class_names']]
    counts = np.asarray(report['confusion']['matrix'])
    shares = np.asarray(report['confusion']['normalized'], dtype=float)
    n = len(names)
    cell = max(min(64.0, 560 / max(n, 1)), 14.0)
    rotate = n > 2
    left = _label_width(names) + 30
    top = 12
    name_depth = _label_width(names) * (0.55 if rotate else 0) + 18
    bottom = name_depth + 26
    bar_x = left + n * cell + 20
    width = bar_x + 16 + 40 + 24
    height = top + n * cell + bottom
    prefix = _id_prefix('confusion')
    body = []
    annotate = n <= MAX_ANNOTATED_CLASSES
    for i in range(n):
        for j in range(n):
            share = shares[i, j]
            x, y = left + j * cell, top + i * cell
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{_blues(share)}"><title>true {escape(names[i])}, predicted '
                f'{escape(names[j])}: {counts[i, j]:,} ({100 * share:.1f}%)</title></rect>'
            )
            if annotate:
                ink = 'white' if share > 0.6 else _INK
                body.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 - 2:.1f}" font-size="10" '
                    f'text-anchor="middle" fill="{ink}"><tspan>{counts[i, j]:,}</tspan>'
                    f'<tspan x="{x + cell / 2:.1f}" dy="12">{100 * share:.1f}%</tspan></text>'
                )
    for k, name in enumerate(names):
        middle = left + (k + 0.5) * cell
        body.append(_text(left - 6, top + (k + 0.5) * cell + 4, name, 10, 'end'))
        if rotate:
            body.append(
                _text(
                    middle + 4,
                    top + n * cell + 12,
                    name,
                    10,
                    'end',
                    transform=f'rotate(-30 {middle + 4:.1f} {top + n * cell + 12:.1f})',
                )
            )
        else:
            body.append(_text(middle, top + n * cell + 14, name, 10, 'middle'))
    body.append(_text(left + n * cell / 2, height - 8, 'predicted', 11, 'middle'))
    middle_y = top + n * cell / 2
    body.append(
        _text(12, middle_y, 'true', 11, 'middle', transform=f'rotate(-90 12 {middle_y:.1f})')
    )
    # Colour bar: 0% at the bottom, 100% at the top.
    stops = ''.join(
        f'<stop offset="{100 * s:.1f}%" stop-color="{_blues(1 - s)}"/>'
        for s in np.linspace(0, 1, len(_BLUES))
    )
    bar_height = n * cell
    body.append(
        f'<defs><linearGradient id="{prefix}bar" x1="0" y1="0" x2="0" y2="1">{stops}'
        f'</linearGradient></defs><rect x="{bar_x:.1f}" y="{top}" width="16" '
        f'height="{bar_height:.1f}" fill="url(#{prefix}bar)" stroke="{_GRID}"/>'
    )
    for tick in np.linspace(0, 1, 6):
        y = top + (1 - tick) * bar_height
        body.append(_text(bar_x + 20, y + 3.5, f'{100 * tick:.0f}%', 9))
    bar_label_x = bar_x + 64
    body.append(
        _text(
            bar_label_x,
            middle_y,
            'share of the true class',
            10,
            'middle',
            transform=f'rotate(-90 {bar_label_x:.1f} {middle_y:.1f})',
        )
    )
    return _svg(width, height, body, 'confusion matrix')


def finding_feature_error_rates(report: Dict) -> List[Tuple[str, str]]:
    """Per feature that a held finding uses, in the per-value table's order: (title, SVG) of the
    error rate of its values with 95% intervals against the overall error rate; the values
    the held findings use (report['highlights']) are drawn in red."""
    found = report['slices']
    in_findings = {p['feature'] for s in found['slices'] if s['held'] for p in s['predicates']}
    used = {feature: set(labels) for feature, labels in report.get('highlights', {}).items()}
    by_feature: Dict[str, List[Dict]] = {}
    for value in found['feature_values']:
        if value['feature'] in in_findings and _is_number(value['error_rate']):
            by_feature.setdefault(value['feature'], []).append(value)
    overall = report['overall']['error_rate']
    charts = []
    for feature, values in by_feature.items():
        # The report's order: categories largest first, numeric bins in value order.
        shown = values[:MAX_BARS]
        labels = [f'{_value_label(v["label"], [feature])} (n={v["size"]:,})' for v in shown]
        title = f'error rate by {feature}' + (
            f' ({len(shown)} largest of {len(values)} values)' if len(values) > len(shown) else ''
        )
        charts.append(
            (
                title,
                _interval_chart(
                    labels,
                    np.array([v['error_rate'] for v in shown]),
                    np.array([v['error_rate_ci'][0] for v in shown]),
                    np.array([v['error_rate_ci'][1] for v in shown]),
                    [_FAILING if v['label'] in used.get(feature, ()) else _NEUTRAL for v in shown],
                    overall,
                    'overall error rate',
                    'error rate (95% interval)',
                    title,
                ),
            )
        )
    return charts


def html_section(report: Dict) -> str:
    """The charts as one HTML block for report.html: inline SVG, no scripts, no network."""

    def figure(title: str, svg: str) -> str:
        return (
            '<figure style="margin:8px 0 16px;text-align:left">'
            f'<figcaption style="font-size:13px;font-weight:600">{escape(title)}'
            f'</figcaption>{svg}</figure>'
        )

    parts = ['<h2>Charts</h2>', figure('Confusion matrix', confusion_heatmap(report))]
    tfma = tfma_slice_accuracy(report)
    if tfma:
        parts.append('<h3>TFMA sliced accuracy (Evaluator), declared slices</h3>')
        parts += [figure(title, svg) for title, svg in tfma]
    features = finding_feature_error_rates(report)
    if features:
        parts.append(
            '<h3>Error rate by the features of the failing slices</h3><p class=muted>Red: '
            'values a failing slice uses; dashed: overall error rate.</p>'
        )
        parts += [figure(title, svg) for title, svg in features]
    return ''.join(parts)
