"""ExampleValidator's executor, then a stop if any split has anomalies."""

import os
from typing import Any, Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from blindspot.gated_example_validator.anomalies_text import describe


class DataAnomaliesError(RuntimeError):
    """The data does not match the schema; the pipeline stops before Transform and Trainer."""


class Executor(example_validator_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ):
        result = super().Do(input_dict, output_dict, exec_properties)
        anomalies_artifact = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.ANOMALIES_KEY]
        )
        problems = []
        for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
            uri = artifact_utils.get_split_uri([anomalies_artifact], split)
            anomalies = anomalies_pb2.Anomalies()
            anomalies.ParseFromString(
                io_utils.read_bytes_file(
                    os.path.join(uri, example_validator_executor.DEFAULT_FILE_NAME)
                )
            )
            problems += describe(anomalies, split)
        if problems:
            raise DataAnomaliesError(
                'The data does not match the schema; stopping before Transform and Trainer.\n  '
                + '\n  '.join(problems)
                + '\nFix the data, or update the curated schema if the change is expected.'
            )
        return result
