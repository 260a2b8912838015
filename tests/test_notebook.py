"""notebooks/review.ipynb runs top to bottom, headless, on a real run (the taxi_run fixture).

The kernel is the interpreter running the tests (the project's venv), from a kernelspec written
here, so a user-level 'python3' kernel cannot stand in for it. Widgets need a notebook front end
to draw; headless they are only recorded, the code that loads their data runs for real."""

import json
import os
import sys
from pathlib import Path

import pytest

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

    import review

    monkeypatch.setenv('BLINDSPOT_OUTPUT_DIR', os.path.abspath(taxi_run['config'].output_dir))
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
    text = '\n'.join(_text(o) for o in outputs)
    assert f'KERNEL {sys.executable}' in text
    run = review.get_run(taxi_run['config'].output_dir)
    assert f'run #{run.number} {run.run_id}' in text
    for line in run.insights():
        assert f'- {line}' in text
    # TFMA widgets: one per declared slicing spec, plots, time series.
    widgets = [
        o for o in outputs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})
    ]
    assert len(widgets) >= 4 + 2 + 1
    assert 'Error analysis' in text  # report.html, inline
