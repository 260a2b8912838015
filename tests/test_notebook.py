"""notebooks/review.ipynb runs top to bottom, headless, on a real run (the taxi_run fixture),
with TFMA's optional widgets on (BLINDSPOT_TFMA_WIDGETS=1, as `make notebook-classic` sets it).

The kernel is the interpreter running the tests (the project's venv), from a kernelspec written
here, so a user-level 'python3' kernel cannot stand in for it. Blindspot's views are HTML and
are checked for their numbers here; widgets need a notebook front end to draw (headless they are
only recorded, the code that loads their data runs for real): tests/test_browser.py draws both.
"""

import json
import os
import sys
from pathlib import Path

import pytest

from blindspot.error_analysis.report.markup import escape
from blindspot.pipelines.taxi import features as taxi_features

NOTEBOOK = Path(__file__).resolve().parent.parent / 'notebooks' / 'review.ipynb'
KERNEL = 'blindspot-test-venv'
TIMEOUT = 600


def write_venv_kernel(jupyter_dir: Path, name: str = KERNEL) -> str:
    """A kernelspec `name` under `jupyter_dir`/kernels running this interpreter (the venv), so
    that with JUPYTER_PATH=jupyter_dir no other 'python3' can stand in for it."""
    spec_dir = jupyter_dir / 'kernels' / name
    spec_dir.mkdir(parents=True)
    (spec_dir / 'kernel.json').write_text(
        json.dumps(
            {
                'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                'display_name': 'Blindspot venv (tests)',
                'language': 'python',
            }
        )
    )
    return name


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
    return write_venv_kernel(tmp_path / 'jupyter')


def _text(output) -> str:
    if output.get('output_type') == 'stream':
        return output.get('text', '')
    data = output.get('data', {})
    return data.get('text/plain', '') + data.get('text/html', '') + data.get('text/markdown', '')


def test_review_notebook_runs_headless(taxi_run, venv_kernel, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from blindspot import review

    monkeypatch.setenv('BLINDSPOT_OUTPUT_DIR', os.path.abspath(taxi_run['config'].output_dir))
    monkeypatch.setenv('BLINDSPOT_TFMA_WIDGETS', '1')
    monkeypatch.delenv('BLINDSPOT_RUN', raising=False)
    monkeypatch.delenv('BLINDSPOT_PIPELINE', raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell('import sys; print("KERNEL", sys.executable)'))
    NotebookClient(
        nb,
        kernel_name=venv_kernel,
        timeout=TIMEOUT,
        resources={'metadata': {'path': str(NOTEBOOK.parent)}},
    ).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    # Nothing on stderr: no library warnings or TensorFlow chatter in the cells.
    assert not [o for o in outputs if o.get('name') == 'stderr'], [
        o['text'] for o in outputs if o.get('name') == 'stderr'
    ]
    text = '\n'.join(_text(o) for o in outputs)
    assert f'KERNEL {sys.executable}' in text
    r = review.Review(taxi_run['config'].output_dir)
    run = r.run()
    assert f'run #{run.number} {run.run_id}' in text
    report = run.report_json()
    for line in run.insights():
        assert escape(line) in text
    for past in r.runs():
        assert past.run_id in text  # the runs table
    overall = next(row for row in report['tfma'] if not row['features'])['metrics']
    assert f'{overall["binary_accuracy"]:.4g}' in text  # TFMA's metrics, overall
    assert text.count('aria-label="calibration, ') >= 1 and 'aria-label="ROC, Overall"' in text
    assert 'aria-label="overall metrics by run"' in text
    for s in report['slices']['slices']:
        if s['held']:
            assert escape(s['slice']) in text  # each finding, with its mistakes
            for row in (s.get('examples') or {}).get('rows', [])[:3]:
                assert row['example_id'] in text
    # TFMA widgets (the optional cell): one per declared slicing spec, a plot, a time series.
    widgets = [
        o for o in outputs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})
    ]
    assert len(widgets) == len(taxi_features.SLICE_FEATURES) + 2
