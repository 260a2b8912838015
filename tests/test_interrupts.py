"""Runs that are interrupted, killed or doubled: real pipeline runs in subprocesses, each
stopped by a signal while a chosen component's execution is RUNNING in ML Metadata.

One output folder takes, in order (a soak of 3 interrupted and 3 complete runs):
  A complete;  B kill -9 in ErrorAnalysis (an orphan);  C Ctrl-C in Trainer, after sweeping
  B's orphan, with a second run refused meanwhile;  D kill -9 in Transform (swept by
  `history`);  E and F complete.
Then the store must be consistent: no RUNNING execution, every live artifact on disk, no
folder of a cancelled execution left, one log per run, `history` and `compare` working.
"""

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.conftest import hold_run_lock, write_sample

REPO = Path(__file__).resolve().parent.parent
ROWS = 300
# --min-accuracy 0: A's 5-step model is blessed whatever it learned, so B re-runs the Evaluator
# and ErrorAnalysis against it (the sequence below relies on that).
RUN_ARGS = ['--train-steps', '5', '--eval-steps', '2', '--min-accuracy', '0']
STOP_SECONDS = 10.0  # a stopped run must end within this (it takes well under 1 s)
RUN_TIMEOUT = 900


@dataclasses.dataclass
class Finished:
    pid: int
    status: int
    stdout: str
    stderr: str
    seconds_after_signal: Optional[float] = None

    @property
    def run_id(self) -> str:
        return re.search(r'^Running \S+ run (\S+) ', self.stdout, re.M).group(1)

    def errors(self) -> List[str]:
        """stderr without the import-time warnings of TensorFlow and Google libraries."""
        noise = ('Warning', 'warnings.warn', 'cuda_', 'gcs_utils', 'cpu_feature_guard')
        return [
            line for line in self.stderr.splitlines() if line and not any(n in line for n in noise)
        ]


def _start(out: Path, data: Path, logs: Path, name: str, *args: str) -> subprocess.Popen:
    """A local run in its own process, its output in files (pipes could fill and block it),
    unbuffered (a killed run's lines are kept)."""
    argv = [sys.executable, 'local_runner.py', '--data-root', str(data), '--output-dir', str(out)]
    return subprocess.Popen(
        argv + RUN_ARGS + list(args),
        cwd=REPO,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'},
        stdout=open(logs / f'{name}.out', 'w'),
        stderr=open(logs / f'{name}.err', 'w'),
    )


def _finish(
    proc: subprocess.Popen, logs: Path, name: str, timeout: float = RUN_TIMEOUT
) -> Finished:
    status = proc.wait(timeout=timeout)
    return Finished(
        proc.pid, status, (logs / f'{name}.out').read_text(), (logs / f'{name}.err').read_text()
    )


def _running(out: Path) -> Dict[str, object]:
    """{component: execution} of the executions RUNNING in the store now."""
    from ml_metadata.proto import metadata_store_pb2

    from blindspot.review import metadata

    if not (out / 'metadata.sqlite').exists():
        return {}
    store = metadata.open_store(str(out))
    return {
        metadata.node_id(store, e): e
        for e in store.get_executions()
        if e.last_known_state == metadata_store_pb2.Execution.RUNNING
    }


def _wait_running(proc: subprocess.Popen, out: Path, component: str, with_output: bool = False):
    """The execution of `component` once it is RUNNING in ML Metadata (and, with_output, has
    its output folder), a moment later so that the executor is at work."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f'the run ended before {component} ran'
        execution = _running(out).get(component)
        if execution is not None and (
            not with_output or _output_dirs(out, component, execution.id)
        ):
            time.sleep(2)
            return execution
        time.sleep(0.3)
    raise AssertionError(f'{component} never ran')


def _output_dirs(out: Path, component: str, execution_id: int) -> List[Path]:
    node = out / 'pipelines' / 'blindspot-taxi' / component
    return [p for p in node.glob(f'*/{execution_id}') if p.parent.name != '.system']


def _execution(out: Path, execution_id: int):
    from blindspot.review import metadata

    return metadata.open_store(str(out)).get_executions_by_id([execution_id])[0]


def _cli(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, 'local_runner.py', *args, '--output-dir', str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope='module')
def soak(tmp_path_factory):
    """Runs the sequence in the module docstring and keeps what each step showed."""
    from ml_metadata.proto import metadata_store_pb2

    root = tmp_path_factory.mktemp('interrupts')
    data = write_sample(root / 'data', rows=ROWS)
    out, logs = root / 'out', root / 'console'
    logs.mkdir()
    seen: Dict[str, object] = {'out': out}

    seen['A'] = _finish(_start(out, data, logs, 'A'), logs, 'A')
    assert seen['A'].status == 0, seen['A'].errors()

    # B: the same inputs re-run Evaluator and ErrorAnalysis (A's model is now the baseline).
    b = _start(out, data, logs, 'B')
    execution = _wait_running(b, out, 'ErrorAnalysis', with_output=True)
    b.send_signal(signal.SIGKILL)
    seen['B'] = _finish(b, logs, 'B')
    seen['B_execution'] = execution.id
    seen['B_left_running'] = _execution(out, execution.id).last_known_state == (
        metadata_store_pb2.Execution.RUNNING
    )
    seen['B_left_folders'] = [str(p) for p in _output_dirs(out, 'ErrorAnalysis', execution.id)]

    # C: new train steps re-run the Trainer; its start sweeps B's orphan. While it trains, a
    # second run on the folder is refused.
    c = _start(out, data, logs, 'C', '--train-steps', '6')
    execution = _wait_running(c, out, 'Trainer')
    seen['C_execution'] = execution.id
    started = time.monotonic()
    seen['second'] = _finish(_start(out, data, logs, 'second'), logs, 'second', timeout=60)
    seen['second_seconds'] = time.monotonic() - started
    assert c.poll() is None, 'C ended before it was interrupted'
    sent = time.monotonic()
    c.send_signal(signal.SIGINT)
    c.wait(timeout=STOP_SECONDS)
    seen['C'] = _finish(c, logs, 'C')
    seen['C'].seconds_after_signal = time.monotonic() - sent

    # D: no cache, killed in Transform (Beam running in process; CsvExampleGen on 300 rows is
    # over in about a second, too soon to aim at); left for `history`.
    d = _start(out, data, logs, 'D', '--no-cache')
    execution = _wait_running(d, out, 'Transform')
    d.send_signal(signal.SIGKILL)
    seen['D'] = _finish(d, logs, 'D')
    seen['D_execution'] = execution.id
    seen['history_after_D'] = _cli(out, 'history')

    for name in ('E', 'F'):
        seen[name] = _finish(_start(out, data, logs, name), logs, name)
        assert seen[name].status == 0, seen[name].errors()
    return seen


def test_ctrl_c_stops_the_run_in_one_line_and_cancels_it(soak):
    c, out = soak['C'], soak['out']
    assert c.status == 130
    assert c.seconds_after_signal < STOP_SECONDS
    errors = c.errors()
    assert 'Traceback' not in c.stderr and 'KeyboardInterrupt' not in c.stderr
    stopped = [line for line in errors if line.startswith('✗')]
    assert stopped == [
        f'✗ stopped (Ctrl-C) during Trainer: run {c.run_id} is marked cancelled in ML Metadata '
        f'and its partial outputs removed; log: {out}/logs/blindspot-taxi-'
        f'{c.run_id.replace(":", "")}.log'
    ]
    from ml_metadata.proto import metadata_store_pb2

    from blindspot.review import interrupts

    trainer = _execution(out, soak['C_execution'])
    assert trainer.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert 'interrupted by Ctrl-C' in interrupts.cancellation_note(trainer)
    assert _output_dirs(out, 'Trainer', trainer.id) == []


def test_orphan_swept_at_the_start_of_the_next_run(soak):
    """kill -9 leaves the execution RUNNING and a partial report folder; the next run cancels
    it, naming the killed process, and removes the folder."""
    from ml_metadata.proto import metadata_store_pb2

    from blindspot.review import interrupts

    out, b = soak['out'], soak['B']
    assert b.status == -signal.SIGKILL
    assert soak['B_left_running'] and soak['B_left_folders']
    orphan = _execution(out, soak['B_execution'])
    assert orphan.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert f'left RUNNING by PID {b.pid} on ' in interrupts.cancellation_note(orphan)
    notes = [line for line in soak['C'].errors() if line.startswith('note: ')]
    assert any(f'run {b.run_id}: ErrorAnalysis was left RUNNING by PID {b.pid}' in n for n in notes)
    assert not any(Path(p).exists() for p in soak['B_left_folders'])


def test_history_sweeps_orphans_and_shows_them_cancelled(soak):
    history, d = soak['history_after_D'], soak['D']
    assert history.returncode == 0, history.stderr
    assert f'Transform was left RUNNING by PID {d.pid}' in history.stderr
    rows = {line.split()[3]: line for line in history.stdout.splitlines()[2:]}
    assert rows[d.run_id].endswith('(cancelled at Transform)')
    assert rows[soak['B'].run_id].endswith('(cancelled at ErrorAnalysis)')
    assert rows[soak['C'].run_id].endswith('(cancelled at Trainer)')


def test_second_run_refused_while_one_runs(soak):
    second, c = soak['second'], soak['C']
    assert second.status == 2
    assert len(second.errors()) == 1
    assert re.fullmatch(
        rf'error: {re.escape(str(soak["out"]))} is in use by blindspot-taxi run '
        rf'{re.escape(c.run_id)} \(PID {c.pid} on {re.escape(socket.gethostname())}, started '
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\): wait for it to finish, or pass another --output-dir',
        second.errors()[0],
    ), second.errors()
    assert soak['second_seconds'] < 5


def test_summary_and_log_belong_to_this_run(soak):
    e, out = soak['E'], soak['out']
    assert re.search(rf'^== blindspot-taxi: run {re.escape(e.run_id)} finished', e.stdout, re.M)
    logs = sorted(p.name for p in (out / 'logs').iterdir())
    expected = sorted(f'blindspot-taxi-{soak[n].run_id.replace(":", "")}.log' for n in 'ABCDEF')
    assert logs == expected


def test_soak_leaves_a_consistent_store(soak):
    from ml_metadata.proto import metadata_store_pb2

    from blindspot.pipelines import preflight
    from blindspot.review import metadata

    out = soak['out']
    preflight.check_metadata_store(str(out))  # SQLite's own check passes
    store = metadata.open_store(str(out))
    unfinished = [
        e
        for e in store.get_executions()
        if e.last_known_state
        in (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.NEW)
    ]
    assert unfinished == []
    for artifact in store.get_artifacts():
        if artifact.state == metadata_store_pb2.Artifact.LIVE:
            assert os.path.exists(artifact.uri), artifact
    for execution in store.get_executions():
        if execution.last_known_state == metadata_store_pb2.Execution.CANCELED:
            component = metadata.node_id(store, execution)
            assert _output_dirs(out, component, execution.id) == [], component

    history = _cli(out, 'history')
    assert history.returncode == 0, history.stderr
    assert '6 run(s)' in history.stdout and '(running)' not in history.stdout
    compare = _cli(out, 'compare')
    assert compare.returncode == 0, compare.stderr
    # By default `compare` takes the latest run against the run whose report it was compared
    # with (the stored baseline: here A's, the last blessed model's) or, without one, the
    # latest earlier run with another report (E): never a cancelled or killed run.
    compared = re.search(
        rf'run #6 {soak["F"].run_id} compared with run #(\d+) (\S+)', compare.stdout
    )
    assert compared, compare.stdout
    assert (compared.group(1), compared.group(2)) in (
        ('1', soak['A'].run_id),
        ('5', soak['E'].run_id),
    ), compare.stdout


def _store_with_a_running_trainer(out: Path) -> int:
    """A real ML Metadata store holding one run whose Trainer execution is RUNNING, recorded
    the way TFX records it (pipeline, pipeline_run and node contexts), and its output folder."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    out.mkdir(parents=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(out / 'metadata.sqlite')
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    store = metadata_store.MetadataStore(config)
    contexts = []
    for type_name, name in (
        ('pipeline', 'blindspot-taxi'),
        ('pipeline_run', '2026-01-02T03:04:05.000001'),
        ('node', 'blindspot-taxi.Trainer'),
    ):
        type_id = store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
        contexts.append(metadata_store_pb2.Context(type_id=type_id, name=name))
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name='Trainer')),
        last_known_state=metadata_store_pb2.Execution.RUNNING,
    )
    execution_id, _, _ = store.put_execution(execution, [], contexts)
    (out / 'pipelines' / 'blindspot-taxi' / 'Trainer' / 'model' / str(execution_id)).mkdir(
        parents=True
    )
    return execution_id


def test_history_leaves_a_live_runs_executions_alone(tmp_path):
    """While a process holds the run lock, a RUNNING execution may be its own: `history` shows
    it running. Once that process is gone, `history` cancels it and removes its folder."""
    from ml_metadata.proto import metadata_store_pb2

    out = tmp_path / 'out'
    execution_id = _store_with_a_running_trainer(out)
    holder = hold_run_lock(out)
    try:
        live = _cli(out, 'history')
        assert live.returncode == 0, live.stderr
        assert '(running)' in live.stdout and 'note:' not in live.stderr
        assert _execution(out, execution_id).last_known_state == (
            metadata_store_pb2.Execution.RUNNING
        )
    finally:
        holder.kill()
        holder.wait()
    after = _cli(out, 'history')
    assert after.returncode == 0, after.stderr
    assert f'Trainer was left RUNNING by PID {holder.pid} on {socket.gethostname()}' in after.stderr
    assert '(cancelled at Trainer)' in after.stdout
    assert _execution(out, execution_id).last_known_state == metadata_store_pb2.Execution.CANCELED
    assert _output_dirs(out, 'Trainer', execution_id) == []
