"""A finding's identity across runs, so any two reports' findings can be matched.

The id comes from the canonical predicates, order-free: a category predicate by its text, a
numeric range by its feature only. Two findings are the same slice when their ids are equal and
each numeric range overlaps the other's (`0.6 <= z < 0.7` and `0.58 <= z < 0.7` are one slice:
fine bins move a little from run to run). Predicates are report.json dicts: feature, label,
and for ranges is_range with low/high (None: open end).
"""

import hashlib
import math
from typing import Dict, Iterable, Optional, Sequence


def _canonical(predicate: Dict) -> str:
    if predicate.get('is_range'):
        return f'{predicate["feature"]} in range'
    return f'{predicate["feature"]}: {predicate["label"]}'


def slice_id(predicates: Iterable[Dict]) -> str:
    """Stable short id: the same for the same features and categories in any order."""
    text = '\n'.join(sorted(_canonical(p) for p in predicates))
    return hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]


def _bound(value: Optional[float], open_end: float) -> float:
    return open_end if value is None else float(value)


def ranges_overlap(a: Dict, b: Dict) -> bool:
    low = max(_bound(a.get('low'), -math.inf), _bound(b.get('low'), -math.inf))
    high = min(_bound(a.get('high'), math.inf), _bound(b.get('high'), math.inf))
    return low < high


def same_slice(a: Sequence[Dict], b: Sequence[Dict]) -> bool:
    """Whether two findings (their predicate lists) are one slice."""
    if slice_id(a) != slice_id(b):
        return False
    ranges_a = {p['feature']: p for p in a if p.get('is_range')}
    ranges_b = {p['feature']: p for p in b if p.get('is_range')}
    return all(ranges_overlap(p, ranges_b[feature]) for feature, p in ranges_a.items())
