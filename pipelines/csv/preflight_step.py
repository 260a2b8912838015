"""CsvPreflight: the first step of the csv pipeline compiled for Kubeflow. It reads the data in
full where it lies (the compiler only read a sample) and fails the run with the preflight's
one-line message, before CsvExampleGen, when the file is bad, changed since compiling, or
contradicts the sample the spec was built from (pipelines/csv/source.py).

The rows are counted in a Beam pipeline, one file per element (preflight.CsvCounts), and the
counts merged by a combine, lowest file first: a folder of CSV shards is read by as many
workers as the runner gives, with the results and messages of the one-process scan. Problems
travel as data, not exceptions, so the step's last log line is the preflight's own."""

import copy
import dataclasses
import json
import os
import pickle
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from absl import logging
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import component_spec

from blindspot.pipelines.csv import source
from blindspot.pipelines.preflight import CsvCounts, CsvScan, PreflightError

INPUT_BASE = 'input_base'
INPUT_PATTERN = 'input_pattern'
LABEL = 'label'
DATA_FINGERPRINT = 'data_fingerprint'
EXPECTED = 'expected'


class CsvPreflightSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        INPUT_BASE: component_spec.ExecutionParameter(type=str),
        INPUT_PATTERN: component_spec.ExecutionParameter(type=str),
        LABEL: component_spec.ExecutionParameter(type=str),
        DATA_FINGERPRINT: component_spec.ExecutionParameter(type=str),
        EXPECTED: component_spec.ExecutionParameter(type=str),  # source.expectations, JSON
    }
    INPUTS: Dict[str, Any] = {}
    OUTPUTS: Dict[str, Any] = {}


def check(
    exec_properties: Dict[str, Any],
    make_pipeline: Optional[Callable[[], beam.Pipeline]] = None,
    work_dir: Optional[str] = None,
) -> None:
    """The checks, in order of cost; PreflightError (one line) on the first problem. The rows
    are read by a Beam pipeline from `make_pipeline` (see scan_in_parallel), which leaves its
    counts in `work_dir` (default: a temporary folder on this machine)."""
    compiled_for = exec_properties[DATA_FINGERPRINT]
    with source.read_errors(exec_properties[INPUT_BASE]):
        data = source.locate(
            exec_properties[INPUT_BASE], exec_properties[INPUT_BASE], exec_properties[INPUT_PATTERN]
        )
        fingerprint = data.fingerprint()
        if fingerprint != compiled_for:
            raise PreflightError(
                f'the data at {data.input_base}/{data.pattern} changed after this pipeline was '
                f'compiled (fingerprint {fingerprint}, compiled for {compiled_for}): compile it '
                'again (python -m blindspot.kubeflow.runner --pipeline csv ...), so that its '
                'cache and its model settings follow the new data'
            )
        expected = json.loads(exec_properties[EXPECTED])
        scan = scan_in_parallel(
            data.files, exec_properties[LABEL], expected['task'], make_pipeline, work_dir
        )
    source.check_expectations(scan, expected)
    logging.info('CsvPreflight: %d rows in %d file(s) checked', scan.rows, len(data.files))
    for note in scan.notes:
        logging.warning('note: %s', note)


def scan_in_parallel(
    files: Sequence[str],
    label: str,
    task: Optional[str],
    make_pipeline: Optional[Callable[[], beam.Pipeline]] = None,
    work_dir: Optional[str] = None,
) -> CsvScan:
    """preflight.scan_csv_files over `files` (URIs), each file counted by a Beam worker and
    the counts merged by a combine (bounded: values and classes are capped): the same scan,
    or a PreflightError (the first file's problem, if a file has one). `make_pipeline`: the
    executor's; default: the in-process DirectRunner, as the local runner sets it up."""
    import tempfile

    from tfx.dsl.io import fileio

    counts = CsvCounts.start(files[0], label, source.open_binary)  # the header, checked first
    with tempfile.TemporaryDirectory() as local:
        out = os.path.join(work_dir or local, 'csv_counts.pickle')
        with (make_pipeline or _direct_pipeline)() as pipeline:
            _ = (
                pipeline
                | 'Files' >> beam.Create(list(enumerate(files)))
                | 'SpreadFiles' >> beam.Reshuffle()
                | 'CountRows' >> beam.Map(_count_file, files[0], counts.header, label, task)
                | 'MergeCounts' >> beam.CombineGlobally(_MergeCounts(task))
                | 'WriteCounts' >> beam.Map(_write_pickle, out)
            )
        with fileio.open(out, 'rb') as f:
            merged = pickle.load(f)
    if merged.problem is not None:
        raise PreflightError(merged.problem[1])
    counts.merge(merged.counts, task)
    return counts.finish(files, task)


def _direct_pipeline() -> beam.Pipeline:
    from apache_beam.options.pipeline_options import PipelineOptions

    from blindspot.pipelines.config import RunConfig

    return beam.Pipeline(options=PipelineOptions(RunConfig().beam_pipeline_args()))


def _count_file(
    item: Tuple[int, str], first_file: str, header: List[str], label: str, task: Optional[str]
) -> '_Merged':
    """One file's counts, or its one-line problem."""
    index, path = item
    counts = CsvCounts.empty(header, label)
    try:
        with source.read_errors(path):
            counts.add_file(path, first_file, task, source.open_binary)
    except PreflightError as e:
        return _Merged(index, CsvCounts.empty(header, label), (index, str(e)))
    return _Merged(index, counts, None)


@dataclasses.dataclass
class _Merged:
    """Counts of some files (`first`: the lowest file index among them), and the problem of
    the lowest-indexed file that had one: (index, message)."""

    first: int
    counts: CsvCounts
    problem: Optional[Tuple[int, str]]


class _MergeCounts(beam.CombineFn):
    """Merges files' counts, lowest file index first (the order one pass reads them in, as
    far as the runner's partial merges keep it); a problem the merged counts show (too many
    text classes over all files) counts as the last file's."""

    def __init__(self, task: Optional[str]):
        self._task = task

    def create_accumulator(self) -> Optional[_Merged]:
        return None

    def add_input(self, merged: Optional[_Merged], one: _Merged) -> _Merged:
        return self.merge_accumulators([merged, one])

    def merge_accumulators(self, parts: Iterable[Optional[_Merged]]) -> Optional[_Merged]:
        parts = sorted((p for p in parts if p is not None), key=lambda p: p.first)
        if not parts:
            return None
        result = _Merged(parts[0].first, copy.deepcopy(parts[0].counts), parts[0].problem)
        for part in parts[1:]:
            problems = [p for p in (result.problem, part.problem) if p is not None]
            result.problem = min(problems) if problems else None
            try:
                result.counts.merge(part.counts, self._task)
            except PreflightError as e:
                result.problem = result.problem or (sys.maxsize, str(e))
        return result

    def extract_output(self, merged: Optional[_Merged]) -> Optional[_Merged]:
        return merged


def _write_pickle(value: Any, path: str) -> None:
    from tfx.dsl.io import fileio

    fileio.makedirs(os.path.dirname(path))
    with fileio.open(path, 'wb') as f:
        pickle.dump(value, f)


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        try:
            check(exec_properties, self._make_beam_pipeline, self._get_tmp_dir())
        except PreflightError as e:
            logging.error('error: %s', e)  # the line the KFP UI's log shows last
            raise


class CsvPreflight(base_beam_component.BaseBeamComponent):
    """Checks the CSV data in full as the run's first step (see the module docstring)."""

    SPEC_CLASS = CsvPreflightSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self, data: source.CsvSource, label: str, fingerprint: str, expected: Dict[str, Any]
    ):
        super().__init__(
            spec=CsvPreflightSpec(
                input_base=data.input_base,
                input_pattern=data.pattern,
                label=label,
                data_fingerprint=fingerprint,
                expected=json.dumps(expected, sort_keys=True),
            )
        )
