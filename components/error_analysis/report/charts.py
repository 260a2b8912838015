"""Charts for report.html that need no network: matplotlib figures as inline SVG strings.

Pure: a report dict (report.json, see build.py) in, SVG markup out. Figures are built with
`matplotlib.figure.Figure` and written by matplotlib's own SVG writer, never through pyplot, so
no GUI backend is touched and the process-wide backend (Agg when headless) is left alone. Text
stays text (`svg.fonttype: none`), so the page is small and searchable; each chart prefixes its
element ids so that several SVGs in one page never share an id.
"""

import hashlib
import html
import io
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from components.error_analysis.report.compare import accuracy_metric
from components.error_analysis.search import stats

MAX_BARS = 20  # slices or feature values per chart: the largest ones
MAX_ANNOTATED_CLASSES = 12  # beyond this the heat map's cells are too small for numbers
CONFIDENCE = 0.95
_FAILING = '#d9534f'
_NEUTRAL = '#7a8793'
_OVERALL = '#2a7a2a'


def _svg(figure: Figure, name: str) -> str:
    """The figure as an <svg> element to inline in HTML (no XML prolog or doctype), its element
    ids prefixed by a hash of `name`: matplotlib numbers them (figure_1, patch_1, ...) the same
    in every figure, and one page must not repeat an id."""
    buffer = io.StringIO()
    with rc_context({'svg.fonttype': 'none', 'svg.hashsalt': name}):
        figure.savefig(buffer, format='svg', bbox_inches='tight', metadata={'Date': None})
    text = buffer.getvalue()
    text = text[text.index('<svg') :]
    prefix = 'c' + hashlib.sha1(name.encode()).hexdigest()[:8] + '-'
    ids = set(re.findall(r'\sid="([^"]+)"', text))
    return re.sub(
        r'(\sid="|url\(#|href="#)([^")]+)',
        lambda m: m.group(1) + (prefix if m.group(2) in ids else '') + m.group(2),
        text,
    )


def _interval_chart(
    labels: Sequence[str],
    rates: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    colors: Sequence[str],
    reference: Optional[float],
    reference_label: str,
    xlabel: str,
    salt: str,
) -> str:
    """One row per label: a point at its rate with its confidence interval, plus a reference
    line (the overall rate)."""
    height = 0.9 + 0.28 * len(labels)
    figure = Figure(figsize=(7.5, height))
    axes = figure.subplots()
    y = np.arange(len(labels))[::-1]
    # Clipped: a rate on the edge of its interval may differ from it by rounding.
    errors = np.clip(np.vstack([rates - low, high - rates]), 0, None)
    colors = np.asarray(colors)
    for color in dict.fromkeys(colors):  # one call per colour: far faster than one per row
        rows = colors == color
        axes.errorbar(
            rates[rows],
            y[rows],
            xerr=errors[:, rows],
            fmt='o',
            color=color,
            ecolor=color,
            elinewidth=2,
            capsize=3,
            markersize=5,
        )
    if reference is not None:
        axes.axvline(reference, color=_OVERALL, linestyle='--', linewidth=1, label=reference_label)
        axes.legend(loc='lower right', bbox_to_anchor=(1, 1), fontsize=8, frameon=False)
    axes.set_yticks(y, labels, fontsize=8)
    axes.set_ylim(-0.7, len(labels) - 0.3)
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.xaxis.set_major_formatter(lambda value, _: f'{100 * value:.0f}%')
    axes.tick_params(axis='x', labelsize=8)
    axes.grid(axis='x', color='#eee')
    axes.set_axisbelow(True)
    for side in ('top', 'right'):
        axes.spines[side].set_visible(False)
    return _svg(figure, salt)


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
                    f'tfma-{name}',
                ),
            )
        )
    return charts


def confusion_heatmap(report: Dict) -> str:
    """The confusion matrix as a heat map: colour is the share of the true class (rows sum to
    100%), cells show the count and that share while the classes are few enough to read."""
    names = report['class_names']
    counts = np.asarray(report['confusion']['matrix'])
    shares = np.asarray(report['confusion']['normalized'], dtype=float)
    size = min(2.2 + 0.55 * len(names), 12)
    figure = Figure(figsize=(size + 1.2, size))
    axes = figure.subplots()
    image = axes.imshow(shares, cmap='Blues', vmin=0, vmax=1)
    if len(names) <= MAX_ANNOTATED_CLASSES:
        for i in range(len(names)):
            for j in range(len(names)):
                axes.text(
                    j,
                    i,
                    f'{counts[i, j]:,}\n{100 * shares[i, j]:.1f}%',
                    ha='center',
                    va='center',
                    fontsize=8,
                    color='white' if shares[i, j] > 0.6 else '#222',
                )
    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=30 if len(names) > 2 else 0, ha='right', fontsize=8)
    axes.set_yticks(ticks, names, fontsize=8)
    axes.set_xlabel('predicted', fontsize=9)
    axes.set_ylabel('true', fontsize=9)
    bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=8)
    bar.set_label('share of the true class', fontsize=8)
    return _svg(figure, 'confusion')


def finding_feature_error_rates(report: Dict) -> List[Tuple[str, str]]:
    """Per feature that a failing slice (finding) uses, in the findings' rank order: (title,
    SVG) of the error rate of its values with 95% intervals against the overall error rate;
    the values the findings use are drawn in red."""
    found = report['slices']
    used: Dict[str, set] = {}
    for finding in found['slices']:
        for predicate in finding['predicates']:
            used.setdefault(predicate['feature'], set()).add(predicate['label'])
    by_feature: Dict[str, List[Dict]] = {}
    for value in found['feature_values']:
        if value['feature'] in used and _is_number(value['error_rate']):
            by_feature.setdefault(value['feature'], []).append(value)
    overall = report['overall']['error_rate']
    charts = []
    for feature in used:
        values = by_feature.get(feature, [])
        if not values:
            continue
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
                    [_FAILING if v['label'] in used[feature] else _NEUTRAL for v in shown],
                    overall,
                    'overall error rate',
                    'error rate (95% interval)',
                    f'feature-{feature}',
                ),
            )
        )
    return charts


def html_section(report: Dict) -> str:
    """The charts as one HTML block for report.html: inline SVG, no scripts, no network."""

    def figure(title: str, svg: str) -> str:
        return (
            '<figure style="margin:8px 0 16px;text-align:left">'
            f'<figcaption style="font-size:13px;font-weight:600">{html.escape(title)}'
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
