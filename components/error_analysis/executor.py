"""ErrorAnalysis executor: checks the inputs on a sample, runs the Beam analysis, writes the
report files and records the summary in ML Metadata custom properties."""

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from blindspot.error_analysis import spec
from blindspot.error_analysis.baseline import read_baseline
from blindspot.error_analysis.beam import analysis as beam_analysis
from blindspot.error_analysis.beam import comparison as beam_comparison
from blindspot.error_analysis.beam.predictions import (
    InputError,
    Predictor,
    raw_label_for,
    transform_dependents,
    vocabulary_in_assets,
)
from blindspot.error_analysis.report import build as report_build
from blindspot.error_analysis.report import files, html_page
from blindspot.error_analysis.search import lattice
from blindspot.error_analysis.settings import Settings, SettingsError
from blindspot.error_analysis.tags import manual_tags, tag_rules

_SAMPLE_SIZE = 64
TRAIN_SPLIT = 'train'  # read for each finding's coverage in training, when not analysed
_TYPE_NAMES = {schema_pb2.INT: 'int', schema_pb2.FLOAT: 'float', schema_pb2.BYTES: 'string'}


def _split_files(examples: types.Artifact, splits: List[str]) -> List[str]:
    """File patterns of the chosen splits; an error for an unknown or empty split."""
    available = artifact_utils.decode_split_names(examples.split_names)
    patterns = []
    for split in splits:
        if split not in available:
            raise InputError(
                f"split '{split}' is not in the examples; they have: {', '.join(available)}"
            )
        files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), '*'))
        if not files or not any(
            True for _ in tf.data.TFRecordDataset(files, compression_type='GZIP').take(1)
        ):
            raise InputError(f"split '{split}' has no examples: nothing to analyse")
        patterns.append(os.path.join(artifact_utils.get_split_uri([examples], split), '*'))
    return patterns


def _train_files(examples: types.Artifact, analysed: List[str]) -> List[str]:
    """The training split's file pattern, when the examples have one that is not analysed."""
    available = artifact_utils.decode_split_names(examples.split_names)
    if TRAIN_SPLIT not in available or TRAIN_SPLIT in analysed:
        return []
    return [os.path.join(artifact_utils.get_split_uri([examples], TRAIN_SPLIT), '*')]


def _kind(feature: schema_pb2.Feature, max_values: int) -> str:
    """'string', 'float', 'int', or 'int_category' for integer ids that are categories (marked
    categorical in the schema, or a small bounded range like hour of day)."""
    kind = _TYPE_NAMES[feature.type]
    if kind == 'int' and feature.HasField('int_domain'):
        domain = feature.int_domain
        small = (
            domain.HasField('min')
            and domain.HasField('max')
            and domain.max - domain.min + 1 <= max_values
        )
        if domain.is_categorical or small:
            return 'int_category'
    return kind


def slice_feature_types(
    schema: schema_pb2.Schema, requested: List[str], label_key: str, max_values: int
) -> Dict[str, str]:
    """name -> kind (see _kind) for the raw features to slice on; requested names that are
    not in the schema are left to the Transform output (see Executor.Do).

    By default every scalar-typed feature that is present at serving time (features the schema
    keeps out of SERVING, like the label's source, would make slices that only restate the
    label), leaving out images."""
    by_name = {f.name: f for f in schema.feature}
    if requested:
        return {name: _kind(by_name[name], max_values) for name in requested if name in by_name}
    return {
        f.name: _kind(f, max_values)
        for f in schema.feature
        if f.type in _TYPE_NAMES
        and f.name != label_key
        and 'SERVING' not in f.not_in_environment
        and not f.HasField('image_domain')
    }


def _is_text(schema: schema_pb2.Schema, name: str) -> bool:
    return any(f.name == name and f.type == schema_pb2.BYTES for f in schema.feature)


def _gate_wired(exec_properties: Dict[str, Any]) -> Optional[bool]:
    """True once slice_gate_condition() put something under the gate, False when the
    component was built without it, None when the DAG did not say (direct executor calls)."""
    value = exec_properties.get(spec.GATE_WIRED_KEY)
    return None if value is None else bool(value)


def _raw_label(
    checker: Predictor, sample: List[bytes], schema: schema_pb2.Schema, label_key: str
) -> Optional[str]:
    """The raw column of the label: label_key itself when the examples hold it, else the
    column a transformed label_key (an output of the model's transform_features signature,
    e.g. 'species_xf') is computed from (predictions.raw_label_for); None when there is no
    single such column."""
    raw_names = [f.name for f in schema.feature if f.type in _TYPE_NAMES]
    if label_key in raw_names:
        return label_key
    if not checker.has_transform:
        return None
    raw_label = raw_label_for(label_key, transform_dependents(checker, sample, raw_names))
    if raw_label is not None:
        logging.info("ErrorAnalysis: label '%s' is computed from '%s'", label_key, raw_label)
    return raw_label


def _label_vocabulary(
    checker: Predictor,
    sample: List[bytes],
    model_dir: str,
    num_classes: int,
    raw_label: Optional[str],
    schema: schema_pb2.Schema,
) -> List[str]:
    """Class names from the Transform's vocabulary of a string label (a file among the
    model's assets; checked against the sample's raw labels and, when the label is a
    transformed id, line id = raw value); [] without one."""
    if raw_label is None or not _is_text(schema, raw_label):
        return []
    parsed = tf.io.parse_example(tf.constant(sample), {raw_label: tf.io.VarLenFeature(tf.string)})[
        raw_label
    ]
    raw = [v.decode('utf-8', 'replace') for v in parsed.values.numpy()]
    ids = None
    if checker.label_key != raw_label and checker.has_transform:
        values = checker.transform(sample).get(checker.label_key)
        if values is not None and values.dtype.kind in 'iu':
            ids = values.reshape(len(sample), -1)[:, 0].tolist()
            if len(raw) != len(ids):
                ids = None
    return vocabulary_in_assets(model_dir, num_classes, raw, ids)


def _is_regression(task: str, checker: Predictor, sample: List[bytes]) -> bool:
    """The task setting, resolved: 'auto' is regression when the model gives one value per
    example and the sample's labels are numbers not all 0/1 (a binary classifier with one
    sigmoid output has 0/1 labels)."""
    if task != 'auto':
        return task == 'regression'
    if checker.values_per_example(sample) != 1:
        return False
    labels = checker.numeric_labels(sample)
    return labels is not None and not np.isin(labels, (0.0, 1.0)).all()


def _check_regression(
    checker: Predictor, sample: List[bytes], image: Optional[List], settings: Settings
) -> None:
    """What a regression analysis cannot take, refused before any Beam work."""
    width = checker.values_per_example(sample)
    if width != 1:
        raise InputError(
            f'task regression needs a model that gives one value per example; this one gives '
            f'{width} (a classifier? set the task to classification or auto)'
        )
    if image:
        raise InputError('image data is analysed as classification only: set the task to it')
    problem = settings.problem_for('regression')
    if problem:
        raise InputError(problem)


def _sample(patterns: List[str]) -> List[bytes]:
    files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
    dataset = tf.data.TFRecordDataset(files, compression_type='GZIP').take(_SAMPLE_SIZE)
    return [record.numpy() for record in dataset]


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict[spec.SCHEMA_KEY]))
        )
        evaluation = (
            artifact_utils.get_single_instance(input_dict[spec.EVALUATION_KEY])
            if input_dict.get(spec.EVALUATION_KEY)
            else None
        )
        # The latest blessed model's report, when the pipeline resolves one: compared with.
        baseline = read_baseline(input_dict.get(spec.BASELINE_REPORT_KEY) or [])
        output = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])

        try:
            settings = Settings.from_exec_properties(exec_properties)
        except SettingsError as e:
            raise InputError(str(e)) from None
        label_key = exec_properties[spec.LABEL_KEY_KEY]
        requested = list(settings.slice_features)
        max_values = settings.max_values_per_feature
        model_dir = path_utils.serving_model_path(model.uri)
        # The label as the user named it (the raw column when label_key is a transformed
        # feature): neither it nor label_key is ever a slice feature, a finding would restate
        # the label (the confusion matrix and per-class table already split errors by class).
        raw_label = (_saved_lines(model_dir, 'label_name.txt') or [label_key])[0]
        labels = {label_key, raw_label}
        asked = sorted(labels & set(requested))
        if asked:
            raise InputError(
                f"slice feature '{asked[0]}' is the label: a slice on it would restate the "
                'label (the per-class table covers it); leave it out of the slice features'
            )
        features = slice_feature_types(schema, requested, label_key, max_values)
        features = {name: kind for name, kind in features.items() if name not in labels}
        transformed = [name for name in requested if name not in features]
        rules, manual = _tag_inputs(settings)
        # Features the rules read but slice discovery does not use.
        rule_only = sorted(
            {f for r in rules for f in r.features} - set(features) - set(transformed)
        )
        schema_names = {f.name for f in schema.feature}
        rule_raw = [f for f in rule_only if f in schema_names]
        if rule_raw:  # (an empty request would mean every feature)
            features.update(slice_feature_types(schema, rule_raw, label_key, max_values))
        transformed += [f for f in rule_only if f not in schema_names]
        # The columns the label is computed from (kept out of serving by the schema): not
        # sliced on, but shown beside each finding's mistakes to judge the label by.
        context = [
            f.name
            for f in schema.feature
            if 'SERVING' in f.not_in_environment
            and f.name not in labels
            and f.type in _TYPE_NAMES
            and f.name not in features
        ]
        if context:  # (an empty request would mean every feature)
            features.update(slice_feature_types(schema, context, label_key, max_values))
        image = json.loads(exec_properties.get(spec.IMAGE_KEY) or '[]') or None
        patterns = _split_files(examples, list(settings.splits))

        # Fail fast, before any Beam work, on labels, outputs or features that do not fit.
        # `checker` stays referenced through the Beam run: its model is the one the in-process
        # DoFns acquire (predictions.load_model), so the SavedModel is loaded once, not twice.
        checker = Predictor(model_dir, label_key, {}, transformed)
        sample_rows = _sample(patterns)
        if raw_label == label_key and label_key not in schema_names:
            # A transformed label_key and no label_name.txt beside the model (any TFX
            # pipeline's model, e.g. the penguin example's 'species_xf'): its raw column,
            # found by running the model's Transform, is the label too.
            mapped = _raw_label(checker, sample_rows, schema, label_key)
            if mapped is not None:
                if mapped in requested:
                    raise InputError(
                        f"slice feature '{mapped}' is the label ('{label_key}' is computed "
                        'from it): a slice on it would restate the label (the per-class table '
                        'covers it); leave it out of the slice features'
                    )
                raw_label = mapped
                if mapped not in rule_only:
                    features.pop(mapped, None)
                context = [name for name in context if name != mapped]
        regression = _is_regression(settings.task, checker, sample_rows)
        if regression:
            _check_regression(checker, sample_rows, image, settings)
            num_classes, class_names, vocabulary = 0, [], []
        else:
            num_classes = checker.num_classes(sample_rows)
            class_names = (
                json.loads(exec_properties.get(spec.CLASS_NAMES_KEY) or '[]')
                or _saved_lines(model_dir, 'class_names.txt')
                or _label_vocabulary(
                    checker, sample_rows, model_dir, num_classes, raw_label, schema
                )
            )
            label_is_text = _is_text(schema, label_key)
            if label_is_text and not class_names:
                raise InputError(
                    f"label '{label_key}' holds strings: give class_names (one per class id, in "
                    "the order of the model's outputs), or as label_key the Transform output "
                    'that maps them to ids'
                )
            vocabulary = class_names if label_is_text else []
            class_names = class_names or [str(c) for c in range(num_classes)]
            if len(class_names) != num_classes:
                raise InputError(
                    f'{len(class_names)} class names were given but the model has '
                    f'{num_classes} output classes: give one name per class'
                )
        checker = Predictor(model_dir, label_key, {}, transformed, vocabulary, regression)
        sample = checker.predict(sample_rows)
        for name in transformed:
            features[name] = 'string' if sample.columns[name].dtype == object else 'float'

        params = beam_analysis.AnalysisParams(
            model_dir=model_dir,
            label_key=label_key,
            num_classes=num_classes,
            label_vocabulary=tuple(vocabulary),
            slice_features=features,
            transformed_features=tuple(transformed),
            image=image,
            tag_rules=tuple(rules),
            unsliced_features=tuple(sorted({*rule_only, *context})),
            mistakes_per_finding=settings.mistakes_per_finding,
            num_bins=settings.num_bins,
            max_values_per_feature=max_values,
            finder=lattice.SliceFinderConfig.from_settings(settings),
            num_hardest=settings.num_hardest_examples,
            regression_error=settings.regression_error if regression else None,
            train_sample=settings.train_sample,
        )
        try:
            with self._make_beam_pipeline() as pipeline:
                beam_analysis.build_analysis(
                    pipeline,
                    patterns,
                    params,
                    output.uri,
                    train_patterns=_train_files(examples, list(settings.splits)),
                    manual=manual,
                    baseline=baseline,
                )
            tags = None
            if rules or manual:
                tags = {
                    **beam_analysis.read_part(output.uri, beam_analysis.PART_TAGS),
                    'references': dict(settings.tag_references),
                    'manual_ids': len(manual),
                    'tags_uri': settings.tags_file or None,
                }
            result = self._write_report(
                output,
                label_key,
                list(settings.splits),
                class_names,
                evaluation,
                image,
                tags,
                baseline=baseline,
                gate={
                    'mode': settings.slice_gate,
                    'max_slice_error_rate': settings.max_slice_error_rate,
                    'max_slice_error_ratio': settings.max_slice_error_ratio,
                    'significance': settings.significance,
                    'wired': _gate_wired(exec_properties),
                },
                label_name=raw_label,
                label_sources=context,
                regression=regression,
                human_level=settings.human_level or None,
            )
        except Exception:
            # Leave nothing behind that could pass for a report.
            # (The folder itself stays: TFX's launcher cleans it up after a failure.)
            for name in tf.io.gfile.listdir(output.uri) if tf.io.gfile.exists(output.uri) else []:
                path = os.path.join(output.uri, name)
                (tf.io.gfile.rmtree if tf.io.gfile.isdir(path) else tf.io.gfile.remove)(path)
            raise
        logging.info('ErrorAnalysis report: %s', os.path.join(output.uri, files.REPORT_HTML))
        for line in result['insights']:
            logging.info('  %s', line)

    @staticmethod
    def _write_report(
        output: types.Artifact,
        label_key: str,
        splits: List[str],
        class_names: List[str],
        evaluation: Optional[types.Artifact],
        image: Optional[List],
        tags: Optional[Dict],
        baseline: Optional[Dict] = None,
        gate: Optional[Dict] = None,
        label_name: Optional[str] = None,
        label_sources: Sequence[str] = (),
        regression: bool = False,
        human_level: Optional[float] = None,
    ) -> Dict:
        def part(name: str):
            return beam_analysis.read_part(output.uri, name)

        numbers = part(beam_analysis.PART_REGRESSION) if regression else None

        gallery = part(beam_analysis.PART_GALLERY) if image else []
        hardest = part(beam_analysis.PART_HARDEST)
        suspects = part(beam_analysis.PART_SUSPECTS)
        finding_examples = part(beam_analysis.PART_FINDING_EXAMPLES)
        if image:  # every listed example as a picture
            records = [r for pair in gallery for r in pair['examples']] + hardest + suspects
            records += [r for rows in finding_examples.values() for r in rows]
            _to_png(records, height=int(image[1]), width=int(image[2]))
        tfma_rows = []
        if evaluation is not None:
            from blindspot.error_analysis.beam.tfma_metrics import sliced_metrics

            tfma_rows = sliced_metrics(evaluation.uri)
        data = report_build.build_report(
            label_key=label_key,
            label_name=label_name,
            label_sources=label_sources,
            splits=splits,
            class_names=class_names,
            totals=None if regression else part(beam_analysis.PART_TOTALS),
            regression=numbers,
            slices=part(beam_analysis.PART_SLICES),
            hardest=hardest,
            diagnosis=part(beam_analysis.PART_DIAGNOSIS),
            label_suspects=suspects,
            finding_examples=finding_examples,
            tfma_rows=tfma_rows,
            baseline=baseline,
            measured=part(beam_comparison.PART_COMPARISON),
            gallery=gallery,
            tags=tags,
            gate=gate,
            human_level=human_level,
            files={'predictions': f'{files.PREDICTIONS_DIR}/*.parquet', 'html': files.REPORT_HTML},
        )
        # The page first, report.json last: a report.json is only there once both are whole.
        _write_whole(os.path.join(output.uri, files.REPORT_HTML), html_page.render(data))
        _write_whole(os.path.join(output.uri, files.REPORT_JSON), json.dumps(data, indent=1))
        _record_summary(output, data)
        return data


def _write_whole(path: str, text: str) -> None:
    """Writes under a temporary name and renames: a killed executor leaves no truncated file
    under the real name."""
    partial = path + '.partial'
    with tf.io.gfile.GFile(partial, 'w') as f:
        f.write(text)
    tf.io.gfile.rename(partial, path, overwrite=True)


def _tag_inputs(settings: Settings) -> Tuple[List[tag_rules.TagRule], manual_tags.ManualTags]:
    """Tag rules (parsed once, here) and manual tags (example id -> (tags, weight)), checked
    before any Beam work."""
    try:
        rules = tag_rules.parse_rules(settings.tag_rules)
        manual = {}
        if settings.tags_file:
            if not tf.io.gfile.exists(settings.tags_file):
                raise InputError(f'tags file {settings.tags_file} does not exist')
            with tf.io.gfile.GFile(settings.tags_file) as f:
                manual = manual_tags.parse_tags_csv(f.read(), settings.tags_file)
    except (tag_rules.RuleError, manual_tags.TagsFileError) as e:
        raise InputError(str(e)) from None
    return rules, manual


def _saved_lines(model_dir: str, name: str) -> List[str]:
    """Lines of a file a Trainer saved beside the model (assets.extra): class_names.txt, one
    per line in class-id order (e.g. the vocabulary of a string label), or label_name.txt,
    the label as the user named it when the model's label is a transformed feature."""
    path = os.path.join(model_dir, 'assets.extra', name)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [line.rstrip('\n') for line in f if line.strip()]


def _to_png(records: List[Dict], height: int, width: int) -> None:
    """Each record's raw grayscale `image` bytes -> a base64 PNG `png`, in place."""
    import base64

    import numpy as np

    for record in records:
        if 'image' in record:
            pixels = np.frombuffer(base64.b64decode(record.pop('image')), np.uint8)
            png = tf.io.encode_png(pixels.reshape(height, width, 1)).numpy()
            record['png'] = base64.b64encode(png).decode()


def _record_summary(output: types.Artifact, data: Dict) -> None:
    """The report's headline numbers as custom properties, queryable in ML Metadata."""
    overall = data['overall']
    output.set_int_custom_property(files.NUM_EXAMPLES, overall['examples'])
    output.set_int_custom_property(files.NUM_ERRORS, overall['errors'])
    output.set_float_custom_property(files.ERROR_RATE, overall['error_rate'] or 0.0)
    output.set_int_custom_property(files.REPORT_VERSION, data['version'])
    held = [s for s in data['slices']['slices'] if s['held']]
    output.set_int_custom_property(files.NUM_SIGNIFICANT_SLICES, len(held))
    top = held[0] if held else (data['slices']['slices'] or [None])[0]
    if top is not None:
        size = top['search_size'] + top['holdout_size']
        output.set_string_custom_property(files.TOP_SLICE, top['slice'])
        output.set_float_custom_property(
            files.TOP_SLICE_ERROR_RATE, (top['search_errors'] + top['holdout_errors']) / size
        )
        output.set_int_custom_property(files.TOP_SLICE_SIZE, size)
        if data.get('regression'):
            output.set_float_custom_property(files.TOP_SLICE_MAE, top['regression']['mae'])
    if data.get('regression'):
        output.set_float_custom_property(files.MAE, overall['mae'] or 0.0)
    # The Pusher runs only when this is 1 (pipelines/pipeline.py: tfx.dsl.Cond).
    output.set_int_custom_property(files.SLICE_GATE_PASSED, int(data['gate']['passed']))
    output.set_string_custom_property(files.SLICE_GATE, data['gate']['reason'])
    comparison = data.get('comparison')
    if comparison:
        output.set_int_custom_property(files.NEW_FAILING_SLICES, len(comparison['new']))
        output.set_int_custom_property(files.RESOLVED_FAILING_SLICES, len(comparison['resolved']))
        output.set_int_custom_property(files.BASELINE_REPORT_ID, comparison['baseline_artifact_id'])
