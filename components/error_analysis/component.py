"""ErrorAnalysis: where the model fails, as a TFX Beam component.

Inputs: the examples (raw, as ExampleGen wrote them), the trained model, optionally the
Evaluator's output (its sliced metrics go into the report), the schema, and optionally a
baseline report (the latest blessed model's, see baseline.py) to compare with. Output: an
ErrorAnalysisReport artifact whose summary is in ML Metadata custom properties and whose full
report (report.json, report.html, per-example predictions) is under its URI.
"""

import json
from typing import Optional, Sequence, Tuple

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec

from blindspot.error_analysis import executor, spec
from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.settings import Settings


class ErrorAnalysis(base_beam_component.BaseBeamComponent):
    """Confusions, failing slices found automatically, and per-feature error rates."""

    SPEC_CLASS = spec.ErrorAnalysisSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        schema: types.BaseChannel,
        label_key: str,
        settings: Settings = Settings(),
        evaluation: Optional[types.BaseChannel] = None,
        baseline_report: Optional[types.BaseChannel] = None,
        class_names: Sequence[str] = (),
        image: Optional[Tuple[str, int, int]] = None,
    ):
        """`settings`: see settings.py (empty `slice_features`: every numeric or categorical
        feature of the schema available at serving time; names of transformed features, outputs
        of the model's transform_features signature, are allowed too). `class_names`: one per
        class id (default: the model's saved names, else the ids). `image`: (raw feature holding
        8-bit grayscale pixels as bytes, height, width) to show the misclassified images."""
        super().__init__(
            spec=spec.ErrorAnalysisSpec(
                **{
                    spec.EXAMPLES_KEY: examples,
                    spec.MODEL_KEY: model,
                    spec.EVALUATION_KEY: evaluation,
                    spec.SCHEMA_KEY: schema,
                    spec.BASELINE_REPORT_KEY: baseline_report,
                    spec.LABEL_KEY_KEY: label_key,
                    spec.CLASS_NAMES_KEY: json.dumps(list(class_names)),
                    spec.IMAGE_KEY: json.dumps(list(image) if image else []),
                    spec.REPORT_KEY: types.Channel(type=ErrorAnalysisReport),
                    **settings.to_exec_properties(),
                }
            )
        )
