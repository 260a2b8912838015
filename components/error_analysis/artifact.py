"""The ErrorAnalysisReport artifact type.

No PROPERTIES: Kubeflow V2 cannot compile custom types that declare them. The summary is stored
as custom properties (queryable in ML Metadata) and the full report as files under the URI.
"""

from tfx.types import artifact


class ErrorAnalysisReport(artifact.Artifact):
    TYPE_NAME = 'blindspot.ErrorAnalysisReport'
