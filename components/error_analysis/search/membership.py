"""Which rows fall in a slice, from the slice's predicates as report.json states them (feature,
label, is_range, low, high) and the rows' raw values: so a slice one report found can be
counted on any rows, e.g. both models' predictions of the same examples (beam/comparison.py).

A range predicate is read by its numeric bounds on the raw column (low inclusive, high
exclusive, None open; a missing value is in no range), so ranges found in another run, with
other bin edges, are counted exactly. Any other predicate (a category, a value of a numeric
feature with few values, a date part, "missing") is matched by its label: a row is in it when
the run's FeatureEncoder of that feature gives the row the code with that label. A label the
encoder does not have (a category another run kept and this one folded into "(other)", or
never saw) cannot be evaluated, and slice_problem says why rather than counting no rows.
"(other)" means whatever the evaluating run's encoder leaves out of its vocabulary.

Pure numpy (no TFX, no Beam).
"""

import dataclasses
from typing import Collection, Dict, List, Mapping, Optional, Sequence

import numpy as np

from blindspot.error_analysis.search.binning import FeatureEncoder


def slice_problem(
    predicates: Sequence[Dict], encoders: Mapping[str, FeatureEncoder], columns: Collection[str]
) -> Optional[str]:
    """Why the slice cannot be evaluated on rows with these raw `columns` under these
    encoders (feature name -> encoder), or None when it can."""
    for predicate in predicates:
        feature = predicate['feature']
        if predicate.get('is_range'):
            if feature not in columns:
                return f"no column '{feature}' to read the range {predicate['label']!r} from"
            continue
        encoder = encoders.get(feature)
        if encoder is None:
            return f"'{feature}' is not sliced in the run that measures it"
        if predicate['label'] not in encoder.labels:
            return f"{predicate['label']!r} is not a value '{feature}' is sliced by there"
        if encoder.source_column not in columns:
            return f"no column '{encoder.source_column}' to read {predicate['label']!r} from"
    return None


def slice_mask(
    predicates: Sequence[Dict],
    columns: Mapping[str, np.ndarray],
    encoders: Mapping[str, FeatureEncoder],
) -> np.ndarray:
    """(rows,) bool: rows in every predicate. The slice must be evaluable (slice_problem)."""
    rows = len(next(iter(columns.values()))) if columns else 0
    inside = np.ones(rows, dtype=bool)
    for predicate in predicates:
        if predicate.get('is_range'):
            values = np.asarray(columns[predicate['feature']], dtype=np.float64)
            if predicate.get('low') is not None:
                inside &= values >= predicate['low']
            if predicate.get('high') is not None:
                inside &= values < predicate['high']
            inside &= ~np.isnan(values)
        else:
            encoder = encoders[predicate['feature']]
            codes = encoder.encode(columns[encoder.source_column], strict=False)
            inside &= codes == encoder.labels.index(predicate['label'])
    return inside


def memberships(
    slices: Sequence[Sequence[Dict]],
    columns: Mapping[str, np.ndarray],
    encoders: Mapping[str, FeatureEncoder],
) -> np.ndarray:
    """(rows, len(slices)) bool: row i is in slice j (each slice a predicate list); a slice
    that cannot be evaluated on these columns (slice_problem) holds no row."""
    rows = len(next(iter(columns.values()))) if columns else 0
    result = np.zeros((rows, len(slices)), dtype=bool)
    for j, predicates in enumerate(slices):
        if slice_problem(predicates, encoders, columns) is None:
            result[:, j] = slice_mask(predicates, columns, encoders)
    return result


def by_name(encoders: Sequence[FeatureEncoder]) -> Dict[str, FeatureEncoder]:
    """Feature name (as predicates name it) -> encoder."""
    return {encoder.name: encoder for encoder in encoders}


def encoders_to_json(encoders: Sequence[FeatureEncoder]) -> List[Dict]:
    """The encoders as JSON values, saved beside a report so another process (`compare` of any
    two runs) can evaluate the report's slices on rows."""
    return [dataclasses.asdict(encoder) for encoder in encoders]


def encoders_from_json(values: Sequence[Dict]) -> List[FeatureEncoder]:
    """encoders_to_json's inverse (fields this version does not know are left out)."""
    known = {field.name for field in dataclasses.fields(FeatureEncoder)}
    return [FeatureEncoder(**{k: v for k, v in value.items() if k in known}) for value in values]
