"""Blindspot's own TFX pipelines: the DAG (`pipeline.py`) and per-dataset model code.

Their model code is Keras 2 (tf-keras), as tf.Transform and TFMA 0.47 need: the project's
runners (local_runner.py, blindspot.kubeflow.runner, the Kubeflow image, the tests) set
TF_USE_LEGACY_KERAS=1 before TensorFlow is imported. Importing this package sets nothing.
"""
