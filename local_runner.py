"""Run a Blindspot pipeline locally with Apache Beam and ML Metadata in SQLite.

    python local_runner.py                      # taxi, outputs under ./outputs
    python local_runner.py --help
    python local_runner.py history [--output-dir D] [--pipeline P]   # runs, from ML Metadata
    python local_runner.py compare [RUN_A RUN_B]    # failing slices new / resolved / persisting
    python local_runner.py review-sheet --out mistakes.csv   # mistakes to tag; back with --tags

The console shows the run's own lines; TFX's full log of each run, and whatever the libraries
print, go to OUTPUT_DIR/logs/<pipeline>-<run id>.log. Every check of the input runs before
TensorFlow is imported; one run at a time per output folder (pipelines/run_lock.py); Ctrl-C
stops a run at any instant, cancelling it in ML Metadata (pipelines/stop_on_signal.py,
review/interrupts.py).
"""

if __name__ == '__main__':  # first of all: from here on, Ctrl-C ends the process in one line
    import signal

    _early_signals = []  # any stop signal before the handler below is installed: not lost
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, lambda signum, frame: _early_signals.append(signum))
    from blindspot.pipelines import stop_on_signal

    stop_on_signal.install(pending=_early_signals)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import difflib  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict, Iterator, List, NoReturn, Optional, TextIO, Tuple  # noqa: E402

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Light imports only (no TensorFlow, TFX or TFMA): refusals must come in moments.
from blindspot.error_analysis.settings import Settings as ErrorAnalysisSettings  # noqa: E402
from blindspot.error_analysis.settings import SettingsError, flag_name  # noqa: E402
from blindspot.pipelines import layout, preflight, run_lock  # noqa: E402
from blindspot.pipelines.config import TASKS, RunConfig, TrainingSettings  # noqa: E402
from blindspot.pipelines.datasets import Dataset, dataset_for  # noqa: E402
from blindspot.pipelines.stop_on_signal import exit_on_signal, how  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse with one-line refusals, the problem and its fix: no usage block (--help)."""

    def error(self, message: str) -> NoReturn:
        unknown = message.partition('unrecognized arguments: ')[2].split()
        if unknown:
            flag = unknown[0].split('=')[0]
            close = difflib.get_close_matches(flag, list(self._option_string_actions), n=1)
            message += f' (did you mean {close[0]}?)' if close else ' (see --help)'
        self.exit(2, f'error: {message}\n')


def _settings_error(e: SettingsError, flags: argparse.Namespace) -> str:
    """A bad setting in one line naming the flag and the value given (for a repeatable flag,
    the one item that is wrong, not the list)."""
    for settings in (TrainingSettings, ErrorAnalysisSettings):
        field = next((f for f in dataclasses.fields(settings) if f.name == e.setting), None)
        if field is not None:
            break
    else:  # a message that names its flag itself (e.g. --tag-reference's)
        return str(e)
    given = getattr(flags, settings._dest(field), None)
    if isinstance(given, list) and given and not isinstance(field.default, dict):
        for item in given:
            problem = field.metadata['check']((item,))
            if problem:
                return (
                    f'{flag_name(field)}: {problem}'
                    if item and item in problem
                    else f'{flag_name(field)} {problem}, got {item!r}'
                )
    return str(e)


def parse_args(argv: Optional[List[str]] = None) -> RunConfig:
    """The run's settings from the command line; a bad flag exits with one line (status 2)."""
    defaults = RunConfig()
    p = _Parser(
        description='Run a Blindspot TFX pipeline locally (Beam DirectRunner, SQLite ML '
        'Metadata). The same DAG compiles for Kubeflow with kubeflow/runner.py.'
    )
    p.add_argument(
        '--pipeline',
        default=defaults.pipeline,
        choices=['taxi', 'mnist', 'csv', 'taxi-regression'],
        help='which pipeline to run; csv: your own CSV with --data and --label; '
        "taxi-regression: the csv pipeline predicting the taxi sample's tips in dollars "
        '(default: %(default)s)',
    )
    p.add_argument(
        '--classes', default=None, help='mnist: digits to keep, e.g. 0,1 for the two-class variant'
    )
    p.add_argument(
        '--model',
        default=None,
        choices=['dense', 'cnn'],
        help='mnist: one hidden dense layer (default) or a small CNN',
    )
    p.add_argument(
        '--output-dir',
        default=defaults.output_dir,
        help='pipeline root, metadata store, served models (default: %(default)s)',
    )
    p.add_argument(
        '--data-root',
        '--data',
        dest='data_root',
        default=None,
        help='folder of CSV files (default: the sample shipped in the tfx package); '
        'csv: a CSV file or a folder of CSV files; taxi-regression: a CSV of taxi trips',
    )
    p.add_argument(
        '--label',
        default=None,
        help='csv: the column to predict (class names or integer ids, or numbers)',
    )
    p.add_argument(
        '--task',
        default=None,
        choices=TASKS,
        help='csv: classify the label, or predict it as a number (default: regression for a '
        'label of numbers with more than 20 distinct values, else classification)',
    )
    p.add_argument(
        '--schema',
        default=None,
        metavar='FILE',
        help='csv: a curated schema.pbtxt (default: inferred from the data)',
    )
    p.add_argument(
        '--beam-mode',
        choices=['in_process', 'multi_process'],
        default=defaults.beam_mode,
        help='DirectRunner mode; in_process is faster on small data',
    )
    p.add_argument(
        '--workers',
        type=int,
        default=defaults.workers,
        help='worker processes for --beam-mode multi_process',
    )
    p.add_argument(
        '--beam-arg',
        action='append',
        default=[],
        metavar='ARG',
        help='extra Beam pipeline option, repeatable, e.g. '
        '--beam-arg=--runner=FlinkRunner --beam-arg=--flink_master=host:8081',
    )
    p.add_argument('--no-cache', action='store_true', help='re-run every component')
    TrainingSettings.add_flags(p, 'Training')
    ErrorAnalysisSettings.add_flags(p)
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f'--workers must be at least 1, got {a.workers}')
    try:
        training = TrainingSettings.from_flags(a)
        error_analysis = ErrorAnalysisSettings.from_flags(a)
    except SettingsError as e:
        p.error(_settings_error(e, a))
    return RunConfig(
        pipeline=a.pipeline,
        classes=a.classes,
        model=a.model,
        label=a.label,
        schema=a.schema,
        task=a.task,
        output_dir=a.output_dir,
        data_root=a.data_root,
        training=training,
        beam_mode=a.beam_mode,
        workers=a.workers,
        beam_args=tuple(a.beam_arg),
        enable_cache=not a.no_cache,
        error_analysis=error_analysis,
    )


class _Progress(logging.Handler):
    """Turns the local runner's 'Component X is running/finished.' log lines into console
    progress with times."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.started: Dict[str, float] = {}
        self.seconds: Dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg not in ('Component %s is running.', 'Component %s is finished.'):
            return
        component = record.args[0]
        if record.msg.endswith('running.'):
            self.started[component] = time.time()
            print(f'  ▶ {component} ...', flush=True)
        else:
            self.seconds[component] = time.time() - self.started.get(component, time.time())
            print(f'  ✓ {component} ({self.seconds[component]:.1f} s)', flush=True)


def _configure_logging(log_file: Path) -> _Progress:
    from absl import logging as absl_logging

    log_file.parent.mkdir(parents=True, exist_ok=True)
    absl_logging.set_verbosity(absl_logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    file_handler = logging.FileHandler(log_file, mode='a')
    file_handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s %(message)s'))
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    # absl and TensorFlow attach their own console handlers: send them to the file instead.
    for name in ('absl', 'tensorflow'):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    logging.captureWarnings(True)
    progress = _Progress()
    root.addHandler(progress)
    return progress


def _content_addressed_copy(path: Path, output_dir: str) -> str:
    """A copy of the schema under a path named by its hash.

    Cache keys hold file paths, not contents (ImportSchemaGen's schema, ErrorAnalysis's tags):
    without this, an edited file would be served from the cache."""
    import hashlib
    import shutil

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    target = Path(output_dir) / 'inputs' / digest / path.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return str(target)


def check_inputs(config: RunConfig) -> Tuple[Dataset, Optional[str]]:
    """Every check that can run before TFX: the data, the schema's features against the tag
    rules, the tags, the output folder and its metadata store. Writes nothing but the output
    folder; imports no TensorFlow. Returns the dataset and the data path (None: the dataset
    writes its data, see `build`)."""
    dataset = dataset_for(config)  # csv: scans and checks the data, see pipelines/datasets.py
    problem = config.training.problem_for(
        dataset.task, dataset.pipeline_name
    ) or config.error_analysis.problem_for(dataset.task)
    if problem:
        raise preflight.PreflightError(problem)
    data_root = None
    for note in dataset.notes:
        print(f'note: {note}', file=sys.stderr)
    if dataset.user_data:
        pass  # copied by prepare_data in build
    elif dataset.example_format == 'csv':
        data_root = config.data_root or str(dataset.default_data_root())
        preflight.check_data_root(data_root, dataset.label_source_columns)
    elif config.data_root:
        data_root = preflight.check_tfrecord_root(config.data_root)
    settings = config.error_analysis
    file_tags = preflight.check_tags_file(settings.tags_file)
    preflight.check_splits(settings.splits)
    if settings.tag_rules or settings.slice_features:
        if dataset.schema_path:
            features = preflight.schema_feature_names(dataset.schema_path)
            source = f'the schema {dataset.schema_path}'
        else:
            features, source = list(dataset.columns), 'the CSV header'
        preflight.check_tag_rules(
            settings.tag_rules, features, dataset.transformed_features, source
        )
        preflight.check_slice_features(
            settings.slice_features, features, dataset.transformed_features, source
        )
    preflight.check_tag_references(
        settings.tag_references, settings.tag_rules, file_tags, settings.tags_file
    )
    preflight.check_output_dir(config.output_dir)
    preflight.check_metadata_store(config.output_dir)
    preflight.check_beam_args(config.beam_args)  # last: it imports Beam (2 s)
    return dataset, data_root


def build(config: RunConfig, dataset: Dataset, data_root: Optional[str]):
    """The TFX pipeline for checked inputs (writes the dataset's data copy, if it has one)."""
    output_dir = os.path.abspath(config.output_dir)
    if data_root is None:
        data_root = dataset.prepare_data(output_dir)

    from blindspot.pipelines.pipeline import create_pipeline
    from blindspot.review import metadata

    return create_pipeline(
        pipeline_name=dataset.pipeline_name,
        pipeline_root=layout.pipeline_root(output_dir, dataset.pipeline_name),
        data_root=os.path.abspath(data_root),
        dataset=dataset,
        schema_path=(
            _content_addressed_copy(dataset.schema_path, output_dir)
            if dataset.schema_path
            else None
        ),  # None: SchemaGen infers it
        training=config.training,
        serving_model_dir=layout.serving_model_dir(output_dir, dataset.pipeline_name),
        error_analysis=dataclasses.replace(
            config.error_analysis,
            tags_file=config.error_analysis.tags_file
            and _content_addressed_copy(Path(config.error_analysis.tags_file), output_dir),
        ),
        beam_pipeline_args=config.beam_pipeline_args(),
        metadata_connection_config=metadata.sqlite_config(output_dir),
        enable_cache=config.enable_cache,
        compare_reports=True,
    )  # ErrorAnalysis compares with the latest blessed model's report


def _dag_runner(run_id: str):
    """TFX's LocalDagRunner with the run id chosen here (it names the pipeline_run context in
    ML Metadata): this process then knows its own run, for the summary and on Ctrl-C."""
    from tfx.dsl.compiler import constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    from blindspot.pipelines.training import skip_autograph_for_tf_keras

    # Every step runs in this process: the Trainer, and TFMA loading the Keras model, too.
    skip_autograph_for_tf_keras()

    class RunIdLocalDagRunner(LocalDagRunner):
        def run_with_ir(self, pipeline, run_options=None, **kwargs):
            runtime_parameter_utils.substitute_runtime_parameter(
                pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
            )
            return super().run_with_ir(pipeline, run_options=run_options, **kwargs)

    return RunIdLocalDagRunner()


class _Interruption:
    """What a stop signal does at each stage of a run: the line to print, after cancelling
    the run's unfinished executions in ML Metadata once the pipeline runs. The main thread
    is parked meanwhile (pipelines/stop_on_signal.py), so what the line says is what ML
    Metadata holds."""

    def __init__(self, config: RunConfig, run_id: str, log_file: str):
        self.config, self.run_id, self.log_file = config, run_id, log_file
        self.started = False  # set when the pipeline starts
        self.finished = False  # set when the pipeline has run

    def __call__(self, signum: int) -> str:
        stopped = f'✗ stopped ({how(signum)})'
        if not self.started:
            return f'{stopped} before the pipeline started: nothing was recorded'
        if self.finished:
            return f'{stopped} after run {self.run_id} finished; log: {self.log_file}'
        from blindspot.review import interrupts  # imported before the run: no import here

        cancelled = interrupts.cancel_run(
            self.config.output_dir, self.run_id, f'interrupted by {how(signum)}'
        )
        if not cancelled:  # between components, or before one registered its execution
            return (
                f'{stopped} between steps: nothing to cancel, run {self.run_id} has no '
                f'unfinished step in ML Metadata; log: {self.log_file}'
            )
        return (
            f'{stopped} during {", ".join(cancelled)}: run {self.run_id} is marked '
            f'cancelled in ML Metadata and its partial outputs removed; log: {self.log_file}'
        )


@contextlib.contextmanager
def _library_output_to(log_file: str) -> Iterator[TextIO]:
    """Sends what libraries print on stderr (TensorFlow's C++ start-up errors, Python
    warnings, Beam workers' messages) to the run's log; yields a stream to the console's
    stderr for the run's own lines. The console keeps stdout."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    console_fd = os.dup(2)
    with open(log_file, 'a') as log:
        os.dup2(log.fileno(), 2)
    console = open(console_fd, 'w', buffering=1, encoding='utf-8', closefd=False)
    logging.captureWarnings(True)  # warnings through logging: never to a stream of the console
    try:
        yield console
    finally:
        logging.captureWarnings(False)
        console.flush()
        sys.stderr.flush()
        os.dup2(console_fd, 2)
        os.close(console_fd)


# A file the run keeps in its output folder and deletes when the disk is full, so that the
# failed step can still be marked failed in ML Metadata (SQLite needs room to write).
_DISK_RESERVE = '.disk-reserve'
_DISK_RESERVE_BYTES = 1 << 20


def _keep_disk_reserve(output_dir: str) -> None:
    path = Path(output_dir) / _DISK_RESERVE
    if path.exists():
        return
    with contextlib.suppress(OSError):  # no room for it: the run fails soon enough anyway
        path.write_bytes(b'\0' * _DISK_RESERVE_BYTES)


def _free_space(path: str) -> str:
    """Free space on the file system of `path` (or its nearest existing parent)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return 'unknown space'
    return f'{free / 2**20:.1f} MB' if free < 2**30 else f'{free / 2**30:.1f} GB'


def _storage_problem(e: BaseException, output_dir: str) -> Optional[Tuple[str, str]]:
    """(path, problem) when `e` or what led to it is a full disk or an OSError writing the
    store or an artifact (the first cause that names a file); None for other failures."""
    chain: List[BaseException] = []
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    full = 'no space left on the device'
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return cause.filename or output_dir, full
    if any('No space left on device' in str(c) for c in chain):
        return output_dir, full
    if any('database or disk is full' in str(c) for c in chain):
        return os.path.join(output_dir, layout.METADATA_FILE), full
    for cause in chain:
        if isinstance(cause, OSError) and cause.filename:
            return cause.filename, cause.strerror or type(cause).__name__
    return None


def _report_failure(
    e: Exception, failed: str, config: RunConfig, run_id: str, log_file: str, console: TextIO
) -> None:
    """The failed step in plain words. A full disk or a write error names the path and the
    free space, in one line, and the step TFX could not mark failed is marked so here."""
    problem = _storage_problem(e, config.output_dir)
    if problem is None:
        print(f'\n✗ {failed} failed: {type(e).__name__}: {e}', file=console)
        print(f'  full log: {log_file}', file=console)
        return
    path, what = problem
    free = _free_space(path)
    from blindspot.review import interrupts

    with contextlib.suppress(OSError):  # room for ML Metadata to record the failure
        (Path(config.output_dir) / _DISK_RESERVE).unlink()
    try:
        marked = interrupts.fail_run(config.output_dir, run_id, f'{what}: {path}')
        recorded = (
            f'{", ".join(marked)} marked failed in ML Metadata'
            if marked
            else 'nothing left running in ML Metadata'  # TFX had recorded the failure itself
        )
    except Exception:  # the store cannot be written either: the next run's sweep ends it
        recorded = 'not recorded (ML Metadata cannot be written; the next run cancels it)'
    print(
        f'\n✗ {failed} failed: {what} writing {path} ({free} free there): free '
        f'some space and run again; {recorded}; log: {log_file}',
        file=console,
    )


def run(config: RunConfig) -> int:
    """Checks the inputs, takes the output folder and runs the pipeline; the exit status
    (0 done, 1 a step failed, 2 refused)."""
    run_id = datetime.datetime.now().isoformat()  # TFX's own format for run ids
    try:
        dataset, data_root = check_inputs(config)
    except (preflight.PreflightError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    pipeline_name = dataset.pipeline_name
    log_file = layout.log_file(config.output_dir, pipeline_name, run_id)
    try:
        lock = run_lock.acquire(config.output_dir, pipeline_name, run_id, log_file)
    except run_lock.OutputFolderBusy as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    interruption = _Interruption(config, run_id, log_file)
    with lock, _library_output_to(log_file) as console:
        with exit_on_signal(interruption, console_fd=console.fileno()):
            from blindspot.review import interrupts

            # The store exists before a stop signal can need it to record the stop.
            interrupts.open_writable(config.output_dir, create=True)
            _keep_disk_reserve(config.output_dir)
            for line in interrupts.sweep_orphans(config.output_dir, lock.previous):
                print(f'note: {line}', file=console)
            pipeline = build(config, dataset, data_root)
            progress = _configure_logging(Path(log_file))
            print(
                f'Running {pipeline_name} run {run_id} (Beam {config.beam_mode}); log: {log_file}'
            )
            start = time.time()
            interruption.started = True
            try:
                _dag_runner(run_id).run(pipeline)
            except Exception as e:  # a component failed: say which and why, in plain words
                failed = next(
                    (c for c in progress.started if c not in progress.seconds), 'a component'
                )
                _report_failure(e, failed, config, run_id, log_file, console)
                return 1
            interruption.finished = True
            from blindspot.review.summary import print_summary

            print_summary(config, pipeline_name, run_id, progress.seconds, time.time() - start)
    return 0


if __name__ == '__main__':
    if sys.argv[1:2] in (['history'], ['compare'], ['review-sheet']):
        stop_on_signal.install(lambda signum: f'✗ stopped ({how(signum)})')
    if sys.argv[1:2] in (['history'], ['compare']):  # review subcommands: review/cli.py
        from blindspot.review import cli as review_cli

        sys.exit(review_cli.main(sys.argv[1:]))
    if sys.argv[1:2] == ['review-sheet']:
        from blindspot.review import sheet as review_sheet

        sys.exit(review_sheet.main(sys.argv[2:]))
    sys.exit(run(parse_args()))
