"""Blindspot's custom TFX components.

`ErrorAnalysisReport` is importable from here because Kubeflow V2 resolves a custom artifact
type by its TYPE_NAME ('blindspot.ErrorAnalysisReport') as an import path in the container.
It is loaded lazily so the pure-logic modules below this package import without TensorFlow.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

__all__ = ['ErrorAnalysisReport']


def __getattr__(name: str):
    if name == 'ErrorAnalysisReport':
        from blindspot.error_analysis.artifact import ErrorAnalysisReport

        return ErrorAnalysisReport
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
