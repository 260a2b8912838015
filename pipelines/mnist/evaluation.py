"""TFMA configuration for the digit classifier."""

import tensorflow_model_analysis as tfma

from blindspot.pipelines.config import TrainingSettings
from blindspot.pipelines.mnist import features as F
from blindspot.pipelines.training import multiclass_eval_config


def eval_config(blessing: TrainingSettings, num_classes: int) -> tfma.EvalConfig:
    """Accuracy, per-class precision/recall, the multiclass confusion matrix; slices by label
    and by each shape feature's bucket."""
    slicing = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.LABEL_KEY])]
    slicing += [tfma.SlicingSpec(feature_keys=[F.bucket_name(k)]) for k in F.SHAPE_FEATURES]
    return multiclass_eval_config(blessing, num_classes, F.LABEL_KEY, slicing)
