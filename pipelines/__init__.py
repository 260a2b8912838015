"""Blindspot's TFX pipelines: the DAG (`pipeline.py`) and per-dataset model code."""

import os

# TFX 1.16 / TF 2.16: tf.Transform and TFMA work with Keras 2 (tf-keras). Set it before
# anything imports TensorFlow so that `tf.keras` means the same thing everywhere.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
