"""Plain-words rendering of TFDV anomalies, for the error a stopped pipeline prints."""

from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2


def describe(anomalies: anomalies_pb2.Anomalies, split: str) -> List[str]:
    """One line per anomaly: which feature, what is wrong, TFDV's explanation."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        lines.append(f"[{split}] feature '{feature}': {info.short_description}. {info.description}")
    if anomalies.HasField('dataset_anomaly_info'):
        info = anomalies.dataset_anomaly_info
        lines.append(f'[{split}] dataset: {info.short_description}. {info.description}')
    return lines
