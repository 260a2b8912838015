"""ExampleValidator that stops the pipeline when the data has schema anomalies.

The stock ExampleValidator only records anomalies; nothing downstream reads them, so a model
would be trained on bad data. This variant fails its execution instead, with the anomalies in
plain words, so Transform and Trainer never run on it.
"""

from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from blindspot.gated_example_validator import executor


class GatedExampleValidator(ExampleValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
