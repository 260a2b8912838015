"""ErrorAnalysis: where the model fails, as a TFX Beam component.

Inputs: the examples (raw, as ExampleGen wrote them), the trained model, optionally the
Evaluator's output (its sliced metrics go into the report), the schema, and optionally a
baseline report (the latest blessed model's, see baseline.py) to compare with. Output: an
ErrorAnalysisReport artifact whose summary is in ML Metadata custom properties and whose full
report (report.json, report.html, per-example predictions) is under its URI.
"""
import json
from typing import Dict, List, Optional, Tuple

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.error_analysis import executor
from components.error_analysis.artifact import ErrorAnalysisReport


class ErrorAnalysisSpec(ComponentSpec):
    # Lists travel as JSON strings, as in TFX's own specs (exclude_splits): Kubeflow V2 takes
    # only primitive parameters.
    PARAMETERS = {
        'label_key': ExecutionParameter(type=str),
        'splits': ExecutionParameter(type=str),
        'slice_features': ExecutionParameter(type=str),
        'num_bins': ExecutionParameter(type=int),
        'max_values_per_feature': ExecutionParameter(type=int),
        'max_predicates': ExecutionParameter(type=int),
        'min_slice_size': ExecutionParameter(type=float),
        'num_slices': ExecutionParameter(type=int),
        'significance': ExecutionParameter(type=float),
        'num_hardest_examples': ExecutionParameter(type=int),
        'class_names': ExecutionParameter(type=str),
        'image': ExecutionParameter(type=str),
        'tags_uri': ExecutionParameter(type=str),
        'tag_rules': ExecutionParameter(type=str),
        'tag_references': ExecutionParameter(type=str),
    }
    INPUTS = {
        'examples': ChannelParameter(type=standard_artifacts.Examples),
        'model': ChannelParameter(type=standard_artifacts.Model),
        'evaluation': ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
        'schema': ChannelParameter(type=standard_artifacts.Schema),
        # The report of the latest blessed model, to compare with (report_compare.py).
        'baseline_report': ChannelParameter(type=ErrorAnalysisReport, optional=True),
    }
    OUTPUTS = {'report': ChannelParameter(type=ErrorAnalysisReport)}


class ErrorAnalysis(base_beam_component.BaseBeamComponent):
    """Confusions, failing slices found automatically, and per-feature error rates."""

    SPEC_CLASS = ErrorAnalysisSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self,
                 examples: types.BaseChannel,
                 model: types.BaseChannel,
                 schema: types.BaseChannel,
                 label_key: str,
                 evaluation: Optional[types.BaseChannel] = None,
                 baseline_report: Optional[types.BaseChannel] = None,
                 splits: Optional[List[str]] = None,
                 slice_features: Optional[List[str]] = None,
                 num_bins: int = 4,
                 max_values_per_feature: int = 50,
                 max_predicates: int = 3,
                 min_slice_size: float = 0.01,
                 num_slices: int = 10,
                 significance: float = 0.05,
                 num_hardest_examples: int = 20,
                 class_names: Optional[List[str]] = None,
                 image: Optional[Tuple[str, int, int]] = None,
                 tags_uri: str = '',
                 tag_rules: Optional[List[str]] = None,
                 tag_references: Optional[Dict[str, float]] = None):
        """`slice_features` empty or None: every numeric or categorical feature of the schema
        that is available at serving time; names of transformed features (outputs of the
        model's transform_features signature) are allowed too. `min_slice_size` < 1 is a
        fraction of the rows. `class_names`: one per class id (default: the ids).
        `image`: (raw feature holding 8-bit grayscale pixels as bytes, height, width) to
        show the misclassified images in the report. `tags_uri`: a CSV of manual tags per
        example id (see manual_tags.py); `tag_rules`: 'name: expression' tags over features;
        `tag_references`: target accuracy per tag for the prioritisation table."""
        super().__init__(spec=ErrorAnalysisSpec(
            examples=examples, model=model, evaluation=evaluation, schema=schema,
            baseline_report=baseline_report,
            label_key=label_key,
            splits=json.dumps(list(splits or ['eval'])),
            slice_features=json.dumps(list(slice_features or [])),
            num_bins=num_bins, max_values_per_feature=max_values_per_feature,
            max_predicates=max_predicates, min_slice_size=float(min_slice_size),
            num_slices=num_slices, significance=significance,
            num_hardest_examples=num_hardest_examples,
            class_names=json.dumps(list(class_names or [])),
            image=json.dumps(list(image) if image else []),
            tags_uri=tags_uri or '',
            tag_rules=json.dumps(list(tag_rules or [])),
            tag_references=json.dumps(dict(tag_references or {})),
            report=types.Channel(type=ErrorAnalysisReport)))
