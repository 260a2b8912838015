"""Regression models: where a numeric prediction goes wrong (numpy only).

The slice search (lattice.py, ranges.py, selection.py) counts 0/1 "errors". For a regression
model a row's search flag is "its error is above the median error of the analysed rows"
(`above_median`, the median from a quantiles sketch over all rows). The search's exact
one-sided tests on that flag (Fisher on the hold-out half, the same family-wise bound) are
then Mood's median test: exact and robust to the skew of absolute errors, it asks whether a
slice's errors are stochastically larger than the rest's.

What a finding is worth is measured in the label's units: per membership pattern of the
candidates, one counting pass sums per-row values (COLUMNS: rows, absolute error, residual =
prediction - label, squared error, its square, the flag, training rows), so a finding's mean
absolute error (MAE) with a 95% interval, its mean residual and its potential gain are exact
sums over that table. Potential gain = (mean error inside - mean error outside) x share of
rows: how much the overall MAE would drop if the slice had the rest's MAE (the `squared`
error kind: MSE). Findings are listed by the gain each adds beyond those above it
(findings.added_gains, on these errors).

A finding's next step, by these rules, in order (named constants below):
1. Under-represented in training (diagnosis.under_represented, as for classes) -> collect
   more examples like these.
2. Bias: the mean residual's 95% interval excludes 0 and |mean residual| is at least
   BIAS_SHARE of the finding's MAE: the model systematically over-predicts (residual > 0) or
   under-predicts (< 0) there, by that amount -> give the model what tells these rows apart (a
   feature or an interaction), or check whether the label's meaning shifted for them; a
   per-segment correction is the stopgap.
3. Spread: otherwise the errors are large both ways (mean residual near 0 relative to the
   MAE) -> the target is noisier here, or depends on something the model does not see: try a
   feature that explains the variation, and check the labels' quality there.
"""

import math
from typing import Dict, List, Sequence

import numpy as np

from blindspot.error_analysis.search import binning, compact, diagnosis, ranges, selection
from blindspot.error_analysis.search.findings import added_gains

ERROR_KINDS = ('absolute', 'squared')
# Per-row values summed per membership pattern (and per feature value).
ROWS, ABSOLUTE, RESIDUAL, SQUARED, FOURTH, ABOVE, LABEL, TRAIN_ROWS = range(8)
COLUMNS = 8
# Bias: |mean residual| at least this share of the MAE, its interval excluding 0 (rule 2).
BIAS_SHARE = 0.5
Z_95 = 1.959963984540054
# Bins of the residual view: predicted vs actual (label deciles on both axes) and the residual
# by decile of the prediction.
VIEW_BINS = 10


def residuals(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """prediction - label: > 0 where the model over-predicts."""
    return np.asarray(predictions, np.float64) - np.asarray(labels, np.float64)


def row_errors(residual: np.ndarray, kind: str) -> np.ndarray:
    """Each row's error of the kind (ERROR_KINDS): |residual| or residual squared."""
    residual = np.asarray(residual, np.float64)
    return np.abs(residual) if kind == 'absolute' else residual * residual


def above_median(errors: np.ndarray, median: float) -> np.ndarray:
    """The search flag: error strictly above the analysed rows' median (ties at the median,
    e.g. many exact predictions, are not above it)."""
    return np.asarray(errors, np.float64) > median


def row_values(residual: np.ndarray, above: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(rows, COLUMNS) per-row values of analysed rows, to sum per pattern."""
    residual = np.asarray(residual, np.float64)
    squared = residual * residual
    values = np.zeros((len(residual), COLUMNS))
    values[:, ROWS] = 1.0
    values[:, ABSOLUTE] = np.abs(residual)
    values[:, RESIDUAL] = residual
    values[:, SQUARED] = squared
    values[:, FOURTH] = squared * squared
    values[:, ABOVE] = np.asarray(above, np.float64)
    values[:, LABEL] = np.asarray(labels, np.float64)
    return values


def train_row_values(num_rows: int) -> np.ndarray:
    """(rows, COLUMNS) values of training rows: they only count as TRAIN_ROWS."""
    values = np.zeros((num_rows, COLUMNS))
    values[:, TRAIN_ROWS] = 1.0
    return values


def _error_columns(kind: str) -> tuple:
    """(column of the error's sum, column of its square's sum)."""
    return (ABSOLUTE, SQUARED) if kind == 'absolute' else (SQUARED, FOURTH)


def row_severity(row: Dict) -> float:
    """How bad a listed mistake (a report row) is, to list the worst first: its confidence,
    or a regression's absolute error."""
    return row['abs_error'] if 'abs_error' in row else row['confidence']


def mean_interval(total: float, total_sq: float, n: float) -> tuple:
    """(mean, low, high): the mean of n values from their sum and sum of squares, with a 95%
    normal interval (None bounds under 2 rows)."""
    if n <= 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max(total_sq / n - mean * mean, 0.0) * n / (n - 1)
    half = Z_95 * math.sqrt(variance / n)
    return mean, mean - half, mean + half


def potential_gain(
    inside_sum: float, inside_rows: float, total_sum: float, total_rows: float
) -> float:
    """How much the overall mean error would drop if the slice had the rest's mean error:
    (mean inside - mean outside) x share of rows, in the error's units."""
    return float(selection.potential_gain(inside_rows, inside_sum, total_rows, total_sum))


def side(sums: np.ndarray, kind: str) -> Dict:
    """One group's numbers from its summed values."""
    n = float(sums[ROWS])
    error, error_sq = _error_columns(kind)
    mean_error, low, high = mean_interval(sums[error], sums[error_sq], n)
    mean_residual, r_low, r_high = mean_interval(sums[RESIDUAL], sums[SQUARED], n)
    return {
        'rows': int(n),
        'above_median': int(sums[ABOVE]),
        'mean_error': mean_error,
        'mean_error_ci': [low, high],
        'mae': sums[ABSOLUTE] / n if n else None,
        'rmse': math.sqrt(sums[SQUARED] / n) if n else None,
        'mean_residual': mean_residual,
        'mean_residual_ci': [r_low, r_high],
    }


def overall(total: np.ndarray, kind: str) -> Dict:
    """All analysed rows: side() plus the mean label and prediction."""
    numbers = side(total, kind)
    n = total[ROWS]
    numbers['mean_label'] = total[LABEL] / n if n else None
    numbers['mean_prediction'] = (total[LABEL] + total[RESIDUAL]) / n if n else None
    numbers['error'] = kind
    return numbers


def greater_mean_p_value(
    total_a: float, squares_a: float, n_a: float, total_b: float, squares_b: float, n_b: float
) -> float:
    """One-sided Welch test (normal tail) that group a's mean is larger than group b's, from
    each group's sum, sum of squares and size; 1.0 when undefined (a group under 2 rows)."""
    from scipy import stats

    if n_a < 2 or n_b < 2:
        return 1.0
    mean_a, mean_b = total_a / n_a, total_b / n_b
    var_a = max(squares_a / n_a - mean_a**2, 0.0) * n_a / (n_a - 1)
    var_b = max(squares_b / n_b - mean_b**2, 0.0) * n_b / (n_b - 1)
    scale = math.sqrt(var_a / n_a + var_b / n_b)
    if not scale:
        return 1.0 if mean_a <= mean_b else 0.0
    return float(stats.norm.sf((mean_a - mean_b) / scale))


def _pct(x: float) -> str:
    return f'{100 * x:.0f}%' if x >= 0.01 or x == 0 else f'{100 * x:.1f}%'


def _signed(x: float) -> str:
    return f'{x:+.3g}'


def diagnose(inside: np.ndarray, total: np.ndarray, kind: str) -> Dict:
    """A finding's evidence (inside vs outside), its kind of failure (bias or spread) and next
    step, from summed values (module docstring)."""
    outside = total - inside
    coverage = diagnosis.coverage_in_training(
        inside[TRAIN_ROWS], total[TRAIN_ROWS], inside[ROWS], total[ROWS]
    )
    evidence = {
        'task': 'regression',
        'coverage': coverage,
        'inside': side(inside, kind),
        'outside': side(outside, kind),
    }
    evidence['failure'] = failure_kind(evidence['inside'])
    rule, text = next_step(evidence)
    return {**evidence, 'rule': rule, 'next_step': text}


def failure_kind(inside: Dict) -> str:
    """'over-predicts' or 'under-predicts' (bias: rule 2), else 'spread' (rule 3)."""
    mean, (low, high) = inside['mean_residual'], inside['mean_residual_ci']
    mae = inside['mae'] or 0.0
    if mean is None or low is None or not mae:
        return 'spread'
    if (low > 0 or high < 0) and abs(mean) >= BIAS_SHARE * mae:
        return 'over-predicts' if mean > 0 else 'under-predicts'
    return 'spread'


def next_step(evidence: Dict) -> tuple:
    """(rule, one line) chosen by the rules in the module docstring."""
    coverage = evidence['coverage']
    inside = evidence['inside']
    if coverage is not None and diagnosis.under_represented(coverage):
        return (
            'under_represented',
            f'under-represented in training ({_pct(coverage["train_share"])} of train '
            f'rows, {coverage["train_rows"]:,}, vs {_pct(coverage["analysed_share"])} '
            'here): collect more examples like these',
        )
    covered = 'well covered in training' if coverage is not None else 'training coverage unknown'
    failure = evidence['failure']
    mae, mean = inside['mae'] or 0.0, inside['mean_residual'] or 0.0
    if failure != 'spread':
        low, high = inside['mean_residual_ci']
        return (
            'bias',
            f'{covered}; the model {failure} here by {abs(mean):.3g} on average (mean residual '
            f'{_signed(mean)}, 95% CI {_signed(low)} to {_signed(high)}; MAE {mae:.3g}): give '
            'it what tells these rows apart (a feature or an interaction), or check whether '
            "the label's meaning shifted for them",
        )
    return (
        'spread',
        f'{covered}; errors are large both ways (mean residual {_signed(mean)}, small beside '
        f'the MAE {mae:.3g}): the target is noisier here or depends on something the model '
        'does not see; try a feature that explains the variation, and check the labels here',
    )


def qualifier_violations(found: Dict) -> List[str]:
    """Words in a written regression diagnosis that its own numbers do not give."""
    text = found['next_step']
    said = next((w for w in ('over-predicts', 'under-predicts') if w in text), 'spread')
    actual = failure_kind(found['inside'])
    if found['rule'] == 'under_represented':
        return []
    if said != actual:
        return [f'says the model {said}; the numbers give {actual}']
    return []


def _listed(slices: List[Dict], order: Sequence[str]) -> List[Dict]:
    """Findings in `order` (texts), each followed by its refinements; the rest (unconfirmed
    candidates) after, in their order."""
    by_text = {s['slice']: s for s in slices if s['held'] and not s.get('parent')}
    listed = []
    for text in order:
        listed.append(by_text[text])
        listed += [s for s in slices if s['held'] and s.get('parent') == text]
    return listed + [s for s in slices if not s['held']]


def _candidates(
    patterns: np.ndarray,
    sums: np.ndarray,
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
) -> tuple:
    """(each candidate's text as the findings name it, the sums over all rows, (patterns,
    candidates) membership bits) of a pattern table."""
    count = min(len(conditions), selection.MAX_CANDIDATES)
    texts = [ranges.condition_text(conditions[i], encoders) for i in range(count)]
    total = sums.sum(axis=0) if len(sums) else np.zeros(COLUMNS)
    return texts, total, selection.pattern_bits(patterns, count)


def rank_slices(
    result: Dict,
    patterns: np.ndarray,
    sums: np.ndarray,
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    kind: str,
) -> Dict:
    """The search result (SliceSearchResult.to_dict()) with each slice's numbers in the
    label's units (`regression`), potential gains in those units and findings listed by the
    gain each adds beyond those above it: added_* on the errors (added_errors: rows above
    the median). `patterns`, `sums`: the pattern table of row_values over the candidates."""
    texts, total, bits = _candidates(patterns, sums, conditions, encoders)
    index = {text: i for i, text in reversed(list(enumerate(texts)))}
    error = _error_columns(kind)[0]
    rows = float(total[ROWS])
    slices = result['slices']
    for s in slices:
        inside = sums[bits[:, index[s['slice']]]].sum(axis=0)
        s['regression'] = {
            'error': kind,
            **side(inside, kind),
            'outside': side(total - inside, kind),
        }
        s['potential_gain'] = potential_gain(inside[error], inside[ROWS], total[error], rows)
        for key in ('added_size', 'added_errors', 'added_error_share', 'added_potential_gain'):
            s[key] = None
    findings = [index[s['slice']] for s in slices if s['held'] and not s.get('parent')]
    order = []
    if findings:
        above = float(total[ABOVE])
        for i, mask, gain in added_gains(bits, findings, sums[:, ROWS], sums[:, error], rows):
            s = next(s for s in slices if s['slice'] == texts[i] and not s.get('parent'))
            s['added_size'] = int(sums[mask, ROWS].sum())
            s['added_errors'] = int(sums[mask, ABOVE].sum())
            s['added_error_share'] = float(sums[mask, ABOVE].sum() / above) if above else 0.0
            s['added_potential_gain'] = gain
            order.append(texts[i])
    result['slices'] = _listed(slices, order)
    for rank, s in enumerate(result['slices'], 1):
        s['rank'] = rank
    union = np.any(bits[:, findings], axis=1) if findings else np.zeros(len(sums), bool)
    inside = sums[union].sum(axis=0) if union.any() else np.zeros(COLUMNS)
    result['regression'] = {
        'error': kind,
        'union_gain': potential_gain(inside[error], inside[ROWS], total[error], rows),
    }
    return result


def diagnose_slices(
    result: Dict,
    patterns: np.ndarray,
    sums: np.ndarray,
    conditions: np.ndarray,
    encoders: Sequence[binning.FeatureEncoder],
    kind: str,
) -> Dict:
    """{overall, thresholds: [], candidates: slice text -> diagnose(...)} for the listed
    slices, the shape of the classification diagnosis part."""
    texts, total, bits = _candidates(patterns, sums, conditions, encoders)
    listed = {s['slice'] for s in result['slices']}
    return {
        'overall': {**side(total, kind), 'train_rows': int(total[TRAIN_ROWS])},
        'thresholds': [],
        'candidates': {
            text: diagnose(sums[bits[:, i]].sum(axis=0), total, kind)
            for i, text in enumerate(texts)
            if text in listed
        },
    }


def value_errors(
    result: Dict, value_sums: Sequence[np.ndarray], encoders, kind: str, total: np.ndarray
) -> None:
    """Each per-value row of the result (feature_values) gets `regression`: its numbers (side)
    and lift (its mean error / the overall one), from per-fine-code sums (value_sums[j]: (fine
    codes, COLUMNS) of encoders[j]; `total`: the sums over all rows); in place."""
    coarse = []
    for encoder, per_fine in zip(encoders, value_sums):
        per_code = np.zeros((encoder.cardinality, COLUMNS))
        if encoder.cardinality:
            np.add.at(per_code, compact.coarse_of_fine(encoder), per_fine)
        coarse.append(per_code)
    error = _error_columns(kind)[0]
    overall = total[error] / total[ROWS] if total[ROWS] else 0.0
    codes = {
        (encoder.name, label): (j, code)
        for j, encoder in enumerate(encoders)
        for code, label in enumerate(encoder.labels)
    }
    for value in result['feature_values']:
        j, code = codes[(value['feature'], value['label'])]
        numbers = side(coarse[j][code], kind)
        numbers['lift'] = numbers['mean_error'] / overall if overall else None
        value['regression'] = numbers


def bin_codes(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value among VIEW_BINS-ish quantile bins (edges: the bins' inner cuts)."""
    return np.searchsorted(np.asarray(edges, np.float64), values, side='right')


def residual_view(heat: np.ndarray, deciles: np.ndarray, label_cuts, prediction_cuts) -> Dict:
    """The residual view: predicted vs actual counts over label bins on both axes
    (heat[actual bin, predicted bin]) and, per decile of the prediction, rows, mean residual
    and MAE (deciles[bin] = rows, residual sum, absolute error sum)."""
    rows = deciles[:, 0]
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_residual = np.where(rows > 0, deciles[:, 1] / np.maximum(rows, 1), np.nan)
        mae = np.where(rows > 0, deciles[:, 2] / np.maximum(rows, 1), np.nan)
    return {
        'label_cuts': [float(c) for c in label_cuts],
        'prediction_cuts': [float(c) for c in prediction_cuts],
        'heat': heat.astype(int).tolist(),
        'by_prediction': [
            {
                'rows': int(rows[b]),
                'mean_residual': None if np.isnan(mean_residual[b]) else float(mean_residual[b]),
                'mae': None if np.isnan(mae[b]) else float(mae[b]),
            }
            for b in range(len(rows))
        ],
    }
