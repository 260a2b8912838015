"""Finding runs, executions and artifacts in ML Metadata, never by guessing paths.

Light: ML Metadata only, no TensorFlow or TFX (`history`, `compare`, `review-sheet` read the
store through this in well under a second)."""

import dataclasses
import os
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from blindspot.error_analysis import files
from blindspot.pipelines import layout

PIPELINE_RUN_CONTEXT = 'pipeline_run'
PIPELINE_CONTEXT = 'pipeline'
_STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


def sqlite_path(output_dir: str) -> str:
    return os.path.join(output_dir, layout.METADATA_FILE)


def sqlite_config(output_dir: str) -> metadata_store_pb2.ConnectionConfig:
    """TFX's connection config for the local store (for the pipeline run, which imports TFX
    anyway: imported here, not at the top, so reading the store never loads TensorFlow)."""
    from tfx.orchestration import metadata as tfx_metadata

    return tfx_metadata.sqlite_metadata_connection_config(sqlite_path(output_dir))


def open_store(output_dir: str) -> metadata_store.MetadataStore:
    """The local store of an output folder; an error if the folder has none."""
    path = sqlite_path(output_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f'no metadata store at {path}: run a pipeline with --output-dir {output_dir} first'
        )
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


@dataclasses.dataclass
class ComponentRun:
    component: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    execution: metadata_store_pb2.Execution
    outputs: Dict[str, List[metadata_store_pb2.Artifact]]


def pipeline_runs(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> List[metadata_store_pb2.Context]:
    """The pipeline_run contexts of `pipeline_name`, oldest first; an error naming the
    pipelines there are if the store has no such pipeline."""
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        names = [c.name for c in store.get_contexts_by_type(PIPELINE_CONTEXT)]
        raise LookupError(
            f"no pipeline '{pipeline_name}' in this store; it has: "
            f'{", ".join(names) or "no pipelines"}'
        )
    in_pipeline = {e.id for e in store.get_executions_by_context(pipeline.id)}
    runs = [
        r
        for r in store.get_contexts_by_type(PIPELINE_RUN_CONTEXT)
        if any(e.id in in_pipeline for e in store.get_executions_by_context(r.id))
    ]
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def latest_run(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> metadata_store_pb2.Context:
    """The newest pipeline_run context of `pipeline_name`."""
    runs = pipeline_runs(store, pipeline_name)
    if not runs:
        raise LookupError(f"pipeline '{pipeline_name}' has no runs in this store")
    return runs[-1]


def node_id(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    """The component id of an execution, from its 'node' context ('<pipeline>.<id>')."""
    for context in store.get_contexts_by_execution(execution.id):
        if context.type == 'node':
            return context.name.split('.', 1)[1]
    return execution.name


def component_runs(
    store: metadata_store.MetadataStore, run: metadata_store_pb2.Context
) -> Dict[str, ComponentRun]:
    """Each component's execution in a run, with its output artifacts by output key."""
    result = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        component = node_id(store, execution)
        outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
        events = [
            e
            for e in store.get_events_by_execution_ids([execution.id])
            if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
        ]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ''
            outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        result[component] = ComponentRun(
            component, _STATE_NAMES.get(execution.last_known_state, 'UNKNOWN'), execution, outputs
        )
    return result


def output_artifact(
    runs: Dict[str, ComponentRun], component: str, key: str
) -> Optional[metadata_store_pb2.Artifact]:
    run = runs.get(component)
    if run is None or not run.outputs.get(key):
        return None
    return run.outputs[key][0]


# Custom properties that are whole numbers where they are written (set_int_custom_property):
# the report's counts, and the ModelBlessing's and PushedModel's flags. Kubeflow
# Pipelines records every number an executor reports as a double (its launcher turns the
# executor's output metadata into MLMD values that way), so these are read back as integers.
INTEGER_PROPERTIES = frozenset(
    {
        files.NUM_EXAMPLES,
        files.NUM_ERRORS,
        files.NUM_SIGNIFICANT_SLICES,
        files.TOP_SLICE_SIZE,
        files.REPORT_VERSION,
        files.NEW_FAILING_SLICES,
        files.RESOLVED_FAILING_SLICES,
        files.BASELINE_REPORT_ID,
        files.SLICE_GATE_PASSED,
        'blessed',
        'pushed',
    }
)


def custom_value(artifact: metadata_store_pb2.Artifact, key: str):
    """A custom property's value, whatever its type; None when absent. A property in
    INTEGER_PROPERTIES stored as a whole-number double (as Kubeflow records it) is an int."""
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    kind = value.WhichOneof('value')
    if kind == 'struct_value':
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    if kind == 'double_value' and key in INTEGER_PROPERTIES and value.double_value.is_integer():
        return int(value.double_value)
    return getattr(value, kind) if kind else None
