"""The compiled Kubeflow pipeline, run on this machine the way open-source Kubeflow Pipelines runs
it (kubeflow/local_run.py): taxi compiled by kubeflow/runner.py as `make kubeflow` compiles it,
then every task's own container command and args from the spec, in dependency order, with the
ExecutorInput KFP's driver would build (input artifacts named by their metadata id, typed by the
producer's schema, their recorded properties as metadata; parameters from the spec's constants),
each task's outputs recorded as KFP's launcher records them and handed to the next tasks.

This is the strongest check there is without a cluster, and it cannot see: KFP's driver and
launcher themselves, Argo and the pods, GCS (the compiler accepts gs:// roots only, so the spec
is compiled with one and its parameters' gs:// paths are rewritten to a local folder; output
URIs are local), ML Metadata recording (emulated in memory), KFP's step cache. The steps run on
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
from blindspot.kubeflow.local_run import LocalKfpRun, condition_holds, task_order
from blindspot.pipelines.config import DIRECT_RUNNER_ARGS
from blindspot.review.metadata import custom_value
from tests.conftest import write_sample

ROOT = 'gs://blindspot-local-kfp/root'
SAMPLE_ROWS = 400
TRAIN_STEPS = 20
TEST_IMAGE = os.environ.get('BLINDSPOT_TEST_IMAGE', 'blindspot:local')
BEAM_TASKS = ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator', 'ErrorAnalysis')


@pytest.fixture(scope='module')
def kfp_run(tmp_path_factory):
    """Compiles taxi for open-source KFP and runs every task of the spec on a 400-row sample."""
    work = tmp_path_factory.mktemp('kfp_local')
    data = write_sample(work / 'data', rows=SAMPLE_ROWS)
    out = work / 'compiled'
    assert (
        runner.main(
            [
                '--pipeline',
                'taxi',
                '--image',
                TEST_IMAGE,
                '--pipeline-root',
                ROOT,
                '--output-dir',
                str(out),
                '--train-steps',
                str(TRAIN_STEPS),
                '--eval-steps',
                '5',
                '--min-accuracy',
                '0',  # blessed whatever 20 steps give: the Pusher must push
                '--max-slice-error-rate',
                '1',  # the slice gate (mode 'any' on open-source KFP) lets it through
            ]
        )
        == 0
    )
    spec = json.loads((out / 'taxi_job.json').read_text())['pipelineSpec']
    local_root = work / 'root'
    run = LocalKfpRun(
        spec,
        local_root,
        # The data root first: it is under the pipeline root.
        path_map={f'{ROOT}/data/taxi': str(data), ROOT: str(local_root)},
        # The schema path baked into the spec is the image's; on this machine, the repository's.
        host_path_map={f'{runner.CONTAINER_ROOT}/': f'{runner.REPO_ROOT}/'},
    )
    run.run()
    return {'run': run, 'spec': spec, 'root': local_root}


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
    assert not example_gen['input_base'].startswith('gs://')


def test_pusher_pushed(kfp_run):
    run = kfp_run['run']
    assert not run.tasks['Pusher'].skipped
    blessing = run.tasks['Evaluator'].outputs['blessing']
    assert blessing.metadata['blessed'] == 1.0  # an integer, back as a double
    pushed = run.tasks['Pusher'].outputs['pushed_model']
    assert pushed.metadata['pushed'] == 1.0
    destination = Path(pushed.metadata['pushed_destination'])
    assert destination.is_relative_to(kfp_run['root'] / 'serving_model' / 'taxi')
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
