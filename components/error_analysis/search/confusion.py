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


# A class is "rarely predicted" when the model predicts it for less than this share of its
# true examples (predictions of it, right or wrong, over its support).
RARELY_PREDICTED = 0.5


def per_class(counts: np.ndarray, class_names: Sequence[str]) -> List[Dict]:
    """Support (true examples), predictions, precision and recall of each class; precision
    is None for a class never predicted, recall None for a class with no examples."""
    counts = np.asarray(counts, dtype=np.int64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    correct = np.diag(counts)
    return [
        {
            'class': class_names[c],
            'support': int(support[c]),
            'predicted': int(predicted[c]),
            'correct': int(correct[c]),
            'precision': float(correct[c] / predicted[c]) if predicted[c] else None,
            'recall': float(correct[c] / support[c]) if support[c] else None,
        }
        for c in range(len(class_names))
    ]


def underpredicted(classes: Sequence[Dict]) -> List[Dict]:
    """Classes with examples that the model never predicts, or predicts for fewer than
    RARELY_PREDICTED of their examples; fewest predictions per example first."""
    found = [
        c for c in classes if c['support'] and c['predicted'] < RARELY_PREDICTED * c['support']
    ]
    return sorted(found, key=lambda c: (c['predicted'] / c['support'], -c['support']))
