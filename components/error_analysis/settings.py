"""Every ErrorAnalysis setting, once: its name, type, default, check and help.

The local runner and the Kubeflow compiler build their flags from these fields
(`add_flags`/`from_flags`), the Kubeflow YAML config is read with `from_mapping`, the component
turns a Settings into exec properties (`to_exec_properties`) and the executor reads them back
(`from_exec_properties`). The field name is the exec-property key, the YAML key and, with
dashes, the flag (unless `flag` says otherwise). `DeclaredSettings` is that machinery alone:
the pipelines' training settings (pipelines/config.py) are declared the same way. Light: no
TensorFlow, TFX or Beam.
"""

import argparse
import dataclasses
import json
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple


class SettingsError(ValueError):
    """A bad setting; the message is one line naming the setting and what it accepts.

    `setting` and `detail` let a caller name the setting its own way (a YAML key, a flag)."""

    def __init__(self, message: str, setting: str = '', detail: str = ''):
        super().__init__(message)
        self.setting = setting
        self.detail = detail or message


def positive_int(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 'must be a whole number of at least 1'
    return None


def _row_count(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 'must be a whole number of rows (0: none)'
    return None


def _accuracy_or_none(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return 'must be an accuracy between 0 and 1, e.g. 0.95 (0: none given)'
    return None


def _at_least_two(value: Any) -> Optional[str]:
    return positive_int(value) or (None if value >= 2 else 'must be at least 2')


def _open_fraction(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        return 'must be a number between 0 and 1 (exclusive)'
    return None


def _slice_size(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return 'must be a fraction of the rows (0 < x < 1) or a row count (>= 1)'
    if value >= 1 and value != int(value):
        return 'must be a fraction below 1 or a whole row count'
    return None


def name_list(value: Any) -> Optional[str]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        return 'must be a list of names'
    return None


def _nonempty_names(value: Any) -> Optional[str]:
    return name_list(value) or (None if value else 'must name at least one split')


def _tag_rules(value: Any) -> Optional[str]:
    from blindspot.error_analysis.tags import tag_rules

    if name_list(value):
        return "must be a list of 'name: expression' rules"
    try:
        tag_rules.parse_rules(value)
    except tag_rules.RuleError as e:
        return str(e)
    return None


def _references(value: Any) -> Optional[str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str)
        and k.strip()
        and not isinstance(v, bool)
        and isinstance(v, (int, float))
        and 0 <= v <= 1
        for k, v in value.items()
    ):
        return 'must map tag names to accuracies between 0 and 1, e.g. night=0.9'
    return None


def _gate_mode(value: Any) -> Optional[str]:
    from blindspot.error_analysis.report.gate import MODES

    return None if value in MODES else f'must be one of {", ".join(MODES)}'


def fraction(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return 'must be a fraction between 0 and 1'  # NaN fails this too
    return None


def one_of(*choices: str) -> Callable[[Any], Optional[str]]:
    def check(value: Any) -> Optional[str]:
        return None if value in choices else f'must be one of {", ".join(choices)}'

    return check


def _error_kind(value: Any) -> Optional[str]:
    from blindspot.error_analysis.search.regression import ERROR_KINDS

    return one_of(*ERROR_KINDS)(value)


def _ratio(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < 1e9:
        return 'must be a ratio of at least 1, e.g. 2 (twice the rest)'
    return None


def _text(value: Any) -> Optional[str]:
    return None if isinstance(value, str) else 'must be a path (text)'


def setting(
    default: Any,
    check: Callable[[Any], Optional[str]],
    help: str,
    flag: Optional[str] = None,
    metavar: Optional[str] = None,
    kind: Optional[type] = None,
    choices: Optional[Sequence[str]] = None,
    shown: Optional[str] = None,
):
    """A field with its check, help text and (optionally) a flag name other than --<name>;
    `kind` for a default of None, `choices` for the flag, `shown`: the default as help says
    it (when None stands for something)."""
    factory = (lambda: dict(default)) if isinstance(default, dict) else None
    metadata = {
        'check': check,
        'help': help,
        'flag': flag,
        'metavar': metavar,
        'kind': kind,
        'choices': choices,
        'shown': shown,
    }
    if factory:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class DeclaredSettings:
    """Settings declared as fields of a frozen dataclass (see `setting`): checked when built,
    read from a mapping (YAML) and from flags with defaults None (= not given), so defaults <
    config < flags merge the same way everywhere. `DEST_PREFIX` keeps two classes' flags apart
    in one parser."""

    DEST_PREFIX = ''

    def __post_init__(self):
        # Lists arrive from argparse, YAML and JSON: keep them as tuples (hashable, frozen).
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
            if kind_of(field) is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, field.name, float(value))
        for field in dataclasses.fields(self):
            problem = field.metadata['check'](getattr(self, field.name))
            if problem:
                detail = f'{problem}, got {getattr(self, field.name)!r}'
                raise SettingsError(f'{flag_name(field)} {detail}', field.name, detail)

    # -- YAML / mapping ---------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = 'error_analysis'):
        """From a config file's mapping; unknown keys and bad values are SettingsErrors."""
        if not isinstance(mapping, Mapping):
            raise SettingsError(f'{where} must be a mapping of settings, got {mapping!r}')
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise SettingsError(
                f'unknown {where} setting(s) {", ".join(unknown)}; known: {", ".join(known)}'
            )
        values = {
            name: (tuple(v) if isinstance(v, list) else v)
            for name, v in mapping.items()
            if v is not None
        }
        try:
            return cls(**values)
        except SettingsError as e:
            raise SettingsError(f'{where}.{e.setting} {e.detail}', e.setting, e.detail) from None

    # -- command-line flags -----------------------------------------------------------------

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, title: str = 'ErrorAnalysis') -> None:
        """One flag per setting, default None (= not given), help with the default."""
        group = parser.add_argument_group(f'{title} settings')
        for field in dataclasses.fields(cls):
            kind = kind_of(field)
            default = field.default if kind is not dict else {}
            shown = ', '.join(default) if kind is tuple else default
            shown = field.metadata['shown'] or (shown if shown or shown == 0 else 'none')
            help_text = f'{field.metadata["help"]} (default: {shown})'
            options = {
                'dest': cls._dest(field),
                'default': None,
                'help': help_text,
                'metavar': field.metadata['metavar'],
            }
            if kind in (tuple, dict):
                options['action'] = 'append'
            elif kind in (int, float):
                options['type'] = kind
            if field.metadata['choices']:
                options['choices'] = field.metadata['choices']
            group.add_argument(flag_name(field), **options)

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, base=None):
        """`base` (defaults if None) with the flags that were given on top."""
        values = dataclasses.asdict(base or cls())
        for field in dataclasses.fields(cls):
            given = getattr(flags, cls._dest(field), None)
            if given is None:
                continue
            if kind_of(field) is dict:
                given = {**values[field.name], **_parse_references(given, flag_name(field))}
            values[field.name] = given
        return cls(**values)

    @classmethod
    def _dest(cls, field: dataclasses.Field) -> str:
        return f'{cls.DEST_PREFIX}{field.name}'


@dataclasses.dataclass(frozen=True)
class Settings(DeclaredSettings):
    """Parameters of the ErrorAnalysis component; checked when built."""

    DEST_PREFIX = 'ea_'

    task: str = setting(
        'auto',
        one_of('auto', 'classification', 'regression'),
        'what the model predicts: classification (a class per example), regression (a number '
        "in the label's units), or auto (regression when the model gives one value per example "
        'and the labels are not all 0/1)',
        flag='--analysis-task',
    )
    regression_error: str = setting(
        'absolute',
        _error_kind,
        "regression only: the per-example error findings' gains and intervals are in "
        '(absolute: MAE, in label units; squared: MSE)',
    )
    splits: Tuple[str, ...] = setting(
        ('eval',), _nonempty_names, 'splits to analyse', flag='--split', metavar='NAME'
    )
    slice_features: Tuple[str, ...] = setting(
        (),
        name_list,
        'slice on this feature (repeatable; default: every scalar feature of the '
        "schema available at serving time, or the dataset's choice)",
        flag='--slice-feature',
        metavar='NAME',
    )
    num_bins: int = setting(
        16,
        _at_least_two,
        "fine quantile bins per numeric feature; a finding's range spans adjacent bins",
    )
    max_values_per_feature: int = setting(
        50, positive_int, 'most values kept per categorical feature (the rest is "(other)")'
    )
    max_predicates: int = setting(3, positive_int, 'most predicates in a failing slice')
    min_slice_size: float = setting(
        0.01, _slice_size, 'smallest failing slice: a fraction of the rows (< 1) or a count'
    )
    num_slices: int = setting(10, positive_int, 'most failing slices in the report')
    significance: float = setting(
        0.01,
        _open_fraction,
        'family-wise level of the hold-out check: on data without a failing slice, a run '
        'reports any finding with at most this probability',
    )
    num_hardest_examples: int = setting(
        20, positive_int, 'most confident mistakes listed in the report'
    )
    mistakes_per_finding: int = setting(
        50, positive_int, 'most mistakes listed under each finding (most confident first)'
    )
    slice_gate: str = setting(
        'new',
        _gate_mode,
        'push only if the failing slices pass: off; new (no failing slice fails significantly '
        "more than under the latest blessed model, measured on both models' predictions); any "
        '(no held finding above --max-slice-error-rate, or for a regression above '
        "--max-slice-error-ratio times the rest's mean error)",
    )
    max_slice_error_rate: float = setting(
        0.5, fraction, 'with --slice-gate any: highest error rate a held finding may have'
    )
    max_slice_error_ratio: float = setting(
        2.0,
        _ratio,
        "with --slice-gate any, on a regression: highest ratio of a held finding's mean error "
        "(MAE) to the rest's",
    )
    tags_file: str = setting(
        '',
        _text,
        'CSV of manual tags per example id (e.g. a filled-in review sheet), ranked '
        'by potential gain in the report',
        flag='--tags',
        metavar='CSV',
    )
    tag_rules: Tuple[str, ...] = setting(
        (),
        _tag_rules,
        'a tag from a feature rule, repeatable, e.g. '
        '"night: trip_start_hour >= 22 or trip_start_hour < 5"',
        flag='--tag-rule',
        metavar='RULE',
    )
    tag_references: Dict[str, float] = setting(
        {},
        _references,
        'target or human-level accuracy for a tag, repeatable, e.g. '
        "night=0.9 (default: the model's overall accuracy)",
        flag='--tag-reference',
        metavar='TAG=ACC',
    )
    train_sample: int = setting(
        100_000,
        _row_count,
        'most training rows the model is run on, for the train error beside the error of '
        'each finding and tag: all of them, or a uniform sample of this many chosen by a hash '
        'of the example (the same rows in every run); 0: none',
        metavar='ROWS',
    )
    human_level: float = setting(
        0.0,
        _accuracy_or_none,
        'human-level (or target) accuracy: each finding gets avoidable bias (train error - '
        'reference error) and variance (error - train error); a tag with --tag-reference '
        'uses its own (0: none)',
        metavar='ACC',
    )

    def problem_for(self, task: str) -> Optional[str]:
        """What of these settings a model of `task` ('regression' or 'classification') cannot
        take, in one line; None if nothing: checked by the executor once it knows the task,
        and by a runner that knows it before TFX runs."""
        if task == 'regression' and self.tag_references:
            return (
                "tag references are accuracies, for a classifier: a regression model's tags "
                "are measured against the rest of the examples' error; leave out "
                f'--tag-reference ({", ".join(sorted(self.tag_references))})'
            )
        return None

    # -- exec properties (Kubeflow V2 takes primitives only: lists and maps travel as JSON) --

    def to_exec_properties(self) -> Dict[str, Any]:
        return {f.name: _to_primitive(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_exec_properties(cls, properties: Mapping[str, Any]) -> 'Settings':
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in properties or properties[field.name] is None:
                continue
            value = properties[field.name]
            kind = kind_of(field)
            if kind in (tuple, dict):
                value = json.loads(value or ('{}' if kind is dict else '[]'))
            elif kind is int:
                value = int(value)  # KFP hands integers back as doubles
            values[field.name] = value
        return cls(**values)


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata['flag'] or '--' + field.name.replace('_', '-')


def kind_of(field: dataclasses.Field) -> type:
    if field.metadata.get('kind'):
        return field.metadata['kind']
    default = field.default if field.default is not dataclasses.MISSING else {}
    return tuple if isinstance(default, tuple) else type(default)


def _to_primitive(value: Any) -> Any:
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, dict):
        return json.dumps(dict(value), sort_keys=True)
    return value


def _parse_references(items: Sequence[str], flag: str) -> Dict[str, float]:
    references = {}
    for item in items:
        tag, sep, value = item.rpartition('=')
        try:
            references[tag.strip()] = float(value)
        except ValueError:
            sep = ''
        if not sep or not tag.strip():
            raise SettingsError(f'{flag} takes TAG=ACCURACY with an accuracy in 0..1, got {item!r}')
    return references
