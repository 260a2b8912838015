"""TFMA's sliced metrics as plain rows, read from the evaluation's files (no notebook needed)."""

from typing import Dict, List

import tensorflow_model_analysis as tfma

from blindspot.error_analysis.search.binning import display_value


def slice_name(slice_key) -> str:
    """'Overall' or 'payment_type = Cash AND trip_start_hour = 19'."""
    if not slice_key:
        return 'Overall'
    return ' AND '.join(f'{name} = {display_value(value)}' for name, value in slice_key)


def _scalar(value) -> float:
    if isinstance(value, dict):
        for key in ('doubleValue', 'double_value'):
            if key in value:
                return float(value[key])
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _candidate_name(uri: str):
    """The candidate model's name when the evaluation holds two models ('candidate',
    'baseline'), else None: without a name TFMA finds the candidate's metrics (through the
    diff metrics) but none of its plots."""
    from tensorflow_model_analysis.writers import eval_config_writer

    config = eval_config_writer.load_eval_run(uri)[0]
    candidates = [spec.name for spec in config.model_specs if not spec.is_baseline]
    return candidates[0] if len(config.model_specs) > 1 and candidates else None


def load_eval_result(uri: str) -> tfma.EvalResult:
    """tfma.load_eval_result for the candidate model, metrics and plots (for TFMA's views)."""
    return tfma.load_eval_result(uri, model_name=_candidate_name(uri))


def _flatten(by_output: Dict) -> Dict[str, float]:
    """One slice's metrics: those without a sub key as they are; a metric TFMA computed per
    class only (multi-class Precision, Recall, ...) as its macro average, 'macro_<name>'
    (never one class's value under the metric's plain name)."""
    metrics: Dict[str, float] = {}
    per_class: Dict[str, List[float]] = {}
    for by_sub_key in by_output.values():
        for sub_key, values in by_sub_key.items():
            for name, value in values.items():
                number = _scalar(value)
                if number is None:
                    continue
                if sub_key:
                    per_class.setdefault(name, []).append(number)
                else:
                    metrics[name] = number
    for name, numbers in per_class.items():
        defined = [n for n in numbers if n == n]  # a class without examples: NaN, left out
        if name not in metrics and defined:
            metrics[f'macro_{name}'] = sum(defined) / len(defined)
    return metrics


def sliced_metrics(evaluation_uri: str) -> List[Dict]:
    """One row per slice: {'slice', 'features', 'metrics': {name: value}}, Overall first."""
    # Metrics only: load_eval_result also turns every plot into a dict, which took most of
    # ErrorAnalysis's time on taxi (40 s of protobuf-to-JSON for the calibration buckets).
    from tensorflow_model_analysis.view import util as view_util
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    model_name = _candidate_name(evaluation_uri)
    rows = []
    for proto in writer.load_and_deserialize_metrics(evaluation_uri, 'tfrecord'):
        converted = view_util.convert_metrics_proto_to_dict(proto, model_name=model_name)
        if converted is None:
            continue
        slice_key, by_output = converted
        rows.append(
            {
                'slice': slice_name(slice_key),
                'features': [name for name, _ in slice_key],
                'metrics': _flatten(by_output),
            }
        )
    rows.sort(key=lambda r: (len(r['features']), r['features'], r['slice']))
    return rows
