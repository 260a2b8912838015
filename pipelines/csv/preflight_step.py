"""CsvPreflight: the first step of the csv pipeline compiled for Kubeflow. It reads the data in
full where it lies (the compiler only read a sample) and fails the run with the preflight's
one-line message, before CsvExampleGen, when the file is bad, changed since compiling, or
contradicts the sample the spec was built from (pipelines/csv/source.py)."""

import json
from typing import Any, Dict, List

from absl import logging
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import component_spec

from blindspot.pipelines.csv import source
from blindspot.pipelines.preflight import PreflightError

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


def check(exec_properties: Dict[str, Any]) -> None:
    """The checks, in order of cost; PreflightError (one line) on the first problem."""
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
        scan = data.scan(exec_properties[LABEL], expected['task'])
    source.check_expectations(scan, expected)
    logging.info('CsvPreflight: %d rows in %d file(s) checked', scan.rows, len(data.files))
    for note in scan.notes:
        logging.warning('note: %s', note)


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        try:
            check(exec_properties)
        except PreflightError as e:
            logging.error('error: %s', e)  # the line the KFP UI's log shows last
            raise


class CsvPreflight(base_component.BaseComponent):
    """Checks the CSV data in full as the run's first step (see the module docstring)."""

    SPEC_CLASS = CsvPreflightSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

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
