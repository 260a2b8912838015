"""Feature definitions for the Chicago taxi sample, shared by Transform and Trainer."""

from typing import Dict

# Raw columns the label is computed from: the CSV must have them.
TIPS = 'tips'
FARE = 'fare'
LABEL_SOURCE_COLUMNS = (TIPS, FARE)
# Transformed label: 1 when the tip was more than 20% of the fare.
LABEL_KEY = 'big_tipper'
TIP_FRACTION_THRESHOLD = 0.2

# Numeric features, z-scored (missing -> 0 before scaling).
DENSE_FLOAT_FEATURES = ('trip_miles', 'fare', 'trip_seconds')

# Coordinates, bucketized by quantiles; missing values get their own bucket.
BUCKET_FEATURES = ('pickup_latitude', 'pickup_longitude', 'dropoff_latitude', 'dropoff_longitude')
NUM_BUCKETS = 10

# Integer categories used as they are (no vocabulary pass): feature -> number of ids; values
# outside 0..n-1 are clipped, missing is 0. Chicago's community areas are numbered 1..77.
CATEGORICAL_INT_FEATURES: Dict[str, int] = {
    'trip_start_hour': 24,
    'trip_start_day': 8,
    'trip_start_month': 13,
    'pickup_community_area': 78,
    'dropoff_community_area': 78,
}

# Text categories mapped through a vocabulary (one Transform pass each).
VOCAB_FEATURES = ('payment_type', 'company')
VOCAB_SIZE = 100
OOV_SIZE = 5

# Every raw column the model reads.
RAW_FEATURES = (
    DENSE_FLOAT_FEATURES + BUCKET_FEATURES + tuple(CATEGORICAL_INT_FEATURES) + VOCAB_FEATURES
)

# Slices the Evaluator reports. No cross slice: payment_type x trip_start_hour made 77 slices
# and a third of the Evaluator's time; ErrorAnalysis tests every cross of up to 3 features.
SLICE_FEATURES = ('payment_type', 'trip_start_hour', 'company')


def transformed_name(key: str) -> str:
    return key + '_xf'


def num_ids(key: str) -> int:
    """Size of the id space of a categorical transformed feature."""
    if key in CATEGORICAL_INT_FEATURES:
        return CATEGORICAL_INT_FEATURES[key]
    if key in BUCKET_FEATURES:
        return NUM_BUCKETS + 1
    if key in VOCAB_FEATURES:
        return VOCAB_SIZE + OOV_SIZE
    raise KeyError(key)
