"""The pipelines Blindspot knows: where each one's data, schema and model code live."""
import dataclasses
import functools
import hashlib
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str                      # the pipelines/<name> folder
    schema_path: Path
    preprocessing_fn: str          # dotted path, run by Transform
    run_fn: str                    # dotted path, run by Trainer
    label_key: str                 # label as the Evaluator and ErrorAnalysis read it
    eval_config: Callable[[float], tfma.EvalConfig]
    default_data_root: Callable[[], Path]
    example_format: str = 'csv'    # 'csv' (CsvExampleGen) or 'tfrecord' (ImportExampleGen)
    label_source_columns: Tuple[str, ...] = ()   # CSV columns the label comes from
    variant: str = ''              # e.g. '01' for MNIST digits 0 and 1: a separate pipeline
    trainer_config: Dict = dataclasses.field(default_factory=dict)
    class_names: Tuple[str, ...] = ()
    slice_features: Optional[Tuple[str, ...]] = None   # ErrorAnalysis default; None: all
    image: Optional[Tuple[str, int, int]] = None       # (raw feature, height, width)
    # Writes the input data under an output folder and returns its path; None: read as is.
    prepare_data: Optional[Callable[[str], str]] = None

    @property
    def pipeline_name(self) -> str:
        return f'blindspot-{self.name}' + (f'-{self.variant}' if self.variant else '')

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


def _taxi(classes: Optional[str] = None, model: Optional[str] = None) -> Dataset:
    if classes or model:
        raise ValueError('--classes and --model apply to the mnist pipeline only')
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
        class_names=('not big tipper', 'big tipper'),
    )


def _mnist(classes: Optional[str] = None, model: Optional[str] = None) -> Dataset:
    from pipelines.mnist import data, evaluation
    from pipelines.mnist import features as F
    from pipelines.mnist.model import MODELS
    chosen = data.parse_classes(classes)
    if model and model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got '{model}'")
    return Dataset(
        name='mnist',
        variant='' if chosen == data.DIGITS else ''.join(map(str, chosen)),
        schema_path=REPO_ROOT / 'schemas' / 'mnist' / 'schema.pbtxt',
        preprocessing_fn='pipelines.mnist.preprocessing.preprocessing_fn',
        run_fn='pipelines.mnist.model.run_fn',
        label_key=F.LABEL_KEY,
        eval_config=functools.partial(evaluation.eval_config, num_classes=len(chosen)),
        default_data_root=lambda: None,
        example_format='tfrecord',
        trainer_config={'num_classes': len(chosen), 'model': model or 'dense'},
        class_names=tuple(str(d) for d in chosen),
        slice_features=(F.LABEL_KEY,) + F.SHAPE_FEATURES,
        image=(F.IMAGE_KEY, F.HEIGHT, F.WIDTH),
        prepare_data=functools.partial(_mnist_prepare, classes=chosen),
    )


def _mnist_prepare(output_dir: str, classes: Sequence[int]) -> str:
    from pipelines.mnist import data
    return data.prepare(output_dir, classes)


DATASETS: Dict[str, Callable[..., Dataset]] = {'taxi': _taxi, 'mnist': _mnist}


def get_dataset(name: str, classes: Optional[str] = None, model: Optional[str] = None
                ) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown pipeline '{name}': choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](classes=classes, model=model)
