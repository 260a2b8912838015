"""The compiled Kubeflow pipeline, run on this machine the way open-source Kubeflow Pipelines runs
it (kubeflow/local_run.py): the csv pipeline (a user's CSV, read in place) compiled by
kubeflow/runner.py as `python -m blindspot.kubeflow.runner --pipeline csv` compiles it, then
every task's own container command and args from the spec, in dependency order, with the
ExecutorInput KFP's driver would build (input artifacts named by their metadata id, typed by the
producer's schema, their recorded properties as metadata; parameters from the spec's constants),
each task's outputs recorded as KFP's launcher records them and handed to the next tasks.

The csv pipeline runs here rather than taxi: the same generic steps plus the user's own data
path (CsvPreflight, the data read in place); taxi's one step of its own, ImportSchemaGen with
the schema path of the image, runs alone below, and its spec is checked in
test_kubeflow_spec.py (one full run costs about two minutes of CPU; the suite has room for one).

This is the strongest check there is without a cluster, and it cannot see: KFP's driver and
launcher themselves, Argo and the pods, GCS (the compiler accepts gs:// roots only, so the spec
is compiled with one and its parameters' gs:// paths are rewritten to a local folder; the data
is a local path, --allow-local-data; output URIs are local), ML Metadata recording (emulated in
memory), KFP's step cache. The steps run on
this machine's Python; when the image of `make image` exists (blindspot:local, or
$BLINDSPOT_TEST_IMAGE), the ErrorAnalysis step also runs inside it with `docker run --network
none`, else that test is skipped.
"""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from blindspot.error_analysis import files
from blindspot.kubeflow import runner
from blindspot.kubeflow.local_run import LocalKfpRun, TaskFailed, condition_holds, task_order
from blindspot.pipelines import preflight
from blindspot.pipelines.config import DIRECT_RUNNER_ARGS
from blindspot.review.metadata import custom_value
from tests.test_csv_pipeline import write_customers

ROOT = 'gs://blindspot-local-kfp/root'
SAMPLE_ROWS = 400
TRAIN_STEPS = 20
TEST_IMAGE = os.environ.get('BLINDSPOT_TEST_IMAGE', 'blindspot:local')
BEAM_TASKS = ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator', 'ErrorAnalysis')
PIPELINE = 'csv-customers-spend'  # the csv pipeline of customers.csv, label spend


def _compile(data, out, *extra, pipeline='csv'):
    """Compiles for open-source KFP as `python -m blindspot.kubeflow.runner` does; the spec."""
    data_flags = ['--data', str(data), '--label', 'spend', '--allow-local-data'] if data else []
    argv = ['--pipeline', pipeline, *data_flags, '--image', TEST_IMAGE, '--pipeline-root', ROOT]
    assert runner.main([*argv, '--output-dir', str(out), *extra]) == 0
    return json.loads((out / f'{pipeline}_job.json').read_text())['pipelineSpec']


@pytest.fixture(scope='module')
def kfp_run(tmp_path_factory):
    """Compiles the csv pipeline for open-source KFP and runs every task of the spec on a
    400-row CSV (string classes, missing values, 'NA' in a column of numbers, an empty column)."""
    work = tmp_path_factory.mktemp('kfp_local')
    local_root = work / 'root'
    # Under the root, which a step run in the image sees (at the same path), as it would see
    # the bucket.
    (local_root / 'data').mkdir(parents=True)
    data = write_customers(local_root / 'data' / 'customers.csv', rows=SAMPLE_ROWS)
    spec = _compile(
        data,
        work / 'compiled',
        '--train-steps',
        str(TRAIN_STEPS),
        '--eval-steps',
        '5',
        '--min-accuracy',
        '0',  # blessed whatever 20 steps give: the Pusher must push
        '--max-slice-error-rate',
        '1',  # the slice gate (mode 'any' on open-source KFP) lets it through
    )
    run = LocalKfpRun(spec, local_root, path_map={ROOT: str(local_root)})
    run.run()
    return {'run': run, 'spec': spec, 'root': local_root, 'data': data}


def _report(kfp_run, task='ErrorAnalysis'):
    return kfp_run['run'].tasks[task].outputs['report']


def test_every_task_ran_after_its_inputs(kfp_run):
    run, spec = kfp_run['run'], kfp_run['spec']
    order = task_order(spec)
    assert set(run.tasks) == set(spec['root']['dag']['tasks'])
    assert list(run.tasks) == order  # run in that order
    for name, task in spec['root']['dag']['tasks'].items():
        for dep in task.get('dependentTasks', []):
            assert order.index(dep) < order.index(name), (dep, name)
    # Artifacts travel by metadata id, typed by the producer's schema.
    error_analysis = run.tasks['ErrorAnalysis'].executor_input['inputs']['artifacts']
    model = run.tasks['Trainer'].outputs['model']
    assert error_analysis['model']['artifacts'][0]['name'] == str(model.id)
    assert error_analysis['model']['artifacts'][0]['type'] == {
        'instanceSchema': 'title: tfx.Model\ntype: object\n'
    }
    examples = error_analysis['examples']['artifacts'][0]
    assert json.loads(examples['metadata']['split_names']) == ['train', 'eval']


def test_parameters_come_from_the_spec(kfp_run):
    run, spec = kfp_run['run'], kfp_run['spec']
    for name, task in run.tasks.items():
        given = task.executor_input['inputs']['parameterValues']
        assert set(given) == set(spec['root']['dag']['tasks'][name]['inputs'].get('parameters', {}))
    trainer = run.tasks['Trainer'].executor_input['inputs']['parameterValues']
    assert json.loads(trainer['train_args']) == {'num_steps': TRAIN_STEPS}
    example_gen = run.tasks['CsvExampleGen'].executor_input['inputs']['parameterValues']
    # The data read where it lies, not copied: ExampleGen reads the given file itself.
    assert example_gen['input_base'] == str(kfp_run['data'].parent)
    assert json.loads(example_gen['input_config'])['splits'][0]['pattern'] == 'customers.csv'


def test_pusher_pushed(kfp_run):
    run = kfp_run['run']
    assert not run.tasks['Pusher'].skipped
    blessing = run.tasks['Evaluator'].outputs['blessing']
    assert blessing.metadata['blessed'] == 1.0  # an integer, back as a double
    pushed = run.tasks['Pusher'].outputs['pushed_model']
    assert pushed.metadata['pushed'] == 1.0
    destination = Path(pushed.metadata['pushed_destination'])
    assert destination.is_relative_to(kfp_run['root'] / 'serving_model' / PIPELINE)
    assert (destination / 'saved_model.pb').is_file()


def test_report_files_and_custom_properties(kfp_run):
    report = _report(kfp_run)
    uri = Path(report.uri)
    assert (uri / files.REPORT_HTML).is_file()
    data = json.loads((uri / files.REPORT_JSON).read_text())
    assert list((uri / files.PREDICTIONS_DIR).glob('*.parquet'))
    # The custom properties arrived through the executor's output file, integers as doubles.
    metadata = report.metadata
    assert metadata[files.NUM_EXAMPLES] == float(data['overall']['examples']) > 0
    assert isinstance(metadata[files.NUM_EXAMPLES], float)
    assert metadata[files.NUM_ERRORS] == float(data['overall']['errors'])
    assert metadata[files.ERROR_RATE] == pytest.approx(data['overall']['error_rate'])
    assert metadata[files.REPORT_VERSION] == float(data['version'])
    assert metadata['display_name'] == 'report'
    assert report.type['instanceSchema'].splitlines()[0] == 'title: blindspot.ErrorAnalysisReport'


def test_pusher_runs_only_if_the_slice_gate_passed(kfp_run):
    """tfx.dsl.Cond compiles to the Pusher's trigger condition on the report's metadata, which
    KFP compares as a double: evaluated on the Pusher's real ExecutorInput, then with the gate
    closed."""
    run, spec = kfp_run['run'], kfp_run['spec']
    condition = spec['root']['dag']['tasks']['Pusher']['triggerPolicy']['condition']
    assert files.SLICE_GATE_PASSED in condition
    assert _report(kfp_run).metadata[files.SLICE_GATE_PASSED] == 1.0
    executor_input = copy.deepcopy(run.tasks['Pusher'].executor_input)
    assert condition_holds(condition, executor_input)
    for listing in executor_input['inputs']['artifacts'].values():
        listing['artifacts'][0]['metadata'][files.SLICE_GATE_PASSED] = 0.0
    assert not condition_holds(condition, executor_input)


def test_review_reads_kfp_integers_as_integers(kfp_run):
    """As the cluster's ML Metadata holds the report (every number a double), review's reader
    gives the counts back as ints and the rates as floats."""
    artifact = _report(kfp_run).mlmd_artifact()
    assert artifact.custom_properties[files.NUM_EXAMPLES].WhichOneof('value') == 'double_value'
    value = custom_value(artifact, files.NUM_EXAMPLES)
    assert type(value) is int and value == _report(kfp_run).metadata[files.NUM_EXAMPLES]
    assert type(custom_value(artifact, files.NUM_ERRORS)) is int
    assert type(custom_value(artifact, files.ERROR_RATE)) is float
    assert custom_value(artifact, files.SLICE_GATE_PASSED) == 1
    assert type(custom_value(artifact, files.SLICE_GATE_PASSED)) is int
    blessing = kfp_run['run'].tasks['Evaluator'].outputs['blessing'].mlmd_artifact()
    assert custom_value(blessing, 'blessed') == 1 and type(custom_value(blessing, 'blessed')) is int


def test_beam_steps_ran_on_the_direct_runner_without_prism(kfp_run):
    """Beam 2.74's DirectRunner first tries Prism and logs 'Running pipeline with PrismRunner.'
    (the ExampleGen of a spec compiled without DIRECT_RUNNER_ARGS did, offline, before falling
    back); the spec's args keep every Beam step on the DirectRunner's own runners."""
    run = kfp_run['run']
    for name in BEAM_TASKS:
        args = run.container(name)['args']
        for option in DIRECT_RUNNER_ARGS:
            assert option in args, (name, option)
        assert 'PrismRunner' not in run.tasks[name].log.read_text(errors='replace'), name


def _image_available(image: str) -> bool:
    if shutil.which('docker') is None:
        return False
    try:
        result = subprocess.run(
            ['docker', 'image', 'inspect', image], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def test_error_analysis_runs_in_the_image(kfp_run):
    if not _image_available(TEST_IMAGE):
        pytest.skip(f'no image {TEST_IMAGE}: build it with `make image` (needs Docker)')
    run = kfp_run['run']
    in_image = run.run_task('ErrorAnalysis', image=TEST_IMAGE, attempt='-in-image')
    assert in_image.image == TEST_IMAGE
    report = in_image.outputs['report']
    assert report.uri != _report(kfp_run).uri
    assert (Path(report.uri) / files.REPORT_HTML).is_file()
    on_host = _report(kfp_run).metadata
    for key in (files.NUM_EXAMPLES, files.NUM_ERRORS, files.REPORT_VERSION):
        assert report.metadata[key] == on_host[key], key
    assert 'PrismRunner' not in in_image.log.read_text(errors='replace')


def test_preflight_runs_in_the_image(kfp_run):
    """The csv pipeline's first step in the image: it reads the data where it lies (the
    mounted root standing for the bucket) and finds it as compiled."""
    if not _image_available(TEST_IMAGE):
        pytest.skip(f'no image {TEST_IMAGE}: build it with `make image` (needs Docker)')
    in_image = kfp_run['run'].run_task(runner.PREFLIGHT_TASK, image=TEST_IMAGE, attempt='-image')
    log = in_image.log.read_text(errors='replace')
    assert f'CsvPreflight: {SAMPLE_ROWS} rows in 1 file(s) checked' in log


# --- The csv pipeline's own steps: the full preflight first, the data read in place.


def test_preflight_checked_every_row_before_example_gen(kfp_run):
    run, spec = kfp_run['run'], kfp_run['spec']
    assert task_order(spec)[0] == runner.PREFLIGHT_TASK
    assert spec['root']['dag']['tasks']['CsvExampleGen']['dependentTasks'] == [
        runner.PREFLIGHT_TASK
    ]
    log = run.tasks[runner.PREFLIGHT_TASK].log.read_text(errors='replace')
    assert f'CsvPreflight: {SAMPLE_ROWS} rows in 1 file(s) checked' in log


def test_missing_value_tokens_read_as_missing_numbers(kfp_run):
    """'NA' cells of the numeric column 'rating' reach CsvExampleGen's executor through its
    custom_config and are read as missing: the column is written as int64, not as text."""
    import tensorflow as tf

    examples = kfp_run['run'].tasks['CsvExampleGen'].outputs['examples']
    records = tf.data.TFRecordDataset(
        sorted(str(p) for p in Path(examples.uri).glob('Split-train/*.gz')), 'GZIP'
    )
    kinds, empty = set(), 0
    for record in records.take(200):
        feature = tf.train.Example.FromString(record.numpy()).features.feature['rating']
        kinds.add(feature.WhichOneof('kind'))
        empty += len(feature.int64_list.value) == 0
    assert kinds == {'int64_list'}
    assert 0 < empty < 200  # the 'NA' rows (1 in 9), as empty lists


def test_bad_file_fails_the_run_in_its_preflight_step(tmp_path):
    """A malformed row past the compile-time sample: the spec compiles (the sample is good),
    and the run fails in CsvPreflight, before CsvExampleGen, with the one-line message the
    local runner gives for the same file."""
    data = write_customers(tmp_path / 'customers.csv', rows=200)
    lines = data.read_text().splitlines(keepends=True)
    lines[150] = '1,2,3\n'  # 3 values, 8 columns
    data.write_text(''.join(lines))
    expected = None
    try:
        preflight.scan_csv_files([data], 'spend')
    except preflight.PreflightError as e:
        expected = str(e)
    assert expected and 'line 151: 3 values but the header has 8 columns' in expected
    spec = _compile(data, tmp_path / 'compiled', '--sample-rows', '100')
    run = LocalKfpRun(spec, tmp_path / 'root', path_map={ROOT: str(tmp_path / 'root')})
    with pytest.raises(TaskFailed) as failed:
        run.run()
    assert str(failed.value).startswith(f'task {runner.PREFLIGHT_TASK} exited with status 1')
    assert list(run.tasks) == []  # CsvExampleGen and the rest never started
    last_line = str(failed.value).rstrip().splitlines()[-1]
    assert last_line == f'blindspot.pipelines.preflight.PreflightError: {expected}'


def test_taxi_schema_is_read_from_the_image_path(tmp_path):
    """Taxi's own step: ImportSchemaGen reads the schema at its path inside the image (mapped to
    the repository's here, as the image holds it)."""
    spec = _compile(None, tmp_path / 'compiled', pipeline='taxi')
    run = LocalKfpRun(
        spec,
        tmp_path / 'root',
        path_map={ROOT: str(tmp_path / 'root')},
        host_path_map={f'{runner.CONTAINER_ROOT}/': f'{runner.REPO_ROOT}/'},
    )
    schema = run.run_task('ImportSchemaGen').outputs['schema']
    copied = (Path(schema.uri) / 'schema.pbtxt').read_text()
    assert copied == (runner.REPO_ROOT / 'schemas' / 'taxi' / 'schema.pbtxt').read_text()
