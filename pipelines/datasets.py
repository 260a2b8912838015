"""The pipelines Blindspot knows: where each one's data, schema and model code live."""
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Dict, Tuple

import tensorflow_model_analysis as tfma

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    schema_path: Path
    preprocessing_fn: str          # dotted path, run by Transform
    run_fn: str                    # dotted path, run by Trainer
    label_key: str                 # transformed label, read by Evaluator and ErrorAnalysis
    label_source_columns: Tuple[str, ...]
    eval_config: Callable[[float], tfma.EvalConfig]
    default_data_root: Callable[[], Path]

    @property
    def code_dir(self) -> Path:
        return REPO_ROOT / 'pipelines' / self.name

    def code_fingerprint(self) -> str:
        """Hash of the dataset's model code and the shared serving code.

        Transform and Trainer take their code by dotted path, so TFX cannot see edits to it;
        passing this hash in their custom_config makes an edit invalidate the cache.
        """
        digest = hashlib.sha256()
        files = sorted(self.code_dir.glob('*.py')) + [REPO_ROOT / 'pipelines' / 'serving.py']
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def _taxi_data_root() -> Path:
    import tfx  # the sample ships inside the tfx wheel
    return Path(tfx.__file__).parent / 'examples' / 'chicago_taxi_pipeline' / 'data' / 'simple'


def _taxi() -> Dataset:
    from pipelines.taxi import evaluation, features
    return Dataset(
        name='taxi',
        schema_path=REPO_ROOT / 'schemas' / 'taxi' / 'schema.pbtxt',
        preprocessing_fn='pipelines.taxi.preprocessing.preprocessing_fn',
        run_fn='pipelines.taxi.model.run_fn',
        label_key=features.LABEL_KEY,
        label_source_columns=features.LABEL_SOURCE_COLUMNS,
        eval_config=evaluation.eval_config,
        default_data_root=_taxi_data_root,
    )


DATASETS: Dict[str, Callable[[], Dataset]] = {'taxi': _taxi}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown pipeline '{name}': choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()


def csv_files(data_root: os.PathLike) -> list:
    """The CSV files CsvExampleGen will read from `data_root` (a folder)."""
    return sorted(p for p in Path(data_root).iterdir() if p.suffix == '.csv' and p.is_file())
