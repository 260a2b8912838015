"""Why a finding fails and what to try next, from evidence counted over examples (numpy only).

Label-noise suspects follow confident learning (Northcutt, Jiang, Chuang, JAIR 2021): the
threshold of class j is the mean probability the model gives j over the examples labelled j;
an example is a suspect when the class k the model predicts is another than its label, k
reaches its own threshold (p_k >= t_k) and the given label does not (p_label < t_label). The
analysed split's probabilities are out-of-sample, which the method needs. Requiring k to be
the predicted class (the paper takes any class above its threshold) keeps a class with a
handful of examples, whose threshold can be near 0, from flagging correct predictions.

In a binary task the predicted class always has p > 0.5, above the threshold of a minority
class whose mean probability is below 0.5, so the plain rule would flag every false positive
of that class wherever its rate is near one half (rows whose outcome is a toss-up, not
mislabelled). There the predicted class must also reach BINARY_SUSPECT_CONFIDENCE: a
toss-up is no evidence against the given label.

Per finding, one counting pass sums per-row values (DIAGNOSTIC_COLUMNS) per pattern of
membership in the candidates, as selection.PatternTable counts errors; the training split's
rows add to the same table: every one in TRAIN_ROWS, and those the model was run on (all, or
a uniform sample by example id) in TRAIN_PREDICTED and their mistakes in TRAIN_ERRORS. Inside
and outside a finding are then exact sums over that table.

Fit: the finding's excess error in training, (train error inside - outside), over its excess
here, (error inside - outside). At least FIT_SHARE of it, with the train error inside
significantly above the train error outside (95% Wilson bounds apart): the model "cannot fit"
these rows even where it trained on them. Below FIT_SHARE with the train error's upper bound
below the error's lower bound here: it "fits" its training rows but not these. Otherwise (or
fewer than MIN_FIT_ROWS training rows with predictions): "unknown".

The next step is chosen by these rules, first match wins (README, "What to do next"):
1. Under-represented in training: its share of train rows is below UNDER_REPRESENTED x its
   share of the analysed rows, or it has fewer than MIN_TRAIN_ROWS train rows and a smaller
   share of them than of the analysed rows (a small slice sampled as often in training as
   here is not under-represented) -> collect more examples like these.
2. Not separable: the model cannot fit these rows and its mistakes are unsure (mean
   confidence below OVERCONFIDENT) -> the features do not separate them: if a person can
   tell them apart, add the signal they use, else their labels are noise here (review a
   sample). The part of the finding's gain below its train error looks irreducible.
3. Shortcut: the model fits its training rows, and its mistakes here are confident -> it
   learned a pattern that holds on its training rows only: find what these rows share in
   training, add counter-examples or drop the feature that leaks.
4. Variance: the model fits its training rows, its mistakes here are unsure -> more examples
   like these, regularisation, or a simpler model for them.
5. Label noise: its rows are label suspects at least SUSPECT_CONCENTRATION times as often as
   the rows outside it (in a binary task nearly every confident mistake is a suspect, so the
   share of errors alone says little), and either at least LABEL_NOISE of its errors are
   suspects, or at least FEW_SUSPECTS are while the concentration reaches STRONG_CONCENTRATION
   -> review these labels.
6. Otherwise (fit unknown, or confident mistakes on rows it cannot fit), mistakes made with
   mean confidence of at least OVERCONFIDENT: the model lacks a signal there or follows a
   shortcut -> try a feature or a higher-capacity model.
7. Otherwise (unsure mistakes): the examples are ambiguous to the model, or their labels are
   noisy in a way it has learned to hedge on (confident learning cannot flag those) -> review
   a sample of their labels, then try a feature that separates them.

With a reference accuracy (a tag's, or human_level for findings), Ng's split: avoidable bias
= train error - (1 - reference), variance = error here - train error (reference_split).

Every word a sentence uses about the evidence ("few", "some" or "many" label suspects,
"confident" or "unsure" mistakes, "cannot fit" or "fits") comes from suspect_word,
confidence_word and fit_word, and qualifier_violations checks a written diagnosis against its
own numbers.
"""

import dataclasses
from typing import Callable, Collection, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from blindspot.error_analysis.search import binning, ranges, selection, stats

UNDER_REPRESENTED = 0.5
MIN_TRAIN_ROWS = 20
LABEL_NOISE = 0.5
SUSPECT_CONCENTRATION = 2.0
STRONG_CONCENTRATION = 5.0
FEW_SUSPECTS = 0.2
OVERCONFIDENT = 0.8
FIT_SHARE = 0.5
MIN_FIT_ROWS = 20
BINARY_SUSPECT_CONFIDENCE = 0.75
CALIBRATION_BINS = 10

# Per-row values summed per membership pattern.
(
    ROWS,
    ERRORS,
    SUSPECTS,
    SUSPECT_ERRORS,
    MISTAKE_CONFIDENCE,
    TRAIN_ROWS,
    TRAIN_PREDICTED,
    TRAIN_ERRORS,
) = range(8)
_BINS = 8  # then per calibration bin: rows, summed confidence, correct predictions
DIAGNOSTIC_COLUMNS = _BINS + 3 * CALIBRATION_BINS


def class_probability_sums(
    probabilities: np.ndarray, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """(2, classes): summed probability of class j over rows labelled j, and those rows."""
    labels = np.asarray(labels, np.int64)
    given = probabilities[np.arange(len(labels)), labels]
    return np.stack(
        [
            np.bincount(labels, weights=given, minlength=num_classes),
            np.bincount(labels, minlength=num_classes).astype(np.float64),
        ]
    )


def class_thresholds(sums: np.ndarray) -> np.ndarray:
    """t_j = mean probability of class j over rows labelled j; NaN for a class with none."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(sums[1] > 0, sums[0] / np.maximum(sums[1], 1), np.nan)


def label_suspects(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """(rows,) bool: the predicted class is another than the label and reaches its threshold,
    while the given label does not. A class without a threshold (no labelled rows) never makes
    a suspect."""
    labels = np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    predicted = probabilities.argmax(axis=1)
    reach = np.asarray(thresholds, np.float64)[predicted]
    if probabilities.shape[1] == 2:  # not a toss-up (module docstring)
        reach = np.maximum(reach, BINARY_SUSPECT_CONFIDENCE)  # NaN stays NaN
    with np.errstate(invalid='ignore'):
        confident = probabilities[rows, predicted] >= reach  # NaN -> False
    given_below = probabilities[rows, labels] < np.nan_to_num(thresholds[labels], nan=-1.0)
    return (predicted != labels) & confident & given_below


def row_values(errors: np.ndarray, suspects: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(rows, DIAGNOSTIC_COLUMNS) per-row values of analysed examples, to sum per pattern."""
    errors = np.asarray(errors, np.float64)
    suspects = np.asarray(suspects, np.float64)
    confidence = np.asarray(confidence, np.float64)
    values = np.zeros((len(errors), DIAGNOSTIC_COLUMNS))
    values[:, ROWS] = 1.0
    values[:, ERRORS] = errors
    values[:, SUSPECTS] = suspects
    values[:, SUSPECT_ERRORS] = suspects * errors
    values[:, MISTAKE_CONFIDENCE] = confidence * errors
    bins = np.clip((confidence * CALIBRATION_BINS).astype(np.int64), 0, CALIBRATION_BINS - 1)
    rows = np.arange(len(errors))
    values[rows, _BINS + 3 * bins] = 1.0
    values[rows, _BINS + 3 * bins + 1] = confidence
    values[rows, _BINS + 3 * bins + 2] = 1.0 - errors
    return values


def train_row_values(num_rows: int, errors: Optional[np.ndarray] = None) -> np.ndarray:
    """(rows, DIAGNOSTIC_COLUMNS) values of training rows: each counts in TRAIN_ROWS; `errors`
    (1/0 per row, NaN for a row the model was not run on; None: none was) adds the rows with
    predictions to TRAIN_PREDICTED and their mistakes to TRAIN_ERRORS."""
    values = np.zeros((num_rows, DIAGNOSTIC_COLUMNS))
    values[:, TRAIN_ROWS] = 1.0
    if errors is not None:
        errors = np.asarray(errors, np.float64)
        predicted = ~np.isnan(errors)
        values[:, TRAIN_PREDICTED] = predicted
        values[:, TRAIN_ERRORS] = np.where(predicted, errors, 0.0)
    return values


@dataclasses.dataclass
class PatternSums:
    """Summed per-row values per distinct membership pattern (mergeable)."""

    patterns: np.ndarray  # (m,) uint64, sorted
    sums: np.ndarray  # (m, DIAGNOSTIC_COLUMNS)

    @classmethod
    def count(cls, codes: np.ndarray, conditions: np.ndarray, values: np.ndarray) -> 'PatternSums':
        return cls(*selection.sum_by_pattern(selection.membership(codes, conditions), values))

    @classmethod
    def merge(cls, tables: Sequence[Optional['PatternSums']]) -> 'PatternSums':
        tables = [t for t in tables if t is not None and len(t.patterns)]
        if not tables:
            return cls(np.zeros(0, np.uint64), np.zeros((0, DIAGNOSTIC_COLUMNS)))
        return cls(
            *selection.sum_by_pattern(
                np.concatenate([t.patterns for t in tables]),
                np.concatenate([t.sums for t in tables]),
            )
        )


def expected_calibration_error(sums: np.ndarray) -> Optional[float]:
    """ECE over CALIBRATION_BINS equal-width confidence bins: sum over bins of
    |mean confidence - accuracy| weighted by the bin's share of rows."""
    bins = sums[_BINS:].reshape(CALIBRATION_BINS, 3)
    rows = bins[:, 0].sum()
    if not rows:
        return None
    return float(np.abs(bins[:, 1] - bins[:, 2]).sum() / rows)


def _ratio(numerator: float, denominator: float) -> Optional[float]:
    return float(numerator / denominator) if denominator else None


def _rate(errors: float, rows: float) -> Dict:
    """An error rate with its 95% Wilson interval (None without rows)."""
    if not rows:
        return {'rate': None, 'interval': None}
    low, high = stats.wilson_interval(errors, rows)
    return {'rate': float(errors / rows), 'interval': [float(low), float(high)]}


def _side(sums: np.ndarray) -> Dict:
    return {
        'rows': int(sums[ROWS]),
        'errors': int(sums[ERRORS]),
        'error_rate': _ratio(sums[ERRORS], sums[ROWS]),
        'suspects': int(sums[SUSPECTS]),
        'suspect_rate': _ratio(sums[SUSPECTS], sums[ROWS]),
        'suspect_share_of_errors': _ratio(sums[SUSPECT_ERRORS], sums[ERRORS]),
        'mistake_confidence': _ratio(sums[MISTAKE_CONFIDENCE], sums[ERRORS]),
        'calibration_error': expected_calibration_error(sums),
    }


def coverage_in_training(
    train_rows: float, all_train_rows: float, rows: float, all_rows: float
) -> Optional[Dict]:
    """{train_rows, train_share, analysed_share} of a finding; None without training rows."""
    if all_train_rows <= 0:
        return None
    return {
        'train_rows': int(train_rows),
        'train_share': float(train_rows / all_train_rows),
        'analysed_share': float(rows / max(all_rows, 1)),
    }


def _fit(inside: np.ndarray, outside: np.ndarray) -> Optional[Dict]:
    """Train error beside the error here, inside and outside, with 95% Wilson intervals;
    None when the finding has fewer than MIN_FIT_ROWS training rows with predictions (or the
    rest has none)."""
    if inside[TRAIN_PREDICTED] < MIN_FIT_ROWS or not outside[TRAIN_PREDICTED]:
        return None
    fit = {
        'train_rows': int(inside[TRAIN_PREDICTED]),
        'train_rows_outside': int(outside[TRAIN_PREDICTED]),
        'train': _rate(inside[TRAIN_ERRORS], inside[TRAIN_PREDICTED]),
        'train_outside': _rate(outside[TRAIN_ERRORS], outside[TRAIN_PREDICTED]),
        'here': _rate(inside[ERRORS], inside[ROWS]),
        'here_outside': _rate(outside[ERRORS], outside[ROWS]),
    }
    if fit['here']['rate'] is None or fit['here_outside']['rate'] is None:
        return None
    excess = fit['here']['rate'] - fit['here_outside']['rate']
    train_excess = fit['train']['rate'] - fit['train_outside']['rate']
    fit['train_excess_share'] = float(train_excess / excess) if excess > 0 else None
    return fit


def fit_word(evidence: Dict) -> str:
    """'cannot fit', 'fits' or 'unknown' (module docstring, "Fit"): the one place it comes
    from."""
    fit = evidence.get('fit')
    if not fit or fit['train_excess_share'] is None:
        return 'unknown'
    share = fit['train_excess_share']
    if share >= FIT_SHARE and fit['train']['interval'][0] > fit['train_outside']['interval'][1]:
        return 'cannot fit'
    if share < FIT_SHARE and fit['train']['interval'][1] < fit['here']['interval'][0]:
        return 'fits'
    return 'unknown'


def gain_split(evidence: Dict, rule: str) -> Dict:
    """The share of a finding's potential gain that looks reachable: all of it, but where the
    model cannot fit the rows (rule not_separable) only the part of its error above both the
    error outside and its own train error, which looks irreducible with these features."""
    if rule != 'not_separable':
        return {'reachable_share': 1.0, 'irreducible_error_rate': None}
    fit = evidence['fit']
    here, outside, train = fit['here']['rate'], fit['here_outside']['rate'], fit['train']['rate']
    floor = min(max(outside, train), here)
    share = (here - floor) / (here - outside) if here > outside else 1.0
    return {'reachable_share': float(share), 'irreducible_error_rate': float(floor)}


def reference_split(diagnosis: Dict, reference_accuracy: Optional[float]) -> Optional[Dict]:
    """Ng's split against a reference (human-level or target) accuracy: avoidable bias =
    train error - reference error, variance = error here - train error (None without a
    reference or train error)."""
    fit = diagnosis.get('fit')
    if reference_accuracy is None or not fit:
        return None
    train, here = fit['train']['rate'], fit['here']['rate']
    return {
        'reference_error': 1.0 - reference_accuracy,
        'avoidable_bias': train - (1.0 - reference_accuracy),
        'variance': here - train,
    }


def diagnose(inside: np.ndarray, total: np.ndarray) -> Dict:
    """A finding's evidence (inside vs outside) and next step, from summed values."""
    outside = total - inside
    coverage = coverage_in_training(
        inside[TRAIN_ROWS], total[TRAIN_ROWS], inside[ROWS], total[ROWS]
    )
    evidence = {
        'coverage': coverage,
        'fit': _fit(inside, outside),
        'inside': _side(inside),
        'outside': _side(outside),
    }
    rule, text = next_step(evidence)
    return {**evidence, 'rule': rule, 'next_step': text, 'gain': gain_split(evidence, rule)}


def _pct(x: float) -> str:
    return f'{100 * x:.0f}%' if x >= 0.01 or x == 0 else f'{100 * x:.1f}%'


def under_represented(coverage: Dict) -> bool:
    """Rule 1 on a finding's coverage {train_rows, train_share, analysed_share}."""
    return coverage['train_share'] < UNDER_REPRESENTED * coverage['analysed_share'] or (
        coverage['train_rows'] < MIN_TRAIN_ROWS
        and coverage['train_share'] < coverage['analysed_share']
    )


def next_step(evidence: Dict) -> Tuple[str, str]:
    """(rule, one line) chosen by the rules in the module docstring."""
    coverage = evidence['coverage']
    inside = evidence['inside']
    if coverage is not None and under_represented(coverage):
        return (
            'under_represented',
            f'under-represented in training ({_pct(coverage["train_share"])} of train rows, '
            f'{coverage["train_rows"]:,}, vs {_pct(coverage["analysed_share"])} here): '
            'collect more examples like these',
        )
    confidence = inside['mistake_confidence'] or 0.0
    fitted = fit_word(evidence)
    unsure = confidence_word(evidence) == 'unsure'
    if fitted == 'cannot fit' and unsure:
        return (
            'not_separable',
            f'{_fit_evidence(evidence)}, the mistakes are unsure (mean confidence '
            f'{confidence:.2f}): the features do not separate these rows for this model, even '
            'in training; if a person can tell them apart, add the signal they use (or try a '
            'larger model, longer training), else their labels are noise here: review a sample '
            f'({_suspect_evidence(evidence)})',
        )
    if fitted == 'fits' and not unsure:
        return (
            'shortcut',
            f'{_fit_evidence(evidence)} and the mistakes are confident (mean {confidence:.2f}): the '
            'model learned a pattern that holds on its training rows only; find what these '
            'rows share in training, add counter-examples or drop the feature that leaks',
        )
    if fitted == 'fits':
        return (
            'variance',
            f'{_fit_evidence(evidence)}, the mistakes are unsure (mean confidence {confidence:.2f}): '
            'variance; more examples like these, regularisation, or a simpler model for them',
        )
    suspects = suspect_word(evidence)
    if suspects == 'many':
        return (
            'label_noise',
            f'{_suspect_evidence(evidence)}: review these labels (most suspicious first in the '
            'label suspects list; marked in the review sheet)',
        )
    covered = 'well covered in training' if coverage is not None else 'training coverage unknown'
    if confidence_word(evidence) == 'confident':
        consistent = 'labels look consistent' if suspects == 'few' else _suspect_evidence(evidence)
        return (
            'missing_signal',
            f'{covered}, {consistent} and the mistakes are confident (mean '
            f'{confidence:.2f}): the model lacks a signal here or follows a shortcut; try a '
            'feature or a higher-capacity model',
        )
    return (
        'ambiguous',
        f'{covered}, {_suspect_evidence(evidence)} and the mistakes are unsure (mean '
        f'confidence {confidence:.2f}): the examples are ambiguous to the model, or their labels '
        'are noisy; review a sample of labels, then try a feature that separates them',
    )


def _fit_evidence(evidence: Dict) -> str:
    """'the model cannot fit its training rows (train error 41% vs 9% elsewhere, 300 rows;
    here 44% vs 10%)'."""
    fit = evidence['fit']
    return (
        f'the model {fit_word(evidence)} its training rows (train error {_pct(fit["train"]["rate"])} vs '
        f'{_pct(fit["train_outside"]["rate"])} elsewhere, {fit["train_rows"]:,} rows; here '
        f'{_pct(fit["here"]["rate"])} vs {_pct(fit["here_outside"]["rate"])})'
    )


def _concentration(evidence: Dict) -> float:
    """How many times as often its rows are suspects as the rows outside it."""
    inside = evidence['inside']['suspect_rate'] or 0.0
    outside = evidence['outside']['suspect_rate'] or 0.0
    if not outside:
        return float('inf') if inside else 0.0
    return inside / outside


def suspect_word(evidence: Dict) -> str:
    """'few', 'some' or 'many' label suspects: the one place that word comes from (rule 2)."""
    share = evidence['inside']['suspect_share_of_errors'] or 0.0
    concentration = _concentration(evidence)
    if concentration >= SUSPECT_CONCENTRATION and (
        share >= LABEL_NOISE or (share >= FEW_SUSPECTS and concentration >= STRONG_CONCENTRATION)
    ):
        return 'many'
    return 'few' if share < FEW_SUSPECTS else 'some'


def confidence_word(evidence: Dict) -> str:
    """'confident' or 'unsure' mistakes (rule 3)."""
    confident = (evidence['inside']['mistake_confidence'] or 0.0) >= OVERCONFIDENT
    return 'confident' if confident else 'unsure'


def _suspect_evidence(evidence: Dict) -> str:
    inside, outside = evidence['inside'], evidence['outside']
    return (
        f'{suspect_word(evidence)} label suspects ({_pct(inside["suspect_share_of_errors"] or 0)} '
        f'of its errors; its rows {_pct(inside["suspect_rate"] or 0)} vs '
        f'{_pct(outside["suspect_rate"] or 0)} outside)'
    )


def qualifier_violations(diagnosis: Dict) -> list:
    """Words in a written next step that its own numbers do not give (report invariants)."""
    text = diagnosis['next_step']
    problems = []
    word = suspect_word(diagnosis)
    for said in ('few', 'some', 'many'):
        if f'{said} label suspects' in text and said != word:
            problems.append(f'says "{said} label suspects" where the numbers give "{word}"')
    if 'labels look consistent' in text and word != 'few':
        problems.append(f'says "labels look consistent" with {word} label suspects')
    if diagnosis['rule'] == 'label_noise' and word != 'many':
        problems.append(f'"review these labels" with {word} label suspects')
    confidence = confidence_word(diagnosis)
    for said in ('confident', 'unsure'):
        if f'mistakes are {said}' in text and said != confidence:
            problems.append(f'says the mistakes are {said}; the numbers say {confidence}')
    fitted = fit_word(diagnosis)
    for said in ('cannot fit', 'fits'):
        if f'the model {said} its training rows' in text and said != fitted:
            problems.append(f'says the model {said} its training rows; the numbers say {fitted}')
    needs = {'not_separable': 'cannot fit', 'shortcut': 'fits', 'variance': 'fits'}
    if diagnosis['rule'] in needs and fitted != needs[diagnosis['rule']]:
        problems.append(f'rule {diagnosis["rule"]} where the train error says "{fitted}"')
    return problems


def diagnose_candidates(
    table: PatternSums, conditions: np.ndarray, encoders: Sequence[binning.FeatureEncoder]
) -> Dict[str, Dict]:
    """Slice text (as the findings name it) -> diagnosis, for every candidate."""
    count = min(len(conditions), selection.MAX_CANDIDATES)
    total = table.sums.sum(axis=0) if len(table.patterns) else np.zeros(DIAGNOSTIC_COLUMNS)
    bits = selection.pattern_bits(table.patterns, count)
    return {
        ranges.condition_text(conditions[i], encoders): diagnose(
            table.sums[bits[:, i]].sum(axis=0), total
        )
        for i in range(count)
    }


def diagnose_tags(
    sums: Mapping[str, np.ndarray],
    total: np.ndarray,
    counted_in_train: Collection[str],
    rules: Callable[[np.ndarray, np.ndarray], Dict] = diagnose,
    train_rows: int = TRAIN_ROWS,
) -> Dict[str, Dict]:
    """Tag -> diagnosis by `rules` (a finding's: diagnose here, or a regression's), from each
    tag's summed values and those of all rows. Only tags in counted_in_train (rules, which
    read features) were counted over the training rows (column `train_rows` of the sums); a
    manual tag marks analysed examples by id, so its coverage is unknown rather than zero."""
    untrained = np.array(total, np.float64)
    untrained[train_rows] = 0.0
    return {
        tag: rules(inside, total if tag in counted_in_train else untrained)
        for tag, inside in sums.items()
    }


def overall(table: PatternSums) -> Dict:
    """All analysed rows: suspects and calibration, for the report's overview."""
    total = table.sums.sum(axis=0) if len(table.patterns) else np.zeros(DIAGNOSTIC_COLUMNS)
    return {
        **_side(total),
        'train_rows': int(total[TRAIN_ROWS]),
        'train_predicted': int(total[TRAIN_PREDICTED]),
        'train_errors': int(total[TRAIN_ERRORS]),
        'train_error_rate': _ratio(total[TRAIN_ERRORS], total[TRAIN_PREDICTED]),
    }
