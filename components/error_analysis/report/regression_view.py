"""The report of a regression model: overall numbers in the label's units, the residual view
and the plain sentences a person reads first (report/regression_html.py draws them)."""

from typing import Dict, List, Optional

from blindspot.error_analysis.report.compare import comparison_insights


def _pct(x: float) -> str:
    return f'{100 * x:.0f}%' if x >= 0.01 or x == 0 else f'{100 * x:.1f}%'


def number(x: Optional[float]) -> str:
    """A value in the label's units, 3 significant digits ('–' when undefined)."""
    return '–' if x is None else f'{x:.3g}'


def error_name(kind: str) -> str:
    """'MAE' or 'MSE': the mean of the error kind findings are measured in."""
    return 'MAE' if kind == 'absolute' else 'MSE'


def apply(report: Dict, numbers: Dict) -> None:
    """Fills a report built without confusion counts with a regression's numbers (the
    regression part): overall (examples, errors = rows above the median error, MAE, RMSE,
    mean residual, mean label and prediction), `regression` (error kind, median, residual
    view); the classification-only sections are empty."""
    rows = numbers['rows']
    report['overall'] = {
        'examples': rows,
        'errors': numbers['above_median'],
        'error_rate': numbers['above_median'] / rows if rows else None,
        'accuracy': None,
        'mean_loss': None,
        **{k: numbers[k] for k in numbers if k not in ('rows', 'above_median', 'residual_view')},
    }
    report['regression'] = {
        'error': numbers['error'],
        'median_error': numbers['median_error'],
        'residual_view': numbers['residual_view'],
    }
    report['confusion'] = None
    report['classes'] = []
    report['gallery'] = []


def _units(report: Dict) -> str:
    return f"in {report.get('label_name') or report['label_key']}'s units"


def tags_sentence(rows: List[Dict], name: str, units: str, top: int = 3) -> Optional[str]:
    """ "Of the tags, fixing 'night' could cut the overall MAE by at most 0.42 in y's units
    (MAE 3.1 vs 2 on the rest, 12% of examples; the model over-predicts there by 1.2);
    'weekend' 0.1." (the tags ranked by prioritize_regression); a line saying so when no
    tag gains anything."""
    if not rows:
        return None
    first, rest = rows[0], rows[1:top]
    if not first['potential_gain']:
        return (
            f'No tag has a larger {name} than the rest of the examples: nothing to gain by '
            'fixing one ('
            + '; '.join(
                f"'{r['tag']}' {number(r['mean_error'])} vs {number(r['rest_mean_error'])}"
                for r in rows[:top]
            )
            + ').'
        )
    how = (first.get('diagnosis') or {}).get('failure')
    bias = (
        f'; the model {how} there by {number(abs(first["mean_residual"]))}'
        if how in ('over-predicts', 'under-predicts')
        else ''
    )
    text = (
        f"Of the tags, fixing '{first['tag']}' could cut the overall {name} by at most "
        f'{number(first["potential_gain"])} {units} ({name} {number(first["mean_error"])} vs '
        f'{number(first["rest_mean_error"])} on the rest, {_pct(first["share"])} of examples'
        f'{bias})'
    )
    if rest:
        text += '; ' + '; '.join(f"'{r['tag']}' {number(r['potential_gain'])}" for r in rest)
    return text + '.'


def insights(report: Dict, max_slices: int = 3) -> List[str]:
    """Sentences: the worst finding first with its bias or spread, the overall errors, each
    finding's gain, the next steps, and what does not apply to a regression."""
    overall = report['overall']
    if not overall['examples']:
        return ['No examples were analysed.']
    kind = report['regression']['error']
    name = error_name(kind)
    low, high = overall['mean_error_ci']
    lines = [
        f'{name} {number(overall["mean_error"])} {_units(report)} (95% CI {number(low)} to '
        f'{number(high)}), RMSE {number(overall["rmse"])} over {overall["examples"]:,} '
        f'examples; mean prediction {number(overall["mean_prediction"])} vs mean label '
        f'{number(overall["mean_label"])}.'
    ]
    held = [s for s in report['slices']['slices'] if s['held']]
    findings = [s for s in held if not s.get('parent')]
    if findings:
        top = findings[0]
        numbers = top['regression']
        how = (top.get('diagnosis') or {}).get('failure')
        bias = (
            f'the model {how} by {number(abs(numbers["mean_residual"]))} on average '
            f'(mean residual {numbers["mean_residual"]:+.3g}); '
            if how in ('over-predicts', 'under-predicts')
            else 'errors large both ways; '
        )
        lines.insert(
            0,
            f'{top["slice"]}: {bias}{name} {number(numbers["mean_error"])} vs '
            f'{number(numbers["outside"]["mean_error"])} elsewhere, '
            f'{_pct(top["size"] / overall["examples"])} of examples.',
        )
    for position, s in enumerate(findings[:max_slices]):
        numbers = s['regression']
        beyond = ' beyond the findings above' if position else ''
        lines.append(
            f'Fixing {s["slice"]} could cut the overall {name} by up to '
            f'{number(s["added_potential_gain"])}{beyond} ({name} '
            f'{number(numbers["mean_error"])} vs {number(numbers["outside"]["mean_error"])} '
            f'elsewhere, {_pct(s["size"] / overall["examples"])} of examples; held on held-out '
            'data).'
        )
    tags = report.get('tags')
    if tags:
        sentence = tags_sentence(tags['prioritization'], name, _units(report))
        if sentence:
            lines.append(sentence)
    for s in findings[:max_slices]:
        if s.get('diagnosis'):
            lines.append(f'{s["slice"]}: {s["diagnosis"]["next_step"]}.')
    if tags:
        from blindspot.error_analysis.tags.prioritize import unmatched_sentence

        unmatched = unmatched_sentence(tags['manual'])
        if unmatched:
            lines.append(unmatched)
    if not overall['errors']:
        lines.append('Every error is at or below the median (e.g. all predictions exact).')
    elif not held:
        lines.append(
            "No slice's errors held up as larger than the rest's on held-out data: errors look "
            'spread out rather than concentrated in a slice.'
        )
    lines.append(
        'Label suspects (confident learning) need class probabilities: they do not apply to a '
        'regression model and are not computed.'
    )
    if report.get('comparison'):
        lines += comparison_insights(report['comparison'])
    return lines
