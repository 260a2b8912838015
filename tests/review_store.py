"""Builds an output folder with 20 taxi runs of every kind, to time `history`, `compare` and
`review-sheet` on (docs/review.md, "Timings"). Not part of `make test`: about 15 minutes on two
cores, most of it TFX start-up, as only five of the runs train or evaluate anything.

    .venv/bin/python -m tests.review_store /tmp/review-store    # then:
    time .venv/bin/python local_runner.py history --output-dir /tmp/review-store/out

The runs, on the first 2,000 rows of the taxi sample (as tests/conftest.py's gated runs):
1 clean data, blessed and pushed; 2 every other Saturday label flipped, blessed but blocked by
the slice gate; 3 the same with the gate off, pushed; 4 a 0.99 accuracy threshold, not blessed;
5 stopped by Ctrl-C (SIGINT) once its Evaluator has started, cancelled; 6-20 run 3 again, every
component served from the cache.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from tests.conftest import GATED_ROWS, flip_label_on_day, write_sample

REPO = Path(__file__).resolve().parent.parent
RUNS = 20


def _run(out: Path, data: Path, *flags: str) -> None:
    """One run of the real runner, in its own process, as a user starts it."""
    subprocess.run(
        [sys.executable, 'local_runner.py', '--output-dir', str(out), '--data', str(data)]
        + ['--train-steps', '300', '--eval-steps', '10', '--min-slice-size', '0.1']
        + ['--max-accuracy-drop', '0.5', *flags],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _cancelled_run(out: Path, data: Path, *flags: str) -> None:
    """A run stopped with SIGINT once a component that is not served from the cache starts
    (--no-cache: the Evaluator or earlier), as Ctrl-C does."""
    runner = subprocess.Popen(
        [sys.executable, 'local_runner.py', '--output-dir', str(out), '--data', str(data)]
        + ['--train-steps', '300', '--eval-steps', '10', '--no-cache', *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in runner.stdout:
        if '▶ Trainer' in line:  # its start line: stop it while it trains
            time.sleep(3)
            runner.send_signal(signal.SIGINT)
            break
    runner.communicate(timeout=120)


def build(root: Path) -> Path:
    """The output folder root/out with RUNS runs; returns it."""
    out = root / 'out'
    clean = write_sample(root / 'clean', GATED_ROWS)
    corrupted = write_sample(root / 'corrupted', GATED_ROWS, edit=flip_label_on_day)
    steps: List = [
        lambda: _run(out, clean, '--min-accuracy', '0.5'),
        lambda: _run(out, corrupted, '--min-accuracy', '0.5'),
        lambda: _run(out, corrupted, '--min-accuracy', '0.5', '--slice-gate', 'off'),
        lambda: _run(out, corrupted, '--min-accuracy', '0.99', '--slice-gate', 'off'),
        lambda: _cancelled_run(out, corrupted, '--min-accuracy', '0.5'),
    ]
    while len(steps) < RUNS:
        steps.append(lambda: _run(out, corrupted, '--min-accuracy', '0.5', '--slice-gate', 'off'))
    for i, step in enumerate(steps, start=1):
        started = time.time()
        step()
        print(f'run {i}/{RUNS}: {time.time() - started:.0f} s', flush=True)
    return out


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/review-store')))
