"""Reviewing runs from ML Metadata: for notebooks, scripts and `local_runner.py history|compare`.

Everything is found through ML Metadata, never by guessing paths: a run is a `pipeline_run`
context; its components are the executions in it, and their artifacts the executions' output
events. A component served from the cache in run N has an execution in run N whose output events
point at the artifacts an earlier run produced, so `run.report` of a cached run is the earlier
report (the same artifact id).

    from blindspot import review
    r = review.Review('outputs')                 # or an MLMD ConnectionConfig / MetadataStore
    for run in r.runs():                         # oldest first
        print(run.number, run.run_id, run.blessed, run.accuracy(), run.error_rate())
    run = r.run()                                # latest; or r.run('<run id>'), r.run(2), r.run(-2)
    run.evaluation.uri, run.model.uri, run.blessing, run.report   # MLMD artifacts (or None)
    data = run.report_json()                     # the loaded report.json
    comparison = r.compare()                     # last two runs: new / resolved / persisting

Errors (no store, unknown pipeline, unknown run, nothing to compare) raise ReviewError, whose
message says what was looked for and what exists.

Light to import: ML Metadata, the report files and numpy. TensorFlow, TFMA and Beam are imported
only by what needs them (Run.eval_result, Review.eval_results, TFMA rows read from an
evaluation rather than a report, a comparison measured afresh), so `history`, `compare` and
`review-sheet` start in well under a second.
"""

import dataclasses
import datetime
import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

import blindspot.error_analysis as error_analysis
from blindspot.error_analysis.report import regression_view
from blindspot.pipelines import preflight
from blindspot.review import metadata

PIPELINE_PREFIX = 'blindspot-'
DEFAULT_PIPELINE = 'blindspot-taxi'
_SHOWN_RUNS = 8
PART_COMPARISON = error_analysis.files.PART_COMPARISON
PART_ENCODERS = error_analysis.files.PART_ENCODERS

# Run.outcome: what became of a run's model.
PUSHED = 'pushed'
BLESSED_NOT_PUSHED = 'blessed, not pushed'
GATE_BLOCKED = 'gate blocked'
NOT_BLESSED = 'not blessed'

Source = Union[
    str,
    os.PathLike,
    metadata_store_pb2.ConnectionConfig,
    metadata_store_pb2.MetadataStoreClientConfig,
    metadata_store.MetadataStore,
]


class ReviewError(LookupError):
    """A store, pipeline or run that is not there; the message lists what is."""


def _read_text(path: str) -> str:
    if '://' in path:  # gs:// and other remote file systems (TensorFlow's file systems)
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as f:
            return f.read()
    with open(path) as f:
        return f.read()


def _exists(path: str) -> bool:
    if '://' in path:
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def connect(source: Source):
    """(store, description) for an output folder, a connection config or an open store."""
    if isinstance(source, metadata_store.MetadataStore):
        return source, 'the given store'
    if isinstance(
        source, (metadata_store_pb2.ConnectionConfig, metadata_store_pb2.MetadataStoreClientConfig)
    ):
        if isinstance(source, metadata_store_pb2.ConnectionConfig) and source.HasField('sqlite'):
            where = source.sqlite.filename_uri
        elif isinstance(source, metadata_store_pb2.MetadataStoreClientConfig):
            where = f'{source.host}:{source.port}'
        else:
            where = 'the configured store'
        try:
            return metadata_store.MetadataStore(source), where
        except Exception as e:  # MLMD raises its own error types
            raise ReviewError(f'cannot open the ML Metadata store at {where}: {e}') from e
    output_dir = os.fspath(source)
    path = metadata.sqlite_path(output_dir)
    if not os.path.isdir(output_dir):
        raise ReviewError(
            f'no output folder {output_dir!r} (looked for the ML Metadata store '
            f'{path}): run `python local_runner.py --output-dir {output_dir}` '
            'first, or pass --output-dir'
        )
    if not os.path.isfile(path):
        present = sorted(os.listdir(output_dir))
        raise ReviewError(
            f'no ML Metadata store in {output_dir!r}: looked for {path}; the '
            f'folder has: {", ".join(present) if present else "nothing"}'
        )
    try:
        preflight.check_metadata_store(output_dir)  # damaged or foreign: one line, no SQL
    except preflight.PreflightError as e:
        raise ReviewError(str(e)) from None
    try:
        return metadata.open_store(output_dir), path
    except Exception as e:
        raise ReviewError(f'{path} is not a readable ML Metadata store: {e}') from e


def pipeline_names(store) -> List[str]:
    return sorted(c.name for c in store.get_contexts_by_type(metadata.PIPELINE_CONTEXT))


def resolve_pipeline(store, name: Optional[str], where: str = 'this store') -> str:
    """The full pipeline name for `name` ('taxi', 'blindspot-taxi', a unique prefix), or the
    store's only pipeline when `name` is None."""
    names = pipeline_names(store)
    listing = ', '.join(names) if names else 'no pipelines (no run has been recorded)'
    if name is None:
        if len(names) == 1:
            return names[0]
        if DEFAULT_PIPELINE in names:
            return DEFAULT_PIPELINE
        raise ReviewError(f'which pipeline? {where} has: {listing}')
    for candidate in (name, PIPELINE_PREFIX + name):
        if candidate in names:
            return candidate
    prefixed = [n for n in names if n.startswith(PIPELINE_PREFIX + name) or n.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise ReviewError(f"no pipeline '{name}' in {where}; it has: {listing}")


def _blessed(blessing) -> Optional[bool]:
    if blessing is None:
        return None
    return bool(metadata.custom_value(blessing, 'blessed'))


@dataclasses.dataclass
class Run:
    """One pipeline run, as ML Metadata recorded it."""

    number: int  # 1 = oldest run of the pipeline
    run_id: str  # the pipeline_run context's name
    pipeline: str
    context: metadata_store_pb2.Context
    components: Dict[str, metadata.ComponentRun]
    # Loaded report.json files by report artifact id, shared by a Review's runs: the runs
    # served from the cache point at one report, read once.
    _reports: Dict[int, Dict] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def time(self) -> datetime.datetime:
        """When the run started (local time)."""
        return datetime.datetime.fromtimestamp(self.context.create_time_since_epoch / 1000)

    def artifact(self, component: str, key: str):
        return metadata.output_artifact(self.components, component, key)

    @property
    def model(self):
        return self.artifact('Trainer', 'model')

    @property
    def evaluation(self):
        return self.artifact('Evaluator', 'evaluation')

    @property
    def blessing(self):
        return self.artifact('Evaluator', 'blessing')

    @property
    def report(self):
        """The ErrorAnalysisReport artifact (custom properties: error_rate, top_slice, ...)."""
        return self.artifact('ErrorAnalysis', 'report')

    @property
    def pushed(self):
        return self.artifact('Pusher', 'pushed_model')

    @property
    def blessed(self) -> Optional[bool]:
        """Whether the Evaluator blessed the model; None without a blessing."""
        return _blessed(self.blessing)

    @property
    def model_pushed(self) -> bool:
        """Whether this run's model was pushed: the Pusher ran (the slice gate let it) and
        pushed (the model was blessed); its artifact says so in the custom property 'pushed'."""
        return self.pushed is not None and metadata.custom_value(self.pushed, 'pushed') == 1

    @property
    def states(self) -> Dict[str, str]:
        return {name: c.state for name, c in self.components.items()}

    @property
    def status(self) -> str:
        """'complete', 'failed at <component>', 'cancelled at <component>' (interrupted: see
        review/interrupts.py), or 'running'."""
        for state, word in (('FAILED', 'failed'), ('CANCELED', 'cancelled')):
            stopped = [n for n, s in self.states.items() if s == state]
            if stopped:
                return f'{word} at {", ".join(stopped)}'
        if any(s in ('RUNNING', 'NEW', 'UNKNOWN') for s in self.states.values()):
            return 'running'
        return 'complete'

    def gate_passed(self) -> Optional[bool]:
        """The slice gate's verdict on this run's report (None: no report, or one written
        before the gate)."""
        if self.report is None:
            return None
        passed = metadata.custom_value(self.report, error_analysis.files.SLICE_GATE_PASSED)
        return None if passed is None else bool(passed)

    @property
    def outcome(self) -> str:
        """What became of the run's model, in `history`'s words: 'pushed'; 'gate blocked'
        (blessed, but the slice gate kept the Pusher from running); 'blessed, not pushed'
        (blessed, and the Pusher did not push for another reason); 'not blessed'; else the
        status's first word ('cancelled', 'failed', 'running') or '-' (no evaluation)."""
        if self.model_pushed:
            return PUSHED
        if self.status != 'complete':
            return self.status.split()[0]
        if self.blessed is None:
            return '-'
        if not self.blessed:
            return NOT_BLESSED
        return GATE_BLOCKED if self.gate_passed() is False else BLESSED_NOT_PUSHED

    def report_json(self) -> Optional[Dict]:
        """The loaded report.json of this run's ErrorAnalysis report (None without one)."""
        if self.report is None:
            return None
        if self.report.id not in self._reports:
            self._reports[self.report.id] = json.loads(
                _read_text(os.path.join(self.report.uri, error_analysis.files.REPORT_JSON))
            )
        return self._reports[self.report.id]

    def report_html_path(self) -> Optional[str]:
        return (
            os.path.join(self.report.uri, error_analysis.files.REPORT_HTML)
            if self.report is not None
            else None
        )

    def report_html(self) -> Optional[str]:
        """The report page (self-contained HTML), or None without a report."""
        path = self.report_html_path()
        return _read_text(path) if path else None

    def insights(self) -> List[str]:
        data = self.report_json()
        return list(data.get('insights', [])) if data else []

    def failing_slices(self) -> List[Dict]:
        """The report's slices that held on held-out data, best first."""
        data = self.report_json()
        return [s for s in data['slices']['slices'] if s.get('held')] if data else []

    def tfma_rows(self) -> List[Dict]:
        """The Evaluator's sliced metrics as rows (tfma_metrics.sliced_metrics)."""
        if self.evaluation is None:
            return []
        return error_analysis.sliced_metrics(self.evaluation.uri)

    def eval_result(self):
        """tfma.EvalResult of this run's evaluation (the candidate model's, when the Evaluator
        also evaluated a baseline), for tfma.view.render_*."""
        if self.evaluation is None:
            raise ReviewError(f'run {self.run_id} has no evaluation ({self.status})')
        return error_analysis.load_eval_result(self.evaluation.uri)

    def accuracy(self, read_evaluation: bool = True) -> Optional[float]:
        """Overall accuracy from the Evaluator (as carried in the report, else read from the
        evaluation, which imports TFMA: not with read_evaluation=False), else the report's
        own."""
        data = self.report_json()
        rows = (data or {}).get('tfma') or []
        if not rows and self.evaluation is not None and read_evaluation:
            rows = self.tfma_rows()
        metric = error_analysis.accuracy_metric(rows)
        overall = next((r for r in rows if not r['features']), None)
        if metric and overall and metric in overall['metrics']:
            return overall['metrics'][metric]
        return (data or {}).get('overall', {}).get('accuracy')

    def error_rate(self) -> Optional[float]:
        """A classifier's error rate; None for a regression, whose report's `error_rate` is the
        share of rows above the median error (mean_error says how far off it is)."""
        data = self.report_json()
        if not data or data.get('regression'):
            return None
        return data['overall']['error_rate']

    def mean_error(self) -> Optional[Dict]:
        """A regression's mean error, e.g. {'metric': 'MAE', 'value': 0.449}; None for a
        classifier."""
        data = self.report_json()
        if not data or not data.get('regression'):
            return None
        return {
            'metric': regression_view.error_name(data['regression']['error']),
            'value': data['overall']['mean_error'],
        }

    def summary(self, read_evaluation: bool = True) -> Dict:
        """One history row (read_evaluation=False: accuracy only from the report, no TFMA)."""
        failing = self.failing_slices()
        return {
            'number': self.number,
            'time': self.time.strftime('%Y-%m-%d %H:%M:%S'),
            'run_id': self.run_id,
            'pipeline': self.pipeline,
            'status': self.status,
            'outcome': self.outcome,
            'blessed': self.blessed,
            'pushed': self.model_pushed,
            'gate_passed': self.gate_passed(),
            'accuracy': self.accuracy(read_evaluation),
            'error_rate': self.error_rate(),
            'mean_error': self.mean_error(),
            'failing_slices': len(failing) if self.report is not None else None,
            'top_slice': failing[0]['slice'] if failing else None,
            'report_id': self.report.id if self.report is not None else None,
        }


class Review:
    """The runs of one pipeline in one ML Metadata store."""

    def __init__(self, source: Source = 'outputs', pipeline: Optional[str] = None):
        self.store, self.where = connect(source)
        self.pipeline = resolve_pipeline(self.store, pipeline, self.where)
        self._runs: Optional[List[Run]] = None
        self._reports: Dict[int, Dict] = {}

    def runs(self) -> List[Run]:
        """Every run of the pipeline, oldest first."""
        if self._runs is None:
            contexts = metadata.pipeline_runs(self.store, self.pipeline)
            self._runs = [
                Run(
                    i + 1,
                    c.name,
                    self.pipeline,
                    c,
                    metadata.component_runs(self.store, c),
                    self._reports,
                )
                for i, c in enumerate(contexts)
            ]
        return self._runs

    def _listing(self) -> str:
        runs = self.runs()
        shown = runs[-_SHOWN_RUNS:]
        text = ', '.join(f'#{r.number} {r.run_id}' for r in shown)
        return (
            f'{len(runs)} run(s): ' + ('... ' if len(runs) > len(shown) else '') + text
            if runs
            else 'no runs'
        )

    def run(self, ref: Union[None, int, str] = None) -> Run:
        """The latest run (ref None), a run by id (or a unique prefix of it), or by number as
        `history` prints it (1 = oldest; negative counts from the latest: -1 = latest)."""
        runs = self.runs()
        if not runs:
            raise ReviewError(f"pipeline '{self.pipeline}' has no runs in {self.where}")
        if ref is None:
            return runs[-1]
        text = str(ref).strip()
        if text.lstrip('-').isdigit():
            n = int(text)
            if 1 <= n <= len(runs):
                return runs[n - 1]
            if -len(runs) <= n <= -1:
                return runs[n]
        else:
            exact = [r for r in runs if r.run_id == text]
            prefixed = exact or [r for r in runs if r.run_id.startswith(text)]
            if len(prefixed) == 1:
                return prefixed[0]
        raise ReviewError(
            f"no run '{text}' of pipeline '{self.pipeline}' in {self.where}; "
            f'it has {self._listing()}'
        )

    def latest(self) -> Run:
        return self.run()

    def history(self, read_evaluation: bool = True) -> List[Dict]:
        """One row per run (Run.summary), oldest first."""
        return [r.summary(read_evaluation) for r in self.runs()]

    def _with_report(self, run: Run) -> Dict:
        data = run.report_json()
        if data is None:
            raise ReviewError(
                f'run #{run.number} {run.run_id} of {self.pipeline} has no '
                f'ErrorAnalysis report ({run.status}); runs with one: '
                + (', '.join(f'#{r.number}' for r in self.runs() if r.report is not None) or 'none')
            )
        return data

    def baseline_of(self, run: Run) -> Optional[Run]:
        """The latest run before `run` holding the report that `run`'s ErrorAnalysis compared
        itself with (the last blessed model's, when it ran), or None."""
        data = run.report_json() or {}
        report_id = (data.get('comparison') or {}).get('baseline_artifact_id')
        holders = [
            r
            for r in self.runs()
            if r.number < run.number and r.report is not None and r.report.id == report_id
        ]
        return holders[-1] if holders else None

    def _default_pair(self, reported: List[Run]) -> Sequence[Run]:
        """The latest run with a report, against the run whose report it compared itself with
        (its measure is stored: no Beam), else the latest earlier run with another report
        (runs served from the cache share one), else the one before it."""
        run_b = reported[-1]
        run_a = self.baseline_of(run_b)
        if run_a is None:
            earlier = [r for r in reported if r.number < run_b.number]
            other = [r for r in earlier if r.report.id != run_b.report.id]
            run_a = (other or earlier)[-1]
        return run_a, run_b

    def compare(
        self,
        a: Union[None, int, str] = None,
        b: Union[None, int, str] = None,
        tfma: Optional[bool] = None,
        on_measure: Optional[Callable[[str], None]] = None,
    ) -> Dict:
        """Run `b` (default: the latest with a report) against run `a` (default: the run whose
        report `b`'s ErrorAnalysis compared itself with, else the latest earlier run with
        another report): error_analysis.compare_reports, each slice measured on both runs'
        predictions (_measured).

        When `b`'s report was compared with `a`'s (the default pair, mostly), that stored
        comparison is the answer: nothing is measured again. Otherwise the two reports'
        predictions are measured on a local Beam pipeline (seconds; `on_measure` is called
        with a line saying so first). Per-slice accuracy: tfma=None the copies of the TFMA
        metrics in the reports (the Evaluator's numbers), read from an evaluation only for a
        report without them; True: from the two evaluations (imports TFMA); False: the
        reports' copies only."""
        runs = self.runs()
        # Defaults skip runs without a report (failed, cancelled): there is nothing to compare.
        reported = [r for r in runs if r.report is not None]
        if a is None and b is None:
            if len(reported) < 2:  # then the error names the runs
                if len(runs) < 2:
                    raise ReviewError(
                        f"pipeline '{self.pipeline}' has {self._listing()} in "
                        f'{self.where}: need two runs to compare'
                    )
                run_a, run_b = runs[-2], runs[-1]
            else:
                run_a, run_b = self._default_pair(reported)
        else:
            run_b = self.run(b) if b is not None or not reported else reported[-1]
            if a is not None:
                run_a = self.run(a)
            else:
                earlier = [r for r in reported if r.number < run_b.number]
                if not earlier:
                    raise ReviewError(
                        f'run #{run_b.number} {run_b.run_id} has no run with a report before '
                        'it to compare with'
                    )
                run_a = earlier[-1]
        base, cur = self._with_report(run_a), self._with_report(run_b)
        stored = (cur.get('comparison') or {}) if _compared_with(cur, run_a) else {}
        if stored and tfma is not True and 'accuracy' in stored:
            comparison = dict(stored)  # what ErrorAnalysis found, and the gate judged on
            source = f"stored in run #{run_b.number}'s report (ErrorAnalysis compared the two)"
        else:
            started = time.time()
            measured, stored_measure = _measured(run_a, run_b, on_measure)
            comparison = error_analysis.compare_reports(
                base,
                cur,
                measured=measured,
                baseline_tfma=_tfma_rows(run_a, base, tfma),
                current_tfma=_tfma_rows(run_b, cur, tfma),
            )
            source = (
                f"stored beside run #{run_b.number}'s report"
                if stored_measure
                else "measured now on both runs' predictions (a local Beam pipeline, "
                f'{time.time() - started:.1f} s)'
            )
        comparison.update(
            {
                'pipeline': self.pipeline,
                'baseline_label': f'run #{run_a.number} {run_a.run_id}',
                'baseline_run': _run_ref(run_a),
                'current_run': _run_ref(run_b),
                'same_report': run_a.report.id == run_b.report.id,
                'source': source,
            }
        )
        return comparison

    def eval_results(self, runs: Optional[Sequence[Run]] = None):
        """tfma.EvalResults over the runs' evaluations (each evaluation once, oldest first,
        model-centric), for tfma.view.render_time_series."""
        import tensorflow_model_analysis as tfma

        seen, results = set(), []
        for run in runs if runs is not None else self.runs():
            if run.evaluation is None or run.evaluation.id in seen:
                continue
            seen.add(run.evaluation.id)
            results.append(error_analysis.load_eval_result(run.evaluation.uri))
        if not results:
            raise ReviewError(f"no evaluations among the runs of '{self.pipeline}'")
        return tfma.make_eval_results(results, tfma.MODEL_CENTRIC_MODE)


def _compared_with(report: Dict, run: Run) -> bool:
    """Whether `report`'s ErrorAnalysis compared itself with `run`'s report."""
    compared = (report.get('comparison') or {}).get('baseline_artifact_id')
    return run.report is not None and compared == run.report.id


def _tfma_rows(run: Run, report: Dict, tfma: Optional[bool]) -> Optional[List[Dict]]:
    """The TFMA rows to compare accuracy on: None (the report's copy) unless the evaluation
    must be read (tfma=True, or a report without a copy and tfma not False)."""
    if tfma is False or run.evaluation is None:
        return None
    if tfma is None and report.get('tfma'):
        return None
    return run.tfma_rows()


def _measured(run_a: Run, run_b: Run, on_measure: Optional[Callable[[str], None]] = None):
    """(measure, whether it was stored): both runs' models on the same examples
    (beam/comparison.py): the measure run B's ErrorAnalysis made when it compared itself
    with run A's report, else measured now from the two reports' predictions on a local Beam
    pipeline (Beam imported here, only then: seconds on an eval split)."""
    stored = os.path.join(run_b.report.uri, PART_COMPARISON)
    if _compared_with(run_b.report_json(), run_a) and _exists(stored):
        measured = json.loads(_read_text(stored))
        if measured:
            return measured, True
    if on_measure is not None:
        on_measure(
            f"measuring run #{run_a.number} and run #{run_b.number} on both runs' predictions "
            '(a local Beam pipeline: a few seconds)'
        )
    from blindspot.error_analysis.beam import comparison
    from blindspot.pipelines.config import DIRECT_RUNNER_ARGS

    measured = comparison.measure_reports(
        run_a.report.uri,
        run_a.report_json(),
        run_b.report.uri,
        run_b.report_json(),
        [*DIRECT_RUNNER_ARGS, '--direct_running_mode=in_memory', '--direct_num_workers=1'],
    )
    return measured, False


def _run_ref(run: Run) -> Dict:
    return {
        'number': run.number,
        'run_id': run.run_id,
        'blessed': run.blessed,
        'outcome': run.outcome,
        'report_id': run.report.id if run.report is not None else None,
        'report_uri': run.report.uri if run.report is not None else None,
        'evaluation_uri': run.evaluation.uri if run.evaluation is not None else None,
    }


# Module-level shortcuts.
def error_text(row: Dict) -> str:
    """A history row's error: a classifier's error rate ('43.5%') or a regression's mean error
    ('MAE 0.449'); '' when the run has no report."""
    if row.get('mean_error'):
        value = row['mean_error']['value']
        return f'{row["mean_error"]["metric"]} {"-" if value is None else f"{value:.3g}"}'
    return '' if row.get('error_rate') is None else f'{100 * row["error_rate"]:.1f}%'


def list_runs(source: Source = 'outputs', pipeline: Optional[str] = None) -> List[Run]:
    return Review(source, pipeline).runs()


def get_run(
    source: Source = 'outputs', run_id: Union[None, int, str] = None, pipeline: Optional[str] = None
) -> Run:
    return Review(source, pipeline).run(run_id)


def compare_runs(
    source: Source = 'outputs',
    a: Union[None, int, str] = None,
    b: Union[None, int, str] = None,
    pipeline: Optional[str] = None,
    tfma: Optional[bool] = None,
) -> Dict:
    return Review(source, pipeline).compare(a, b, tfma=tfma)
