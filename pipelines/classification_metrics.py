"""TFMA metrics for the multiclass pipelines (csv, mnist), computed in one pass per slice.

TFMA's own classes (SparseCategoricalAccuracy through a Keras metric, ExampleCount, the
confusion matrix plot, and Precision and Recall binarized per class) each read every example
again through TFMA's generic label/prediction unpacking: about 8 reads per example and slice,
most of the Evaluator's time on 100k rows. Here one combiner counts (label, predicted class)
pairs and every metric is derived from those counts, under TFMA's own metric keys, so views,
thresholds, baselines and readers see what they saw before.

The predicted class is the arg-max, as in the accuracy and the confusion matrix; per-class
precision and recall are therefore at the predicted class (TFMA's binarized ones used a 0.5
probability threshold per class, which with 3 or more classes can count an example as
predicted for no class).
"""

from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mcm
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_plot as mcm_plot

ACCURACY = 'sparse_categorical_accuracy'
_COUNTS = '_argmax_confusion_counts'

Counts = Dict[Tuple[int, int], float]  # (label class, predicted class) -> examples (weighted)


def class_precision_recall(
    counts: Counts, num_classes: int
) -> List[Tuple[Optional[float], Optional[float]]]:
    """(precision, recall) per class id: None where the class was never predicted / seen."""
    predicted, actual, correct = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for (label, prediction), weight in counts.items():
        if 0 <= label < num_classes:
            actual[label] += weight
        if 0 <= prediction < num_classes:
            predicted[prediction] += weight
        if label == prediction and 0 <= label < num_classes:
            correct[label] += weight
    return [
        (
            float(correct[k] / predicted[k]) if predicted[k] else None,
            float(correct[k] / actual[k]) if actual[k] else None,
        )
        for k in range(num_classes)
    ]


class _ArgmaxCounts(beam.CombineFn):
    """Counts (label class, arg-max predicted class) pairs, reading each example once."""

    def __init__(self, key: metric_types.MetricKey):
        self._key = key
        self._model = key.model_name or None
        self._output = key.output_name or None

    def create_accumulator(self) -> Counts:
        return {}

    def add_input(self, accumulator: Counts, element: metric_types.StandardMetricInputs) -> Counts:
        label = np.asarray(element.get_labels(self._model, self._output))
        predictions = np.asarray(element.get_predictions(self._model, self._output))
        if label.size == 0 or predictions.size < 2:
            raise ValueError(
                'a multiclass metric needs a class-id label and one probability per class; '
                f'got label shape {label.shape}, predictions shape {predictions.shape}'
            )
        actual = int(np.argmax(label)) if label.size > 1 else int(label.reshape(-1)[0])
        pair = (actual, int(np.argmax(predictions.reshape(-1))))
        weight = 1.0
        if self._key.example_weighted:
            weight = float(
                np.asarray(element.get_example_weights(self._model, self._output)).reshape(-1)[0]
            )
        accumulator[pair] = accumulator.get(pair, 0.0) + weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Counts]) -> Counts:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            for pair, weight in accumulator.items():
                result[pair] = result.get(pair, 0.0) + weight
        return result

    def extract_output(self, accumulator: Counts) -> Dict[metric_types.MetricKey, Counts]:
        return {self._key: accumulator}


def _counts_computation(
    model_name: str, output_name: str, example_weighted: bool
) -> metric_types.MetricComputation:
    key = metric_types.MetricKey(
        name=_COUNTS,
        model_name=model_name,
        output_name=output_name,
        example_weighted=example_weighted,
    )
    return metric_types.MetricComputation(
        keys=[key], preprocessors=None, combiner=_ArgmaxCounts(key)
    )


def _accuracy(
    name: str = ACCURACY, model_name: str = '', output_name: str = '', example_weighted=False
) -> metric_types.MetricComputations:
    counts = _counts_computation(model_name, output_name, example_weighted)
    key = metric_types.MetricKey(
        name=name,
        model_name=model_name,
        output_name=output_name,
        example_weighted=example_weighted,
    )

    def result(metrics):
        pairs = metrics[counts.keys[0]]
        total = sum(pairs.values())
        correct = sum(w for (label, prediction), w in pairs.items() if label == prediction)
        return {key: correct / total if total else float('nan')}

    return [counts, metric_types.DerivedMetricComputation(keys=[key], result=result)]


def _summary(
    num_classes: int,
    name: str = 'classification_summary',
    model_name: str = '',
    output_name: str = '',
    example_weighted=False,
) -> metric_types.MetricComputations:
    del name  # the keys are TFMA's own names, below
    counts = _counts_computation(model_name, output_name, example_weighted)

    def key(metric: str, class_id: Optional[int] = None) -> metric_types.MetricKey:
        return metric_types.MetricKey(
            name=metric,
            model_name=model_name,
            output_name=output_name,
            sub_key=None if class_id is None else metric_types.SubKey(class_id=class_id),
            example_weighted=example_weighted,
        )

    plot = metric_types.PlotKey(
        name=mcm_plot.MULTI_CLASS_CONFUSION_MATRIX_PLOT_NAME,
        model_name=model_name,
        output_name=output_name,
        example_weighted=example_weighted,
    )
    keys = [key('example_count'), plot]
    for k in range(num_classes):
        keys += [key('precision', k), key('recall', k)]

    def result(metrics):
        pairs = metrics[counts.keys[0]]
        out = {key('example_count'): sum(pairs.values())}
        for k, (precision, recall) in enumerate(class_precision_recall(pairs, num_classes)):
            out[key('precision', k)] = float('nan') if precision is None else precision
            out[key('recall', k)] = float('nan') if recall is None else recall
        # The matrix as TFMA's MultiClassConfusionMatrixPlot writes it at its default threshold
        # 0.0 (softmax probabilities are never at or below it, so every example is predicted).
        matrices = mcm.Matrices(
            {0.0: {mcm.MatrixEntryKey(a, p): w for (a, p), w in sorted(pairs.items())}}
        )
        out[plot] = matrices.to_proto().multi_class_confusion_matrix_at_thresholds
        return out

    return [counts, metric_types.DerivedMetricComputation(keys=keys, result=result)]


class ArgmaxAccuracy(metric_types.Metric):
    """Share of examples whose arg-max class is the label (Keras' SparseCategoricalAccuracy),
    under its name, so blessing thresholds and readers find it as before."""

    def __init__(self, name: str = ACCURACY):
        super().__init__(metric_util.merge_per_key_computations(_accuracy), name=name)


class ClassificationSummary(metric_types.Metric):
    """example_count, precision and recall per class id, and the multiclass confusion matrix
    plot, from the same counts as ArgmaxAccuracy."""

    def __init__(self, num_classes: int, name: str = 'classification_summary'):
        super().__init__(
            metric_util.merge_per_key_computations(_summary), num_classes=num_classes, name=name
        )
