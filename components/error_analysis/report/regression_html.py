"""report.html's sections for a regression model (html_page.render uses them in place of the
classification ones): findings in the label's units, the next step per finding, tags ranked
by potential gain, the residual view, mean error per feature value, TFMA's regression
metrics and the worst examples."""

from typing import Dict, List

from blindspot.error_analysis.report.html_page import (
    _pct,
    _table,
    _td,
    diagnosed_findings,
    manual_note,
    tfma_section,
)
from blindspot.error_analysis.report.markup import escape
from blindspot.error_analysis.report.regression_view import error_name, number
from blindspot.error_analysis.search.binning import display_value

TFMA_METRICS = (
    'example_count',
    'mean_absolute_error',
    'root_mean_squared_error',
    'mean_squared_error',
    'mean_prediction',
    'mean_label',
)


def _interval(pair) -> str:
    return f'{number(pair[0])} – {number(pair[1])}'


def _slices(report: Dict) -> str:
    found = report['slices']
    if not found['slices']:
        return "<p>No slice's errors scored above the rest.</p>"
    name = error_name(report['regression']['error'])
    rows = []
    for s in found['slices']:
        numbers = s['regression']
        held = (
            '<span class="ok">held</span>' if s['held'] else '<span class="no">not confirmed</span>'
        )
        text = (
            f'<span class="muted">↳ within {escape(s["parent"])}:</span><br>{escape(s["slice"])}'
            if s.get('parent')
            else escape(s['slice'])
        )
        rows.append(
            [
                _td(s['rank'], True),
                f'<td>{text}</td>',
                _td(number(s.get('added_potential_gain')), True),
                _td(number(s['potential_gain']), True),
                _td(f'{s["size"]:,}', True),
                _td(number(numbers['mean_error']), True),
                _td(_interval(numbers['mean_error_ci']), True),
                _td(number(numbers['outside']['mean_error']), True),
                _td(f'{numbers["mean_residual"]:+.3g}', True),
                _td(_pct(s['error_rate']), True),
                _td(f'{s["q_value"]:.3g}' if s['q_value'] is not None else '', True),
                f'<td>{held}</td>',
            ]
        )
    note = (
        f"<p class=muted>Findings in the label's units, the one that adds the most gain first. "
        f'Gain: how much the overall {name} would drop if the slice had the {name} of the rest '
        f'(share of rows × excess {name}); "adds" counts a finding only on its rows outside the '
        f'findings above it, against the {name} outside every finding, so the added gains sum '
        f"to all findings' together. Found by the SliceLine lattice search on the flag "
        f'"error above the median ({number(report["regression"]["median_error"])})" on one '
        f"half of the examples, each kept only if its rows' errors are still larger than the "
        f"rest's on the other half (Mood's median test: one-sided exact test on that flag, "
        f'Bonferroni-adjusted p). Mean residual = prediction − label: &gt; 0 over-predicts.</p>'
    )
    return note + _table(
        [
            '#',
            'slice',
            f'adds: {name} gain',
            f'own {name} gain',
            'rows',
            name,
            '95% CI',
            f'{name} elsewhere',
            'mean residual',
            'above median',
            'adjusted p',
            'hold-out',
        ],
        rows,
    )


def _next_steps(report: Dict) -> str:
    findings = diagnosed_findings(report)
    if not findings:
        return ''
    rows = []
    for s in findings:
        d = s['diagnosis']
        coverage, inside, outside = d['coverage'], d['inside'], d['outside']
        rows.append(
            [
                _td(s['slice']),
                _td(
                    f'{_pct(coverage["train_share"])} ({coverage["train_rows"]:,} rows) vs '
                    f'{_pct(coverage["analysed_share"])}'
                    if coverage
                    else 'unknown',
                    True,
                ),
                _td(
                    f'{number(inside["mean_residual"])} '
                    f'({_interval(inside["mean_residual_ci"])}) vs '
                    f'{number(outside["mean_residual"])}',
                    True,
                ),
                _td(f'{number(inside["rmse"])} vs {number(outside["rmse"])}', True),
                _td(d['failure']),
                _td(d['next_step']),
            ]
        )
    return (
        '<h2>What to do next, per finding</h2><p class=muted>Inside the finding vs outside it. '
        "Bias: the mean residual's 95% interval excludes 0 and it is at least half the MAE "
        '(the model over- or under-predicts there); spread: errors large both ways.</p>'
        + _table(
            [
                'finding',
                'train share vs here',
                'mean residual (95% CI)',
                'RMSE',
                'failure',
                'next step',
            ],
            rows,
        )
    )


def _tags(report: Dict) -> str:
    tags = report.get('tags')
    if not tags:
        return ''
    name = error_name(tags['error'])
    rows = [
        [
            _td(r['tag']),
            _td(r['source']),
            _td(number(r['potential_gain']), True),
            _td(number(r['mean_error']), True),
            _td(_interval(r['mean_error_ci']), True),
            _td(number(r['rest_mean_error']), True),
            _td(f'{r["mean_residual"]:+.3g}', True),
            _td(f'{r["rows"]:,}', True),
            _td(_pct(r['share']), True),
            _td((r.get('diagnosis') or {}).get('failure', '')),
            _td((r.get('diagnosis') or {}).get('next_step', '')),
        ]
        for r in tags['prioritization']
    ]
    note = (
        f"<p class=muted>Gain: how much the overall {name} would drop if the tag's rows had the "
        f"{name} of the rest (share of examples × excess {name}, in the label's units). Manual "
        "tags are weighted by the tags file's weight column (their 95% intervals from "
        'the rows reviewed). Failure and next step: by the rules of the findings above, over '
        "the tag's rows (unweighted); a manual tag's training coverage is unknown (it marks "
        'analysed examples).' + manual_note(tags['manual']) + '</p>'
    )
    return (
        '<h2>What to work on: tags ranked by potential gain</h2>'
        + note
        + _table(
            [
                'tag',
                'from',
                f'{name} gain',
                name,
                '95% CI',
                f'{name} on the rest',
                'mean residual',
                'rows',
                'share',
                'failure',
                'next step',
            ],
            rows,
        )
    )


def _residual_view(report: Dict) -> str:
    view = report['regression']['residual_view']
    if not view:
        return ''
    cuts = view['label_cuts']
    names = _bin_names(cuts)
    heat = view['heat']
    most = max((max(row) for row in heat), default=0) or 1
    rows = []
    for i, name in enumerate(names):
        cells = [f'<th>actual {escape(name)}</th>']
        for j in range(len(names)):
            color = (
                f'rgba(42,122,42,{0.15 + 0.6 * heat[i][j] / most:.2f})'
                if i == j
                else f'rgba(217,83,79,{min(1.0, 1.5 * heat[i][j] / most):.2f})'
            )
            cells.append(f'<td style="background:{color}">{heat[i][j]:,}</td>')
        rows.append(cells)
    scatter = _table([''] + [f'pred {n}' for n in names], rows, 'cm')
    deciles = _table(
        ['prediction', 'rows', 'mean residual', 'MAE'],
        (
            [
                _td(name),
                _td(f'{b["rows"]:,}', True),
                _td('–' if b['mean_residual'] is None else f'{b["mean_residual"]:+.3g}', True),
                _td(number(b['mae']), True),
            ]
            for name, b in zip(_bin_names(view['prediction_cuts']), view['by_prediction'])
        ),
        '',
    )
    return (
        '<h2>Residuals: predicted vs actual</h2><p class=muted>Examples by bin of the actual '
        'value (rows) and of the prediction (columns), the same bins (deciles of the label) on '
        'both axes: the diagonal is right to within a bin. Below, the residual by decile of the '
        'prediction: a mean residual far from 0 in some deciles is a bias there (e.g. '
        'regression to the mean: high predictions too low).</p>'
        + scatter
        + '<h3>Residual by decile of the prediction</h3>'
        + deciles
    )


def _bin_names(cuts: List[float]) -> List[str]:
    if not cuts:
        return ['all']
    edges = [f'{c:.3g}' for c in cuts]
    return [f'< {edges[0]}'] + [f'{a} – {b}' for a, b in zip(edges, edges[1:])] + [f'≥ {edges[-1]}']


def _feature_values(report: Dict) -> str:
    name = error_name(report['regression']['error'])
    by_feature: Dict[str, List[Dict]] = {}
    for value in report['slices']['feature_values']:
        by_feature.setdefault(value['feature'], []).append(value)
    blocks = []
    for feature, values in by_feature.items():
        values.sort(key=lambda v: -(v['regression']['mean_error'] or 0))
        rows = [
            [
                _td(v['label']),
                _td(f'{v["size"]:,}', True),
                _td(number(v['regression']['mean_error']), True),
                _td(_interval(v['regression']['mean_error_ci']), True),
                _td(f'{v["regression"]["mean_residual"]:+.3g}', True),
                _td(
                    '' if v['regression']['lift'] is None else f'{v["regression"]["lift"]:.2f}x',
                    True,
                ),
                _td(_pct(v['error_rate']), True),
                _td(f'{v["q_value"]:.3g}' if v['q_value'] is not None else '', True),
            ]
            for v in values
        ]
        blocks.append(
            f'<details><summary><b>{escape(feature)}</b> — {len(values)} values</summary>'
            + _table(
                [
                    'value',
                    'size',
                    name,
                    '95% CI',
                    'mean residual',
                    'lift',
                    'above median',
                    'q (median test)',
                ],
                rows,
            )
            + '</details>'
        )
    return ''.join(blocks)


def _worst(report: Dict) -> str:
    rows = report['hardest_examples']
    if not rows:
        return '<p>No errors above the median.</p>'
    features = list(rows[0]['features'])
    body = [
        [
            _td(r['example_id']),
            _td(number(r['label']), True),
            _td(number(r['predicted']), True),
            _td(f'{r["residual"]:+.3g}', True),
        ]
        + [_td(display_value(r['features'].get(f))) for f in features]
        for r in rows
    ]
    return _table(['example id', 'actual', 'predicted', 'residual'] + features, body)


def _finding_errors(report: Dict) -> str:
    """Under each held finding, its largest errors (the rows above the median error)."""
    findings = [s for s in report['slices']['slices'] if s['held'] and s.get('examples')]
    blocks = []
    for s in findings:
        rows = s['examples']['rows']
        own = list(dict.fromkeys(p['feature'] for p in s['predicates']))
        rest = [f for f in dict.fromkeys(f for r in rows for f in r['features']) if f not in own]
        body = [
            [_td(r['example_id'])]
            + [_td(display_value(r['features'].get(f))) for f in own]
            + [
                _td(number(r['label']), True),
                _td(number(r['predicted']), True),
                _td(f'{r["residual"]:+.3g}', True),
            ]
            + [_td(display_value(r['features'].get(f))) for f in rest]
            for r in rows
        ]
        parent = (
            f'<span class=muted>↳ within {escape(s["parent"])}:</span> ' if s.get('parent') else ''
        )
        blocks.append(
            f'<details><summary>{parent}<b>{escape(s["slice"])}</b> — the {len(rows):,} '
            f'largest of its {s["examples"]["mistakes"]:,} errors above the median</summary>'
            + _table(['example id', *own, 'actual', 'predicted', 'residual', *rest], body)
            + '</details>'
        )
    if not blocks:
        return ''
    return '<h2>Largest errors per finding</h2>' + ''.join(blocks)


def sections(report: Dict, insights: str, violations: str, comparison: str) -> str:
    """The page's sections for a regression report."""
    return f"""{violations}<h2>Insights</h2><ul class="insights">{insights}</ul>
<h2>Failing slices found automatically</h2>{_slices(report)}
{_next_steps(report)}
{_finding_errors(report)}
{_tags(report)}
{comparison}
{_residual_view(report)}
<h2>Mean error by feature value</h2>{_feature_values(report)}
<h2>TFMA sliced metrics (Evaluator)</h2>{tfma_section(report, TFMA_METRICS)}
<h2>Largest errors</h2>{_worst(report)}
<p class=muted>Label suspects (confident learning) need class probabilities: they do not apply
to a regression model.</p>"""
