"""Compiles Blindspot's pipelines for Kubeflow Pipelines (`python -m blindspot.kubeflow.runner`) and builds
the container image they run in (kubeflow/Dockerfile)."""
