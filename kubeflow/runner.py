"""Compile Blindspot's pipelines for Kubeflow Pipelines.

    python -m blindspot.kubeflow.runner --image REGISTRY/blindspot:TAG --pipeline-root gs://BUCKET/blindspot
    python -m blindspot.kubeflow.runner --pipeline csv --data gs://BUCKET/data.csv --label COL ...
    python -m blindspot.kubeflow.runner --config my-config.yaml --train-steps 2000
    python -m blindspot.kubeflow.runner --help

Each pipeline (`--pipeline all`, the default, is every packaged one,
blindspot.pipelines.datasets.PACKAGED; `--pipeline csv` is your own CSV, `--data` and `--label`)
is built by the same `blindspot.pipelines.pipeline.create_pipeline` the local runner calls and
compiled by TFX's KubeflowV2DagRunner into

    OUTPUT_DIR/<pipeline>.yaml      the pipeline spec (KFP IR, schema 2.1.0) that open-source
                                    Kubeflow Pipelines uploads and runs
    OUTPUT_DIR/<pipeline>_job.json  the PipelineJob (the same spec plus its runtime config)

Nothing here talks to a cluster, and nothing is written to a bucket; for --pipeline csv the
data is read where it lies, a bounded sample of it (--sample-rows), for the preflight checks
and the model settings; the compiled pipeline's first step, CsvPreflight, checks every row.
Settings: built-in defaults, then the --config file, then flags. Bad settings stop with a
one-line error (exit status 2) before anything is compiled.
"""

import argparse
import copy
import dataclasses
import json
import os
import re
import sys
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from blindspot.error_analysis.settings import Settings as ErrorAnalysisSettings  # noqa: E402
from blindspot.error_analysis.settings import SettingsError as ErrorAnalysisSettingsError  # noqa: E402
from blindspot.pipelines.config import RunConfig, TrainingSettings  # noqa: E402  (light: no TensorFlow)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where kubeflow/Dockerfile puts the repository inside the image (its WORKDIR). Paths baked into
# the spec that the steps read inside their container (the schema) are under it.
CONTAINER_ROOT = PurePosixPath('/blindspot')
DEFAULT_OUTPUT_DIR = 'build/kubeflow'
PREFLIGHT_TASK = 'CsvPreflight'  # the csv pipeline's first step (pipelines/csv/preflight_step.py)
TARGETS = ('kfp', 'vertex')
TASKS = ('classification', 'regression')  # --pipeline csv (pipelines/preflight.py label_task)
# TFX's steps read and write every artifact under the pipeline root, and their data, with
# TensorFlow's file system; in the pinned working set (TF 2.16 + tensorflow-io-gcs-filesystem,
# no tensorflow-io) that knows gs:// only.
SUPPORTED_SCHEMES = ('gs',)
_S3_LIKE = ('s3', 'minio')

# Rows of a --pipeline csv file read when compiling (0: every row).
DEFAULT_SAMPLE_ROWS = 100_000
# What kubeflow/config.example.yaml holds until it is edited: refused, not compiled into a spec
# whose pods could not pull the image or write the bucket.
PLACEHOLDERS = ('your-org', 'your-bucket')
# CPU (cores) and memory (GB) each step's pod requests, for the steps that hold data or a model
# in memory (the others get the cluster's defaults); --cpu / --memory / `resources:` override.
# On the in-pod DirectRunner one core does the Beam work; the Trainer's TensorFlow uses two.
DEFAULT_RESOURCES: Dict[str, Dict[str, float]] = {
    'Transform': {'cpu': 1, 'memory': 4},
    'Trainer': {'cpu': 2, 'memory': 4},
    'Evaluator': {'cpu': 1, 'memory': 4},
    'ErrorAnalysis': {'cpu': 1, 'memory': 4},
}


class SettingsError(ValueError):
    """A bad setting; the message is one line for the user."""


# ---------------------------------------------------------------------------------------------
# Validation: small pure functions.

# Docker's reference grammar (distribution/reference), without the normalisation step.
_DOMAIN = (
    r'(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
    r'(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?'
)
_PATH_COMPONENT = r'[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
_TAG = r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'
_DIGEST = r'[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}'


def _is_image_reference(image: str) -> bool:
    name, _, digest = image.partition('@')
    if '@' in image and not re.fullmatch(_DIGEST, digest):
        return False
    colon, slash = name.rfind(':'), name.rfind('/')
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not re.fullmatch(_TAG, tag):
            return False
    if not name or len(name) > 255:
        return False
    parts = name.split('/')
    if len(parts) > 1 and ('.' in parts[0] or ':' in parts[0] or parts[0] == 'localhost'):
        if not re.fullmatch(_DOMAIN, parts[0]):
            return False
        parts = parts[1:]
    return all(re.fullmatch(_PATH_COMPONENT, part) for part in parts)


def check_image(image: Optional[str]) -> str:
    """The container image every step runs in, as given; SettingsError if missing or malformed."""
    if image is None or not str(image).strip():
        raise SettingsError(
            'no container image: pass --image REGISTRY/blindspot:TAG, the image built from '
            'kubeflow/Dockerfile and pushed where the cluster can pull it'
        )
    image = str(image).strip()
    if not _is_image_reference(image):
        raise SettingsError(
            f'malformed image name {image!r}: expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST] '
            'with a lowercase NAME, e.g. ghcr.io/you/blindspot:0.1.0'
        )
    if any(p in image.split('/') for p in PLACEHOLDERS):
        raise SettingsError(
            f"image {image} is the example config's placeholder: build and push the image "
            '(make image IMAGE=REGISTRY/blindspot:TAG; docker push ...) and pass --image with '
            'it, or set image: in your copy of kubeflow/config.example.yaml'
        )
    return image


def image_warning(image: str) -> Optional[str]:
    """A warning for a moving tag: KFP's cache key includes the image name, not its content."""
    name = image.partition('@')[0]
    has_digest = '@' in image
    tag = name[name.rfind(':') + 1 :] if name.rfind(':') > name.rfind('/') else None
    if has_digest or (tag and tag != 'latest'):
        return None
    return (
        f"image {image!r} has no fixed tag: Kubeflow's cache keys on the image name, so steps "
        'can be served from runs made with an older image; tag each build (e.g. with the '
        'git commit)'
    )


_GCS_BUCKET = r'[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]'


def check_storage_uri(
    uri: Optional[str], what: str = 'pipeline root', flag: str = '--pipeline-root'
) -> str:
    """A cluster storage URI (gs://BUCKET[/PATH]) without a trailing slash; SettingsError if it
    is missing, a local path, malformed, or of a scheme the image cannot read."""
    example = 'gs://BUCKET/blindspot'
    if uri is None or not str(uri).strip():
        raise SettingsError(
            f'no {what}: pass {flag} {example}, storage that the pipeline pods can read and write'
        )
    uri = str(uri).strip()
    scheme_match = re.match(r'([A-Za-z][A-Za-z0-9+.-]*):', uri)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    if scheme in (None, 'file') or len(scheme) == 1:
        # No scheme (/tmp/x, ./out, out, ~/x), file://, or a Windows drive letter (C:).
        raise SettingsError(
            f'{what} {uri!r} is a local path: Kubeflow runs every step in a pod on the cluster, '
            f"which cannot see this machine's disk; pass a bucket URI such as {example}"
        )
    if any(c.isspace() for c in uri) or not uri[len(scheme) + 1 :].startswith('//'):
        raise SettingsError(f'malformed {what} {uri!r}: expected {scheme}://BUCKET[/PATH]')
    if scheme not in SUPPORTED_SCHEMES:
        why = (
            " (TFX reads and writes artifacts with TensorFlow's file system, which in this "
            'image, TF 2.16 without tensorflow-io, knows gs:// only)'
            if scheme in _S3_LIKE
            else ''
        )
        raise SettingsError(
            f'{what} {uri!r}: unsupported scheme {scheme}://{why}; use '
            f'{" or ".join(s + "://" for s in SUPPORTED_SCHEMES)}, e.g. {example}'
        )
    rest = uri[len(scheme) + 3 :].rstrip('/')
    bucket, _, path = rest.partition('/')
    if not re.fullmatch(_GCS_BUCKET, bucket) or '//' in rest:
        raise SettingsError(
            f'malformed {what} {uri!r}: expected gs://BUCKET[/PATH] with a bucket '
            'name of 3-63 lowercase letters, digits, dashes, underscores or dots'
        )
    if bucket in PLACEHOLDERS:
        raise SettingsError(
            f"{what} {uri} is in the example config's placeholder bucket: pass {flag} with a "
            'bucket the pipeline pods can read and write, or set it in your copy of '
            'kubeflow/config.example.yaml'
        )
    return f'{scheme}://{rest}'


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise SettingsError(f'--target must be one of {", ".join(TARGETS)}, got {target!r}')
    return target


def select_pipelines(selection: str, available: Sequence[str]) -> List[str]:
    """'all' or one registered pipeline name → the names to compile."""
    if selection == 'all':
        return list(available)
    if selection not in available:
        raise SettingsError(
            f"unknown pipeline {selection!r}: choose 'all' or one of {', '.join(sorted(available))}"
        )
    return [selection]


_MEMORY_UNITS = {
    '': 1.0,
    'g': 1.0,
    'gb': 1.0,
    'gi': 2**30 / 1e9,
    'm': 1e-3,
    'mb': 1e-3,
    'mi': 2**20 / 1e9,
}


def check_memory(value: Any, where: str) -> float:
    """A memory size in GB (what the spec's ResourceSpec holds): a number of GB, or a string
    such as 8G, 8Gi, 512M or 512Mi."""
    match = re.fullmatch(r'\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*', str(value))
    unit = match and match.group(2).lower()
    if (
        isinstance(value, bool)
        or not match
        or unit not in _MEMORY_UNITS
        or float(match.group(1)) <= 0
    ):
        raise SettingsError(
            f'{where}: memory must be a positive size such as 8G, 8Gi, 512M or 512Mi (a bare '
            f'number is GB), got {value!r}'
        )
    return round(float(match.group(1)) * _MEMORY_UNITS[unit], 6)


def check_cpu(value: Any, where: str) -> float:
    try:
        cores = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        cores = -1.0
    if not 0 < cores < float('inf'):
        raise SettingsError(f'{where}: cpu must be a positive number of cores, got {value!r}')
    return cores


def check_resources(mapping: Mapping[str, Any], where: str) -> Dict[str, Dict[str, float]]:
    """{step: {cpu: cores, memory: GB}} from a mapping like {Trainer: {cpu: 4, memory: 16G}}."""
    result: Dict[str, Dict[str, float]] = {}
    for step, request in mapping.items():
        if not isinstance(request, dict) or not request or set(request) - {'cpu', 'memory'}:
            raise SettingsError(
                f'{where}: {step} must be a mapping with cpu and/or memory, e.g. '
                f'{{cpu: 2, memory: 8G}}, got {request!r}'
            )
        result[str(step)] = {
            **({'cpu': check_cpu(request['cpu'], f'{where}.{step}')} if 'cpu' in request else {}),
            **(
                {'memory': check_memory(request['memory'], f'{where}.{step}')}
                if 'memory' in request
                else {}
            ),
        }
    return result


def _resource_flags(flags: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """--cpu STEP=CORES and --memory STEP=SIZE as a resources mapping."""
    result: Dict[str, Dict[str, Any]] = {}
    for kind in ('cpu', 'memory'):
        for item in getattr(flags, kind, None) or []:
            step, sep, value = item.partition('=')
            if not sep or not step or not value:
                example = '2' if kind == 'cpu' else '8G'
                raise SettingsError(
                    f'--{kind} takes STEP={example.upper()}, e.g. --{kind} Trainer={example}, got {item!r}'
                )
            result.setdefault(step, {})[kind] = value
    return result


# ---------------------------------------------------------------------------------------------
# Settings: defaults < config file < flags.

# key: (accepted types, description for messages)
_CONFIG_KEYS: Dict[str, Tuple[tuple, str]] = {
    'pipeline': ((str,), 'a pipeline name or all'),
    'image': ((str,), 'an image name'),
    'pipeline_root': ((str,), 'a gs:// URI'),
    'data_root': ((str,), 'a gs:// URI'),
    'data': ((str,), 'a gs:// URI of a CSV file or folder'),
    'label': ((str,), 'a column name'),
    'task': ((str,), "'classification' or 'regression'"),
    'sample_rows': ((int,), 'a whole number'),
    'resources': ((dict,), 'a mapping of step name to {cpu: CORES, memory: SIZE}'),
    'output_dir': ((str,), 'a folder'),
    'beam_args': ((list,), 'a list of Beam options'),
    'enable_cache': ((bool,), 'true or false'),
    'target': ((str,), "'kfp' or 'vertex'"),
    'error_analysis': ((dict,), 'a mapping of ErrorAnalysis settings'),
}


def parse_config(data: Any, source: str = 'config') -> Dict[str, Any]:
    """Checks a config mapping (keys as in _CONFIG_KEYS, '-' or '_') and returns it normalised."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f'{source}: expected a mapping of settings, got {type(data).__name__}')
    result = {}
    training_keys = [f.name for f in dataclasses.fields(TrainingSettings)]
    for raw_key, value in data.items():
        key = str(raw_key).replace('-', '_')
        if key not in _CONFIG_KEYS and key not in training_keys:
            known = ', '.join([*_CONFIG_KEYS, *training_keys])
            raise SettingsError(f'{source}: unknown setting {raw_key!r}; known: {known}')
        if value is None:  # a key left empty (e.g. only commented-out settings): not set
            continue
        if key in training_keys:
            _training({key: value}, argparse.Namespace(), source)  # checked here, merged later
            result[key] = value
            continue
        types, description = _CONFIG_KEYS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise SettingsError(f'{source}: {raw_key} must be {description}, got {value!r}')
        if key == 'beam_args' and not all(isinstance(v, str) for v in value):
            raise SettingsError(f'{source}: beam_args must be a list of strings, got {value!r}')
        if key == 'error_analysis':
            _error_analysis(value, argparse.Namespace())  # checked here, merged with flags later
        if key == 'resources':
            check_resources(value, f'{source}: resources')
        result[key] = value
    return result


def load_config(path: str) -> Dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SettingsError(f'cannot read config file {path}: {e.strerror or e}') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SettingsError(
            f'config file {path} is not valid YAML: {" ".join(str(e).split())}'
        ) from None
    return parse_config(data, source=path)


def _training(
    config: Mapping[str, Any], flags: argparse.Namespace, source: str = 'config'
) -> TrainingSettings:
    """The config's training keys (top level, as train_steps), then the flags on top."""
    try:
        return TrainingSettings.from_flags(flags, TrainingSettings.from_mapping(config, source))
    except ErrorAnalysisSettingsError as e:
        message = f'{source}: {e.setting} {e.detail}' if e.setting in config else str(e)
        raise SettingsError(message) from None


def _error_analysis(config: Mapping[str, Any], flags: argparse.Namespace) -> ErrorAnalysisSettings:
    """The config file's error_analysis mapping, then the flags on top."""
    try:
        return ErrorAnalysisSettings.from_flags(flags, ErrorAnalysisSettings.from_mapping(config))
    except ErrorAnalysisSettingsError as e:
        raise SettingsError(str(e)) from None


@dataclasses.dataclass
class KubeflowSettings:
    image: str
    pipeline_root: str
    pipeline: str = 'all'
    data_root: Optional[str] = None  # None: <pipeline_root>/data/<pipeline>
    output_dir: str = DEFAULT_OUTPUT_DIR
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)
    beam_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    target: str = 'kfp'  # 'kfp' (open source) or 'vertex'
    error_analysis: ErrorAnalysisSettings = dataclasses.field(default_factory=ErrorAnalysisSettings)
    data: Optional[str] = None  # --pipeline csv: the CSV file or folder, read in place
    label: Optional[str] = None  # --pipeline csv: the column to predict
    task: Optional[str] = None  # --pipeline csv: classification, regression; None: from the label
    sample_rows: int = DEFAULT_SAMPLE_ROWS  # 0: every row
    # step -> {'cpu': cores, 'memory': GB} requested for its pod
    resources: Dict[str, Dict[str, float]] = dataclasses.field(
        default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES)
    )

    def data_root_for(self, pipeline: str) -> str:
        """Where the pipeline's CSV files are on cluster storage."""
        if self.data_root is None:
            return f'{self.pipeline_root}/data/{pipeline}'
        return check_storage_uri(
            self.data_root.replace('{pipeline}', pipeline), 'data root', '--data-root'
        )

    def serving_model_dir(self, pipeline: str) -> str:
        return f'{self.pipeline_root}/serving_model/{pipeline}'

    def beam_pipeline_args(self) -> List[str]:
        """The local runner's default (in-process DirectRunner), then --beam-arg options."""
        return RunConfig(beam_args=tuple(self.beam_args)).beam_pipeline_args()


def resolve_settings(flags: argparse.Namespace, config: Mapping[str, Any]) -> KubeflowSettings:
    """Merges defaults, the config mapping and flags (None = not given) and checks them all but
    the pipeline name, which needs the registry (see select_pipelines)."""

    def pick(key: str, default: Any = None) -> Any:
        value = getattr(flags, key, None)
        return value if value is not None else config.get(key, default)

    image = check_image(pick('image'))
    pipeline_root = check_storage_uri(pick('pipeline_root'))
    data_root = pick('data_root')
    if data_root is not None:
        # Checked as given ({pipeline} stands for any name); data_root_for checks each name.
        check_storage_uri(data_root.replace('{pipeline}', 'p'), 'data root', '--data-root')
    beam_args = list(config.get('beam_args', [])) + list(flags.beam_arg or [])
    enable_cache = pick('enable_cache', True)
    data = pick('data')
    if data is not None:
        data = check_data_uri(data, bool(getattr(flags, 'allow_local_data', False)))
    sample_rows = pick('sample_rows', DEFAULT_SAMPLE_ROWS)
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 0:
        raise SettingsError(
            f'--sample-rows must be a whole number, 0 for every row, got {sample_rows!r}'
        )
    resources = copy.deepcopy(DEFAULT_RESOURCES)
    for given in (
        check_resources(config.get('resources', {}), 'resources'),
        check_resources(_resource_flags(flags), '--cpu/--memory'),
    ):
        for step, request in given.items():
            resources.setdefault(step, {}).update(request)
    return KubeflowSettings(
        image=image,
        pipeline_root=pipeline_root,
        pipeline=pick('pipeline', 'all'),
        data_root=data_root.rstrip('/') if data_root else None,
        output_dir=pick('output_dir', DEFAULT_OUTPUT_DIR),
        training=_training(
            {
                f.name: config[f.name]
                for f in dataclasses.fields(TrainingSettings)
                if f.name in config
            },
            flags,
        ),
        beam_args=tuple(beam_args),
        enable_cache=bool(enable_cache),
        target=check_target(pick('target', 'kfp')),
        error_analysis=_gate_for_target(
            _error_analysis(config.get('error_analysis', {}), flags), pick('target', 'kfp')
        ),
        data=data,
        label=pick('label'),
        task=check_task(pick('task')),
        sample_rows=sample_rows,
        resources=resources,
    )


def check_task(task: Optional[str]) -> Optional[str]:
    if task not in (None, *TASKS):
        raise SettingsError(f'--task must be one of {", ".join(TASKS)}, got {task!r}')
    return task


def check_data_uri(data: str, allow_local: bool) -> str:
    """--data: a gs:// URI (as the pipeline root), or with --allow-local-data a local path (for
    kubeflow/local_run.py, which runs the steps on this machine), made absolute."""
    scheme = re.match(r'([A-Za-z][A-Za-z0-9+.-]*)://', str(data).strip())
    if allow_local and (scheme is None or scheme.group(1) == 'file'):
        return os.path.abspath(str(data).strip().removeprefix('file://'))
    return check_storage_uri(data, 'data', '--data')


def _gate_for_target(settings: ErrorAnalysisSettings, target: str) -> ErrorAnalysisSettings:
    """Open-source KFP has no resolver for the latest blessed model's report, so the slice
    gate cannot tell what is new there: it gates on every held finding (mode 'any')."""
    if target == 'kfp' and settings.slice_gate == 'new':
        print(
            "note: --target kfp has no baseline report, so the slice gate runs in mode 'any' "
            f'(any held finding above {settings.max_slice_error_rate:.0%} errors, or on a regression '
            f"above {settings.max_slice_error_ratio:g}x the rest's mean error, blocks the push)",
            file=sys.stderr,
        )
        return dataclasses.replace(settings, slice_gate='any')
    return settings


def check_data_roots(settings: KubeflowSettings, pipelines: Sequence[str]) -> Dict[str, str]:
    """Each pipeline's data root; several pipelines cannot share one folder of CSV files."""
    if len(pipelines) > 1 and settings.data_root and '{pipeline}' not in settings.data_root:
        raise SettingsError(
            f'--data-root {settings.data_root} would be shared by the pipelines '
            f'{", ".join(pipelines)}: put {{pipeline}} in it (e.g. '
            'gs://BUCKET/data/{pipeline}) or compile one with --pipeline NAME'
        )
    return {name: settings.data_root_for(name) for name in pipelines}


def container_path(local_path: os.PathLike) -> str:
    """Where a file of this repository is inside the image (kubeflow/Dockerfile copies the repo's
    pipelines/, components/, schemas/ and kubeflow/ to CONTAINER_ROOT)."""
    try:
        relative = Path(local_path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        raise SettingsError(
            f'{local_path} is not inside the repository, so it is not in the image'
        ) from None
    return str(CONTAINER_ROOT / relative.as_posix())


# ---------------------------------------------------------------------------------------------
# Compilation.


@dataclasses.dataclass(frozen=True)
class CsvInput:
    """--pipeline csv: the data where it lies, the sample's scan, and the pipeline built from it."""

    data: Any  # blindspot.pipelines.csv.source.CsvSource
    scan: Any  # blindspot.pipelines.preflight.CsvScan, of the sample
    fingerprint: str
    dataset: Any  # blindspot.pipelines.datasets.Dataset


def check_csv(settings: KubeflowSettings) -> CsvInput:
    """The compile-time preflight of --pipeline csv, on the first --sample-rows rows read
    where the data lies (tf.io.gfile); SettingsError with the preflight's one-line message."""
    from blindspot.pipelines.csv import source
    from blindspot.pipelines.datasets import csv_dataset
    from blindspot.pipelines.preflight import PreflightError

    if not settings.data:
        raise SettingsError(
            '--pipeline csv needs --data gs://BUCKET/PATH: a CSV file or a folder of CSV '
            'files with a header row (or data: in the config file)'
        )
    try:
        with source.read_errors(settings.data):
            data = source.locate(settings.data)
            if not settings.label:
                columns = ', '.join(data.header()[:30])
                raise SettingsError(
                    '--pipeline csv needs --label COLUMN, the column to predict; the data has: '
                    f'{columns or "(no columns)"}'
                )
            scan = data.scan(settings.label, settings.task, settings.sample_rows or None)
            fingerprint = data.fingerprint()
        training = settings.training
        dataset = csv_dataset(
            scan,
            data.name,
            loss=training.loss,
            exclude_features=training.exclude_features,
        )
        return CsvInput(data, scan, fingerprint, dataset)
    except PreflightError as e:
        raise SettingsError(str(e)) from None


def build_pipeline(settings: KubeflowSettings, pipeline: str, csv: Optional[CsvInput] = None):
    """The TFX pipeline, from the same create_pipeline the local runner uses (`csv`: the
    checked --pipeline csv data), each step with its resource requests."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    from blindspot.pipelines.datasets import get_dataset
    from blindspot.pipelines.pipeline import create_pipeline

    if csv is not None:
        from blindspot.csv_example_gen.executor import MISSING_TOKENS_KEY
        from blindspot.pipelines.csv import source
        from blindspot.pipelines.csv.preflight_step import CsvPreflight

        dataset = csv.dataset
        data = {
            'data_root': csv.data.input_base,
            'schema_path': None,  # SchemaGen infers it, as locally
            'input_pattern': csv.data.pattern,
            # The fingerprint only enters CsvExampleGen's cache key (see pipelines/csv/source.py).
            'example_gen_options': {
                MISSING_TOKENS_KEY: {c: list(t) for c, t in csv.scan.missing_tokens.items()},
                'data_fingerprint': csv.fingerprint,
            },
            'data_check': CsvPreflight(
                csv.data, csv.scan.label, csv.fingerprint, source.expectations(csv.scan)
            ),
        }
    else:
        dataset = get_dataset(pipeline)
        data = {
            'data_root': settings.data_root_for(pipeline),
            'schema_path': container_path(dataset.schema_path),
        }
    tfx_pipeline = create_pipeline(
        pipeline_name=dataset.pipeline_name,
        pipeline_root=settings.pipeline_root,
        dataset=dataset,
        training=settings.training,
        # serving_model/taxi, serving_model/csv-<data>-<label>: each pipeline its own models.
        serving_model_dir=settings.serving_model_dir(
            dataset.pipeline_name.removeprefix('blindspot-')
        ),
        error_analysis=settings.error_analysis,
        beam_pipeline_args=settings.beam_pipeline_args(),
        # On Kubeflow, KFP's launcher records executions and artifacts in ML Metadata itself.
        metadata_connection_config=None,
        enable_cache=settings.enable_cache,
        # Open-source KFP has no resolver executor ('resolver executors not implemented'), so
        # there the Evaluator blesses on the accuracy threshold alone; Vertex AI compares with
        # the latest blessed model as the local runner does.
        compare_to_blessed=settings.target == 'vertex',
        **data,
    )
    steps = {c.id: c for c in tfx_pipeline.components}
    for step, request in settings.resources.items():
        if step not in steps:
            raise SettingsError(
                f"resources for '{step}', which is not a step of the {pipeline} pipeline; its "
                f'steps: {", ".join(steps)}'
            )
        steps[step].with_platform_config(
            pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
                cpu_request=request.get('cpu', 0), memory_request=request.get('memory', 0)
            )
        )
    return tfx_pipeline


def data_reading_tasks(pipeline_spec: Mapping[str, Any]) -> List[str]:
    """The tasks whose cache hit TFX ties to the files they read (ExampleGen): TFX gives them a
    `lifecycle.preCacheCheck` driver that fingerprints the input files. Vertex AI runs it;
    open-source KFP ignores it and keys its cache on parameters, input artifact ids, image and
    args only, so there a replaced CSV at the same data root would be served from the cache,
    with every step after it (a stale model). On that target these tasks run every time: their
    output is a new artifact, so the cache of every step downstream keys on the new data."""
    executors = pipeline_spec['deploymentSpec']['executors']
    components = pipeline_spec['components']
    return sorted(
        name
        for name, task in pipeline_spec['root']['dag']['tasks'].items()
        if 'preCacheCheck'
        in executors[components[task['componentRef']['name']]['executorLabel']]
        .get('container', {})
        .get('lifecycle', {})
    )


def compile_pipeline(
    settings: KubeflowSettings, pipeline: str, csv: Optional[CsvInput] = None
) -> Dict[str, Any]:
    """The PipelineJob as a dict; job['pipelineSpec'] is what the .yaml holds.

    Caching: the csv pipeline's CsvPreflight step runs every time (it checks that the data is
    still the data the spec was compiled for, whose fingerprint is in CsvExampleGen's
    parameters, so CsvExampleGen and every step after it are cached per data). The packaged
    pipelines have no such check: on open-source KFP their ExampleGen runs every time (see
    data_reading_tasks)."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    config = kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
        default_image=settings.image,
        # Open-source KFP (2.x) accepts only schema 2.1.0 specs; Vertex AI takes both.
        use_pipeline_spec_2_1=True,
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(config=config)
    job = runner.run(build_pipeline(settings, pipeline, csv), write_out=False)
    if csv is not None:
        uncached = [PREFLIGHT_TASK]
    else:
        uncached = data_reading_tasks(job['pipelineSpec']) if settings.target == 'kfp' else []
    for task in uncached:
        job['pipelineSpec']['root']['dag']['tasks'][task]['cachingOptions'] = {'enableCache': False}
    # The pipeline root travels in the job's runtimeConfig; the .yaml holds only the spec, so it
    # also goes in the spec's own field (what the KFP SDK writes for @dsl.pipeline(pipeline_root)).
    job['pipelineSpec']['defaultPipelineRoot'] = settings.pipeline_root
    return job


def write_outputs(job: Dict[str, Any], output_dir: str, pipeline: str) -> Tuple[str, str]:
    """Writes <pipeline>.yaml (the spec, as TFX writes an output_filename ending .yaml) and
    <pipeline>_job.json (the PipelineJob)."""
    import tfx
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise SettingsError(f'output folder {output_dir} is a file')
    os.makedirs(output_dir, exist_ok=True)
    yaml_path = os.path.join(output_dir, f'{pipeline}.yaml')
    json_path = os.path.join(output_dir, f'{pipeline}_job.json')
    kubeflow_v2_dag_runner._write_pipeline_spec_to_file(
        job, f'Blindspot {pipeline} pipeline (kubeflow/runner.py, tfx-{tfx.__version__})', yaml_path
    )
    with open(json_path, 'w') as f:
        json.dump(job, f, indent=2, sort_keys=True)
        f.write('\n')
    return yaml_path, json_path


# ---------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='python -m blindspot.kubeflow.runner',
        description='Compile Blindspot pipelines (the same create_pipeline as local_runner.py) '
        'for Kubeflow Pipelines: OUTPUT_DIR/<pipeline>.yaml (the spec to upload) and '
        'OUTPUT_DIR/<pipeline>_job.json (the PipelineJob). Settings: defaults, then '
        '--config, then flags.',
    )
    p.add_argument(
        '--config',
        metavar='FILE',
        help='YAML file of settings (keys as the flags, with _; beam_args as a list; '
        'error_analysis as a mapping), e.g. kubeflow/config.example.yaml',
    )
    p.add_argument(
        '--pipeline',
        default=None,
        help="pipeline to compile: 'all' (default: the packaged ones in "
        "pipelines/datasets.py, taxi and mnist), one of them, or 'csv' (--data, --label)",
    )
    p.add_argument(
        '--image',
        default=None,
        help='container image built from kubeflow/Dockerfile, e.g. '
        'ghcr.io/you/blindspot:0.1.0 (required)',
    )
    p.add_argument(
        '--pipeline-root',
        default=None,
        metavar='URI',
        help='gs://BUCKET/PATH where the pipeline writes its artifacts and pushes '
        'models (required; the pods cannot see local paths)',
    )
    p.add_argument(
        '--data-root',
        default=None,
        metavar='URI',
        help='packaged pipelines: gs:// folder of the CSV files; {pipeline} is replaced by the '
        'pipeline name (default: PIPELINE_ROOT/data/<pipeline>)',
    )
    p.add_argument(
        '--data',
        default=None,
        metavar='URI',
        help='--pipeline csv: gs:// URI of a CSV file or a folder of .csv files, read where it '
        "lies (a sample when compiling, every row in the pipeline's first step)",
    )
    p.add_argument('--label', default=None, help='--pipeline csv: the column to predict')
    p.add_argument(
        '--task',
        choices=TASKS,
        default=None,
        help='--pipeline csv: classify the label or predict it as a number (default: '
        'regression for a label of numbers with many values, as the local runner decides)',
    )
    p.add_argument(
        '--sample-rows',
        type=int,
        default=None,
        metavar='N',
        help='--pipeline csv: rows read when compiling, for the checks and the model settings '
        f'(classes, vocabularies); 0: every row (default: {DEFAULT_SAMPLE_ROWS})',
    )
    p.add_argument(
        '--allow-local-data',
        action='store_true',
        help='accept a local --data path: only for kubeflow/local_run.py, which runs the steps '
        "on this machine (a cluster's pods cannot read it)",
    )
    p.add_argument(
        '--cpu',
        action='append',
        default=None,
        metavar='STEP=CORES',
        help="CPU cores the step's pod requests, repeatable, e.g. --cpu Trainer=4 (defaults: "
        + ', '.join(f'{k} {v["cpu"]:g}' for k, v in DEFAULT_RESOURCES.items())
        + '; other steps: the cluster default)',
    )
    p.add_argument(
        '--memory',
        action='append',
        default=None,
        metavar='STEP=SIZE',
        help="memory the step's pod requests, repeatable, e.g. --memory Transform=16G "
        '(G, Gi, M, Mi; defaults: '
        + ', '.join(f'{k} {v["memory"]:g}G' for k, v in DEFAULT_RESOURCES.items())
        + ')',
    )
    p.add_argument(
        '--output-dir',
        default=None,
        help=f'where to write the compiled files (default: {DEFAULT_OUTPUT_DIR})',
    )
    p.add_argument(
        '--beam-arg',
        action='append',
        default=None,
        metavar='ARG',
        help='extra Beam pipeline option for every step, repeatable, e.g. '
        '--beam-arg=--runner=DataflowRunner --beam-arg=--project=P (after the '
        "config file's beam_args; default runner: in-process DirectRunner)",
    )
    p.add_argument(
        '--target',
        choices=TARGETS,
        default=None,
        help="'kfp': open-source Kubeflow Pipelines (no model resolver: blessing "
        "uses the accuracy threshold only); 'vertex': Vertex AI Pipelines, "
        'with the baseline comparison (default: kfp)',
    )
    p.add_argument(
        '--no-cache',
        dest='enable_cache',
        action='store_const',
        const=False,
        default=None,
        help="compile with Kubeflow's step cache off",
    )
    TrainingSettings.add_flags(p, 'Training')
    ErrorAnalysisSettings.add_flags(p)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    flags = parse_args(argv)
    try:
        config = load_config(flags.config) if flags.config else {}
        settings = resolve_settings(flags, config)
        warning = image_warning(settings.image)
        if warning:
            print(f'warning: {warning}', file=sys.stderr)
        # Importing the registry imports TFMA (and TensorFlow): only after the cheap checks.
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        from blindspot.pipelines.datasets import PACKAGED

        csv = None
        if settings.pipeline == 'csv':
            names, data_roots = ['csv'], {}
            csv = check_csv(settings)
            for note in csv.scan.notes:
                print(f'note: {note}', file=sys.stderr)
        else:
            csv_only = [
                flag
                for flag, value in (
                    ('--data', settings.data),
                    ('--label', settings.label),
                    ('--task', settings.task),
                    ('--loss', settings.training.loss),
                    ('--exclude-feature', settings.training.exclude_features),
                )
                if value
            ]
            if csv_only:
                raise SettingsError(
                    f'{", ".join(csv_only)} apply to --pipeline csv, not to {settings.pipeline}'
                )
            names = select_pipelines(settings.pipeline, list(PACKAGED))
            data_roots = check_data_roots(settings, names)
        for name in names:
            task = csv.dataset.task if csv else 'classification'  # the packaged ones classify
            problem = settings.training.problem_for(task, name)
            problem = problem or settings.error_analysis.problem_for(task)
            if problem:
                raise SettingsError(problem)
        for name in names:
            job = compile_pipeline(settings, name, csv)
            yaml_path, json_path = write_outputs(job, settings.output_dir, name)
            print(f'{name}: {yaml_path} (upload to Kubeflow Pipelines), {json_path}')
            print(f'  image {settings.image}; pipeline root {settings.pipeline_root}')
            if csv is None:
                print(f'  reads data from {data_roots[name]}')
            else:
                every_row = settings.sample_rows == 0 or csv.scan.rows < settings.sample_rows
                scanned = 'every row' if every_row else f'the first {csv.scan.rows} rows'
                print(
                    f'  reads {len(csv.data.files)} file(s) in place from {csv.data.input_base} '
                    f'({csv.data.pattern}); data fingerprint {csv.fingerprint}; checked '
                    f'{scanned} here, every row in its first step, {PREFLIGHT_TASK}'
                )
    except SettingsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f'error: cannot write {e.filename or "the output folder"}: {e.strerror or e}',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
