"""Run settings as plain data: defaults for the local runner and the Kubeflow compiler.

ErrorAnalysis settings live with the component (components/error_analysis/settings.py); the
training settings here are declared the same way, so both runners take the same flags (and
Kubeflow the same YAML keys) with one default, check and help each."""

import dataclasses
import math
from typing import Any, List, Optional, Sequence, Tuple

from blindspot.error_analysis.settings import (
    DeclaredSettings,
    SettingsError,
    fraction,
    name_list,
    one_of,
    positive_int,
    setting,
)
from blindspot.error_analysis.settings import Settings as ErrorAnalysisSettings

# The splits ExampleGen makes (pipelines/pipeline.py: train 3/4, eval 1/4 by hash): the names
# --split may give.
SPLITS = ('train', 'eval')
# csv: what the model learns (--task; None: from the label, see pipelines/csv/features.py
# REGRESSION_MIN_VALUES) and a regressor's loss (--loss; None: 'mse').
TASKS = ('classification', 'regression')
LOSSES = ('mse', 'huber')


def _label_units_or_none(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        return "must be a positive number in the label's units"
    return None


def _increase(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        return 'must be 0 or more'
    return None


def _loss(value: Any) -> Optional[str]:
    return None if value is None else one_of(*LOSSES)(value)


@dataclasses.dataclass(frozen=True)
class TrainingSettings(DeclaredSettings):
    """How the model is trained and blessed (the Evaluator's thresholds: pipelines/training.py):
    flags of both runners and keys of the Kubeflow config. Classifiers are blessed on
    accuracy; regressors on an upper bound of RMSE or MAE (at most one; neither: RMSE at most
    the label's standard deviation) and the relative increase of that error allowed against
    the latest blessed model."""

    train_steps: int = setting(1000, positive_int, 'training steps')
    eval_steps: int = setting(100, positive_int, "evaluation steps of the Trainer's own check")
    min_accuracy: float = setting(
        0.7, fraction, 'classification: accuracy the model needs to be blessed and pushed'
    )
    max_accuracy_drop: float = setting(
        0.0,
        fraction,
        'classification: accuracy a new model may lose against the latest blessed one and '
        'still be blessed (where there is a baseline: local runs, Kubeflow --target vertex)',
    )
    max_rmse: Optional[float] = setting(
        None,
        _label_units_or_none,
        'regression: RMSE the model must not exceed to be blessed and pushed',
        kind=float,
        shown="the label's standard deviation, i.e. better than predicting the mean",
    )
    max_mae: Optional[float] = setting(
        None,
        _label_units_or_none,
        'regression: bless on mean absolute error instead, at most this',
        kind=float,
    )
    max_error_increase: float = setting(
        0.0,
        _increase,
        'regression: relative increase of that error (RMSE or MAE) a new model may have '
        'against the latest blessed one and still be blessed, e.g. 0.05',
    )
    loss: Optional[str] = setting(
        None,
        _loss,
        "csv regression: the regressor's loss; huber weighs outliers less",
        kind=str,
        choices=LOSSES,
        shown='mse',
    )
    exclude_features: Tuple[str, ...] = setting(
        (),
        name_list,
        'csv: a column the model does not read (a leak of the label, an id), repeatable; '
        'ErrorAnalysis still slices on it',
        flag='--exclude-feature',
        metavar='COLUMN',
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_rmse is not None and self.max_mae is not None:
            raise SettingsError(
                '--max-rmse and --max-mae both given: the blessing decides on one error; drop one',
                'max_mae',
            )

    def problem_for(self, task: str, pipeline: str) -> Optional[str]:
        """Why these settings cannot bless the pipeline's model (a regressor's thresholds for
        a classifier), in one line; None if they can."""
        if task != 'regression' and (self.max_rmse, self.max_mae) != (None, None):
            return (
                f'--max-rmse and --max-mae bless a regressor; {pipeline} classifies: use '
                '--min-accuracy (or, for a csv label of numbers, --task regression)'
            )
        return None


@dataclasses.dataclass
class RunConfig:
    pipeline: str = 'taxi'
    classes: Optional[str] = None  # mnist: digits to keep, e.g. '0,1'
    model: Optional[str] = None  # mnist: 'dense' (default) or 'cnn'
    label: Optional[str] = None  # csv: the column to predict
    schema: Optional[str] = None  # csv: a curated schema.pbtxt (default: inferred)
    task: Optional[str] = None  # csv: one of TASKS; None: from the label
    output_dir: str = 'outputs'
    data_root: Optional[str] = None  # None: the dataset's packaged sample; csv: the data
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)
    beam_mode: str = 'in_process'  # or 'multi_process'
    workers: int = 2
    beam_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    error_analysis: ErrorAnalysisSettings = dataclasses.field(default_factory=ErrorAnalysisSettings)

    def beam_pipeline_args(self) -> List[str]:
        """Options for every Beam-based step: the tested DirectRunner set-up (DIRECT_RUNNER_ARGS,
        then the mode), then --beam-arg options. A --beam-arg that names another runner replaces
        that set-up: the DirectRunner options would mean nothing, or something else, there."""
        user = list(self.beam_args)
        runner = beam_runner(user)
        if runner is not None and runner.lower() not in _DIRECT_RUNNER_NAMES:
            return user
        if self.beam_mode == 'multi_process':
            mode = [
                '--direct_running_mode=multi_processing',
                f'--direct_num_workers={self.workers}',
            ]
        else:
            mode = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
        return [*DIRECT_RUNNER_ARGS, *mode, *user]


# Beam 2.74's DirectRunner first hands a batch pipeline to the Prism runner (downloading its
# binary when the network allows) and falls back to its own runners only when that fails; on
# Prism the --direct_* options do not apply. Its check (SwitchingDirectRunner.run_pipeline,
# _PrismRunnerSupportVisitor) skips Prism for pipelines with --allow_unsafe_triggers, the one
# option there with no other effect on these pipelines: it only lets non-default triggers
# that could drop data through GroupByKey, and no step here sets a trigger.
#
# --sdk_container_image=none: with any Beam options, each TFX Beam executor packages the installed
# TFX as an sdist for remote workers (tfx/utils/dependency_utils.py: copies and builds, 5-8 s per
# step) unless a dependency option names the workers' environment. The DirectRunner's workers
# run here, where TFX is installed, and ignore the image; a runner named with --beam-arg drops
# this set-up, so TFX stages its package for it as before.
DIRECT_RUNNER_ARGS = (
    '--runner=DirectRunner',
    '--allow_unsafe_triggers',
    '--sdk_container_image=none',
)
# How Beam may name its DirectRunner (runners/runner.py looks names up case-insensitively,
# with or without the 'Runner' suffix).
_DIRECT_RUNNER_NAMES = {
    'direct',
    'directrunner',
    'apache_beam.runners.direct.direct_runner.directrunner',
}


def beam_runner(beam_args: Sequence[str]) -> Optional[str]:
    """The runner named in Beam options (--runner=X or --runner X; the last wins, as in Beam),
    or None."""
    runner = None
    for i, arg in enumerate(beam_args):
        if arg.startswith('--runner='):
            runner = arg.split('=', 1)[1]
        elif arg == '--runner' and i + 1 < len(beam_args):
            runner = beam_args[i + 1]
    return runner
