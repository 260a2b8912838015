"""Run settings as plain data: defaults for the local runner and the Kubeflow compiler.

ErrorAnalysis settings live with the component (components/error_analysis/settings.py)."""

import dataclasses
from typing import List, Optional, Tuple

from components.error_analysis.settings import Settings as ErrorAnalysisSettings


@dataclasses.dataclass
class RunConfig:
    pipeline: str = 'taxi'
    classes: Optional[str] = None  # mnist: digits to keep, e.g. '0,1'
    model: Optional[str] = None  # mnist: 'dense' (default) or 'cnn'
    label: Optional[str] = None  # csv: the column to predict
    schema: Optional[str] = None  # csv: a curated schema.pbtxt (default: inferred)
    output_dir: str = 'outputs'
    data_root: Optional[str] = None  # None: the dataset's packaged sample; csv: the data
    train_steps: int = 1000
    eval_steps: int = 100
    min_accuracy: float = 0.7  # value threshold for blessing
    max_accuracy_drop: float = 0.0  # accuracy a new model may lose against the blessed one
    beam_mode: str = 'in_process'  # or 'multi_process'
    workers: int = 2
    beam_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    error_analysis: ErrorAnalysisSettings = dataclasses.field(default_factory=ErrorAnalysisSettings)

    def beam_pipeline_args(self) -> List[str]:
        if self.beam_mode == 'multi_process':
            base = [
                '--direct_running_mode=multi_processing',
                f'--direct_num_workers={self.workers}',
            ]
        else:
            base = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
        return base + list(self.beam_args)
