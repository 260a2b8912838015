"""report.json: the versioned structure every Blindspot error-analysis report follows.

Version 4 (top-level keys; 3 had no added_* numbers per finding, no highlights, no examples
per finding, no invariant_violations, and compared reports without measuring; 2 had no
diagnosis per tag, 1 no impact fields and listed slices by SliceLine score):
  version            4
  created            ISO time the report was written
  label_key, splits, class_names
  label_name         the label as the user named it (the raw column when the model's label
                     is a transformed feature), else label_key
  overall            {examples, errors, error_rate, accuracy, mean_loss}
  confusion          {matrix: counts[true][predicted], normalized: row rates,
                      top_pairs: [{true, predicted, count, share_of_errors, rate_in_true_class}]}
  slices             the slice search (see SliceSearchResult.to_dict): config, overall,
                     levels, slices: findings by the gain each adds beyond those above it,
                     each followed by its refinements, then up to 3 unconfirmed candidates;
                     each with slice, predicates, size, errors, error_rate,
                     error_rate_outside, error_share (of all errors), potential_gain ((rate -
                     rate outside) x share of rows), and for a finding added_size,
                     added_errors, added_error_share, added_potential_gain (on its rows not
                     in the findings above it, against the rate outside every finding),
                     parent (the finding a refinement lies in, else null), score (SliceLine,
                     search half), slice_id (identity across runs: search/identity.py),
                     search_*/holdout_* counts, p_value and q_value (its
                     hold-out test, Bonferroni-adjusted), held;
                     feature_values (per feature value: size, error rate, 95% CI, lift,
                     exact p-value, BH q-value, bounds of a numeric bin), feature_notes (capping and binning notes,
                     columns left out of slicing and why)
  highlights         feature -> per-value labels that a held finding uses (a category it
                     names, a numeric bin at least half in its range): red in the charts
                     Each held entry of slices.slices also gets `examples`: {mistakes (its
                     errors), rows: its most confident mistakes, as hardest_examples plus
                     label_suspect}
  hardest_examples   most confident mistakes: {example_id, label, predicted, confidence,
                     loss, features}
  classes            per class: {class, support, predicted, correct, precision, recall}
                     (precision None if never predicted, recall None if no examples)
  diagnosis          confident learning and calibration over all rows (see
                     search/diagnosis.py), or null: {overall: {rows, errors, error_rate,
                     suspects, suspect_rate, suspect_share_of_errors, mistake_confidence,
                     calibration_error, train_rows, train_predicted (training rows the
                     model ran on), train_errors, train_error_rate}, train_sample (the most
                     training rows run on), human_level, thresholds (per class),
                     label_suspects: the most suspicious examples, lowest probability of
                     their given label first (as hardest_examples, plus label_probability)}
                     Each entry of slices.slices also gets `diagnosis`: {coverage:
                     {train_rows, train_share, analysed_share} or null without a train
                     split, fit: {train_rows, train_rows_outside, train, train_outside,
                     here, here_outside (each {rate, interval}: 95% Wilson),
                     train_excess_share} or null (too few training rows run on), inside and
                     outside (as diagnosis.overall), rule, next_step, gain: {reachable_share,
                     irreducible_error_rate}, reference: {reference_error, avoidable_bias,
                     variance} or null}, and with it reachable_gain and added_reachable_gain
                     (the potential gains times reachable_share)
  tfma               Evaluator's sliced metrics: [{slice, features, metrics}], or []
  gallery            image data only: per confusion pair, most frequent first,
                     {true, predicted, count, examples: [{example_id, confidence, png}]}
                     (png: base64, most confident mistakes first), else []
  tags               when tags are given, else null: {prioritization: [{tag, source ('rule' or
                     'manual'), rows, examples (weighted), share, accuracy, reference,
                     reference_given, gap, potential_gain, diagnosis (as a finding's, over
                     the tag's rows unweighted; coverage null for manual tags, which mark
                     analysed examples only)}] ranked by potential_gain, references,
                     manual: {file, ids, matched}}
                     A regression's tags (no --tag-reference: refused) add `error` (the
                     error kind) and each prioritization entry is {tag, source, rows (seen),
                     examples (weighted), share, error, mean_error (MAE, or MSE for the
                     squared kind; weighted) and mean_error_ci (95%, from the rows seen), mae,
                     mean_residual, mean_residual_ci, rest_rows, rest_mean_error (all rows
                     minus the tag's weighted sums; null when nothing is left), excess
                     (max(0, mean_error - rest_mean_error)), potential_gain (share x excess,
                     in the label's units), diagnosis (as a regression finding's, over the
                     tag's rows unweighted)}
  gate               the slice gate's verdict (report/gate.py): {mode, passed, reason,
                     blocking: [{slice, slice_id, error_rate, baseline_error_rate, why}],
                     wired: whether the pipeline's Pusher is under it (None: not known)}
  insights           plain sentences, most important first (the gate's verdict first when on,
                     then, if the gate is not wired, a note saying so)
  invariant_violations  rules of report/invariants.py the report breaks (empty: it agrees
                     with itself); shown at the top of the page when not empty
  files              {predictions: glob of the per-example Parquet files, html: report.html}
  comparison         only when the pipeline gave a baseline (the report of the latest blessed
                     model): failing slices new / resolved / persisting since then, each
                     measured on both models' predictions (paired on the same examples when
                     it can) with its test, `measured` (rows matched, why not measured),
                     overall and per-TFMA-slice accuracy changes (see report/compare.py), plus
                     baseline_label, baseline_uri and baseline_artifact_id (its ML Metadata id)
"""

import datetime
from typing import Dict, List, Optional, Sequence

import numpy as np

from blindspot.error_analysis.report import compare as report_compare
from blindspot.error_analysis.report import gate as slice_gate
from blindspot.error_analysis.report import insights, invariants, regression_view
from blindspot.error_analysis.search import confusion
from blindspot.error_analysis.search import diagnosis as diagnosis_rules
from blindspot.error_analysis.tags import prioritize

REPORT_VERSION = 4
GALLERY_PAIRS = 8


def _named_gallery(gallery: Sequence[Dict], matrix: np.ndarray, names: List[str]) -> List[Dict]:
    pairs = [
        {
            'true': names[g['true']],
            'predicted': names[g['predicted']],
            'count': int(matrix[g['true'], g['predicted']]),
            'examples': sorted(g['examples'], key=lambda r: -r['confidence']),
        }
        for g in gallery
    ]
    return sorted(pairs, key=lambda p: -p['count'])[:GALLERY_PAIRS]


def _overlaps(bounds: Sequence, predicate: Dict) -> bool:
    """Whether at least half of a numeric bin (low, high; None: open) lies in a range
    predicate (an open-ended bin only if the range is open on that side too), or at least
    half of the range lies in the bin: a refined range narrower than one bin marks the bin
    it sits in."""
    low = max(_bound(bounds[0], -np.inf), _bound(predicate['low'], -np.inf))
    high = min(_bound(bounds[1], np.inf), _bound(predicate['high'], np.inf))
    if high <= low:
        return False
    width = _bound(bounds[1], np.inf) - _bound(bounds[0], -np.inf)
    span = _bound(predicate['high'], np.inf) - _bound(predicate['low'], -np.inf)
    bin_half_inside = high - low == width if np.isinf(width) else high - low >= width / 2
    range_half_inside = not np.isinf(span) and high - low >= span / 2
    return bool(bin_half_inside or range_half_inside)


def _bound(value, open_end: float) -> float:
    return open_end if value is None else value


def highlights(slices: Dict) -> Dict[str, List[str]]:
    """Feature -> the per-value labels a held finding uses (a category it names, a numeric
    bin at least half inside its range, or the bin holding most of a narrower range), in the
    per-value table's order: what the charts mark red."""
    held = [p for s in slices['slices'] if s['held'] for p in s['predicates']]
    marked: Dict[str, List[str]] = {}
    for value in slices['feature_values']:
        used = any(
            p['feature'] == value['feature']
            and (
                _overlaps(value['bounds'], p)
                if p.get('is_range') and value.get('bounds')
                else p['label'] == value['label']
            )
            for p in held
        )
        if used:
            marked.setdefault(value['feature'], []).append(value['label'])
    return marked


def _tags_section(
    tags: Optional[Dict], examples: int, accuracy: float, human_level: Optional[float] = None
) -> Optional[Dict]:
    """The prioritisation table, each tag with the diagnosis the tags part computed (and Ng's
    split against its own reference, else human_level)."""
    if not tags:
        return None
    counts = tags['counts']
    kind = tags.get('error')  # a regression's tags part (beam/analysis.py _diagnosed_tags)
    if kind:
        rows = prioritize.prioritize_regression(counts, tags['total'], kind)
    else:
        rows = prioritize.prioritize(counts, examples, accuracy, tags['references'])
    for row in rows:
        row['diagnosis'] = counts[row['tag']]['diagnosis']
        reference = tags['references'].get(row['tag'], human_level)
        if row['diagnosis'] is not None and not kind:
            row['diagnosis']['reference'] = diagnosis_rules.reference_split(
                row['diagnosis'], reference
            )
    return {
        **({'error': kind} if kind else {}),
        'prioritization': rows,
        'references': tags['references'],
        'manual': {
            'file': tags['tags_uri'],
            'ids': tags['manual_ids'],
            'matched': int(tags['manual_matched']),
        },
    }


def _diagnosis_section(
    diagnosis: Optional[Dict],
    slices: Dict,
    label_suspects: Sequence[Dict],
    human_level: Optional[float] = None,
) -> Optional[Dict]:
    """The overall diagnosis; each listed slice gets its own (matched by its text), Ng's split
    against human_level, and the reachable part of its gains (diagnosis.gain_split)."""
    if diagnosis is None:
        return None
    for entry in slices['slices']:
        found = entry['diagnosis'] = diagnosis['candidates'].get(entry['slice'])
        if found is None:
            continue
        found['reference'] = diagnosis_rules.reference_split(found, human_level)
        if 'gain' not in found:  # a regression's diagnosis (search/regression.py)
            continue
        share = found['gain']['reachable_share']
        entry['reachable_gain'] = entry['potential_gain'] * share
        if entry.get('added_potential_gain') is not None:
            entry['added_reachable_gain'] = entry['added_potential_gain'] * share
    return {
        'overall': diagnosis['overall'],
        'train_sample': diagnosis.get('train_sample'),
        'human_level': human_level,
        'thresholds': diagnosis['thresholds'],
        'label_suspects': list(label_suspects),
    }


def build_report(
    *,
    label_key: str,
    splits: Sequence[str],
    label_name: Optional[str] = None,
    label_sources: Sequence[str] = (),
    class_names: Sequence[str],
    totals: Optional[Dict],
    slices: Dict,
    hardest: List[Dict],
    tfma_rows: List[Dict],
    files: Dict[str, str],
    gallery: Sequence[Dict] = (),
    tags: Optional[Dict] = None,
    baseline: Optional[Dict] = None,
    measured: Optional[Dict] = None,
    gate: Optional[Dict] = None,
    diagnosis: Optional[Dict] = None,
    label_suspects: Sequence[Dict] = (),
    finding_examples: Optional[Dict[str, List[Dict]]] = None,
    regression: Optional[Dict] = None,
    human_level: Optional[float] = None,
) -> Dict:
    """`baseline`: {'report': a baseline report.json, 'info': {...}} (baseline.read_baseline),
    to compare with; `measured`: the comparison part of beam/comparison.py (None: the
    baseline's predictions were not measured). `gate`: the slice gate's settings
    (gate.slice_gate's keyword arguments mode, max_slice_error_rate, significance,
    wired, max_slice_error_ratio); None: off. `diagnosis`: the Beam part {overall, thresholds, candidates: slice text ->
    diagnosis}; `label_suspects`: the most suspicious examples; `finding_examples`: slice
    text -> its most confident mistakes (shown under each held finding). `regression`: a
    regression model's numbers (the regression part of beam/regression.py), then `totals` is
    None: report/regression_view.py fills the overall numbers and the residual view.
    `human_level`: the reference accuracy for each finding's avoidable bias and variance
    (None: not given)."""
    if regression is not None:
        totals = {'confusion': np.zeros((0, 0)), 'loss_sum': 0.0}
    matrix = np.asarray(totals['confusion'], dtype=np.int64)
    examples = int(matrix.sum())
    correct = int(np.trace(matrix))
    names = list(class_names)
    mistakes = finding_examples or {}
    for s in slices['slices']:
        if s['held'] and s['slice'] in mistakes:
            s['examples'] = {'mistakes': s['errors'], 'rows': mistakes[s['slice']]}
    listed = [
        *hardest,
        *label_suspects,
        *(r for s in slices['slices'] for r in s.get('examples', {}).get('rows', [])),
    ]
    for row in listed if regression is None else ():  # a regression's rows hold numbers
        row['label_name'] = names[row['label']]
        row['predicted_name'] = names[row['predicted']]
    report = {
        'version': REPORT_VERSION,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'label_key': label_key,
        'label_name': label_name or label_key,
        'label_sources': list(label_sources),
        'splits': list(splits),
        'class_names': names,
        'overall': {
            'examples': examples,
            'errors': examples - correct,
            'error_rate': (examples - correct) / examples if examples else None,
            'accuracy': correct / examples if examples else None,
            'mean_loss': totals['loss_sum'] / examples if examples else None,
        },
        'confusion': {
            'matrix': matrix.tolist(),
            'normalized': confusion.row_normalized(matrix).round(4).tolist(),
            'top_pairs': confusion.top_confusions(matrix, names, k=5),
        },
        'slices': slices,
        'highlights': highlights(slices),
        'hardest_examples': hardest,
        'classes': confusion.per_class(matrix, names),
        'diagnosis': _diagnosis_section(diagnosis, slices, label_suspects, human_level),
        'tfma': tfma_rows,
        'gallery': _named_gallery(gallery, matrix, names),
        'tags': _tags_section(tags, examples, correct / examples if examples else 0.0, human_level),
        'files': files,
    }
    if regression is not None:
        regression_view.apply(report, regression)
    if baseline is not None:
        report['comparison'] = {
            **report_compare.compare_reports(
                baseline['report'],
                report,
                measured=measured or {'problem': baseline.get('predictions_problem')},
                significance=(gate or {}).get('significance'),
            ),
            **baseline.get('info', {}),
        }
    report['gate'] = slice_gate.slice_gate(
        report, **(gate or {'mode': 'off', 'max_slice_error_rate': 1.0, 'significance': 0.05})
    )
    report['insights'] = (
        regression_view.insights(report) if regression is not None else insights.insights(report)
    )
    if report['gate']['mode'] != 'off':
        report['insights'].insert(0, slice_gate.gate_sentence(report['gate']))
        note = slice_gate.not_wired_note(report['gate'])
        if note:
            report['insights'].insert(1, note)
    # Last, over everything above: what the page would contradict itself on (empty: nothing).
    report['invariant_violations'] = invariants.violations(report)
    return report
