"""Names and limits shared by the csv pipeline's preflight scan, Transform, Trainer and
Evaluator. Pure Python: the preflight check imports it before TensorFlow is loaded."""

import re
from typing import Dict, Iterable, List, Sequence

# The label as the Evaluator and ErrorAnalysis read it: class ids, or (regression) the number
# as a float, in the label's own units.
LABEL_KEY = 'label_xf'
LABEL_VOCAB = 'label'  # vocabulary file of the class names, in class-id order
CLASS_NAMES_FILE = 'assets.extra/class_names.txt'  # under the serving model directory
LABEL_NAME_FILE = 'assets.extra/label_name.txt'  # the label column's name, for the report

LOW_CARDINALITY = 20  # integer columns with at most this many distinct values are categories
# TFMA's slicing specs: the label, then the low-cardinality columns with the fewest values, this
# many in all. Every slice multiplies TFMA's metrics and plots; ErrorAnalysis searches every
# column and their combinations, with per-value error rates and intervals, whatever this is.
MAX_TFMA_SLICE_COLUMNS = 4
VOCAB_TOP_K = 100  # most frequent values of a text column that get their own id
NUM_OOV = 1  # one id shared by the rarer values (and values never seen in training)
MISSING = '<missing>'  # what an empty text cell becomes (TFT's vocabulary drops empty strings)
MAX_CLASSES = 100  # more distinct labels than this is not a classification problem
# A label of numbers with more distinct values than this is a quantity to predict (regression),
# fewer are class ids; --task decides otherwise.
NUMERIC_CLASS_LIMIT = LOW_CARDINALITY
MIN_ROWS = 20  # fewer rows would leave the eval split (a quarter) nearly empty

# Column names become tf.Example keys, TensorFlow op names and Keras input names.
NAME_PATTERN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def tfma_slice_columns(
    candidates: Sequence[str], distinct: Dict[str, int], label: str
) -> List[str]:
    """The columns TFMA slices by, from those with 2..LOW_CARDINALITY values (in file order):
    the label first, then the fewest values first, MAX_TFMA_SLICE_COLUMNS in all."""
    order = sorted(candidates, key=lambda c: (c != label, distinct[c]))
    return order[:MAX_TFMA_SLICE_COLUMNS]


def transformed_name(column: str) -> str:
    return column + '_xf'


def missing_name(column: str) -> str:
    """0/1 indicator of a missing number."""
    return column + '_missing_xf'


def vocab_name(column: str) -> str:
    return 'vocab_' + column


def suggested_name(column: str) -> str:
    """A usable name for a column: other characters become '_', a leading digit gets '_'."""
    name = re.sub(r'[^A-Za-z0-9_]+', '_', column.strip()).strip('_') or 'column'
    return '_' + name if name[0].isdigit() else name


def output_names(columns: Iterable[str], label: str) -> List[str]:
    """Every name the Transform can output for these columns (to find clashes)."""
    names = [LABEL_KEY]
    for column in columns:
        if column != label:
            names += [transformed_name(column), missing_name(column)]
    return names
