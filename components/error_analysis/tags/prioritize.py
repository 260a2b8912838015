"""Which tagged category to work on first (Andrew Ng's error-analysis prioritisation).

For each tag: share of the data with the tag, accuracy on it, a reference level (human-level or
target accuracy; the model's overall accuracy when none is given), the gap, and the potential
gain = gap × share: how much overall accuracy could rise if that category reached its
reference. Counts may be weighted (a reviewed sample stands for its stratum).
"""

from typing import Dict, List, Mapping, Optional


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
