"""The Kubeflow spec, checked without a cluster: compile the taxi pipeline with blindspot.kubeflow.runner
(as `make kubeflow` does) and read the result back as KFP's PipelineSpec proto."""

import json
import os
import re

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from blindspot.error_analysis.settings import Settings
from blindspot.kubeflow import runner
from blindspot.pipelines.config import DIRECT_RUNNER_ARGS

IMAGE = 'registry.example.com/blindspot/blindspot:spec-test'
ROOT = 'gs://test-bucket/root'
TRAIN_STEPS = 321
EVAL_STEPS = 17
MIN_ACCURACY = 0.65
BEAM_ARG = '--experiments=blindspot_spec_test'
TAG_RULES = ['long_trip: trip_miles > 10', 'night: trip_start_hour >= 22']
CONFIG = {
    'beam_args': ['--experiments=from_config'],
    'error_analysis': {
        'num_slices': 7,
        'significance': 0.02,
        'tag_rules': TAG_RULES,
        'tags_file': 'gs://test-bucket/tags/reviewed.csv',
        'tag_references': {'long_trip': 0.95, 'night': 0.9},
    },
    'resources': {'Trainer': {'cpu': 3, 'memory': '6Gi'}, 'StatisticsGen': {'memory': 2}},
}

RESOLVER_MODEL = 'latest_blessed_model_resolver-model-resolver'
RESOLVER_BLESSING = 'latest_blessed_model_resolver-model-blessing-resolver'
TASKS = {
    'CsvExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'Transform',
    'Trainer',
    'Evaluator',
    'ErrorAnalysis',
    'Pusher',
}
BEAM_COMPONENTS = ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator', 'ErrorAnalysis')


def _resolver_tasks(job):
    """Tasks that run a KFP 'resolver' executor (how TFX compiles tfx.dsl.Resolver)."""
    spec = job['pipelineSpec']
    executors = spec['deploymentSpec']['executors']
    return sorted(
        name
        for name, task in spec['root']['dag']['tasks'].items()
        if 'resolver'
        in executors[spec['components'][task['componentRef']['name']]['executorLabel']]
    )


def _compile(out, *extra):
    assert (
        runner.main(
            [
                '--pipeline',
                'taxi',
                '--image',
                IMAGE,
                '--pipeline-root',
                ROOT,
                '--output-dir',
                str(out),
                *extra,
            ]
        )
        == 0
    )
    job = json.loads((out / 'taxi_job.json').read_text())
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job['pipelineSpec'], spec)
    return job, spec


@pytest.fixture(scope='module')
def vertex(tmp_path_factory):
    """--target vertex keeps the comparison with the latest blessed model (resolver tasks)."""
    return _compile(tmp_path_factory.mktemp('vertex'), '--target', 'vertex')


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
    """The default target, open-source KFP."""
    out = tmp_path_factory.mktemp('kubeflow')
    config = out / 'config.yaml'
    config.write_text(yaml.safe_dump(CONFIG))
    code = runner.main(
        [
            '--config',
            str(config),
            '--pipeline',
            'taxi',
            '--image',
            IMAGE,
            '--pipeline-root',
            ROOT + '/',
            '--output-dir',
            str(out),
            '--train-steps',
            str(TRAIN_STEPS),
            '--eval-steps',
            str(EVAL_STEPS),
            '--min-accuracy',
            str(MIN_ACCURACY),
            f'--beam-arg={BEAM_ARG}',
            '--slice-feature',
            'payment_type',
            '--slice-feature',
            'company',
            '--max-predicates',
            '2',
            '--memory',
            'Evaluator=512M',
            '--cpu',
            'ExampleValidator=0.5',
            '--cpu',
            'Trainer=4',  # the flag over the config file's 3
        ]
    )
    assert code == 0
    job = json.loads((out / 'taxi_job.json').read_text())
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job['pipelineSpec'], spec)
    return {'job': job, 'spec': spec, 'yaml': out / 'taxi.yaml'}


def _tasks(spec):
    return spec.root.dag.tasks


def _producers(task):
    """input name → (producer task, its output key)"""
    return {
        name: (a.task_output_artifact.producer_task, a.task_output_artifact.output_artifact_key)
        for name, a in task.inputs.artifacts.items()
    }


def _executor(spec, task_name):
    label = spec.components[_tasks(spec)[task_name].component_ref.name].executor_label
    return json_format.MessageToDict(spec.deployment_spec)['executors'][label]


def _container(spec, task_name):
    return _executor(spec, task_name)['container']


def _param(spec, task_name, name):
    return _tasks(spec)[task_name].inputs.parameters[name].runtime_value.constant


def _lower_bounds(value):
    """Every value_threshold.lower_bound in a JSON structure (the EvalConfig)."""
    if isinstance(value, list):
        return [b for item in value for b in _lower_bounds(item)]
    if not isinstance(value, dict):
        return []
    own = (
        [value['value_threshold']['lower_bound']]
        if 'lower_bound' in value.get('value_threshold', {})
        else []
    )
    return own + [b for item in value.values() for b in _lower_bounds(item)]


def test_every_component_is_a_task(compiled):
    spec = compiled['spec']
    assert set(_tasks(spec)) == TASKS
    assert spec.pipeline_info.name == 'blindspot-taxi'
    assert spec.schema_version == '2.1.0'  # the only version open-source KFP 2.x accepts
    for name, task in _tasks(spec).items():
        assert set(task.dependent_tasks) <= TASKS, name


def test_dependencies(compiled):
    tasks = _tasks(compiled['spec'])
    deps = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    assert _producers(tasks['StatisticsGen']) == {'examples': ('CsvExampleGen', 'examples')}
    assert _producers(tasks['ExampleValidator']) == {
        'statistics': ('StatisticsGen', 'statistics'),
        'schema': ('ImportSchemaGen', 'schema'),
    }
    assert _producers(tasks['Transform']) == {
        'examples': ('CsvExampleGen', 'examples'),
        'schema': ('ImportSchemaGen', 'schema'),
    }
    assert 'ExampleValidator' in deps['Transform']  # the gate: add_upstream_node
    assert _producers(tasks['Trainer']) == {
        'examples': ('Transform', 'transformed_examples'),
        'transform_graph': ('Transform', 'transform_graph'),
        'schema': ('ImportSchemaGen', 'schema'),
    }
    # Open-source KFP runs no resolver: no baseline model for the Evaluator.
    assert _producers(tasks['Evaluator']) == {
        'examples': ('CsvExampleGen', 'examples'),
        'model': ('Trainer', 'model'),
    }
    assert _producers(tasks['ErrorAnalysis']) == {
        'examples': ('CsvExampleGen', 'examples'),
        'model': ('Trainer', 'model'),
        'evaluation': ('Evaluator', 'evaluation'),
        'schema': ('ImportSchemaGen', 'schema'),
    }
    assert _producers(tasks['Pusher']) == {
        'model': ('Trainer', 'model'),
        'model_blessing': ('Evaluator', 'blessing'),
        # tfx.dsl.Cond: the report, for the trigger condition only.
        '_ErrorAnalysis.report': ('ErrorAnalysis', 'report'),
    }
    assert {'ErrorAnalysis', 'Evaluator'} <= deps['Pusher']  # the report comes before a push
    # The slice gate: the Pusher runs only if the report's custom property says it passed.
    # KFP holds that integer as a double, and TFX compiles the comparison so.
    condition = tasks['Pusher'].trigger_policy.condition
    assert 'slice_gate_passed' in condition and 'ErrorAnalysis' in condition, condition
    assert condition.rstrip(' )').endswith('== 1.0'), condition
    for name, task in tasks.items():
        assert {producer for producer, _ in _producers(task).values()} <= deps[name], name
    assert _resolver_tasks(compiled['job']) == []


def test_vertex_target_compares_with_latest_blessed_model(vertex):
    job, spec = vertex
    tasks = _tasks(spec)
    assert set(tasks) == TASKS | {RESOLVER_MODEL, RESOLVER_BLESSING}
    # tfx.dsl.Resolver(LatestBlessedModelStrategy) compiles to two resolver tasks: the latest
    # blessing, then the model it blessed.
    assert _producers(tasks[RESOLVER_MODEL]) == {'input': (RESOLVER_BLESSING, 'model_blessing')}
    assert _producers(tasks['Evaluator'])['baseline_model'] == (RESOLVER_MODEL, 'model')
    blessing = _executor(spec, RESOLVER_BLESSING)['resolver']['outputArtifactQueries']
    model = _executor(spec, RESOLVER_MODEL)['resolver']['outputArtifactQueries']
    assert 'schema_title="tfx.ModelBlessing"' in blessing['model_blessing']['filter']
    assert 'metadata.blessed.number_value=1' in blessing['model_blessing']['filter']
    assert 'schema_title="tfx.Model"' in model['model']['filter']
    assert _resolver_tasks(job) == sorted([RESOLVER_BLESSING, RESOLVER_MODEL])


def test_every_container_runs_the_image(compiled):
    spec = compiled['spec']
    containers = [name for name in TASKS if 'container' in _executor(spec, name)]
    assert set(containers) == TASKS
    for name in containers:
        container = _container(spec, name)
        assert container['image'] == IMAGE, name
        assert container['command'] == [
            'python',
            '-m',
            'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor',
        ]
    executors = {
        args[args.index('--executor_class_path') + 1]
        for args in (_container(spec, name)['args'] for name in containers)
    }
    assert 'blindspot.error_analysis.executor.Executor' in executors
    assert 'blindspot.gated_example_validator.executor.Executor' in executors
    assert 'blindspot.csv_example_gen.executor.Executor' in executors  # batched CSV reading


def test_parameters_as_configured(compiled):
    spec = compiled['spec']
    assert json.loads(_param(spec, 'Trainer', 'train_args').string_value) == {
        'num_steps': TRAIN_STEPS
    }
    assert json.loads(_param(spec, 'Trainer', 'eval_args').string_value) == {
        'num_steps': EVAL_STEPS
    }
    assert _param(spec, 'Trainer', 'run_fn').string_value == 'blindspot.pipelines.taxi.model.run_fn'
    assert _param(spec, 'CsvExampleGen', 'input_base').string_value == ROOT + '/data/taxi'
    assert json.loads(_param(spec, 'Pusher', 'push_destination').string_value) == {
        'filesystem': {'base_directory': ROOT + '/serving_model/taxi'}
    }
    # The schema as it is inside the image (kubeflow/Dockerfile copies schemas/ there).
    assert (
        _param(spec, 'ImportSchemaGen', 'schema_file').string_value
        == '/blindspot/schemas/taxi/schema.pbtxt'
    )
    eval_config = json.loads(_param(spec, 'Evaluator', 'eval_config').string_value)
    assert MIN_ACCURACY in _lower_bounds(eval_config)


def test_example_gen_uncached_on_open_source_kfp(compiled, vertex):
    """Open-source KFP caches on parameters, input artifact ids, image and args, and ignores
    the driver that fingerprints the CSV files: ExampleGen runs every time, so a replaced CSV at
    the same data root gives a new Examples artifact and every step after it keys on it."""
    spec = compiled['spec']
    assert runner.data_reading_tasks(compiled['job']['pipelineSpec']) == ['CsvExampleGen']
    assert not _tasks(spec)['CsvExampleGen'].caching_options.enable_cache
    for name in TASKS - {'CsvExampleGen'}:
        assert _tasks(spec)[name].caching_options.enable_cache, name
    # Vertex AI runs TFX's preCacheCheck driver, which fingerprints the input files: cached.
    _, vertex_spec = vertex
    assert 'preCacheCheck' in _container(vertex_spec, 'CsvExampleGen')['lifecycle']
    assert all(_tasks(vertex_spec)[name].caching_options.enable_cache for name in TASKS)
    # The YAML that open-source KFP uploads says the same.
    docs = [d for d in yaml.safe_load_all(compiled['yaml'].read_text()) if d is not None]
    uploaded = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    assert not uploaded.root.dag.tasks['CsvExampleGen'].caching_options.enable_cache
    assert uploaded.root.dag.tasks['Transform'].caching_options.enable_cache


def test_beam_args(compiled):
    spec = compiled['spec']
    expected = [
        *DIRECT_RUNNER_ARGS,  # DirectRunner, kept off Prism
        '--direct_running_mode=in_memory',
        '--direct_num_workers=1',  # defaults
        '--experiments=from_config',
        BEAM_ARG,
    ]  # config, flag
    for name in BEAM_COMPONENTS:
        assert _container(spec, name)['args'][-len(expected) :] == expected, name
    driver = _container(spec, 'CsvExampleGen')['lifecycle']['preCacheCheck']
    assert BEAM_ARG in driver['args']


def test_another_runner_replaces_the_direct_runner_options():
    flags = runner.parse_args(
        ['--beam-arg=--runner=DataflowRunner', '--beam-arg=--project=p', '--pipeline-root', ROOT]
    )
    settings = runner.resolve_settings(flags, {'image': IMAGE})
    assert settings.beam_pipeline_args() == ['--runner=DataflowRunner', '--project=p']
    explicit = runner.resolve_settings(
        runner.parse_args(['--beam-arg=--runner=direct', '--pipeline-root', ROOT]),
        {'image': IMAGE},
    )
    assert explicit.beam_pipeline_args()[: len(DIRECT_RUNNER_ARGS)] == list(DIRECT_RUNNER_ARGS)


def test_tfx_stages_no_package_for_the_direct_runner_but_does_for_another():
    from tfx.utils import dependency_utils

    from blindspot.pipelines.config import RunConfig

    direct = RunConfig().beam_pipeline_args()
    assert dependency_utils.make_beam_dependency_flags(direct) == direct
    other = RunConfig(beam_args=('--runner=FlinkRunner',)).beam_pipeline_args()
    assert '--sdk_container_image=none' not in other


def test_error_analysis(compiled):
    spec = compiled['spec']
    params = {
        name: _param(spec, 'ErrorAnalysis', name)
        for name in _tasks(spec)['ErrorAnalysis'].inputs.parameters
    }
    assert params['label_key'].string_value == 'big_tipper'
    assert json.loads(params['splits'].string_value) == ['eval']
    assert json.loads(params['slice_features'].string_value) == ['payment_type', 'company']
    assert params['max_predicates'].number_value == 2
    assert params['num_slices'].number_value == 7
    assert params['significance'].number_value == 0.02
    assert params['num_bins'].number_value == Settings().num_bins
    assert params['min_slice_size'].number_value == Settings().min_slice_size
    # Tag settings from the config file (once refused as 'must be a whole number').
    assert json.loads(params['tag_rules'].string_value) == TAG_RULES
    assert params['tags_file'].string_value == 'gs://test-bucket/tags/reviewed.csv'
    assert json.loads(params['tag_references'].string_value) == {'long_trip': 0.95, 'night': 0.9}

    # The custom artifact type: its schema title is the import path the container resolves.
    report = spec.components['ErrorAnalysis'].output_definitions.artifacts['report']
    title = (
        report.artifact_type.schema_title
        or yaml.safe_load(report.artifact_type.instance_schema)['title']
    )
    assert title == 'blindspot.ErrorAnalysisReport'
    from tfx.utils import import_utils

    from blindspot.error_analysis.artifact import ErrorAnalysisReport

    assert import_utils.import_class_by_path(title) is ErrorAnalysisReport


def test_yaml_is_the_uploadable_spec(compiled):
    text = compiled['yaml'].read_text()
    assert text.startswith('# PIPELINE DEFINITION\n# Name: blindspot-taxi\n')
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert len(docs) == 1
    # As kfp.Client().create_run_from_pipeline_package reads it: strict proto parsing.
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    assert spec == compiled['spec']
    assert spec.default_pipeline_root == ROOT
    job = compiled['job']
    assert job['runtimeConfig']['gcsOutputDirectory'] == ROOT
    assert job['displayName'] == 'blindspot-taxi'


def test_image_paths_match_the_dockerfile():
    dockerfile = (runner.REPO_ROOT / 'kubeflow' / 'Dockerfile').read_text()
    assert re.search(rf'^WORKDIR {re.escape(str(runner.CONTAINER_ROOT))}$', dockerfile, re.M)
    for folder in ('pipelines', 'components', 'schemas', 'kubeflow'):
        assert re.search(rf'^COPY {folder}/ {folder}/$', dockerfile, re.M), folder
    assert 'ENV TF_USE_LEGACY_KERAS=1' in dockerfile
    assert (runner.REPO_ROOT / 'schemas' / 'taxi' / 'schema.pbtxt').is_file()


# --- Bad input: refused before anything is compiled.


@pytest.mark.parametrize('image', [None, '', '   '])
def test_missing_image(image):
    with pytest.raises(runner.SettingsError, match='no container image'):
        runner.check_image(image)


@pytest.mark.parametrize(
    'image',
    [
        'Blindspot:latest',
        'bad image:1',
        'blindspot:',
        'blindspot:1:2',
        'ghcr.io//blindspot',
        'http://ghcr.io/blindspot',
        'ghcr.io/you/blindspot@sha256:xyz',
        '-blindspot',
    ],
)
def test_malformed_image(image):
    with pytest.raises(runner.SettingsError, match='malformed image name'):
        runner.check_image(image)


@pytest.mark.parametrize(
    'image',
    [
        'blindspot',
        'blindspot:0.1.0',
        'ghcr.io/you/blindspot:0.1.0',
        'localhost:5000/blindspot:dev',
        'europe-docker.pkg.dev/p/r/blindspot:abc123',
        'ghcr.io/you/blindspot@sha256:' + 'a' * 64,
    ],
)
def test_valid_image(image):
    assert runner.check_image(image) == image


def test_moving_tag_warns():
    assert runner.image_warning('ghcr.io/you/blindspot:latest')
    assert runner.image_warning('localhost:5000/blindspot')
    assert runner.image_warning('ghcr.io/you/blindspot:0.1.0') is None


@pytest.mark.parametrize('root', [None, ''])
def test_missing_pipeline_root(root):
    with pytest.raises(runner.SettingsError, match='no pipeline root'):
        runner.check_storage_uri(root)


@pytest.mark.parametrize('root', ['/tmp/x', './out', 'out', '~/x', 'file:///tmp/x', 'C:\\out'])
def test_local_pipeline_root(root):
    with pytest.raises(runner.SettingsError, match="is a local path.*cannot see this machine's"):
        runner.check_storage_uri(root)


@pytest.mark.parametrize(
    'root',
    ['s3://bucket/x', 'minio://mlpipeline/x', 'hdfs://nn/x', 'https://storage.googleapis.com/b'],
)
def test_unsupported_scheme(root):
    with pytest.raises(runner.SettingsError, match='unsupported scheme'):
        runner.check_storage_uri(root)


@pytest.mark.parametrize(
    'root',
    ['gs://', 'gs:/bucket/x', 'gs://Bad_Bucket/x', 'gs://b/x', 'gs://bucket//x', 'gs://bucket/a b'],
)
def test_malformed_pipeline_root(root):
    with pytest.raises(runner.SettingsError, match='malformed pipeline root'):
        runner.check_storage_uri(root)


def test_pipeline_root_normalised():
    assert runner.check_storage_uri('gs://my-bucket/a/b/') == 'gs://my-bucket/a/b'
    assert runner.check_storage_uri('gs://my-bucket') == 'gs://my-bucket'


def test_unknown_pipeline():
    assert runner.select_pipelines('all', ['taxi', 'mnist']) == ['taxi', 'mnist']
    with pytest.raises(runner.SettingsError, match="unknown pipeline 'nope'"):
        runner.select_pipelines('nope', ['taxi'])


def test_shared_data_root_needs_placeholder():
    settings = runner.KubeflowSettings(
        image=IMAGE, pipeline_root=ROOT, data_root='gs://test-bucket/data'
    )
    with pytest.raises(runner.SettingsError, match='shared by the pipelines'):
        runner.check_data_roots(settings, ['taxi', 'mnist'])
    settings.data_root = 'gs://test-bucket/data/{pipeline}'
    assert runner.check_data_roots(settings, ['taxi', 'mnist']) == {
        'taxi': 'gs://test-bucket/data/taxi',
        'mnist': 'gs://test-bucket/data/mnist',
    }


def test_config_file_checked(tmp_path):
    with pytest.raises(runner.SettingsError, match="unknown setting 'train_step'"):
        runner.parse_config({'train_step': 3})
    with pytest.raises(
        runner.SettingsError, match='train_steps must be a whole number of at least 1'
    ):
        runner.parse_config({'train_steps': '3'})
    with pytest.raises(runner.SettingsError, match='unknown error_analysis setting'):
        runner.parse_config({'error_analysis': {'bins': 3}})
    bad = tmp_path / 'bad.yaml'
    bad.write_text('image: [unclosed\n')
    with pytest.raises(runner.SettingsError, match='not valid YAML'):
        runner.load_config(str(bad))


def test_flags_override_config():
    config = runner.parse_config(
        {
            'image': 'ghcr.io/a/b:1',
            'pipeline-root': 'gs://from-config',
            'train_steps': 5,
            'error_analysis': {'max_predicates': 1},
        }
    )
    flags = runner.parse_args(['--pipeline-root', 'gs://from-flag', '--max-predicates', '2'])
    settings = runner.resolve_settings(flags, config)
    assert (settings.image, settings.pipeline_root, settings.training.train_steps) == (
        'ghcr.io/a/b:1',
        'gs://from-flag',
        5,
    )
    assert settings.error_analysis.max_predicates == 2
    with pytest.raises(runner.SettingsError, match='error_analysis.num_bins'):
        runner.resolve_settings(flags, {**config, 'error_analysis': {'num_bins': 'four'}})


@pytest.mark.parametrize(
    'argv, message',
    [
        ([], 'no container image'),
        (['--image', 'Bad:Image', '--pipeline-root', ROOT], 'malformed image name'),
        (['--image', IMAGE], 'no pipeline root'),
        (['--image', IMAGE, '--pipeline-root', '/tmp/x'], "cannot see this machine's disk"),
        (['--image', IMAGE, '--pipeline-root', 's3://b/x'], 'unsupported scheme s3://'),
        (['--image', IMAGE, '--pipeline-root', ROOT, '--data-root', './data'], 'data root'),
        (['--image', IMAGE, '--pipeline-root', ROOT, '--train-steps', '0'], '--train-steps'),
    ],
)
def test_cli_refuses_bad_input(argv, message, tmp_path, capsys):
    out = tmp_path / 'out'
    assert runner.main(argv + ['--output-dir', str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and message in err[0]
    assert not out.exists()


def test_mnist_compiles_with_import_example_gen(tmp_path):
    assert (
        runner.main(
            [
                '--pipeline',
                'mnist',
                '--image',
                IMAGE,
                '--pipeline-root',
                ROOT,
                '--output-dir',
                str(tmp_path),
            ]
        )
        == 0
    )
    job = json.loads((tmp_path / 'mnist_job.json').read_text())
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job['pipelineSpec'], spec)
    tasks = _tasks(spec)
    assert 'ImportExampleGen' in tasks and 'CsvExampleGen' not in tasks
    assert _producers(tasks['ErrorAnalysis'])['examples'] == ('ImportExampleGen', 'examples')
    assert json.loads(_param(spec, 'ErrorAnalysis', 'image').string_value) == ['image_raw', 28, 28]
    assert json.loads(_param(spec, 'ErrorAnalysis', 'class_names').string_value) == [
        str(d) for d in range(10)
    ]
    for name in tasks:
        assert _container(spec, name)['image'] == IMAGE


def test_local_runs_get_the_same_runner_options():
    """local_runner.py and the compiler share RunConfig.beam_pipeline_args."""
    from blindspot.pipelines.config import RunConfig, beam_runner

    assert RunConfig().beam_pipeline_args() == [
        *DIRECT_RUNNER_ARGS,
        '--direct_running_mode=in_memory',
        '--direct_num_workers=1',
    ]
    multi = RunConfig(beam_mode='multi_process', workers=3).beam_pipeline_args()
    assert multi[-2:] == ['--direct_running_mode=multi_processing', '--direct_num_workers=3']
    flink = RunConfig(beam_args=('--runner', 'FlinkRunner', '--flink_master=localhost:8081'))
    assert flink.beam_pipeline_args() == [
        '--runner',
        'FlinkRunner',
        '--flink_master=localhost:8081',
    ]
    assert beam_runner(['--runner=A', '--runner', 'B']) == 'B'
    assert beam_runner(['--project=p']) is None


# --- Resources: what each step's pod requests.


def _resources(spec, task_name):
    return _container(spec, task_name).get('resources', {})


def test_resource_requests_in_the_spec(compiled):
    """Defaults for the steps that hold data or a model, then the config file, then flags; in
    the container spec's ResourceSpec (cpuRequest in cores, memoryRequest in GB), which KFP
    turns into the pod's requests."""
    spec = compiled['spec']
    assert _resources(spec, 'Trainer') == {'cpuRequest': 4.0, 'memoryRequest': 6.442451}
    assert _resources(spec, 'Evaluator') == {'cpuRequest': 1.0, 'memoryRequest': 0.512}
    assert _resources(spec, 'ExampleValidator') == {'cpuRequest': 0.5}
    assert _resources(spec, 'StatisticsGen') == {'memoryRequest': 2.0}
    for name in ('Transform', 'ErrorAnalysis'):
        default = runner.DEFAULT_RESOURCES[name]
        assert _resources(spec, name) == {
            'cpuRequest': default['cpu'],
            'memoryRequest': default['memory'],
        }
    for name in ('CsvExampleGen', 'ImportSchemaGen', 'Pusher'):
        assert _resources(spec, name) == {}, name
    # The YAML that KFP uploads carries them too.
    docs = [d for d in yaml.safe_load_all(compiled['yaml'].read_text()) if d is not None]
    executors = docs[0]['deploymentSpec']['executors']
    label = docs[0]['components']['Trainer']['executorLabel']
    assert executors[label]['container']['resources'] == {
        'cpuRequest': 4.0,
        'memoryRequest': 6.442451,
    }


@pytest.mark.parametrize(
    'extra, message',
    [
        (['--cpu', 'Trainr=2'], "resources for 'Trainr', which is not a step of the taxi pipeline"),
        (['--memory', 'Trainer=8X'], 'memory must be a positive size'),
        (['--memory', 'Trainer'], '--memory takes STEP=8G'),
        (['--cpu', 'Trainer=-1'], 'cpu must be a positive number of cores'),
    ],
)
def test_bad_resources_refused(extra, message, tmp_path, capsys):
    argv = ['--pipeline', 'taxi', '--image', IMAGE, '--pipeline-root', ROOT]
    assert runner.main([*argv, '--output-dir', str(tmp_path / 'out'), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('note:')]
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / 'out').exists()


def test_example_config_placeholders_refused(tmp_path, capsys):
    """`make kubeflow` without ARGS compiles kubeflow/config.example.yaml as it is: its image
    and bucket are placeholders, refused in one line each instead of compiled into a spec whose
    pods cannot pull the image or write the bucket."""
    import subprocess
    import sys

    example = str(runner.REPO_ROOT / 'kubeflow' / 'config.example.yaml')
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, '-m', 'blindspot.kubeflow.runner', '--config', example],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is the example config's placeholder" in lines[0], lines
    assert not (tmp_path / runner.DEFAULT_OUTPUT_DIR).exists()
    argv = ['--config', example, '--image', IMAGE, '--output-dir', str(out)]
    assert runner.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in the example config's placeholder bucket" in err[0], err
    assert runner.main([*argv, '--pipeline-root', ROOT, '--pipeline', 'taxi']) == 0


# --- The csv pipeline: your own CSV, read in place.

CSV_TASKS = (TASKS - {'ImportSchemaGen'}) | {'SchemaGen', runner.PREFLIGHT_TASK}


def _write_csv(path, rows=120, label=lambda i: ('yes', 'no')[i % 2], extra=''):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'size,colour,score,y\n'
        + ''.join(
            f'{i % 7},{("red", "blue")[i % 2]},{"NA" if i % 5 == 0 else i},{label(i)}\n'
            for i in range(rows)
        )
        + extra
    )
    return path


def _compile_csv(data, out, *extra, label='y'):
    argv = ['--pipeline', 'csv', '--data', str(data), '--label', label, '--allow-local-data']
    assert (
        runner.main(
            [*argv, '--image', IMAGE, '--pipeline-root', ROOT, '--output-dir', str(out), *extra]
        )
        == 0
    )
    job = json.loads((out / 'csv_job.json').read_text())
    return job, json_format.ParseDict(job['pipelineSpec'], pipeline_spec_pb2.PipelineSpec())


@pytest.fixture(scope='module')
def csv_compiled(tmp_path_factory):
    work = tmp_path_factory.mktemp('csv')
    data = _write_csv(work / 'data' / 'shop.csv')
    job, spec = _compile_csv(data, work / 'out')
    return {'job': job, 'spec': spec, 'data': data, 'work': work}


def _example_gen_options(spec):
    config = json.loads(_param(spec, 'CsvExampleGen', 'custom_config').string_value)
    return config['customConfig']['value']


def test_csv_spec_tasks_and_order(csv_compiled):
    spec = csv_compiled['spec']
    tasks = _tasks(spec)
    assert set(tasks) == CSV_TASKS
    assert spec.pipeline_info.name == 'blindspot-csv-shop-y'
    # The preflight first: nothing before it, ExampleGen waits for it.
    assert list(tasks[runner.PREFLIGHT_TASK].dependent_tasks) == []
    assert list(tasks['CsvExampleGen'].dependent_tasks) == [runner.PREFLIGHT_TASK]
    assert _producers(tasks['Transform'])['schema'] == ('SchemaGen', 'schema')
    args = _container(spec, runner.PREFLIGHT_TASK)['args']
    assert args[args.index('--executor_class_path') + 1] == (
        'blindspot.pipelines.csv.preflight_step.Executor'
    )
    for name in tasks:
        assert _container(spec, name)['image'] == IMAGE, name
    # The preflight runs every time; everything else is cached per data (the fingerprint).
    assert not tasks[runner.PREFLIGHT_TASK].caching_options.enable_cache
    for name in CSV_TASKS - {runner.PREFLIGHT_TASK}:
        assert tasks[name].caching_options.enable_cache, name
    assert json.loads(_param(spec, 'Pusher', 'push_destination').string_value) == {
        'filesystem': {'base_directory': ROOT + '/serving_model/csv-shop-y'}
    }


def test_csv_data_read_in_place_with_its_fingerprint(csv_compiled):
    spec, data = csv_compiled['spec'], csv_compiled['data']
    assert _param(spec, 'CsvExampleGen', 'input_base').string_value == str(data.parent)
    input_config = json.loads(_param(spec, 'CsvExampleGen', 'input_config').string_value)
    assert input_config['splits'] == [{'name': 'single_split', 'pattern': 'shop.csv'}]
    options = _example_gen_options(spec)
    assert options['missing_tokens'] == {'score': ['NA']}
    fingerprint = _param(spec, runner.PREFLIGHT_TASK, 'data_fingerprint').string_value
    assert options['data_fingerprint'] == fingerprint
    expected = json.loads(_param(spec, runner.PREFLIGHT_TASK, 'expected').string_value)
    assert expected['label_classes'] == ['no', 'yes'] and expected['sample_rows'] == 120
    assert expected['types'] == {'size': 'int', 'colour': 'string', 'score': 'int', 'y': 'string'}
    transform = json.loads(_param(spec, 'Transform', 'custom_config').string_value)
    assert transform['label_classes'] == ['yes', 'no']


def test_csv_fingerprint_follows_the_data(csv_compiled):
    """A changed file gives another fingerprint in CsvExampleGen's parameters (so KFP's cache
    key changes); the unchanged file compiles to the same one (the cache holds)."""
    work, data = csv_compiled['work'], csv_compiled['data']
    before = _example_gen_options(csv_compiled['spec'])['data_fingerprint']
    _, again = _compile_csv(data, work / 'again')
    assert _example_gen_options(again)['data_fingerprint'] == before
    changed = _write_csv(work / 'changed' / 'shop.csv', rows=121)
    _, spec = _compile_csv(changed, work / 'changed-out')
    assert _example_gen_options(spec)['data_fingerprint'] != before


def test_csv_sample_is_bounded(tmp_path, capsys):
    """Only --sample-rows rows are read when compiling: a bad row past them is left to the
    pipeline's CsvPreflight step, a bad row within them is refused here in one line."""
    data = _write_csv(tmp_path / 'd' / 'shop.csv', extra='1,2\n' + '1,red,3,yes\n' * 20)
    job, _ = _compile_csv(data, tmp_path / 'out', '--sample-rows', '100')
    expected = json.loads(
        job['pipelineSpec']['root']['dag']['tasks'][runner.PREFLIGHT_TASK]['inputs']['parameters'][
            'expected'
        ]['runtimeValue']['constant']
    )
    assert expected['sample_rows'] == 100
    capsys.readouterr()
    argv = ['--pipeline', 'csv', '--data', str(data), '--label', 'y', '--allow-local-data']
    assert (
        runner.main(
            [*argv, '--image', IMAGE, '--pipeline-root', ROOT, '--output-dir', str(tmp_path / 'o2')]
        )
        == 2
    )
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('note:')]
    assert len(err) == 1 and 'line 122: 2 values but the header has 4 columns' in err[0], err


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--pipeline', 'csv', '--label', 'y'], '--pipeline csv needs --data gs://BUCKET/PATH'),
        (
            ['--pipeline', 'csv', '--data', '/tmp/x.csv', '--label', 'y'],
            "cannot see this machine's disk",
        ),
        (
            ['--pipeline', 'csv', '--data', 's3://b/x.csv', '--label', 'y'],
            'unsupported scheme s3://',
        ),
        (['--pipeline', 'taxi', '--data', 'gs://test-bucket/x.csv'], 'apply to --pipeline csv'),
        (
            ['--pipeline', 'csv', '--data', '{missing}', '--allow-local-data', '--label', 'y'],
            'does not exist',
        ),
        (
            ['--pipeline', 'csv', '--data', '{data}', '--allow-local-data'],
            'needs --label COLUMN, the column to predict; the data has: size, colour, score, y',
        ),
        (
            ['--pipeline', 'csv', '--data', '{data}', '--allow-local-data', '--label', 'z'],
            "no column 'z' (--label)",
        ),
        (
            [
                '--pipeline',
                'csv',
                '--data',
                '{data}',
                '--allow-local-data',
                '--label',
                'y',
                '--sample-rows',
                '-1',
            ],
            '--sample-rows must be a whole number',
        ),
    ],
)
def test_csv_refusals(argv, message, tmp_path, capsys):
    data = _write_csv(tmp_path / 'd' / 'shop.csv')
    argv = [a.format(data=data, missing=tmp_path / 'none.csv') for a in argv]
    out = tmp_path / 'out'
    assert (
        runner.main([*argv, '--image', IMAGE, '--pipeline-root', ROOT, '--output-dir', str(out)])
        == 2
    )
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('note:')]
    assert len(err) == 1 and err[0].startswith('error: ') and message in err[0], err
    assert not out.exists()


def test_csv_preflight_step_refuses_changed_or_contradicting_data(csv_compiled, tmp_path):
    """The CsvPreflight executor's checks, in this process: the data it was compiled for
    passes; a file changed since compiling, or one whose full rows contradict the compiled
    sample (a new class, a new missing-value token), is refused in one line."""
    import shutil

    from blindspot.pipelines.csv import preflight_step
    from blindspot.pipelines.preflight import PreflightError

    tasks = csv_compiled['job']['pipelineSpec']['root']['dag']['tasks']
    params = {
        k: v['runtimeValue']['constant']
        for k, v in tasks[runner.PREFLIGHT_TASK]['inputs']['parameters'].items()
    }
    preflight_step.check(params)  # the data it was compiled for
    copy = tmp_path / 'shop.csv'
    shutil.copy2(csv_compiled['data'], copy)  # same name, size and modification time
    moved = {**params, 'input_base': str(tmp_path)}
    preflight_step.check(moved)
    # Rewritten within the same second, same size: only the nanoseconds tell.
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    with pytest.raises(PreflightError, match='changed after this pipeline was compiled'):
        preflight_step.check(moved)
    for extra, message in (
        ('1,red,3,maybe\n', "the label 'y' has classes the sample did not have: 'maybe' (1 rows)"),
        ('1,red,null,yes\n', "'null' in column 'score' (missing values) past the sample"),
        ('1,red,3.5,yes\n', "column 'score' is float (in the sample: int)"),
    ):
        _write_csv(copy, extra=extra)
        fingerprint = source_fingerprint(tmp_path, 'shop.csv')
        with pytest.raises(PreflightError, match=re.escape(message)):
            preflight_step.check({**moved, 'data_fingerprint': fingerprint})


def source_fingerprint(folder, pattern):
    from blindspot.pipelines.csv import source

    return source.locate(str(folder), str(folder), pattern).fingerprint()


def test_csv_regression_compiles_and_is_checked_as_compiled(tmp_path):
    """A label of many numbers compiles to the regression pipeline (as locally), and the
    pipeline's CsvPreflight scans the full data for the task it was compiled for."""
    data = tmp_path / 'd' / 'prices.csv'
    data.parent.mkdir()
    data.write_text(
        'size,colour,price\n' + ''.join(f'{i % 9},red,{i * 1.5 + 3}\n' for i in range(80))
    )
    job, spec = _compile_csv(data, tmp_path / 'out', label='price')
    transform = json.loads(_param(spec, 'Transform', 'custom_config').string_value)
    assert transform['task'] == 'regression' and transform['label_classes'] == []
    expected = json.loads(_param(spec, runner.PREFLIGHT_TASK, 'expected').string_value)
    assert expected['task'] == 'regression'
    _, forced = _compile_csv(data, tmp_path / 'forced', '--task', 'classification', label='size')
    assert json.loads(_param(forced, 'Transform', 'custom_config').string_value)['task'] == (
        'classification'
    )


def test_a_tag_reference_on_a_csv_regression_is_refused(tmp_path, capsys):
    """As locally: a regression's tags are ranked against the rest's MAE, so an accuracy to
    reach is refused in one line before compiling."""
    data = tmp_path / 'd' / 'prices.csv'
    data.parent.mkdir()
    data.write_text('size,price\n' + ''.join(f'{i % 9},{i * 1.5 + 3}\n' for i in range(80)))
    out = tmp_path / 'out'
    argv = ['--pipeline', 'csv', '--data', str(data), '--label', 'price', '--allow-local-data']
    tags = ['--tag-rule', 'small: size < 3', '--tag-reference', 'small=0.9']
    argv += [*tags, '--image', IMAGE, '--pipeline-root', ROOT, '--output-dir', str(out)]
    assert runner.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error: ')]
    assert len(err) == 1 and 'tag references are accuracies, for a classifier' in err[0], err
    assert not out.exists()


def _upper_bounds(value):
    """(metric, upper bound) of every value_threshold in the EvalConfig's JSON."""
    found = []
    for metric in value['metrics_specs'][0]['metrics']:
        for threshold in metric.get('per_slice_thresholds', []):
            bound = threshold['threshold'].get('value_threshold', {}).get('upper_bound')
            if bound is not None:
                found.append((metric['class_name'], bound))
    return found


def test_csv_regression_takes_the_local_runners_training_flags(tmp_path):
    """The training settings are declared once (pipelines/config.py TrainingSettings): the
    regressor's loss, a column hidden from the model and the blessing's error bound reach the
    compiled Transform, Trainer and Evaluator, from flags or from the config file's keys."""
    data = tmp_path / 'd' / 'prices.csv'
    data.parent.mkdir()
    rows = ''.join(f'{i % 9},red,{i},{i * 1.5 + 3}\n' for i in range(80))
    data.write_text('size,colour,ticket,price\n' + rows)
    flags = ['--loss', 'huber', '--exclude-feature', 'ticket', '--max-mae', '2.5']
    _, spec = _compile_csv(data, tmp_path / 'out', *flags, '--train-steps', '7', label='price')
    transform = json.loads(_param(spec, 'Transform', 'custom_config').string_value)
    trainer = json.loads(_param(spec, 'Trainer', 'custom_config').string_value)
    evaluation = json.loads(_param(spec, 'Evaluator', 'eval_config').string_value)
    assert 'ticket' in transform['ignore'] and 'ticket' not in transform['vocabularies']
    assert trainer['loss'] == 'huber'
    assert json.loads(_param(spec, 'Trainer', 'train_args').string_value)['num_steps'] == 7
    assert ('MeanAbsoluteError', 2.5) in _upper_bounds(evaluation)
    config = tmp_path / 'config.yaml'
    config.write_text('max_rmse: 4.0\nloss: mse\nexclude_features: [ticket]\n')
    _, from_yaml = _compile_csv(data, tmp_path / 'yaml', '--config', str(config), label='price')
    evaluation = json.loads(_param(from_yaml, 'Evaluator', 'eval_config').string_value)
    assert ('RootMeanSquaredError', 4.0) in [
        (c.split('.')[-1], b) for c, b in _upper_bounds(evaluation)
    ]


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--pipeline', 'taxi', '--max-rmse', '3'], '--max-rmse and --max-mae bless a regressor'),
        (['--pipeline', 'taxi', '--loss', 'huber'], '--loss apply to --pipeline csv, not to taxi'),
        (['--pipeline', 'mnist', '--exclude-feature', 'x'], '--exclude-feature apply to'),
        (['--max-rmse', '1', '--max-mae', '1'], '--max-rmse and --max-mae both given'),
        (['--max-error-increase', '-1'], '--max-error-increase must be 0 or more'),
    ],
)
def test_training_flags_refused_in_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / 'out'
    argv = [*argv, '--image', IMAGE, '--pipeline-root', ROOT, '--output-dir', str(out)]
    assert runner.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('note:')]
    assert len(err) == 1 and err[0].startswith('error: ') and message in err[0], err
    assert not out.exists()


def test_config_file_training_keys_checked():
    with pytest.raises(runner.SettingsError, match='config: max_mae must be a positive number'):
        runner.parse_config({'max_mae': -1})
    with pytest.raises(runner.SettingsError, match='config: loss must be one of mse, huber'):
        runner.parse_config({'loss': 'l1'})


def test_csv_preflight_reads_the_rows_on_the_pipelines_beam_runner(csv_compiled, tmp_path):
    """CsvPreflight counts the rows in Beam (one file per element), so the runner the
    pipeline's Beam steps get (--beam-arg) reads the data there too."""
    default = _container(csv_compiled['spec'], runner.PREFLIGHT_TASK)['args']
    assert default[-len(DIRECT_RUNNER_ARGS) - 2 : -2] == list(DIRECT_RUNNER_ARGS)
    _, spec = _compile_csv(
        csv_compiled['data'], tmp_path / 'out', '--beam-arg=--runner=FlinkRunner'
    )
    args = _container(spec, runner.PREFLIGHT_TASK)['args']
    assert args[-1] == '--runner=FlinkRunner' and '--direct_running_mode=in_memory' not in args
