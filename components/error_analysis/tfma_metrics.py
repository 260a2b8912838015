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


def sliced_metrics(evaluation_uri: str) -> List[Dict]:
    """One row per slice: {'slice', 'features', 'metrics': {name: value}}, Overall first."""
    result = tfma.load_eval_result(evaluation_uri)
    rows = []
    for slice_key, by_output in result.slicing_metrics:
        metrics = {}
        for by_sub_key in by_output.values():
            for values in by_sub_key.values():
                for name, value in values.items():
                    number = _scalar(value)
                    if number is not None:
                        metrics[name] = number
        rows.append({'slice': slice_name(slice_key),
                     'features': [name for name, _ in slice_key],
                     'metrics': metrics})
    rows.sort(key=lambda r: (len(r['features']), r['features'], r['slice']))
    return rows
