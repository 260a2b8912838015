"""The ErrorAnalysisReport artifact type.

No PROPERTIES: Kubeflow V2 cannot compile custom types that declare them. The summary is stored
as custom properties (queryable in ML Metadata) and the full report as files under the URI.
"""
from tfx.types import artifact


class ErrorAnalysisReport(artifact.Artifact):
    TYPE_NAME = 'components.ErrorAnalysisReport'


# Custom properties the executor sets on every report.
NUM_EXAMPLES = 'num_examples'
NUM_ERRORS = 'num_errors'
ERROR_RATE = 'error_rate'
NUM_SIGNIFICANT_SLICES = 'num_significant_slices'
TOP_SLICE = 'top_slice'
TOP_SLICE_ERROR_RATE = 'top_slice_error_rate'
TOP_SLICE_SIZE = 'top_slice_size'
REPORT_VERSION = 'report_version'
