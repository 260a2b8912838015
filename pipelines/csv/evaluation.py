"""TFMA configuration for the csv pipeline's classifier."""

from typing import Sequence

import tensorflow_model_analysis as tfma

from blindspot.pipelines.csv import features as F
from blindspot.pipelines.training import Blessing, multiclass_eval_config


def eval_config(
    blessing: Blessing, num_classes: int, slice_columns: Sequence[str]
) -> tfma.EvalConfig:
    """Accuracy (blessing on the overall slice only), example count, the confusion matrix and
    per-class precision and recall; sliced by every low-cardinality column and overall."""
    slicing = [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in slice_columns]
    return multiclass_eval_config(blessing, num_classes, F.LABEL_KEY, slicing)
