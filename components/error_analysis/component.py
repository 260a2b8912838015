"""ErrorAnalysis: where the model fails, as a TFX Beam component.

Output: an ErrorAnalysisReport artifact whose summary is in ML Metadata custom properties and
whose full report (report.json, report.html, per-example predictions) is under its URI. The
contract is in ErrorAnalysis's docstring and the README ("Add ErrorAnalysis to your pipeline").
"""

import json
from typing import Optional, Sequence, Tuple

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec

from blindspot.error_analysis import executor, spec
from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.settings import Settings


class ErrorAnalysis(base_beam_component.BaseBeamComponent):
    """Where the model fails: confusions, per-class failures, failing slices found
    automatically and checked on held-out data, per-feature error rates, what to do next, the
    comparison with the latest blessed model, and the slice gate's verdict for the Pusher."""

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
        """Inputs (TFX channels):

        examples         required: the raw examples as ExampleGen wrote them (the analysed
                         splits, `settings.splits`, default ['eval']; 'train' too, if present,
                         for each finding's coverage in training)
        model            required: the Trainer's model
        schema           required: the raw data's schema (SchemaGen or ImportSchemaGen)
        evaluation       optional: the Evaluator's output; its sliced metrics go into the report
        baseline_report  optional: latest_blessed_report().outputs['report']; the report then
                         compares with the latest blessed model's, and the gate's 'new' mode
                         has something to compare with

        `label_key`: the label as the examples hold it (raw name), or the name of the
        Transform output that the model's `transform_features` signature computes from it
        (e.g. 'species_xf', the key TFMA reads). A transformed name is mapped back to its raw
        column (the one raw feature it is computed from, or the one whose name it extends).
        Neither the raw label nor label_key is ever a slice feature (asked for, they are
        refused); other Transform outputs are sliced on only when named in
        `settings.slice_features`.
        Labels may be integer class ids or strings (strings need class names: see below).

        The model must have a `serving_default` signature on serialized tf.Examples (what TFX's
        Trainer examples export) whose first output is logits or probabilities, one column per
        class (or one sigmoid/logit column for two classes). A model without it stops with one
        line naming the signature and the fix, before any Beam work. Any Keras (Keras 3 or
        tf-keras) or plain TensorFlow SavedModel: it is loaded with tf.saved_model.load.

        `class_names`: one per class id, in the model's output order. Default: the model's
        assets.extra/class_names.txt, else the Transform's vocabulary of a string label (found
        among the model's assets), else the ids.

        `settings`: see settings.py (empty `slice_features`: every numeric or categorical
        feature of the schema available at serving time, but the label; names of transformed
        features, outputs of the model's transform_features signature, are allowed too).
        The slice gate (`settings.slice_gate`, default 'new') only decides: put the Pusher
        under `tfx.dsl.Cond(slice_gate_condition(this_component))` for it to stop a push; a
        report whose gate is on but not wired says so in its insights.
        `image`: (raw feature holding 8-bit grayscale pixels as bytes, height, width) to show
        the misclassified images."""
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
                    # 1 once slice_gate_condition() puts something under the gate.
                    spec.GATE_WIRED_KEY: 0,
                    spec.REPORT_KEY: types.Channel(type=ErrorAnalysisReport),
                    **settings.to_exec_properties(),
                }
            )
        )
