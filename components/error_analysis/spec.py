"""The ErrorAnalysis component spec and its keys, as TFX keeps them for its own components
(tfx/types/standard_component_specs.py): the executor and the pipeline use these names."""

import dataclasses

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.settings import Settings, kind_of

# Inputs and output.
EXAMPLES_KEY = 'examples'
MODEL_KEY = 'model'
EVALUATION_KEY = 'evaluation'
SCHEMA_KEY = 'schema'
BASELINE_REPORT_KEY = 'baseline_report'  # the latest blessed model's report (baseline.py)
REPORT_KEY = 'report'

# Parameters that come from the dataset, not from the user's settings.
LABEL_KEY_KEY = 'label_key'
CLASS_NAMES_KEY = 'class_names'  # JSON list, one name per class id ([]: saved or ids)
IMAGE_KEY = 'image'  # JSON [raw bytes feature, height, width] or []
# 1 once slice_gate_condition (wiring.py) put something under the gate; 0: nothing acts on it.
GATE_WIRED_KEY = 'gate_wired'

_PRIMITIVE = {tuple: str, dict: str, int: int, float: float, str: str}


def _setting_parameters():
    """One ExecutionParameter per setting; lists and maps travel as JSON strings (Kubeflow V2
    takes primitive parameters only), as TFX's own specs do (exclude_splits)."""
    return {
        field.name: ExecutionParameter(type=_PRIMITIVE[kind_of(field)])
        for field in dataclasses.fields(Settings)
    }


class ErrorAnalysisSpec(ComponentSpec):
    PARAMETERS = {
        LABEL_KEY_KEY: ExecutionParameter(type=str),
        CLASS_NAMES_KEY: ExecutionParameter(type=str),
        IMAGE_KEY: ExecutionParameter(type=str),
        GATE_WIRED_KEY: ExecutionParameter(type=int, optional=True),
        **_setting_parameters(),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        BASELINE_REPORT_KEY: ChannelParameter(type=ErrorAnalysisReport, optional=True),
    }
    OUTPUTS = {REPORT_KEY: ChannelParameter(type=ErrorAnalysisReport)}
