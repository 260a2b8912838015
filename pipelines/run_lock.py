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
# A `history` or `compare` sweep holds the lock for a moment (they lock, write nothing,
# unlock): wait this long for it before refusing.
_SWEEP_WAIT_SECONDS = 5.0
# A run records itself in the lock file right after locking it: a holder that is not the
# recorded one gets this long to show up before it is named as a process, not a run.
_RECORD_WAIT_SECONDS = 0.5


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


def _process_name(pid: int) -> str:
    """The command line of a process on this host, shortened, or '' if unreadable."""
    try:
        argv = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
    except OSError:
        return ''
    words = [
        Path(a.decode(errors='replace')).name if i == 0 else a.decode(errors='replace')
        for i, a in enumerate(argv)
        if a
    ]
    line = ' '.join(' '.join(words).split())  # one line, even for `python -c` code
    return line if len(line) <= 80 else line[:77] + '...'


def lock_owner(path: Path) -> Optional[int]:
    """The PID of the process holding an flock on `path` now, from /proc/locks (Linux; None
    elsewhere or when it cannot tell)."""
    try:
        stat = path.stat()
        locks = Path('/proc/locks').read_text().splitlines()
    except OSError:
        return None
    device = f'{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}'
    for line in locks:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == 'FLOCK' and fields[5] == device:
            pid = int(fields[4])
            return pid if pid > 0 else None
    return None


def _busy_message(output_dir: str, recorded: Optional[Holder], owner: Optional[int]) -> str:
    """Who holds the folder now: the run recorded in the lock file if it is that process;
    else the process that holds the lock (a `history` sweep, another tool)."""
    if owner is not None and (recorded is None or recorded.pid != owner):
        name = _process_name(owner)
        who = f'PID {owner}' + (f' ({name})' if name else '') + ', not a run'
    else:
        who = recorded.describe() if recorded else 'another run'
    return f'{output_dir} is in use by {who}: wait for it to finish, or pass another --output-dir'


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
    started = time.monotonic()
    while not _try_flock(fd):
        other = read_holder(output_dir)
        owner = lock_owner(path)
        if owner is None:  # no /proc/locks: a holder that is gone from this host is a sweep
            sweeping = other is None or other.is_alive() is False
            wait = _SWEEP_WAIT_SECONDS if sweeping else 0.0
        elif {'history', 'compare'} & set(_process_name(owner).split()):
            wait = _SWEEP_WAIT_SECONDS
        else:
            wait = 0.0 if other is not None and other.pid == owner else _RECORD_WAIT_SECONDS
        if time.monotonic() - started >= wait:
            os.close(fd)
            raise OutputFolderBusy(_busy_message(output_dir, other, owner))
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
