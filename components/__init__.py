"""Blindspot: error analysis as a TFX pipeline step.

    from blindspot import ErrorAnalysis, Settings, latest_blessed_report, slice_gate_condition

`ErrorAnalysis` is the component; `Settings` its settings; `latest_blessed_report()` the
resolver node that finds the latest blessed model's report (the baseline the report compares
with); `slice_gate_condition(error_analysis)` the predicate to put the Pusher under
(`with tfx.dsl.Cond(slice_gate_condition(error_analysis)): pusher = ...`). The contract (inputs,
label key, what the model must have, class names) is in the README, "Add ErrorAnalysis to your
pipeline", and in `ErrorAnalysis`'s docstring.

Importing this package changes nothing in the process: no environment variable (the component
works with the Keras the user's model was saved with, Keras 3 or tf-keras), and nothing heavy
is imported until a name that needs TensorFlow is used.

This package is the repository's `components/` folder (setup.py maps it); Blindspot's own
pipelines, review tools and Kubeflow compiler are `blindspot.pipelines`, `blindspot.review` and
`blindspot.kubeflow`. `ErrorAnalysisReport` is importable from here because Kubeflow V2
resolves a custom artifact type by its TYPE_NAME ('blindspot.ErrorAnalysisReport') as an import
path in the container.
"""

import importlib

# name -> submodule (relative to this package) that defines it; loaded on first use.
_EXPORTS = {
    'ErrorAnalysis': 'error_analysis.component',
    'ErrorAnalysisReport': 'error_analysis.artifact',
    'Settings': 'error_analysis.settings',
    'SettingsError': 'error_analysis.settings',
    'latest_blessed_report': 'error_analysis.wiring',
    'slice_gate_condition': 'error_analysis.wiring',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)


def __dir__():
    return sorted([*globals(), *_EXPORTS])
