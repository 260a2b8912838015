"""Confusion matrix counts and the most frequent confusion pairs (numpy only)."""

from typing import Dict, List, Sequence

import numpy as np


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted] for integer class ids in [0, num_classes)."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalized(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the per-true-class rates); empty rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)


def top_confusions(counts: np.ndarray, class_names: Sequence[str], k: int = 5) -> List[Dict]:
    """Off-diagonal cells by count, largest first, with their share of all errors and of
    their true class."""
    off = counts.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    total_errors = int(off.sum())
    row_totals = counts.sum(axis=1)
    pairs = []
    for flat in np.argsort(-off, axis=None, kind='stable')[:k]:
        true, pred = divmod(int(flat), counts.shape[1])
        count = int(off[true, pred])
        if count == 0:
            break
        pairs.append(
            {
                'true': class_names[true],
                'predicted': class_names[pred],
                'count': count,
                'share_of_errors': count / total_errors,
                'rate_in_true_class': count / int(row_totals[true]),
            }
        )
    return pairs
