"""Stopping a local run on Ctrl-C (SIGINT) or SIGTERM: at any instant, within moments, with
one line, exit status 128 + the signal (130 for Ctrl-C), no traceback, no process left behind.

Python's default turns SIGINT into a KeyboardInterrupt raised in whatever code runs at that
moment, where a handler may swallow it: TensorFlow's weakref callbacks did, and so did the
CSV scan's `try: int(cell) except ValueError` (3 of 18 Ctrl-Cs lost, the run went on).
Nothing is raised here. The signal's C handler writes the signal number to a wakeup pipe; a
watcher thread, which runs even while the main thread is inside TensorFlow or Beam code,
reads it. The Python handler parks the main thread (it never returns), so the pipeline takes
no further step: the watcher waits until it is parked (or `_PARK_SECONDS`, for a main thread
deep in C code that cannot take a step before it returns to Python, where it parks), calls
`on_signal` (which records the interruption and returns the line to print), prints the line,
ends the process's children (Beam's worker processes) and the process with os._exit. Further
signals meanwhile are ignored; if `on_signal` hangs (a locked store), the process still ends
after `grace_seconds`.

`install` is the runner's first statement, before any import that can take time; the
runner then swaps in what each stage of a run says (`exit_on_signal`). Light: standard
library and psutil (imported by `install`, so stopping imports nothing).
"""

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Optional, Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PARK_SECONDS = 2.0  # how long the watcher waits for the main thread to stop taking steps


def how(signum: int) -> str:
    """The signal as a user names it: Ctrl-C for SIGINT."""
    return 'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name


def _before_the_run(signum: int) -> str:
    return f'✗ stopped ({how(signum)}) before the run started: nothing was recorded'


class _Stopper:
    """The process-wide handler: one wakeup pipe, one watcher thread, the current callback."""

    def __init__(self, on_signal: Callable[[int], str], grace_seconds: float):
        self.on_signal = on_signal
        self.grace_seconds = grace_seconds
        self.console_fd = 2
        self.parked = threading.Event()
        self.stopping = threading.Lock()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous = {s: signal.signal(s, self._park) for s in STOP_SIGNALS}
        self.previous_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.watcher = threading.Thread(target=self._watch, name='stop-on-signal', daemon=True)
        self.watcher.start()

    def _park(self, signum: int, frame) -> None:
        """The Python handler, in the main thread: take no further step. The watcher ends the
        process; if it cannot (interpreter shutting down), end it here after the grace time."""
        self.parked.set()
        time.sleep(self.grace_seconds + _PARK_SECONDS)
        _exit_now(128 + signum)

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except OSError:  # the pipe was closed: uninstalled
                return
            if not data:
                return
            for signum in data:
                if signum in STOP_SIGNALS:
                    self._stop(signum)

    def _stop(self, signum: int) -> None:
        if not self.stopping.acquire(blocking=False):
            return
        timer = threading.Timer(self.grace_seconds, _exit_now, args=(128 + signum,))
        timer.daemon = True
        timer.start()
        self.parked.wait(_PARK_SECONDS)
        try:
            line = self.on_signal(signum)
        except Exception as e:  # the interruption must end the process whatever happens
            line = f'✗ stopped ({how(signum)}); recording it failed: {type(e).__name__}: {e}'
        _flush_python_streams()
        _end_children()  # before the line: nothing of theirs after it
        with contextlib.suppress(OSError):
            os.write(self.console_fd, f'\n{line}\n'.encode())
        _exit_now(128 + signum)

    def uninstall(self) -> None:
        signal.set_wakeup_fd(self.previous_wakeup)
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        os.close(self.write_fd)
        self.watcher.join(timeout=5)
        os.close(self.read_fd)


_stopper: Optional[_Stopper] = None


def _flush_python_streams() -> None:
    """Flushes sys.stdout and sys.stderr, giving up after a second: the parked main thread
    may hold a stream's lock."""

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    flusher.join(timeout=1.0)


def _end_children() -> None:
    """Kills the process's descendants (Beam's multi-process workers, any subprocess): they
    would outlive it, printing connection errors for minutes."""
    with contextlib.suppress(Exception):
        import psutil

        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


def _exit_now(status: int) -> None:
    _end_children()
    os._exit(status)


def install(
    on_signal: Callable[[int], str] = _before_the_run,
    grace_seconds: float = 15.0,
    pending: Sequence[int] = (),
) -> None:
    """From now on, SIGINT and SIGTERM end the process as described above, saying
    `on_signal(signum)`. Call it first thing in the main thread (elsewhere it does nothing);
    `pending`: stop signals that came before (the process then stops at once). Calling it
    again only replaces `on_signal`."""
    global _stopper
    if threading.current_thread() is not threading.main_thread():
        return
    if _stopper is None:
        # psutil now, not when stopping: the main thread may then be parked inside an import
        # that psutil's own imports wait for, and the process hung until the grace time (17 s
        # after a Ctrl-C at 0.21 s, in the start-up imports).
        import psutil  # noqa: F401

        _stopper = _Stopper(on_signal, grace_seconds)
    else:
        _stopper.on_signal = on_signal
    if pending:
        signal.raise_signal(pending[0])


@contextlib.contextmanager
def exit_on_signal(
    on_signal: Callable[[int], str], console_fd: Optional[int] = None
) -> Iterator[None]:
    """While inside, a stop signal says `on_signal(signum)` (on `console_fd`, default: the
    current one); afterwards, what was said before. Installs the handler if `install` was not
    called, and then removes it on leaving. Outside the main thread it does nothing."""
    global _stopper
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed_here = _stopper is None
    if installed_here:
        install(on_signal)
    previous_signal, previous_fd = _stopper.on_signal, _stopper.console_fd
    _stopper.on_signal = on_signal
    if console_fd is not None:
        _stopper.console_fd = console_fd
    try:
        yield
    finally:
        if installed_here:
            _stopper.uninstall()
            _stopper = None
        else:
            _stopper.on_signal, _stopper.console_fd = previous_signal, previous_fd
