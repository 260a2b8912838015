"""One import name: the repository's folders install as one package, `blindspot` (setup.py maps
components/ -> blindspot, pipelines/ -> blindspot.pipelines, review/ -> blindspot.review,
kubeflow/ -> blindspot.kubeflow), importing it changes nothing in the user's process, and
nothing is imported twice under two names.

The clean-venv install (a fresh venv, `pip install .` with no lock, then the import) downloads
GBs and takes minutes: `make test-install` (marker `install`), not `make test`.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OLD_NAMES = ('components', 'pipelines', 'review', 'kubeflow')
FOLDERS = {
    'blindspot': 'components',
    'blindspot.pipelines': 'pipelines',
    'blindspot.review': 'review',
    'blindspot.kubeflow': 'kubeflow',
}


def _python(code: str, env=None, cwd=REPO) -> str:
    done = subprocess.run(
        [sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_wheel_has_one_top_level_name(tmp_path):
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '-q',
            '--no-deps',
            '--no-build-isolation',
            '-w',
            str(tmp_path),
            str(REPO),
        ],  # fmt: skip
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob('blindspot-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = z.read(next(n for n in names if n.endswith('top_level.txt'))).decode()
    assert top_level.split() == ['blindspot']
    assert {n.split('/')[0] for n in names} == {
        'blindspot',
        wheel.name.split('-py')[0] + '.dist-info',
    }
    # Every package of every folder is in it (setup.py finds them; none is listed by hand).
    for name, folder in FOLDERS.items():
        for init in (REPO / folder).rglob('__init__.py'):
            relative = init.relative_to(REPO / folder).as_posix()
            assert f'{name.replace(".", "/")}/{relative}' in names, relative
    assert 'blindspot/ErrorAnalysisReport' not in names
    assert 'blindspot/error_analysis/wiring.py' in names


def test_import_changes_nothing_in_the_users_process():
    """A user's process: nothing set for TensorFlow. Importing the public names (and the
    executor) sets no environment variable and chooses no Keras."""
    env = {k: v for k, v in os.environ.items() if k != 'TF_USE_LEGACY_KERAS'}
    out = _python(
        'import os, sys\n'
        'before = dict(os.environ)\n'
        'from blindspot import ErrorAnalysis, Settings, latest_blessed_report, '
        'slice_gate_condition, ErrorAnalysisReport\n'
        'import blindspot.error_analysis.executor\n'
        'changed = sorted(k for k in set(os.environ) | set(before)\n'
        '                 if os.environ.get(k) != before.get(k) and not k.startswith(("TF2_", "KMP_", "TPU_")))\n'
        'print(changed, "tf_keras" in sys.modules, "tensorflow_transform" in sys.modules)\n',
        env=env,
        cwd='/',
    )
    assert out.split('\n')[-2] == '[] False False', out


def test_light_names_import_without_tensorflow():
    out = _python(
        'import sys\n'
        'import blindspot\n'
        'from blindspot import Settings\n'
        'from blindspot.error_analysis.report import build\n'
        'print(sorted(m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules))\n',
        cwd='/',
    )
    assert out.strip() == '[]'


def test_public_api():
    import blindspot

    assert set(blindspot.__all__) >= {
        'ErrorAnalysis',
        'Settings',
        'latest_blessed_report',
        'slice_gate_condition',
        'ErrorAnalysisReport',
    }
    assert blindspot.ErrorAnalysisReport.TYPE_NAME == 'blindspot.ErrorAnalysisReport'
    from tfx.utils.import_utils import import_class_by_path

    # Kubeflow V2 imports the artifact class by its TYPE_NAME in the container.
    assert import_class_by_path('blindspot.ErrorAnalysisReport') is blindspot.ErrorAnalysisReport
    with pytest.raises(AttributeError):
        blindspot.no_such_name  # noqa: B018


def test_every_module_imports_under_one_name_only():
    """From the repository root (as pytest and the runners run), import every module of the
    package: each file is loaded once, under blindspot.*; no old name is imported. (Libraries
    in a virtual environment inside the repository, as `make` creates it, are not ours.)"""
    code = (
        'import importlib, pkgutil, sys\n'
        'import blindspot\n'
        'names = ["blindspot"]\n'
        'for pkg in ("blindspot", "blindspot.pipelines", "blindspot.review", "blindspot.kubeflow"):\n'
        '    module = importlib.import_module(pkg)\n'
        '    names += [m.name for m in pkgutil.walk_packages(module.__path__, pkg + ".")]\n'
        'for name in names:\n'
        '    if name.endswith("__main__"):\n'
        '        continue\n'
        '    importlib.import_module(name)\n'
        'files = {}\n'
        'for name, module in list(sys.modules.items()):\n'
        '    path = getattr(module, "__file__", None)\n'
        '    if path and path.startswith(sys.argv[1]) and "site-packages" not in path:\n'
        '        files.setdefault(path, []).append(name)\n'
        'print(len(names))\n'
        'for path, loaded in sorted(files.items()):\n'
        '    print(path, *loaded)\n'
    )
    done = subprocess.run(
        [sys.executable, '-c', code, str(REPO) + os.sep],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, 'PYTHONPATH': str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert int(lines[0]) > 80
    for line in lines[1:]:
        path, *loaded = line.split()
        assert len(loaded) == 1, line  # one file, one module
        assert loaded[0].split('.')[0] == 'blindspot', line
        folder = Path(path).relative_to(REPO).parts[0]
        assert folder in OLD_NAMES, line


def test_beam_pickles_resolve_through_the_package():
    """A DoFn of the component pickled with Beam's pickler names blindspot.*, and a fresh
    interpreter (a Beam worker) resolves it from the installed package."""
    from apache_beam.internal import pickler

    from blindspot.error_analysis.beam import analysis

    payload = pickler.dumps(analysis._TrainRows)
    assert b'components.' not in pickler.loads(payload).__module__.encode()
    code = (
        'import sys\n'
        'from apache_beam.internal import pickler\n'
        'cls = pickler.loads(sys.stdin.buffer.read())\n'
        'print(cls.__module__, cls.__name__)\n'
    )
    done = subprocess.run([sys.executable, '-c', code], input=payload, capture_output=True, cwd='/')
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.decode().split() == [
        'blindspot.error_analysis.beam.analysis',
        '_TrainRows',
    ]


def test_no_old_name_left():
    """tests/apply_dropin.py (the one-name rewrite that made this layout) finds nothing
    left to rewrite: no old top-level name came back."""
    script = REPO / 'tests' / 'apply_dropin.py'
    done = subprocess.run(
        [sys.executable, str(script), str(REPO), '--check', '--no-ruff'],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.install
def test_clean_venv_install(tmp_path):
    """A fresh venv, `pip install` of the repository with no lock (PyPI resolves TFX 1.16's
    set), then the import a user writes; only blindspot at the top level, and neither kfp nor
    mlxtend (extras). Minutes and GBs: `make test-install`."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    # The pip that venv bundles (23.0 with Python 3.10) backtracks for an hour through TFX's
    # Google Cloud dependencies; a current one resolves them in seconds.
    subprocess.run([str(python), '-m', 'pip', 'install', '-q', '--upgrade', 'pip'], check=True)
    start = time.monotonic()
    done = subprocess.run(
        [str(python), '-m', 'pip', 'install', '-q', str(REPO)], capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    out = subprocess.run(
        [str(python), '-c', 'from blindspot import ErrorAnalysis; print(ErrorAnalysis.__name__)'],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and out.stdout.strip() == 'ErrorAnalysis', out.stderr[-3000:]
    site = next((venv / 'lib').glob('python3.*/site-packages'))
    (info,) = site.glob('blindspot-*.dist-info')
    assert (info / 'top_level.txt').read_text().split() == ['blindspot']
    assert not [
        n
        for n in ('components', 'pipelines', 'review', 'kubeflow', 'kfp', 'mlxtend')
        if (site / n).exists()
    ]
    print(f'clean venv: pip install {seconds:.0f} s')
    shutil.rmtree(venv, ignore_errors=True)


def test_folders_map_to_the_package():
    import blindspot
    import blindspot.kubeflow
    import blindspot.pipelines
    import blindspot.review  # noqa: F401

    for name, folder in FOLDERS.items():
        module = sys.modules[name]
        assert Path(module.__file__).resolve().parent == (REPO / folder).resolve(), name
    assert importlib.util.find_spec('blindspot.error_analysis') is not None
