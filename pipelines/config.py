"""Run settings as plain data: defaults for the local runner and the Kubeflow compiler.

ErrorAnalysis settings live with the component (components/error_analysis/settings.py)."""

import dataclasses
from typing import List, Optional, Sequence, Tuple

from blindspot.error_analysis.settings import Settings as ErrorAnalysisSettings

# The splits ExampleGen makes (pipelines/pipeline.py: train 3/4, eval 1/4 by hash): the names
# --split may give.
SPLITS = ('train', 'eval')
# csv: what the model learns (--task; None: from the label, see pipelines/csv/features.py
# REGRESSION_MIN_VALUES) and a regressor's loss (--loss; None: 'mse').
TASKS = ('classification', 'regression')
LOSSES = ('mse', 'huber')


@dataclasses.dataclass
class RunConfig:
    pipeline: str = 'taxi'
    classes: Optional[str] = None  # mnist: digits to keep, e.g. '0,1'
    model: Optional[str] = None  # mnist: 'dense' (default) or 'cnn'
    label: Optional[str] = None  # csv: the column to predict
    schema: Optional[str] = None  # csv: a curated schema.pbtxt (default: inferred)
    task: Optional[str] = None  # csv: one of TASKS; None: from the label
    loss: Optional[str] = None  # csv regression: one of LOSSES; None: 'mse'
    exclude_features: Optional[Tuple[str, ...]] = None  # csv: columns the model does not read
    output_dir: str = 'outputs'
    data_root: Optional[str] = None  # None: the dataset's packaged sample; csv: the data
    train_steps: int = 1000
    eval_steps: int = 100
    min_accuracy: float = 0.7  # value threshold for blessing
    max_accuracy_drop: float = 0.0  # accuracy a new model may lose against the blessed one
    # Regression blessing (see pipelines/training.py Blessing): an upper bound on the overall
    # RMSE or MAE (at most one; neither: RMSE at most the label's standard deviation), and the
    # relative increase of that error allowed against the latest blessed model.
    max_rmse: Optional[float] = None
    max_mae: Optional[float] = None
    max_error_increase: float = 0.0
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
