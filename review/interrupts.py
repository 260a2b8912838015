"""Executions a run left unfinished (Ctrl-C, kill -9, a crash): cancelled in ML Metadata with
a note, their partial output folders removed.

TFX marks an execution RUNNING when its executor starts and COMPLETE or FAILED when it ends;
a process that dies in between leaves it RUNNING for good, with half-written output folders
that no artifact points at (a report.json can look complete there). Two callers:

- the local runner's signal handler cancels the executions of the run it is executing;
- at the start of a run (and in `history`/`compare`), holding the output folder's run lock,
  every execution still RUNNING belongs to a process that no longer exists (an orphan).

The same sweep removes what a killed Pusher leaves under serving_model/ (pipelines/push.py)
and the empty stateful working folders of executions that never finished.
"""

import datetime
import os
import shutil
import socket
from pathlib import Path
from typing import List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from blindspot.pipelines import layout, push
from blindspot.pipelines.run_lock import Holder
from blindspot.review import metadata

# Custom property on a cancelled execution: who cancelled it, when and why.
NOTE_PROPERTY = 'blindspot_cancelled'
_UNFINISHED = (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.NEW)
_SYSTEM_DIR = '.system'


def open_writable(output_dir: str, create: bool = False) -> metadata_store.MetadataStore:
    """The output folder's store, read-write; `create`: made if there is none (a run makes it
    when it takes the folder, so that a stop signal always finds one to record in)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata.sqlite_path(output_dir)
    mode = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = mode.READWRITE_OPENCREATE if create else mode.READWRITE
    return metadata_store.MetadataStore(config)


def _contexts(store, execution) -> dict:
    """{context type: context name} of an execution ('node': '<pipeline>.<component>')."""
    return {c.type: c.name for c in store.get_contexts_by_execution(execution.id)}


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def remove_partial_outputs(store, output_dir: str, execution) -> List[str]:
    """Removes the folders TFX made for an unfinished execution that no artifact points at:
    <pipeline root>/<component>/<output key>/<id>/, its executor folder in .system, and its
    stateful working folder. Returns the paths removed."""
    node = _contexts(store, execution).get('node', '')
    pipeline_name, _, component = node.partition('.')
    if not component:
        return []
    node_dir = Path(layout.pipeline_root(output_dir, pipeline_name)) / component
    if not node_dir.is_dir():
        return []
    candidates = [p for p in node_dir.glob(f'*/{execution.id}') if p.parent.name != _SYSTEM_DIR]
    candidates.append(node_dir / _SYSTEM_DIR / 'executor_execution' / str(execution.id))
    if '__stateful_working_dir_index__' in execution.custom_properties:
        index = execution.custom_properties['__stateful_working_dir_index__'].string_value
        candidates.append(node_dir / _SYSTEM_DIR / 'stateful_working_dir' / index)
    removed = []
    for path in candidates:
        if not path.exists():
            continue
        if store.get_artifacts_by_uri(str(path)):  # published after all: keep it
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _cancel(store, output_dir: str, execution, note: str) -> str:
    """Marks one execution CANCELED with `note` and removes its partial outputs; returns the
    component's name."""
    execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    execution.custom_properties[NOTE_PROPERTY].string_value = note
    store.put_executions([execution])
    remove_partial_outputs(store, output_dir, execution)
    return metadata.node_id(store, execution)


def _unfinished(output_dir: str, run_id: str) -> tuple:
    """(store, the unfinished executions of run `run_id`); no store yet: (None, [])."""
    if not os.path.isfile(metadata.sqlite_path(output_dir)):
        return None, []
    store = open_writable(output_dir)
    run = store.get_context_by_type_and_name(metadata.PIPELINE_RUN_CONTEXT, run_id)
    if run is None:  # before the first component registered its execution
        return store, []
    executions = store.get_executions_by_context(run.id)
    return store, [e for e in executions if e.last_known_state in _UNFINISHED]


def cancel_run(output_dir: str, run_id: str, reason: str) -> List[str]:
    """Cancels the unfinished executions of run `run_id` (this process's run, interrupted);
    returns their components."""
    store, unfinished = _unfinished(output_dir, run_id)
    note = f'{reason} in PID {os.getpid()} on {socket.gethostname()} at {_now()}'
    return [_cancel(store, output_dir, e, note) for e in unfinished]


def fail_run(output_dir: str, run_id: str, reason: str) -> List[str]:
    """Marks FAILED the executions of run `run_id` that its failure left RUNNING (TFX could
    not record the end: a full disk, a store it could not write), with `reason` as the note;
    returns their components."""
    store, unfinished = _unfinished(output_dir, run_id)
    failed = []
    for execution in unfinished:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[NOTE_PROPERTY].string_value = f'{reason} at {_now()}'
        store.put_executions([execution])
        failed.append(metadata.node_id(store, execution))
    return failed


def sweep_orphans(output_dir: str, last_holder: Optional[Holder]) -> List[str]:
    """Cancels every unfinished execution in the store: call it holding the output folder's
    lock, when no live run can own one. `last_holder` (the lock file's last run) names the
    process that left them when it was that run. Returns one line per execution cancelled."""
    if not os.path.isfile(metadata.sqlite_path(output_dir)):
        return []
    store = open_writable(output_dir)
    lines = []
    for execution in store.get_executions():
        if (
            execution.last_known_state == metadata_store_pb2.Execution.CANCELED
            and cancellation_note(execution)
        ):
            # Cancelled on a signal while its executor still ran: it may have written more.
            remove_partial_outputs(store, output_dir, execution)
        if execution.last_known_state not in _UNFINISHED:
            continue
        run_id = _contexts(store, execution).get(metadata.PIPELINE_RUN_CONTEXT, '?')
        if last_holder is not None and last_holder.run_id == run_id:
            who = f'PID {last_holder.pid} on {last_holder.host}'
        else:
            who = 'a process'
        why = f'left RUNNING by {who}, which no longer runs; cancelled at {_now()}'
        component = _cancel(store, output_dir, execution, why)
        lines.append(f'run {run_id}: {component} was {why}; its partial outputs were removed')
    serving_root = Path(layout.serving_model_dir(output_dir, 'any')).parent
    for pipeline_dir in sorted(serving_root.glob('*')):
        for path in push.sweep(str(pipeline_dir)):
            lines.append(f'removed {path}: a model version a push left incomplete')
    _remove_empty_working_dirs(output_dir)
    return lines


def _remove_empty_working_dirs(output_dir: str) -> None:
    """Removes the empty .system/stateful_working_dir/<id>/ folders of every component: TFX
    removes them when an execution ends, so an empty one was left by a stopped execution."""
    root = Path(output_dir) / 'pipelines'
    for folder in root.glob(f'*/*/{_SYSTEM_DIR}/stateful_working_dir/*'):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def cancellation_note(execution: metadata_store_pb2.Execution) -> Optional[str]:
    """Why an execution was cancelled (None if it was not cancelled here)."""
    if NOTE_PROPERTY not in execution.custom_properties:
        return None
    return execution.custom_properties[NOTE_PROPERTY].string_value
