"""The pipelines Blindspot knows: where each one's data, schema and model code live."""

import dataclasses
import functools
import hashlib
import importlib
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple

if TYPE_CHECKING:  # TFMA imports TensorFlow: only when an eval config is built
    import tensorflow_model_analysis as tfma

    from blindspot.pipelines.config import TrainingSettings
    from blindspot.pipelines.preflight import CsvScan

REPO_ROOT = Path(__file__).resolve().parent.parent


def _imported_call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Calls 'module:function', importing the module only now: building a Dataset (and so
    every check before TFX starts) must not pay for TFMA and TensorFlow."""
    module, _, name = target.partition(':')
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str  # the pipelines/<name> folder
    schema_path: Optional[Path]  # curated schema (ImportSchemaGen); None: SchemaGen infers it
    preprocessing_fn: str  # dotted path, run by Transform
    run_fn: str  # dotted path, run by Trainer
    label_key: str  # label as the Evaluator and ErrorAnalysis read it
    eval_config: Callable[['TrainingSettings'], 'tfma.EvalConfig']  # blessed by its thresholds
    default_data_root: Callable[[], Path]
    example_format: str = 'csv'  # 'csv' (CsvExampleGen) or 'tfrecord' (ImportExampleGen)
    label_source_columns: Tuple[str, ...] = ()  # CSV columns the label comes from
    variant: str = ''  # e.g. '01' for MNIST digits 0 and 1: a separate pipeline
    trainer_config: Dict = dataclasses.field(default_factory=dict)
    class_names: Tuple[str, ...] = ()
    slice_features: Optional[Tuple[str, ...]] = None  # ErrorAnalysis default; None: all
    image: Optional[Tuple[str, int, int]] = None  # (raw feature, height, width)
    # Writes the input data under an output folder and returns its path; None: read as is.
    prepare_data: Optional[Callable[[str], str]] = None
    # Extra Transform custom_config (the preprocessing_fn takes `custom_config`).
    transform_config: Dict = dataclasses.field(default_factory=dict)
    # The data path is a run option the dataset was built from (and checked with): the local
    # runner then always takes the data from prepare_data.
    user_data: bool = False
    notes: Tuple[str, ...] = ()  # warnings about the data, printed before the run
    # Names tag rules may read besides the raw features: Transform outputs, which
    # ErrorAnalysis reads through the model's transform_features signature.
    transformed_features: Tuple[str, ...] = ()
    # The raw feature names when there is no schema file (csv without --schema: the header).
    columns: Tuple[str, ...] = ()
    task: str = 'classification'  # or 'regression' (csv: a label of numbers)

    @property
    def pipeline_name(self) -> str:
        return f'blindspot-{self.name}' + (f'-{self.variant}' if self.variant else '')

    @property
    def code_dir(self) -> Path:
        return REPO_ROOT / 'pipelines' / self.name

    def code_fingerprint(self) -> str:
        """Hash of the dataset's model code and the shared training and serving code.

        Transform and Trainer take their code by dotted path, so TFX cannot see edits to it;
        passing this hash in their custom_config makes an edit invalidate the cache.
        """
        digest = hashlib.sha256()
        files = sorted(self.code_dir.glob('*.py')) + [
            REPO_ROOT / 'pipelines' / shared for shared in ('serving.py', 'training.py')
        ]
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
    from blindspot.pipelines.taxi import features

    return Dataset(
        name='taxi',
        schema_path=REPO_ROOT / 'schemas' / 'taxi' / 'schema.pbtxt',
        preprocessing_fn='blindspot.pipelines.taxi.preprocessing.preprocessing_fn',
        run_fn='blindspot.pipelines.taxi.model.run_fn',
        label_key=features.LABEL_KEY,
        label_source_columns=features.LABEL_SOURCE_COLUMNS,
        eval_config=functools.partial(
            _imported_call, 'blindspot.pipelines.taxi.evaluation:eval_config'
        ),
        default_data_root=_taxi_data_root,
        class_names=('not big tipper', 'big tipper'),
        transformed_features=tuple(map(features.transformed_name, features.RAW_FEATURES))
        + (features.LABEL_KEY,),
    )


def _mnist(classes: Optional[str] = None, model: Optional[str] = None) -> Dataset:
    from blindspot.pipelines.mnist import data
    from blindspot.pipelines.mnist import features as F

    chosen = data.parse_classes(classes)
    if model:
        from blindspot.pipelines.mnist.model import MODELS  # imports TensorFlow: only for --model

        if model not in MODELS:
            raise ValueError(f"--model must be one of {', '.join(MODELS)}, got '{model}'")
    return Dataset(
        name='mnist',
        variant='' if chosen == data.DIGITS else ''.join(map(str, chosen)),
        schema_path=REPO_ROOT / 'schemas' / 'mnist' / 'schema.pbtxt',
        preprocessing_fn='blindspot.pipelines.mnist.preprocessing.preprocessing_fn',
        run_fn='blindspot.pipelines.mnist.model.run_fn',
        label_key=F.LABEL_KEY,
        eval_config=functools.partial(
            _imported_call,
            'blindspot.pipelines.mnist.evaluation:eval_config',
            num_classes=len(chosen),
        ),
        default_data_root=lambda: None,
        example_format='tfrecord',
        trainer_config={'num_classes': len(chosen), 'model': model or 'dense'},
        class_names=tuple(str(d) for d in chosen),
        slice_features=F.SHAPE_FEATURES,  # never the label: the per-class table covers it
        image=(F.IMAGE_KEY, F.HEIGHT, F.WIDTH),
        prepare_data=functools.partial(_mnist_prepare, classes=chosen),
        transformed_features=F.SHAPE_FEATURES + tuple(map(F.bucket_name, F.SHAPE_FEATURES)),
    )


def _mnist_prepare(output_dir: str, classes: Sequence[int]) -> str:
    from blindspot.pipelines.mnist import data

    return data.prepare(output_dir, classes)


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-') or 'data'


def _csv(
    data: Optional[str] = None,
    label: Optional[str] = None,
    schema: Optional[str] = None,
    task: Optional[str] = None,
    loss: Optional[str] = None,
    exclude_features: Optional[Sequence[str]] = None,
    variant: Optional[str] = None,
) -> Dataset:
    """Any CSV file (or folder of CSV files) with a label column: the columns, their types,
    the task (classes or a number), the classes and the slices come from one preflight scan
    of the data. `exclude_features`: columns the model does not read (ErrorAnalysis still
    slices on them); `variant`: the pipeline's name suffix (default: from file and label)."""
    from blindspot.pipelines import preflight

    if not data:
        raise preflight.PreflightError(
            '--pipeline csv needs --data PATH: a CSV file or a folder '
            'of CSV files, with a header row'
        )
    if not label:
        columns = ', '.join(preflight.read_csv_header(data)[:30])
        raise preflight.PreflightError(
            '--pipeline csv needs --label COLUMN, the column to '
            f'predict; the data has: {columns or "(no columns)"}'
        )
    scan = preflight.scan_csv(data, label, task)
    path = Path(data)
    dataset = csv_dataset(
        scan,
        path.stem if path.is_file() else path.resolve().name,
        schema,
        loss=loss,
        exclude_features=exclude_features,
        variant=variant,
    )
    return dataclasses.replace(
        dataset,
        default_data_root=lambda: Path(data),
        prepare_data=functools.partial(
            _csv_prepare, files=scan.files, missing_tokens=scan.missing_tokens
        ),
        user_data=True,
    )


def csv_dataset(
    scan: 'CsvScan',
    data_name: str,
    schema: Optional[str] = None,
    loss: Optional[str] = None,
    exclude_features: Optional[Sequence[str]] = None,
    variant: Optional[str] = None,
) -> Dataset:
    """The csv pipeline for data a preflight scan describes; `data_name` (the file's or the
    folder's name) and the label name the pipeline unless `variant` does. No data path: the
    caller sets where the data is read from (the local runner copies it, see _csv; Kubeflow
    reads it in place)."""
    from blindspot.pipelines import preflight
    from blindspot.pipelines.csv import features as F

    label = scan.label
    if loss and scan.task != 'regression':
        raise preflight.PreflightError(
            f"--loss applies to regression; the label '{label}' is classified "
            '(pass --task regression to predict it as a number)'
        )
    in_schema = set(preflight.check_csv_schema(schema, label) if schema else scan.columns)
    excluded = preflight.check_excluded_features(exclude_features or (), scan.columns, label)
    features = [c for c in scan.feature_columns() if c in in_schema]
    low_cardinality = [
        c
        for c in scan.low_cardinality_columns(F.LOW_CARDINALITY)
        if c in in_schema and not (scan.task == 'regression' and c == label)
    ]
    slices = F.tfma_slice_columns(low_cardinality, scan.distinct, label)
    notes = list(scan.notes)
    rest = [c for c in low_cardinality if c not in slices]
    if rest:
        notes.append(
            f'TFMA slices by {", ".join(slices)}; other columns with few values '
            f'({", ".join(rest)}) are left to ErrorAnalysis, which searches every column'
        )
    classes = tuple(scan.label_classes)
    inputs = [c for c in features if c not in excluded]  # what the model reads
    if not inputs:
        raise preflight.PreflightError(
            f'no column is left for the model to read (the label is {label!r}; excluded: '
            f'{", ".join(sorted(excluded)) or "none"}; empty or not in the schema: the rest): '
            'keep at least one feature'
        )
    categorical = [
        c for c in inputs if scan.types[c] == 'int' and scan.distinct[c] <= F.LOW_CARDINALITY
    ]
    return Dataset(
        name='csv',
        # Different data or labels must not share a pipeline: its model baseline and cache.
        variant=variant or _slug(f'{data_name}-{label}'),
        schema_path=Path(schema) if schema else None,
        preprocessing_fn='blindspot.pipelines.csv.preprocessing.preprocessing_fn',
        run_fn='blindspot.pipelines.csv.model.run_fn',
        label_key=F.LABEL_KEY,
        label_source_columns=(label,),
        eval_config=functools.partial(
            _imported_call,
            'blindspot.pipelines.csv.evaluation:eval_config',
            num_classes=len(classes),
            slice_columns=tuple(slices),
            label_std=scan.label_stats.std if scan.label_stats else None,
        ),
        default_data_root=lambda: None,
        transform_config={
            'task': scan.task,
            'label': label,
            'label_classes': list(classes),
            'categorical': categorical,
            'vocabularies': {
                c: list(scan.values[c])
                for c in inputs
                if c in scan.values and (scan.types[c] == 'string' or c in categorical)
            },
            'ignore': [c for c in scan.columns if scan.types[c] == 'empty' or c in excluded],
        },
        trainer_config={
            'label_column': label,
            'task': scan.task,
            **({'loss': loss or 'mse'} if scan.task == 'regression' else {}),
        },
        # ErrorAnalysis slices on every column but the label (the label would restate itself).
        slice_features=tuple(features),
        notes=tuple(notes),
        transformed_features=tuple(F.output_names(inputs, label)),
        columns=scan.columns,
        task=scan.task,
    )


def _taxi_regression(data: Optional[str] = None) -> Dataset:
    """The csv pipeline on the packaged taxi trips (or `data`, the same columns), predicting
    the tip in dollars: regression, every other column a feature (none is computed from the
    tip)."""
    return _csv(
        data=data or str(_taxi_data_root() / 'data.csv'),
        label='tips',
        task='regression',
        variant='taxi-tips',
    )


def _csv_prepare(
    output_dir: str, files: Sequence[Path], missing_tokens: Dict[str, Tuple[str, ...]]
) -> str:
    from blindspot.pipelines.csv import data

    return data.prepare(output_dir, files, missing_tokens)


DATASETS: Dict[str, Callable[..., Dataset]] = {
    'taxi': _taxi,
    'mnist': _mnist,
    'csv': _csv,
    'taxi-regression': _taxi_regression,
}
# The pipelines that run without data options (their data ships with the project).
PACKAGED = ('taxi', 'mnist')
_OPTION_FLAGS = {
    'classes': '--classes',
    'model': '--model',
    'data': '--data',
    'label': '--label',
    'schema': '--schema',
    'task': '--task',
    'loss': '--loss',
    'exclude_features': '--exclude-feature',
}


def get_dataset(name: str, **options: Optional[str]) -> Dataset:
    """The dataset `name`, built from run options (None: not given): classes and model
    (mnist), data, label, schema, task, loss and excluded features (csv). `data` goes only
    to pipelines built from their data (csv, taxi-regression); the others take the data path
    when the pipeline is built."""
    if name not in DATASETS:
        raise ValueError(f"unknown pipeline '{name}': choose one of {', '.join(sorted(DATASETS))}")
    factory = DATASETS[name]
    accepted = inspect.signature(factory).parameters
    given = {k: v for k, v in options.items() if v is not None and (k in accepted or k != 'data')}
    for key in given:
        if key not in accepted:
            users = [n for n, f in DATASETS.items() if key in inspect.signature(f).parameters]
            raise ValueError(
                f'{_OPTION_FLAGS.get(key, key)} applies to the '
                f'{" and ".join(users)} pipeline only, not to {name}'
            )
    return factory(**given)


@functools.lru_cache(maxsize=None)
def _cached_dataset(name: str, **options) -> Dataset:
    return get_dataset(name, **options)


def dataset_for(config) -> Dataset:
    """The dataset of a RunConfig, built (for csv: scanned and checked) once per process."""
    return _cached_dataset(
        config.pipeline,
        classes=config.classes,
        model=config.model,
        data=config.data_root,
        label=config.label,
        schema=config.schema,
        task=config.task,
        loss=config.training.loss,
        exclude_features=config.training.exclude_features or None,
    )
