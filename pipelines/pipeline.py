"""The Blindspot DAG. Both runners (local_runner.py and kubeflow/runner.py) call create_pipeline."""

import dataclasses
from typing import Any, List, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx.components.evaluator.component import Evaluator
from tfx.components.example_gen.csv_example_gen.component import CsvExampleGen
from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
from tfx.components.pusher.component import Pusher
from tfx.components.schema_gen.component import SchemaGen
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.components.trainer.component import Trainer
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.base.base_component import BaseComponent
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.experimental.conditionals.conditional import Cond
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from blindspot.csv_example_gen import executor as csv_example_gen
from blindspot.error_analysis import (
    ErrorAnalysis,
    Settings,
    latest_blessed_report,
    slice_gate_condition,
)
from blindspot.gated_example_validator.component import GatedExampleValidator
from blindspot.pipelines import push_executor
from blindspot.pipelines.config import TrainingSettings
from blindspot.pipelines.datasets import Dataset


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    dataset: Dataset,
    schema_path: Optional[str],
    training: TrainingSettings,
    serving_model_dir: str,
    error_analysis: Settings,
    beam_pipeline_args: Optional[List[str]] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
    compare_to_blessed: bool = True,
    compare_reports: bool = False,
    input_pattern: Optional[str] = None,
    example_gen_options: Optional[Mapping[str, Any]] = None,
    data_check: Optional[BaseComponent] = None,
) -> Pipeline:
    """ExampleGen → StatisticsGen → (Import)SchemaGen → ExampleValidator (gated) → Transform →
    Trainer → Evaluator → ErrorAnalysis, and Pusher when the Evaluator blesses the model.

    `compare_reports` (with `compare_to_blessed`): ErrorAnalysis also compares its report with
    the latest blessed model's, found by a custom resolver strategy. The local runner sets it;
    the Kubeflow V2 compiler cannot compile custom strategies, so Kubeflow leaves it off.
    `training`: steps, and the thresholds that bless the model (pipelines/config.py).

    csv data read in place (the Kubeflow compiler): `input_pattern`, the files of `data_root`
    ExampleGen reads (default: all); `example_gen_options`, for the batched CsvExampleGen
    executor (csv_config: the missing-value tokens, a data fingerprint for the cache key);
    `data_check`, a step ExampleGen waits for (CsvPreflight)."""
    code_version = {'code_fingerprint': dataset.code_fingerprint()}

    example_gen_class = {
        'csv': CsvExampleGen,
        'tfrecord': ImportExampleGen,
    }[dataset.example_format]
    example_gen = example_gen_class(
        input_base=data_root,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name='single_split', pattern=input_pattern)]
        )
        if input_pattern
        else None,
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name='train', hash_buckets=3),
                    example_gen_pb2.SplitConfig.Split(name='eval', hash_buckets=1),
                ]
            )
        ),
    )
    if example_gen_class is CsvExampleGen:
        # The same component and examples, read and encoded in batches (107 s -> 58 s on 400k
        # rows); CsvExampleGen's constructor takes no executor, so it is set here.
        example_gen.executor_spec = executor_spec.BeamExecutorSpec(csv_example_gen.Executor)
        if example_gen_options:
            # CsvExampleGen's constructor takes no custom_config either; its spec has one.
            example_gen.exec_properties['custom_config'] = csv_example_gen.csv_config(
                example_gen_options
            )
    if data_check is not None:
        example_gen.add_upstream_node(data_check)
    statistics_gen = StatisticsGen(examples=example_gen.outputs['examples'])
    # A curated schema, or (schema_path None) one inferred from the statistics; features stay
    # variable-length, so missing values reach the Transform as missing.
    schema_gen = (
        ImportSchemaGen(schema_file=schema_path)
        if schema_path
        else SchemaGen(statistics=statistics_gen.outputs['statistics'], infer_feature_shape=False)
    )
    example_validator = GatedExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema']
    ).with_id('ExampleValidator')
    transform = Transform(
        examples=example_gen.outputs['examples'],
        schema=schema_gen.outputs['schema'],
        preprocessing_fn=dataset.preprocessing_fn,
        custom_config={**code_version, **dataset.transform_config},
        # Transform's own TFDV passes (statistics before and after, anomalies) cost two full
        # passes; StatisticsGen already describes the input and nothing reads the output's.
        disable_statistics=True,
    )
    # Transform runs only on data the gate let through.
    transform.add_upstream_node(example_validator)
    trainer = Trainer(
        run_fn=dataset.run_fn,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        train_args=trainer_pb2.TrainArgs(num_steps=training.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=training.eval_steps),
        custom_config={**code_version, **dataset.trainer_config},
    )

    model_resolver = (
        Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id('latest_blessed_model_resolver')
        if compare_to_blessed
        else None
    )
    evaluator = Evaluator(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        baseline_model=model_resolver.outputs['model'] if model_resolver else None,
        eval_config=dataset.eval_config(training),
    )

    # The report of the latest blessed model, for ErrorAnalysis to compare with.
    report_resolver = latest_blessed_report() if compare_to_blessed and compare_reports else None

    # Error analysis: where the model fails, beside TFMA's sliced metrics.
    error_analysis_step = ErrorAnalysis(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        evaluation=evaluator.outputs['evaluation'],
        baseline_report=report_resolver.outputs['report'] if report_resolver else None,
        schema=schema_gen.outputs['schema'],
        label_key=dataset.label_key,
        # The dataset's slice features unless the run names its own; its task (a regressor's
        # errors are analysed in the label's units) unless the run forces one.
        settings=dataclasses.replace(
            error_analysis,
            slice_features=error_analysis.slice_features or tuple(dataset.slice_features or ()),
            task=dataset.task if error_analysis.task == 'auto' else error_analysis.task,
        ),
        class_names=dataset.class_names,
        image=dataset.image,
    )

    # The Pusher runs only if the report's slice gate passed (see the slice_gate setting), and
    # pushes only if the Evaluator blessed the model: TFMA guards the declared slices, the gate
    # the ones ErrorAnalysis found.
    with Cond(slice_gate_condition(error_analysis_step)):
        pusher = Pusher(
            model=trainer.outputs['model'],
            model_blessing=evaluator.outputs['blessing'],
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
            ),
        )
        # The same push, made atomic: a killed push leaves no half-written model version.
        pusher.executor_spec = executor_spec.ExecutorClassSpec(push_executor.Executor)

    return Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            c
            for c in (
                data_check,
                example_gen,
                statistics_gen,
                schema_gen,
                example_validator,
                transform,
                trainer,
                model_resolver,
                evaluator,
                report_resolver,
                error_analysis_step,
                pusher,
            )
            if c is not None
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
