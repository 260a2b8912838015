"""Names under a report artifact's URI and of its ML Metadata custom properties: what readers
of a report (review, the run summary, tests) rely on. Light: no TensorFlow or Beam."""

REPORT_JSON = 'report.json'
REPORT_HTML = 'report.html'
PREDICTIONS_DIR = 'predictions'
FEATURE_COLUMN_PREFIX = 'feature.'  # feature columns in the predictions, apart from ours
# Written beside the report by the analysis (beam/comparison.py): the measure made when it
# compared itself with a baseline report, and the run's feature encoders (to place its slices
# on rows, membership.encoders_from_json).
PART_COMPARISON = 'comparison.json'
PART_ENCODERS = 'encoders.json'

# Custom properties the executor sets on every report.
NUM_EXAMPLES = 'num_examples'
NUM_ERRORS = 'num_errors'
ERROR_RATE = 'error_rate'
NUM_SIGNIFICANT_SLICES = 'num_significant_slices'
TOP_SLICE = 'top_slice'
TOP_SLICE_ERROR_RATE = 'top_slice_error_rate'
TOP_SLICE_SIZE = 'top_slice_size'
REPORT_VERSION = 'report_version'
# A regression model's report only: the overall MAE and the top finding's, in label units.
MAE = 'mae'
TOP_SLICE_MAE = 'top_slice_mae'
# Set when the report was compared with the latest blessed model's (report/compare.py).
NEW_FAILING_SLICES = 'new_failing_slices'
RESOLVED_FAILING_SLICES = 'resolved_failing_slices'
BASELINE_REPORT_ID = 'baseline_report_id'
# The slice gate's verdict (report/gate.py): 1 if the push may go ahead, and why (not).
SLICE_GATE_PASSED = 'slice_gate_passed'
SLICE_GATE = 'slice_gate'
