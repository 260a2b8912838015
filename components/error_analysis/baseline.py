"""The baseline report: a resolver strategy that finds the ErrorAnalysisReport of the latest
blessed model, and the executor's reader for it.

    tfx.dsl.Resolver(
        strategy_class=LatestBlessedModelReportStrategy,
        model_blessing=tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
        report=tfx.dsl.Channel(type=ErrorAnalysisReport),
    ).with_id('latest_blessed_report_resolver')

The latest blessed model is chosen as TFX's LatestBlessedModelStrategy chooses it (the highest
model id among the blessings with blessed = 1), so it is the model the Evaluator compares with.
Its report is the *first* ErrorAnalysisReport produced for that model (found through ML
Metadata: the ErrorAnalysis executions that read the model and wrote a report). Taking the first
one keeps the input stable run after run, so an unchanged re-run is still served from the cache.

No blessed model, or none of its reports in the store: both outputs are empty, and ErrorAnalysis
writes its report without a comparison.

Runs where TFX resolves inputs itself (the local runner, any portable orchestrator). The
Kubeflow V2 compiler only compiles TFX's built-in strategies, so pipelines compiled for
Kubeflow leave this resolver out.
"""

from typing import Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import standard_artifacts

from blindspot.error_analysis.artifact import ErrorAnalysisReport
from blindspot.error_analysis.report import files

_CURRENT_MODEL_ID = 'current_model_id'  # tfx.components.evaluator.constants
_BLESSED = 'blessed'
_MODEL_INPUT_KEY = 'model'  # ErrorAnalysis's input key for the model
_OUTPUT = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


def _key(event: metadata_store_pb2.Event) -> str:
    return event.path.steps[0].key if event.path.steps else ''


def blessed_model_ids(blessings: List[types.Artifact]) -> List[int]:
    """Ids of the blessed models, newest first."""
    return sorted(
        {
            b.get_int_custom_property(_CURRENT_MODEL_ID)
            for b in blessings
            if b.get_int_custom_property(_BLESSED) == 1
        },
        reverse=True,
    )


def _gate_passed(report: types.Artifact) -> bool:
    """A report whose slice gate blocked the push is no baseline: its model was not shipped,
    and comparing with it would make the blind spot that blocked it look old."""
    if not report.has_custom_property(files.SLICE_GATE_PASSED):
        return True  # written before the gate existed
    return report.get_int_custom_property(files.SLICE_GATE_PASSED) == 1


def first_report_for_model(
    store, reports: List[types.Artifact], model_id: int
) -> Optional[types.Artifact]:
    """The earliest of `reports` written by an execution that read model `model_id`."""
    by_id = {r.id: r for r in reports}
    if not by_id:
        return None
    writers: Dict[int, List[int]] = {}  # execution id -> report ids it output
    for event in store.get_events_by_artifact_ids(list(by_id)):
        if event.type in _OUTPUT:
            writers.setdefault(event.execution_id, []).append(event.artifact_id)
    if not writers:
        return None
    matching = set()
    for event in store.get_events_by_execution_ids(list(writers)):
        if (
            event.type in _INPUT
            and _key(event) == _MODEL_INPUT_KEY
            and event.artifact_id == model_id
        ):
            matching.update(writers[event.execution_id])
    return by_id[min(matching)] if matching else None


class LatestBlessedModelReportStrategy(resolver.ResolverStrategy):
    """Resolves the ErrorAnalysisReport of the latest blessed model whose report passed the
    slice gate (and that blessing)."""

    def resolve_artifacts(
        self, store, input_dict: Dict[str, List[types.Artifact]]
    ) -> Optional[Dict[str, List[types.Artifact]]]:
        blessing_key = report_key = None
        for key, artifacts in input_dict.items():
            if artifacts and isinstance(artifacts[0], standard_artifacts.ModelBlessing):
                blessing_key = key
            elif artifacts and artifacts[0].type_name == ErrorAnalysisReport.TYPE_NAME:
                report_key = key
        result = {key: [] for key in input_dict}
        if blessing_key is None or report_key is None:
            return result
        for model_id in blessed_model_ids(input_dict[blessing_key]):
            report = first_report_for_model(store, input_dict[report_key], model_id)
            if report is not None and _gate_passed(report):
                break
        else:
            return result
        blessing = min(
            (
                b
                for b in input_dict[blessing_key]
                if b.get_int_custom_property(_BLESSED) == 1
                and b.get_int_custom_property(_CURRENT_MODEL_ID) == model_id
            ),
            key=lambda b: b.id,
        )
        result[blessing_key] = [blessing]
        result[report_key] = [report]
        return result


def read_baseline(artifacts: List[types.Artifact]) -> Optional[Dict]:
    """The executor's side: {'report': the baseline's report.json, 'info': where it came from,
    'predictions': the glob of its predictions Parquet and 'predictions_columns' their feature
    columns' types and 'predictions_loss' the column of each example's loss, for measuring
    both models on the same examples (beam/comparison.py), or None
    and 'predictions_problem' why not}, or None without a (readable) baseline report."""
    if not artifacts:
        return None
    import json
    import os

    import tensorflow as tf
    from absl import logging

    artifact = artifacts[0]
    path = os.path.join(artifact.uri, 'report.json')
    try:
        with tf.io.gfile.GFile(path) as f:
            data = json.load(f)
    except (tf.errors.OpError, ValueError) as e:
        logging.warning('Baseline report %s could not be read (%s): no comparison.', path, e)
        return None
    from blindspot.error_analysis.beam.comparison import predictions_of

    predictions, columns, loss, problem = predictions_of(artifact.uri, data)
    if problem:
        logging.warning('Baseline predictions not measured: %s.', problem)
    return {
        'report': data,
        'predictions': predictions,
        'predictions_columns': columns,
        'predictions_loss': loss,
        'predictions_problem': problem or None,
        'info': {
            'baseline_label': 'the latest blessed model',
            'baseline_uri': artifact.uri,
            'baseline_artifact_id': artifact.id,
        },
    }
