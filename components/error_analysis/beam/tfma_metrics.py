"""TFMA's sliced metrics as plain rows, read with tfma.load_eval_result (no notebook needed)."""

from typing import Dict, List

import tensorflow_model_analysis as tfma


def slice_name(slice_key) -> str:
    """'Overall' or 'payment_type = Cash AND trip_start_hour = 19'."""
    if not slice_key:
        return 'Overall'
    return ' AND '.join(f'{name} = {value}' for name, value in slice_key)


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


def load_eval_result(uri: str) -> tfma.EvalResult:
    """tfma.load_eval_result for the candidate model. With a baseline the evaluation holds two
    models ('candidate', 'baseline'); without a name TFMA finds the candidate's metrics (through
    the diff metrics) but none of its plots."""
    from tensorflow_model_analysis.writers import eval_config_writer

    config = eval_config_writer.load_eval_run(uri)[0]
    candidates = [spec.name for spec in config.model_specs if not spec.is_baseline]
    name = candidates[0] if len(config.model_specs) > 1 and candidates else None
    return tfma.load_eval_result(uri, model_name=name)


def sliced_metrics(evaluation_uri: str) -> List[Dict]:
    """One row per slice: {'slice', 'features', 'metrics': {name: value}}, Overall first."""
    result = load_eval_result(evaluation_uri)
    rows = []
    for slice_key, by_output in result.slicing_metrics:
        metrics = {}
        for by_sub_key in by_output.values():
            for values in by_sub_key.values():
                for name, value in values.items():
                    number = _scalar(value)
                    if number is not None:
                        metrics[name] = number
        rows.append(
            {
                'slice': slice_name(slice_key),
                'features': [name for name, _ in slice_key],
                'metrics': metrics,
            }
        )
    rows.sort(key=lambda r: (len(r['features']), r['features'], r['slice']))
    return rows
