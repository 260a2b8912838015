"""Which tagged category to work on first (Andrew Ng's error-analysis prioritisation).

For each tag: share of the data with the tag, accuracy on it, a reference level (human-level or
target accuracy; the model's overall accuracy when none is given), the gap, and the potential
gain = gap × share: how much overall accuracy could rise if that category reached its
reference. Counts may be weighted (a reviewed sample stands for its stratum).

A regression model's tags (prioritize_regression) are measured in the label's units, like its
findings (search/regression.py): the tag's mean error (MAE, or MSE for the squared error kind)
with a 95% interval and its mean residual, against the rest's mean error; potential gain =
share × max(0, mean error on the tag − the rest's): how much the overall mean error would drop
if the tag's rows erred like the rest.
"""

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from blindspot.error_analysis.search import regression


def prioritize(
    tag_counts: Mapping[str, Mapping[str, float]],
    total_examples: int,
    overall_accuracy: float,
    references: Optional[Mapping[str, float]] = None,
) -> List[Dict]:
    """tag_counts: tag -> {'source', 'weight' (examples with the tag, weighted),
    'correct' (weighted correct ones), 'rows' (examples seen)}. Ranked by potential gain."""
    references = references or {}
    rows = []
    for tag, counts in tag_counts.items():
        weight = float(counts['weight'])
        if weight <= 0 or total_examples <= 0:
            continue
        accuracy = float(counts['correct']) / weight
        reference = float(references.get(tag, overall_accuracy))
        share = min(weight / total_examples, 1.0)
        gap = max(reference - accuracy, 0.0)
        rows.append(
            {
                'tag': tag,
                'source': counts['source'],
                'rows': int(counts['rows']),
                'examples': weight,
                'share': share,
                'accuracy': accuracy,
                'reference': reference,
                'reference_given': tag in references,
                'gap': gap,
                'potential_gain': gap * share,
            }
        )
    rows.sort(key=lambda r: (-r['potential_gain'], r['tag']))
    return rows


def gain_sentence(rows: List[Dict], top: int = 3) -> Optional[str]:
    """'Fixing 'car noise' could gain at most 0.16 points of accuracy; 'people noise' 0.6.'"""
    if not rows:
        return None
    first, rest = rows[0], rows[1:top]
    text = (
        f"Fixing '{first['tag']}' could gain at most "
        f'{100 * first["potential_gain"]:.2g} points of accuracy'
    )
    if rest:
        text += '; ' + '; '.join(f"'{r['tag']}' {100 * r['potential_gain']:.2g}" for r in rest)
    return text + '.'


def prioritize_regression(
    tag_sums: Mapping[str, Mapping], total: Sequence[float], kind: str
) -> List[Dict]:
    """tag_sums: tag -> {'source', 'rows' (examples seen), 'sums' (regression.row_values
    summed over its rows, each times its weight: a manual tag's reviewed row stands for
    `weight` examples)}; total: those values summed over all analysed rows. Per tag its
    weighted mean error and mean residual, with 95% intervals as wide as the rows seen allow,
    the rest's mean error (all rows minus the tag's weighted sums), and the potential gain;
    ranked by potential gain."""
    total = np.asarray(total, np.float64)
    all_rows = float(total[regression.ROWS])
    rows = []
    for tag, counts in tag_sums.items():
        weighted = np.asarray(counts['sums'], np.float64)
        weight, seen = float(weighted[regression.ROWS]), int(counts['rows'])
        if weight <= 0 or all_rows <= 0:
            continue
        # Weighted means; their intervals from the rows seen, not the rows they stand for.
        inside = regression.side(weighted * (seen / weight), kind)
        rest_sums = total - weighted
        rest = regression.side(rest_sums, kind) if rest_sums[regression.ROWS] > 0 else None
        rest_error = rest['mean_error'] if rest else None
        share = min(weight / all_rows, 1.0)
        excess = max(inside['mean_error'] - rest_error, 0.0) if rest else 0.0
        rows.append(
            {
                'tag': tag,
                'source': counts['source'],
                'rows': seen,
                'examples': weight,
                'share': share,
                'error': kind,
                'mean_error': inside['mean_error'],
                'mean_error_ci': inside['mean_error_ci'],
                'mae': inside['mae'],
                'mean_residual': inside['mean_residual'],
                'mean_residual_ci': inside['mean_residual_ci'],
                'rest_rows': float(rest_sums[regression.ROWS]) if rest else 0.0,
                'rest_mean_error': rest_error,
                'excess': excess,
                'potential_gain': share * excess,
            }
        )
    rows.sort(key=lambda r: (-r['potential_gain'], r['tag']))
    return rows


def unmatched_sentence(manual: Mapping) -> Optional[str]:
    """A line when none of a tags file's example ids is among the analysed examples."""
    if manual['ids'] and not manual['matched']:
        return (
            f'None of the {manual["ids"]:,} example ids in {manual["file"]} is in '
            'the analysed split: were the tags made on another data set?'
        )
    return None
