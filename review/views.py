"""Blindspot's own views of a run, as HTML for any Jupyter front end (JupyterLab, Notebook 7,
nbclassic, VS Code) and no network: `IPython.display.HTML(views.<view>(...))`.

TFMA's notebook views are ipywidgets drawn by a classic-notebook extension with Google Charts
from the internet: JupyterLab and Notebook 7 cannot load them ("Error displaying widget") and
offline they draw only their controls. These views draw the same numbers with report.html's
own renderers (components/error_analysis/report: charts.py's SVG charts, html_page.py's
sortable and filterable tables, compare_html.py), so a notebook shows what the report shows.
TFMA's plots (calibration, precision-recall, ROC) are drawn here as SVG line charts.

Each view is one self-contained block (page): report.html's style scoped to the block, and its
small table script run on the block only, so blocks never restyle the notebook or each other.
"""

import math
import re
import uuid
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from blindspot.error_analysis.report import charts, html_page
from blindspot.error_analysis.report.compare import accuracy_metric
from blindspot.error_analysis.report.compare_html import render_comparison
from blindspot.error_analysis.report.markup import escape
from blindspot.error_analysis.search.binning import display_value
from blindspot.review.runs import error_text

# Metrics shown across runs when the evaluations have them (the accuracy metric first).
RUN_METRICS = ('auc', 'precision', 'recall')
_COLORS = ('#1f6fb4', '#d9534f', '#2a7a2a', '#8a5fb0', '#c8811a')


def _scoped_css(css: str, scope: str) -> str:
    """report.html's style sheet with every rule limited to the element `scope` (its `body`
    rule applies to the element itself)."""
    rules = []
    for selectors, body in re.findall(r'([^{}]+)\{([^{}]*)\}', css):
        scoped = [
            scope if s.strip() == 'body' else f'{scope} {s.strip()}'
            for s in selectors.split(',')
            if s.strip()
        ]
        rules.append(f'{",".join(scoped)}{{{body}}}')
    return ''.join(rules)


# Where a notebook's own style sheet disagrees with report.html's (JupyterLab right-aligns
# and wraps every cell of a fixed-layout table): the report's look, inside a view only.
_FRONT_END_CSS = """
body{margin:0;max-width:none}table{table-layout:auto;width:auto}
td,th{text-align:left;white-space:normal;vertical-align:top}td.n{text-align:right;white-space:nowrap}
"""


def page(body: str) -> str:
    """One view: `body` in a block with report.html's style and table script, both scoped to
    it (the script's `document` is the block: sorting and filtering reach its tables only;
    run once however often a front end renders the output)."""
    block = f'blindspot-view-{uuid.uuid4().hex[:12]}'
    script = (
        '(function () {'
        f"var root = document.getElementById('{block}');"
        "if (!root || root.dataset.ready) return; root.dataset.ready = '1';"
        f'(function (document) {{{html_page._SCRIPT}}})(root);'
        '})();'
    )
    return (
        f'<div id="{block}" class="blindspot-view"><style>'
        f'{_scoped_css(html_page._CSS + _FRONT_END_CSS, "#" + block)}</style>{body}'
        f'<script>{script}</script></div>'
    )


def table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[bool] = ()) -> str:
    """A sortable table (filterable when long) of plain values, as report.html draws one."""
    flags = list(numeric) + [False] * (len(headers) - len(numeric))
    return html_page._table(
        headers, [[html_page._td(v, n) for v, n in zip(row, flags)] for row in rows]
    )


def figure(title: str, svg: str) -> str:
    return (
        '<figure style="margin:8px 0 16px;text-align:left;display:inline-block;'
        f'vertical-align:top"><figcaption style="font-size:13px;font-weight:600">'
        f'{escape(title)}</figcaption>{svg}</figure>'
    )


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)


def line_chart(
    series: Sequence[Tuple[str, Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    x_range: Tuple[float, float] = (0.0, 1.0),
    y_range: Tuple[float, float] = (0.0, 1.0),
    diagonal: bool = False,
    x_ticks: Optional[Sequence[float]] = None,
) -> str:
    """Lines with points, one per (name, xs, ys) series, in report.html's chart style (SVG
    drawn directly, text as text); `diagonal`: the y = x reference (calibration, ROC)."""
    width, height, left, top, right, bottom = 470, 300, 52, 14, 130, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    (x0, x1), (y0, y1) = x_range, y_range
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    body = []
    for i in range(6):
        gy = y0 + (y1 - y0) * i / 5
        body.append(
            f'<line x1="{left}" y1="{py(gy):.1f}" x2="{left + plot_w}" y2="{py(gy):.1f}" '
            f'stroke="{charts._GRID}"/>'
        )
        body.append(charts._text(left - 6, py(gy) + 4, f'{gy:.2g}', 10, 'end'))
    for gx in x_ticks if x_ticks is not None else [x0 + (x1 - x0) * i / 5 for i in range(6)]:
        body.append(charts._text(px(gx), top + plot_h + 15, f'{gx:.3g}', 10, 'middle'))
    body.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="{charts._INK}"/>'
    )
    if diagonal:
        body.append(
            f'<line x1="{px(x0):.1f}" y1="{py(y0):.1f}" x2="{px(x1):.1f}" y2="{py(y1):.1f}" '
            f'stroke="{charts._NEUTRAL}" stroke-dasharray="5 3"/>'
        )
    for k, (name, xs, ys) in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        points = [(x, y) for x, y in zip(xs, ys) if _number(x) and _number(y)]
        path = ' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(points) <= 40:
            body += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                f'<title>{escape(name)}: ({x:.3g}, {y:.3g})</title></circle>'
                for x, y in points
            ]
        legend_y = top + 8 + 16 * k
        body.append(
            f'<line x1="{left + plot_w + 10}" y1="{legend_y}" x2="{left + plot_w + 28}" '
            f'y2="{legend_y}" stroke="{color}" stroke-width="2"/>'
        )
        body.append(charts._text(left + plot_w + 32, legend_y + 4, name, 10))
    body.append(charts._text(left + plot_w / 2, height - 6, xlabel, 11, 'middle'))
    middle = top + plot_h / 2
    body.append(
        charts._text(12, middle, ylabel, 11, 'middle', transform=f'rotate(-90 12 {middle})')
    )
    return charts._svg(width, height, body, title)


# Views of one report.


def insights(report: Dict) -> str:
    items = ''.join(f'<li>{escape(line)}</li>' for line in report.get('insights', []))
    return page(f'<ul class="insights">{items}</ul>' if items else '<p>No insights.</p>')


def tfma_sliced_metrics(rows: List[Dict]) -> str:
    """The Evaluator's metrics per declared slicing spec (tfma_metrics.sliced_metrics rows, as
    the report carries them): accuracy per slice with its 95% interval against overall, then
    every metric per slice in sortable tables."""
    report = {'tfma': rows}
    parts = [figure(title, svg) for title, svg in charts.tfma_slice_accuracy(report)]
    return page('<div>' + ''.join(parts) + '</div>' + html_page.tfma_section(report))


def findings(report: Dict) -> str:
    """The failing slices found automatically, what to do next for each, and each one's
    mistakes to read (report.html's sections)."""
    return page(
        html_page._slices(report)
        + html_page._next_steps(report)
        + html_page._finding_examples(report)
    )


def report_charts(report: Dict) -> str:
    """The confusion matrix as a heat map and the error rate by each finding's features."""
    parts = [figure('Confusion matrix', charts.confusion_heatmap(report))]
    parts += [figure(title, svg) for title, svg in charts.finding_feature_error_rates(report)]
    return page(''.join(parts))


def comparison(c: Dict, title: str) -> str:
    """A comparison (report.json's, or Review.compare's) as report.html shows it."""
    return page(render_comparison({'comparison': c}, title) or '<p>Nothing to compare.</p>')


# Views across runs (blindspot.review.Review).


def runs(review) -> str:
    """One row per run, as `history` prints it (no TFMA: accuracy from the reports)."""
    rows = review.history(read_evaluation=False)
    return page(
        table(
            ['#', 'time', 'run id', 'outcome', 'accuracy', 'error', 'failing', 'top slice'],
            [
                [
                    r['number'],
                    r['time'],
                    r['run_id'],
                    r['outcome'] if r['status'] == 'complete' else r['status'],
                    '' if r['accuracy'] is None else f'{r["accuracy"]:.3f}',
                    error_text(r),
                    '' if r['failing_slices'] is None else r['failing_slices'],
                    r['top_slice'] or '',
                ]
                for r in rows
            ],
            [True, False, False, False, True, True, True, False],
        )
    )


def metrics_across_runs(review) -> str:
    """The Evaluator's overall metrics of each evaluation (runs served from the cache share
    one), oldest first: a chart and a table, from the reports' copies (no TFMA)."""
    by_evaluation: Dict[int, List] = {}
    for run in review.runs():
        data = run.report_json() or {}
        overall = next((r for r in data.get('tfma') or [] if not r['features']), None)
        if run.evaluation is not None and overall is not None:
            by_evaluation.setdefault(run.evaluation.id, []).append((run, overall['metrics']))
    if not by_evaluation:
        return page("<p>No run has a report with the Evaluator's metrics.</p>")
    points = [(group[0][0], group) for group in by_evaluation.values()]
    metric = accuracy_metric([{'metrics': m} for _, group in points for _, m in group])
    names = [n for n in (metric, *RUN_METRICS) if n and any(n in g[0][1] for _, g in points)]
    numbers = [run.number for run, _ in points]
    series = [(n, numbers, [g[0][1].get(n, math.nan) for _, g in points]) for n in names]
    chart = line_chart(
        series,
        'overall metrics by run',
        'run # (first run with each evaluation)',
        'value',
        (min(numbers) - 0.5, max(numbers) + 0.5),
        (0.0, 1.0),
        x_ticks=numbers,
    )
    rows = [
        [
            ', '.join(f'#{r.number}' for r, _ in group),
            run.outcome,
            f'{int(group[0][1].get("example_count", 0)):,}',
        ]
        + [f'{group[0][1][n]:.4f}' if _number(group[0][1].get(n)) else '–' for n in names]
        for run, group in points
    ]
    return page(
        figure('Overall metrics by run', chart)
        + table(['runs', 'outcome', 'examples', *names], rows, [False, False, True] + [True] * 9)
    )


# TFMA's plots, read from an evaluation (imports TFMA).


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _value(field) -> float:
    return field.value if field.ByteSize() else 0.0


def read_plots(evaluation_uri: str, slices: Sequence[Tuple]) -> Dict[Tuple, Dict]:
    """The candidate model's calibration and threshold plots of the evaluation for each slice
    key (() = overall; else ((feature, value text),), the text as display_value writes it, as
    in the TFMA rows' slice names): {slice key: {'calibration':
    [(mean prediction, observed rate, examples)], 'thresholds': [(threshold, precision,
    recall, false positive rate)]}}. Only these slices' protos are decoded (converting every
    plot takes tens of seconds)."""
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    from blindspot.error_analysis.beam.tfma_metrics import _candidate_name

    candidate = _candidate_name(evaluation_uri) or ''
    found: Dict[Tuple, Dict] = {}
    for plots in writer.load_and_deserialize_plots(evaluation_uri):
        key = tuple(
            (k.column, display_value(_text(getattr(k, k.WhichOneof('kind')))))
            for k in plots.slice_key.single_slice_keys
        )
        if key not in slices:
            continue
        out = found.setdefault(key, {'calibration': [], 'thresholds': []})
        for entry in plots.plot_keys_and_values:
            if entry.key.model_name not in ('', candidate):
                continue
            for bucket in entry.value.calibration_histogram_buckets.buckets:
                n = _value(bucket.num_weighted_examples)
                if n > 0:
                    out['calibration'].append(
                        (
                            _value(bucket.total_weighted_refined_prediction) / n,
                            _value(bucket.total_weighted_label) / n,
                            n,
                        )
                    )
            for m in entry.value.confusion_matrix_at_thresholds.matrices:
                out['thresholds'].append(
                    (m.threshold, m.precision, m.recall, m.false_positive_rate)
                )
    return found


def _coarse(calibration: Sequence[Tuple[float, float, float]], bins: int = 10) -> List[Tuple]:
    """TFMA's calibration buckets (100 by default: a few examples each on an eval split, a
    saw-tooth) merged into `bins` equal ranges of the mean prediction, weighted by examples."""
    sums: Dict[int, List[float]] = {}
    for prediction, observed, n in calibration:
        total = sums.setdefault(min(int(prediction * bins), bins - 1), [0.0, 0.0, 0.0])
        total[0] += prediction * n
        total[1] += observed * n
        total[2] += n
    return [(p / n, o / n, n) for _, (p, o, n) in sorted(sums.items())]


def plots(found: Dict[Tuple, Dict], names: Dict[Tuple, str]) -> str:
    """TFMA's plots per slice (read_plots) as SVG: calibration (observed rate per predicted
    probability, in ten ranges), precision-recall and ROC curves over the thresholds."""
    blocks = []
    for key, data in found.items():
        name = names.get(key, 'Overall')
        calibration = _coarse(data['calibration'])
        thresholds = sorted(data['thresholds'])
        charts_here = []
        if calibration:
            xs, ys, _ = zip(*calibration)
            charts_here.append(
                figure(
                    f'calibration: {name}',
                    line_chart(
                        [('observed', xs, ys)],
                        f'calibration, {name}',
                        'mean predicted probability',
                        'observed positive rate',
                        diagonal=True,
                    ),
                )
            )
        if thresholds:
            by_recall = sorted((r, p) for _, p, r, _ in thresholds)
            roc = sorted((f, r) for _, _, r, f in thresholds)
            charts_here.append(
                figure(
                    f'precision-recall: {name}',
                    line_chart(
                        [('precision', [r for r, _ in by_recall], [p for _, p in by_recall])],
                        f'precision-recall, {name}',
                        'recall',
                        'precision',
                    ),
                )
            )
            charts_here.append(
                figure(
                    f'ROC: {name}',
                    line_chart(
                        [('true positive rate', [f for f, _ in roc], [r for _, r in roc])],
                        f'ROC, {name}',
                        'false positive rate',
                        'true positive rate',
                        diagonal=True,
                    ),
                )
            )
        if not charts_here:
            charts_here.append(
                f'<p class=muted>{escape(name)}: no calibration or threshold plots (a multi-'
                'class evaluation: see the confusion matrix).</p>'
            )
        blocks.append(f'<h3>{escape(name)}</h3><div>{"".join(charts_here)}</div>')
    return page(''.join(blocks) or '<p>No plots in this evaluation.</p>')
