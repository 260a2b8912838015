"""The review notebook and report.html in a real browser: headless Chromium driven by selenium,
against a real nbclassic server started here on a free local port, on a real run (taxi_run).

Headless execution (test_notebook.py) cannot see whether TFMA's widgets draw; this can. Skipped
when Chromium, chromedriver, selenium or nbclassic are missing (`.ci/run` installs them).
Screenshots land in the test's temp folder."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from pipelines.taxi import features as taxi_features
from tests.test_notebook import NOTEBOOK, write_venv_kernel

REPO = NOTEBOOK.parent.parent
RUN_ALL_TIMEOUT = 900
TFMA_VIEWS = ('tfma-nb-slicing-metrics', 'tfma-nb-plot', 'tfma-nb-time-series')

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and chromedriver (apt-get install chromium chromium-driver)',
)

# Walks the page through every shadow root (TFMA's views are Polymer elements) and reports, per
# TFMA view, whether its element was upgraded (has a shadow root) and which controls it holds.
_VIEW_STATE_JS = """
const tags = arguments[0];
const controlTags = ['paper-dropdown-menu', 'paper-listbox', 'paper-checkbox', 'paper-input',
  'paper-button', 'paper-toggle-button', 'paper-radio-group', 'paper-tabs', 'select', 'input',
  'button'];
function walk(root, found) {
  for (const el of root.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (controlTags.includes(tag)) found.push(tag);
    if (el.shadowRoot) walk(el.shadowRoot, found);
  }
  return found;
}
return Array.from(document.querySelectorAll(tags.join(','))).map(el => {
  const controls = el.shadowRoot ? walk(el.shadowRoot, []) : [];
  const box = el.getBoundingClientRect();
  return {tag: el.tagName.toLowerCase(), upgraded: !!el.shadowRoot, controls: controls,
          height: box.height, cell: Array.from(document.querySelectorAll('.cell'))
            .findIndex(c => c.contains(el))};
});
"""

_WIDGET_OUTPUTS_JS = """
return Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code')
  .flatMap(c => c.output_area.outputs)
  .filter(o => o.data && o.data['application/vnd.jupyter.widget-view+json']).length;
"""

_ALL_CELLS_DONE_JS = """
const nb = window.Jupyter && Jupyter.notebook;
if (!nb || !nb.kernel || !nb.kernel.is_connected()) return false;
return nb.get_cells().every(c => c.cell_type !== 'code'
  || (c.input_prompt_number !== null && c.input_prompt_number !== '*'))
  && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f'notebook server exited with status {server.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f'notebook server did not answer {url} within {timeout:.0f} s')


@pytest.fixture
def review_notebook_url(taxi_run, tmp_path) -> Iterator[str]:
    """nbclassic (the front end TFMA's widgets draw in) serving the repository, its kernel this
    interpreter, reading the taxi_run outputs; yields the review notebook's URL."""
    pytest.importorskip('nbclassic')
    jupyter = tmp_path / 'jupyter'
    write_venv_kernel(jupyter, 'python3')  # the notebook's own kernel name, pinned to this venv
    token = os.urandom(16).hex()
    port = _free_port()
    env = {
        **os.environ,
        'JUPYTER_PATH': str(jupyter),
        'JUPYTER_CONFIG_DIR': str(tmp_path / 'jupyter-config'),
        'JUPYTER_DATA_DIR': str(tmp_path / 'jupyter-data'),
        'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jupyter-runtime'),
        'BLINDSPOT_OUTPUT_DIR': os.path.abspath(taxi_run['config'].output_dir),
    }
    for name in ('BLINDSPOT_RUN', 'BLINDSPOT_PIPELINE'):
        env.pop(name, None)
    log = open(tmp_path / 'notebook-server.log', 'w')
    server = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'nbclassic',
            '--no-browser',
            '--allow-root',
            '--ServerApp.ip=127.0.0.1',
            f'--ServerApp.port={port}',
            '--ServerApp.port_retries=0',
            f'--ServerApp.token={token}',
            f'--ServerApp.root_dir={REPO}',
            # Checkpoints in the temp folder: the test leaves nothing in the repository.
            f'--FileCheckpoints.checkpoint_dir={tmp_path / "checkpoints"}',
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f'http://127.0.0.1:{port}'
    try:
        _wait_for_server(f'{base}/api/status?token={token}', server)
        yield f'{base}/nbclassic/notebooks/notebooks/{NOTEBOOK.name}?token={token}'
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser() -> Iterator:
    """Headless Chromium (as root it needs --no-sandbox), with its console log kept."""
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'):
        options.add_argument(arg)
    options.add_argument('--window-size=1400,1000')
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _full_page_screenshot(driver, path: Path, width: int = 1400) -> None:
    """The whole page in one PNG: the window is grown to the page's height (nbclassic scrolls
    inside #site, sized to the window, so that is measured too)."""
    height = driver.execute_script(
        "const site = document.getElementById('site');"
        'const inner = site ? site.scrollHeight + site.getBoundingClientRect().top : 0;'
        'return Math.max(document.documentElement.scrollHeight, inner);'
    )
    driver.set_window_size(width, min(max(height + 100, 800), 16000))
    time.sleep(1)  # let the page lay itself out at the new size
    driver.save_screenshot(str(path))


def _wait(predicate, timeout: float, what: str, raise_on_timeout: bool = True) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(1)
    if raise_on_timeout:
        raise TimeoutError(f'{what}: not done after {timeout:.0f} s')
    return False


def _view_states(driver) -> List[Dict]:
    return driver.execute_script(_VIEW_STATE_JS, list(TFMA_VIEWS))


def test_review_notebook_tfma_views_draw_on_first_run_all(review_notebook_url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    notebook_bytes = NOTEBOOK.read_bytes()
    browser.get(review_notebook_url)
    _wait(
        lambda: browser.execute_script(
            'return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded'
            ' && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected())'
        ),
        120,
        'notebook and kernel ready',
    )
    # Outputs stay in the browser: the notebook in the repository must not be rewritten.
    browser.execute_script('Jupyter.notebook.set_autosave_interval(0)')
    browser.find_element(By.LINK_TEXT, 'Cell').click()
    browser.find_element(By.CSS_SELECTOR, '#run_all_cells > a').click()
    started = time.time()
    _wait(lambda: browser.execute_script(_ALL_CELLS_DONE_JS), RUN_ALL_TIMEOUT, 'Run All')
    run_all_seconds = time.time() - started
    # Give the views their render tick and the element definitions time to upgrade them; a
    # view still empty after that fails below with its state.
    _wait(
        lambda: all(s['upgraded'] and s['controls'] for s in _view_states(browser)),
        60,
        'every TFMA view drawn',
        raise_on_timeout=False,
    )
    states = _view_states(browser)
    _full_page_screenshot(browser, tmp_path / 'review-notebook.png')
    for i, element in enumerate(
        browser.find_elements(By.CSS_SELECTOR, ', '.join(TFMA_VIEWS)), start=1
    ):
        browser.execute_script('arguments[0].scrollIntoView()', element)
        element.screenshot(str(tmp_path / f'tfma-view-{i}-{element.tag_name}.png'))
    page_text = browser.find_element(By.TAG_NAME, 'body').text
    console = browser.get_log('browser')
    (tmp_path / 'review-notebook-console.json').write_text(json.dumps(console, indent=1))
    (tmp_path / 'review-notebook-views.json').write_text(json.dumps(states, indent=1))
    print(f'Run All took {run_all_seconds:.0f} s; screenshots in {tmp_path}')

    assert NOTEBOOK.read_bytes() == notebook_bytes
    errors = browser.execute_script(
        "return Array.from(document.querySelectorAll('.output_error')).map(e => e.innerText)"
    )
    assert not errors, errors
    assert 'Error displaying widget' not in page_text
    # Every widget the kernel sent is drawn by a TFMA element: one slicing view per declared
    # feature spec (three for taxi), the overall and worst-slice plots, two time series.
    sent = browser.execute_script(_WIDGET_OUTPUTS_JS)
    counts = {tag: sum(s['tag'] == tag for s in states) for tag in TFMA_VIEWS}
    assert len(states) == sent, (sent, counts)
    assert counts['tfma-nb-slicing-metrics'] >= len(taxi_features.SLICE_FEATURES), counts
    assert counts['tfma-nb-plot'] >= 1 and counts['tfma-nb-time-series'] >= 1, counts
    empty = [s for s in states if not (s['upgraded'] and s['controls'] and s['height'] > 50)]
    assert not empty, empty
    # The first-load race the notebook's front-end cell prevents, seen from the console.
    race = [e['message'] for e in console if 'anonymous define' in e['message']]
    assert not race, race
    failed_views = [e['message'] for e in console if 'Could not create' in e['message']]
    assert not failed_views, failed_views


def test_report_html_renders_its_charts_offline(taxi_run, browser, tmp_path):
    import review

    run = review.get_run(taxi_run['config'].output_dir)
    page = Path(run.report.uri) / 'report.html'
    browser.get(page.as_uri())
    _wait(lambda: browser.execute_script("return document.readyState === 'complete'"), 30, 'load')
    _full_page_screenshot(browser, tmp_path / 'report.png')
    console = browser.get_log('browser')
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    charts = browser.execute_script(
        """return Array.from(document.querySelectorAll('figure')).filter(f => f.querySelector('svg'))
          .map(f => {const box = f.querySelector('svg').getBoundingClientRect();
                     return {title: f.querySelector('figcaption').innerText,
                             width: box.width, height: box.height};});"""
    )
    (tmp_path / 'report-charts.json').write_text(json.dumps(charts, indent=1))
    print(f'report.html screenshot in {tmp_path}')

    assert not console, console
    assert not fetched, f'report.html fetched {fetched}'  # one self-contained file
    titles = [c['title'] for c in charts]
    assert titles[0] == 'Confusion matrix', titles
    report = run.report_json()
    declared = {tuple(r['features']) for r in report['tfma'] if r['features']}
    for features in declared:
        name = ' × '.join(features)
        assert any(t.split(' (')[0].endswith(f'by {name}') for t in titles), (name, titles)
    finding_features = {
        p['feature'] for s in report['slices']['slices'] if s['held'] for p in s['predicates']
    }
    assert finding_features
    for feature in finding_features:
        assert any(t.split(' (')[0] == f'error rate by {feature}' for t in titles), titles
    assert all(c['width'] > 200 and c['height'] > 100 for c in charts), charts
    # Wide tables scroll in their own box: the page itself never scrolls sideways.
    assert browser.execute_script(
        'return document.documentElement.scrollWidth <= window.innerWidth'
    ), 'report.html is wider than the window'
    # The inline script sorts a table by the header clicked (twice: the other way round).
    column = browser.execute_script(
        """const table = Array.from(document.querySelectorAll('table.sortable')).find(
               t => Array.from(t.rows[0].cells).some(c => c.innerText === 'confidence'));
           const col = Array.from(table.rows[0].cells).findIndex(c => c.innerText === 'confidence');
           table.rows[0].cells[col].click(); table.rows[0].cells[col].click();
           return Array.from(table.rows).slice(1).map(r => parseFloat(r.cells[col].innerText));"""
    )
    assert len(column) > 1 and column == sorted(column), column
