"""Where a local run puts things under its output folder: one place, for the runner that
writes them and for the code that cleans up after an interrupted run."""

import os

METADATA_FILE = 'metadata.sqlite'


def pipeline_root(output_dir: str, pipeline_name: str) -> str:
    """TFX's pipeline root: <root>/<component>/<output key>/<execution id>/ per output."""
    return os.path.join(os.path.abspath(output_dir), 'pipelines', pipeline_name)


def serving_model_dir(output_dir: str, pipeline_name: str) -> str:
    return os.path.join(os.path.abspath(output_dir), 'serving_model', pipeline_name)


def log_file(output_dir: str, pipeline_name: str, run_id: str) -> str:
    """One log per run (runs never share or overwrite a log): logs/<pipeline>-<run id>.log."""
    stamp = run_id.replace(':', '').replace('/', '-')
    return os.path.join(output_dir, 'logs', f'{pipeline_name}-{stamp}.log')
