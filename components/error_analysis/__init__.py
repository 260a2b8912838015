"""ErrorAnalysis: where the model fails, as a TFX component. The rest of the project uses
this public API; the folders below show the layers:

    settings.py   every setting once (defaults, checks, help); both runners build flags from it
    spec.py, component.py, executor.py, artifact.py, baseline.py   the TFX glue
    wiring.py     latest_blessed_report() and slice_gate_condition(): wiring it into a DAG
    beam/         the Beam pipeline over examples (inference, counting passes)
    search/       pure numpy: slice lattice search, selection of findings, binning, statistics
    tags/         tag rules, manual tags, prioritisation by potential gain
    report/       report.json, report.html, comparison with a baseline report, insights

Names load lazily, so `Settings` and the report names import without TensorFlow.
"""

import importlib

_EXPORTS = {
    'Settings': 'settings',
    'SettingsError': 'settings',
    'ErrorAnalysis': 'component',
    'ErrorAnalysisReport': 'artifact',
    'LatestBlessedModelReportStrategy': 'baseline',
    'latest_blessed_report': 'wiring',
    'slice_gate_condition': 'wiring',
    'compare_reports': 'report.compare',
    'accuracy_metric': 'report.compare',
    'ACCURACY_KEYS': 'report.compare',
    'sliced_metrics': 'beam.tfma_metrics',
    'load_eval_result': 'beam.tfma_metrics',
    'parse_rules': 'tags.tag_rules',
    'RuleError': 'tags.tag_rules',
    'parse_tags_csv': 'tags.manual_tags',
    'TagsFileError': 'tags.manual_tags',
}
# Submodules that are part of the API: report file and custom-property names.
_MODULES = {'files': 'report.files'}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f'{__name__}.{_MODULES[name]}')
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
