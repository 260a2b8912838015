"""Runs a compiled Kubeflow V2 pipeline spec on this machine the way open-source Kubeflow
Pipelines runs it, one task at a time, to check the spec and the image without a cluster.

For every task, in dependency order, it does what KFP's v2 driver and launcher do
(backend/src/v2 of kubeflow/pipelines: driver, launcher, metadata/converter.go):

- builds the task's ExecutorInput: each input artifact as KFP reads it back from ML Metadata
  (`name` its metadata id, `uri`, `type` the producer's artifact type schema, `metadata` its
  recorded properties), the task's parameters from the spec's constants, an output artifact per
  output definition at `<root>/<pipeline>/<run>/<task>/<output>`, and the output file
  `/tmp/kfp_outputs/output_metadata.json`;
- skips the task when its `triggerPolicy.condition` (how TFX compiles `tfx.dsl.Cond`) is false
  for that ExecutorInput;
- runs the task's own container command and args from the spec, `{{$}}` replaced by that
  ExecutorInput as JSON;
- reads the executor's output file, merges each output artifact's uri and metadata into the
  provisioned artifact and "records" it: gives it the next id and turns its metadata into what
  KFP's ML Metadata hands the next task (numbers stay numbers, so integers come back as
  doubles; booleans become 0/1; lists and mappings are wrapped as {"list": ...} and
  {"struct": ...}).

What it is not: there is no KFP driver or launcher process, no Argo workflow or pods, no GCS
(the spec is compiled with a gs:// root, as the compiler requires; `path_map` rewrites that root
in the spec's parameters to local folders, and output URIs are under the local `root`), no
ML Metadata server (recording is the conversion above, in memory), no step cache (every task
runs) and no `lifecycle.preCacheCheck` driver (open-source KFP does not run it either). A task runs on this machine's
Python (`python` in the command is this interpreter) unless `images` names an image for it: then
it runs in that image with `docker run --network none` as the image's user, with the local root
(and nothing else of this machine) mounted at the same path and a folder of its own as
/tmp/kfp_outputs.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where KFP's launcher tells executors to write their output metadata (component.OutputMetadataFilepath).
KFP_OUTPUT_FILE = '/tmp/kfp_outputs/output_metadata.json'
EXECUTOR_INPUT_PLACEHOLDER = '{{$}}'


class TaskFailed(RuntimeError):
    """A task's command exited non-zero; the message names it and ends with its log's tail."""


@dataclasses.dataclass
class RecordedArtifact:
    """An output artifact as KFP's ML Metadata holds it after the task, in the shape the next
    task's ExecutorInput gets it (pipeline_spec RuntimeArtifact as JSON)."""

    id: int
    uri: str
    type: Dict[str, Any]  # ArtifactTypeSchema: {'instanceSchema': ...} or {'schemaTitle': ...}
    metadata: Dict[str, Any]

    def runtime_artifact(self) -> Dict[str, Any]:
        return {
            'name': str(self.id),
            'uri': self.uri,
            'type': self.type,
            'metadata': self.metadata,
        }

    def mlmd_artifact(self):
        """The ml_metadata Artifact KFP's launcher records (toMLMDArtifact): every metadata field a
        custom property, numbers as double_value, booleans as int_value."""
        from google.protobuf import json_format
        from ml_metadata.proto import metadata_store_pb2

        artifact = metadata_store_pb2.Artifact(id=self.id, uri=self.uri)
        for key, value in self.metadata.items():
            target = artifact.custom_properties[key]
            if isinstance(value, bool):
                target.int_value = int(value)
            elif isinstance(value, (int, float)):
                target.double_value = float(value)
            elif isinstance(value, str):
                target.string_value = value
            else:
                json_format.ParseDict(value, target.struct_value)
        return artifact


@dataclasses.dataclass
class TaskRun:
    name: str
    executor_input: Dict[str, Any]
    outputs: Dict[str, RecordedArtifact]
    log: Optional[Path]  # None: skipped
    image: Optional[str]  # None: ran on this machine's Python
    skipped: bool = False  # its trigger condition was false: not run, no outputs


def through_metadata_store(value: Any) -> Any:
    """A metadata value after KFP records it in ML Metadata and reads it back
    (StructValueToMLMDValue, then toRuntimeArtifact)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return {'list': value}
    if isinstance(value, dict):
        return {'struct': value}
    return value


def task_order(pipeline_spec: Mapping[str, Any]) -> List[str]:
    """The root DAG's tasks so that each comes after the tasks it depends on (dependentTasks and
    the producers of its input artifacts); ties in name order. ValueError on a cycle."""
    tasks = pipeline_spec['root']['dag']['tasks']
    needs = {name: set(task.get('dependentTasks', [])) for name, task in tasks.items()}
    for name, task in tasks.items():
        for spec in task.get('inputs', {}).get('artifacts', {}).values():
            needs[name].add(spec['taskOutputArtifact']['producerTask'])
    order: List[str] = []
    while needs:
        ready = sorted(name for name, deps in needs.items() if deps <= set(order))
        if not ready:
            raise ValueError(f'the DAG has a cycle among {", ".join(sorted(needs))}')
        order.append(ready[0])
        del needs[ready[0]]
    return order


class _CelValue:
    """JSON data read the way a CEL expression reads it: fields by `.name` or `['name']`."""

    def __init__(self, data: Any):
        self._data = data

    def _wrap(self, value: Any) -> Any:
        return _CelValue(value) if isinstance(value, (dict, list)) else value

    def __getitem__(self, key: Any) -> Any:
        return self._wrap(self._data[key])

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__['_data']
        # CEL names fields as the proto does (parameter_values); the JSON has parameterValues.
        camel = re.sub(r'_([a-z])', lambda m: m.group(1).upper(), name)
        for key in (name, camel):
            if isinstance(data, dict) and key in data:
                return self._wrap(data[key])
        raise AttributeError(name)


def condition_holds(condition: str, executor_input: Mapping[str, Any]) -> bool:
    """A task's `triggerPolicy.condition`, which KFP's driver evaluates as CEL over the task's
    ExecutorInput `inputs`. TFX's `tfx.dsl.Cond` compiles to comparisons of input artifacts'
    metadata and parameters with literals, joined by &&, || and !: that subset is evaluated here
    (as Python, which reads it alike); ValueError for anything else."""
    if re.search(r'[a-zA-Z_]\w*\(', condition.replace('inputs.', '')):
        raise ValueError(f'unsupported trigger condition (a function call): {condition}')
    python = re.sub(r'!(?!=)', ' not ', condition.replace('&&', ' and ').replace('||', ' or '))
    python = re.sub(r'\btrue\b', 'True', re.sub(r'\bfalse\b', 'False', python))
    try:
        result = eval(  # noqa: S307 - the compiled spec's own expression, no builtins
            python, {'__builtins__': {}}, {'inputs': _CelValue(executor_input['inputs'])}
        )
    except Exception as e:
        raise ValueError(f'cannot evaluate trigger condition {condition!r}: {e}') from None
    if not isinstance(result, bool):
        raise ValueError(f'trigger condition {condition!r} is not a comparison: {result!r}')
    return result


def _rewrite(value: Any, path_map: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in path_map.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_rewrite(v, path_map) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, path_map) for k, v in value.items()}
    return value


class LocalKfpRun:
    """One run of a compiled pipeline spec (the PipelineJob's `pipelineSpec`) under `root`."""

    def __init__(
        self,
        pipeline_spec: Mapping[str, Any],
        root: Path,
        *,
        path_map: Optional[Mapping[str, str]] = None,
        host_path_map: Optional[Mapping[str, str]] = None,
        run_id: str = 'local-run',
        images: Optional[Mapping[str, str]] = None,
        python: str = sys.executable,
        timeout_seconds: int = 900,
    ):
        self.spec = pipeline_spec
        self.root = Path(root).resolve()
        self.path_map = dict(path_map or {})
        self.host_path_map = dict(host_path_map or {})
        self.run_id = run_id
        self.images = dict(images or {})
        self.python = python
        self.timeout_seconds = timeout_seconds
        self.pipeline_name = pipeline_spec['pipelineInfo']['name']
        self.tasks: Dict[str, TaskRun] = {}
        self._next_id = 1

    # --- what the driver does

    def _component(self, task_name: str) -> Mapping[str, Any]:
        task = self.spec['root']['dag']['tasks'][task_name]
        return self.spec['components'][task['componentRef']['name']]

    def container(self, task_name: str) -> Mapping[str, Any]:
        label = self._component(task_name)['executorLabel']
        executor = self.spec['deploymentSpec']['executors'][label]
        if 'container' not in executor:
            raise ValueError(
                f'task {task_name} runs a {", ".join(executor)} executor, not a container: '
                'open-source KFP cannot run it either (compile with --target kfp)'
            )
        return executor['container']

    def output_uri(self, task_name: str, output: str, attempt: str = '') -> str:
        parts = [self.pipeline_name, self.run_id, task_name + attempt, output]
        return str(self.root.joinpath(*parts))

    def executor_input(
        self, task_name: str, output_file: str, attempt: str = '', in_image: bool = False
    ) -> Dict[str, Any]:
        """The ExecutorInput KFP's driver builds for the task. Parameters go through `path_map`
        (cluster storage to local folders), and through `host_path_map` too (paths inside the
        image to this machine's) unless the task runs in the image."""
        path_map = self.path_map if in_image else {**self.path_map, **self.host_path_map}
        task = self.spec['root']['dag']['tasks'][task_name]
        inputs: Dict[str, Any] = {'parameterValues': {}, 'artifacts': {}}
        for name, parameter in task.get('inputs', {}).get('parameters', {}).items():
            if 'constant' not in parameter.get('runtimeValue', {}):
                raise ValueError(f'{task_name}.{name}: only constant parameters are supported')
            inputs['parameterValues'][name] = _rewrite(
                parameter['runtimeValue']['constant'], path_map
            )
        for name, spec in task.get('inputs', {}).get('artifacts', {}).items():
            producer = spec['taskOutputArtifact']['producerTask']
            key = spec['taskOutputArtifact']['outputArtifactKey']
            recorded = self.tasks[producer].outputs[key]
            inputs['artifacts'][name] = {'artifacts': [recorded.runtime_artifact()]}
        outputs: Dict[str, Any] = {'artifacts': {}, 'outputFile': output_file}
        definitions = self._component(task_name).get('outputDefinitions', {})
        for name, definition in definitions.get('artifacts', {}).items():
            outputs['artifacts'][name] = {
                'artifacts': [
                    {
                        'uri': self.output_uri(task_name, name, attempt),
                        'type': definition['artifactType'],
                        'metadata': {},
                    }
                ]
            }
        return {'inputs': inputs, 'outputs': outputs}

    # --- what the launcher does

    def _command(
        self,
        task_name: str,
        executor_input: Mapping[str, Any],
        pod_dir: Path,
        image: Optional[str],
    ) -> List[str]:
        container = self.container(task_name)
        executor_json = json.dumps(executor_input)
        args = [
            a.replace(EXECUTOR_INPUT_PLACEHOLDER, executor_json) for a in container.get('args', [])
        ]
        command = list(container['command'])
        if image is None:
            if command[0] == 'python':
                command[0] = self.python
            return command + args
        # As a pod: the spec's command replaces the image's entrypoint; no network; the local
        # root at the same path (it stands for the bucket); a private /tmp/kfp_outputs.
        docker = [
            'docker',
            'run',
            '--rm',
            '--network',
            'none',
            '--volume',
            f'{self.root}:{self.root}',
            '--volume',
            f'{pod_dir / "kfp_outputs"}:{Path(KFP_OUTPUT_FILE).parent}',
            '--entrypoint',
            command[0],
            image,
        ]
        return docker + command[1:] + args

    def _record(
        self, executor_input: Mapping[str, Any], output_file: Path
    ) -> Dict[str, RecordedArtifact]:
        produced = {}
        if output_file.exists():
            produced = json.loads(output_file.read_text()).get('artifacts', {})
        recorded = {}
        for name, listing in executor_input['outputs']['artifacts'].items():
            provisioned = dict(listing['artifacts'][0])
            metadata = dict(provisioned.get('metadata') or {})
            reported = (produced.get(name) or {}).get('artifacts') or [{}]
            if reported[0].get('uri'):
                provisioned['uri'] = reported[0]['uri']
            metadata.update(reported[0].get('metadata') or {})
            # RecordArtifact names the artifact after its output key (its display name).
            metadata.setdefault('display_name', name)
            recorded[name] = RecordedArtifact(
                id=self._next_id,
                uri=provisioned['uri'],
                type=provisioned['type'],
                metadata={k: through_metadata_store(v) for k, v in metadata.items()},
            )
            self._next_id += 1
        return recorded

    def run_task(self, task_name: str, image: Optional[str] = None, attempt: str = '') -> TaskRun:
        """Runs one task whose upstream tasks have run; `image` overrides `images` for it.
        `attempt` is appended to the task's folder names, so a task can be run again beside its
        first run."""
        image = image or self.images.get(task_name)
        pod_dir = self.root / '_pods' / self.run_id / (task_name + attempt)
        if pod_dir.exists():
            shutil.rmtree(pod_dir)
        (pod_dir / 'kfp_outputs').mkdir(parents=True)
        host_output_file = pod_dir / 'kfp_outputs' / Path(KFP_OUTPUT_FILE).name
        executor_input = self.executor_input(
            task_name,
            KFP_OUTPUT_FILE if image else str(host_output_file),
            attempt,
            in_image=image is not None,
        )
        condition = (
            self.spec['root']['dag']['tasks'][task_name].get('triggerPolicy', {}).get('condition')
        )
        if condition and not condition_holds(condition, executor_input):
            run = TaskRun(task_name, executor_input, {}, log=None, image=image, skipped=True)
            self.tasks[task_name + attempt] = run
            return run
        if image:
            # The image runs as a non-root user, as pods on KFP do: its output folders must be
            # writable by it (on the cluster, the bucket is).
            folders = [pod_dir / 'kfp_outputs']
            for listing in executor_input['outputs']['artifacts'].values():
                folders.append(Path(listing['artifacts'][0]['uri']).parent)
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o777)
        command = self._command(task_name, executor_input, pod_dir, image)
        log = pod_dir / 'log.txt'
        env = {
            **os.environ,
            'PYTHONPATH': str(REPO_ROOT),
            'TF_USE_LEGACY_KERAS': '1',
            'TF_CPP_MIN_LOG_LEVEL': '2',
        }
        with open(log, 'w') as out:
            result = subprocess.run(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=self.timeout_seconds,
            )
        if result.returncode != 0:
            tail = '\n'.join(log.read_text(errors='replace').splitlines()[-30:])
            where = f'in image {image}' if image else 'on this machine'
            raise TaskFailed(
                f'task {task_name} exited with status {result.returncode} {where} '
                f'(log: {log}):\n{tail}'
            )
        run = TaskRun(
            name=task_name,
            executor_input=executor_input,
            outputs=self._record(executor_input, host_output_file),
            log=log,
            image=image,
        )
        self.tasks[task_name + attempt] = run
        return run

    def run(self, tasks: Optional[Sequence[str]] = None) -> Dict[str, TaskRun]:
        """Runs the given tasks (default: all) in dependency order; stops at the first failure."""
        for name in task_order(self.spec):
            if tasks is None or name in tasks:
                self.run_task(name)
        return self.tasks
