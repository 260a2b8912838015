"""Run settings in one plain place: defaults for the local runner and the Kubeflow compiler."""
import dataclasses
from typing import Dict, Optional, Tuple


@dataclasses.dataclass
class ErrorAnalysisSettings:
    """Parameters of the ErrorAnalysis component (see components/error_analysis)."""
    splits: Tuple[str, ...] = ('eval',)
    slice_features: Optional[Tuple[str, ...]] = None  # None: every categorical/numeric feature
    num_bins: int = 4
    max_predicates: int = 3
    min_slice_size: float = 0.01   # fraction of rows (< 1) or a row count
    num_slices: int = 10
    significance: float = 0.05
    tags_file: Optional[str] = None       # CSV of manual tags per example id
    tag_rules: Tuple[str, ...] = ()       # 'name: expression' tags over features
    tag_references: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunConfig:
    pipeline: str = 'taxi'
    classes: Optional[str] = None         # mnist: digits to keep, e.g. '0,1'
    model: Optional[str] = None           # mnist: 'dense' (default) or 'cnn'
    label: Optional[str] = None           # csv: the column to predict
    schema: Optional[str] = None          # csv: a curated schema.pbtxt (default: inferred)
    output_dir: str = 'outputs'
    data_root: Optional[str] = None       # None: the dataset's packaged sample; csv: the data
    train_steps: int = 1000
    eval_steps: int = 100
    min_accuracy: float = 0.7             # value threshold for blessing
    beam_mode: str = 'in_process'         # or 'multi_process'
    workers: int = 2
    beam_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    error_analysis: ErrorAnalysisSettings = dataclasses.field(default_factory=ErrorAnalysisSettings)

    def dataset(self):
        from pipelines.datasets import get_dataset
        return get_dataset(self.pipeline, classes=self.classes, model=self.model,
                           data=self.data_root, label=self.label, schema=self.schema)

    @property
    def pipeline_name(self) -> str:
        return self.dataset().pipeline_name

    def beam_pipeline_args(self) -> list:
        if self.beam_mode == 'multi_process':
            base = ['--direct_running_mode=multi_processing', f'--direct_num_workers={self.workers}']
        else:
            base = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
        return base + list(self.beam_args)
