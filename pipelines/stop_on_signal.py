"""Stopping a local run on Ctrl-C (SIGINT) or SIGTERM: within moments, with one line, exit
status 128 + the signal (130 for Ctrl-C), no traceback.

Python's default turns SIGINT into a KeyboardInterrupt raised in whatever code runs at that
moment; TensorFlow's weakref callbacks swallow it ("Exception ignored in ...") and the run
went on to train, evaluate and push, with a 250-line traceback on the second Ctrl-C. Here the
Python handler does nothing; the signal's C handler also writes the signal number to a wakeup
pipe, and a watcher thread, which runs even while the main thread is inside TensorFlow or Beam
code, calls `on_signal` (which records the interruption and returns the line to print),
prints it and ends the process with os._exit. Further signals meanwhile are ignored; if
`on_signal` hangs (a locked store), the process still ends after `grace_seconds`.
"""

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_now(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


@contextlib.contextmanager
def exit_on_signal(on_signal: Callable[[int], str], grace_seconds: float = 15.0) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM end the process as described above. Outside the main
    thread (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    stopping = threading.Lock()

    def stop(signum: int) -> None:
        if not stopping.acquire(blocking=False):
            return
        timer = threading.Timer(grace_seconds, _exit_now, args=(128 + signum,))
        timer.daemon = True
        timer.start()
        try:
            line = on_signal(signum)
        except Exception as e:  # the interruption must end the process whatever happens
            line = f'✗ stopped by {signal.Signals(signum).name}; recording it failed: {e}'
        print(f'\n{line}', file=sys.stderr, flush=True)
        _exit_now(128 + signum)

    def watch() -> None:
        while True:
            data = os.read(read_fd, 64)
            if not data:  # the write end closed: the run is over
                return
            for signum in data:
                if signum in STOP_SIGNALS:
                    stop(signum)

    previous = {s: signal.signal(s, lambda signum, frame: None) for s in STOP_SIGNALS}
    previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name='stop-on-signal', daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(write_fd)
        watcher.join(timeout=5)
        os.close(read_fd)
