"""TFMA configuration for the csv pipeline's classifier or regressor."""

from typing import Optional, Sequence

import tensorflow_model_analysis as tfma

from blindspot.pipelines.config import TrainingSettings
from blindspot.pipelines.csv import features as F
from blindspot.pipelines.training import multiclass_eval_config, regression_eval_config


def eval_config(
    blessing: TrainingSettings,
    num_classes: int,
    slice_columns: Sequence[str],
    label_std: Optional[float] = None,
) -> tfma.EvalConfig:
    """Sliced by every low-cardinality column and overall. Classifier (label_std None):
    accuracy (blessing on the overall slice only), example count, the confusion matrix and
    per-class precision and recall. Regressor: MAE, RMSE, mean prediction and mean label,
    blessed by default when the RMSE is at most the label's standard deviation (a model no
    better than predicting the mean is not blessed)."""
    slicing = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in slice_columns]
    if label_std is not None:
        return regression_eval_config(blessing, F.LABEL_KEY, slicing, default_max_rmse=label_std)
    return multiclass_eval_config(blessing, num_classes, F.LABEL_KEY, slicing)
