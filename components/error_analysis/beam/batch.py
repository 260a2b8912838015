"""A batch of per-example predictions (light: numpy only, no TensorFlow), what every
aggregation of the analysis reads; beam/predictions.py makes them."""

import dataclasses
from typing import Dict, Optional

import numpy as np

_PROB_EPS = 1e-7


@dataclasses.dataclass
class PredictionBatch:
    """Per-example results for one batch; `columns` are the raw slicing features."""

    example_ids: np.ndarray  # str
    labels: np.ndarray  # int class ids
    probabilities: np.ndarray  # (n, num_classes)
    columns: Dict[str, np.ndarray]
    # Confident-learning label-issue flag per example, once the class thresholds are known.
    label_suspect: Optional[np.ndarray] = None
    # Image data only: each example's raw image bytes, so any example the report lists can
    # be shown as a picture.
    images: Optional[np.ndarray] = None
    # Regression only: the predicted value per example (`labels` then hold the true values,
    # `probabilities` no column), and the search flag, the error above the analysed rows'
    # median (beam/regression.FlagAboveMedian; search/regression.py).
    values: Optional[np.ndarray] = None
    above_median: Optional[np.ndarray] = None

    @property
    def is_regression(self) -> bool:
        return self.values is not None

    @property
    def predicted(self) -> np.ndarray:
        return self.values if self.is_regression else self.probabilities.argmax(axis=1)

    @property
    def errors(self) -> np.ndarray:
        """1 where the example counts as an error in the search: a wrong class, or (regression)
        an error above the median."""
        if self.is_regression:
            if self.above_median is None:
                raise ValueError('regression batch used before FlagAboveMedian set its flag')
            return self.above_median.astype(np.float64)
        return (self.predicted != self.labels).astype(np.float64)

    @property
    def residual(self) -> np.ndarray:
        """Regression: prediction - label (> 0: over-predicted)."""
        return self.values - self.labels

    @property
    def severity(self) -> np.ndarray:
        """How bad each mistake is, to list the worst first: the confidence of a wrong class,
        or a regression's absolute error."""
        return np.abs(self.residual) if self.is_regression else self.confidence

    @property
    def confidence(self) -> np.ndarray:
        """Probability the model gave its predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def loss(self) -> np.ndarray:
        """Cross-entropy of the true class."""
        true_prob = self.probabilities[np.arange(len(self.labels)), self.labels]
        return -np.log(np.clip(true_prob, _PROB_EPS, 1.0))

    def __len__(self) -> int:
        return len(self.labels)
