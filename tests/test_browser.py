"""The review notebook and report.html in a real browser: headless Chromium driven by selenium,
against real Jupyter servers started here on free local ports, on a real run (taxi_run).

JupyterLab (the front end of `make notebook`, and the one Notebook 7 is built from) runs the
notebook with Run All: every view must show its numbers (not only its controls), with no
error output, no "Error displaying widget", and no request beyond the local server. Jupyter
Notebook classic (`make notebook-classic`) runs it with TFMA's optional widgets on: they must
draw their controls (their charts need Google Charts from the internet). Skipped when Chromium,
chromedriver, selenium, jupyterlab or nbclassic are missing (`.ci/run` installs them).
Screenshots land in the test's temp folder.
"""

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

from blindspot.pipelines.taxi import features as taxi_features
from tests.test_notebook import NOTEBOOK, write_venv_kernel

REPO = NOTEBOOK.parent.parent
RUN_ALL_TIMEOUT = 600
TFMA_VIEWS = ('tfma-nb-slicing-metrics', 'tfma-nb-plot', 'tfma-nb-time-series')

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and chromedriver (apt-get install chromium chromium-driver)',
)

# JupyterLab settings for the test: no autosave (the notebook in the repository is never
# rewritten), every cell kept in the page (no virtual scrolling: the views are all read).
LAB_SETTINGS = {
    '@jupyterlab/docmanager-extension/plugin': {'autosave': False},
    '@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'},
}

# JupyterLab: the notebook is open, its kernel (the test's) connected and idle.
_LAB_READY_JS = """
const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
const kernel = document.querySelector('.jp-Toolbar-kernelName');
return document.querySelectorAll('.jp-Notebook .jp-CodeCell').length > 0 && !!status
  && status.getAttribute('data-status') === 'idle' && !!kernel
  && kernel.innerText.includes('Blindspot');
"""

# JupyterLab: Run All has started (a cell is queued or has run).
_LAB_STARTED_JS = """
return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
  .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent));
"""

# JupyterLab: every code cell has run (a number in its prompt, none pending) and the kernel is
# idle.
_LAB_DONE_JS = """
const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'));
const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))
  && (!status || status.getAttribute('data-status') === 'idle');
"""

# Per Blindspot view (review/views.py): its text, SVG charts with the points or lines drawn in
# them, and its tables' row counts. (textContent, not innerText: a front end may skip drawing
# the cells out of sight, and innerText is empty there.)
_VIEWS_JS = """
function text(v) {
  const copy = v.cloneNode(true);
  copy.querySelectorAll('style, script').forEach(e => e.remove());
  return copy.textContent;
}
return Array.from(document.querySelectorAll('.blindspot-view')).map(v => ({
  cell: Array.from(document.querySelectorAll('.jp-CodeCell, .cell')).findIndex(c => c.contains(v)),
  text: text(v),
  charts: Array.from(v.querySelectorAll('svg')).map(s => ({
    label: s.getAttribute('aria-label'),
    marks: s.querySelectorAll('circle').length + s.querySelectorAll('polyline').length
      + s.querySelectorAll('rect').length,
    width: s.getBoundingClientRect().width})),
  tables: Array.from(v.querySelectorAll('table.sortable')).map(t => t.rows.length - 1),
}));
"""

_NBCLASSIC_DONE_JS = """
const nb = window.Jupyter && Jupyter.notebook;
if (!nb || !nb.kernel || !nb.kernel.is_connected()) return false;
return nb.get_cells().every(c => c.cell_type !== 'code'
  || (c.input_prompt_number !== null && c.input_prompt_number !== '*'))
  && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
"""

# Walks the page through every shadow root (TFMA's views are Polymer elements) and reports, per
# TFMA view, whether its element was upgraded (has a shadow root) and which controls it holds.
_TFMA_VIEW_STATE_JS = """
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
          height: box.height};
});
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


def _serve(module: str, options: List[str], env: Dict, tmp_path: Path) -> Iterator[str]:
    """A Jupyter server (`python -m module`) serving the repository on a free local port, its
    kernel this interpreter; yields its base URL with the token as a query."""
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
        **env,
    }
    for name in ('BLINDSPOT_RUN', 'BLINDSPOT_PIPELINE'):
        env.pop(name, None)
    log = open(tmp_path / f'{module}-server.log', 'w')
    server = subprocess.Popen(
        [
            sys.executable,
            '-m',
            module,
            '--no-browser',
            '--allow-root',
            '--ServerApp.ip=127.0.0.1',
            f'--ServerApp.port={port}',
            '--ServerApp.port_retries=0',
            f'--ServerApp.token={token}',
            f'--ServerApp.root_dir={REPO}',
            # Checkpoints in the temp folder: the test leaves nothing in the repository.
            f'--FileCheckpoints.checkpoint_dir={tmp_path / "checkpoints"}',
            *options,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f'http://127.0.0.1:{port}'
    try:
        _wait_for_server(f'{base}/api/status?token={token}', server)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _output_dir(taxi_run) -> str:
    return os.path.abspath(taxi_run['config'].output_dir)


# The front ends built on JupyterLab's notebook: (module, its app's config name, the
# notebook's path in its URLs).
LAB_FRONT_ENDS = {
    'jupyterlab': ('jupyterlab', 'LabApp', 'lab/tree'),
    'notebook7': ('notebook', 'JupyterNotebookApp', 'notebooks'),
}


@pytest.fixture(params=list(LAB_FRONT_ENDS))
def lab_url(request, taxi_run, tmp_path) -> Iterator[str]:
    """JupyterLab, as `make notebook` starts it (no news or update checks: nothing is fetched
    from the internet), then Notebook 7 (`jupyter notebook`), with the review notebook's URL."""
    module, app, path = LAB_FRONT_ENDS[request.param]
    pytest.importorskip(module)
    settings = tmp_path / 'lab-settings'
    for plugin, values in LAB_SETTINGS.items():
        target = settings / f'{plugin}.jupyterlab-settings'
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    options = [
        f'--{app}.user_settings_dir={settings}',
        f'--{app}.workspaces_dir={tmp_path / "lab-workspaces"}',
    ]
    if module == 'jupyterlab':
        options += [
            '--LabApp.news_url=',
            '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
        ]
    env = {'BLINDSPOT_OUTPUT_DIR': _output_dir(taxi_run)}
    for base, token in _serve(module, options, env, tmp_path):
        yield f'{base}/{path}/notebooks/{NOTEBOOK.name}?reset&token={token}'


@pytest.fixture
def classic_url(taxi_run, tmp_path) -> Iterator[str]:
    """Jupyter Notebook classic, as `make notebook-classic` starts it: TFMA's widgets on."""
    pytest.importorskip('nbclassic')
    env = {'BLINDSPOT_OUTPUT_DIR': _output_dir(taxi_run), 'BLINDSPOT_TFMA_WIDGETS': '1'}
    for base, token in _serve('nbclassic', ['--NotebookApp.show_banner=False'], env, tmp_path):
        yield f'{base}/nbclassic/notebooks/notebooks/{NOTEBOOK.name}?token={token}'


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


def _full_page_screenshot(driver, path: Path, scroller: str = '', width: int = 1400) -> None:
    """The whole page in one PNG: the window is grown to the height of what scrolls
    (`scroller`, a CSS selector, when the page scrolls inside an element)."""
    height = driver.execute_script(
        'const el = arguments[0] && document.querySelector(arguments[0]);'
        'const inner = el ? el.scrollHeight + el.getBoundingClientRect().top : 0;'
        'return Math.max(document.documentElement.scrollHeight, inner);',
        scroller,
    )
    driver.set_window_size(width, min(max(height + 100, 800), 16000))
    time.sleep(2)  # let the page lay itself out at the new size
    driver.execute_script(
        'const el = arguments[0] && document.querySelector(arguments[0]);'
        'if (el) el.scrollTop = 0; window.scrollTo(0, 0);',
        scroller,
    )
    time.sleep(1)
    driver.save_screenshot(str(path))


def _wait(predicate, timeout: float, what: str, raise_on_timeout: bool = True) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # the page is still being built: ask again
            pass
        time.sleep(1)
    if raise_on_timeout:
        raise TimeoutError(f'{what}: not done after {timeout:.0f} s')
    return False


def _local_only(driver, base: str) -> List[str]:
    """The resources the page fetched from anywhere but the local server."""
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return [url for url in fetched if not url.startswith(base) and not url.startswith('data:')]


def _click_menu(driver, *labels: str) -> None:
    """JupyterLab's menu bar: the menu `labels[0]`, then its item `labels[1]`."""
    from selenium.webdriver.common.by import By

    menu, item = labels
    for element in driver.find_elements(By.CSS_SELECTOR, '.lm-MenuBar-itemLabel'):
        if element.text == menu:
            element.click()
            break
    else:
        raise LookupError(f'no menu {menu!r}')
    for element in driver.find_elements(By.CSS_SELECTOR, '.lm-Menu-itemLabel'):
        if element.text == item:
            element.click()
            return
    raise LookupError(f'no item {item!r} in the {menu} menu')


def test_review_notebook_in_jupyterlab_and_notebook7(lab_url, browser, taxi_run, tmp_path):
    from blindspot import review
    from blindspot.error_analysis.search.binning import display_value

    notebook_bytes = NOTEBOOK.read_bytes()
    base = lab_url.split('/', 3)[:3]
    base = '/'.join(base)
    browser.get(lab_url)
    _wait(lambda: browser.execute_script(_LAB_READY_JS), 120, 'notebook open, its kernel idle')
    started = time.time()
    for _ in range(3):  # a click while the page still settles can be lost: check it took
        _click_menu(browser, 'Run', 'Run All Cells')
        if _wait(lambda: browser.execute_script(_LAB_STARTED_JS), 30, 'Run All', False):
            break
    _wait(lambda: browser.execute_script(_LAB_DONE_JS), RUN_ALL_TIMEOUT, 'Run All')
    run_all_seconds = time.time() - started
    views = browser.execute_script(_VIEWS_JS)
    _full_page_screenshot(browser, tmp_path / 'jupyterlab.png', '.jp-WindowedPanel-outer')
    page_text = browser.execute_script('return document.body.textContent')
    console = browser.get_log('browser')
    (tmp_path / 'jupyterlab-console.json').write_text(json.dumps(console, indent=1))
    (tmp_path / 'jupyterlab-views.json').write_text(json.dumps(views, indent=1))
    print(f'JupyterLab Run All took {run_all_seconds:.0f} s; screenshots in {tmp_path}')

    assert NOTEBOOK.read_bytes() == notebook_bytes
    errors = browser.execute_script(
        'return Array.from(document.querySelectorAll(\'[data-mime-type="application/'
        'vnd.jupyter.stderr"], .jp-OutputArea-output.jp-mod-error\')).map(e => e.textContent)'
    )
    assert not errors, errors  # no traceback, and no library noise on stderr either
    for problem in ('Error displaying widget', 'Javascript Error', 'require is not defined'):
        assert problem not in page_text
    assert not _local_only(browser, base), _local_only(browser, base)
    # No script error but the front end's own (its bundles under /static/ and /extensions/):
    # the views' scripts run clean.
    ours = [
        e['message']
        for e in console
        if e['level'] == 'SEVERE'
        and not any(p in e['message'] for p in ('/static/', '/extensions/'))
    ]
    assert not ours, ours
    # The page keeps its own style: a view's style sheet is scoped to the view.
    assert browser.execute_script('return getComputedStyle(document.body).maxWidth') == 'none'

    r = review.Review(taxi_run['config'].output_dir)
    run = r.run()
    report = run.report_json()
    text = '\n'.join(v['text'] for v in views)
    # Runs: one row per run, its outcome and accuracy.
    assert views[0]['tables'] == [len(r.runs())]
    for past in r.runs():
        assert past.run_id in views[0]['text']
    assert f'{run.accuracy():.3f}' in views[0]['text'] and run.outcome in views[0]['text']
    # TFMA's sliced metrics: one chart per declared slicing spec, each with its points; the
    # overall row's numbers.
    tfma_view = next(v for v in views if any('by payment_type' in c['label'] for c in v['charts']))
    assert len(tfma_view['charts']) == len(taxi_features.SLICE_FEATURES)
    assert all(c['marks'] > 0 and c['width'] > 200 for c in tfma_view['charts'])
    overall = next(row for row in report['tfma'] if not row['features'])['metrics']
    assert f'{overall["binary_accuracy"]:.4g}' in tfma_view['text']
    # TFMA's plots, overall and for the worst slice: calibration, precision-recall, ROC.
    plot_charts = [c for v in views for c in v['charts'] if c['label'].startswith(('ROC', 'cal'))]
    assert len(plot_charts) >= 4 and all(c['marks'] >= 2 for c in plot_charts), plot_charts
    # Metrics across runs: a line per metric, and each evaluation's accuracy.
    across = next(
        v for v in views if any(c['label'] == 'overall metrics by run' for c in v['charts'])
    )
    assert f'{overall["binary_accuracy"]:.4f}' in across['text']
    # The findings, what to do next, and each finding's mistakes (in a <details> block).
    held = [s for s in report['slices']['slices'] if s['held']]
    assert held and all(s['slice'] in text for s in held)
    with_examples = [s for s in held if s.get('examples')]
    for s in with_examples:
        first = s['examples']['rows'][0]
        assert first['example_id'] in browser.execute_script(
            "return Array.from(document.querySelectorAll('.blindspot-view details'))"
            '.map(d => d.textContent).join()'
        )
        assert display_value(first['features'][s['predicates'][0]['feature']]) in text
    for line in report['insights']:
        assert line in text
    # The report's confusion matrix: its counts.
    matrix = report['confusion']['matrix']
    assert all(f'{n:,}' in text for row in matrix for n in row)

    # Sorting and filtering work inside a view, and only there.
    rows_after = browser.execute_script(
        """const view = document.querySelectorAll('.blindspot-view')[0];
           const table = view.querySelector('table.sortable');
           const col = Array.from(table.rows[0].cells).findIndex(c => c.textContent === '#');
           table.rows[0].cells[col].click();
           return Array.from(table.rows).slice(1).map(r => parseInt(r.cells[col].textContent));"""
    )
    assert rows_after == sorted(rows_after, reverse=True) and len(rows_after) == len(r.runs())
    hour_rows = browser.execute_script(
        """const box = Array.from(document.querySelectorAll('.blindspot-view input.filter'))
             .find(b => b.parentNode.querySelector('table').textContent
                   .includes('trip_start_hour = '));
           box.value = '19'; box.dispatchEvent(new Event('input'));
           const table = box.parentNode.querySelector('table');
           return Array.from(table.rows).slice(1).filter(r => r.style.display !== 'none')
             .map(r => r.textContent);"""
    )
    assert hour_rows and all('19' in row for row in hour_rows), hour_rows


def test_tfma_widgets_draw_in_nbclassic(classic_url, browser, tmp_path):
    """The optional last cell, in the front end TFMA's widgets are built for: every widget the
    kernel sent is drawn by a TFMA element, with its controls."""
    from selenium.webdriver.common.by import By

    browser.get(classic_url)
    _wait(
        lambda: browser.execute_script(
            'return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded'
            ' && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected())'
        ),
        120,
        'notebook and kernel ready',
    )
    browser.execute_script('Jupyter.notebook.set_autosave_interval(0)')
    browser.find_element(By.LINK_TEXT, 'Cell').click()
    browser.find_element(By.CSS_SELECTOR, '#run_all_cells > a').click()
    started = time.time()
    _wait(lambda: browser.execute_script(_NBCLASSIC_DONE_JS), RUN_ALL_TIMEOUT, 'Run All')
    print(f'nbclassic Run All took {time.time() - started:.0f} s')
    sent_js = """return Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code')
             .flatMap(c => c.output_area.outputs)
             .filter(o => o.data && o.data['application/vnd.jupyter.widget-view+json']).length;"""

    def every_view_drawn() -> bool:
        # Widgets are created one after another: the ones drawn so far being complete is not
        # enough, as many must be drawn as the kernel sent (a loaded machine lags here).
        states = browser.execute_script(_TFMA_VIEW_STATE_JS, list(TFMA_VIEWS))
        drawn = all(s['upgraded'] and s['controls'] for s in states)
        return drawn and len(states) >= browser.execute_script(sent_js)

    _wait(every_view_drawn, 120, 'every TFMA view drawn', raise_on_timeout=False)
    states = browser.execute_script(_TFMA_VIEW_STATE_JS, list(TFMA_VIEWS))
    _full_page_screenshot(browser, tmp_path / 'nbclassic.png', '#site')
    console = browser.get_log('browser')
    (tmp_path / 'nbclassic-console.json').write_text(json.dumps(console, indent=1))
    page_text = browser.find_element(By.TAG_NAME, 'body').text

    errors = browser.execute_script(
        "return Array.from(document.querySelectorAll('.output_error')).map(e => e.innerText)"
    )
    assert not errors, errors
    assert 'Error displaying widget' not in page_text
    sent = browser.execute_script(sent_js)
    counts = {tag: sum(s['tag'] == tag for s in states) for tag in TFMA_VIEWS}
    assert len(states) == sent, (sent, counts)
    assert counts['tfma-nb-slicing-metrics'] >= len(taxi_features.SLICE_FEATURES), counts
    assert counts['tfma-nb-plot'] >= 1 and counts['tfma-nb-time-series'] >= 1, counts
    empty = [s for s in states if not (s['upgraded'] and s['controls'] and s['height'] > 50)]
    assert not empty, empty
    # The first-load race the cell's loader prevents, seen from the console.
    race = [e['message'] for e in console if 'anonymous define' in e['message']]
    assert not race, race
    # Blindspot's own views draw here too.
    assert browser.execute_script("return document.querySelectorAll('.blindspot-view svg').length")


def test_report_html_renders_its_charts_offline(taxi_run, browser, tmp_path):
    from blindspot import review

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
