"""One run at a time per output folder: an exclusive lock on OUTPUT_DIR/run.lock.

Two runs writing one ML Metadata store and one pipeline root at once misreport each other
(summaries, logs, models pushed without comparison), so a second run is refused, in one line
naming the holder (it does not wait: a run takes minutes, and a queue of runs nobody watches
is worse than a clear refusal). The lock is `fcntl.flock`: the kernel drops it when the holder
exits, however it exits (kill -9 included), so a lock never outlives its run. The file keeps
the holder's PID, host, run id and start time; after the holder is gone they name the process
that left executions RUNNING (see review/interrupts.py). Local disks only: flock is not
reliable on network file systems.

Light (standard library only): checked before TensorFlow is imported.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator, Optional

LOCK_FILE = 'run.lock'
# A lock held by a process that is gone from this host is a brief sweep by `history` or
# `compare` (they lock, write nothing, unlock): wait this long for it before refusing.
_SWEEP_WAIT_SECONDS = 5.0


class OutputFolderBusy(RuntimeError):
    """Another run holds the output folder; the message names it and the way out."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the lock of an output folder."""

    pid: int
    host: str
    started: str  # ISO time, local
    pipeline: str = ''
    run_id: str = ''
    log_file: str = ''

    def describe(self) -> str:
        what = f'{self.pipeline} run {self.run_id}' if self.run_id else 'a run'
        started = self.started.replace('T', ' ')[:19]
        return f'{what} (PID {self.pid} on {self.host}, started {started})'

    def is_alive(self) -> Optional[bool]:
        """Whether the process still exists; None when it ran on another host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def lock_path(output_dir: str) -> Path:
    return Path(output_dir) / LOCK_FILE


def read_holder(output_dir: str) -> Optional[Holder]:
    """The holder recorded in the lock file (the current or the last one), if any."""
    try:
        data = json.loads(lock_path(output_dir).read_text())
        return Holder(
            **{f.name: data[f.name] for f in dataclasses.fields(Holder) if f.name in data}
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


class RunLock:
    """The held lock of one run; `release()` (or process exit) frees it."""

    def __init__(self, output_dir: str, fd: int, holder: Holder, previous: Optional[Holder]):
        self.output_dir = output_dir
        self.holder = holder
        self.previous = previous  # who held it before: names the process behind orphans
        self._fd: Optional[int] = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'RunLock':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(output_dir: str, pipeline: str, run_id: str, log_file: str = '') -> RunLock:
    """Locks `output_dir` for this process's run and records who holds it; OutputFolderBusy
    (naming the other run) when another run holds it."""
    path = lock_path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + _SWEEP_WAIT_SECONDS
    while not _try_flock(fd):
        other = read_holder(output_dir)
        # No holder yet: a run is writing it. A holder that is gone: a history/compare sweep
        # holds the lock for a moment. Either way, worth a short wait.
        if (other is not None and other.is_alive() is not False) or time.monotonic() > deadline:
            os.close(fd)
            raise OutputFolderBusy(
                f'{output_dir} is in use by {other.describe() if other else "another run"}: '
                'wait for it to finish, or pass another --output-dir'
            )
        time.sleep(0.1)
    previous = read_holder(output_dir)
    holder = Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.datetime.now().isoformat(timespec='seconds'),
        pipeline=pipeline,
        run_id=run_id,
        log_file=log_file,
    )
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(dataclasses.asdict(holder)).encode(), 0)
    os.fsync(fd)
    return RunLock(output_dir, fd, holder, previous)


@dataclasses.dataclass(frozen=True)
class IdleFolder:
    last_holder: Optional[Holder]  # the run that held the folder last, if any


@contextlib.contextmanager
def when_idle(output_dir: str) -> Iterator[Optional[IdleFolder]]:
    """The lock for a moment, recording no holder, when no run holds `output_dir`: yields
    IdleFolder; None while a run holds it (or it cannot be locked: nothing to sweep then)."""
    path = lock_path(output_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # no such folder, or read-only
        yield None
        return
    try:
        if not _try_flock(fd):
            yield None
            return
        try:
            yield IdleFolder(read_holder(output_dir))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
